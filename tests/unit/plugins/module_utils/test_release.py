# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tracemalloc

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._files import HashCache, sha256_file
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    ReleaseError, build_manifest, canonical_json, check_expiry, check_relpath, load_manifest_bytes,
    parse_release_name, validate_manifest, verify_tree,
)


def refusal(fn, *args, **kw):
    """The message of the ReleaseError that fn(*args, **kw) must raise."""
    with pytest.raises(ReleaseError) as e:
        fn(*args, **kw)
    return str(e.value)


META = {"model_name": "qwen3-4b-instruct", "version": "2507", "variant": "gguf-q4_k_m",
        "sequence": 12, "expires": "2099-01-01T00:00:00Z", "license": "Apache-2.0"}


@pytest.mark.parametrize("name,expected", [
    ("qwen3-4b-instruct-2507-gguf-q4_k_m", ("qwen3-4b-instruct", "2507", "gguf-q4_k_m")),
    ("qwen3-4b-instruct-2507", ("qwen3-4b-instruct", "2507", "fp16")),
    ("qwen3-4b-instruct-2507-gguf-q4_0", ("qwen3-4b-instruct", "2507", "gguf-q4_0")),
    ("qwen3-4b-chat-2507-awq-int4", ("qwen3-4b-chat", "2507", "awq-int4")),
    ("qwen3-4b-instruct-2507-bf16", ("qwen3-4b-instruct", "2507", "bf16")),
    ("smollm2-135m-instruct-20241101-gguf-q4_1", ("smollm2-135m-instruct", "20241101", "gguf-q4_1")),
    ("qwen2.5-7b-instruct-202409-fp16", ("qwen2.5-7b-instruct", "202409", "fp16")),
])
def test_release_names_of_the_seed_parse(name, expected):
    r = parse_release_name(name)
    assert (r["model_name"], r["version"], r["variant"]) == expected


@pytest.mark.parametrize("name,needle", [
    ("qwen3-4b-instruct", "has no version"),
    ("2507-gguf-q4_k_m", "has no version"),
    ("Qwen3-4B-Instruct-2507", "lower-case"),
    ("qwen3-4b-instruct-2507-gguf-q9_x", "variant 'gguf-q9_x'"),
    ("qwen3-4b-instruct-2507-int4", "variant 'int4'"),
    ("qwen3--4b-instruct-2507", "empty part"),
    ("qwen3-4b-instruct-2507-", "empty part"),
    ("qwen3 4b-2507", "lower-case letters, digits"),
    ("", "non-empty"),
])
def test_malformed_release_names_are_refused_with_a_reason(name, needle):
    assert needle in refusal(parse_release_name, name)


@pytest.mark.parametrize("path,needle", [
    ("../etc/passwd", "escapes the release directory"),
    ("weights/../../x", "escapes the release directory"),
    ("/etc/shadow", "absolute path"),
    ("C:/x.gguf", "absolute path"),
    ("a//b", "not a normalised"),
    ("./a", "not a normalised"),
    ("a\\b", "backslash"),
    ("manifest.json", "not listed"),
])
def test_unsafe_manifest_paths_are_refused(path, needle):
    msg = refusal(check_relpath, path)
    assert needle in msg
    assert repr(path) in msg


def make_release(root, files=None):
    rel = root / "qwen3-4b-instruct" / "2507" / "gguf-q4_k_m"
    rel.mkdir(parents=True)
    files = files or {"model.gguf": b"GGUF" + os.urandom(300000),
                      "tokenizer.json": b'{"vocab": {}}', "config/params.json": b"{}"}
    for name, data in files.items():
        p = rel / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return rel, files


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    rel, files = make_release(tmp_path)
    m = build_manifest(str(rel), META)
    assert m["schema"] == 1 and m["sequence"] == 12 and m["license"] == "Apache-2.0"
    assert [f["path"] for f in m["files"]] == sorted(files)
    for f in m["files"]:
        assert f["size"] == len(files[f["path"]])
        assert f["sha256"] == hashlib.sha256(files[f["path"]]).hexdigest()


def test_unchanged_directory_gives_byte_identical_manifest(tmp_path):
    rel, dummy = make_release(tmp_path)
    a = canonical_json(build_manifest(str(rel), META))
    (rel / "manifest.json").write_bytes(a)
    (rel / "manifest.json.asc").write_bytes(b"sig")
    b = canonical_json(build_manifest(str(rel), META))
    assert a == b  # the manifest and its signature are not part of the file list


def test_build_refuses_symlinks(tmp_path):
    rel, dummy = make_release(tmp_path)
    os.symlink("/etc/passwd", str(rel / "passwd"))
    assert "passwd is a symlink (-> /etc/passwd)" in refusal(build_manifest, str(rel), META)


def verified(tmp_path):
    rel, files = make_release(tmp_path)
    m = build_manifest(str(rel), META)
    return rel, files, m


def test_intact_release_verifies(tmp_path):
    rel, files, m = verified(tmp_path)
    r = verify_tree(str(rel), m)
    assert r["files"] == 3 and r["bytes"] == sum(len(v) for v in files.values())
    assert r["bytes_read"] == r["bytes"]


def test_changed_file_is_named(tmp_path):
    rel, files, m = verified(tmp_path)
    data = bytearray(files["model.gguf"])
    data[1000] ^= 0xFF
    (rel / "model.gguf").write_bytes(bytes(data))
    assert "changed file %s/model.gguf" % rel in refusal(verify_tree, str(rel), m)


def test_truncated_file_is_named(tmp_path):
    rel, files, m = verified(tmp_path)
    (rel / "model.gguf").write_bytes(files["model.gguf"][:1000])
    assert "truncated file %s/model.gguf: 1000 bytes" % rel in refusal(verify_tree, str(rel), m)


def test_missing_and_extra_files_are_named(tmp_path):
    rel, files, m = verified(tmp_path)
    os.unlink(str(rel / "tokenizer.json"))
    (rel / "evil.py").write_bytes(b"import os")
    msg = refusal(verify_tree, str(rel), m)
    assert "missing file %s/tokenizer.json" % rel in msg
    assert "extra file %s/evil.py" % rel in msg


def test_symlink_in_release_is_refused(tmp_path):
    rel, files, m = verified(tmp_path)
    os.unlink(str(rel / "tokenizer.json"))
    os.symlink("/etc/hostname", str(rel / "tokenizer.json"))
    assert "tokenizer.json is a symlink" in refusal(verify_tree, str(rel), m)


def test_symlinked_directory_is_refused(tmp_path):
    rel, files, m = verified(tmp_path)
    os.symlink("/etc", str(rel / "etc"))
    assert "etc is a symlink (-> /etc)" in refusal(verify_tree, str(rel), m)


@pytest.mark.parametrize("mutate,needle", [
    (lambda m: m["files"][0].update(path="../../../../etc/passwd"), "escapes the release"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "absolute path"),
    (lambda m: m.update(sequence=-1), "sequence must be"),
    (lambda m: m.update(sequence="12"), "sequence must be"),
    (lambda m: m.pop("expires"), "required field 'expires'"),
    (lambda m: m.update(expires="next year"), "not an ISO 8601"),
    (lambda m: m.update(schema=2), "unsupported schema 2"),
    (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
    (lambda m: m["files"][0].update(sha256="abc"), "no valid sha256"),
    (lambda m: m.update(variant="weird"), "variant 'weird'"),
])
def test_malformed_manifests_are_refused(tmp_path, mutate, needle):
    rel, files, m = verified(tmp_path)
    bad = json.loads(json.dumps(m))
    mutate(bad)
    assert needle in refusal(validate_manifest, bad, "x/manifest.json")


def test_not_json_is_refused():
    assert "h:/m/manifest.json is not valid JSON" in refusal(load_manifest_bytes, b"{not json", "h:/m/manifest.json")


def test_expired_manifest_is_refused(tmp_path):
    rel, files, m = verified(tmp_path)
    m["expires"] = "2020-01-01T00:00:00Z"
    msg = refusal(check_expiry, m)
    assert "expired at 2020-01-01T00:00:00Z" in msg
    assert "qwen3-4b-instruct-2507-gguf-q4_k_m" in msg
    m["expires"] = "2099-01-01T00:00:00Z"
    check_expiry(m)
    now = datetime.datetime(2099, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)
    refusal(check_expiry, m, now=now)


def test_hash_cache_makes_reverify_read_nothing(tmp_path):
    rel, files, m = verified(tmp_path)
    cache_file = str(tmp_path / "hashcache")
    c = HashCache(cache_file)
    first = verify_tree(str(rel), m, cache=c)
    c.save()
    assert first["bytes_read"] == first["bytes"] and first["files_hashed"] == 3
    second = verify_tree(str(rel), m, cache=HashCache(cache_file))
    assert second["bytes_read"] == 0 and second["files_cached"] == 3
    full = verify_tree(str(rel), m, cache=HashCache(cache_file), full=True)
    assert full["bytes_read"] == first["bytes"]


def test_hash_cache_is_not_fooled_by_restored_mtime(tmp_path):
    """Same size, same mtime (touch -d): ctime still changes, so the file is hashed."""
    rel, files, m = verified(tmp_path)
    cache_file = str(tmp_path / "hashcache")
    c = HashCache(cache_file)
    verify_tree(str(rel), m, cache=c)
    c.save()
    target = rel / "model.gguf"
    st = os.stat(str(target))
    data = bytearray(files["model.gguf"])
    data[5] ^= 0x01
    with open(str(target), "r+b") as f:
        f.write(bytes(data))
    os.utime(str(target), ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(str(target)).st_mtime_ns == st.st_mtime_ns
    assert "changed file" in refusal(verify_tree, str(rel), m, cache=HashCache(cache_file))


def test_damaged_cache_is_ignored(tmp_path):
    rel, files, m = verified(tmp_path)
    cache_file = tmp_path / "hashcache"
    cache_file.write_text("{garbage")
    r = verify_tree(str(rel), m, cache=HashCache(str(cache_file)))
    assert r["files_hashed"] == 3


def test_streaming_hash_memory_does_not_grow_with_file_size(tmp_path):
    small = tmp_path / "small"
    big = tmp_path / "big"
    small.write_bytes(os.urandom(1 << 20))
    with open(str(big), "wb") as f:
        for dummy in range(64):
            f.write(os.urandom(1 << 20))
    peaks = []
    for p in (small, big):
        tracemalloc.start()
        digest, size = sha256_file(str(p))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert digest == hashlib.sha256(p.read_bytes()).hexdigest()
    # 64x the data, and the peak stays within a few KiB of the small file's (one buffer).
    assert peaks[1] < peaks[0] + 64 * 1024, peaks
    assert peaks[1] < 4 * (1 << 20)


def test_engine_variant_mismatch_llamacpp_gguf_vllm_safetensors():
    from ansible_collections.modelops.fleet.plugins.module_utils._release import engine_variant_mismatch
    assert engine_variant_mismatch("llamacpp", "gguf-q4_k_m") == ""
    assert engine_variant_mismatch("vllm", "bf16") == ""
    assert engine_variant_mismatch("vllm", "awq-int4") == ""
    assert "not GGUF" in engine_variant_mismatch("vllm", "gguf-q4_1")
    assert "gguf-*" in engine_variant_mismatch("llamacpp", "fp16")
    assert "unknown engine 'tgi'" in engine_variant_mismatch("tgi", "fp16")


def test_stream_hashing_copies_hashes_and_stops_at_the_limit():
    import io
    from ansible_collections.modelops.fleet.plugins.module_utils import _files as R
    data = os.urandom(3 * 1000 + 17)
    out = io.BytesIO()
    h = hashlib.sha256()
    # A limit inside a chunk: exactly that many bytes are copied and hashed, never more
    # (a mirror that sends more than the manifest declares is not read past it).
    n = R.stream_hashing(io.BytesIO(data), h, limit=2500, out=out, chunk=1000)
    assert n == 2500 and out.getvalue() == data[:2500] and h.hexdigest() == hashlib.sha256(data[:2500]).hexdigest()
    # No limit: to EOF; no out: hash only.
    h = hashlib.sha256()
    assert R.stream_hashing(io.BytesIO(data), h, chunk=1000) == len(data)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    # before_chunk runs before every read and its exception stops the copy (the deadline).
    calls = []

    def stop_at_third():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("deadline")
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        R.stream_hashing(io.BytesIO(data), hashlib.sha256(), out=out, before_chunk=stop_at_third, chunk=1000)
    assert out.getvalue() == data[:2000]


def test_sha256_prefix_and_file_agree_with_hashlib(tmp_path):
    from ansible_collections.modelops.fleet.plugins.module_utils import _files as R
    data = os.urandom((1 << 20) + 5)
    p = tmp_path / "f"
    p.write_bytes(data)
    h, n = R.sha256_prefix(str(p), 1 << 20)
    assert n == 1 << 20 and h.hexdigest() == hashlib.sha256(data[:1 << 20]).hexdigest()
    assert R.sha256_file(str(p)) == (hashlib.sha256(data).hexdigest(), len(data))
