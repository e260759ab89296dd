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

from ansible.plugins.action import ActionBase

from ansible_collections.modelops.fleet.plugins.module_utils._probe import (
    SuiteError,
    failure_message,
    public,
    skipped_summary,
    summarize,
)
from ansible_collections.modelops.fleet.plugins.plugin_utils._probe_suite import (
    apply_similarity,
    load_suite,
)


def _truthy(value):
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if not args.get("suite") or not args.get("served_name"):
            result.update(failed=True, msg="model_probe: suite and served_name are required")
            return result
        factor = float(args.get("latency_factor", 1.3))
        dirs = []
        if self._loader.get_basedir():
            dirs.append(self._loader.get_basedir())
        if self._task._role is not None:
            dirs.append(self._task._role._role_path)
        try:
            path, suite = load_suite(args["suite"], factor, dirs)
        except SuiteError as e:
            result.update(failed=True, changed=False, msg=str(e))
            return result
        fail = _truthy(args.get("fail_on_failure", True))
        args["suite"] = json.dumps(suite)
        args["fail_on_failure"] = False
        mod = self._execute_module(module_name="modelops.fleet.model_probe", module_args=args,
                                   task_vars=task_vars)
        runs = mod.pop("_probe_runs", None)
        result.update(mod)
        result["suite"] = path
        if isinstance(result.get("invocation", {}).get("module_args"), dict):
            result["invocation"]["module_args"]["suite"] = path
        if mod.get("failed") or runs is None:
            return result
        baseline = mod.get("baseline") if args.get("baseline") == "compare" else None
        if apply_similarity(suite["probes"], runs, baseline):
            results = []
            for p, r in zip(mod["probes"], runs):
                r2 = dict(p)
                r2["runs"] = runs[len(results)]
                results.append(r2)
            require = _truthy(args.get("require_baseline", False)) and args.get("baseline") == "compare"
            passed, results, latency = summarize(suite["probes"], results, baseline, require)
            result.update(passed=passed, probes=[public(r) for r in results], latency=latency,
                          skipped_assertions=skipped_summary(results))
        if not result["passed"] and fail:
            result.update(failed=True, msg=failure_message(result["probes"], task_vars.get("inventory_hostname")))
        return result
