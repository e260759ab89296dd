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
import hashlib
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

from ansible_collections.modelops.fleet.plugins.module_utils._catalog import (
    Catalog,
    RollbackRefused,
)
from ansible_collections.modelops.fleet.plugins.module_utils._gpg import (
    SignatureError,
    verify_detached,
)
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST,
    SIGNATURE,
    ReleaseError,
    check_expiry,
    load_manifest_bytes,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

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
        args = dict(self._task.args)
        path = args.get("path")
        if not path:
            raise AnsibleActionFail("model_verify: path is required")
        host = task_vars.get("inventory_hostname")
        keyring = [os.path.expanduser(self._find_needle("files", k)
                                      if not os.path.isabs(os.path.expanduser(k)) else k)
                   for k in (args.get("keyring") or [])]
        trusted = args.get("trusted_fingerprints") or []
        catalog_path = args.get("catalog", "~/.modelops/registry.db")
        allow_rollback = bool(args.get("allow_rollback", False))

        manifest_path = os.path.join(path, MANIFEST)
        raw = self._slurp(manifest_path, task_vars)
        sig = self._slurp(os.path.join(path, SIGNATURE), task_vars, missing_ok=True)
        sha = hashlib.sha256(raw).hexdigest()
        where = "%s on %s" % (manifest_path, host)
        try:
            signer = verify_detached(raw, sig, keyring, trusted, what=where)
            manifest = load_manifest_bytes(raw, where)
            check_expiry(manifest, source=where)
            if catalog_path:
                with Catalog(os.path.expanduser(catalog_path)) as cat:
                    cat.check(manifest, sha, allow_rollback=allow_rollback)
                    if not self._task.check_mode:
                        cat.record(manifest, sha, signer)
        except (SignatureError, ReleaseError, RollbackRefused) as e:
            result.update(failed=True, msg=to_native(e), changed=False)
            return result

        args["manifest_sha256"] = sha
        args["keyring"] = keyring
        mod = self._execute_module(module_name="modelops.fleet.model_verify",
                                   module_args=args, task_vars=task_vars)
        result.update(mod)
        if not mod.get("failed"):
            result["signer"] = signer
        return result
