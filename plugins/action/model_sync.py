# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller half of modelops.fleet.model_sync.

Checks the manifest (signature, expiry, catalog) here, asks the host what it lacks
(plan), pushes only the missing bytes of each file (resuming partial files), then lets
the host verify and rename the release into place (install). With source=mirror the
host downloads the files itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid

from ansible.errors import AnsibleActionFail
from ansible.module_utils.urls import open_url

from ansible_collections.modelops.fleet.plugins.module_utils._release import MANIFEST, SIGNATURE
from ansible_collections.modelops.fleet.plugins.module_utils._specs import SYNC_REQUIRED_IF, sync_argument_spec
from ansible_collections.modelops.fleet.plugins.plugin_utils._action_module import ModuleAction
from ansible_collections.modelops.fleet.plugins.plugin_utils._trust import (
    TrustError,
    resolve_keyring,
    trust_manifest,
)

MAX_META = 16 * 1024 * 1024


class ActionModule(ModuleAction):
    TRANSFERS_FILES = True
    MODULE = "model_sync"
    STEP = "sync"
    SPEC = staticmethod(sync_argument_spec)
    REQUIRED_IF = SYNC_REQUIRED_IF

    def _read_meta(self, args):
        """args: the validated task arguments (defaults filled in from the module's spec)."""
        src, url = args.get("src"), args.get("url")
        if src and not (src.startswith("http://") or src.startswith("https://")):
            src = os.path.expanduser(src)
            try:
                with open(os.path.join(src, MANIFEST), "rb") as f:
                    raw = f.read(MAX_META)
            except (IOError, OSError) as e:
                raise TrustError("cannot read %s on the controller: %s" % (os.path.join(src, MANIFEST), e))
            sig = None
            if os.path.exists(os.path.join(src, SIGNATURE)):
                with open(os.path.join(src, SIGNATURE), "rb") as f:
                    sig = f.read(MAX_META)
            return raw, sig, os.path.join(src, MANIFEST)
        base = (src or url or "").rstrip("/")
        if not base:
            raise TrustError("model_sync needs src (a release directory on the controller) or url (a mirror)")
        try:
            raw = open_url(base + "/" + MANIFEST, timeout=args["timeout"],
                           validate_certs=args["validate_certs"]).read(MAX_META)
        except Exception as e:
            raise TrustError("cannot fetch %s/%s: %s" % (base, MANIFEST, e))
        try:
            sig = open_url(base + "/" + SIGNATURE, timeout=args["timeout"],
                           validate_certs=args["validate_certs"]).read(MAX_META)
        except Exception:
            sig = None
        return raw, sig, base + "/" + MANIFEST

    def _push_tail(self, local, offset, remote):
        """Send local[offset:] to remote over the connection."""
        if offset == 0:
            self._connection.put_file(local, remote)
            return os.path.getsize(local)
        fd, tmp = tempfile.mkstemp(prefix="modelops-tail-")
        try:
            with os.fdopen(fd, "wb") as out, open(local, "rb") as src:
                src.seek(offset)
                shutil.copyfileobj(src, out, 1 << 20)
            self._connection.put_file(tmp, remote)
            return os.path.getsize(tmp)
        finally:
            os.unlink(tmp)

    def _release_lease(self, args, task_vars):
        """Give the host's lease back when the push stops before the install step."""
        self.run_module(args, task_vars, _step="release")

    def run_validated(self, result, valid, args, task_vars):
        # The spec was checked before any manifest is read.
        source = valid["source"]
        host = task_vars.get("inventory_hostname")
        try:
            raw, sig, where = self._read_meta(valid)
            keyring = resolve_keyring(self, valid["keyring"])
            dummy, sha, signer = trust_manifest(
                raw, sig, keyring, valid["trusted_fingerprints"], valid["catalog"],
                valid["allow_rollback"], where, record=not self._task.check_mode)
        except TrustError as e:
            result.update(failed=True, changed=False, msg="%s (host %s)" % (e, host))
            return result
        args["keyring"] = keyring
        args["_manifest_content"] = raw.decode("utf-8")
        args["_signature_content"] = (sig or b"").decode("utf-8", "replace")
        # This sync's lease on the host, across plan -> push -> install.
        args["_lease"] = "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])

        if source == "push" and not self._task.check_mode:
            src = os.path.expanduser(args.get("src") or "")
            if not os.path.isdir(src):
                raise AnsibleActionFail("model_sync: source=push needs src, a release directory on the controller")
            plan = self.run_module(args, task_vars, _step="plan")
            if plan.get("failed") or plan.get("installed"):
                result.update(plan)
                result["signer"] = signer
                return result
            pushed = 0
            try:
                for f in plan["files"]:
                    if f["action"] != "transfer":
                        continue
                    local = os.path.join(src, f["path"])
                    if not os.path.isfile(local) or os.path.getsize(local) != f["size"]:
                        result.update(failed=True, changed=False,
                                      msg="%s on the controller is missing or does not have the size the manifest "
                                          "says (%d bytes): the repository copy is damaged" % (local, f["size"]))
                        self._release_lease(args, task_vars)
                        return result
                    pushed += self._push_tail(local, f["offset"], f["tail"])
            except Exception:
                self._release_lease(args, task_vars)
                raise
            mod = self.run_module(args, task_vars, _step="install")
            result.update(mod)
            if not mod.get("failed"):
                result["bytes_transferred"] = pushed
                result["files"] = plan["files"]
        else:
            mod = self.run_module(args, task_vars, _step="install")
            result.update(mod)
        result["signer"] = signer
        result["manifest_sha256"] = sha
        return result
