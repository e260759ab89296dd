# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Resolving "latest" in a local repository and on an HTTP mirror (127.0.0.1)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"


def publish(module_runner, repo, key, version, seq, expires="2099-01-01T00:00:00Z"):
    rel = repo / MODEL / version / VARIANT
    rel.mkdir(parents=True)
    (rel / "model.gguf").write_bytes(b"GGUF" + version.encode() * 1000)
    res = module_runner("model_manifest", path=str(rel), name="%s-%s-%s" % (MODEL, version, VARIANT),
                        sequence=seq, expires=expires, gnupghome=key.home,
                        key_fingerprint=key.fingerprint, passphrase=key.passphrase)
    assert res.get("failed") is not True, res
    return rel


@pytest.fixture
def repo(gpg_keys, module_runner, tmp_path):
    repo = tmp_path / "releases"
    publish(module_runner, repo, gpg_keys.publisher, "2411", 1)
    publish(module_runner, repo, gpg_keys.publisher, "2412", 2)
    # Newer, but expired (freeze) and signed by an untrusted key.
    publish(module_runner, repo, gpg_keys.publisher, "2501", 3, expires="2021-01-01T00:00:00Z")
    publish(module_runner, repo, gpg_keys.attacker, "2502", 4)
    return repo


def resolve(module_runner, gpg_keys, repository, **kw):
    args = dict(repository=str(repository), model_name=MODEL, variant=VARIANT,
                keyring=[gpg_keys.publisher.public], catalog="",
                trusted_fingerprints=[gpg_keys.publisher.fingerprint])
    args.update(kw)
    return module_runner("model_release_info", **args)


def test_latest_is_the_newest_valid_release(repo, gpg_keys, module_runner):
    index = json.loads((repo / "index.json").read_text())
    assert sorted(e["version"] for e in index["releases"]) == ["2411", "2412", "2501", "2502"]
    res = resolve(module_runner, gpg_keys, repo)
    assert res.get("failed") is not True, res
    assert res["release"] == "%s-2412-%s" % (MODEL, VARIANT)
    assert res["sequence"] == 2 and res["signer"] == gpg_keys.publisher.fingerprint
    reasons = dict((r["version"], r["reason"]) for r in res["rejected"])
    assert "expired at 2021-01-01T00:00:00Z" in reasons["2501"]
    assert "not in the pinned keyring" in reasons["2502"]


def test_latest_without_index_scans_the_directory(repo, gpg_keys, module_runner):
    os.unlink(str(repo / "index.json"))
    res = resolve(module_runner, gpg_keys, repo)
    assert res["version"] == "2412"


def test_pinned_version_that_is_invalid_fails_with_its_reason(repo, gpg_keys, module_runner):
    res = resolve(module_runner, gpg_keys, repo, version="2501")
    assert res["failed"] is True and "expired at 2021-01-01" in res["msg"]
    ok = resolve(module_runner, gpg_keys, repo, version="2411")
    assert ok["version"] == "2411"


def test_manifest_moved_to_another_release_is_rejected(repo, gpg_keys, module_runner):
    newer = repo / MODEL / "2412" / VARIANT
    older = repo / MODEL / "2411" / VARIANT
    for name in ("manifest.json", "manifest.json.asc", "model.gguf"):
        shutil.copy(str(older / name), str(newer / name))
    res = resolve(module_runner, gpg_keys, repo)
    assert res["version"] == "2411"
    reasons = dict((r["version"], r["reason"]) for r in res["rejected"])
    assert "a manifest moved from another release" in reasons["2412"]


def test_catalog_refuses_a_replayed_older_release(repo, gpg_keys, module_runner, tmp_path):
    from ansible_collections.modelops.fleet.plugins.module_utils._catalog import Catalog
    db = str(tmp_path / "registry.db")
    with Catalog(db) as c:
        c.record({"model_name": MODEL, "version": "2503", "variant": VARIANT, "sequence": 5},
                 "f" * 64, gpg_keys.publisher.fingerprint)
    res = resolve(module_runner, gpg_keys, repo, catalog=db)
    assert res["failed"] is True and "lower than sequence 5" in res["msg"]
    ok = resolve(module_runner, gpg_keys, repo, catalog=db, version="2412", allow_rollback=True)
    assert ok["version"] == "2412"


def test_http_mirror(repo, gpg_keys, module_runner):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(repo))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        res = resolve(module_runner, gpg_keys, url)
        assert res.get("failed") is not True, res
        assert res["version"] == "2412"
        assert res["location"] == "%s/%s/2412/%s" % (url, MODEL, VARIANT)
        os.unlink(str(repo / "index.json"))
        res = resolve(module_runner, gpg_keys, url)
        assert res["failed"] is True and "has no index.json" in res["msg"]
    finally:
        server.shutdown()
        server.server_close()
