# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each rollout step accounts for itself.

A module that is a step of a host's rollout (read, sync, restart, probe, rollback, ...)
returns ``step``: its name, when it started, how many seconds its own work took where it
ran, its outcome (ok, changed or failed) and the phases it timed (``timing``). The rollout
report and the metrics read this account; they do not derive the step from task variables,
and the seconds do not include Ansible's round trip.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import time


def step_account(name, started, seconds, outcome, phases=None):
    """The ``step`` a module or action plugin returns."""
    return {"name": name, "outcome": outcome, "started": round(started, 3), "seconds": round(max(seconds, 0.0), 3),
            "phases": dict(phases) if isinstance(phases, dict) else {}}


def account(module, name):
    """From now on every exit_json and fail_json of module carries the step account of
    name (a string, or a function of the module's params), timed from this call."""
    started = time.time()
    clock = time.monotonic()
    exit_json, fail_json = module.exit_json, module.fail_json
    step = step_name(name, module.params)

    def stamp(kwargs, outcome):
        kwargs["step"] = step_account(step, started, time.monotonic() - clock, outcome, kwargs.get("timing"))
        return kwargs

    def exit_with_step(**kwargs):
        exit_json(**stamp(kwargs, "changed" if kwargs.get("changed") else "ok"))

    def fail_with_step(msg, **kwargs):
        fail_json(msg=msg, **stamp(kwargs, "failed"))

    module.exit_json = exit_with_step
    module.fail_json = fail_with_step
    return step


def step_name(name, params):
    """name itself, or name(params) when it is a function of a module's or task's arguments."""
    return name(params) if callable(name) else name


def rollback_or(name):
    """The step of a call that switches (model_activate, model_switch, model_candidate):
    rollback when asked to roll back or when its reason starts with rollback, else name (a
    string or a function of the arguments)."""
    def named(params):
        if params.get("rollback") or str(params.get("reason") or "").lower().startswith("rollback"):
            return "rollback"
        return step_name(name, params)
    return named


def probe_step(params):
    """model_probe records the baseline (baseline=record) or probes."""
    return "baseline" if params.get("baseline") == "record" else "probe"
