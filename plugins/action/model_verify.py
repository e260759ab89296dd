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
from ansible.plugins.action import ActionBase

from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST,
    SIGNATURE,
)
from ansible_collections.modelops.fleet.plugins.module_utils._specs import verify_argument_spec
from ansible_collections.modelops.fleet.plugins.plugin_utils._trust import (
    TrustError,
    resolve_keyring,
    trust_manifest,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _slurp(self, path, task_vars, missing_ok=False):
        res = self._execute_module(module_name="ansible.builtin.slurp",
                                   module_args={"src": path}, task_vars=task_vars)
        if res.get("failed"):
            if missing_ok and "not found" in res.get("msg", "").lower():
                return None
            raise AnsibleActionFail("cannot read %s on %s: %s" % (
                path, task_vars.get("inventory_hostname"), res.get("msg")))
        return base64.b64decode(res["content"])

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        # The module's own spec, checked here before anything is read from the host.
        try:
            dummy, valid = self.validate_argument_spec(argument_spec=verify_argument_spec())
        except AnsibleActionFail as e:
            result.update(failed=True, changed=False, msg="model_verify: %s" % e.message)
            return result
        # The module gets the task's own arguments (its paths expand on the host).
        args = dict(self._task.args)
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
        args["manifest_sha256"] = sha
        args["keyring"] = keyring
        mod = self._execute_module(module_name="modelops.fleet.model_verify",
                                   module_args=args, task_vars=task_vars)
        result.update(mod)
        if not mod.get("failed"):
            result["signer"] = signer
        return result
