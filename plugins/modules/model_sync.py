#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_sync
short_description: Make a signed model release present on a host, staged and verified
version_added: 0.1.0
description:
  - Installs a release under C(<model_root>/<model>/<version>/<variant>/) without touching
    what is served. Nothing under the model's directory changes until every file is
    staged and verified against the signed manifest; then the staged directory is renamed
    into place, read-only.
  - The controller (action plugin) checks the manifest's signature, expiry and the release
    catalog first, exactly like M(modelops.fleet.model_verify).
  - Two sources. C(push) sends the files from a release directory on the controller over
    the Ansible connection. C(mirror) makes the host download them from an HTTP(S) mirror
    with the standard library, using HTTP Range to resume and never reading more than the
    size the manifest declares.
  - A partial file is resumed, not restarted. A file whose sha256 already exists in another
    installed release is hard-linked instead of transferred. Every file is hashed while it
    is written.
  - Before transferring, the free space on the host must cover what is left to transfer
    plus O(space_margin_mb); otherwise the module fails and leaves nothing behind.
attributes:
  check_mode:
    details: Reports which files would be transferred, linked or are present; writes nothing.
  diff_mode:
    support: full
    details: Shows the release's file list with the action for each file.
  action:
    details: Signature checks and the push transfer run on the controller.
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.action
  - modelops.fleet.model_store
  - modelops.fleet.trust
options:
  src:
    description:
      - Release directory on the controller (C(<repository>/<model>/<version>/<variant>)) for
        O(source=push); with O(source=mirror), the manifest and signature are read from it
        if it is a local directory, else downloaded from O(url).
    type: str
  url:
    description:
      - Base URL of the release on the mirror, C(<mirror>/<model>/<version>/<variant>), for
        O(source=mirror). The host downloads C(<url>/<file>).
    type: str
  source:
    description: Where the files come from.
    type: str
    choices: [push, mirror]
    default: push
  space_margin_mb:
    description: Free space required on top of the bytes still to transfer, in MiB.
    type: int
    default: 64
  timeout:
    description:
      - For O(source=mirror), seconds a read from the mirror may stall before the file is
        given up (and resumed on the next run).
    type: int
    default: 30
  sync_timeout:
    description: For O(source=mirror), the longest a whole sync may take, in seconds (0 for no limit).
    type: int
    default: 0
  validate_certs:
    description: Validate the mirror's TLS certificate.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for another upgrade of the same host to release the host lock.
    type: int
    default: 60
  lease_timeout:
    description:
      - Seconds to wait while another upgrade of the same host is installing a release there
        (its lease is live while its staging area is being written; a lease without a write
        for 120 seconds was abandoned and is taken over). The run that waited then finds the
        release installed, or installs it; after O(lease_timeout) it fails naming the other
        upgrade.
    type: int
    default: 1800
"""

EXAMPLES = r"""
- name: Push a release from the controller's repository
  modelops.fleet.model_sync:
    src: /srv/releases/qwen3-4b-instruct/2507/gguf-q4_k_m
    keyring: [files/publisher.asc]
    trusted_fingerprints: [EF939A1AADB03442628773084F30D2B3F0944B39]

- name: Let edge devices pull it from a mirror
  modelops.fleet.model_sync:
    source: mirror
    url: https://mirror.example.com/releases/qwen3-4b-instruct/2507/gguf-q4_k_m
    keyring: [files/publisher.asc]
    trusted_fingerprints: [EF939A1AADB03442628773084F30D2B3F0944B39]
    timeout: 20
"""

RETURN = r"""
release:
  description: Release name.
  returned: success
  type: str
  sample: qwen3-4b-instruct-2507-gguf-q4_k_m
path:
  description: Where the release is installed on the host.
  returned: success
  type: str
files:
  description: Each file of the release with the action taken (present, link, transfer) and the offset a transfer resumed from.
  returned: success
  type: list
  elements: dict
bytes_transferred:
  description: Bytes sent to (push) or downloaded by (mirror) the host by this run.
  returned: success
  type: int
bytes_linked:
  description: Bytes hard-linked from other installed releases instead of transferred.
  returned: success
  type: int
signer:
  description: Fingerprint of the key that signed the manifest.
  returned: success
  type: str
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (sync); C(seconds) what the
      work took where it ran (the whole action, on the controller and the host; the module's own
      seconds on the host in C(phases.host_s)), without Ansible's round trip; C(outcome) is ok,
      changed or failed; C(phases) the parts the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: sync, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import (
    HostLock, LockError, describe_lease, drop_lease, other_lease, take_lease,
)
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError, Ledger
from ansible_collections.modelops.fleet.plugins.module_utils._release import ReleaseError
from ansible_collections.modelops.fleet.plugins.module_utils._sync import Installer, SyncError
from ansible_collections.modelops.fleet.plugins.module_utils._specs import SYNC_REQUIRED_IF, SYNC_STEPS, sync_argument_spec
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._step import account


class SyncManager(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        if p["_step"] not in (None,) + SYNC_STEPS:
            raise SyncError("model_sync: unknown _step %r (one of %s)" % (p["_step"], ", ".join(SYNC_STEPS)))
        if not p["_manifest_content"]:
            raise SyncError("model_sync must run through its action plugin (_manifest_content is missing)")
        self.installer = Installer(p["model_root"], p["_manifest_content"].encode("utf-8"),
                                   (p["_signature_content"] or "").encode("utf-8"),
                                   space_margin=p["space_margin_mb"] * 1024 * 1024)

    def result(self, plan, changed, transferred=0, linked=0):
        inst = self.installer
        res = dict(changed=changed, release=inst.name, path=inst.final, staging=inst.staging,
                   files=plan["files"], bytes_to_transfer=plan["bytes_to_transfer"],
                   bytes_transferred=transferred, bytes_linked=linked, installed=plan["installed"])
        if self.module._diff and not plan["installed"]:
            res["diff"] = {"before": "", "after": "".join(
                "%s %s (%d bytes)\n" % (f["action"], f["path"], f["size"]) for f in plan["files"]),
                "after_header": inst.final}
        return res

    def run(self):
        p = self.module.params
        inst = self.installer
        if p["_step"] == "release":
            with HostLock(p["model_root"], timeout=p["lock_timeout"], purpose="model_sync %s" % inst.name):
                drop_lease(p["model_root"], p["_lease"])
            return dict(changed=False, release=inst.name, released=True)
        plan = inst.plan()
        if plan["installed"]:
            return self.result(plan, False)
        if self.module.check_mode:
            return self.result(plan, True)
        existed = os.path.isdir(inst.staging)
        try:
            inst.check_space(plan)
        except SyncError:
            if not existed:
                inst.discard_staging()
            raise
        # One upgrade at a time per host across plan -> push -> install: the host lock is
        # held per module call, the lease across the calls of one sync. Another upgrade's
        # live lease (its staging area still being written) is waited for.
        token = p["_lease"]
        deadline = time.monotonic() + max(p["lease_timeout"], 0)
        while True:
            with HostLock(p["model_root"], timeout=p["lock_timeout"], purpose="model_sync %s" % inst.name):
                # Another run may have installed the release while this one waited.
                plan = inst.plan()
                if plan["installed"]:
                    drop_lease(p["model_root"], token)
                    return self.result(plan, False)
                other = other_lease(p["model_root"], token)
                if other is None:
                    if p["_step"] == "plan":
                        take_lease(p["model_root"], token, inst.name, "model_sync %s" % inst.name)
                        try:
                            return self.stage(plan)
                        except BaseException:
                            drop_lease(p["model_root"], token)
                            raise
                    try:
                        return self.stage(plan)
                    finally:
                        drop_lease(p["model_root"], token)
            if time.monotonic() >= deadline:
                raise LockError("%s; waited %d s for it (lease_timeout). Let it finish and run again"
                                % (describe_lease(other), p["lease_timeout"]))
            time.sleep(2)

    def stage(self, plan):
        p = self.module.params
        inst = self.installer
        inst.prepare(plan)
        if p["_step"] == "plan":
            # The controller pushes tails next; report where to put them.
            for f in plan["files"]:
                if f["action"] == "transfer":
                    f["tail"] = inst.tail_path(f["path"], f["offset"])
            inst.cache.save()
            return self.result(plan, False)
        transferred = 0
        linked = 0
        deadline = time.monotonic() + p["sync_timeout"] if p["sync_timeout"] else None
        for f in plan["files"]:
            if f["action"] == "link":
                if inst.link(f["path"], f["from"]):
                    linked += f["size"]
                    continue
                f["action"] = "transfer"
            if f["action"] == "transfer":
                if p["source"] == "push":
                    transferred += inst.absorb_tail(f["path"])
                else:
                    transferred += inst.pull(f["path"], p["url"], p["timeout"], p["validate_certs"], deadline)
        try:
            inst.finalize()
        finally:
            inst.cache.save()
        m = inst.manifest
        Ledger(p["model_root"]).append({
            "action": "install", "model": m["model_name"], "to": "%s/%s" % (m["version"], m["variant"]),
            "release": inst.name, "sequence": m["sequence"], "source": p["source"],
            "bytes_transferred": transferred, "bytes_linked": linked})
        return self.result(plan, True, transferred, linked)


def main():
    module = AnsibleModule(
        argument_spec=sync_argument_spec(),
        required_if=SYNC_REQUIRED_IF,
        supports_check_mode=True,
    )
    account(module, "sync")
    run_and_exit(module, lambda: SyncManager(module).run(), (SyncError, ReleaseError, HostStateError),
                 os_error=lambda e: "model_sync failed on %s: %s (staged files are kept and resumed next run)"
                 % (getattr(e, "filename", None) or module.params["model_root"], e))


if __name__ == "__main__":
    main()
