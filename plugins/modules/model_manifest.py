#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_manifest
short_description: Build and sign the manifest of a model release
version_added: 0.1.0
description:
  - Builds C(manifest.json) for a release directory C(<model>/<version>/<variant>/)
    with model name, version, variant, sequence, expiry, descriptive fields, and every file
    with its path, size and sha256.
  - Signs it with a detached ASCII-armoured GPG signature, C(manifest.json.asc)
    (python-gnupg, key chosen by fingerprint).
  - Idempotent. An unchanged directory gives a byte-identical manifest, the existing
    signature is kept if it is a good signature by the key, and the module reports
    C(changed=false).
  - Usually runs on the controller (the publisher's machine), with C(delegate_to).
requirements:
  - python-gnupg (when O(sign=true))
attributes:
  check_mode:
    details: Reports whether the manifest or signature would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the manifest before and after.
extends_documentation_fragment:
  - modelops.fleet.attributes
options:
  path:
    description:
      - Release directory. Its last three components must be the model name, version
        and variant.
    type: path
    required: true
  name:
    description:
      - Release name in the seed's style, C(<model>-<version>[-<variant>]), for example
        C(qwen3-4b-instruct-2507-gguf-q4_k_m). The variant defaults to C(fp16).
      - Give either O(name) or O(model_name), O(version) and O(variant).
    type: str
  model_name:
    description: Model name, for example C(qwen3-4b-instruct).
    type: str
  version:
    description: Version, a release date of 4, 6 or 8 digits such as C(2507).
    type: str
  variant:
    description: Variant, for example C(fp16), C(bf16), C(gguf-q4_k_m), C(awq-int4).
    type: str
  sequence:
    description:
      - Release sequence number; it only grows per model. Hosts and the catalog refuse a
        lower one than they have seen (rollback protection).
    type: int
    required: true
  expires:
    description:
      - Expiry of the manifest, ISO 8601 (C(2027-01-01T00:00:00Z)). An expired manifest
        is refused (freeze-attack protection).
      - Or relative, C(+<days>d) (for example C(+365d)). Then an existing manifest whose
        content is otherwise unchanged and that has not expired keeps its expiry, so that
        re-running changes nothing.
    type: str
    required: true
  release_date:
    description: Release date, C(YYYY-MM-DD).
    type: str
  parameters:
    description: Parameter count, for example C(4B).
    type: str
  context_length:
    description: Context length in tokens.
    type: int
  license:
    description: License of the weights, for example C(Apache-2.0).
    type: str
  frameworks:
    description: Engines the variant is for, for example C(llama.cpp) or C(vLLM).
    type: list
    elements: str
  platforms:
    description: CPU architectures, for example C(x86_64), C(arm64).
    type: list
    elements: str
  sign:
    description: Whether to write the detached signature C(manifest.json.asc).
    type: bool
    default: true
  gnupghome:
    description: GnuPG home holding the signing key. Defaults to GnuPG's own default.
    type: path
  key_fingerprint:
    description: Fingerprint of the signing key. Required when O(sign=true).
    type: str
  passphrase:
    description: Passphrase of the signing key.
    type: str
  index:
    description:
      - Add the release to the repository's C(index.json) (C(<repository>/index.json),
        three levels above O(path)), which mirrors serve so that hosts and
        M(modelops.fleet.model_release_info) can list releases.
    type: bool
    default: true
  source:
    description:
      - Directory of model files to publish. Its files, with their subdirectories, are
        copied into O(path) before the manifest is built (O(path) is created), each only
        when the copy there holds other bytes; files already in O(path) stay.
      - A source that holds no file, or holds a symlink or anything but regular files and
        directories, is refused and nothing is copied.
    type: path
  public_key_dir:
    description:
      - Directory to write the signing key's ASCII-armoured public key into, as
        C(<key_fingerprint>.asc) (a repository keeps it in C(<repository>/keys/), where
        hosts' keyrings and mirrors find it). Rewritten only when it differs.
      - Needs O(gnupghome) and O(key_fingerprint).
    type: path
  hash_cache:
    description:
      - Hash cache file, so that re-building the manifest of unchanged files does not
        read them again. C(auto) is C(<repository>/.modelops/hashcache); an empty string
        disables the cache.
    type: str
    default: auto
"""

EXAMPLES = r"""
- name: Publish a directory of model files as a signed release, with the publisher's public key
  modelops.fleet.model_manifest:
    source: /data/exports/qwen3-4b-instruct-q4_k_m
    path: /srv/releases/qwen3-4b-instruct/2507/gguf-q4_k_m
    name: qwen3-4b-instruct-2507-gguf-q4_k_m
    sequence: 12
    expires: +365d
    gnupghome: ~/.gnupg-release
    key_fingerprint: EF939A1AADB03442628773084F30D2B3F0944B39
    public_key_dir: /srv/releases/keys
  delegate_to: localhost

- name: Build and sign the manifest of a GGUF release
  modelops.fleet.model_manifest:
    path: /srv/releases/qwen3-4b-instruct/2507/gguf-q4_k_m
    name: qwen3-4b-instruct-2507-gguf-q4_k_m
    sequence: 12
    expires: "2027-01-01T00:00:00Z"
    release_date: "2025-07-15"
    parameters: 4B
    context_length: 262144
    license: Apache-2.0
    frameworks: [llama.cpp]
    platforms: [x86_64, arm64]
    gnupghome: ~/.gnupg-release
    key_fingerprint: EF939A1AADB03442628773084F30D2B3F0944B39
    passphrase: "{{ vault_release_key_passphrase }}"
  delegate_to: localhost
"""

RETURN = r"""
copied:
  description: The files copied from O(source) into the release (or that would be, in check mode).
  returned: when O(source) is given
  type: list
  elements: str
  sample: [qwen3-4b-instruct-2507-q4_k_m.gguf]
public_key:
  description: Path of the public key written under O(public_key_dir).
  returned: when O(public_key_dir) is given
  type: str
manifest:
  description: The manifest as written.
  returned: success
  type: dict
manifest_sha256:
  description: sha256 of C(manifest.json).
  returned: success
  type: str
release:
  description: Release name C(<model>-<version>-<variant>).
  returned: success
  type: str
  sample: qwen3-4b-instruct-2507-gguf-q4_k_m
files:
  description: Number of files in the release.
  returned: success
  type: int
bytes:
  description: Total size of the files.
  returned: success
  type: int
signed:
  description: Whether a new signature was written by this run (or would be, in check mode).
  returned: success
  type: bool
"""

import datetime
import hashlib
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.modelops.fleet.plugins.module_utils._gpg import (
    GNUPG_IMPORT_ERROR, HAS_GNUPG, SignatureError, export_public_key, sign_detached, signature_is_valid_for,
)
from ansible_collections.modelops.fleet.plugins.module_utils._repository import INDEX, update_index
from ansible_collections.modelops.fleet.plugins.module_utils._files import (
    HashCache, atomic_write, copy_atomic, default_cache_path, same_content,
)
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, SIGNATURE, ReleaseError, build_manifest, canonical_json, check_relpath, parse_release_name,
    parse_time, release_name, scan_tree, utcnow, validate_model_name, validate_variant, validate_version,
)
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit

DESCRIPTIVE = ("release_date", "parameters", "context_length", "license", "frameworks",
               "platforms")


def read_or_none(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError):
        return None


class ManifestBuilder(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.path = self.p["path"].rstrip("/")

    def identity(self):
        p = self.p
        if p["name"]:
            ident = parse_release_name(p["name"])
        else:
            ident = {"model_name": validate_model_name(p["model_name"]),
                     "version": validate_version(p["version"]),
                     "variant": validate_variant(p["variant"])}
        parts = self.path.split("/")[-3:]
        want = [ident["model_name"], ident["version"], ident["variant"]]
        if parts != want:
            raise ReleaseError(
                "release directory %s does not match release %s: expected a path ending in "
                "%s" % (self.path, release_name(*want), "/".join(want)))
        return ident

    @staticmethod
    def indexed(repo_dir, manifest, sha):
        try:
            with open(os.path.join(repo_dir, INDEX), "rb") as f:
                entries = json.loads(f.read().decode("utf-8")).get("releases", [])
        except (IOError, OSError, ValueError, UnicodeDecodeError):
            return False
        return any(e.get("manifest_sha256") == sha and e.get("sequence") == manifest["sequence"]
                   for e in entries)

    @staticmethod
    def expires(value):
        m = re.match(r"^\+(\d+)d$", value.strip())
        if m:
            t = utcnow() + datetime.timedelta(days=int(m.group(1)))
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        parse_time(value, "expires")
        return value

    @staticmethod
    def keep_old_expiry(manifest, old_raw):
        try:
            old = json.loads(old_raw.decode("utf-8"))
            old_expires = parse_time(old.get("expires"), "expires")
        except (ValueError, UnicodeDecodeError, ReleaseError, AttributeError):
            return manifest
        if old_expires <= utcnow():
            return manifest
        candidate = dict(manifest, expires=old["expires"])
        return candidate if candidate == old else manifest

    def copy_source(self, source):
        """Copy source's files into the release directory where they differ; the relative
        paths copied (or that would be, in check mode)."""
        source = source.rstrip("/")
        if not os.path.isdir(source) or os.path.islink(source):
            raise ReleaseError("source %s does not exist or is not a directory: give the directory "
                               "of model files to publish" % source)
        try:
            files = scan_tree(source)
        except ReleaseError as e:
            raise ReleaseError("source %s cannot be published: %s" % (source, e))
        if not files:
            raise ReleaseError("source %s holds no files to publish" % source)
        for rel in files:
            check_relpath(rel)
        copied = []
        for rel in sorted(files):
            src = os.path.join(source, rel)
            dest = os.path.join(self.path, rel)
            if same_content(src, dest):
                # the bytes are there; a mode other than 0644 is set right (in check mode too, reported)
                if os.stat(dest).st_mode & 0o7777 != 0o644:
                    copied.append(rel)
                    if not self.module.check_mode:
                        os.chmod(dest, 0o644)
                continue
            copied.append(rel)
            if not self.module.check_mode:
                directory = os.path.dirname(dest)
                if not os.path.isdir(directory):
                    os.makedirs(directory, 0o755)
                copy_atomic(src, dest)
        return copied

    def write_public_key(self, key_dir):
        """Write the signing key's public key into key_dir; (path, changed)."""
        p = self.p
        armoured = export_public_key(p["gnupghome"], p["key_fingerprint"])
        path = os.path.join(key_dir, "%s.asc" % p["key_fingerprint"])
        if read_or_none(path) == armoured:
            return path, False
        if not self.module.check_mode:
            atomic_write(path, armoured)
        return path, True

    def run(self):
        p = self.p
        ident = self.identity()
        copied = None
        if p["source"]:
            copied = self.copy_source(p["source"])
        manifest_file = os.path.join(self.path, MANIFEST)
        old = read_or_none(manifest_file)
        expires = self.expires(p["expires"])
        meta = dict(ident, sequence=p["sequence"], expires=expires)
        for field in DESCRIPTIVE:
            meta[field] = p[field]
        hc = p["hash_cache"]
        cache = None
        if hc:
            cache = HashCache(default_cache_path(self.path) if hc == "auto" else hc)
        # in check mode the copies were not made: the manifest is built from the source
        manifest = build_manifest(p["source"] if copied and self.module.check_mode else self.path, meta, cache=cache)
        for f in manifest["files"]:
            check_relpath(f["path"])
        if p["expires"].startswith("+") and old:
            manifest = self.keep_old_expiry(manifest, old)
        new = canonical_json(manifest)
        sig_file = os.path.join(self.path, SIGNATURE)
        old_sig = read_or_none(sig_file)

        manifest_changed = old != new
        need_sign = False
        if p["sign"]:
            need_sign = manifest_changed or not signature_is_valid_for(
                new, old_sig, p["gnupghome"], p["key_fingerprint"])
        changed = manifest_changed or need_sign or bool(copied)

        if changed and not self.module.check_mode:
            sig = None
            if need_sign:
                # Sign first: a failed signature leaves the old manifest and signature.
                sig = sign_detached(new, p["gnupghome"], p["key_fingerprint"],
                                    p["passphrase"])
            atomic_write(manifest_file, new)
            if sig is not None:
                atomic_write(sig_file, sig)
        sha = hashlib.sha256(new).hexdigest()
        if p["index"]:
            repo_dir = os.path.dirname(os.path.dirname(os.path.dirname(self.path)))
            if self.module.check_mode:
                changed = changed or not self.indexed(repo_dir, manifest, sha)
            elif update_index(repo_dir, manifest, sha):
                changed = True
        if cache is not None and not self.module.check_mode:
            try:
                cache.save()
            except OSError as e:
                self.module.warn("could not write hash cache %s: %s" % (cache.path, e))

        public_key = None
        if p["public_key_dir"]:
            public_key, key_changed = self.write_public_key(p["public_key_dir"])
            changed = changed or key_changed

        result = dict(changed=changed, manifest=manifest,
                      manifest_sha256=sha,
                      release=release_name(ident["model_name"], ident["version"],
                                           ident["variant"]),
                      files=len(manifest["files"]),
                      bytes=sum(f["size"] for f in manifest["files"]),
                      signed=bool(need_sign and not self.module.check_mode))
        if copied is not None:
            result["copied"] = copied
        if public_key is not None:
            result["public_key"] = public_key
        if self.module._diff:
            result["diff"] = {"before": (old or b"").decode("utf-8", "replace"),
                              "after": new.decode("utf-8"),
                              "before_header": manifest_file, "after_header": manifest_file}
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            name=dict(type="str"),
            model_name=dict(type="str"),
            version=dict(type="str"),
            variant=dict(type="str"),
            sequence=dict(type="int", required=True),
            expires=dict(type="str", required=True),
            release_date=dict(type="str"),
            parameters=dict(type="str"),
            context_length=dict(type="int"),
            license=dict(type="str"),
            frameworks=dict(type="list", elements="str"),
            platforms=dict(type="list", elements="str"),
            sign=dict(type="bool", default=True),
            gnupghome=dict(type="path"),
            key_fingerprint=dict(type="str", no_log=False),
            passphrase=dict(type="str", no_log=True),
            hash_cache=dict(type="str", default="auto"),
            source=dict(type="path"),
            public_key_dir=dict(type="path"),
            index=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("name", "model_name"), ("name", "version"), ("name", "variant")],
        required_one_of=[("name", "model_name")],
        required_together=[("model_name", "version", "variant")],
        required_if=[("sign", True, ("key_fingerprint",))],
        required_by={"public_key_dir": "key_fingerprint"},
        supports_check_mode=True,
    )
    if module.params["sign"] and not HAS_GNUPG:
        module.fail_json(msg=missing_required_lib("python-gnupg"),
                         exception=GNUPG_IMPORT_ERROR)
    run_and_exit(module, lambda: ManifestBuilder(module).run(), (ReleaseError, SignatureError))


if __name__ == "__main__":
    main()
