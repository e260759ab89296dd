# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Release names and manifests (the file helpers they use, streaming hashes and the hash
cache, are in _files.py).

Standard library only: this runs on target hosts (edge devices have no extra Python
packages) as well as on the controller. Private to the collection.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import unicodedata

from ansible_collections.modelops.fleet.plugins.module_utils._files import hash_files

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.asc"
SCHEMA_VERSION = 1

_MODEL_TOKEN = re.compile(r"^[a-z0-9][a-z0-9.]*$")
_VERSION = re.compile(r"^(\d{4}|\d{6}|\d{8})$")
VARIANT_RE = re.compile(
    r"^(fp32|fp16|bf16|fp8|safetensors|"
    r"gguf-(f32|f16|bf16|q[2-8](_[0-9a-z]+)*|iq[1-4](_[0-9a-z]+)*)|"
    r"awq-int[48]|gptq-int[48])$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(Exception):
    """A release, its name or its manifest is not acceptable. The message says why."""


# --------------------------------------------------------------------------- names

def parse_release_name(name, default_variant="fp16"):
    """Split ``qwen3-4b-instruct-2507-gguf-q4_k_m`` into model, version and variant.

    The version is the first all-digit token of 4, 6 or 8 digits (``2507``, ``202507``,
    ``20250715``) after at least one model token; everything after it is the variant,
    which defaults to ``fp16`` as in the seed's naming (``qwen3-4b-instruct-2507`` is the
    fp16 release).
    """
    if not isinstance(name, str) or not name:
        raise ReleaseError("release name must be a non-empty string, got %r" % (name,))
    if name != name.lower() or not re.match(r"^[a-z0-9._-]+$", name):
        raise ReleaseError(
            "release name %r: use lower-case letters, digits, '.', '_' and '-' only "
            "(e.g. qwen3-4b-instruct-2507-gguf-q4_k_m)" % name)
    tokens = name.split("-")
    if any(t == "" for t in tokens):
        raise ReleaseError("release name %r has an empty part (doubled or trailing '-')" % name)
    for i, tok in enumerate(tokens):
        if i > 0 and _VERSION.match(tok):
            model = "-".join(tokens[:i])
            variant = "-".join(tokens[i + 1:]) or default_variant
            validate_model_name(model)
            validate_variant(variant, name)
            return {"model_name": model, "version": tok, "variant": variant}
    raise ReleaseError(
        "release name %r has no version: expected <model>-<version>[-<variant>], the version "
        "being a release date of 4, 6 or 8 digits such as 2507 (e.g. "
        "qwen3-4b-instruct-2507-gguf-q4_k_m)" % name)


def validate_model_name(model):
    if not isinstance(model, str) or not model or not all(_MODEL_TOKEN.match(t) for t in model.split("-")):
        raise ReleaseError(
            "model name %r: use lower-case letters, digits and '.', separated by '-' "
            "(e.g. qwen3-4b-instruct)" % (model,))
    if any(_VERSION.match(t) for t in model.split("-")[1:]):
        raise ReleaseError("model name %r contains a date-like part; the version goes "
                           "after the model name" % model)
    return model


def validate_version(version):
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ReleaseError("version %r: expected a release date of 4, 6 or 8 digits "
                           "(e.g. 2507)" % (version,))
    return version


def validate_variant(variant, name=None):
    if not isinstance(variant, str) or not VARIANT_RE.match(variant):
        raise ReleaseError(
            "variant %r%s is not known: expected fp16, bf16, fp32, fp8, safetensors, "
            "gguf-<quant> (e.g. gguf-q4_k_m), awq-int4/8 or gptq-int4/8"
            % (variant, " in release name %r" % name if name else ""))
    return variant


# Which variants each engine can serve: llama.cpp loads GGUF files, vLLM loads HF-format
# directories (safetensors: fp16, bf16, awq-*, gptq-*...), not GGUF.
ENGINES = {
    "llamacpp": "llama.cpp serves gguf-* variants",
    "vllm": "vLLM serves safetensors variants (fp16, bf16, awq-*, gptq-*), not GGUF",
}


def engine_variant_mismatch(engine, variant):
    """'' when engine can serve variant, otherwise why not (for an error message)."""
    if engine not in ENGINES:
        return "unknown engine %r: use one of %s" % (engine, ", ".join(sorted(ENGINES)))
    is_gguf = str(variant).startswith("gguf-")
    if (engine == "llamacpp") == is_gguf:
        return ""
    return ENGINES[engine]


def release_name(model, version, variant):
    return "%s-%s-%s" % (model, version, variant)


# --------------------------------------------------------------------------- paths

# The path policy of manifest entries, the same at publish (build_manifest), on the
# controller (model_release_info, model_verify) and on the host (model_sync), written
# down in docs/manifest.md of the collection.
MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255


def check_relpath(path):
    """A manifest file path: a relative, normalised (NFC) UTF-8 path of '/'-separated
    components, none empty, '.' or '..'; no backslash, no control or format character; at
    most MAX_COMPONENT_BYTES per component and MAX_PATH_BYTES in all (UTF-8)."""
    if not isinstance(path, str) or not path:
        raise ReleaseError("manifest file entry has an empty or non-string path: %r" % (path,))
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ReleaseError("manifest file %r is an absolute path; only paths relative to "
                           "the release directory are allowed" % path)
    if "\\" in path or "\x00" in path:
        raise ReleaseError("manifest file %r contains a backslash or NUL byte" % path)
    bad = [c for c in path if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    if bad:
        raise ReleaseError("manifest file %r contains a control or invisible character (%s); "
                           "rename the file" % (path, ", ".join("U+%04X" % ord(c) for c in bad[:3])))
    parts = path.split("/")
    if ".." in parts:
        raise ReleaseError("manifest file %r escapes the release directory ('..'); refusing"
                           % path)
    if any(p in ("", ".") for p in parts):
        raise ReleaseError("manifest file %r is not a normalised relative path" % path)
    if unicodedata.normalize("NFC", path) != path:
        raise ReleaseError("manifest file %r is not in Unicode normal form NFC; rename the file to "
                           "its NFC form (%r)" % (path, unicodedata.normalize("NFC", path)))
    encoded = path.encode("utf-8")
    if len(encoded) > MAX_PATH_BYTES or any(len(p.encode("utf-8")) > MAX_COMPONENT_BYTES for p in parts):
        raise ReleaseError("manifest file %r is too long (at most %d bytes in all and %d per "
                           "component, UTF-8)" % (path[:80] + "...", MAX_PATH_BYTES, MAX_COMPONENT_BYTES))
    if path in (MANIFEST, SIGNATURE):
        raise ReleaseError("manifest file %r: the manifest and its signature are not listed "
                           "in the manifest" % path)
    return path


def path_collision_key(path):
    """Two paths with the same key would be the same file on a case-insensitive or
    normalising filesystem."""
    return unicodedata.normalize("NFKC", path).casefold()


def check_paths_distinct(paths, source="manifest.json"):
    """No two entries that collide after normalisation, and no entry that is both a file
    and a directory of another entry."""
    seen = {}
    for path in paths:
        key = path_collision_key(path)
        if key in seen:
            raise ReleaseError("%s: files %r and %r collide (the same name after Unicode and case "
                               "normalisation): rename one" % (source, seen[key], path))
        seen[key] = path
    for key, path in seen.items():
        parts = key.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                raise ReleaseError("%s: %r is listed as a file and is also the directory of %r"
                                   % (source, seen[prefix], path))


def scan_tree(root):
    """Return {relpath: os.stat_result} of the regular files under root.

    Symlinks (anywhere, to anything), sockets, devices and FIFOs are refused: a release is
    plain files and directories only. The manifest and its signature are not included.
    """
    if not os.path.isdir(root) or os.path.islink(root):
        raise ReleaseError("release directory %s does not exist or is not a directory" % root)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                raise ReleaseError(
                    "%s is a symlink (-> %s); releases must not contain symlinks: replace "
                    "it with the file itself" % (full, os.readlink(full)))
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ReleaseError("%s is not a regular file" % full)
            if rel in (MANIFEST, SIGNATURE):
                continue
            found[rel] = st
    return found


# --------------------------------------------------------------------------- manifests

def canonical_json(data):
    """The bytes of manifest.json: stable key order and layout, so an unchanged release
    gives a byte-identical manifest (and an unchanged signature)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def parse_time(value, what):
    if not isinstance(value, str):
        raise ReleaseError("%s must be an ISO 8601 date-time string such as "
                           "2027-01-01T00:00:00Z, got %r" % (what, value))
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        t = datetime.datetime.fromisoformat(v)
    except ValueError:
        raise ReleaseError("%s %r is not an ISO 8601 date-time such as 2027-01-01T00:00:00Z"
                           % (what, value))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def validate_manifest(data, source="manifest.json"):
    """Check the structure of a parsed manifest; return it. Raises ReleaseError."""
    if not isinstance(data, dict):
        raise ReleaseError("%s is not a JSON object" % source)
    if data.get("schema") != SCHEMA_VERSION:
        raise ReleaseError("%s: unsupported schema %r (this collection reads schema %d)"
                           % (source, data.get("schema"), SCHEMA_VERSION))
    for field in ("model_name", "version", "variant", "sequence", "expires", "files"):
        if field not in data:
            raise ReleaseError("%s: required field %r is missing" % (source, field))
    validate_model_name(data["model_name"])
    validate_version(data["version"])
    validate_variant(data["variant"])
    if not isinstance(data["sequence"], int) or isinstance(data["sequence"], bool) \
            or data["sequence"] < 0:
        raise ReleaseError("%s: sequence must be a non-negative integer, got %r"
                           % (source, data["sequence"]))
    parse_time(data["expires"], "%s: expires" % source)
    files = data["files"]
    if not isinstance(files, list) or not files:
        raise ReleaseError("%s: files must be a non-empty list" % source)
    seen = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise ReleaseError("%s: every files entry must be an object" % source)
        path = check_relpath(entry.get("path"))
        if path in seen:
            raise ReleaseError("%s: file %r is listed twice" % (source, path))
        seen.add(path)
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ReleaseError("%s: file %r has no valid size" % (source, path))
        if not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"]):
            raise ReleaseError("%s: file %r has no valid sha256 (64 lower-case hex digits)"
                               % (source, path))
    check_paths_distinct([f["path"] for f in files], source)
    return data


def load_manifest_bytes(raw, source="manifest.json"):
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReleaseError("%s is not valid JSON: %s" % (source, e))
    return validate_manifest(data, source)


def check_expiry(manifest, now=None, source="manifest.json"):
    expires = parse_time(manifest["expires"], "%s: expires" % source)
    now = now or utcnow()
    if expires <= now:
        raise ReleaseError(
            "%s of %s expired at %s: refusing a stale release (freeze-attack protection); "
            "ask the publisher to re-sign it with a later 'expires'"
            % (source, release_name(manifest["model_name"], manifest["version"],
                                    manifest["variant"]), manifest["expires"]))


def build_manifest(root, meta, cache=None, full=False):
    """Build the manifest dict for the release directory root.

    meta holds model_name, version, variant, sequence, expires and optional descriptive
    fields (release_date, parameters, context_length, license, frameworks, platforms).
    """
    stats = scan_tree(root)
    if not stats:
        raise ReleaseError("release directory %s holds no files" % root)
    rels = sorted(stats)
    for rel in rels:
        check_relpath(rel)
    hashes, dummy, dummy2 = hash_files(root, rels, stats, cache=cache, full=full)
    data = dict((k, v) for k, v in meta.items() if v is not None)
    data["schema"] = SCHEMA_VERSION
    data["files"] = [{"path": rel, "size": hashes[rel][1], "sha256": hashes[rel][0]}
                     for rel in rels]
    return validate_manifest(data, os.path.join(root, MANIFEST))


def verify_tree(root, manifest, cache=None, full=False):
    """Check the files under root against the manifest.

    Returns a dict with files, bytes, bytes_read (hashed now, not from the cache) and
    cached (files whose hash came from the cache). Raises ReleaseError naming every
    missing, extra, resized or changed file.
    """
    stats = scan_tree(root)
    expected = dict((f["path"], f) for f in manifest["files"])
    problems = []
    for rel in sorted(set(stats) - set(expected)):
        problems.append("extra file %s (not in the manifest)" % os.path.join(root, rel))
    for rel in sorted(set(expected) - set(stats)):
        problems.append("missing file %s" % os.path.join(root, rel))
    present = sorted(set(expected) & set(stats))
    to_hash = []
    for rel in present:
        want, have = expected[rel]["size"], stats[rel].st_size
        if have != want:
            kind = "truncated" if have < want else "resized"
            problems.append("%s file %s: %d bytes, manifest says %d"
                            % (kind, os.path.join(root, rel), have, want))
        else:
            to_hash.append(rel)
    hashes, read, hashed = hash_files(root, to_hash, stats, cache=cache, full=full)
    for rel in to_hash:
        if hashes[rel][0] != expected[rel]["sha256"]:
            problems.append("changed file %s: sha256 %s, manifest says %s"
                            % (os.path.join(root, rel), hashes[rel][0],
                               expected[rel]["sha256"]))
    if problems:
        raise ReleaseError("release %s does not match its manifest: %s"
                           % (root, "; ".join(problems)))
    total = sum(f["size"] for f in manifest["files"])
    return {"files": len(expected), "bytes": total, "bytes_read": read,
            "files_hashed": hashed, "files_cached": len(to_hash) - hashed}
