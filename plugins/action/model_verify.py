# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller half of modelops.fleet.model_verify: signature, expiry and catalog checks.

The files are hashed by the module where they are; the manifest is fetched here, its
signature checked against the pinned keyring, and the module is then told the sha256 of
the exact manifest that was verified.
"""

from __future__ import annotations

import base64
import os

from ansible.errors import AnsibleActionFail

from ansible_collections.modelops.fleet.plugins.module_utils._release import MANIFEST, SIGNATURE
from ansible_collections.modelops.fleet.plugins.module_utils._specs import verify_argument_spec
from ansible_collections.modelops.fleet.plugins.plugin_utils._action_module import ModuleAction
from ansible_collections.modelops.fleet.plugins.plugin_utils._trust import (
    TrustError,
    resolve_keyring,
    trust_manifest,
)


class ActionModule(ModuleAction):
    TRANSFERS_FILES = False
    MODULE = "model_verify"
    STEP = "verify"
    SPEC = staticmethod(verify_argument_spec)

    def _slurp(self, path, task_vars, missing_ok=False):
        res = self._execute_module(module_name="ansible.builtin.slurp",
                                   module_args={"src": path}, task_vars=task_vars)
        if res.get("failed"):
            if missing_ok and "not found" in res.get("msg", "").lower():
                return None
            raise AnsibleActionFail("cannot read %s on %s: %s" % (
                path, task_vars.get("inventory_hostname"), res.get("msg")))
        return base64.b64decode(res["content"])

    def run_validated(self, result, valid, args, task_vars):
        # The spec was checked before anything is read from the host.
        path = args["path"]
        host = task_vars.get("inventory_hostname")
        manifest_path = os.path.join(path, MANIFEST)
        raw = self._slurp(manifest_path, task_vars)
        sig = self._slurp(os.path.join(path, SIGNATURE), task_vars, missing_ok=True)
        try:
            keyring = resolve_keyring(self, valid["keyring"])
            dummy, sha, signer = trust_manifest(
                raw, sig, keyring, valid["trusted_fingerprints"], valid["catalog"],
                valid["allow_rollback"], "%s on %s" % (manifest_path, host),
                record=not self._task.check_mode)
        except TrustError as e:
            result.update(failed=True, msg=str(e), changed=False)
            return result
        args["keyring"] = keyring
        mod = self.run_module(args, task_vars, _manifest_sha256=sha)
        result.update(mod)
        if not mod.get("failed"):
            result["signer"] = signer
        return result
