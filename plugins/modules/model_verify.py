#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_verify
short_description: Verify a model release against its signed manifest
version_added: 0.1.0
description:
  - Checks that a release directory C(<model>/<version>/<variant>/) is exactly what its
    publisher signed.
  - On the controller (action plugin), fetches C(manifest.json) and C(manifest.json.asc)
    from where the release is, checks the detached GPG signature against a pinned
    keyring and a list of trusted fingerprints (python-gnupg), refuses an expired
    manifest, and checks the release catalog (SQLite) against rollback. A C(sequence)
    lower than the highest already seen for the model is refused unless
    O(allow_rollback=true).
  - Where the files are (the target, Python standard library only), checks every file
    against the manifest whose sha256 the controller verified, and refuses a changed,
    truncated, missing or extra file, a symlink, or a manifest path with C(..) or an
    absolute path, naming the file.
  - Hashes stream with constant memory. A hash cache keyed by (size, mtime_ns, ctime_ns,
    inode, device) makes a re-verify of unchanged files cost one C(stat) per file;
    O(full=true) ignores it.
attributes:
  check_mode:
    details: Verifies the same way; does not write the hash cache or the catalog.
  diff_mode:
    support: none
    details: Verification changes nothing.
  action:
    details: The signature and catalog checks run on the controller.
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.action
  - modelops.fleet.trust
options:
  path:
    description: Release directory on the target (or on the controller with C(delegate_to)).
    type: path
    required: true
  full:
    description: Hash every byte again, ignoring the hash cache.
    type: bool
    default: false
  hash_cache:
    description:
      - Hash cache file on the target. The default, C(auto), is
        C(<model_root>/.modelops/hashcache) for a release at
        C(<model_root>/<model>/<version>/<variant>). An empty string disables the cache.
    type: str
    default: auto
  check_layout:
    description:
      - Require the last three components of O(path) to be the manifest's model name,
        version and variant, so that a whole signed release copied under another
        release's directory (mix-and-match) is refused.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Verify the release on the host against the publisher's key
  modelops.fleet.model_verify:
    path: /srv/models/qwen3-4b-instruct/2507/gguf-q4_k_m
    keyring: [files/publisher.asc]
    trusted_fingerprints: [EF939A1AADB03442628773084F30D2B3F0944B39]

- name: Verify a release in the repository on the controller, hashing everything
  modelops.fleet.model_verify:
    path: /srv/releases/qwen3-4b-instruct/2507/fp16
    keyring: [files/publisher.asc]
    trusted_fingerprints: [EF939A1AADB03442628773084F30D2B3F0944B39]
    full: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
release:
  description: Release name C(<model>-<version>-<variant>).
  returned: success
  type: str
  sample: qwen3-4b-instruct-2507-gguf-q4_k_m
model_name:
  description: Model name from the manifest.
  returned: success
  type: str
  sample: qwen3-4b-instruct
version:
  description: Version from the manifest.
  returned: success
  type: str
  sample: "2507"
variant:
  description: Variant from the manifest.
  returned: success
  type: str
  sample: gguf-q4_k_m
sequence:
  description: The manifest's sequence number.
  returned: success
  type: int
  sample: 12
signer:
  description: Fingerprint of the key that signed the manifest.
  returned: success
  type: str
  sample: EF939A1AADB03442628773084F30D2B3F0944B39
manifest_sha256:
  description: sha256 of the verified C(manifest.json).
  returned: success
  type: str
files:
  description: Number of files checked.
  returned: success
  type: int
  sample: 3
bytes:
  description: Total size of the release's files.
  returned: success
  type: int
bytes_read:
  description: Bytes hashed by this run (0 when every hash came from the cache).
  returned: success
  type: int
files_cached:
  description: Files whose hash came from the cache.
  returned: success
  type: int
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (verify); C(seconds) what the
      work took where it ran (the whole action, on the controller and the host; the module's own
      seconds on the host in C(phases.host_s)), without Ansible's round trip; C(outcome) is ok,
      changed or failed; C(phases) the parts the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: verify, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._files import HashCache, default_cache_path
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, ReleaseError, load_manifest_bytes, release_name, verify_tree,
)
from ansible_collections.modelops.fleet.plugins.module_utils._specs import verify_argument_spec
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._step import account


class ReleaseVerifier(object):
    def __init__(self, module):
        self.module = module
        self.path = module.params["path"]

    def cache(self):
        hc = self.module.params["hash_cache"]
        if hc == "":
            return None
        if hc == "auto":
            hc = default_cache_path(self.path)
        return HashCache(hc)

    def run(self):
        p = self.module.params
        manifest_path = os.path.join(self.path, MANIFEST)
        try:
            with open(manifest_path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ReleaseError("cannot read %s: %s" % (manifest_path, e.strerror))
        sha = hashlib.sha256(raw).hexdigest()
        if p["_manifest_sha256"] and sha != p["_manifest_sha256"].lower():
            raise ReleaseError(
                "%s changed since its signature was checked (sha256 %s, verified %s): "
                "refusing it" % (manifest_path, sha, p["_manifest_sha256"]))
        manifest = load_manifest_bytes(raw, manifest_path)
        ident = [manifest["model_name"], manifest["version"], manifest["variant"]]
        if p["check_layout"] and self.path.rstrip("/").split("/")[-3:] != ident:
            raise ReleaseError(
                "%s describes release %s, which does not belong in %s (expected a path "
                "ending in %s): refusing a manifest from another release"
                % (manifest_path, release_name(*ident), self.path, "/".join(ident)))
        cache = self.cache()
        stats = verify_tree(self.path, manifest, cache=cache, full=p["full"])
        if cache is not None and not self.module.check_mode:
            try:
                cache.save()
            except OSError as e:
                self.module.warn("could not write hash cache %s: %s" % (cache.path, e))
        result = dict(
            release=release_name(manifest["model_name"], manifest["version"],
                                 manifest["variant"]),
            model_name=manifest["model_name"], version=manifest["version"],
            variant=manifest["variant"], sequence=manifest["sequence"],
            manifest_sha256=sha)
        result.update(stats)
        return result


def main():
    module = AnsibleModule(
        argument_spec=verify_argument_spec(),
        supports_check_mode=True,
    )
    account(module, "verify")
    run_and_exit(module, lambda: ReleaseVerifier(module).run(), ReleaseError, exit_extra={"changed": False})


if __name__ == "__main__":
    main()
