#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_switch
short_description: Switch the served version of a model and restart the engine on it, in one step
version_added: 0.3.0
description:
  - The host-side part of an upgrade or a rollback in one call, under the host lock
    C(<model_root>/.modelops/lock) from the first step to the last - switch C(current)
    as M(modelops.fleet.model_activate) does (verified against the manifest, recorded in
    the ledger, old releases pruned), restart the engine's systemd unit O(unit), and wait
    until it really serves as M(modelops.fleet.inference_ready) does (health, model list,
    one completion), started from the release C(current) points to.
  - The engine is restarted only when it has to be - C(current) moved, O(restart=always),
    the unit is not running, its unit file changed on disk (then systemd is reloaded
    first), or the engine's process was started from another release than the one
    C(current) points to (a run interrupted between the switch and the restart). Otherwise
    the module only checks that the engine serves, and changes nothing.
  - When the engine does not serve after a switch and O(switch_back=true), the module
    points C(current) back at the release it replaced (recorded in the ledger as a
    rollback; that release served until a moment ago, so it is not verified again, only
    found), restarts the engine on it, waits until it serves again, and fails saying
    so, with RV(switched_back=true). Downtime on a failure is one failed start plus one
    start of the old release, with no round trip to the controller in between.
  - Without O(version) and O(rollback), the module makes the engine serve the release
    C(current) points to now (restarting it when one of the reasons above holds).
  - Runs on the target with the Python standard library only, as root.
attributes:
  check_mode:
    support: full
    details:
      - Verifies the release and reports the switch, whether the engine would be
        restarted and why; restarts nothing, writes nothing and does not take the lock.
  diff_mode:
    support: full
    details: Shows C(current) and C(previous) before and after.
options:
  unit:
    description: The engine's systemd unit, for example C(modelops-inference.service).
    type: str
    required: true
  restart:
    description:
      - V(auto) restarts the engine only when it has to be (see the description);
        V(always) restarts it in any case, for example after its configuration changed.
    type: str
    choices: [auto, always]
    default: auto
  switch_back:
    description:
      - When the engine does not serve after a switch, point C(current) back at the release
        it replaced, restart the engine on it and wait until it serves, then fail.
      - V(false) leaves the host on the failed release (for a caller that rolls back
        itself).
    type: bool
    default: true
notes:
  - Options it shares with M(modelops.fleet.model_activate) and
    M(modelops.fleet.inference_ready) mean the same; O(timeout) bounds each wait for the
    engine (the new release's, and the old one's after a switch back).
seealso:
  - module: modelops.fleet.model_activate
  - module: modelops.fleet.inference_ready
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.activate
  - modelops.fleet.model_store
  - modelops.fleet.engine_api
  - modelops.fleet.ready
"""

EXAMPLES = r"""
- name: Serve the new release, restart the engine on it, wait until it answers
  modelops.fleet.model_switch:
    model_name: qwen3-4b-instruct
    version: "2507"
    variant: gguf-q4_k_m
    unit: modelops-inference.service
    served_name: qwen3-4b-instruct
    reason: upgrade to 2507
  become: true

- name: Roll back to what previous points to
  modelops.fleet.model_switch:
    model_name: qwen3-4b-instruct
    rollback: true
    unit: modelops-inference.service
    url: http://127.0.0.1:8000
    served_name: qwen3-4b-instruct
    timeout: 900
  become: true

- name: After a configuration change, restart the engine on what current points to
  modelops.fleet.model_switch:
    model_name: qwen3-4b-instruct
    unit: modelops-inference.service
    served_name: qwen3-4b-instruct
    restart: always
  become: true
"""

RETURN = r"""
current:
  description: The release C(current) points to at the end, as C(<version>/<variant>).
  returned: always
  type: str
  sample: 2507/gguf-q4_k_m
previous:
  description: The release C(previous) points to at the end.
  returned: always
  type: str
  sample: 2411/gguf-q4_k_m
switched:
  description: Whether C(current) was moved to the requested release (it may have moved back since, see RV(switched_back)).
  returned: always
  type: bool
  sample: true
restarted:
  description: Whether the engine was restarted.
  returned: always
  type: bool
  sample: true
restart_reason:
  description: Why the engine was restarted, or why it was not.
  returned: always
  type: str
  sample: current moved from 2411/gguf-q4_k_m to 2507/gguf-q4_k_m
ledger_event:
  description: The event recorded for the switch, as model_activate returns it.
  returned: when C(current) was switched
  type: dict
pruned:
  description: Releases deleted after the switch, as C(<version>/<variant>).
  returned: always
  type: list
  elements: str
verified:
  description: What the verification of the release against its manifest checked.
  returned: when the release was switched to and O(verify=true)
  type: dict
ready:
  description: What the wait for the engine saw, as inference_ready returns it (completion, latency_ms, models, elapsed).
  returned: when the engine became ready
  type: dict
served_dir:
  description: The release directory the engine's process was started in.
  returned: when the engine became ready
  type: str
  sample: /srv/models/qwen3-4b-instruct/2507/gguf-q4_k_m
switched_back:
  description: Whether C(current) was pointed back at the release it replaced, and that release serves again.
  returned: always
  type: bool
  sample: false
timing:
  description: Seconds spent in each step - activate, restart (the systemctl call), ready (until the engine served), total.
  returned: always
  type: dict
  sample: {activate_s: 0.05, restart_s: 0.4, ready_s: 1.6, total_s: 2.1}
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (restart, or rollback when the
      reason starts with C(rollback) or O(rollback=true)); C(seconds) what the work took on the
      host, without Ansible's round trip; C(outcome) is ok, changed or failed; C(phases) the parts
      the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: restart, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._activate import ActivateError, Activator, fmt
from ansible_collections.modelops.fleet.plugins.module_utils._attest import restart_reason
from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError
from ansible_collections.modelops.fleet.plugins.module_utils._ready import EngineNotReady, ReadinessWaiter, restart_unit
from ansible_collections.modelops.fleet.plugins.module_utils._specs import (
    activate_spec, engine_api_spec, model_store_spec, ready_spec,
)
from ansible_collections.modelops.fleet.plugins.module_utils._step import account, rollback_or


class SwitchFailed(Exception):
    """The engine does not serve; result holds what was done (links, switch back)."""

    def __init__(self, msg, result):
        super(SwitchFailed, self).__init__(msg)
        self.result = result


class Switcher(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.activator = Activator(module)
        self.unit = p["unit"]
        self.link = os.path.join(p["model_root"], p["model_name"], "current")
        self.timing = {}

    # ------------------------------------------------------------------ the engine

    def engine_reason(self, current):
        """When current did not move: (why the engine must be restarted, None), or (None, what
        was seen that says it need not be)."""
        if self.module.params["restart"] == "always":
            return "restart=always", None
        reason = restart_reason(self.unit, self.link)
        if reason:
            return reason, None
        return None, "%s is active and was started from %s" % (self.unit, current)

    def decide(self, old_cur, result):
        """Add to the switch's result whether the engine is restarted and why; the reason (or
        None)."""
        switched = result["changed"]
        if switched:
            reason, why_not = "current %s from %s to %s" % (
                "would move" if self.module.check_mode else "moved", fmt(old_cur) or "nothing", result["current"]), None
        else:
            reason, why_not = self.engine_reason(result["current"])
        result.update(switched=switched, restarted=bool(reason), restart_reason=reason or why_not,
                      switched_back=False, timing=self.timing, changed=switched or bool(reason))
        return reason

    def restart(self):
        start = time.monotonic()
        try:
            restart_unit(self.unit)
        finally:
            self.timing["restart_s"] = round(self.timing.get("restart_s", 0) + time.monotonic() - start, 3)

    def wait(self):
        start = time.monotonic()
        try:
            return ReadinessWaiter(self.module, self.unit, self.link).wait()
        finally:
            self.timing["ready_s"] = round(self.timing.get("ready_s", 0) + time.monotonic() - start, 3)

    def serve(self, reason):
        """Restart when reason says so, then wait until the engine serves current."""
        if reason:
            self.restart()
        return self.wait()

    # ------------------------------------------------------------------ run

    def run(self):
        a = self.activator
        a.validate(require_target=False)
        a.check_root()
        started = time.monotonic()
        try:
            if self.module.check_mode:
                return self.plan()
            with HostLock(a.root, self.module.params["lock_timeout"], purpose=a.purpose("model_switch")):
                return self.run_locked()
        finally:
            self.timing["total_s"] = round(time.monotonic() - started, 3)

    def switch(self):
        """Switch current as asked (model_activate's run, under the lock the caller holds, or
        its check in check mode); without version and rollback, only read the links."""
        a = self.activator
        p = self.module.params
        if p["version"] is None and not p["rollback"]:
            current, previous = a.links()
            if current is None:
                raise ActivateError(
                    "nothing to serve: %s does not exist; set version and variant to activate a release"
                    % self.link)
            return dict(changed=False, current=fmt(current), previous=fmt(previous), pruned=[],
                        ledger_event=None, verified=None)
        return a.run_locked(target=a.requested())

    def plan(self):
        old_cur = self.activator.links()[0]
        result = self.switch()
        self.decide(old_cur, result)
        return result

    def run_locked(self):
        a = self.activator
        p = self.module.params
        old_cur = a.links()[0]
        start = time.monotonic()
        result = self.switch()
        self.timing["activate_s"] = round(time.monotonic() - start, 3)
        switched = result["changed"]
        reason = self.decide(old_cur, result)
        try:
            ready = self.serve(reason)
        except EngineNotReady as e:
            msg = "%s does not serve %s %s: %s" % (self.unit, a.model, result["current"], e)
            if not (switched and p["switch_back"] and old_cur is not None):
                if switched:
                    msg += "; current stays at %s (%s)" % (
                        result["current"], "switch_back=false" if old_cur is not None else "nothing was served before")
                raise SwitchFailed(msg, result)
            raise SwitchFailed(*self.switch_back(msg, result, old_cur))
        result["ready"] = ready
        result["served_dir"] = ready.pop("served_dir", None)
        result["msg"] = "%s serves %s %s (%s: %s)" % (
            self.unit, a.model, result["current"], "restarted" if reason else "not restarted", result["restart_reason"])
        return result

    def switch_back(self, msg, result, old_cur):
        """Point current back at old_cur (what was served before this call), restart, wait:
        (message, result) of the failure to report either way."""
        a = self.activator
        failed = result["current"]
        try:
            back = a.run_locked(target=old_cur, action="rollback", prune=False, restore=True,
                                reason="rollback: %s did not serve %s (model_switch)" % (self.unit, failed))
        except (ActivateError, OSError) as e:
            return "%s; switching back to %s failed too: %s" % (msg, fmt(old_cur), e), result
        result.update(current=back["current"], previous=back["previous"], back_event=back["ledger_event"])
        try:
            ready = self.serve("switched back from %s to %s" % (failed, fmt(old_cur)))
        except EngineNotReady as e:
            return ("%s; switched current back to %s, which does not serve either: %s"
                    % (msg, fmt(old_cur), e), result)
        result.update(switched_back=True, ready=ready, served_dir=ready.pop("served_dir", None))
        return "%s; switched back to %s, which serves again" % (msg, fmt(old_cur)), result


def main():
    spec = model_store_spec()
    for part in (activate_spec(), engine_api_spec(), ready_spec()):
        spec.update(part)
    spec.update(
        unit=dict(type="str", required=True),
        restart=dict(type="str", choices=["auto", "always"], default="auto"),
        switch_back=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=spec,
        required_together=[("version", "variant")],
        mutually_exclusive=[("version", "rollback")],
        supports_check_mode=True,
    )
    account(module, rollback_or("restart"))
    switcher = Switcher(module)
    try:
        result = switcher.run()
    except SwitchFailed as e:
        module.fail_json(msg=str(e), **dict((k, v) for k, v in e.result.items() if k != "msg"))
    except (ActivateError, HostStateError) as e:
        module.fail_json(msg=str(e), changed=False, switched=False, restarted=False, switched_back=False,
                         timing=switcher.timing)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
