# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout report's renderers: JUnit XML (ElementTree) and the HTML page (the Jinja
template templates/rollout_report.html.j2, shipped with the collection, autoescaped; the
geometry of its SVG bars is computed here). Input: the dict the recorder builds.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from jinja2 import Environment, FileSystemLoader

from ansible_collections.modelops.fleet.plugins.plugin_utils._report_record import (
    BAD_STATES,
    STATE_COLOURS,
    STEP_COLOURS,
    STEP_ORDER,
    _num,
)

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
HTML_TEMPLATE = "rollout_report.html.j2"
RECAP_KEYS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")


def _xml_text(value):
    """Text XML 1.0 can carry (control characters removed)."""
    return re.sub(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "", str(value))


def junit_xml(report):
    """JUnit XML (bytes): one test case per host's upgrade and one per host and probe."""
    suites = ET.Element("testsuites", name="modelops rollout %s" % (report.get("playbook") or ""))
    suite = ET.SubElement(suites, "testsuite", name="rollout", timestamp=report.get("start") or "",
                          hostname="controller")
    tests = failures = errors = skipped = 0
    for h in report["hosts"]:
        group = h.get("group") or "ungrouped"
        case = ET.SubElement(suite, "testcase", classname="rollout.%s" % group,
                             name="%s upgrade %s -> %s" % (h["host"], h.get("from") or "none", h.get("to") or "none"),
                             time="%.3f" % (h.get("duration") or 0))
        tests += 1
        if h["state"] == "unreachable":
            errors += 1
            el = ET.SubElement(case, "error", message=_xml_text("%s is unreachable" % h["host"]), type="unreachable")
            el.text = _xml_text(h.get("failure") or "")
        elif h["state"] in ("failed", "started") or (h["state"] not in ("upgraded", "frozen", "ok") and h.get("failure")):
            failures += 1
            el = ET.SubElement(case, "failure", message=_xml_text(h.get("failure") or h["state"]), type=h["state"])
            el.text = _xml_text(h.get("failure") or "")
        elif h["state"] not in ("upgraded", "ok"):
            skipped += 1
            ET.SubElement(case, "skipped", message=_xml_text(h["state"]))
        out = ET.SubElement(case, "system-out")
        out.text = _xml_text(" ".join("%s=%s(%.1fs)" % (s["step"], s["status"], s["duration"]) for s in h["steps"]))
        seen = {}
        for run in h["probes"]:
            label = run["step"] if run["step"] != "probe" else None
            for p in run["probes"]:
                key = (run.get("suite"), p.get("name"), label)
                seen[key] = seen.get(key, 0) + 1
                name = "%s probe %s/%s" % (h["host"], run.get("suite"), p.get("name"))
                if label:
                    name += " (%s)" % ("after rollback" if label == "rollback" else label)
                if seen[key] > 1:
                    name += " #%d" % seen[key]
                lat = p.get("latencies_ms") or []
                pc = ET.SubElement(suite, "testcase", classname="probes.%s" % group, name=_xml_text(name),
                                   time="%.3f" % (sum(_num(x) or 0 for x in lat) / 1000.0))
                tests += 1
                if not p.get("passed"):
                    failures += 1
                    reason = p.get("reason") or "; ".join(str(x) for x in p.get("kind_failures") or []) or "failed"
                    el = ET.SubElement(pc, "failure", message=_xml_text(reason), type="probe")
                    el.text = _xml_text(reason)
    for el in (suite, suites):
        el.set("tests", str(tests))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("time", "%.3f" % (report.get("duration") or 0))
    suite.set("skipped", str(skipped))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="utf-8")


def human_bytes(n):
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%d B" % n


def clip(text, limit=2000):
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + " [...] (full text in report.json)"


def _by_badness(states):
    return sorted(states.items(), key=lambda kv: (kv[0] not in BAD_STATES, kv[0]))


def step_seconds(s):
    """A step's span, and what of it its modules account for ("12.3 s, own 3.4 s")."""
    text = "%.1f s" % s["duration"]
    if s.get("seconds") is not None:
        text += ", own %.1f s" % s["seconds"]
    return text


def timeline_bars(h, total, width=1000):
    """The SVG bars of a host's steps on the run's time axis."""
    total = max(total or 0, 0.001)
    bars = []
    for s in h["steps"]:
        w = max((s["duration"] / total) * width, 2)
        tip = "%s: %s, %s (%s)" % (s["step"], s["status"], step_seconds(s), ", ".join(t["task"] for t in s["tasks"]))
        if s.get("msg"):
            tip += " - " + str(s["msg"])[:300]
        bars.append({"x": "%.1f" % ((s["offset"] / total) * width), "width": "%.1f" % w,
                     "label_x": "%.1f" % ((s["offset"] / total) * width + 3),
                     "colour": STEP_COLOURS.get(s["step"], STEP_COLOURS["other"]),
                     "failed": s["status"] in ("failed", "unreachable"), "skipped": s["status"] == "skipped",
                     "tip": tip, "step": s["step"], "labelled": w > 40})
    return bars


def latency_rows(h):
    """Bars of each probe run's p50/p90 and its baseline's, scaled to 600 px; [] when no
    run measured latency."""
    rows = []
    for run in h["probes"]:
        if not run.get("latency"):
            continue
        label = "%s %s" % ("probe after rollback" if run["step"] == "rollback" else run["step"], run.get("suite") or "")
        cur = run["latency"] or {}
        base = (run.get("baseline") or {}).get("latency") or {}
        rows.append((label, [("p50", _num(cur.get("p50_ms")), "#4e79a7"), ("p90", _num(cur.get("p90_ms")), "#a0cbe8"),
                             ("baseline p50", _num(base.get("p50_ms")), "#9c755f"),
                             ("baseline p90", _num(base.get("p90_ms")), "#d7b5a6")]))
    if not rows:
        return []
    top = max([v for dummy, bars in rows for dummy2, v, dummy3 in bars if v] + [1])
    scale = 600.0 / top
    out = []
    y = 4
    for label, bars in rows:
        row = {"label": label, "y": y + 11, "bars": []}
        for i, (name, val, colour) in enumerate(bars):
            if val is None:
                continue
            yy = y + i * 9
            row["bars"].append({"name": name, "value": "%.0f" % val, "y": yy, "text_y": yy + 7,
                                "width": "%.1f" % max(val * scale, 1), "text_x": "%.1f" % (174 + val * scale),
                                "colour": colour})
        out.append(row)
        y += 40
    return out


def html_context(report):
    """What the HTML template shows, computed from the report."""
    s = report["summary"]
    hosts = report["hosts"]
    total = report.get("duration") or 0
    segments = []
    x = 0.0
    for state, n in _by_badness(s["states"]) if hosts else []:
        w = 1000.0 * n / len(hosts)
        segments.append({"x": "%.1f" % x, "width": "%.1f" % w, "colour": STATE_COLOURS.get(state, "#666"),
                         "state": state, "n": n})
        x += w
    plan = []
    if (s.get("rollout") or {}).get("check_mode"):
        for h in hosts:
            p = h.get("plan")
            if p:
                plan.append("%s: %s %s -> %s, %s to transfer (%s)" % (
                    h["host"], p.get("action", "-"), p.get("from", "-"), p.get("to", "-"),
                    human_bytes(p.get("bytes_to_transfer")), h.get("wave") or "-"))
    ticks = []
    for i in range(5):
        tx = 1000.0 * i / 4
        ticks.append({"x": "%.1f" % tx, "anchor": "start" if i == 0 else ("end" if i == 4 else "middle"),
                      "label": "%.0f s" % (total * i / 4)})
    views = []
    for h in hosts:
        runs = []
        for run in h["probes"]:
            failed = [p for p in run["probes"] if not p.get("passed")]
            runs.append({"step": run["step"], "suite": run.get("suite"), "passed": run["passed"],
                         "why": ("; " + "; ".join("%s: %s" % (p.get("name"), p.get("reason")) for p in failed))
                         if failed else ""})
        views.append({"h": h, "colour": STATE_COLOURS.get(h["state"], "#666"),
                      "bars": timeline_bars(h, total) if h["steps"] else [],
                      "steps_line": " · ".join("%s %s %s" % (st["step"], st["status"], step_seconds(st))
                                               for st in h["steps"]),
                      "latency": latency_rows(h), "runs": runs,
                      "transferred": human_bytes(h["bytes_transferred"]),
                      "duration": "%.1f s" % h["duration"] if h.get("duration") is not None else "-"})
    coll = report.get("collection") or {}
    return {
        "report": report, "s": s, "total": "%.0f" % total, "hosts": views,
        "releases": ", ".join(str(r) for r in (s.get("releases") or [])) or "-",
        "collection": "%s (%s)" % (coll.get("version") or "?", "installed" if coll.get("installed") else "source checkout"),
        "cards": [{"state": state, "n": n, "colour": STATE_COLOURS.get(state, "#666")} for state, n in _by_badness(s["states"])],
        "transferred": human_bytes(s["bytes_transferred"]), "linked": human_bytes(s["bytes_linked"]),
        "segments": segments, "plan": plan, "check_mode": bool((s.get("rollout") or {}).get("check_mode")),
        "bad": [{"h": h, "colour": STATE_COLOURS.get(h["state"], "#666"), "why": clip(h.get("failure") or "no reason recorded")}
                for h in hosts if h["state"] in BAD_STATES or h.get("failure")],
        "errors": [dict(e, why=clip(e.get("msg"))) for e in report.get("errors") or []],
        "legend": [(step, STEP_COLOURS[step]) for step in STEP_ORDER], "ticks": ticks,
        "recap_keys": RECAP_KEYS, "recap": sorted((report.get("stats") or {}).items()),
    }


def html_page(report):
    """The report as one self-contained HTML page (str)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(HTML_TEMPLATE).render(**html_context(report))
