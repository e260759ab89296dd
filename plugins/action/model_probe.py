# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller half of modelops.fleet.model_probe.

The suite is loaded and validated here (a malformed suite is refused before any request
is sent); the module sends the requests on the target and judges what the standard
library can (including keywords_consistent and format_consistent against the baseline it
reads from the host ledger); the similarity and similar_to_previous assertions, which need
an embedding model, are judged here on the answers and the baseline the module returns.
"""

from __future__ import annotations

import json

from ansible_collections.modelops.fleet.plugins.module_utils._probe import (
    failure_message,
    public,
    skipped_summary,
    summarize,
)
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import SuiteError
from ansible_collections.modelops.fleet.plugins.module_utils._specs import probe_argument_spec
from ansible_collections.modelops.fleet.plugins.module_utils._step import probe_step
from ansible_collections.modelops.fleet.plugins.plugin_utils._action_module import ModuleAction
from ansible_collections.modelops.fleet.plugins.plugin_utils._probe_suite import apply_similarity, judged_on_controller, load_suite


class ActionModule(ModuleAction):
    TRANSFERS_FILES = False
    MODULE = "model_probe"
    STEP = staticmethod(probe_step)
    SPEC = staticmethod(probe_argument_spec)

    def run_validated(self, result, valid, args, task_vars):
        # The spec was checked before the suite is loaded or a request sent.
        factor = valid["latency_factor"]
        dirs = []
        if self._loader.get_basedir():
            dirs.append(self._loader.get_basedir())
        if self._task._role is not None:
            dirs.append(self._task._role._role_path)
        try:
            path, suite = load_suite(valid["suite"], factor, dirs)
        except SuiteError as e:
            result.update(failed=True, changed=False, msg=str(e))
            return result
        fail = valid["fail_on_failure"]
        args["suite"] = json.dumps(suite)
        args["fail_on_failure"] = False
        # The module records the gate when its verdict is the whole verdict; with assertions
        # judged here, only after they passed (a second, short call).
        gate_here = valid["gate"] and judged_on_controller(suite["probes"])
        if gate_here:
            args.pop("gate", None)
        mod = self.run_module(args, task_vars)
        runs = mod.pop("_probe_runs", None)
        result.update(mod)
        result["suite"] = path
        if isinstance(result.get("invocation", {}).get("module_args"), dict):
            result["invocation"]["module_args"]["suite"] = path
        if mod.get("failed") or runs is None:
            return result
        baseline = mod.get("baseline") if valid["baseline"] == "compare" else None
        if apply_similarity(suite["probes"], runs, baseline):
            results = []
            for p, r in zip(mod["probes"], runs):
                r2 = dict(p)
                r2["runs"] = runs[len(results)]
                results.append(r2)
            require = valid["require_baseline"] and valid["baseline"] == "compare"
            passed, results, latency = summarize(suite["probes"], results, baseline, require)
            result.update(passed=passed, probes=[public(r) for r in results], latency=latency,
                          skipped_assertions=skipped_summary(results))
        if not result["passed"] and fail:
            result.update(failed=True, msg=failure_message(result["probes"], task_vars.get("inventory_hostname")))
        elif result["passed"] and gate_here:
            args["gate"] = valid["gate"]
            gate = self.run_module(args, task_vars, _gate_only=True)
            if gate.get("failed"):
                result.update(failed=True, msg=gate.get("msg"))
            result.update(gate_event=gate.get("gate_event"), changed=result.get("changed") or gate.get("changed"))
        return result
