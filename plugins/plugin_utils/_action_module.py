# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared front of the collection's action plugins.

Each plugin's module has one argument spec (module_utils/_specs.py). Before any work the
task's arguments are checked on the controller against that spec, so a wrong type or a
missing option fails naming the module and the option, and the plugin reads its values
(defaults filled in) from the validated result instead of restating defaults. Options that
start with "_" are the plugin's own channel to its module: a task that sets one is refused.
The result carries the step account of the whole action (module_utils/_step.py): its
seconds include the plugin's own work on the controller, its phases are the module's, plus
the module's own seconds on the host (host_s, of its last call).
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.modelops.fleet.plugins.module_utils._specs import internal_options
from ansible_collections.modelops.fleet.plugins.module_utils._step import step_account, step_name


class ModuleAction(ActionBase):
    """Subclasses set MODULE (the module's short name), SPEC (a function returning its
    argument spec) and STEP (the rollout step the module is: a name, or a function of the
    task's arguments, as module_utils/_step.py's account() takes it), may set REQUIRED_IF,
    and implement run_validated()."""

    MODULE = None
    SPEC = None
    STEP = None
    REQUIRED_IF = ()

    def run(self, tmp=None, task_vars=None):
        started, clock = time.time(), time.monotonic()
        result = self._run(tmp, task_vars)
        host = result.get("step") if isinstance(result.get("step"), dict) else {}
        phases = dict(host.get("phases") or {})
        if "seconds" in host:
            phases["host_s"] = host["seconds"]
        outcome = "failed" if result.get("failed") else "changed" if result.get("changed") else "ok"
        result["step"] = step_account(host.get("name") or step_name(self.STEP, self._task.args), started,
                                      time.monotonic() - clock, outcome, phases)
        return result

    def _run(self, tmp, task_vars):
        result = super(ModuleAction, self).run(tmp, task_vars)
        del tmp
        spec = self.SPEC()
        hidden = [k for k in internal_options(spec) if k in self._task.args]
        if hidden:
            result.update(failed=True, changed=False, msg="%s: %s %s set by the action plugin, not by a task: remove %s" % (
                self.MODULE, ", ".join(hidden), "is" if len(hidden) == 1 else "are", "it" if len(hidden) == 1 else "them"))
            return result
        try:
            dummy, valid = self.validate_argument_spec(argument_spec=spec, required_if=list(self.REQUIRED_IF))
        except AnsibleActionFail as e:
            result.update(failed=True, changed=False, msg="%s: %s" % (self.MODULE, e.message))
            return result
        # The module gets the task's own arguments (paths expand on the host), plus what the
        # plugin adds; the plugin itself reads the validated values.
        return self.run_validated(result, valid, dict(self._task.args), task_vars or {})

    def run_validated(self, result, valid, args, task_vars):
        raise NotImplementedError

    def run_module(self, args, task_vars, **internal):
        """Run this plugin's module with the task's arguments and internal options."""
        return self._execute_module(module_name="modelops.fleet." + self.MODULE,
                                    module_args=dict(args, **internal), task_vars=task_vars)
