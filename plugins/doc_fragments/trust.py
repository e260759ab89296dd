# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Whom to trust: the options of every module that accepts a signed release
    # (model_verify, model_sync, model_release_info). The argument spec is
    # module_utils/_trust_spec.py.
    DOCUMENTATION = r"""
requirements:
  - python-gnupg where the signature is checked (the controller, for the modules with an action plugin)
options:
  keyring:
    description:
      - Files on the controller with the publishers' public keys (armoured or binary).
        They are imported into a throw-away GnuPG home for each check; the operator's own
        keyring is never used.
    type: list
    elements: path
    required: true
  trusted_fingerprints:
    description:
      - Fingerprints of the publisher keys allowed to sign releases. The signature must be
        made by one of them (primary key or signing subkey).
    type: list
    elements: str
    required: true
  catalog:
    description:
      - Path on the controller of the SQLite release catalog for anti-rollback checks; a
        release whose C(sequence) is lower than the highest seen for its model is refused.
        M(modelops.fleet.model_verify) and M(modelops.fleet.model_sync) record every
        release they accept there; M(modelops.fleet.model_release_info) only reads it.
      - Set to an empty string to skip the catalog (not recommended).
    type: path
    default: ~/.modelops/registry.db
  allow_rollback:
    description:
      - Accept a release whose C(sequence) is lower than the highest seen for the model.
        Only for a deliberate rollback to a version the hosts keep.
    type: bool
    default: false
"""
