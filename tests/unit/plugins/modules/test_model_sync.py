# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_sync (target half) run as Ansible runs it, pulling from a mirror on 127.0.0.1:
check mode, diff mode, a real run, an idempotent second run, dedup and the ledger."""

from __future__ import annotations

import functools
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    build_manifest,
    canonical_json,
)

MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"


def make_release(repo, version, weights):
    rel = repo / MODEL / version / VARIANT
    (rel / "params").mkdir(parents=True)
    (rel / "model.gguf").write_bytes(weights)
    (rel / "tokenizer.json").write_text('{"vocab": "shared"}')
    (rel / "params" / "generation.json").write_text('{"t": 0.2}')
    meta = {"model_name": MODEL, "version": version, "variant": VARIANT, "sequence": int(version[-1]),
            "expires": "2099-01-01T00:00:00Z"}
    raw = canonical_json(build_manifest(str(rel), meta))
    (rel / "manifest.json").write_bytes(raw)
    return raw


@pytest.fixture
def mirror(tmp_path):
    repo = tmp_path / "mirror"
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(repo))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield repo, "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def sync_args(root, url, version, raw, **extra):
    args = dict(source="mirror", url="%s/%s/%s/%s" % (url, MODEL, version, VARIANT), model_root=str(root),
                _manifest_content=raw.decode(), _signature_content="sig", keyring=["/dev/null"],
                trusted_fingerprints=["X"])
    args.update(extra)
    return args


def test_check_diff_real_idempotent_and_dedup(module_runner, mirror, tmp_path):
    repo, url = mirror
    weights = os.urandom(300000)
    raw1 = make_release(repo, "2411", weights)
    raw2 = make_release(repo, "2412", weights[:-10] + b"0123456789")
    root = tmp_path / "models"

    check = module_runner("model_sync", _ansible_check_mode=True, _ansible_diff=True, **sync_args(root, url, "2411", raw1))
    assert check.get("failed") is not True, check
    assert check["changed"] is True and check["bytes_to_transfer"] == 300000 + 19 + 10
    assert "transfer model.gguf (300000 bytes)" in check["diff"]["after"]
    assert not root.exists() or not (root / MODEL).exists()

    real = module_runner("model_sync", **sync_args(root, url, "2411", raw1))
    assert real["changed"] is True and real["bytes_transferred"] == 300029, real
    installed = root / MODEL / "2411" / VARIANT
    assert (installed / "manifest.json").read_bytes() == raw1
    assert (installed / "manifest.json.asc").read_text() == "sig"
    assert oct(os.stat(str(installed / "model.gguf")).st_mode & 0o777) == "0o444"
    assert not (root / ".staging" / MODEL).exists()

    again = module_runner("model_sync", _ansible_diff=True, **sync_args(root, url, "2411", raw1))
    assert again["changed"] is False and again["bytes_transferred"] == 0 and "diff" not in again

    up = module_runner("model_sync", **sync_args(root, url, "2412", raw2))
    assert up["bytes_transferred"] == 300000 and up["bytes_linked"] == 29, up
    assert os.stat(str(root / MODEL / "2412" / VARIANT / "tokenizer.json")).st_ino == \
        os.stat(str(installed / "tokenizer.json")).st_ino

    ledger = json.loads((root / ".modelops" / "state.json").read_text())
    installs = [e for e in ledger["events"] if e["action"] == "install"]
    assert [e["to"] for e in installs] == ["2411/%s" % VARIANT, "2412/%s" % VARIANT]


def test_mirror_serving_a_changed_file_is_refused(module_runner, mirror, tmp_path):
    repo, url = mirror
    raw = make_release(repo, "2411", os.urandom(5000))
    with open(str(repo / MODEL / "2411" / VARIANT / "model.gguf"), "r+b") as f:
        f.write(b"EVIL")
    root = tmp_path / "models"
    res = module_runner("model_sync", **sync_args(root, url, "2411", raw))
    assert res["failed"] is True
    assert "model.gguf of %s-2411-%s arrived with sha256" % (MODEL, VARIANT) in res["msg"]
    assert not (root / MODEL / "2411").exists()


@pytest.mark.parametrize("where", ["params", "", "model"])
def test_symlink_planted_in_staging_is_refused_before_any_write(module_runner, mirror, tmp_path, where):
    # A directory of the staged release (params), the release's staging directory itself,
    # or the model's level above it, pointed elsewhere: refused before a byte is written.
    repo, url = mirror
    raw = make_release(repo, "2411", os.urandom(5000))
    root = tmp_path / "models"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    staging = root / ".staging" / MODEL / "2411" / VARIANT
    link = {"params": staging / "params", "": staging, "model": root / ".staging" / MODEL}[where]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)
    res = module_runner("model_sync", **sync_args(root, url, "2411", raw))
    assert res["failed"] is True
    assert "%s is a symlink (-> %s)" % (link, elsewhere) in res["msg"] and "nothing was written" in res["msg"], res["msg"]
    assert os.listdir(str(elsewhere)) == []
    assert not (root / MODEL / "2411").exists()


def test_disk_full_message_names_the_filesystem_the_file_and_the_space(tmp_path):
    from ansible_collections.modelops.fleet.plugins.module_utils._sync import disk_full_message, mount_point
    part = tmp_path / "staging" / "model.gguf.part"
    msg = disk_full_message(str(part), "model.gguf", "m-2411-gguf", 1 << 20, 5 << 20)
    mnt = mount_point(str(tmp_path))
    assert os.path.ismount(mnt) and str(tmp_path).startswith(mnt)
    assert msg.startswith("no space left on the filesystem mounted at %s (holding %s)" % (mnt, part)), msg
    assert "while writing model.gguf of m-2411-gguf: 1048576 of 5242880 bytes written, 4 MiB more needed" in msg
    assert "MiB free (No space left on device)" in msg and "resumed next run" in msg


def _push_args(root, version, raw, lease, **extra):
    args = dict(source="push", src="/unused-on-the-host", model_root=str(root), _manifest_content=raw.decode(),
                _signature_content="sig", keyring=["/dev/null"], trusted_fingerprints=["X"], _lease=lease)
    args.update(extra)
    return args


def _push_tails(plan, release_dir):
    """What the action plugin does between plan and install: each file's tail to its path."""
    for f in plan["files"]:
        if f["action"] == "transfer":
            with open(os.path.join(str(release_dir), f["path"]), "rb") as src, open(f["tail"], "wb") as out:
                src.seek(f["offset"])
                out.write(src.read())


def test_second_sync_waits_for_the_first_across_plan_push_install(module_runner, tmp_path):
    # Two upgrades of the same host at once (push): B's plan comes while A holds the lease
    # between its plan and its install; B waits, then finds the release installed. Without
    # the lease, B's plan would prepare the same staging area and one of them fail as if
    # the release were damaged.
    repo = tmp_path / "repo"
    raw = make_release(repo, "2411", os.urandom(200000))
    rel = repo / MODEL / "2411" / VARIANT
    root = tmp_path / "models"
    plan_a = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:1:a", _step="plan"))
    assert plan_a.get("failed") is not True, plan_a
    lease = json.loads((root / ".modelops" / "lease.json").read_text())
    assert lease["token"] == "ctl:1:a" and lease["release"] == "%s-2411-%s" % (MODEL, VARIANT)
    out = {}
    b = threading.Thread(target=lambda: out.update(module_runner(
        "model_sync", **_push_args(root, "2411", raw, "ctl:2:b", _step="plan"))))
    b.start()
    b.join(4)
    assert b.is_alive(), "B did not wait for A's lease: %s" % out
    _push_tails(plan_a, rel)
    done_a = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:1:a", _step="install"))
    assert done_a["changed"] is True, done_a
    b.join(30)
    assert not b.is_alive() and out.get("failed") is not True, out
    assert out["installed"] is True and out["changed"] is False, out
    assert not (root / ".modelops" / "lease.json").exists()
    ledger = json.loads((root / ".modelops" / "state.json").read_text())
    assert [e["to"] for e in ledger["events"] if e["action"] == "install"] == ["2411/%s" % VARIANT]


def test_a_live_lease_is_named_after_lease_timeout_and_an_abandoned_one_taken_over(module_runner, tmp_path):
    repo = tmp_path / "repo"
    raw = make_release(repo, "2411", os.urandom(5000))
    root = tmp_path / "models"
    plan_a = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:1:a", _step="plan"))
    assert plan_a.get("failed") is not True, plan_a
    late = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:2:b", _step="plan", lease_timeout=3))
    assert late["failed"] is True
    assert "another upgrade (ctl:1:a, since" in late["msg"] and "is installing %s-2411-%s on this host" % (MODEL, VARIANT) in late["msg"]
    assert "waited 3 s for it (lease_timeout)" in late["msg"], late["msg"]
    # A's controller died: no write for longer than the idle bound, so B takes the lease over.
    old = 1000000000
    for dirpath, dirnames, filenames in os.walk(str(root / ".staging")):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (old, old))
    lease = json.loads((root / ".modelops" / "lease.json").read_text())
    lease["epoch"] = old
    (root / ".modelops" / "lease.json").write_text(json.dumps(lease))
    plan_b = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:2:b", _step="plan", lease_timeout=3))
    assert plan_b.get("failed") is not True, plan_b
    assert json.loads((root / ".modelops" / "lease.json").read_text())["token"] == "ctl:2:b"
    # _step=release gives it back (the action plugin's path when a push stops early)
    rel = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:2:b", _step="release"))
    assert rel["released"] is True and not (root / ".modelops" / "lease.json").exists()


def test_a_file_planted_in_staging_is_named_and_does_not_stay(module_runner, mirror, tmp_path):
    repo, url = mirror
    raw = make_release(repo, "2411", os.urandom(5000))
    root = tmp_path / "models"
    staging = root / ".staging" / MODEL / "2411" / VARIANT
    (staging / "params").mkdir(parents=True)
    (staging / "params" / "backdoor.py").write_text("import os")
    res = module_runner("model_sync", **sync_args(root, url, "2411", raw))
    assert res["failed"] is True and "extra file %s" % (staging / "params" / "backdoor.py") in res["msg"], res["msg"]
    assert "the staging area %s was discarded" % staging in res["msg"]
    assert not staging.exists() and not (root / MODEL / "2411").exists()
    again = module_runner("model_sync", **sync_args(root, url, "2411", raw))
    assert again["changed"] is True and (root / MODEL / "2411" / VARIANT / "model.gguf").exists(), again


def _controller_sync(args, tmp_path):
    import re
    import shutil
    import subprocess
    import sys
    if shutil.which("ansible") is None:
        pytest.skip("needs the ansible CLI of the venv")
    proc = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,", "-o",
                           "-e", "ansible_python_interpreter=%s" % sys.executable,
                           "-m", "modelops.fleet.model_sync", "-a", json.dumps(args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          timeout=300, cwd=str(tmp_path))
    m = re.search(r"^localhost \| (\w+)!? => (\{.*\})$", proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    data = json.loads(m.group(2))
    data["failed"] = m.group(1) == "FAILED"
    return data


def test_action_plugin_validates_the_task_against_the_module_spec_before_reading_a_manifest(tmp_path):
    """The controller half checks the arguments with the module's own spec: a mirror sync
    without url, or a timeout that is not a number, fails naming the option, and no
    manifest is fetched."""
    seen = []

    class Counting(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            seen.append(self.path)

    (tmp_path / "repo").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(tmp_path / "repo")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/m/1" % server.server_address[1]
    base = {"keyring": [str(tmp_path / "no-such.asc")], "trusted_fingerprints": ["0" * 40],
            "model_root": str(tmp_path / "models")}
    try:
        res = _controller_sync(dict(base, source="mirror"), tmp_path)
        assert res["failed"] and "source is mirror but all of the following are missing: url" in res["msg"], res
        res = _controller_sync(dict(base, source="mirror", url=url, timeout="soon"), tmp_path)
        assert res["failed"] and "timeout" in res["msg"] and "int" in res["msg"], res
        assert seen == []  # refused before anything was fetched
        # Valid arguments get as far as the manifest (the spec's default timeout applies).
        res = _controller_sync(dict(base, source="mirror", url=url), tmp_path)
        assert res["failed"] and "cannot fetch %s/manifest.json" % url in res["msg"], res
        assert seen and seen[0].startswith("/m/1/manifest.json")
    finally:
        server.shutdown()
        server.server_close()


def test_an_unknown_step_is_refused_before_anything_is_written(module_runner, tmp_path):
    repo = tmp_path / "repo"
    raw = make_release(repo, "2411", os.urandom(1000))
    root = tmp_path / "models"
    res = module_runner("model_sync", **_push_args(root, "2411", raw, "ctl:1:a", _step="deploy"))
    assert res.get("failed") and res["msg"] == "model_sync: unknown _step 'deploy' (one of plan, install, release)", res
    assert not root.exists()
