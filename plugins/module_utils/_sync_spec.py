# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument spec of modelops.fleet.model_sync, in one place: the module validates with it on
the host and the action plugin validates the task's arguments with it on the controller
before it reads a manifest (and reads its defaults from it instead of restating them)."""

from __future__ import annotations

from ansible_collections.modelops.fleet.plugins.module_utils._trust_spec import trust_argument_spec

SYNC_REQUIRED_IF = [("source", "mirror", ("url",))]


def sync_argument_spec():
    """A fresh copy of model_sync's argument spec."""
    spec = trust_argument_spec()
    spec.update(
        src=dict(type="str"),
        url=dict(type="str"),
        source=dict(type="str", choices=["push", "mirror"], default="push"),
        model_root=dict(type="path", default="/srv/models"),
        space_margin_mb=dict(type="int", default=64),
        timeout=dict(type="int", default=30),
        sync_timeout=dict(type="int", default=0),
        validate_certs=dict(type="bool", default=True),
        # set by the action plugin, not by users
        manifest_content=dict(type="str"),
        signature_content=dict(type="str"),
        step=dict(type="str", choices=["plan", "install", "release"], default="install"),
        lease=dict(type="str"),
        lock_timeout=dict(type="int", default=60),
        lease_timeout=dict(type="int", default=1800),
    )
    return spec
