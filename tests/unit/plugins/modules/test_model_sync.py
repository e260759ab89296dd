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
                manifest_content=raw.decode(), signature_content="sig", keyring=["/dev/null"],
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
