# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller-side trust decision for a manifest: signature, expiry, catalog.

Shared by the model_verify and model_sync action plugins. Private to the collection.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail

from ansible_collections.modelops.fleet.plugins.module_utils._catalog import (
    Catalog,
    RollbackRefused,
)
from ansible_collections.modelops.fleet.plugins.module_utils._gpg import SignatureError
from ansible_collections.modelops.fleet.plugins.module_utils._release import ReleaseError
from ansible_collections.modelops.fleet.plugins.module_utils._trust_spec import verify_manifest


class TrustError(Exception):
    """The manifest is not to be trusted; the message says why."""


def resolve_keyring(action, keyring):
    """Absolute controller paths of the keyring files (relative ones via the files/ search path)."""
    out = []
    for k in keyring or []:
        k = os.path.expanduser(k)
        if not os.path.isabs(k):
            try:
                k = action._find_needle("files", k)
            except AnsibleActionFail:
                raise TrustError("keyring file %s not found on the controller" % k)
        out.append(k)
    return out


def trust_manifest(raw, sig, keyring, trusted, catalog_path, allow_rollback, where, record=True):
    """Return (manifest, manifest_sha256, signer) or raise TrustError; records a trusted
    manifest in the catalog at catalog_path (when given and record)."""
    try:
        if not catalog_path:
            return verify_manifest(raw, sig, keyring, trusted, where)
        with Catalog(os.path.expanduser(catalog_path)) as cat:
            manifest, sha, signer = verify_manifest(raw, sig, keyring, trusted, where, catalog=cat,
                                                    allow_rollback=allow_rollback)
            if record:
                cat.record(manifest, sha, signer)
            return manifest, sha, signer
    except (SignatureError, ReleaseError, RollbackRefused) as e:
        raise TrustError(str(e))
