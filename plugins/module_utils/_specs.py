# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs of the modules that have an action plugin (model_sync, model_probe,
model_verify), in one place: each module validates with its spec on the host, and its
action plugin validates the task's arguments with the same spec on the controller before
it does anything (and reads its defaults from it instead of restating them)."""

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


def probe_argument_spec():
    """A fresh copy of model_probe's argument spec."""
    return dict(
        url=dict(type="str", default="http://127.0.0.1:8080"),
        served_name=dict(type="str", required=True),
        suite=dict(type="str", required=True),
        api_key=dict(type="str", no_log=True),
        model_root=dict(type="path", default="/srv/models"),
        baseline=dict(type="str", choices=["record", "compare", "ignore"], default="ignore"),
        model_name=dict(type="str"),
        latency_factor=dict(type="float", default=1.3),
        timeout=dict(type="int", default=60),
        require_baseline=dict(type="bool", default=False),
        fail_on_failure=dict(type="bool", default=True),
    )


def verify_argument_spec():
    """A fresh copy of model_verify's argument spec."""
    spec = trust_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        full=dict(type="bool", default=False),
        hash_cache=dict(type="str", default="auto"),
        check_layout=dict(type="bool", default=True),
        # set by the action plugin, not by users
        manifest_sha256=dict(type="str"),
    )
    return spec
