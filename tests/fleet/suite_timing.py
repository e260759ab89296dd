# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a test's time goes: the suites' runners (ansible-playbook, ansible, fleet.py) count
the seconds of each command they run for the test that is running, and tests/conftest.py
writes them into the test's JUnit case as properties, beside its set-up, call and
tear-down seconds. tests/fleet/suite_profile.py reads them back at the end of a run.

The fleet fixtures also say here, in one line per stage, which fleet they used and how
long its set-up took (printed at the end of the pytest run)."""

from __future__ import annotations

import contextlib
import re
import time

# kind -> [count, seconds] for the test running now (cleared when its report is written)
_SPENT = {}
# one line per fleet a stage used (printed in the terminal summary)
FLEET_LINES = []


@contextlib.contextmanager
def spent(kind):
    """Count the seconds of the block against `kind` (e.g. 'upgrade.yml') for this test."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        entry = _SPENT.setdefault(kind, [0, 0.0])
        entry[0] += 1
        entry[1] += time.monotonic() - t0


def take():
    """What the running test spent, as 'kind Nx S s' parts, slowest first; then forget it."""
    parts = sorted(_SPENT.items(), key=lambda kv: -kv[1][1])
    _SPENT.clear()
    return "; ".join("%s %dx %.1f s" % (kind, n, s) for kind, (n, s) in parts)


def parse(text):
    """take()'s text back: 'upgrade.yml 2x 30.1 s; ansible -m shell 3x 4.0 s' ->
    [('upgrade.yml', 2, 30.1), ('ansible -m shell', 3, 4.0)]"""
    out = []
    for part in filter(None, (text or "").split("; ")):
        m = re.match(r"^(.*) (\d+)x ([\d.]+) s$", part)
        if m:
            out.append((m.group(1), int(m.group(2)), float(m.group(3))))
    return out


def command_kind(cmd, args):
    """A short name for a command a runner started: the playbook's file name for
    ansible-playbook, the module for ansible, the sub-command for fleet.py."""
    args = [str(a) for a in args]
    if cmd.endswith("ansible-playbook"):
        for a in args:
            if a.endswith((".yml", ".yaml")) or a.startswith("modelops.fleet."):
                return a.rsplit("/", 1)[-1]
        return "ansible-playbook"
    if cmd.endswith("ansible"):
        if "-m" in args and args.index("-m") + 1 < len(args):
            return "ansible -m %s" % args[args.index("-m") + 1].rsplit(".", 1)[-1]
        return "ansible"
    return " ".join([cmd.rsplit("/", 1)[-1]] + args[:1])


def fleet_line(stage, name, state, seconds):
    """Record the stage's fleet: its name, hosts (created now or reused), set-up seconds."""
    hosts = sorted(state.get("hosts", {}))
    created = state.get("created")
    how = "" if created is None else ", %d created, %d reused" % (len(created), len(hosts) - len(created))
    FLEET_LINES.append("%s: fleet %r (%d hosts: %s%s), up in %.1f s" % (
        stage, name, len(hosts), " ".join(hosts), how, seconds))
