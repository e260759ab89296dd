# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_switch run as Ansible runs it, on real release directories, in the cases that fail or
plan before the engine is touched (there is no systemd here). The restart, the wait and the
switch back run against real systemd hosts: tests/integration/test_serve.py,
tests/integration/test_upgrade*.py and the adversarial suite."""

from __future__ import annotations

import os

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from test_model_activate import MODEL, activate, ledger, links, make_release

UNIT = "modelops-inference.service"


def switch(module_runner, root, version=None, variant="gguf-q4_1", **extra):
    args = dict(model_root=str(root), model_name=MODEL, unit=UNIT, served_name=MODEL, timeout=5)
    if version is not None:
        args.update(version=version, variant=variant)
    args.update(extra)
    return module_runner("model_switch", **args)


def test_check_mode_reports_the_switch_and_the_restart_and_changes_nothing(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    make_release(root, "2502")
    assert activate(module_runner, root, "2501").get("failed") is not True
    before = ledger(root)
    # It does not wait for the host lock another process holds.
    with HostLock(str(root), 0, purpose="another upgrade"):
        res = switch(module_runner, root, "2502", lock_timeout=0, _ansible_check_mode=True, _ansible_diff=True)
    assert res.get("failed") is not True, res
    assert res["changed"] is True and res["switched"] is True and res["restarted"] is True
    assert res["restart_reason"] == "current would move from 2501/gguf-q4_1 to 2502/gguf-q4_1"
    assert res["current"] == "2502/gguf-q4_1" and res["previous"] == "2501/gguf-q4_1"
    assert res["diff"]["before"]["current"] == "2501/gguf-q4_1"
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": None}
    assert ledger(root) == before


def test_nothing_to_serve_names_the_missing_link(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    res = switch(module_runner, root)
    assert res["failed"] is True
    assert res["msg"] == ("nothing to serve: %s does not exist; set version and variant to activate a release"
                          % (root / MODEL / "current"))
    assert res["restarted"] is False


def test_version_needs_its_variant(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    res = module_runner("model_switch", model_root=str(root), model_name=MODEL, unit=UNIT,
                        served_name=MODEL, version="2501")
    assert res["failed"] is True
    assert "version" in res["msg"] and "variant" in res["msg"]
    assert links(root) == {"current": None, "previous": None}


def test_release_not_installed_fails_before_the_engine_is_touched(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    assert activate(module_runner, root, "2501").get("failed") is not True
    res = switch(module_runner, root, "2509")
    assert res["failed"] is True
    assert "release %s 2509/gguf-q4_1" % MODEL in res["msg"] and "is not installed on this host" in res["msg"]
    assert "installed: 2501/gguf-q4_1" in res["msg"]
    assert res["restarted"] is False and res["switched"] is False
    assert links(root)["current"] == "2501/gguf-q4_1"


def test_tampered_release_is_refused_and_current_stays(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    bad = make_release(root, "2502")
    assert activate(module_runner, root, "2501").get("failed") is not True
    os.chmod(bad, 0o755)
    os.chmod(bad / "model.gguf", 0o644)
    (bad / "model.gguf").write_bytes(b"GGUF" + b"x" * 100)
    res = switch(module_runner, root, "2502")
    assert res["failed"] is True
    assert "refusing to activate %s 2502/gguf-q4_1" % MODEL in res["msg"] and "model.gguf" in res["msg"]
    assert res["restarted"] is False
    assert links(root)["current"] == "2501/gguf-q4_1"
    assert [e["to"] for e in ledger(root) if e["action"] == "activate"] == ["2501/gguf-q4_1"]
