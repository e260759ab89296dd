# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The suite's profile (tests/fleet/suite_profile.py) from JUnit files that a real pytest run
wrote with the suites' hooks (tests/conftest.py), and the fleet code's view of a shared
fleet (tests/fleet/fleet.py: a stage asking for some of a fleet's hosts gets an inventory
overlay of those hosts only)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))

import fleet  # noqa: E402  pylint: disable=wrong-import-position
import suite_profile  # noqa: E402  pylint: disable=wrong-import-position

SUITE = '''
import time
import pytest
import suite_timing

@pytest.fixture(scope="module")
def bootstrapped():
    time.sleep(0.3)

def test_upgrade(bootstrapped):
    with suite_timing.spent("upgrade.yml"):
        time.sleep(0.2)
    with suite_timing.spent("ansible -m shell"):
        pass

def test_quick():
    pass

def test_broken():
    assert False
'''

# A conftest that takes the suites' hooks from tests/conftest.py, as every suite under tests/ does.
CONFTEST = '''
import importlib.util
_spec = importlib.util.spec_from_file_location("modelops_tests_conftest", %r)
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
pytest_runtest_makereport = _mod.pytest_runtest_makereport
pytest_terminal_summary = _mod.pytest_terminal_summary
''' % os.path.join(REPO, "tests", "conftest.py")


def test_profile_names_the_slowest_tests_and_where_their_time_went(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_demo.py").write_text(SUITE)
    junit = tmp_path / "demo-junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
                           "--junitxml", str(junit)], cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 1, proc.stdout    # test_broken fails, the others pass
    cases = dict((c["test"].split("::")[-1], c) for c in suite_profile.read_cases(str(junit)))
    assert set(cases) == {"test_upgrade", "test_quick", "test_broken"}
    up = cases["test_upgrade"]
    assert up["stage"] == "demo"
    # the module fixture's sleep is the test's set-up; the counted command is in its call
    assert up["setup"] >= 0.3 and up["call"] >= 0.2
    assert up["time_in"].startswith("upgrade.yml 1x 0.")
    assert "ansible -m shell 1x" in up["time_in"]
    # a test that ran no command has none charged to it (the counts are per test)
    assert cases["test_quick"]["time_in"] == ""
    assert cases["test_broken"]["outcome"] == "failed"

    text = suite_profile.profile([str(junit), str(tmp_path / "missing-junit.xml")], top=2)
    lines = text.splitlines()
    assert "3 tests in 1 JUnit files" in lines[0] and "missing-junit.xml" in lines[0]
    assert "1 not passed" in lines[1]
    # the stage's seconds by command, summed over its tests
    assert lines[2].split("time in: ")[1].startswith("upgrade.yml 1x 0.")
    assert "ansible -m shell 1x" in lines[2]
    slowest = [line for line in lines if "demo test_demo::" in line]
    assert len(slowest) == 2 and "test_upgrade" in slowest[0]
    assert "time in: upgrade.yml 1x" in text


def test_a_stage_on_part_of_a_shared_fleet_gets_an_overlay_of_its_hosts_only(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet, "STATE_ROOT", str(tmp_path))
    os.makedirs(fleet.state_dir("test"))
    state = {"key": "/k", "hosts": dict(
        (n, {"name": n, "ssh_port": p, "api_port": p + 6000, "connection": "ssh", "groups": ["g"]})
        for n, p in (("gpu-01", 23201), ("gpu-02", 23202), ("crit-01", 23221)))}
    whole = fleet.write_inventory("test", state)
    part = fleet.write_inventory("test", state, only={"gpu-01", "gpu-02"})
    assert whole != part
    with open(whole) as f:
        assert set(yaml.safe_load(f)["all"]["hosts"]) == {"gpu-01", "gpu-02", "crit-01"}
    with open(part) as f:
        hosts = yaml.safe_load(f)["all"]["hosts"]
    assert set(hosts) == {"gpu-01", "gpu-02"}
    assert hosts["gpu-02"]["ansible_port"] == 23202
