# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_report
type: aggregate
short_description: Write a JSON, JUnit XML and HTML report of each rollout
version_added: 0.1.0
description:
  - Records, per host, what a rollout (C(playbooks/upgrade.yml) and the
    M(modelops.fleet.model_upgrade) role) did, and writes three files into a new directory
    per run under O(report_dir), named after the start time and the playbook
    (C(20260115T101500Z-upgrade)), plus a C(latest) link (a copy where links cannot be
    made) to the newest run.
  - C(report.json) - per host the group, policy, engine, wave, from and to version, every step
    (baseline, sync, verify, activate, restart, ready, probe, soak, rollback, metrics) with start,
    end and duration, bytes transferred, the probe verdicts with latencies and baseline,
    the rollback and why, and the final state; and a run summary (the C(modelops_rollout)
    statistics of C(set_stats) when the play published them, and the per-host counts).
  - C(junit.xml) - one test case per host (its upgrade) and one per host and probe, for CI
    systems; failures carry the reason.
  - C(report.html) - one self-contained page (inline CSS and SVG, no external assets) with the
    fleet summary, failures first, a per-host timeline of the steps drawn as bars, and probe
    latency against the baseline.
  - Each step module of the collection returns its own account, C(step) - the step's name
    (C(model_sync) is sync, C(model_switch) restart or rollback, C(model_probe) probe or
    baseline, ...), its outcome, the seconds its own work took and the phases it timed. The
    report takes the step, its outcome and its own seconds from there; a step's C(seconds)
    are what its modules account for, C(overhead) the rest of its span (templating, the
    connection, the module's transfer and start). A task variable C(modelops_step) names the
    step of tasks that are not step modules (the soak, the engine's configuration) and
    relabels a module's step in a caller's flow (the re-probe after a rollback); other
    tasks' steps are derived from the action (service restarts are restart).
  - Host facts C(model_upgrade_context), C(model_upgrade_status), C(model_upgrade_failure)
    and C(model_upgrade_rolled_back) set by the role give the context and the final state.
    An unreachable host ends in state C(unreachable).
  - Secrets never reach the reports - keys named C(api_key) or containing C(password),
    C(passphrase), C(token) or C(secret) are dropped, and results of C(no_log) tasks are
    recorded only as their status.
  - Not a stdout callback; enable it next to any stdout callback with C(callbacks_enabled).
requirements:
  - enable in configuration (C(callbacks_enabled = modelops.fleet.rollout_report))
options:
  report_dir:
    description:
      - Directory that receives one sub-directory per run and the C(latest) link. Created
        when missing. A relative path is relative to the directory C(ansible-playbook) runs in.
    type: path
    default: ./rollout-reports
    env:
      - name: MODELOPS_REPORT_DIR
    ini:
      - section: modelops_rollout_report
        key: report_dir
"""

import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.modelops.fleet.plugins.plugin_utils._report_record import (
    SKIP_ACTIONS,
    Recorder,
    short_action,
)
from ansible_collections.modelops.fleet.plugins.plugin_utils._report_write import write_reports


def _task_step(task):
    try:
        value = task.get_vars().get("modelops_step")
    except Exception:  # pylint: disable=broad-except
        return None
    if value is None:
        return None
    value = str(value)
    return value if value and "{" not in value else None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "modelops.fleet.rollout_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.recorder = Recorder()
        self.run_dir = None

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _parts(result):
        host = getattr(result, "_host", None) or getattr(result, "host", None)
        task = getattr(result, "_task", None) or getattr(result, "task", None)
        res = getattr(result, "result", None)
        if res is None:
            res = getattr(result, "_result", {})
        return host, task, res

    def _record(self, result, status):
        host, task, res = self._parts(result)
        if host is None or task is None:
            return
        name = host.get_name()
        try:
            self.recorder.set_groups(name, [g.get_name() for g in host.get_groups()])
        except Exception:  # pylint: disable=broad-except
            pass
        action = getattr(task, "action", "") or ""
        if short_action(action) in SKIP_ACTIONS:
            return
        res = res if isinstance(res, dict) else {}
        no_log = bool(res.get("_ansible_no_log")) or (isinstance(getattr(task, "no_log", None), bool) and task.no_log)
        if status == "ok" and res.get("changed"):
            status = "changed"
        self.recorder.task_result(name, getattr(task, "_uuid", id(task)), task.get_name(), action,
                                  _task_step(task), status, res, no_log=no_log)

    # -------------------------------------------------------------- events

    def v2_playbook_on_start(self, playbook):
        self.recorder.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "run")
        self.recorder.started = time.time()

    def v2_playbook_on_play_start(self, play):
        self.recorder.plays.append(play.get_name())
        self._play = play

    def _inventory_vars(self):
        """Policy (model_upgrade_policy) of hosts whose context fact did not say it, from
        the inventory and extra vars, as the play sees them."""
        play = getattr(self, "_play", None)
        if play is None:
            return
        try:
            vm = play.get_variable_manager()
            inventory = vm._inventory
        except Exception:  # pylint: disable=broad-except
            return
        for name, h in self.recorder.hosts.items():
            if h["policy"] is not None and h["model"] is not None and h["engine"] is not None:
                continue
            try:
                host = inventory.get_host(name)
                if host is None:
                    continue
                hvars = vm.get_vars(play=play, host=host, include_hostvars=False)
            except Exception:  # pylint: disable=broad-except
                continue
            for key, var in (("policy", "model_upgrade_policy"), ("model", "model_name"),
                             ("variant", "model_variant"), ("engine", "inference_server_engine")):
                value = hvars.get(var)
                if h[key] is None and isinstance(value, str) and "{" not in value:
                    h[key] = str(value)

    def v2_runner_on_start(self, host, task):
        self.recorder.task_start(host.get_name(), getattr(task, "_uuid", id(task)))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.recorder.stats(stats)
        self._inventory_vars()
        report_dir = self.get_option("report_dir")
        try:
            report = self.recorder.report()
            self.run_dir = write_reports(report, report_dir, self.recorder.started, self.recorder.playbook)
        except (OSError, ValueError, TypeError) as e:
            self._display.warning("modelops.fleet.rollout_report could not write the reports to %s: %s; "
                                  "set MODELOPS_REPORT_DIR (or [modelops_rollout_report] report_dir) to a "
                                  "writable directory" % (report_dir, e))
            return
        self._display.display("rollout report: %s" % os.path.join(self.run_dir, "report.html"))
