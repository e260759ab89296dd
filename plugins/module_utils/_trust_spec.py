# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trust options (documented in doc_fragments/trust.py): their argument spec, and the one
check of a signed manifest they configure, shared by the controller-side plugins
(plugin_utils/_trust.py) and the model_release_info module."""

from __future__ import annotations

import hashlib

from ansible_collections.modelops.fleet.plugins.module_utils._gpg import verify_detached
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    ReleaseError,
    check_expiry,
    load_manifest_bytes,
    release_name,
)


def trust_argument_spec():
    """A fresh copy of the trust options' argument spec, for AnsibleModule(argument_spec=...)."""
    return dict(
        keyring=dict(type="list", elements="path", required=True, no_log=False),
        trusted_fingerprints=dict(type="list", elements="str", required=True),
        catalog=dict(type="path", default="~/.modelops/registry.db"),
        allow_rollback=dict(type="bool", default=False),
    )


def verify_manifest(raw, sig, keyring, trusted, where, catalog=None, allow_rollback=False, expect=None):
    """(manifest, SHA-256 of raw, signer) of a manifest that may be trusted: signed by one of
    the trusted keys, a valid manifest, of the release expect names ((model, version, variant),
    when given: a manifest moved from another release is refused), not expired, and (with
    catalog, an open Catalog) no rollback. Raises SignatureError, ReleaseError or
    RollbackRefused, whose messages name the manifest (where) and say what to do."""
    signer = verify_detached(raw, sig, keyring, trusted, what=where)
    manifest = load_manifest_bytes(raw, where)
    if expect is not None and (manifest["model_name"], manifest["version"], manifest["variant"]) != tuple(expect):
        found = release_name(manifest["model_name"], manifest["version"], manifest["variant"])
        raise ReleaseError("%s describes %s, not the release at its location (a manifest moved from another "
                           "release)" % (where, found))
    check_expiry(manifest, source=where)
    sha = hashlib.sha256(raw).hexdigest()
    if catalog is not None:
        catalog.check(manifest, sha, allow_rollback=allow_rollback)
    return manifest, sha, signer
