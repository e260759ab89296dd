#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_release_info
short_description: Resolve a model release in a release repository ("latest" or pinned)
version_added: 0.1.0
description:
  - Lists the releases of a model variant in a release repository (a local directory, or
    an HTTP(S) mirror with an C(index.json)) and picks the newest valid one, or checks
    the pinned O(version).
  - A release is valid when its C(manifest.json) carries a good signature by a trusted
    key, is well-formed, has not expired, and (with O(catalog)) its sequence is not lower
    than the highest seen for the model. Releases that fail are listed in RV(rejected)
    with the reason, newest first.
  - Runs on the controller (python-gnupg); use it with C(delegate_to) and C(run_once).
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.read_only
  - modelops.fleet.trust
options:
  repository:
    description: Release repository, a directory or an C(http://) / C(https://) URL.
    type: str
    required: true
  model_name:
    description: Model name, for example C(qwen3-4b-instruct).
    type: str
    required: true
  variant:
    description: Variant, for example C(gguf-q4_k_m) or C(fp16).
    type: str
    required: true
  version:
    description: C(latest), or the version to resolve (for example C(2507)).
    type: str
    default: latest
  timeout:
    description: Seconds to wait for each request to a mirror.
    type: int
    default: 30
  validate_certs:
    description: Validate the mirror's TLS certificate.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Find the newest signed GGUF release
  modelops.fleet.model_release_info:
    repository: https://models.example.com/releases
    model_name: qwen3-4b-instruct
    variant: gguf-q4_k_m
    keyring: [files/publisher.asc]
    trusted_fingerprints: [EF939A1AADB03442628773084F30D2B3F0944B39]
  delegate_to: localhost
  run_once: true
  register: release

- name: Show it
  ansible.builtin.debug:
    msg: "upgrading to {{ release.release }} (sequence {{ release.sequence }})"
"""

RETURN = r"""
release:
  description: Release name C(<model>-<version>-<variant>).
  returned: success
  type: str
  sample: qwen3-4b-instruct-2507-gguf-q4_k_m
version:
  description: The resolved version.
  returned: success
  type: str
  sample: "2507"
sequence:
  description: Its sequence number.
  returned: success
  type: int
location:
  description: Directory or URL of the release in the repository.
  returned: success
  type: str
manifest:
  description: The verified manifest.
  returned: success
  type: dict
manifest_sha256:
  description: sha256 of the verified C(manifest.json).
  returned: success
  type: str
signer:
  description: Fingerprint of the signing key.
  returned: success
  type: str
rejected:
  description: Newer releases that were not valid, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{version: "2508", reason: "manifest.json ... expired at 2025-09-01T00:00:00Z"}]
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.modelops.fleet.plugins.module_utils._catalog import Catalog, RollbackRefused
from ansible_collections.modelops.fleet.plugins.module_utils._gpg import (
    GNUPG_IMPORT_ERROR, HAS_GNUPG, SignatureError,
)
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    ReleaseError, release_name, validate_version,
)
from ansible_collections.modelops.fleet.plugins.module_utils._repository import Repository
from ansible_collections.modelops.fleet.plugins.module_utils._trust_spec import trust_argument_spec, verify_manifest
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit


class ReleaseResolver(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.repo = Repository(p["repository"], timeout=p["timeout"],
                               validate_certs=p["validate_certs"])

    def check(self, version, catalog):
        p = self.module.params
        where = self.repo.join(p["model_name"], version, p["variant"], "manifest.json")
        raw, sig = self.repo.manifest_and_signature(p["model_name"], version, p["variant"])
        manifest, sha, signer = verify_manifest(raw, sig, p["keyring"], p["trusted_fingerprints"], where,
                                                catalog=catalog, allow_rollback=p["allow_rollback"],
                                                expect=(p["model_name"], version, p["variant"]))
        return dict(release=release_name(p["model_name"], version, p["variant"]),
                    version=version, sequence=manifest["sequence"], manifest=manifest,
                    manifest_sha256=sha, signer=signer,
                    location=self.repo.join(p["model_name"], version, p["variant"]))

    def run(self):
        p = self.module.params
        if p["version"] == "latest":
            versions = self.repo.candidates(p["model_name"], p["variant"])
            if not versions:
                raise ReleaseError("no release of %s variant %s in %s"
                                   % (p["model_name"], p["variant"], p["repository"]))
        else:
            versions = [validate_version(p["version"])]
        catalog = None
        if p["catalog"] and os.path.exists(p["catalog"]):
            catalog = Catalog(p["catalog"])
        rejected = []
        found = None
        try:
            # Newest first by sequence: read every candidate's manifest, then order.
            checked = []
            for v in versions:
                try:
                    checked.append(self.check(v, catalog))
                except (ReleaseError, SignatureError, RollbackRefused) as e:
                    rejected.append({"version": v, "reason": str(e)})
            checked.sort(key=lambda r: (r["sequence"], r["version"]), reverse=True)
            if checked:
                found = checked[0]
        finally:
            if catalog is not None:
                catalog.close()
        if found is None:
            raise ReleaseError("no valid release of %s variant %s in %s: %s" % (
                p["model_name"], p["variant"], p["repository"],
                "; ".join("%s: %s" % (r["version"], r["reason"]) for r in rejected)))
        found["rejected"] = rejected
        return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            trust_argument_spec(),
            repository=dict(type="str", required=True),
            model_name=dict(type="str", required=True),
            variant=dict(type="str", required=True),
            version=dict(type="str", default="latest"),
            timeout=dict(type="int", default=30),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if not HAS_GNUPG:
        module.fail_json(msg=missing_required_lib("python-gnupg"),
                         exception=GNUPG_IMPORT_ERROR)
    run_and_exit(module, lambda: ReleaseResolver(module).run(), (ReleaseError, SignatureError),
                 fail_extra={"rejected": []}, exit_extra={"changed": False})


if __name__ == "__main__":
    main()
