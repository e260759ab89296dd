# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_activate run as Ansible runs it, on real release directories."""

from __future__ import annotations

import json
import os
import time

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    build_manifest,
    canonical_json,
)

MODEL = "smollm2-135m-instruct"


def make_release(root, version, variant="gguf-q4_1", model=MODEL, sequence=None, mtime=None):
    """An installed release as model_sync leaves it: files, manifest.json, read-only."""
    rdir = root / model / version / variant
    (rdir / "tokenizer").mkdir(parents=True)
    (rdir / "model.gguf").write_bytes(b"GGUF" + version.encode() * 5000)
    (rdir / "tokenizer" / "tokenizer.json").write_bytes(b'{"v": "%s"}' % version.encode())
    meta = {"model_name": model, "version": version, "variant": variant,
            "sequence": sequence if sequence is not None else int(version),
            "expires": "2099-01-01T00:00:00Z"}
    (rdir / "manifest.json").write_bytes(canonical_json(build_manifest(str(rdir), meta)))
    for dirpath, dirnames, filenames in os.walk(rdir):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
    for dirpath, dirnames, filenames in os.walk(rdir, topdown=False):
        os.chmod(dirpath, 0o555)
    if mtime is not None:
        os.utime(rdir, (mtime, mtime))
    return rdir


def activate(module_runner, root, version=None, variant="gguf-q4_1", **extra):
    args = dict(model_root=str(root), model_name=MODEL)
    if version is not None:
        args.update(version=version, variant=variant)
    args.update(extra)
    return module_runner("model_activate", **args)


def links(root):
    mdir = root / MODEL
    return {name: os.readlink(mdir / name) if os.path.islink(mdir / name) else None
            for name in ("current", "previous")}


def ledger(root):
    path = root / ".modelops" / "state.json"
    return json.loads(path.read_text())["events"] if path.exists() else []


def ok(res):
    assert res.get("failed") is not True, res
    return res


def test_activate_then_upgrade(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    make_release(root, "2504")

    first = ok(activate(module_runner, root, "2501", reason="first install"))
    assert first["changed"] is True
    assert (first["current"], first["previous"]) == ("2501/gguf-q4_1", None)
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": None}
    assert first["verified"]["files"] == 2
    assert (root / ".modelops" / "hashcache").exists()

    second = ok(activate(module_runner, root, "2504", reason="canary passed"))
    assert second["changed"] is True
    assert (second["current"], second["previous"]) == ("2504/gguf-q4_1", "2501/gguf-q4_1")
    # Relative links that resolve to the releases.
    assert links(root) == {"current": "2504/gguf-q4_1", "previous": "2501/gguf-q4_1"}
    assert os.path.realpath(root / MODEL / "current") == str((root / MODEL / "2504" / "gguf-q4_1").resolve())
    assert (root / MODEL / "current" / "model.gguf").read_bytes().startswith(b"GGUF2504")
    assert not [n for n in os.listdir(root / MODEL) if n.startswith(".")]

    events = ledger(root)
    assert [(e["action"], e["model"], e["from"], e["to"], e["reason"]) for e in events] == [
        ("activate", MODEL, None, "2501/gguf-q4_1", "first install"),
        ("activate", MODEL, "2501/gguf-q4_1", "2504/gguf-q4_1", "canary passed")]
    assert all(e["time"].endswith("Z") for e in events)
    assert second["ledger_event"] == events[-1]
    assert second["pruned"] == []


def test_reactivating_current_changes_nothing(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    ok(activate(module_runner, root, "2501"))
    state = (root / ".modelops" / "state.json").read_bytes()
    cache = (root / ".modelops" / "hashcache").read_bytes()
    link_before = os.lstat(root / MODEL / "current")

    again = ok(activate(module_runner, root, "2501", _ansible_diff=True))
    assert again["changed"] is False
    assert again["ledger_event"] is None and again["pruned"] == []
    assert again["diff"]["before"] == again["diff"]["after"]
    assert (root / ".modelops" / "state.json").read_bytes() == state
    assert (root / ".modelops" / "hashcache").read_bytes() == cache
    assert os.lstat(root / MODEL / "current").st_ino == link_before.st_ino


def test_rollback_swaps_current_and_previous(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    make_release(root, "2504")
    ok(activate(module_runner, root, "2501"))
    ok(activate(module_runner, root, "2504"))

    back = ok(activate(module_runner, root, rollback=True, reason="probe failed"))
    assert back["changed"] is True
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": "2504/gguf-q4_1"}
    assert (back["current"], back["previous"]) == ("2501/gguf-q4_1", "2504/gguf-q4_1")
    last = ledger(root)[-1]
    assert (last["action"], last["from"], last["to"], last["reason"]) == \
        ("rollback", "2504/gguf-q4_1", "2501/gguf-q4_1", "probe failed")
    # Rolling back again goes forward again.
    ok(activate(module_runner, root, rollback=True))
    assert links(root) == {"current": "2504/gguf-q4_1", "previous": "2501/gguf-q4_1"}


def test_rollback_without_previous_fails(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    res = activate(module_runner, root, rollback=True)
    assert res["failed"] is True
    assert "cannot roll back" in res["msg"] and "previous" in res["msg"]

    ok(activate(module_runner, root, "2501"))
    res = activate(module_runner, root, rollback=True)
    assert res["failed"] is True and str(root / MODEL / "previous") in res["msg"]
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": None}
    assert len(ledger(root)) == 1


def test_argument_rules(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    res = activate(module_runner, root, "2501", rollback=True)
    assert res["failed"] is True and "mutually exclusive" in res["msg"]
    res = module_runner("model_activate", model_root=str(root), model_name=MODEL)
    assert res["failed"] is True and "nothing to do" in res["msg"]
    res = activate(module_runner, root, rollback=False)
    assert res["failed"] is True and "nothing to do" in res["msg"]
    res = module_runner("model_activate", model_root=str(root), model_name=MODEL, version="2501")
    assert res["failed"] is True and "variant" in res["msg"]
    res = activate(module_runner, root, "../../etc")
    assert res["failed"] is True and "version" in res["msg"]
    assert links(root) == {"current": None, "previous": None}


def test_refuses_a_release_that_is_not_installed(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    res = activate(module_runner, root, "2509")
    assert res["failed"] is True
    assert "is not installed on this host: sync it first" in res["msg"]
    assert "2501/gguf-q4_1" in res["msg"]  # says what is installed
    assert links(root) == {"current": None, "previous": None}
    assert ledger(root) == []

    # A missing model_root is the same answer, and nothing is created.
    res = activate(module_runner, tmp_path / "nowhere", "2501")
    assert res["failed"] is True and "sync it first" in res["msg"]
    assert not (tmp_path / "nowhere").exists()

    # A release directory without manifest.json is an incomplete install.
    incomplete = root / MODEL / "2510" / "gguf-q4_1"
    incomplete.mkdir(parents=True)
    (incomplete / "model.gguf").write_bytes(b"GGUF")
    res = activate(module_runner, root, "2510")
    assert res["failed"] is True and "has no manifest.json" in res["msg"]
    assert str(incomplete) in res["msg"]


def test_refuses_a_tampered_release_even_when_cached(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    v2 = make_release(root, "2504")
    ok(activate(module_runner, root, "2501"))
    ok(activate(module_runner, root, "2504"))             # hashes 2504 into the cache
    ok(activate(module_runner, root, rollback=True))      # back on 2501
    events = ledger(root)

    target = v2 / "model.gguf"
    data = target.read_bytes()
    os.chmod(target, 0o644)
    st = os.stat(target)
    target.write_bytes(data[:-1] + b"X")                   # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only ctime differs
    res = activate(module_runner, root, "2504")
    assert res["failed"] is True
    assert str(target) in res["msg"] and "changed file" in res["msg"]
    assert "refusing to activate" in res["msg"]
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": "2504/gguf-q4_1"}
    assert ledger(root) == events

    # Rolling back onto it is refused the same way.
    res = activate(module_runner, root, rollback=True)
    assert res["failed"] is True and str(target) in res["msg"]

    # verify=false is the operator's explicit choice.
    ok(activate(module_runner, root, "2504", verify=False))
    assert links(root)["current"] == "2504/gguf-q4_1"


def test_refuses_a_manifest_from_another_release(module_runner, tmp_path):
    root = tmp_path / "models"
    v1 = make_release(root, "2501")
    v2 = make_release(root, "2504")
    os.chmod(v2, 0o755)
    os.chmod(v2 / "manifest.json", 0o644)
    (v2 / "manifest.json").write_bytes((v1 / "manifest.json").read_bytes())
    res = activate(module_runner, root, "2504")
    assert res["failed"] is True and "describes" in res["msg"]
    assert links(root)["current"] is None


def test_check_and_diff_mode_write_nothing(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    make_release(root, "2504")

    # On a fresh host: not even the state directory is created.
    res = ok(activate(module_runner, root, "2501", _ansible_check_mode=True, _ansible_diff=True))
    assert res["changed"] is True
    assert res["diff"] == {"before": {"current": None, "previous": None},
                           "after": {"current": "2501/gguf-q4_1", "previous": None}}
    assert not (root / ".modelops").exists()
    assert links(root) == {"current": None, "previous": None}

    ok(activate(module_runner, root, "2501"))
    state = (root / ".modelops" / "state.json").read_bytes()
    cache = (root / ".modelops" / "hashcache").read_bytes()
    lock = os.stat(root / ".modelops" / "lock")
    res = ok(activate(module_runner, root, "2504", keep_versions=0,
                      _ansible_check_mode=True, _ansible_diff=True))
    assert res["changed"] is True
    assert res["diff"]["before"] == {"current": "2501/gguf-q4_1", "previous": None}
    assert res["diff"]["after"] == {"current": "2504/gguf-q4_1", "previous": "2501/gguf-q4_1"}
    assert res["ledger_event"]["to"] == "2504/gguf-q4_1" and "time" not in res["ledger_event"]
    assert links(root) == {"current": "2501/gguf-q4_1", "previous": None}
    assert (root / ".modelops" / "state.json").read_bytes() == state
    assert (root / ".modelops" / "hashcache").read_bytes() == cache
    assert os.stat(root / ".modelops" / "lock").st_mtime_ns == lock.st_mtime_ns

    # Diff mode alone does the change and shows it.
    res = ok(activate(module_runner, root, "2504", _ansible_diff=True))
    assert res["diff"]["after"] == {"current": "2504/gguf-q4_1", "previous": "2501/gguf-q4_1"}
    assert links(root) == res["diff"]["after"]


def test_retention_keeps_links_and_the_most_recent(module_runner, tmp_path):
    root = tmp_path / "models"
    now = time.time()
    for i, version in enumerate(("2501", "2502", "2503", "2504")):
        make_release(root, version, mtime=now - 4000 + i * 1000)
    ok(activate(module_runner, root, "2501", keep_versions=5))
    ok(activate(module_runner, root, "2502", keep_versions=5))
    assert len(os.listdir(root / MODEL)) == 6  # 4 releases + 2 links

    # current=2504, previous=2502; of the others, 2501 was active a moment ago (ledger)
    # and 2503 was installed long ago and never activated: 2503 goes.
    res = ok(activate(module_runner, root, "2504", keep_versions=1))
    assert res["pruned"] == ["2503/gguf-q4_1"]
    assert links(root) == {"current": "2504/gguf-q4_1", "previous": "2502/gguf-q4_1"}
    assert sorted(n for n in os.listdir(root / MODEL)) == ["2501", "2502", "2504", "current", "previous"]
    prune = ledger(root)[-1]
    assert (prune["action"], prune["model"], prune["release"], prune["reason"]) == \
        ("prune", MODEL, "2503/gguf-q4_1", "keep_versions=1")
    assert prune["bytes"] > 0
    assert ledger(root)[-2]["action"] == "activate"

    # keep_versions=0 keeps exactly what the links point to, even the oldest release.
    res = ok(activate(module_runner, root, rollback=True, keep_versions=0))
    assert links(root) == {"current": "2502/gguf-q4_1", "previous": "2504/gguf-q4_1"}
    assert res["pruned"] == ["2501/gguf-q4_1"]
    assert sorted(os.listdir(root / MODEL)) == ["2502", "2504", "current", "previous"]
    res = ok(activate(module_runner, root, rollback=True, keep_versions=0))
    assert res["pruned"] == []
    assert (root / MODEL / "current" / "model.gguf").exists()
    assert (root / MODEL / "previous" / "model.gguf").exists()


def test_retention_in_check_mode_deletes_nothing(module_runner, tmp_path):
    root = tmp_path / "models"
    for version in ("2501", "2502", "2503", "2504"):
        make_release(root, version)
    ok(activate(module_runner, root, "2501", keep_versions=5))
    res = ok(activate(module_runner, root, "2504", keep_versions=0, _ansible_check_mode=True))
    assert sorted(res["pruned"]) == ["2502/gguf-q4_1", "2503/gguf-q4_1"]
    assert sorted(os.listdir(root / MODEL)) == ["2501", "2502", "2503", "2504", "current"]


def test_lock_held_by_another_upgrade(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    with HostLock(str(root), timeout=5, purpose="model_sync qwen 2507/fp16"):
        start = time.monotonic()
        res = activate(module_runner, root, "2501", lock_timeout=1)
        assert time.monotonic() - start >= 1
    assert res["failed"] is True
    assert str(root / ".modelops" / "lock") in res["msg"]
    assert "pid %d" % os.getpid() in res["msg"]
    assert "model_sync qwen 2507/fp16" in res["msg"]
    assert links(root) == {"current": None, "previous": None}
    assert ledger(root) == []
    # Once released, it goes through.
    ok(activate(module_runner, root, "2501", lock_timeout=1))


def test_corrupt_ledger_is_kept_and_a_new_one_started(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    (root / ".modelops").mkdir()
    (root / ".modelops" / "state.json").write_bytes(b'{"schema": 1, "events": [trunc')
    res = ok(activate(module_runner, root, "2501"))
    assert "corrupt" in json.dumps(res.get("warnings", []))
    moved = [n for n in os.listdir(root / ".modelops") if n.startswith("state.json.corrupt-")]
    assert len(moved) == 1
    assert (root / ".modelops" / moved[0]).read_bytes() == b'{"schema": 1, "events": [trunc'
    events = ledger(root)
    assert [e["action"] for e in events] == ["ledger_recovered", "activate"]
    assert events[0]["moved_to"].endswith(moved[0])


def test_a_dangling_current_does_not_become_previous(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, "2501")
    make_release(root, "2504")
    ok(activate(module_runner, root, "2501"))
    os.symlink("2499/gguf-q4_1", root / MODEL / "dangling")
    os.replace(root / MODEL / "dangling", root / MODEL / "current")
    res = ok(activate(module_runner, root, "2504"))
    assert links(root) == {"current": "2504/gguf-q4_1", "previous": None}
    assert res["ledger_event"]["from"] == "2499/gguf-q4_1"
    assert "not installed any more" in json.dumps(res.get("warnings", []))
