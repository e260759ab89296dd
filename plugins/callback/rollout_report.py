# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_report
type: aggregate
short_description: Write a JSON, JUnit XML and HTML report of each rollout
version_added: 0.1.0
description:
  - Records, per host, what a rollout (C(playbooks/upgrade.yml) and the
    M(modelops.fleet.model_upgrade) role) did, and writes three files into a new directory
    per run under O(report_dir), named after the start time and the playbook
    (C(20260115T101500Z-upgrade)), plus a C(latest) link (a copy where links cannot be
    made) to the newest run.
  - C(report.json) - per host the group, policy, engine, wave, from and to version, every step
    (baseline, sync, verify, activate, restart, ready, probe, soak, rollback, metrics) with start,
    end and duration, bytes transferred, the probe verdicts with latencies and baseline,
    the rollback and why, and the final state; and a run summary (the C(modelops_rollout)
    statistics of C(set_stats) when the play published them, and the per-host counts).
  - C(junit.xml) - one test case per host (its upgrade) and one per host and probe, for CI
    systems; failures carry the reason.
  - C(report.html) - one self-contained page (inline CSS and SVG, no external assets) with the
    fleet summary, failures first, a per-host timeline of the steps drawn as bars, and probe
    latency against the baseline.
  - The step of a task is its C(modelops_step) task variable; without one it is derived from
    the module (C(model_sync) is sync, C(model_activate) activate or rollback,
    C(inference_ready) ready, C(model_probe) probe or baseline, service restarts restart).
  - Host facts C(model_upgrade_context), C(model_upgrade_status), C(model_upgrade_failure)
    and C(model_upgrade_rolled_back) set by the role give the context and the final state.
    An unreachable host ends in state C(unreachable).
  - Secrets never reach the reports - keys named C(api_key) or containing C(password),
    C(passphrase), C(token) or C(secret) are dropped, and results of C(no_log) tasks are
    recorded only as their status.
  - Not a stdout callback; enable it next to any stdout callback with C(callbacks_enabled).
requirements:
  - enable in configuration (C(callbacks_enabled = modelops.fleet.rollout_report))
options:
  report_dir:
    description:
      - Directory that receives one sub-directory per run and the C(latest) link. Created
        when missing. A relative path is relative to the directory C(ansible-playbook) runs in.
    type: path
    default: ./rollout-reports
    env:
      - name: MODELOPS_REPORT_DIR
    ini:
      - section: modelops_rollout_report
        key: report_dir
"""

import datetime
import html
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

from ansible.plugins.callback import CallbackBase

from ansible_collections.modelops.fleet.plugins.module_utils._release import atomic_write

STEP_ORDER = ("baseline", "sync", "verify", "activate", "restart", "ready", "probe", "soak", "rollback", "metrics")
STEP_COLOURS = {
    "sync": "#4e79a7", "verify": "#76b7b2", "activate": "#59a14f", "restart": "#edc948",
    "ready": "#b07aa1", "probe": "#f28e2b", "baseline": "#ff9da7", "rollback": "#e15759",
    "soak": "#d4a6c8", "metrics": "#9c755f", "other": "#bab0ac",
}
STATE_COLOURS = {
    "upgraded": "#59a14f", "frozen": "#76b7b2", "failed": "#e15759", "unreachable": "#7f3c8d",
    "rolled back": "#e15759", "started": "#f28e2b", "not upgraded": "#bab0ac", "ok": "#9c755f",
}
BAD_STATES = ("failed", "unreachable", "started")
# module short name -> step, when the task has no modelops_step variable
ACTION_STEPS = {
    "model_sync": "sync", "model_verify": "verify", "model_activate": "activate",
    "inference_ready": "ready", "model_probe": "probe", "model_metrics": "metrics",
    "systemd": "restart", "systemd_service": "restart", "service": "restart",
}
SKIP_ACTIONS = ("include_role", "include_tasks", "import_role", "import_tasks", "meta")
SECRET_WORDS = ("password", "passphrase", "token", "secret")
FACT_KEYS = ("model_upgrade_context", "model_upgrade_status", "model_upgrade_failure",
             "model_upgrade_rolled_back", "_model_upgrade_from", "_model_upgrade_to",
             "modelops_drift", "modelops_current")
SCHEMA = 1


def is_secret_key(key):
    k = str(key).lower()
    return k == "api_key" or any(w in k for w in SECRET_WORDS)


def scrub(value):
    """A copy of value without secret keys (at any depth); other objects as strings."""
    if isinstance(value, dict):
        return dict((str(k), scrub(v)) for k, v in value.items() if not is_secret_key(k))
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def short_action(action):
    return str(action or "").rsplit(".", 1)[-1]


def _num(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def median(values):
    vals = sorted(v for v in (_num(x) for x in values or []) if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2.0


def _xml_text(value):
    """Text XML 1.0 can carry (control characters removed)."""
    return re.sub(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "", str(value))


class Recorder(object):
    """Collects a run from callback events into a plain dict (independent of Ansible objects,
    so it can be unit tested and serialised)."""

    def __init__(self, now=time.time):
        self.now = now
        self.started = now()
        self.ended = None
        self.playbook = None
        self.plays = []
        self.hosts = {}
        self.order = []
        self.errors = []
        self._starts = {}
        self._summary = None

    # ----------------------------------------------------------------- hosts

    def host(self, name):
        h = self.hosts.get(name)
        if h is None:
            h = {"host": name, "group": None, "groups": [], "policy": None, "wave": None,
                 "model": None, "variant": None, "engine": None, "release": None, "from": None, "to": None,
                 "status": None, "failure": None, "rolled_back": None, "unreachable": False,
                 "steps": [], "probes": [], "bytes_transferred": 0, "bytes_linked": 0,
                 "failed_tasks": [], "facts_seen": False, "_failed_seen": False}
            self.hosts[name] = h
            self.order.append(name)
        return h

    def set_groups(self, name, groups):
        h = self.host(name)
        groups = [g for g in groups if g != "all" and g != "ungrouped"]
        h["groups"] = sorted(set(h["groups"]) | set(groups))
        if h["wave"] is None:
            if "modelops_canary" in groups:
                h["wave"] = "canary"
            elif "modelops_frozen" in groups:
                h["wave"] = "frozen"
        real = [g for g in h["groups"] if not g.startswith("modelops_")]
        if h["group"] is None and real:
            h["group"] = real[0]

    # ----------------------------------------------------------------- events

    def task_start(self, host, task_uuid):
        self._starts[(host, task_uuid)] = self.now()

    def task_result(self, host, task_uuid, task_name, action, step, status, res, no_log=False,
                    play=None, batch_hosts=None):
        """One result. status: ok, changed, failed, skipped, unreachable, ignored."""
        end = self.now()
        start = self._starts.pop((host, task_uuid), end)
        h = self.host(host)
        res = res if isinstance(res, dict) else {}
        if status == "unreachable":
            h["unreachable"] = True
        if not no_log:
            self._facts(h, res.get("ansible_facts"))
        short = short_action(action)
        if step is None:
            step = self._step_from_action(h, short, res, no_log)
        if status == "failed" and step is None and not no_log:
            h["failed_tasks"].append({"task": task_name, "msg": scrub(res.get("msg", ""))})
        if step is None:
            if status == "unreachable":
                h["failed_tasks"].append({"task": task_name, "msg": scrub(res.get("msg", "unreachable"))})
            return
        if status in ("failed", "unreachable"):
            h["_failed_seen"] = True
        entry = {"task": task_name, "action": short, "status": status, "start": start, "end": end}
        if no_log:
            entry["censored"] = True
        elif status in ("failed", "unreachable", "ignored") and res.get("msg"):
            entry["msg"] = scrub(res.get("msg"))
        self._add_step(h, step, entry)
        if no_log or status == "skipped":
            return
        if short == "model_sync" or step == "sync" and "bytes_transferred" in res:
            self._sync(h, res)
        if short == "model_probe" and "probes" in res:
            self._probe(h, step, res, status)
        if short == "model_activate" and isinstance(res.get("ledger_event"), dict):
            ev = res["ledger_event"]
            h.setdefault("activations", []).append(scrub(
                dict((k, ev.get(k)) for k in ("action", "from", "to", "reason", "time"))))

    def _step_from_action(self, h, short, res, no_log):
        step = ACTION_STEPS.get(short)
        if step == "activate":
            ev = res.get("ledger_event") if not no_log else None
            reason = str((ev or {}).get("reason") or "")
            if (ev or {}).get("action") == "rollback" or reason.startswith("rollback") or h["_failed_seen"]:
                step = "rollback"
        elif step == "probe":
            base = res.get("baseline") if isinstance(res.get("baseline"), dict) else {}
            if base.get("action") == "probe_baseline" and res.get("changed"):
                step = "baseline"
        return step

    def _add_step(self, h, step, entry):
        steps = h["steps"]
        last = steps[-1] if steps else None
        if last is not None and last["step"] == step:
            last["tasks"].append(entry)
            last["end"] = max(last["end"], entry["end"])
            last["status"] = worst(last["status"], entry["status"])
            if entry.get("msg") and not last.get("msg"):
                last["msg"] = entry["msg"]
            return
        new = {"step": step, "start": entry["start"], "end": entry["end"], "status": entry["status"],
               "tasks": [entry]}
        if entry.get("msg"):
            new["msg"] = entry["msg"]
        steps.append(new)

    def _facts(self, h, facts):
        if not isinstance(facts, dict):
            return
        ctx = facts.get("model_upgrade_context")
        if isinstance(ctx, dict):
            h["facts_seen"] = True
            for key in ("group", "policy", "wave", "from", "to", "release", "model", "variant", "engine"):
                if ctx.get(key) not in (None, ""):
                    h[key] = scrub(ctx.get(key))
        if "model_upgrade_status" in facts:
            h["facts_seen"] = True
            h["status"] = scrub(facts["model_upgrade_status"])
            if h["status"] == "frozen":
                h["policy"] = h["policy"] or "frozen"
                h["wave"] = h["wave"] or "frozen"
        if facts.get("model_upgrade_failure"):
            h["failure"] = scrub(facts["model_upgrade_failure"]).strip()
        if "model_upgrade_rolled_back" in facts:
            h["rolled_back"] = bool(facts["model_upgrade_rolled_back"])
        # what the role and the frozen play note today, when there is no context yet
        if facts.get("_model_upgrade_from") is not None and h["from"] is None:
            h["from"] = scrub(facts["_model_upgrade_from"]).strip() or None
        if facts.get("_model_upgrade_to") and h["to"] is None:
            h["to"] = scrub(facts["_model_upgrade_to"]).strip()
        if "modelops_current" in facts:
            h["from"] = h["from"] or (scrub(facts["modelops_current"]) if facts["modelops_current"] else None)
            h["to"] = h["to"] or h["from"]
        if "modelops_drift" in facts:
            h["drift"] = bool(facts["modelops_drift"])
        if isinstance(facts.get("model_upgrade_plan"), dict):
            h["facts_seen"] = True
            h["plan"] = scrub(facts["model_upgrade_plan"])
            for key in ("group", "policy", "wave"):
                if h[key] is None and facts["model_upgrade_plan"].get(key):
                    h[key] = scrub(facts["model_upgrade_plan"][key])

    def _sync(self, h, res):
        for key in ("bytes_transferred", "bytes_linked"):
            n = _num(res.get(key))
            if n is not None:
                h[key] += int(n)
        if res.get("release") and not h["release"]:
            h["release"] = scrub(res["release"])
        h.setdefault("syncs", []).append({
            "release": scrub(res.get("release")), "changed": bool(res.get("changed")),
            "bytes_transferred": _num(res.get("bytes_transferred")),
            "bytes_linked": _num(res.get("bytes_linked")),
            "files": len(res["files"]) if isinstance(res.get("files"), list) else None})

    def _probe(self, h, step, res, status):
        base = res.get("baseline") if isinstance(res.get("baseline"), dict) else None
        base_probes = base.get("probes") if base and isinstance(base.get("probes"), dict) else {}
        after_rollback = any(s["step"] == "rollback" for s in h["steps"][:-1])
        run = {"step": "rollback" if after_rollback and step == "probe" else step,
               "suite": scrub(res.get("suite_name")), "passed": bool(res.get("passed")),
               "status": status,
               "latency": scrub(res.get("latency")) if isinstance(res.get("latency"), dict) else None,
               "baseline": None, "probes": []}
        if base:
            run["baseline"] = {"latency": scrub(base.get("latency")), "time": scrub(base.get("time")),
                               "recorded": base.get("action") == "probe_baseline" and step == "baseline"}
        for p in res.get("probes") or []:
            if not isinstance(p, dict):
                continue
            lat = p.get("latencies_ms") or []
            bp = base_probes.get(p.get("name")) if isinstance(base_probes, dict) else None
            run["probes"].append(scrub({
                "name": p.get("name"), "passed": bool(p.get("passed")), "reason": p.get("reason"),
                "kind_failures": p.get("kind_failures") or [], "attempts": p.get("attempts"),
                "passes": p.get("passes"), "latencies_ms": lat, "latency_p50_ms": median(lat),
                "baseline_p50_ms": bp.get("p50_ms") if isinstance(bp, dict) else None,
                "errors": p.get("errors") or [], "similarity": p.get("similarity"),
                "latency_verdict": p.get("latency_verdict") if isinstance(p.get("latency_verdict"), dict) else None}))
        h["probes"].append(run)

    def stats(self, stats):
        """Take the final per-host counts and set_stats data from an AggregateStats."""
        self.ended = self.now()
        counts = {}
        for name in sorted(getattr(stats, "processed", {}) or {}):
            counts[name] = stats.summarize(name)
        self.counts = counts
        custom = getattr(stats, "custom", {}) or {}
        run = custom.get("_run") if isinstance(custom.get("_run"), dict) else {}
        summary = run.get("modelops_rollout")
        if not isinstance(summary, dict):
            for name, data in custom.items():
                if isinstance(data, dict) and isinstance(data.get("modelops_rollout"), dict):
                    summary = data["modelops_rollout"]
                    break
        self._summary = scrub(summary) if isinstance(summary, dict) else None
        for name, c in counts.items():
            if c.get("unreachable"):
                self.host(name)["unreachable"] = True

    # ----------------------------------------------------------------- report

    def report(self):
        ended = self.ended or self.now()
        summary = self._summary or {}
        summary_hosts = summary.get("hosts") if isinstance(summary.get("hosts"), dict) else {}
        counts = getattr(self, "counts", {})
        hosts = []
        for name in self.order:
            h = self.hosts[name]
            relevant = (h["steps"] or h["facts_seen"] or name in summary_hosts or h["unreachable"]
                        or h["status"] is not None)
            if not relevant:
                if h["failed_tasks"]:
                    self.errors.extend(dict(t, host=name) for t in h["failed_tasks"])
                continue
            hosts.append(self._host_report(h, summary_hosts.get(name), counts.get(name)))
        hosts.sort(key=lambda x: (x["state"] not in BAD_STATES and x["state"] != "rolled back",
                                  self.order.index(x["host"])))
        states = {}
        for x in hosts:
            states[x["state"]] = states.get(x["state"], 0) + 1
        run = {
            "schema": SCHEMA, "playbook": self.playbook, "plays": list(self.plays),
            "collection": collection_info(),
            "start": iso(self.started), "end": iso(ended), "duration": round(ended - self.started, 3),
            "summary": {
                "hosts": len(hosts), "states": states,
                "failed": [x["host"] for x in hosts if x["state"] in BAD_STATES or x["state"] == "rolled back"],
                "bytes_transferred": sum(x["bytes_transferred"] for x in hosts),
                "bytes_linked": sum(x["bytes_linked"] for x in hosts),
                "model": summary.get("model"), "releases": summary.get("releases"),
                "halted_by_failure_budget": summary.get("halted_by_failure_budget"),
                "rollout": summary or None,
            },
            "stats": counts,
            "errors": self.errors,
            "hosts": hosts,
        }
        return scrub(run)

    def _host_report(self, h, summary_state, counts):
        state = h["status"]
        rolled_back = h["rolled_back"]
        if rolled_back is None:
            rolled_back = any(s["step"] == "rollback" and s["status"] in ("ok", "changed") for s in h["steps"])
        if h["unreachable"] and state not in ("upgraded", "frozen"):
            state = "unreachable"
        elif state in (None, "started"):
            if summary_state:
                state = str(summary_state)
            elif counts and counts.get("failures"):
                state = "failed"
            elif state is None:
                state = "ok"
        if state and state.startswith("frozen"):
            state = "frozen"
        failure = h["failure"]
        if not failure and state in ("failed", "unreachable", "started"):
            bad = [t for s in h["steps"] for t in s["tasks"] if t["status"] in ("failed", "unreachable")]
            bad += h["failed_tasks"]
            if bad:
                failure = "%s: %s" % (bad[-1]["task"], bad[-1].get("msg") or bad[-1].get("status"))
        if h["wave"] is None and "modelops_rest" in h["groups"]:
            h["wave"] = "rest"
        steps = []
        for s in h["steps"]:
            steps.append({"step": s["step"], "status": s["status"], "start": iso(s["start"]),
                          "end": iso(s["end"]), "duration": round(s["end"] - s["start"], 3),
                          "offset": round(s["start"] - self.started, 3), "msg": s.get("msg"),
                          "tasks": [{"task": t["task"], "action": t["action"], "status": t["status"],
                                     "duration": round(t["end"] - t["start"], 3),
                                     "msg": t.get("msg"), "censored": t.get("censored", False)}
                                    for t in s["tasks"]]})
        out = {
            "host": h["host"], "group": h["group"], "policy": h["policy"], "wave": h["wave"],
            "model": h["model"], "variant": h["variant"], "engine": h["engine"], "release": h["release"],
            "from": h["from"], "to": h["to"], "state": state, "rolled_back": bool(rolled_back),
            "failure": failure, "bytes_transferred": h["bytes_transferred"],
            "bytes_linked": h["bytes_linked"], "steps": steps, "probes": h["probes"],
            "activations": h.get("activations", []), "syncs": h.get("syncs", []),
            "stats": counts,
        }
        if "drift" in h:
            out["drift"] = h["drift"]
        if "plan" in h:
            out["plan"] = h["plan"]
        if steps:
            out["start"] = steps[0]["start"]
            out["end"] = steps[-1]["end"]
            out["duration"] = round(h["steps"][-1]["end"] - h["steps"][0]["start"], 3)
        return out


def worst(a, b):
    rank = {"skipped": 0, "ok": 1, "changed": 2, "ignored": 3, "failed": 4, "unreachable": 5}
    return a if rank.get(a, 1) >= rank.get(b, 1) else b


# --------------------------------------------------------------------------- writers

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


def _e(value):
    return html.escape("" if value is None else str(value), quote=True)


def _bytes(n):
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%d B" % n


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:110px}
.card b{display:block;font-size:22px}.card span{font-size:12px;color:#666}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e2e2e2;padding:5px 7px;text-align:left;vertical-align:top}th{background:#f0f0f0}
.state{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.fail{background:#fdecea;border:1px solid #e15759;border-radius:6px;padding:8px 12px;margin:6px 0;font-size:13px}
.fail b{color:#b0252f}
.why{white-space:pre-wrap;display:block;margin-top:4px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.host{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:8px 0}
.host h3{font-size:14px;margin:0 0 6px}.small{font-size:12px;color:#555}
svg text{font-family:inherit}
"""


def _clip(text, limit=2000):
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + " [...] (full text in report.json)"


def _state_badge(state):
    colour = STATE_COLOURS.get(state, "#666")
    return '<span class="state" style="background:%s">%s</span>' % (_e(colour), _e(state))


def _parse_iso(value):
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def _timeline_svg(h, total):
    width, left, row = 1000, 0, 22
    total = max(total or 0, 0.001)
    bars = []
    for s in h["steps"]:
        x = left + (s["offset"] / total) * width
        w = max((s["duration"] / total) * width, 2)
        colour = STEP_COLOURS.get(s["step"], STEP_COLOURS["other"])
        stroke = ' stroke="#b0252f" stroke-width="2"' if s["status"] in ("failed", "unreachable") else (
            ' fill-opacity="0.3"' if s["status"] == "skipped" else "")
        tip = "%s: %s, %.1f s (%s)" % (s["step"], s["status"], s["duration"], ", ".join(t["task"] for t in s["tasks"]))
        if s.get("msg"):
            tip += " - " + str(s["msg"])[:300]
        bars.append('<rect x="%.1f" y="2" width="%.1f" height="%d" fill="%s"%s><title>%s</title></rect>'
                    % (x, w, row - 4, _e(colour), stroke, _e(tip)))
        if w > 40:
            bars.append('<text x="%.1f" y="%d" font-size="11" fill="#fff">%s</text>' % (x + 3, row - 7, _e(s["step"])))
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="100%%" viewBox="0 0 %d %d" preserveAspectRatio="none" '
            'role="img" aria-label="timeline of %s"><rect x="0" y="0" width="%d" height="%d" fill="#f4f4f4"/>%s</svg>'
            % (width, row, _e(h["host"]), width, row, "".join(bars)))


def _latency_svg(h):
    rows = []
    for run in h["probes"]:
        if not run.get("latency"):
            continue
        label = "%s %s" % ("probe after rollback" if run["step"] == "rollback" else run["step"], run.get("suite") or "")
        cur = run["latency"] or {}
        base = (run.get("baseline") or {}).get("latency") or {}
        rows.append((label, _num(cur.get("p50_ms")), _num(cur.get("p90_ms")),
                     _num(base.get("p50_ms")), _num(base.get("p90_ms")), run["passed"]))
    if not rows:
        return ""
    top = max([v for r in rows for v in r[1:5] if v] + [1])
    scale = 600.0 / top
    parts = []
    y = 4
    for label, p50, p90, b50, b90, passed in rows:
        parts.append('<text x="0" y="%d" font-size="11">%s</text>' % (y + 11, _e(label)))
        for i, (name, val, colour) in enumerate((("p50", p50, "#4e79a7"), ("p90", p90, "#a0cbe8"),
                                                 ("baseline p50", b50, "#9c755f"), ("baseline p90", b90, "#d7b5a6"))):
            if val is None:
                continue
            yy = y + i * 9
            parts.append('<rect x="170" y="%d" width="%.1f" height="8" fill="%s"><title>%s %.0f ms</title></rect>'
                         '<text x="%.1f" y="%d" font-size="9">%s %.0f ms</text>'
                         % (yy, max(val * scale, 1), colour, _e(name), val, 174 + val * scale, yy + 7, _e(name), val))
        y += 40
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="900" height="%d" role="img" '
            'aria-label="probe latency of %s">%s</svg>' % (y, _e(h["host"]), "".join(parts)))


def html_page(report):
    s = report["summary"]
    hosts = report["hosts"]
    total = report.get("duration") or 0
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>Rollout report %s %s</title><style>%s</style></head><body>"
           % (_e(s.get("model") or ""), _e(report.get("start")), CSS)]
    out.append("<h1>Rollout report: %s</h1>" % _e(s.get("model") or report.get("playbook") or "run"))
    coll = report.get("collection") or {}
    out.append('<div class="meta">playbook %s &middot; started %s &middot; %.0f s &middot; releases %s'
               ' &middot; modelops.fleet %s (%s)</div>'
               % (_e(report.get("playbook")), _e(report.get("start")), total,
                  _e(", ".join(str(r) for r in (s.get("releases") or [])) or "-"),
                  _e(coll.get("version") or "?"), "installed" if coll.get("installed") else "source checkout"))
    out.append('<div class="cards" id="summary">')
    out.append('<div class="card"><b>%d</b><span>hosts</span></div>' % s["hosts"])
    for state, n in sorted(s["states"].items(), key=lambda kv: (kv[0] not in BAD_STATES, kv[0])):
        out.append('<div class="card" data-state="%s"><b style="color:%s">%d</b><span>%s</span></div>'
                   % (_e(state), _e(STATE_COLOURS.get(state, "#666")), n, _e(state)))
    out.append('<div class="card"><b>%s</b><span>transferred</span></div>' % _e(_bytes(s["bytes_transferred"])))
    out.append('<div class="card"><b>%s</b><span>hard-linked</span></div>' % _e(_bytes(s["bytes_linked"])))
    if s.get("halted_by_failure_budget"):
        out.append('<div class="card"><b style="color:#e15759">halted</b><span>failure budget spent</span></div>')
    out.append("</div>")
    # state bar
    if hosts:
        x = 0.0
        segments = []
        for state, n in sorted(s["states"].items(), key=lambda kv: (kv[0] not in BAD_STATES, kv[0])):
            w = 1000.0 * n / len(hosts)
            segments.append('<rect x="%.1f" y="0" width="%.1f" height="14" fill="%s"><title>%s: %d</title></rect>'
                            % (x, w, _e(STATE_COLOURS.get(state, "#666")), _e(state), n))
            x += w
        out.append('<svg xmlns="http://www.w3.org/2000/svg" width="100%%" viewBox="0 0 1000 14" '
                   'preserveAspectRatio="none" role="img" aria-label="host states">%s</svg>' % "".join(segments))
    if (s.get("rollout") or {}).get("check_mode"):
        out.append('<div class="fail" style="background:#eef4fb;border-color:#4e79a7"><b style="color:#2b4f7a">'
                   "check mode</b> nothing was changed; the plan per host:<br>%s</div>" % "<br>".join(
                       _e("%s: %s %s -> %s, %s to transfer (%s)" % (
                           h["host"], (h.get("plan") or {}).get("action", "-"), (h.get("plan") or {}).get("from", "-"),
                           (h.get("plan") or {}).get("to", "-"),
                           _bytes((h.get("plan") or {}).get("bytes_to_transfer")), h.get("wave") or "-"))
                       for h in hosts if h.get("plan")))
    bad = [h for h in hosts if h["state"] in BAD_STATES or h.get("failure")]
    if bad or report.get("errors"):
        out.append('<h2 id="failures">Failures</h2>')
        for h in bad:
            out.append('<div class="fail"><b>%s</b> %s <span class="why">%s</span></div>'
                       % (_e(h["host"]), _state_badge(h["state"]),
                          _e(_clip(h.get("failure") or "no reason recorded"))))
        for err in report.get("errors") or []:
            out.append('<div class="fail"><b>%s</b> %s <span class="why">%s</span></div>'
                       % (_e(err.get("host")), _e(err.get("task")), _e(_clip(err.get("msg")))))
    out.append('<h2 id="hosts">Hosts</h2><table><thead><tr><th>host</th><th>group</th><th>policy</th>'
               "<th>engine</th><th>wave</th><th>from</th><th>to</th><th>state</th><th>rolled back</th>"
               "<th>transferred</th><th>duration</th></tr></thead><tbody>")
    for h in hosts:
        out.append('<tr class="host-row" data-host="%s" data-state="%s"><td>%s</td><td>%s</td><td>%s</td>'
                   "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
                   % (_e(h["host"]), _e(h["state"]), _e(h["host"]), _e(h.get("group") or "-"),
                      _e(h.get("policy") or "-"), _e(h.get("engine") or "-"), _e(h.get("wave") or "-"),
                      _e(h.get("from") or "-"),
                      _e(h.get("to") or "-"), _state_badge(h["state"]), "yes" if h.get("rolled_back") else "no",
                      _e(_bytes(h["bytes_transferred"])),
                      _e("%.1f s" % h["duration"] if h.get("duration") is not None else "-")))
    out.append("</tbody></table>")
    out.append('<h2 id="timeline">Timeline</h2><div class="legend">')
    for step in STEP_ORDER:
        out.append('<span><i style="background:%s"></i>%s</span>' % (_e(STEP_COLOURS[step]), _e(step)))
    out.append('</div><div class="small">bars on one time axis for the whole run (%.0f s); hover a bar for its tasks</div>'
               % total)
    ticks = []
    for i in range(5):
        x = 1000.0 * i / 4
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        ticks.append('<line x1="%.1f" y1="0" x2="%.1f" y2="5" stroke="#888"/><text x="%.1f" y="16" font-size="11" '
                     'text-anchor="%s" fill="#555">%.0f s</text>' % (x, x, x, anchor, total * i / 4))
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="100%%" viewBox="0 0 1000 18" '
               'preserveAspectRatio="none" role="img" aria-label="time axis">%s</svg>' % "".join(ticks))
    for h in hosts:
        out.append('<div class="host" data-host="%s"><h3>%s %s <span class="small">%s %s</span></h3>'
                   % (_e(h["host"]), _e(h["host"]), _state_badge(h["state"]), _e(h.get("group") or ""),
                      _e(("%s -> %s" % (h.get("from") or "none", h.get("to") or "none")))))
        if h["steps"]:
            out.append(_timeline_svg(h, total))
            out.append('<div class="small">%s</div>' % _e(" · ".join(
                "%s %s %.1f s" % (st["step"], st["status"], st["duration"]) for st in h["steps"])))
        else:
            out.append('<div class="small">no steps ran on this host</div>')
        lat = _latency_svg(h)
        if lat:
            out.append('<div class="small">probe latency (ms) against the baseline</div>' + lat)
        for run in h["probes"]:
            failed = [p for p in run["probes"] if not p.get("passed")]
            out.append('<div class="small">%s suite %s: %s%s</div>'
                       % (_e(run["step"]), _e(run.get("suite")), "passed" if run["passed"] else "FAILED",
                          _e("; " + "; ".join("%s: %s" % (p.get("name"), p.get("reason")) for p in failed))
                          if failed else ""))
        out.append("</div>")
    if report.get("stats"):
        out.append('<h2 id="recap">Recap</h2><table><thead><tr><th>host</th>%s</tr></thead><tbody>'
                   % "".join("<th>%s</th>" % k for k in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")))
        for name, c in sorted(report["stats"].items()):
            out.append("<tr><td>%s</td>%s</tr>" % (_e(name), "".join(
                "<td>%s</td>" % _e(c.get(k, 0)) for k in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored"))))
        out.append("</tbody></table>")
    out.append('<p class="small">written by modelops.fleet.rollout_report</p></body></html>\n')
    return "".join(out)


def write_reports(report, report_dir, started, playbook):
    """Write report.json, junit.xml and report.html into a new run directory; point
    `latest` at it. Returns the run directory."""
    report_dir = os.path.abspath(os.path.expanduser(report_dir))
    os.makedirs(report_dir, exist_ok=True)
    stamp = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(playbook or "run"))[0]) or "run"
    name = "%s-%s" % (stamp, base)
    run_dir = os.path.join(report_dir, name)
    n = 1
    while True:
        try:
            os.mkdir(run_dir)
            break
        except FileExistsError:
            n += 1
            run_dir = os.path.join(report_dir, "%s-%d" % (name, n))
    atomic_write(os.path.join(run_dir, "report.json"),
                 (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    atomic_write(os.path.join(run_dir, "junit.xml"), junit_xml(report))
    atomic_write(os.path.join(run_dir, "report.html"), html_page(report).encode("utf-8"))
    latest = os.path.join(report_dir, "latest")
    tmp = os.path.join(report_dir, ".latest-%d" % os.getpid())
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.basename(run_dir), tmp)
        if os.path.isdir(latest) and not os.path.islink(latest):
            shutil.rmtree(latest)
        os.replace(tmp, latest)
    except OSError:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if os.path.islink(latest):
            os.unlink(latest)
        elif os.path.isdir(latest):
            shutil.rmtree(latest)
        shutil.copytree(run_dir, latest)
    return run_dir


# --------------------------------------------------------------------------- callback

def _task_step(task):
    try:
        value = task.get_vars().get("modelops_step")
    except Exception:  # pylint: disable=broad-except
        return None
    if value is None:
        return None
    value = str(value)
    return value if value and "{" not in value else None


def collection_info(root=None):
    """Which copy of modelops.fleet ran: its version and root, and whether it is an
    installed collection (a MANIFEST.json, as ansible-galaxy collection install writes)
    or a source checkout (galaxy.yml)."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    info = {"name": "modelops.fleet", "version": None, "path": root, "installed": False}
    try:
        with open(os.path.join(root, "MANIFEST.json")) as f:
            info.update(version=json.load(f)["collection_info"]["version"], installed=True)
        return info
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml")) as f:
            m = re.search(r"^version:\s*['\"]?([^'\"\s]+)", f.read(), re.M)
        info["version"] = m.group(1) if m else None
    except OSError:
        pass
    return info


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "modelops.fleet.rollout_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.recorder = Recorder()
        self.run_dir = None

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _parts(result):
        host = getattr(result, "_host", None) or getattr(result, "host", None)
        task = getattr(result, "_task", None) or getattr(result, "task", None)
        res = getattr(result, "result", None)
        if res is None:
            res = getattr(result, "_result", {})
        return host, task, res

    def _record(self, result, status):
        host, task, res = self._parts(result)
        if host is None or task is None:
            return
        name = host.get_name()
        try:
            self.recorder.set_groups(name, [g.get_name() for g in host.get_groups()])
        except Exception:  # pylint: disable=broad-except
            pass
        action = getattr(task, "action", "") or ""
        if short_action(action) in SKIP_ACTIONS:
            return
        res = res if isinstance(res, dict) else {}
        no_log = bool(res.get("_ansible_no_log")) or (isinstance(getattr(task, "no_log", None), bool) and task.no_log)
        if status == "ok" and res.get("changed"):
            status = "changed"
        self.recorder.task_result(name, getattr(task, "_uuid", id(task)), task.get_name(), action,
                                  _task_step(task), status, res, no_log=no_log)

    # -------------------------------------------------------------- events

    def v2_playbook_on_start(self, playbook):
        self.recorder.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "run")
        self.recorder.started = time.time()

    def v2_playbook_on_play_start(self, play):
        self.recorder.plays.append(play.get_name())
        self._play = play

    def _inventory_vars(self):
        """Policy (model_upgrade_policy) of hosts whose context fact did not say it, from
        the inventory and extra vars, as the play sees them."""
        play = getattr(self, "_play", None)
        if play is None:
            return
        try:
            vm = play.get_variable_manager()
            inventory = vm._inventory
        except Exception:  # pylint: disable=broad-except
            return
        for name, h in self.recorder.hosts.items():
            if h["policy"] is not None and h["model"] is not None and h["engine"] is not None:
                continue
            try:
                host = inventory.get_host(name)
                if host is None:
                    continue
                hvars = vm.get_vars(play=play, host=host, include_hostvars=False)
            except Exception:  # pylint: disable=broad-except
                continue
            for key, var in (("policy", "model_upgrade_policy"), ("model", "model_name"),
                             ("variant", "model_variant"), ("engine", "inference_server_engine")):
                value = hvars.get(var)
                if h[key] is None and isinstance(value, str) and "{" not in value:
                    h[key] = str(value)

    def v2_runner_on_start(self, host, task):
        self.recorder.task_start(host.get_name(), getattr(task, "_uuid", id(task)))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.recorder.stats(stats)
        self._inventory_vars()
        report_dir = self.get_option("report_dir")
        try:
            report = self.recorder.report()
            self.run_dir = write_reports(report, report_dir, self.recorder.started, self.recorder.playbook)
        except (OSError, ValueError, TypeError) as e:
            self._display.warning("modelops.fleet.rollout_report could not write the reports to %s: %s; "
                                  "set MODELOPS_REPORT_DIR (or [modelops_rollout_report] report_dir) to a "
                                  "writable directory" % (report_dir, e))
            return
        self._display.display("rollout report: %s" % os.path.join(self.run_dir, "report.html"))
