# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs in one place: the option groups several modules share (the engine API
and the model store, documented once in doc_fragments/engine_api.py and model_store.py;
the trust options are in _trust_spec.py), and the whole specs of the modules that have an
action plugin (model_sync, model_probe, model_verify): each of those modules validates with
its spec on the host, and its action plugin validates the task's arguments with the same
spec on the controller before it does anything (and reads its defaults from it instead of
restating them)."""

from __future__ import annotations

from ansible_collections.modelops.fleet.plugins.module_utils._trust_spec import trust_argument_spec

SYNC_REQUIRED_IF = [("source", "mirror", ("url",))]
SYNC_STEPS = ("plan", "install", "release")


def internal_options(spec):
    """The internal options of a spec: those named with a leading "_", which the action
    plugin sets and a task may not. They are not documented, so ansible-doc does not show
    them (tests/sanity/ignore-*.txt tells validate-modules so)."""
    return sorted(k for k in spec if k.startswith("_"))


def engine_api_spec():
    """The engine API options (doc fragment modelops.fleet.engine_api)."""
    return dict(
        url=dict(type="str", default="http://127.0.0.1:8080"),
        served_name=dict(type="str", required=True),
        api_key=dict(type="str", no_log=True),
    )


def model_store_spec():
    """The model store option (doc fragment modelops.fleet.model_store)."""
    return dict(model_root=dict(type="path", default="/srv/models"))


def sync_argument_spec():
    """A fresh copy of model_sync's argument spec."""
    spec = trust_argument_spec()
    spec.update(model_store_spec())
    spec.update(
        src=dict(type="str"),
        url=dict(type="str"),
        source=dict(type="str", choices=["push", "mirror"], default="push"),
        space_margin_mb=dict(type="int", default=64),
        timeout=dict(type="int", default=30),
        sync_timeout=dict(type="int", default=0),
        validate_certs=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=60),
        lease_timeout=dict(type="int", default=1800),
        # internal: the verified manifest and its signature, the call's step and the sync's lease
        _manifest_content=dict(type="str"),
        _signature_content=dict(type="str"),
        _step=dict(type="str"),  # plan, install (when unset) or release: see SYNC_STEPS
        _lease=dict(type="str"),
    )
    return spec


def probe_argument_spec():
    """A fresh copy of model_probe's argument spec."""
    spec = engine_api_spec()
    spec.update(model_store_spec())
    spec.update(
        suite=dict(type="str", required=True),
        baseline=dict(type="str", choices=["record", "compare", "ignore"], default="ignore"),
        model_name=dict(type="str"),
        latency_factor=dict(type="float", default=1.3),
        timeout=dict(type="int", default=60),
        require_baseline=dict(type="bool", default=False),
        fail_on_failure=dict(type="bool", default=True),
        gate=dict(type="str"),
        # internal: the action plugin judged the suite on the controller; only record O(gate)
        _gate_only=dict(type="bool"),
    )
    return spec


def verify_argument_spec():
    """A fresh copy of model_verify's argument spec."""
    spec = trust_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        full=dict(type="bool", default=False),
        hash_cache=dict(type="str", default="auto"),
        check_layout=dict(type="bool", default=True),
        # internal: the sha256 of the manifest the controller verified
        _manifest_sha256=dict(type="str"),
    )
    return spec


def activate_spec():
    """The options of a switch of current (doc fragment modelops.fleet.activate), besides
    model_root: model_activate's, and model_switch's with the engine's."""
    return dict(
        model_name=dict(type="str", required=True),
        version=dict(type="str"),
        variant=dict(type="str"),
        rollback=dict(type="bool", default=False),
        verify=dict(type="bool", default=True),
        keep_versions=dict(type="int", default=2),
        lock_timeout=dict(type="int", default=60),
        reason=dict(type="str"),
    )


def ready_spec():
    """The options of the wait until an engine serves (doc fragment modelops.fleet.ready),
    besides the engine API: inference_ready's, and model_switch's after its restart."""
    return dict(
        timeout=dict(type="int", default=180),
        completion=dict(type="bool", default=True),
        prompt=dict(type="str", default="What is the capital of France? Answer in one word."),
        max_tokens=dict(type="int", default=16, no_log=False),
        journal_lines=dict(type="int", default=20),
        max_restarts=dict(type="int", default=2),
    )


def rollout_argument_spec():
    """model_rollout's argument spec (it runs on the controller; each step's module checks
    its own arguments)."""
    return dict(
        release=dict(type="dict", required=True),
        endpoint=dict(type="dict", required=True),
        read=dict(type="dict", default={}),
        serving=dict(type="str"),
        api_key=dict(type="str", no_log=True),
        source=dict(type="str", choices=["push", "mirror"], default="push"),
        mirror_url=dict(type="str", default=""),
        sync_timeout=dict(type="int", default=0),
        keep_versions=dict(type="int", default=2),
        ready_timeout=dict(type="int", default=300),
        drain_timeout=dict(type="int", default=30),
        restart=dict(type="str", choices=["auto", "always"], default="auto"),
        probe_suite=dict(type="str", default="smoke"),
        probe_always=dict(type="bool", default=False),
        latency_factor=dict(type="float", default=1.3),
        record_baseline=dict(type="bool", default=False),
        soak_seconds=dict(type="int", default=0),
        metrics_path=dict(type="str", default=""),
        fail_host=dict(type="bool", default=True),
    )
