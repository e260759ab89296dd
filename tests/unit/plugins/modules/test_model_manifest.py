# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_manifest and model_verify (target half) run as Ansible runs them."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.modelops.fleet.plugins.module_utils._gpg import verify_detached


def release_dir(tmp_path):
    rel = tmp_path / "repo" / "smollm2-135m-instruct" / "2411" / "gguf-q4_1"
    rel.mkdir(parents=True)
    (rel / "model.gguf").write_bytes(b"GGUF" + os.urandom(200000))
    (rel / "tokenizer.json").write_bytes(b'{"v": 1}')
    return rel


def manifest_args(rel, key, **extra):
    args = dict(path=str(rel), name="smollm2-135m-instruct-2411-gguf-q4_1", sequence=3,
                expires="2099-01-01T00:00:00Z", license="Apache-2.0",
                frameworks=["llama.cpp"], gnupghome=key.home,
                key_fingerprint=key.fingerprint, passphrase=key.passphrase)
    args.update(extra)
    return args


def test_builds_signs_and_is_idempotent(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.protected
    rel = release_dir(tmp_path)
    first = module_runner("model_manifest", **manifest_args(rel, k))
    assert first.get("failed") is not True, first
    assert first["changed"] is True and first["signed"] is True
    raw = (rel / "manifest.json").read_bytes()
    sig = (rel / "manifest.json.asc").read_bytes()
    assert first["manifest_sha256"] == hashlib.sha256(raw).hexdigest()
    m = json.loads(raw)
    assert (m["model_name"], m["version"], m["variant"], m["sequence"]) == \
        ("smollm2-135m-instruct", "2411", "gguf-q4_1", 3)
    assert [f["path"] for f in m["files"]] == ["model.gguf", "tokenizer.json"]
    assert verify_detached(raw, sig, [k.public], [k.fingerprint]) == k.fingerprint
    # The passphrase never comes back.
    assert k.passphrase not in json.dumps(first)

    second = module_runner("model_manifest", **manifest_args(rel, k))
    assert second["changed"] is False and second["signed"] is False
    assert (rel / "manifest.json").read_bytes() == raw
    assert (rel / "manifest.json.asc").read_bytes() == sig


def test_check_and_diff_mode_write_nothing(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.publisher
    rel = release_dir(tmp_path)
    module_runner("model_manifest", **manifest_args(rel, k))
    raw = (rel / "manifest.json").read_bytes()
    (rel / "extra-weights.bin").write_bytes(b"x" * 10)
    res = module_runner("model_manifest", _ansible_check_mode=True, _ansible_diff=True,
                        **manifest_args(rel, k))
    assert res["changed"] is True
    assert "extra-weights.bin" in res["diff"]["after"]
    assert "extra-weights.bin" not in res["diff"]["before"]
    assert (rel / "manifest.json").read_bytes() == raw


def test_a_changed_file_gives_a_new_manifest_and_signature(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.publisher
    rel = release_dir(tmp_path)
    module_runner("model_manifest", **manifest_args(rel, k))
    old_sig = (rel / "manifest.json.asc").read_bytes()
    (rel / "tokenizer.json").write_bytes(b'{"v": 2}')
    res = module_runner("model_manifest", **manifest_args(rel, k))
    assert res["changed"] is True and res["signed"] is True
    assert (rel / "manifest.json.asc").read_bytes() != old_sig


def test_directory_must_match_the_release_name(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.publisher
    rel = release_dir(tmp_path)
    res = module_runner("model_manifest", **manifest_args(
        rel, k, name="smollm2-135m-instruct-2412-gguf-q4_1"))
    assert res["failed"] is True
    assert "does not match release smollm2-135m-instruct-2412-gguf-q4_1" in res["msg"]
    assert not (rel / "manifest.json").exists()


def test_malformed_name_is_refused(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.publisher
    rel = release_dir(tmp_path)
    res = module_runner("model_manifest", **manifest_args(rel, k, name="smollm2-135m-instruct"))
    assert res["failed"] is True and "has no version" in res["msg"]


def test_wrong_passphrase_leaves_old_manifest(gpg_keys, module_runner, tmp_path):
    import subprocess
    k = gpg_keys.protected
    rel = release_dir(tmp_path)
    module_runner("model_manifest", **manifest_args(rel, k))
    raw = (rel / "manifest.json").read_bytes()
    (rel / "tokenizer.json").write_bytes(b'{"v": 3}')
    subprocess.run(["gpgconf", "--homedir", k.home, "--kill", "gpg-agent"], check=True)
    res = module_runner("model_manifest", **manifest_args(rel, k, passphrase="not it"))
    assert res["failed"] is True and "signing with key" in res["msg"]
    assert "not it" not in json.dumps(res)
    assert (rel / "manifest.json").read_bytes() == raw


def test_target_verify_pins_the_checked_manifest(gpg_keys, module_runner, tmp_path):
    k = gpg_keys.publisher
    rel = release_dir(tmp_path)
    built = module_runner("model_manifest", **manifest_args(rel, k))
    common = dict(path=str(rel), trusted_fingerprints=[k.fingerprint], keyring=[k.public],
                  hash_cache=str(tmp_path / "hc"))
    ok = module_runner("model_verify", manifest_sha256=built["manifest_sha256"], **common)
    assert ok.get("failed") is not True, ok
    assert ok["changed"] is False and ok["files"] == 2 and ok["bytes_read"] == ok["bytes"]
    again = module_runner("model_verify", manifest_sha256=built["manifest_sha256"], **common)
    assert again["bytes_read"] == 0 and again["files_cached"] == 2
    swapped = module_runner("model_verify", manifest_sha256="0" * 64, **common)
    assert swapped["failed"] is True
    assert "changed since its signature was checked" in swapped["msg"]
    (rel / "model.gguf").write_bytes(b"GGUF")
    bad = module_runner("model_verify", manifest_sha256=built["manifest_sha256"], **common)
    assert bad["failed"] is True and "truncated file %s/model.gguf" % rel in bad["msg"]
