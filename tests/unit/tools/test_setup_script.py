# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/setup.sh sourced from an interactive shell, as README's fleet section says to:
the shell gets the environment and keeps its own options (a failing command afterwards
must not close the user's terminal), and a failed set-up leaves the shell unchanged.

Runs the real script; it finds the venv and packages the suite's own set-up made."""

from __future__ import annotations

import os
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SETUP = os.path.join(REPO, "scripts", "setup.sh")

pytestmark = pytest.mark.skipif(not os.environ.get("VIRTUAL_ENV"), reason="needs the suite's venv (scripts/setup.sh)")


def interactive(script, **env):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run(["bash", "--norc", "-i", "-c", script], cwd="/", env=e, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, universal_newlines=True,
                          check=False)


def test_sourcing_keeps_the_shells_options_and_sets_the_environment():
    r = interactive('source %s; echo "rc=$? opts=$- pwd=$PWD cfg=$ANSIBLE_CONFIG"; false; echo still-open' % SETUP,
                    ANSIBLE_CONFIG="")
    assert "still-open" in r.stdout, (r.stdout, r.stderr[-2000:])
    line = [x for x in r.stdout.splitlines() if x.startswith("rc=")][0]
    assert line.startswith("rc=0 ") and "e" not in line.split("opts=")[1].split()[0], line
    assert "pwd=%s " % REPO in line and "cfg=%s" % os.path.join(REPO, "ansible.cfg") in line, line


def test_a_failed_set_up_returns_non_zero_and_leaves_the_shell_as_it_was():
    r = interactive('source %s; echo "rc=$? opts=$- cfg=[$ANSIBLE_CONFIG]"; false; echo still-open' % SETUP,
                    PYTHON="/nonexistent/python3", ANSIBLE_CONFIG="")
    assert "still-open" in r.stdout, (r.stdout, r.stderr[-2000:])
    line = [x for x in r.stdout.splitlines() if x.startswith("rc=")][0]
    assert line.startswith("rc=1 ") and "cfg=[]" in line and "e" not in line.split("opts=")[1].split()[0], line
    assert "this shell is unchanged" in r.stderr
