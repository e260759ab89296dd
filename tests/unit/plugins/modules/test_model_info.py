# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_info run as Ansible runs it, on a tree that model_activate manages."""

from __future__ import annotations

import json
import os
import re

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    build_manifest,
    canonical_json,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def make_release(root, model, version, variant, size, sequence):
    rdir = root / model / version / variant
    rdir.mkdir(parents=True)
    (rdir / "model.bin").write_bytes(b"m" * size)
    (rdir / "config.json").write_bytes(b"{}")
    meta = {"model_name": model, "version": version, "variant": variant, "sequence": sequence,
            "expires": "2099-01-01T00:00:00Z"}
    (rdir / "manifest.json").write_bytes(canonical_json(build_manifest(str(rdir), meta)))
    for name in os.listdir(rdir):
        os.chmod(rdir / name, 0o444)
    os.chmod(rdir, 0o555)
    return rdir


def tree(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "qwen3-4b-instruct", "2504", "gguf-q4_k_m", 1000, 11)
    make_release(root, "qwen3-4b-instruct", "2507", "gguf-q4_k_m", 2000, 12)
    make_release(root, "smollm2-135m-instruct", "2411", "gguf-q4_1", 300, 3)
    for version in ("2504", "2507"):
        res = module_runner("model_activate", model_root=str(root), model_name="qwen3-4b-instruct",
                            version=version, variant="gguf-q4_k_m", reason="deploy %s" % version)
        assert res.get("failed") is not True, res
    return root


def test_reports_models_links_disk_and_ledger(module_runner, tmp_path):
    root = tree(module_runner, tmp_path)
    res = module_runner("model_info", model_root=str(root))
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    assert res["model_root"] == str(root)
    assert [m["name"] for m in res["models"]] == ["qwen3-4b-instruct", "smollm2-135m-instruct"]
    qwen, smol = res["models"]
    assert (qwen["current"], qwen["previous"]) == ("2507/gguf-q4_k_m", "2504/gguf-q4_k_m")
    assert (smol["current"], smol["previous"]) == (None, None)
    assert [(r["version"], r["variant"], r["bytes"], r["files"], r["sequence"]) for r in qwen["releases"]] == [
        ("2504", "gguf-q4_k_m", 1002, 2, 11), ("2507", "gguf-q4_k_m", 2002, 2, 12)]
    assert all(ISO_Z.match(r["installed"]) for r in qwen["releases"])
    assert qwen["bytes"] == 3004 and smol["bytes"] == 302
    disk = res["disk"]
    assert set(disk) == {"total", "free", "used"}
    assert disk["total"] > 0 and 0 <= disk["free"] <= disk["total"] and disk["used"] <= disk["total"]
    assert [(e["action"], e["to"], e["reason"]) for e in res["ledger"]] == [
        ("activate", "2504/gguf-q4_k_m", "deploy 2504"), ("activate", "2507/gguf-q4_k_m", "deploy 2507")]
    assert res["lock"] is None


def test_filters_and_limits(module_runner, tmp_path):
    root = tree(module_runner, tmp_path)
    res = module_runner("model_info", model_root=str(root), model_name="smollm2-135m-instruct",
                        ledger_lines=5)
    assert [m["name"] for m in res["models"]] == ["smollm2-135m-instruct"]
    assert res["ledger"] == []  # its ledger events only
    res = module_runner("model_info", model_root=str(root), model_name="qwen3-4b-instruct",
                        ledger_lines=1)
    assert [e["to"] for e in res["ledger"]] == ["2507/gguf-q4_k_m"]
    res = module_runner("model_info", model_root=str(root), model_name="absent-model")
    assert res.get("failed") is not True and res["models"] == []
    assert "not installed" in res["msg"]


def test_check_mode_and_the_lock_holder(module_runner, tmp_path):
    root = tree(module_runner, tmp_path)
    before = sorted(os.listdir(root / ".modelops"))
    with HostLock(str(root), timeout=5, purpose="model_sync qwen3-4b-instruct 2510/gguf-q4_k_m"):
        res = module_runner("model_info", model_root=str(root), _ansible_check_mode=True)
    assert res.get("failed") is not True, res
    assert res["lock"]["pid"] == os.getpid()
    assert res["lock"]["purpose"] == "model_sync qwen3-4b-instruct 2510/gguf-q4_k_m"
    assert len(res["models"]) == 2
    assert sorted(os.listdir(root / ".modelops")) == before


def test_missing_model_root_is_not_an_error(module_runner, tmp_path):
    res = module_runner("model_info", model_root=str(tmp_path / "nowhere" / "models"))
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    assert res["models"] == [] and res["ledger"] == [] and res["lock"] is None
    assert "does not exist" in res["msg"]
    assert res["disk"]["total"] > 0
    assert not (tmp_path / "nowhere").exists()


def test_corrupt_ledger_is_reported_not_touched(module_runner, tmp_path):
    root = tree(module_runner, tmp_path)
    state = root / ".modelops" / "state.json"
    state.write_bytes(b"garbage")
    res = module_runner("model_info", model_root=str(root))
    assert res.get("failed") is not True, res
    assert res["ledger"] == []
    assert "corrupt" in json.dumps(res.get("warnings", []))
    assert state.read_bytes() == b"garbage"
    assert not [n for n in os.listdir(root / ".modelops") if "corrupt" in n]


def _installed_engine(tmp_path):
    """An engine installed as a role would install it, and the engine_install that says so."""
    import grp
    import hashlib
    import pwd
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    etc = tmp_path / "etc"
    etc.mkdir()
    files = []
    for name, content, mode in (("llama-server", b"\x7fELF binary", 0o755), ("engine.service", b"[Unit]\n", 0o644),
                                ("engine.env", b"LLAMA_API_KEY=k\n", 0o600)):
        (etc / name).write_bytes(content)
        os.chmod(etc / name, mode)
        files.append({"path": str(etc / name), "sha256": hashlib.sha256(content).hexdigest(),
                      "mode": "%04o" % mode, "owner": owner, "group": group})
    return etc, {"user": owner, "directories": [str(etc)], "executables": [str(etc / "llama-server")],
                 "files": files}


def test_engine_installed_as_the_role_would_install_it_has_no_drift(module_runner, tmp_path):
    dummy, want = _installed_engine(tmp_path)
    res = module_runner("model_info", model_root=str(tmp_path / "models"), engine_install=want)
    assert res.get("failed") is not True, res
    assert res["engine_drift"] == []
    # without engine_install there is nothing to compare
    assert "engine_drift" not in module_runner("model_info", model_root=str(tmp_path / "models"))


def test_engine_drift_names_each_difference(module_runner, tmp_path):
    etc, want = _installed_engine(tmp_path)
    (etc / "engine.service").write_bytes(b"[Unit]\nedited by hand\n")
    os.chmod(etc / "engine.env", 0o644)
    os.unlink(etc / "llama-server")
    want["directories"].append(str(tmp_path / "state"))
    want["user"] = "no-such-user-modelops"
    res = module_runner("model_info", model_root=str(tmp_path / "models"), engine_install=want)
    assert res.get("failed") is not True, res
    assert sorted(res["engine_drift"]) == sorted([
        "system user no-such-user-modelops does not exist",
        "directory %s is missing" % (tmp_path / "state"),
        "%s is missing" % (etc / "llama-server"),
        "%s: its content differs from what the role installs" % (etc / "engine.service"),
        "%s: mode 0644, not 0600" % (etc / "engine.env"),
        "%s is not an executable file" % (etc / "llama-server"),
    ])
    # read-only: the host is left as it was
    assert (etc / "engine.service").read_bytes() == b"[Unit]\nedited by hand\n"


def test_engine_file_with_another_owner_is_drift(module_runner, tmp_path):
    etc, want = _installed_engine(tmp_path)
    want["files"][1]["owner"] = "no-such-owner"
    res = module_runner("model_info", model_root=str(tmp_path / "models"), engine_install=want)
    assert res["engine_drift"] == ["%s: owned by %s:%s, not no-such-owner:%s" % (
        etc / "engine.service", want["files"][0]["owner"], want["files"][0]["group"], want["files"][0]["group"])]
