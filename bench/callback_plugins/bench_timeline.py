# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Callback of bench/orchestration_bench.py: when each task and handler started, when each host
finished it, and which rollout step it belongs to, written as JSON at the end of the run.

Not part of the collection (it lives in bench/, which the benchmark puts on
ANSIBLE_CALLBACK_PLUGINS); enabled with ANSIBLE_CALLBACKS_ENABLED=bench_timeline and
BENCH_TIMELINE_FILE=<path of the JSON file to write>.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timeline
type: aggregate
short_description: Task and handler timings with their rollout step, for the benchmarks
description:
  - Records the start of every task and handler, and for every host when it started and finished it,
    with the task's rollout step (the task var C(modelops_step), else the step the module's result
    names, else derived from the action and role) and the seconds a step module measured itself,
    and writes them as JSON to the file named by E(BENCH_TIMELINE_FILE) when the playbook ends.
requirements:
  - enable in the callbacks_enabled list
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

# Fallback when a task carries no modelops_step var: the last part of its action name.
ACTION_STEPS = {
    "model_sync": "sync",
    "model_activate": "activate",
    "inference_ready": "ready",
    "model_probe": "probe",
    "pause": "soak",
    "model_release_info": "resolve",
}


def task_step(task):
    """The rollout step of a task: its modelops_step var, else derived from action, name and role."""
    try:
        step = task.get_vars().get("modelops_step")
    except Exception:  # pylint: disable=broad-except
        step = None
    if isinstance(step, str) and step and "{" not in step:
        return step, "var"
    action = (getattr(task, "resolved_action", None) or task.action or "").split(".")[-1]
    name = (task.get_name() or "").lower()
    role = task._role.get_name() if getattr(task, "_role", None) else ""
    if action == "model_activate" and ("back" in name or "rollback" in name):
        return "rollback", "action"
    if action == "model_probe" and "baseline" in name:
        return "baseline", "action"
    if action in ACTION_STEPS:
        return ACTION_STEPS[action], "action"
    if role.endswith("inference_server"):
        return "restart", "role"
    return "other", "none"


# Modules whose arguments the timeline keeps (the floor of a no-op reruns them).
ARGS_OF = ("model_info", "model_release_info")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.path = os.environ.get("BENCH_TIMELINE_FILE")
        self.data = {"start": time.time(), "plays": [], "tasks": []}
        self.current = {}
        # (task uuid, host) -> the entry the host's run of the task started in: under the free
        # strategy a task is announced again when hosts interleave, and a host's result must
        # land in the entry that holds its start
        self.running = {}
        self.play = None

    def _task(self, task, handler):
        step, source = task_step(task)
        role = task._role.get_name() if getattr(task, "_role", None) else None
        entry = {"uuid": task._uuid, "name": task.get_name(), "action": getattr(task, "resolved_action", None) or task.action,
                 "role": role, "step": step, "step_source": source, "handler": handler, "play": self.play,
                 "start": time.time(), "hosts": {}}
        self.data["tasks"].append(entry)
        self.current[task._uuid] = entry

    def _entry(self, task):
        entry = self.current.get(task._uuid)
        if entry is None:  # a task this callback was not told about (should not happen)
            self._task(task, False)
            entry = self.current[task._uuid]
        return entry

    def v2_playbook_on_start(self, playbook):
        self.data["playbook_start"] = time.time()

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()
        self.data["plays"].append({"name": self.play, "start": time.time()})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task, False)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task, True)

    def v2_runner_on_start(self, host, task):
        entry = self._entry(task)
        entry["hosts"].setdefault(host.get_name(), {})["start"] = time.time()
        self.running[(task._uuid, host.get_name())] = entry

    def _done(self, result, status):
        entry = self.running.pop((result._task._uuid, result._host.get_name()), None) or self._entry(result._task)
        h = entry["hosts"].setdefault(result._host.get_name(), {})
        h["end"] = time.time()
        h["status"] = status
        h["changed"] = bool(result._result.get("changed", False))
        account = result._result.get("step")
        if isinstance(account, dict) and account.get("name"):
            # a step module names its step and times its own work (module_utils/_step.py);
            # a task var (the caller's label) still wins
            h["seconds"] = account.get("seconds")
            if entry["step_source"] != "var":
                entry["step"], entry["step_source"] = str(account["name"]), "result"
        if isinstance(result._result.get("steps"), list):
            # the task's time is its steps' (below): counted once, there
            h["expanded"] = True
            self._rollout_steps(entry, result._host.get_name(), result._result["steps"])
        if entry["action"].split(".")[-1] in ARGS_OF:
            # the arguments the run passed (bench/noop_floor.yml runs the same reads again)
            res = result._result
            found = [res.get("invocation", {}).get("module_args")] + [
                r.get("invocation", {}).get("module_args") for r in res.get("results", []) if isinstance(r, dict)]
            h["args"] = [a for a in found if a]

    def _rollout_steps(self, entry, host, steps):
        """model_rollout runs a host's steps in one task: each becomes an entry of its own,
        timed on the controller's clock (its round trips included) with the module's own
        seconds, as if it were a task."""
        for i, sub in enumerate(steps):
            if not isinstance(sub, dict) or not isinstance(sub.get("started"), (int, float)):
                continue
            account = sub.get("account") if isinstance(sub.get("account"), dict) else {}
            h = {"start": sub["started"], "end": sub["started"] + (sub.get("seconds") or 0.0),
                 "status": sub.get("status"), "changed": sub.get("status") == "changed"}
            if isinstance(account.get("seconds"), (int, float)):
                h["seconds"] = account["seconds"]
            self.data["tasks"].append({
                "uuid": "%s/%s/%d" % (entry["uuid"], host, i), "name": sub.get("task"),
                "action": "modelops.fleet.%s" % sub.get("action"), "role": entry["role"],
                "step": str(account.get("name") or sub.get("action")), "step_source": "result", "handler": False,
                "play": entry["play"], "start": sub["started"], "hosts": {host: h}, "rollout_step": True})

    def v2_runner_on_ok(self, result):
        self._done(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._done(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.data["end"] = time.time()
        if not self.path:
            return
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)
