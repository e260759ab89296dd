# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The suite's profile from its JUnit files: each stage's tests and seconds, and the slowest
tests with where their time went (set-up, call, tear-down, and the commands the suite's
runners counted: tests/conftest.py writes them as properties of each case).

    python tests/fleet/suite_profile.py tests/output/*-junit.xml [--top 20]

scripts/test.sh prints it at the end of every run, so that the next slow test is seen."""

from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET

import suite_timing  # tests/fleet, beside this file


def read_cases(path):
    """[{stage, test, seconds, setup, call, teardown, time_in, outcome}] of one JUnit file;
    the stage is the file's name without '-junit.xml'."""
    stage = os.path.basename(path)
    for suffix in ("-junit.xml", ".xml"):
        if stage.endswith(suffix):
            stage = stage[:-len(suffix)]
            break
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        props = dict((p.get("name"), p.get("value")) for p in tc.iter("property"))
        outcome = "passed"
        for child, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            if tc.find(child) is not None:
                outcome = name
                break
        classname = tc.get("classname", "")
        module = classname.rsplit(".", 1)[-1] if classname else ""
        cases.append({
            "stage": stage,
            "test": "%s::%s" % (module, tc.get("name")) if module else tc.get("name"),
            "seconds": float(tc.get("time") or 0.0),
            "setup": _float(props.get("setup_s")),
            "call": _float(props.get("call_s")),
            "teardown": _float(props.get("teardown_s")),
            "time_in": props.get("time_in", ""),
            "outcome": outcome,
        })
    return cases


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _s(value):
    return "-" if value is None else "%.1f" % value


def profile(paths, top=20, kinds_shown=6):
    """The profile as text: per stage (with the `kinds_shown` commands it spent the most
    seconds in), then the `top` slowest tests."""
    cases = []
    missing = []
    for path in paths:
        if os.path.exists(path):
            cases.extend(read_cases(path))
        else:
            missing.append(path)
    lines = []
    stages = {}
    for c in cases:
        st = stages.setdefault(c["stage"], {"n": 0, "seconds": 0.0, "setup": 0.0, "not_passed": 0, "kinds": {}})
        st["n"] += 1
        st["seconds"] += c["seconds"]
        st["setup"] += c["setup"] or 0.0
        st["not_passed"] += c["outcome"] != "passed"
        for kind, n, secs in suite_timing.parse(c["time_in"]):
            k = st["kinds"].setdefault(kind, [0, 0.0])
            k[0] += n
            k[1] += secs
    lines.append("suite profile: %d tests in %d JUnit files%s" % (
        len(cases), len(paths) - len(missing), "" if not missing else " (not found: %s)" % ", ".join(missing)))
    for name, st in stages.items():
        lines.append("  %-12s %4d tests %8.1f s (set-up %.1f s)%s" % (
            name, st["n"], st["seconds"], st["setup"],
            "" if not st["not_passed"] else ", %d not passed" % st["not_passed"]))
        kinds = sorted(st["kinds"].items(), key=lambda kv: -kv[1][1])[:kinds_shown]
        if kinds:
            lines.append("  %12s time in: %s" % ("", "; ".join(
                "%s %dx %.1f s (%.2f s each)" % (k, n, secs, secs / n) for k, (n, secs) in kinds)))
    slow = sorted(cases, key=lambda c: -c["seconds"])[:top]
    lines.append("the %d slowest tests (seconds: all = set-up + call + tear-down; time in: the "
                 "commands it ran, slowest first):" % len(slow))
    lines.append("  %7s %7s %7s %7s  %s" % ("all", "setup", "call", "tdown", "stage / test / time in"))
    for c in slow:
        lines.append("  %7.1f %7s %7s %7s  %s %s%s" % (
            c["seconds"], _s(c["setup"]), _s(c["call"]), _s(c["teardown"]), c["stage"], c["test"],
            "" if c["outcome"] == "passed" else " [%s]" % c["outcome"]))
        if c["time_in"]:
            lines.append("  %31s  time in: %s" % ("", c["time_in"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("junit", nargs="+", help="JUnit XML files (pytest --junitxml)")
    p.add_argument("--top", type=int, default=20, help="how many of the slowest tests to show")
    args = p.parse_args(argv)
    sys.stdout.write(profile(args.junit, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
