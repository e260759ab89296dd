# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every suite's JUnit cases carry where their time went: the seconds of set-up (module and
session fixtures land in the first test that needs them), call and tear-down, and the
commands the suite's runners counted (tests/fleet/suite_timing.py). scripts/test.sh prints
the suite's profile from them at the end of a run (tests/fleet/suite_profile.py). The fleet
fixtures' one-line account of their fleet is printed at the end of each pytest run."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fleet"))
import suite_timing  # noqa: E402  pylint: disable=wrong-import-position

_PHASES = pytest.StashKey[dict]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    phases = item.stash.setdefault(_PHASES, {})
    phases[rep.when] = rep.duration
    if rep.when == "teardown":
        for when in ("setup", "call", "teardown"):
            rep.user_properties.append(("%s_s" % when, "%.2f" % phases.get(when, 0.0)))
        spent = suite_timing.take()
        if spent:
            rep.user_properties.append(("time_in", spent))


def pytest_terminal_summary(terminalreporter):
    for line in suite_timing.FLEET_LINES:
        terminalreporter.write_line("[fleet] %s" % line)
