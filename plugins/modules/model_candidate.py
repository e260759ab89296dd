#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_candidate
short_description: Start a release beside the serving engine, move the clients to it, or drop it (blue/green)
version_added: 1.0.0
description:
  - For hosts whose engine the C(modelops.fleet.inference_server) role installed with
    C(inference_server_mode=blue_green) - two instances of the engine, C(<service>@blue) and
    C(<service>@green), each on its own Unix socket and its own release link
    (C(<model_root>/<model>/blue), C(.../green)); the clients' address is held by
    C(<service>-front.socket) and forwarded by C(systemd-socket-proxyd) to the socket that
    C(/var/lib/modelops/<service>/serving.sock) points to.
  - O(state=started) starts the release in the instance that does not serve (the candidate)
    and waits until it really serves it - health, the model list, one completion, and the
    attestation that its process was started from that release - while the other instance
    keeps serving the clients. RV(url) is the candidate's own address, for the probes. Before
    it starts, the host's available memory (and, where C(nvidia-smi) is found, the GPU's free
    memory) must hold O(memory_factor) times the release's size; if not, nothing is started
    and RV(fits) is false, unless O(fallback=in_place).
  - O(state=promoted) moves the clients to the instance that serves the release - one rename
    of the serving link, so every new connection goes to it and connections already open
    finish where they are - points C(current) at the release (a ledger event), lets the
    other instance finish its open connections (up to O(drain_timeout)) and stops it.
  - O(state=absent) stops the instance that does not serve C(current) and removes its link;
    when it served the clients (an in-place fallback), the instance of C(current) is started
    and the clients moved back to it first.
  - Each call holds the host lock; every step can be repeated, so a run killed at any point
    is finished or undone by the next one.
attributes:
  check_mode:
    support: full
    details: Says what would be started, moved or stopped; changes nothing.
  diff_mode:
    support: none
options:
  model_name:
    description: Model name, for example C(qwen3-4b-instruct).
    type: str
    required: true
  version:
    description:
      - Version of the release (O(state=started) and O(state=promoted)). Requires O(variant).
      - Without it, the release C(current) points to.
    type: str
  variant:
    description: Variant of the release.
    type: str
  verify:
    description:
      - Check every file of the release against its C(manifest.json) (through the hash cache)
        before its instance starts; refuse a changed, missing or extra file, naming it.
    type: bool
    default: true
  keep_versions:
    description: As M(modelops.fleet.model_activate)'s, when O(state=promoted) moves C(current).
    type: int
    default: 2
  lock_timeout:
    description: Seconds to wait for the host lock held by another upgrade before failing.
    type: int
    default: 60
  reason:
    description: Free text recorded with the activation in the host ledger.
    type: str
  state:
    description: What to make true (see the description).
    type: str
    choices: [started, promoted, absent]
    default: started
  service:
    description: The engine's service name (C(inference_server_service_name)); the units are C(<service>@<color>.service).
    type: str
    default: modelops-inference
  memory_factor:
    description:
      - O(state=started) needs this many times the release's size in available memory
        (C(MemAvailable)), and on a GPU host in free GPU memory, before it starts a second
        engine. V(0) skips the check.
    type: float
    default: 1.5
  fallback:
    description:
      - What O(state=started) does when two engines do not fit. V(none) starts nothing and
        returns RV(fits=false). V(in_place) stops the serving instance first and moves the
        clients to the candidate as soon as it serves (an outage, as in the in-place mode);
        RV(fallback) says why.
    type: str
    choices: [none, in_place]
    default: in_place
  restart:
    description:
      - V(auto) keeps an instance that already serves the release (started from it, its unit
        unchanged); V(always) starts the release in the other instance even then (the
        engine's configuration changed), so the clients move to an engine started on the new
        configuration without an outage.
    type: str
    choices: [auto, always]
    default: auto
  drain_timeout:
    description: Seconds O(state=promoted) waits at most for the old instance's open connections to end before it stops it.
    type: int
    default: 30
  gated:
    description:
      - O(state=promoted) - the release passed its probe gate before the clients were moved to
        it (recorded with the activation, so that M(modelops.fleet.model_info)'s C(converge.gate)
        does not ask for another probe).
    type: bool
    default: false
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.engine_api
  - modelops.fleet.ready
  - modelops.fleet.model_store
seealso:
  - module: modelops.fleet.model_switch
  - module: modelops.fleet.model_probe
"""

EXAMPLES = r"""
- name: Start 2507 beside the serving version
  modelops.fleet.model_candidate:
    model_name: qwen3-4b-instruct
    version: "2507"
    variant: fp16
    served_name: qwen3-4b-instruct
    state: started
  register: candidate

- name: Judge it before any client sees it
  modelops.fleet.model_probe:
    url: "{{ candidate.url }}"
    served_name: qwen3-4b-instruct
    model_name: qwen3-4b-instruct
    suite: smoke

- name: Move the clients to it
  modelops.fleet.model_candidate:
    model_name: qwen3-4b-instruct
    version: "2507"
    variant: fp16
    served_name: qwen3-4b-instruct
    state: promoted
    gated: true
"""

RETURN = r"""
instance:
  description: The instance that serves the release (V(blue) or V(green)).
  returned: when O(state) is V(started) or V(promoted)
  type: str
  sample: green
url:
  description: The address of that instance (HTTP over its Unix socket), for the probes.
  returned: when O(state) is V(started) or V(promoted)
  type: str
  sample: unix:/run/modelops-inference/green/engine.sock
serving:
  description: The instance the clients' connections go to after the call (null when none does).
  returned: always
  type: str
serving_release:
  description: The release the clients are served after the call.
  returned: always
  type: str
fits:
  description: Whether a second engine fit in memory (O(state=started)).
  returned: always
  type: bool
fallback:
  description: Why the candidate replaced the serving instance instead of starting beside it, else null.
  returned: always
  type: str
memory:
  description: What the memory check saw - C(need), C(available), C(gpu_free) in bytes.
  returned: when O(state=started)
  type: dict
ready:
  description: What the wait for the candidate saw (completion, latency_ms, models, elapsed).
  returned: when an instance was started
  type: dict
stopped:
  description: The instance stopped by the call, if any.
  returned: always
  type: str
drained:
  description: O(state=promoted) - open connections of the old instance when the clients moved, and seconds waited for them.
  returned: when the clients were moved
  type: dict
ledger_event:
  description: The activation written when C(current) moved.
  returned: when C(current) moved
  type: dict
timing:
  description: Seconds per step (start, ready, switch, drain, stop, total).
  returned: always
  type: dict
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (restart (O(state=started)),
      activate (O(state=promoted)), or rollback when the reason starts with C(rollback));
      C(seconds) what the work took on the host, without Ansible's round trip; C(outcome) is ok,
      changed or failed; C(phases) the parts the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: restart, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._activate import ActivateError, Activator
from ansible_collections.modelops.fleet.plugins.module_utils._attest import restart_reason, unit_state
from ansible_collections.modelops.fleet.plugins.module_utils._bluegreen import (
    COLORS, Layout, fit_shortfall, gpu_free, meminfo_available,
)
from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    HostStateError, read_link, release_rel, tree_size,
)
from ansible_collections.modelops.fleet.plugins.module_utils._ready import (
    EngineNotReady, ReadinessWaiter, restart_unit, systemctl,
)
from ansible_collections.modelops.fleet.plugins.module_utils._specs import (
    activate_spec, engine_api_spec, model_store_spec, ready_spec,
)
from ansible_collections.modelops.fleet.plugins.module_utils._step import account, rollback_or


class CandidateError(Exception):
    def __init__(self, msg, result=None):
        super(CandidateError, self).__init__(msg)
        self.result = result or {}


class Candidate(object):
    def __init__(self, module):
        self.module = module
        p = self.p = module.params
        self.layout = Layout(p["service"], p["model_root"], p["model_name"])
        self.activator = Activator(module)
        self.timing = {}
        self.result = dict(changed=False, serving=None, serving_release=None, fits=True, fallback=None,
                           stopped=None, timing=self.timing)

    # ------------------------------------------------------------------ helpers

    def want(self):
        return release_rel(self.p["version"], self.p["variant"])

    def current(self):
        target = read_link(self.layout.model_dir, "current")
        return release_rel(*target) if target else None

    def timed(self, name, fn, *args):
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timing[name] = round(self.timing.get(name, 0) + time.monotonic() - start, 3)

    def running(self, color):
        return unit_state(self.layout.unit(color)) in ("active", "activating", "reloading")

    def serves_release(self, color, rel):
        """color's link is rel, its unit is active and its process was started from it."""
        if self.layout.release(color) != rel:
            return False
        return not restart_reason(self.layout.unit(color), self.layout.link(color))

    def waiter(self, color):
        params = dict(self.p, url=self.layout.url(color))
        return ReadinessWaiter(self.module, self.layout.unit(color), self.layout.link(color), params=params)

    def start(self, color, rel):
        """Point color's link at rel and (re)start its unit; wait until it serves rel."""
        unit = self.layout.unit(color)
        self.layout.set_release(color, rel)
        self.timed("start_s", restart_unit, unit)
        ready = self.timed("ready_s", self.waiter(color).wait)
        self.result["served_dir"] = ready.pop("served_dir", None)
        return ready

    def stop(self, color):
        unit = self.layout.unit(color)
        self.timed("stop_s", systemctl, "stop", unit)
        # vLLM exits with a signal status when stopped: not a failure of the unit
        systemctl("reset-failed", unit)
        systemctl("disable", unit)
        self.layout.drop_release(color)
        self.result["stopped"] = color
        self.result["changed"] = True

    def move_clients(self, color):
        start = time.monotonic()
        self.layout.set_serving(color)
        self.timing["switch_s"] = round(time.monotonic() - start, 4)
        self.result["changed"] = True

    def drain(self, color):
        """Wait until color's open connections ended (up to drain_timeout)."""
        start = time.monotonic()
        at_switch = self.layout.connections(color)
        left = at_switch
        deadline = start + self.p["drain_timeout"]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.layout.connections(color)
        waited = round(time.monotonic() - start, 3)
        self.timing["drain_s"] = waited
        return {"at_switch": at_switch, "left": left, "waited_s": waited}

    def memory(self, rel):
        rdir = os.path.join(self.layout.model_dir, *rel.split("/"))
        size = tree_size(rdir)[1]
        info = {"need": int(size * self.p["memory_factor"]), "available": meminfo_available(), "gpu_free": gpu_free()}
        return info, fit_shortfall(size, self.p["memory_factor"], info["available"], info["gpu_free"])

    def finish(self):
        serving = self.layout.serving()
        self.result["serving"] = serving
        self.result["serving_release"] = self.layout.release(serving) if serving else None
        return self.result

    # ------------------------------------------------------------------ states

    def started(self):
        rel = self.want()
        a = self.activator
        a.check_installed(tuple(rel.split("/")), False)
        serving = self.layout.serving()
        # An instance that already serves the release (the serving one on a re-run, or a
        # candidate a killed run left running) is kept as it is.
        reuse = ([serving] if serving else []) + [c for c in COLORS if c != serving]
        if self.p["restart"] == "always":
            reuse = []
        for color in reuse:
            if self.serves_release(color, rel):
                ready = self.timed("ready_s", self.waiter(color).wait)
                self.result.update(instance=color, url=self.layout.url(color), ready=ready,
                                   served_dir=ready.pop("served_dir", None))
                return self.finish()
        cand = self.layout.other(serving) if serving else COLORS[0]
        a.verify(os.path.join(self.layout.model_dir, *rel.split("/")), tuple(rel.split("/")))
        info, short = self.memory(rel)
        self.result["memory"] = info
        in_place = False
        if serving and self.running(serving) and short:
            why = "%s: %s" % (rel, short)
            self.result["fits"] = False
            if self.p["fallback"] == "none":
                self.result["msg"] = "%s; nothing was started, %s still serves %s" % (
                    why, self.layout.unit(serving), self.layout.release(serving))
                return self.finish()
            self.result["fallback"] = "in_place: %s" % why
            in_place = True
        self.result.update(instance=cand, url=self.layout.url(cand), changed=True)
        if self.module.check_mode:
            return self.finish()
        if in_place:
            self.stop_serving(serving)
        try:
            ready = self.start(cand, rel)
        except EngineNotReady as e:
            msg = "%s does not serve %s %s: %s" % (self.layout.unit(cand), a.model, rel, e)
            self.stop(cand)
            if in_place:
                msg += "; " + self.restore(serving)
            else:
                msg += "; it was stopped, and %s still serves %s: no client saw %s" % (
                    self.layout.unit(serving), self.layout.release(serving), rel) if serving else "; it was stopped"
            raise CandidateError(msg, self.finish())
        self.result["ready"] = ready
        if in_place or not serving:
            # Nothing else serves: the clients go to the candidate at once.
            self.move_clients(cand)
        return self.finish()

    def stop_serving(self, color):
        self.timed("stop_s", systemctl, "stop", self.layout.unit(color))

    def restore(self, color):
        """Start color again on its release and move the clients back to it (the in-place
        fallback failed)."""
        rel = self.layout.release(color)
        try:
            self.start(color, rel)
        except EngineNotReady as e:
            return "starting %s on %s again failed too: %s" % (self.layout.unit(color), rel, e)
        self.move_clients(color)
        return "%s serves %s again" % (self.layout.unit(color), rel)

    def promoted(self):
        rel = self.want()
        serving = self.layout.serving()
        # The idle instance first: after a restart=always start (a changed configuration) both
        # serve the release, and the fresh one is to take the clients.
        color = next((c for c in [c for c in COLORS if c != serving] + ([serving] if serving else [])
                      if self.serves_release(c, rel)), None)
        if color is None:
            raise CandidateError("no instance of %s serves %s %s: start it first (state=started)" % (
                self.p["service"], self.activator.model, rel), self.finish())
        self.result.update(instance=color, url=self.layout.url(color))
        old = self.layout.other(color)
        if self.module.check_mode:
            self.result["changed"] = serving != color or self.current() != rel or self.running(old)
            return self.finish()
        if serving != color:
            self.move_clients(color)
        extra = {"instance": color}
        if self.p["gated"]:
            extra["gated"] = True
        act = self.activator.run_locked(target=tuple(rel.split("/")), extra=extra)
        if act["changed"]:
            self.result.update(changed=True, ledger_event=act["ledger_event"], pruned=act["pruned"])
        systemctl("enable", self.layout.unit(color))
        if self.running(old) or self.layout.release(old):
            if serving == old:
                self.result["drained"] = self.drain(old)
            self.stop(old)
        return self.finish()

    def absent(self):
        cur = self.current()
        serving = self.layout.serving()
        # the serving instance first: both may hold current's release (a fresh start beside it)
        keep = next((c for c in ([serving] if serving else []) + [c for c in COLORS if c != serving]
                     if cur and self.layout.release(c) == cur), None)
        drop = [c for c in COLORS if c != keep and (self.running(c) or self.layout.release(c))]
        if self.module.check_mode:
            self.result["changed"] = bool(drop) or (keep is not None and serving != keep)
            return self.finish()
        if keep is not None and (serving != keep or not self.running(keep)):
            if not self.serves_release(keep, cur):
                try:
                    self.start(keep, cur)
                except EngineNotReady as e:
                    raise CandidateError("%s does not serve %s (current) again: %s" % (
                        self.layout.unit(keep), cur, e), self.finish())
            self.move_clients(keep)
        for color in drop:
            self.stop(color)
        return self.finish()

    def run(self):
        a = self.activator
        a.check_root()
        start = time.monotonic()
        try:
            if self.p["state"] == "absent":
                fn = self.absent
            else:
                if not self.p["version"]:
                    cur = self.current()
                    if not cur:
                        raise ActivateError("nothing to serve: %s/current does not exist; set version and variant"
                                            % self.layout.model_dir)
                    self.p["version"], self.p["variant"] = cur.split("/")
                a.validate()
                fn = self.started if self.p["state"] == "started" else self.promoted
            if self.module.check_mode:
                return fn()
            with HostLock(a.root, self.p["lock_timeout"], purpose=a.purpose("model_candidate %s" % self.p["state"])):
                return fn()
        finally:
            self.timing["total_s"] = round(time.monotonic() - start, 3)


def main():
    spec = model_store_spec()
    for part in (activate_spec(), engine_api_spec(), ready_spec()):
        spec.update(part)
    del spec["rollback"]
    spec.update(
        state=dict(type="str", choices=["started", "promoted", "absent"], default="started"),
        service=dict(type="str", default="modelops-inference"),
        memory_factor=dict(type="float", default=1.5),
        fallback=dict(type="str", choices=["none", "in_place"], default="in_place"),
        restart=dict(type="str", choices=["auto", "always"], default="auto"),
        drain_timeout=dict(type="int", default=30),
        gated=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, required_together=[("version", "variant")], supports_check_mode=True)
    account(module, rollback_or(lambda p: "activate" if p["state"] == "promoted" else "restart"))
    # the Activator's own option, which a candidate never uses
    module.params["rollback"] = False
    cand = Candidate(module)
    try:
        result = cand.run()
    except CandidateError as e:
        module.fail_json(msg=str(e), **dict((k, v) for k, v in e.result.items() if k != "msg"))
    except (ActivateError, HostStateError, EngineNotReady, OSError) as e:
        module.fail_json(msg=str(e), **cand.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
