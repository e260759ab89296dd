# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Before and after, side by side: two results files of bench/orchestration_bench.py (the same
benchmark run on two commits, one after the other on the same machine) as one table, written
to the "orchestration-compare" section of docs/performance.md.

    python bench/orchestration_compare.py BEFORE.json AFTER.json --before-label 51d8abd \
        --after-label HEAD [--doc docs/performance.md] [--section NAME --title T --intro TEXT]

Each comparison has its own section (--section, default "orchestration-compare", the
model_switch one), so that a later one does not overwrite an earlier one.

The switch, the restart and the wait were three steps before model_switch (activate,
restart with the role's handlers, ready) and are one after it (restart): the per-host time
compared is their sum on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  pylint: disable=wrong-import-position

SWITCH_STEPS = ("activate", "restart", "ready")
REST_PLAY = "The rest, in batches, within the failure budget"


def mm(s, unit="s"):
    """'median (min–max)' of a summary dict."""
    if not s:
        return "—"
    return "%.2f %s (%.2f–%.2f)" % (s["median"], unit, s["min"], s["max"])


def switch_time(res, host):
    """Summary of the per-host time of the switch+restart+wait steps over the rounds."""
    per_round = []
    for r in res["rounds"]:
        steps = ((r.get("rollout") or {}).get("host_steps") or {}).get(host)
        if steps:
            per_round.append(sum(steps.get(k, 0.0) for k in SWITCH_STEPS))
    if not per_round:
        return None
    per_round.sort()
    n = len(per_round)
    median = per_round[n // 2] if n % 2 else (per_round[n // 2 - 1] + per_round[n // 2]) / 2
    return {"median": median, "min": per_round[0], "max": per_round[-1], "n": n}


def _steps(spans, names=("sync", "restart", "metrics")):
    """The no-op's per-host module steps added up, as a summary dict (median, min and max each
    the sum of the steps' own); None when none of them ran."""
    found = [spans[n] for n in names if spans.get(n)]
    if not found:
        return None
    return dict((k, sum(f[k] for f in found)) for k in ("median", "min", "max"))


def rows(before, after):
    b, a = before["summary"], after["summary"]
    out = [
        ("No-op `upgrade.yml`, 6 hosts", mm(b["noop"]["noop_wall_s"]), mm(a["noop"]["noop_wall_s"])),
        ("`ansible all -m ping`, same hosts", mm(b["noop"]["ping_wall_s"]), mm(a["noop"]["ping_wall_s"])),
        ("No-op / ping", "%.2f ×" % b["noop"]["ratio"], "%.2f ×" % a["noop"]["ratio"]),
        ("Tasks per upgraded host in the no-op (gpu-02)", str(b["noop"]["tasks_per_host"].get("gpu-02")),
         str(a["noop"]["tasks_per_host"].get("gpu-02"))),
        ("No-op: configure step (the engine's installation)", mm(b["noop"]["spans"].get("configure")),
         mm(a["noop"]["spans"].get("configure"))),
        ("No-op: sync, switch and metrics steps (a module call each per host)", mm(_steps(b["noop"]["spans"])),
         mm(_steps(a["noop"]["spans"]))),
        ("No-op: per-host tasks other than the steps", mm(b["noop"]["spans"].get("other")),
         mm(a["noop"]["spans"].get("other"))),
        ("Canary rollout, wall time", mm(b["rollout"]["wall_s"]), mm(a["rollout"]["wall_s"])),
        ("Canary rollout: configure step", mm(b["rollout"]["spans"].get("configure")),
         mm(a["rollout"]["spans"].get("configure"))),
    ]
    for play in ("Canaries", REST_PLAY):
        if play in b["rollout"].get("plays", {}) and play in a["rollout"].get("plays", {}):
            out.append(("Canary rollout: the play %s" % play, mm(b["rollout"]["plays"][play]), mm(a["rollout"]["plays"][play])))
    for play, d in sorted((a["rollout"].get("host_done") or {}).items()):
        for h in sorted(d):
            bd = ((b["rollout"].get("host_done") or {}).get(play) or {}).get(h)
            out.append(("%s: done, from the start of the play %s" % (h, play), mm(bd), mm(d[h])))
    if b["noop"].get("floor_wall_s") or a["noop"].get("floor_wall_s"):
        out.insert(3, ("Floor of a no-op (`bench/noop_floor.yml`), same hosts", mm(b["noop"].get("floor_wall_s")),
                       mm(a["noop"].get("floor_wall_s"))))
    hosts = sorted(h for h, d in a["downtime"].items() if d.get("wave") != "frozen")
    for h in hosts:
        out.append(("%s: switch + restart + ready, per host (%s)" % (h, a["downtime"][h]["wave"]),
                    mm(switch_time(before, h)), mm(switch_time(after, h))))
    for h in hosts:
        db, da = b["downtime"].get(h, {}), a["downtime"][h]
        out.append(("%s: downtime (longest failed-completion gap) / engine start" % h,
                    "%s / %.2f s" % (mm(db.get("completion")), db.get("start_health_s", float("nan"))),
                    "%s / %.2f s" % (mm(da.get("completion")), da.get("start_health_s", float("nan")))))
    crit = [h for h, d in a["downtime"].items() if d.get("wave") == "frozen"]
    for h in crit:
        out.append(("%s (frozen, the control): longest gap" % h, mm(b["downtime"].get(h, {}).get("completion")),
                    mm(a["downtime"][h].get("completion"))))
    return out


SWITCH_INTRO = ("Before, one host's switch was three steps with controller round trips between them "
                "(`model_activate`, the `inference_server` role with its restart handler, an `inference_ready` "
                "gate); after, it is one `model_switch` call. The per-host rows add the three steps before and "
                "take the one after.")


def section(before, after, blabel, alabel, name="orchestration-compare",
            title="Orchestration before and after model_switch", intro=SWITCH_INTRO,
            files=("BEFORE.json", "AFTER.json")):
    m = after["machine"]
    begin, end = _common.markers(name)
    lines = [begin, "## " + title, "",
             "_Generated by `bench/orchestration_compare.py`; do not edit by hand._", "",
             "From two runs of `bench/orchestration.sh` "
             "(%d and %d rounds), one after the other on the same machine: %s before (%s to %s) and %s "
             "after (%s to %s). Machine: %s, %d usable CPUs, %.1f GiB, %s, %s. Medians with min–max over "
             "the rounds." % (
                 len(before["rounds"]), len(after["rounds"]), blabel, before["started"], before["finished"],
                 alabel, after["started"], after["finished"], m["cpu_model"], m["usable_cpus"], m["ram_gib"],
                 m["ansible_core"], m["openssh"]),
             "", intro,
             "", "| Measurement | %s (before) | %s (after) |" % (blabel, alabel), "|---|---|---|"]
    for row, bv, av in rows(before, after):
        lines.append("| %s | %s | %s |" % (row, bv, av))
    lines += ["", "Results files: `%s` and `%s`." % files, end]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--before-label", default="before")
    ap.add_argument("--after-label", default="after")
    ap.add_argument("--doc", default=os.path.join(_common.REPO, "docs", "performance.md"))
    ap.add_argument("--section", default="orchestration-compare", help="the doc section's marker name")
    ap.add_argument("--title", default="Orchestration before and after model_switch")
    ap.add_argument("--intro", default=SWITCH_INTRO, help="what changed between the two runs")
    ap.add_argument("--files", nargs=2, metavar=("BEFORE_FILE", "AFTER_FILE"),
                    help="the results files as the doc names them (default: the two arguments)")
    args = ap.parse_args()
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    text = section(before, after, args.before_label, args.after_label, args.section, args.title, args.intro,
                   tuple(args.files or (args.before, args.after)))
    begin, end = _common.markers(args.section)
    _common.update_doc(args.doc, text, begin, end)
    print(text)


if __name__ == "__main__":
    main()
