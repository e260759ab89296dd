# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_manifest and model_verify (target half) run as Ansible runs them."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._gpg import verify_detached


def manifest_args(rel, key, **extra):
    args = dict(path=str(rel), name="smollm2-135m-instruct-2411-gguf-q4_1", sequence=3,
                expires="2099-01-01T00:00:00Z", license="Apache-2.0",
                frameworks=["llama.cpp"], gnupghome=key.home,
                key_fingerprint=key.fingerprint, passphrase=key.passphrase)
    args.update(extra)
    return args


class Release(object):
    """A release directory (smollm2-135m-instruct 2411 gguf-q4_1) under tmp_path, and
    model_manifest run on it as Ansible runs it, signing with one of the test keys."""

    def __init__(self, module_runner, tmp_path, key):
        self.run = module_runner
        self.key = key
        self.dir = tmp_path / "repo" / "smollm2-135m-instruct" / "2411" / "gguf-q4_1"
        self.dir.mkdir(parents=True)
        (self.dir / "model.gguf").write_bytes(b"GGUF" + os.urandom(200000))
        (self.dir / "tokenizer.json").write_bytes(b'{"v": 1}')

    def manifest(self, **extra):
        """model_manifest with manifest_args, updated by extra (module or _ansible_* args)."""
        return self.run("model_manifest", **manifest_args(self.dir, self.key, **extra))

    def read(self, name):
        return (self.dir / name).read_bytes()

    def built_then_changed(self, name, data):
        """Build and sign the manifest, then write data to the release's file name: the bytes
        of manifest.json and manifest.json.asc from before the change."""
        self.manifest()
        before = self.read("manifest.json"), self.read("manifest.json.asc")
        (self.dir / name).write_bytes(data)
        return before


@pytest.fixture
def release(gpg_keys, module_runner, tmp_path):
    """release(key): a new Release signed by the key of that name in gpg_keys."""
    return lambda key="publisher": Release(module_runner, tmp_path, getattr(gpg_keys, key))


def test_builds_signs_and_is_idempotent(release):
    r = release("protected")
    k = r.key
    first = r.manifest()
    assert first.get("failed") is not True, first
    assert first["changed"] is True and first["signed"] is True
    raw = r.read("manifest.json")
    sig = r.read("manifest.json.asc")
    assert first["manifest_sha256"] == hashlib.sha256(raw).hexdigest()
    m = json.loads(raw)
    assert (m["model_name"], m["version"], m["variant"], m["sequence"]) == \
        ("smollm2-135m-instruct", "2411", "gguf-q4_1", 3)
    assert [f["path"] for f in m["files"]] == ["model.gguf", "tokenizer.json"]
    assert verify_detached(raw, sig, [k.public], [k.fingerprint]) == k.fingerprint
    # The passphrase never comes back.
    assert k.passphrase not in json.dumps(first)

    second = r.manifest()
    assert second["changed"] is False and second["signed"] is False
    assert r.read("manifest.json") == raw
    assert r.read("manifest.json.asc") == sig


def test_check_and_diff_mode_write_nothing(release):
    r = release()
    raw, dummy = r.built_then_changed("extra-weights.bin", b"x" * 10)
    res = r.manifest(_ansible_check_mode=True, _ansible_diff=True)
    assert res["changed"] is True
    assert "extra-weights.bin" in res["diff"]["after"]
    assert "extra-weights.bin" not in res["diff"]["before"]
    assert r.read("manifest.json") == raw


def test_a_changed_file_gives_a_new_manifest_and_signature(release):
    r = release()
    dummy, old_sig = r.built_then_changed("tokenizer.json", b'{"v": 2}')
    res = r.manifest()
    assert res["changed"] is True and res["signed"] is True
    assert r.read("manifest.json.asc") != old_sig


def test_directory_must_match_the_release_name(release):
    r = release()
    res = r.manifest(name="smollm2-135m-instruct-2412-gguf-q4_1")
    assert res["failed"] is True
    assert "does not match release smollm2-135m-instruct-2412-gguf-q4_1" in res["msg"]
    assert not (r.dir / "manifest.json").exists()


def test_malformed_name_is_refused(release):
    res = release().manifest(name="smollm2-135m-instruct")
    assert res["failed"] is True and "has no version" in res["msg"]


def test_wrong_passphrase_leaves_old_manifest(release):
    import subprocess
    r = release("protected")
    raw, dummy = r.built_then_changed("tokenizer.json", b'{"v": 3}')
    subprocess.run(["gpgconf", "--homedir", r.key.home, "--kill", "gpg-agent"], check=True)
    res = r.manifest(passphrase="not it")
    assert res["failed"] is True and "signing with key" in res["msg"]
    assert "not it" not in json.dumps(res)
    assert r.read("manifest.json") == raw


def test_target_verify_pins_the_checked_manifest(release, module_runner, tmp_path):
    r = release()
    rel, k = r.dir, r.key
    built = r.manifest()
    common = dict(path=str(rel), trusted_fingerprints=[k.fingerprint], keyring=[k.public],
                  hash_cache=str(tmp_path / "hc"))
    ok = module_runner("model_verify", _manifest_sha256=built["manifest_sha256"], **common)
    assert ok.get("failed") is not True, ok
    assert ok["changed"] is False and ok["files"] == 2 and ok["bytes_read"] == ok["bytes"]
    again = module_runner("model_verify", _manifest_sha256=built["manifest_sha256"], **common)
    assert again["bytes_read"] == 0 and again["files_cached"] == 2
    swapped = module_runner("model_verify", _manifest_sha256="0" * 64, **common)
    assert swapped["failed"] is True
    assert "changed since its signature was checked" in swapped["msg"]
    (rel / "model.gguf").write_bytes(b"GGUF")
    bad = module_runner("model_verify", _manifest_sha256=built["manifest_sha256"], **common)
    assert bad["failed"] is True and "truncated file %s/model.gguf" % rel in bad["msg"]


def test_source_is_copied_into_the_release_once_with_the_public_key(gpg_keys, module_runner, tmp_path):
    """publish.yml's single call: the source's files are copied into a new release directory,
    the manifest built and signed, the public key written; again, nothing changes; a changed
    source file is copied again and re-signed, the release's own files stay."""
    key = gpg_keys.publisher
    src = tmp_path / "export"
    (src / "sub").mkdir(parents=True)
    (src / "model.gguf").write_bytes(b"GGUF" + os.urandom(100000))
    (src / "sub" / "tokenizer.json").write_bytes(b'{"v": 1}')
    dest = tmp_path / "repo" / "smollm2-135m-instruct" / "2411" / "gguf-q4_1"
    keys_dir = tmp_path / "repo" / "keys"
    args = manifest_args(dest, key, source=str(src), public_key_dir=str(keys_dir))

    checked = module_runner("model_manifest", _ansible_check_mode=True, **args)
    assert checked["changed"] is True and sorted(checked["copied"]) == ["model.gguf", "sub/tokenizer.json"], checked
    assert not dest.exists() and not keys_dir.exists()

    first = module_runner("model_manifest", **args)
    assert first["changed"] is True and first["signed"] is True, first
    assert sorted(first["copied"]) == ["model.gguf", "sub/tokenizer.json"]
    assert (dest / "model.gguf").read_bytes() == (src / "model.gguf").read_bytes()
    assert oct((dest / "sub" / "tokenizer.json").stat().st_mode & 0o777) == "0o644"
    assert [f["path"] for f in first["manifest"]["files"]] == ["model.gguf", "sub/tokenizer.json"]
    public = keys_dir / ("%s.asc" % key.fingerprint)
    assert first["public_key"] == str(public)
    # the exported key verifies the signature it wrote (what hosts do with it)
    raw, sig = (dest / "manifest.json").read_bytes(), (dest / "manifest.json.asc").read_bytes()
    assert verify_detached(raw, sig, [str(public)], [key.fingerprint]) == key.fingerprint

    again = module_runner("model_manifest", **args)
    assert again["changed"] is False and again["copied"] == [] and again["signed"] is False, again

    # same bytes with another mode: reported (in check mode too) and set back to 0644
    (dest / "model.gguf").chmod(0o600)
    assert module_runner("model_manifest", _ansible_check_mode=True, **args)["copied"] == ["model.gguf"]
    assert oct((dest / "model.gguf").stat().st_mode & 0o777) == "0o600"
    fixed = module_runner("model_manifest", **args)
    assert fixed["copied"] == ["model.gguf"] and oct((dest / "model.gguf").stat().st_mode & 0o777) == "0o644"

    (src / "sub" / "tokenizer.json").write_bytes(b'{"v": 2}')
    changed = module_runner("model_manifest", **args)
    assert changed["changed"] is True and changed["copied"] == ["sub/tokenizer.json"] and changed["signed"] is True
    assert (dest / "sub" / "tokenizer.json").read_bytes() == b'{"v": 2}'


def test_a_source_without_files_or_with_a_symlink_is_refused_and_nothing_is_copied(gpg_keys, module_runner, tmp_path):
    key = gpg_keys.publisher
    dest = tmp_path / "repo" / "smollm2-135m-instruct" / "2411" / "gguf-q4_1"
    empty = tmp_path / "empty"
    empty.mkdir()
    res = module_runner("model_manifest", **manifest_args(dest, key, source=str(empty)))
    assert res.get("failed") is True and "%s holds no files to publish" % empty in res["msg"], res
    missing = module_runner("model_manifest", **manifest_args(dest, key, source=str(tmp_path / "nope")))
    assert missing.get("failed") is True and "does not exist" in missing["msg"], missing
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "model.gguf").write_bytes(b"GGUF")
    os.symlink("/etc/passwd", str(linked / "passwd"))
    res = module_runner("model_manifest", **manifest_args(dest, key, source=str(linked)))
    assert res.get("failed") is True and "is a symlink" in res["msg"] and str(linked) in res["msg"], res
    assert not dest.exists()
    # the public key needs the key to export
    nokey = manifest_args(dest, key, source=str(linked), public_key_dir=str(tmp_path / "keys"), sign=False)
    del nokey["key_fingerprint"]
    res = module_runner("model_manifest", **nokey)
    assert res.get("failed") is True and "public_key_dir" in res["msg"] and "key_fingerprint" in res["msg"], res
