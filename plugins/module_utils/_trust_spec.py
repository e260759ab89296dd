# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument spec of the trust options (documented in doc_fragments/trust.py)."""

from __future__ import annotations


def trust_argument_spec():
    """A fresh copy of the trust options' argument spec, for AnsibleModule(argument_spec=...)."""
    return dict(
        keyring=dict(type="list", elements="path", required=True, no_log=False),
        trusted_fingerprints=dict(type="list", elements="str", required=True),
        catalog=dict(type="path", default="~/.modelops/registry.db"),
        allow_rollback=dict(type="bool", default=False),
    )
