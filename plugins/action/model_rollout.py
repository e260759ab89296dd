# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of modelops.fleet.model_rollout: one host's rollout in one task.

The flow itself is plugin_utils/_rollout_host.py (read it top to bottom). This plugin
checks the arguments, runs each step's module (or the module's own action plugin:
model_sync, model_probe) with the task's module_defaults, as the task would have, and
returns the outcome with every step's result and account (the rollout_report callback
shows each step; model_metrics publishes them).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.modelops.fleet.plugins.module_utils._specs import rollout_argument_spec
from ansible_collections.modelops.fleet.plugins.plugin_utils._rollout_host import HostRollout

try:  # ansible-core 2.19+
    from ansible.executor.module_common import _apply_action_arg_defaults as _with_defaults
except ImportError:  # pragma: no cover - ansible-core 2.17/2.18
    _with_defaults = None
try:  # ansible-core 2.17/2.18
    from ansible.executor.module_common import get_action_args_with_defaults
except ImportError:  # pragma: no cover - ansible-core 2.19+
    get_action_args_with_defaults = None

display = Display()
# the steps whose module has an action plugin of the collection (the controller's half)
ACTION_PLUGINS = ("model_sync", "model_probe")
# what the flow reads of each dict option, and where such a dict comes from
NEEDS = {"release": (("version", "release", "location", "manifest"), "model_release_info"),
         "endpoint": (("url", "served_name", "mode", "engine"), "the inference_server role's endpoint.yml")}


class ActionModule(ActionBase):
    # the steps that push files (model_sync's action plugin) make their own remote tmp
    TRANSFERS_FILES = False
    # upgrade.yml --check plans with model_info; a rollout in check mode is skipped
    _supports_check_mode = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        try:
            dummy, valid = self.validate_argument_spec(argument_spec=rollout_argument_spec())
        except AnsibleActionFail as e:
            result.update(failed=True, changed=False, msg="model_rollout: %s" % e.message)
            return result
        host = task_vars.get("inventory_hostname")
        for key, (keys, source) in NEEDS.items():
            missing = [k for k in keys if k not in valid[key]]
            if missing:
                result.update(failed=True, changed=False, msg="model_rollout: %s on %s lacks %s (pass the result of %s)" % (
                    key, host, ", ".join(missing), source))
                return result

        def runner(module, args):
            return self._step(module, args, task_vars)

        # ansible-playbook's workers run in sessions of their own: one whose controller was
        # killed is re-parented, and stops before its next step
        parent = os.getppid()
        out = HostRollout(host, valid, runner, display.display, alive=lambda: os.getppid() == parent).run()
        steps = out.pop("steps")
        result.update(out)
        result["steps"] = steps
        result["changed"] = any(s["status"] == "changed" for s in steps)
        if out["status"] == "failed" and valid["fail_host"]:
            result.update(failed=True, msg=out["failure"])
        return result

    def _step(self, module, args, task_vars):
        """Run one step's module as its own task would: module_defaults first, then args."""
        name = "modelops.fleet." + module
        args = self._defaults(name, args)
        try:
            if module in ACTION_PLUGINS:
                task = self._task.copy()
                task.args = args
                action = self._shared_loader_obj.action_loader.get(
                    name, task=task, connection=self._connection, play_context=self._play_context,
                    loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
                return action.run(task_vars=task_vars)
            return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
        except AnsibleConnectionFailure as e:
            return {"failed": True, "unreachable": True, "msg": "%s: %s" % (module, e)}
        except AnsibleError as e:
            return {"failed": True, "msg": "%s: %s" % (module, e)}

    def _defaults(self, name, args):
        if _with_defaults is not None:
            return _with_defaults(name, self._task, args, self._templar)
        return get_action_args_with_defaults(  # pragma: no cover
            name, args, self._task.module_defaults, self._templar, action_groups=self._task._parent._play._action_groups)
