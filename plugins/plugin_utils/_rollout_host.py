# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One host's rollout, top to bottom: the flow that modelops.fleet.model_rollout runs.

The host was read before (model_info: what it serves, whether its engine's installation
drifted) and, on drift, configured (the inference_server role's templates). From there:

    baseline (canaries) -> sync -> switch + restart + ready (in place)
                                   | start beside, baseline, gate, promote (blue/green)
    -> gate (probe suite) -> soak, gate again (canaries) -> keep
    on any failure: roll back (switch back, or move the clients back / stop the candidate),
    probe the old version again, and say why
    -> metrics (every step's account, the verdict)

Each step is a module of the collection (or its action plugin), run with the task's
module_defaults; each returns its own account (module_utils/_step.py). The steps that need
no controller run in one host-side call (model_switch: switch, restart, wait until it
serves, switch back on failure). What the host ends as (upgraded, or failed with the
reason and whether it was rolled back) is decided here, nowhere else.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.modelops.fleet.plugins.module_utils._step import step_account

# What each step is called: in the console, the report (task) and the failure reason
# ("failed at <step>: <why>").
TASKS = {
    "baseline": "Record the old version's behaviour as the baseline (canaries)",
    "sync": "Make the release present on the host (staged, verified)",
    "switch": "Switch to the new version and restart the engine on it",
    "candidate": "Start the new version beside the serving one (blue/green)",
    "bg_baseline": "Record the serving version's behaviour beside the new one, as the baseline (blue/green)",
    "candidate_probe": "Gate the new version before any client reaches it (blue/green)",
    "promote": "Move the clients to the new version (blue/green)",
    "probe": "Gate on the probe suite (behaviour, latency against the baseline)",
    "soak": "Soak on the new version (canaries)",
    "after_soak": "Gate again after the soak",
    "bg_back": "Stop the new version that no client reached, or move the clients back (blue/green)",
    "switch_back": "Switch back to the version served before and restart the engine on it",
    "reprobe": "Probe the old version again",
    "metrics": "Publish the host's model metrics for node_exporter",
}
# Long messages (a crash loop quotes the journal) keep their head and their tail, where the
# engine's own last words are.
REASON_HEAD, REASON_TAIL, REASON_MAX = 400, 1000, 1400


class ControllerGone(Exception):
    """The run that started this rollout is gone (its controller process was killed)."""


class StepFailed(Exception):
    def __init__(self, key, result):
        Exception.__init__(self, key)
        self.key = key
        self.result = result


def reason_text(task, msg):
    msg = str(msg or "failed")
    if len(msg) > REASON_MAX:
        msg = msg[:REASON_HEAD] + " [...] " + msg[-REASON_TAIL:]
    return "%s: %s" % (task, msg)


def _truncate(text, width):
    text = str(text)
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


class HostRollout(object):
    """One host's rollout. runner runs a step: runner(module, args) -> result dict (the
    module's or its action plugin's result); say(text) shows a line on the console; alive()
    says whether the run that started the rollout is still there; sleep is time's
    (replaceable in tests)."""

    def __init__(self, host, opts, runner, say, alive=lambda: True, sleep=time.sleep):
        self.host = host
        self.alive = alive
        self.o = opts
        self.runner = runner
        self.say = say
        self.sleep = sleep
        rel = opts["release"]
        manifest = rel.get("manifest") or {}
        self.model = manifest.get("model_name")
        self.variant = manifest.get("variant")
        self.version = str(rel.get("version"))
        self.release = rel.get("release")
        self.to = "%s/%s" % (self.version, self.variant)
        self.frm = opts.get("serving") or None
        self.ep = opts["endpoint"]
        self.bg = self.ep.get("mode") == "blue_green"
        self.suite = opts.get("probe_suite") or ""
        self.soak = int(opts.get("soak_seconds") or 0)
        self.results = {}
        self.steps = []
        self.engine = None

    # ------------------------------------------------------------------ the flow

    def run(self):
        """Upgrade; on a failure roll back; publish the metrics. Returns the outcome."""
        outcome = {"status": "upgraded", "rolled_back": False, "failure": None, "reason": None}
        try:
            self.upgrade()
        except StepFailed as e:
            outcome["reason"] = reason_text(TASKS[e.key], e.result.get("msg"))
            outcome.update(self.roll_back(outcome["reason"]))
        self.publish_metrics(outcome)
        outcome["steps"] = self.steps
        outcome["engine"] = self.engine
        return outcome

    def upgrade(self):
        r = self.results
        if (self.o.get("record_baseline") and not self.bg and self.suite and self.frm and self.frm != self.to):
            self.step("baseline", "model_probe", self.probe_args(baseline="record", fail_on_failure=False))
        self.step("sync", "model_sync", self.sync_args())
        if self.bg:
            self.blue_green()
        else:
            self.step("switch", "model_switch", self.switch_args())
            if self.suite and (self.ungated() or self.o.get("probe_always")):
                self.step("probe", "model_probe", self.probe_args(
                    baseline="compare", latency_factor=self.o["latency_factor"],
                    # a canary recorded its baseline just before: compare against it, or fail
                    require_baseline="baseline" in r,
                    # the last gate (none follows without a soak) records that the release passed
                    gate=self.to if self.soak == 0 else None))
        # Each canary soaks on its own clock, then is judged again.
        if self.soak > 0 and self.ungated():
            self.step("soak", "soak", {"seconds": self.soak})
            self.step("after_soak", "model_probe", self.probe_args(
                suite=self.suite or "smoke", baseline="compare", latency_factor=self.o["latency_factor"],
                require_baseline="baseline" in r, gate=self.to))

    def blue_green(self):
        """The new version starts in the instance that does not serve, is judged there (its
        latency beside the serving version's, measured just before), and only then the
        clients move to it; until then no client reaches it."""
        r = self.results
        cand = self.step("candidate", "model_candidate", dict(
            self.candidate_args(), version=self.version, variant=self.variant, restart=self.o["restart"],
            memory_factor=self.ep.get("memory_factor"), timeout=self.o["ready_timeout"], state="started"))
        if cand.get("fallback") is not None:
            self.say("%s: upgraded in place, not blue/green: %s" % (self.host, cand["fallback"]))
        if self.suite and cand.get("serving") not in (None, cand.get("instance")):
            self.step("bg_baseline", "model_probe", self.probe_args(baseline="record", fail_on_failure=False))
        if self.suite and (self.ungated() or self.o.get("probe_always")):
            self.step("candidate_probe", "model_probe", self.probe_args(
                url=cand.get("url"), baseline="compare", latency_factor=self.o["latency_factor"],
                require_baseline="bg_baseline" in r))
        promote = self.step("promote", "model_candidate", dict(
            self.candidate_args(), version=self.version, variant=self.variant, keep_versions=self.o["keep_versions"],
            reason="upgrade to %s" % self.release, drain_timeout=self.o["drain_timeout"],
            # it passed the gate above, the last one without a soak
            gated="candidate_probe" in r and self.soak == 0, state="promoted"))
        self.engine = "%s@%s" % (self.ep.get("engine"), promote.get("instance"))

    def ungated(self):
        """The release the engine now serves has not passed the gates yet: it was synced or
        switched to now, or the host read said a run ended after it was made current and
        before its last gate (killed between the switch and the restart, or between the
        restart and the probes), or a blue/green candidate runs that no client reaches yet (a
        run killed before the clients moved left it running: it is kept, and gated now)."""
        cand = self.results.get("candidate", {})
        return (any(self.results.get(k, {}).get("changed") for k in ("sync", "switch", "candidate", "promote"))
                or bool((self.o.get("read") or {}).get("gate_pending"))
                or cand.get("instance") not in (None, cand.get("serving")))

    def roll_back(self, reason):
        """Switch back only when this run switched (a failure before leaves the host as it
        was); then probe the old version again, and say what happened."""
        r = self.results
        switched = bool(r.get("switch", {}).get("switched"))
        promoted = r.get("promote", {}).get("ledger_event") is not None
        fallback = r.get("candidate", {}).get("fallback") is not None
        possible = bool(self.frm) and (switched or promoted or fallback)
        # blue/green: the clients reached the new version only once it was promoted (or when
        # it replaced the serving instance for lack of memory)
        unseen = self.bg and not promoted and not fallback
        why = "rollback: %s" % _truncate(reason, 200)
        back_failed = None
        try:
            if self.bg and unseen:
                self.step("bg_back", "model_candidate", dict(
                    self.candidate_args(), reason=why, gated=True, timeout=self.o["ready_timeout"], state="absent"))
            elif self.bg and possible:
                version, variant = self.frm.split("/", 1)
                for state in ("started", "promoted"):
                    # the version served before passed its gates when it was installed
                    self.step("bg_back", "model_candidate", dict(
                        self.candidate_args(), version=version, variant=variant, reason=why, gated=True,
                        timeout=self.o["ready_timeout"], state=state))
            elif possible and not r.get("switch", {}).get("switched_back"):
                # model_switch switched back by itself when the new version did not serve
                version, variant = self.frm.split("/", 1)
                self.step("switch_back", "model_switch", dict(
                    self.engine_args(), model_name=self.model, version=version, variant=variant, reason=why,
                    unit=self.ep.get("unit"), timeout=self.o["ready_timeout"], switch_back=False))
            if possible and self.suite:
                # it serves again: once it passes, the next run need not probe it
                self.step("reprobe", "model_probe", self.probe_args(baseline="ignore", fail_on_failure=False,
                                                                    gate=self.frm), name="rollback")
        except StepFailed as e:
            back_failed = reason_text(TASKS[e.key], e.result.get("msg"))
        head = "%s: upgrade to %s failed at %s; " % (self.host, self.release, reason)
        if back_failed:
            tail = "the rollback to %s FAILED at %s; the host needs attention" % (self.frm or "nothing", back_failed)
        elif possible:
            tail = "rolled back to %s, which serves again" % self.frm
            if "passed" in r.get("reprobe", {}):
                tail += " and %s its probes" % ("passes" if r["reprobe"]["passed"] else "FAILS")
        elif unseen:
            tail = ("no client reached %s: its instance was stopped and the host still serves %s"
                    % (self.to, self.frm or "nothing"))
        else:
            tail = "nothing was switched: the host still serves %s" % (self.frm or "nothing")
        return {"status": "failed", "rolled_back": possible and not back_failed, "failure": head + tail}

    def publish_metrics(self, outcome):
        """node_exporter's textfile: the verdict, the gate's probes and every step's account.
        Reporting never fails or rolls back the upgrade: a write error is a warning."""
        path = self.o.get("metrics_path") or ""
        if not path:
            return
        r = self.results
        args = {"path": path, "fail_on_error": False, "model_name": self.model,
                "steps": [s["account"] for s in self.steps if s.get("account")]}
        if outcome["status"] == "upgraded":
            if r.get("switch", {}).get("switched") or r.get("promote", {}).get("ledger_event"):
                args["result"] = "upgraded"
            probes = [r[k] for k in ("after_soak", "probe", "candidate_probe") if "probes" in r.get(k, {})]
        else:
            args["result"] = "rolled_back" if outcome["rolled_back"] else "failed"
            if not outcome["rolled_back"]:
                args["time"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            probes = [r["reprobe"]] if "probes" in r.get("reprobe", {}) else []
        if probes:
            args["probe"] = probes[0]
        self.step("metrics", "model_metrics", args, fail=False)

    # ------------------------------------------------------------------ one step

    def step(self, key, module, args, name=None, fail=True):
        """Run one step, keep its result and account; raise StepFailed on failure (unless
        fail is False). name relabels the step (the re-probe after a rollback is part of it)."""
        task = TASKS[key]
        # A killed run stops between steps, as a run of one task per step would: a host left
        # between two steps is what the next run's read finds (a pending gate is probed).
        if not self.alive():
            raise ControllerGone("%s: the run is gone; stopped before %s" % (self.host, task))
        self.say("[%s] %s ..." % (self.host, task))
        args = dict((k, v) for k, v in args.items() if v is not None)
        started, clock = time.time(), time.monotonic()
        res = self._soak(args) if module == "soak" else self.runner(module, args)
        span = time.monotonic() - clock
        failed = bool(res.get("failed") or res.get("unreachable"))
        status = "failed" if failed else "changed" if res.get("changed") else "ok"
        account = res.get("step") if isinstance(res.get("step"), dict) else None
        if account is not None and name:
            account = dict(account, name=name)
        seconds = account.get("seconds") if account else None
        self.say("[%s] %s: %s%s" % (self.host, task, status, "" if seconds is None else ", %.1f s" % seconds))
        self.results[key] = res
        # started/seconds: the step on the controller's clock, round trips included (the
        # account's seconds are the module's own work)
        self.steps.append({"task": task, "action": module, "status": status, "started": round(started, 3),
                           "seconds": round(span, 3), "account": account, "result": res})
        if failed and fail:
            raise StepFailed(key, res)
        return res

    def _soak(self, args):
        """The soak, a step of the controller's own: the host stays on the new version."""
        started, clock = time.time(), time.monotonic()
        self.sleep(args["seconds"])
        return {"changed": False, "step": step_account("soak", started, time.monotonic() - clock, "ok")}

    # ------------------------------------------------------------------ arguments

    def engine_args(self):
        return {"url": self.ep.get("url"), "served_name": self.ep.get("served_name"),
                "api_key": self.o.get("api_key") or None}

    def probe_args(self, **kw):
        args = dict(self.engine_args(), suite=self.suite, model_name=self.model)
        args.update(kw)
        return args

    def sync_args(self):
        mirror = self.o.get("source") == "mirror"
        return {"src": self.o["release"].get("location"), "source": self.o.get("source") or "push",
                # the manifest is read (and its signature checked) where the release was
                # resolved, also when the host downloads the files from a mirror
                "url": "%s/%s/%s" % (self.o.get("mirror_url"), self.model, self.to) if mirror else None,
                "sync_timeout": int(self.o.get("sync_timeout") or 0)}

    def switch_args(self):
        return dict(self.engine_args(), model_name=self.model, version=self.version, variant=self.variant,
                    keep_versions=self.o["keep_versions"], reason="upgrade to %s" % self.release,
                    unit=self.ep.get("unit"), restart=self.o["restart"], timeout=self.o["ready_timeout"])

    def candidate_args(self):
        return dict(self.engine_args(), model_name=self.model, service=self.ep.get("service"))
