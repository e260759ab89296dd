#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_activate
short_description: Switch the served version of a model on a host, or roll it back
version_added: 0.1.0
description:
  - Points C(<model_root>/<model>/current) at an installed release
    C(<version>/<variant>) and keeps the release it replaces as
    C(<model_root>/<model>/previous), the rollback target. Both are relative symlinks,
    replaced atomically (a new link renamed over the old one), so the engine always sees
    a complete release.
  - With O(rollback=true), swaps the two links, C(current) back to what C(previous)
    points to.
  - Before switching, checks that the release is installed, complete and intact against
    its C(manifest.json) (O(verify)). The hash cache C(<model_root>/.modelops/hashcache)
    makes this cheap for files that did not change since they were last hashed.
  - Records every activation, rollback and deleted release in the host ledger
    C(<model_root>/.modelops/state.json), and holds the host lock
    C(<model_root>/.modelops/lock) while it works, so that only one upgrade runs at a
    time on a host.
  - After a switch, deletes the oldest installed releases of the model beyond
    O(keep_versions); the releases C(current) and C(previous) point to are never deleted.
  - When C(current) already points to the requested release, nothing is changed,
    verified, pruned or written.
  - Runs on the target with the Python standard library only.
attributes:
  check_mode:
    details:
      - Verifies the release and reports the links, the ledger event and the releases
        that would be deleted; writes nothing and does not take the lock.
  diff_mode:
    support: full
    details: Shows C(current) and C(previous) before and after.
notes:
  - The signature of a release is checked when it is synced (M(modelops.fleet.model_sync))
    or with M(modelops.fleet.model_verify); this module checks the files against the
    manifest on disk.
seealso:
  - module: modelops.fleet.model_info
  - module: modelops.fleet.model_verify
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.activate
  - modelops.fleet.model_store
"""

EXAMPLES = r"""
- name: Serve the new release
  modelops.fleet.model_activate:
    model_name: qwen3-4b-instruct
    version: "2507"
    variant: gguf-q4_k_m
    reason: "canary passed"

- name: Roll back to the previous release
  modelops.fleet.model_activate:
    model_name: qwen3-4b-instruct
    rollback: true
    reason: "probe failed"

- name: Activate and keep only current and previous on a small edge device
  modelops.fleet.model_activate:
    model_root: /var/lib/models
    model_name: smollm2-135m-instruct
    version: "2411"
    variant: gguf-q4_1
    keep_versions: 0
"""

RETURN = r"""
current:
  description: The release C(current) points to (after the change), C(<version>/<variant>).
  returned: success
  type: str
  sample: 2507/gguf-q4_k_m
previous:
  description: The release C(previous) points to (after the change), or null.
  returned: success
  type: str
  sample: 2504/gguf-q4_k_m
pruned:
  description: Releases deleted (in check mode, that would be deleted), C(<version>/<variant>).
  returned: success
  type: list
  elements: str
  sample: ["2501/gguf-q4_k_m"]
ledger_event:
  description:
    - The activation or rollback event written to the ledger (in check mode, the event
      that would be written, without C(time)); null when nothing changed.
  returned: success
  type: dict
  sample:
    action: activate
    model: qwen3-4b-instruct
    from: 2504/gguf-q4_k_m
    to: 2507/gguf-q4_k_m
    reason: canary passed
    time: "2025-07-15T12:00:00Z"
verified:
  description: Result of the file check (files, bytes, bytes_read, files_cached); null when not verified.
  returned: success
  type: dict
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (activate, or rollback when the
      reason starts with C(rollback) or O(rollback=true)); C(seconds) what the work took on the
      host, without Ansible's round trip; C(outcome) is ok, changed or failed; C(phases) the parts
      the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: activate, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._activate import ActivateError, Activator
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError
from ansible_collections.modelops.fleet.plugins.module_utils._release import ReleaseError
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._specs import activate_spec, model_store_spec
from ansible_collections.modelops.fleet.plugins.module_utils._step import account, rollback_or


def main():
    module = AnsibleModule(
        argument_spec=dict(model_store_spec(), **activate_spec()),
        required_together=[("version", "variant")],
        mutually_exclusive=[("rollback", "version")],
        supports_check_mode=True,
    )
    account(module, rollback_or("activate"))
    run_and_exit(module, lambda: Activator(module).run(), (ActivateError, HostStateError, ReleaseError),
                 os_error=lambda e: "model_activate failed on %s: %s" % (module.params["model_root"], e))


if __name__ == "__main__":
    main()
