# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of one host's rollout (plugins/plugin_utils/_rollout_host.py), with the
step modules stubbed: each test scripts what the modules answer and checks which steps ran,
with which arguments, and what the host ends as. The real modules run in the integration and
adversarial suites."""

from __future__ import annotations

import re

import pytest

from ansible_collections.modelops.fleet.plugins.plugin_utils._rollout_host import TASKS, ControllerGone, HostRollout

RELEASE = {"release": "m-2501-v", "version": "2501", "location": "/repo/m/2501/v",
           "manifest": {"model_name": "m", "variant": "v"}}
IN_PLACE = {"url": "http://127.0.0.1:8080", "served_name": "m", "mode": "in_place", "engine": "llama-server",
            "unit": "modelops-inference.service", "service": "modelops-inference"}
BLUE_GREEN = dict(IN_PLACE, mode="blue_green", memory_factor=2.2)
STARTED = {"changed": True, "url": "http://127.0.0.1:8081", "serving": "blue", "instance": "green", "fallback": None}
PROMOTED = {"changed": True, "instance": "green", "ledger_event": {"action": "activate"}}


def opts(**kw):
    o = {"release": RELEASE, "endpoint": IN_PLACE, "read": {}, "serving": "2412/v", "api_key": None,
         "source": "push", "mirror_url": "", "sync_timeout": 0, "keep_versions": 2, "ready_timeout": 300,
         "drain_timeout": 30, "restart": "auto", "probe_suite": "smoke", "probe_always": False,
         "latency_factor": 1.3, "record_baseline": False, "soak_seconds": 0, "metrics_path": "/m.prom",
         "fail_host": True}
    o.update(kw)
    return o


def account(name, outcome="changed"):
    return {"name": name, "outcome": outcome, "started": 1000.0, "seconds": 0.5, "phases": {}}


class StubModules(object):
    """Answers each step from a script: {(module, marker): result}; marker is the probe's
    baseline mode, the candidate's state, or None. Unscripted calls succeed (changed)."""

    def __init__(self, script=None):
        self.script = script or {}
        self.calls = []

    def __call__(self, module, args):
        self.calls.append((module, args))
        marker = args.get("baseline") or args.get("state")
        if module == "model_switch" and str(args.get("reason", "")).startswith("rollback"):
            marker = "back"
        res = dict(self.script.get((module, marker), {"changed": True}))
        if module == "model_switch" and "switched" not in res and not res.get("failed"):
            res["switched"] = True
        if module == "model_probe" and "passed" not in res and not res.get("failed"):
            res.update(passed=True, probes=[{"name": "p"}])
        name = {"model_sync": "sync", "model_switch": "restart", "model_probe": "probe", "model_metrics": "metrics",
                "model_candidate": "restart"}[module]
        res.setdefault("step", account(name, "failed" if res.get("failed") else "changed"))
        return res

    def modules(self):
        return [(m, a.get("baseline") or a.get("state")) for m, a in self.calls]

    def args(self, module, marker=None):
        return [a for m, a in self.calls if m == module and (marker is None or (a.get("baseline") or a.get("state")) == marker)]


def rollout(stub, said=None, slept=None, **kw):
    return HostRollout("gpu-01", opts(**kw), stub, (said if said is not None else []).append,
                       sleep=(slept if slept is not None else []).append).run()


def test_stub_modules_in_place_upgrade_syncs_switches_gates_and_publishes():
    stub, said = StubModules(), []
    out = rollout(stub, said)
    assert out["status"] == "upgraded" and out["failure"] is None and not out["rolled_back"]
    assert stub.modules() == [("model_sync", None), ("model_switch", None), ("model_probe", "compare"), ("model_metrics", None)]
    switch = stub.args("model_switch")[0]
    assert (switch["version"], switch["variant"], switch["reason"]) == ("2501", "v", "upgrade to m-2501-v")
    # the gate is the last one (no soak): it records that 2501 passed; no baseline to require
    probe = stub.args("model_probe")[0]
    assert probe["gate"] == "2501/v" and probe["require_baseline"] is False
    metrics = stub.args("model_metrics")[0]
    assert metrics["result"] == "upgraded" and metrics["probe"]["passed"] is True
    assert [s["name"] for s in metrics["steps"]] == ["sync", "restart", "probe"]
    # every step shows on the console as it starts and as it ends
    assert "[gpu-01] %s ..." % TASKS["switch"] in said and "[gpu-01] %s: changed, 0.5 s" % TASKS["switch"] in said
    assert [s["task"] for s in out["steps"]] == [TASKS[k] for k in ("sync", "switch", "probe", "metrics")]


def test_stub_modules_nothing_changed_and_no_gate_pending_means_no_probe():
    unchanged = {("model_sync", None): {"changed": False}, ("model_switch", None): {"changed": False, "switched": False}}
    stub = StubModules(unchanged)
    rollout(stub)
    assert ("model_probe", "compare") not in stub.modules()
    # a run killed before its gate left the release ungated: the read says so, the gate runs
    stub = StubModules(unchanged)
    rollout(stub, read={"gate_pending": True})
    assert ("model_probe", "compare") in stub.modules()


def test_stub_modules_canary_records_its_baseline_soaks_and_gates_again():
    stub, slept = StubModules(), []
    out = rollout(stub, slept=slept, record_baseline=True, soak_seconds=7)
    assert out["status"] == "upgraded"
    assert stub.modules() == [("model_probe", "record"), ("model_sync", None), ("model_switch", None),
                              ("model_probe", "compare"), ("model_probe", "compare"), ("model_metrics", None)]
    assert slept == [7]
    first, after_soak = stub.args("model_probe", "compare")
    # the gate before the soak is not the last: it records nothing; both compare with the baseline
    assert "gate" not in first and after_soak["gate"] == "2501/v"
    assert first["require_baseline"] is True and after_soak["require_baseline"] is True
    assert [s["account"]["name"] for s in out["steps"]][:5] == ["probe", "sync", "restart", "probe", "soak"]


def test_stub_modules_failed_gate_switches_back_and_probes_the_old_version():
    stub = StubModules({("model_probe", "compare"): {"failed": True, "msg": "probe json failed"},
                        ("model_probe", "ignore"): {"passed": True, "probes": [{"name": "p"}], "changed": True}})
    out = rollout(stub)
    assert out["status"] == "failed" and out["rolled_back"] is True
    back = stub.args("model_switch")[1]
    assert (back["version"], back["variant"], back["switch_back"]) == ("2412", "v", False)
    assert back["reason"].startswith("rollback: %s: probe json failed" % TASKS["probe"])
    reprobe = stub.args("model_probe", "ignore")[0]
    assert reprobe["gate"] == "2412/v" and reprobe["fail_on_failure"] is False
    assert out["failure"] == ("gpu-01: upgrade to m-2501-v failed at %s: probe json failed; rolled back to 2412/v, "
                              "which serves again and passes its probes" % TASKS["probe"])
    # the re-probe is part of the rollback, in the report and the metrics
    assert out["steps"][-2]["account"]["name"] == "rollback"
    metrics = stub.args("model_metrics")[0]
    assert metrics["result"] == "rolled_back" and "time" not in metrics and metrics["probe"]["passed"] is True
    assert [s["name"] for s in metrics["steps"]] == ["sync", "restart", "probe", "restart", "rollback"]


def test_stub_modules_a_switch_that_switched_back_itself_is_not_switched_again():
    back = {"failed": True, "switched": True, "switched_back": True, "msg": "2501/v did not serve; switched back to 2412/v"}
    stub = StubModules({("model_switch", None): back})
    out = rollout(stub)
    assert [m for m, marker in stub.modules()] == ["model_sync", "model_switch", "model_probe", "model_metrics"]
    assert out["rolled_back"] is True and "rolled back to 2412/v, which serves again" in out["failure"]


def test_stub_modules_a_failed_sync_switches_nothing():
    stub = StubModules({("model_sync", None): {"failed": True, "msg": "signature of m-2501-v is not trusted"}})
    out = rollout(stub)
    assert [m for m, marker in stub.modules()] == ["model_sync", "model_metrics"]
    assert out["failure"].endswith("failed at %s: signature of m-2501-v is not trusted; nothing was switched: "
                                   "the host still serves 2412/v" % TASKS["sync"])
    metrics = stub.args("model_metrics")[0]
    assert metrics["result"] == "failed" and metrics["time"].endswith("Z") and not out["rolled_back"]


def test_stub_modules_a_failed_rollback_says_the_host_needs_attention():
    stub = StubModules({("model_probe", "compare"): {"failed": True, "msg": "empty answers"},
                        ("model_switch", "back"): {"failed": True, "msg": "2412/v does not serve either"}})
    out = rollout(stub)
    assert out["status"] == "failed" and out["rolled_back"] is False
    assert "the rollback to 2412/v FAILED at %s: 2412/v does not serve either" % TASKS["switch_back"] in out["failure"]
    assert ("model_probe", "ignore") not in stub.modules()


def test_stub_modules_long_messages_keep_their_head_and_tail():
    msg = "H" * 500 + "x" * 2000 + "T" * 1100
    out = rollout(StubModules({("model_sync", None): {"failed": True, "msg": msg}}))
    assert "H" * 400 + " [...] " + "T" * 1000 in out["reason"] and "x" not in out["reason"]


def test_stub_modules_blue_green_gates_the_candidate_before_the_clients_move():
    stub = StubModules({("model_candidate", "started"): STARTED,
                        ("model_candidate", "promoted"): PROMOTED})
    out = rollout(stub, endpoint=BLUE_GREEN)
    assert stub.modules() == [("model_sync", None), ("model_candidate", "started"), ("model_probe", "record"),
                              ("model_probe", "compare"), ("model_candidate", "promoted"), ("model_metrics", None)]
    gate = stub.args("model_probe", "compare")[0]
    assert gate["url"] == "http://127.0.0.1:8081" and gate["require_baseline"] is True
    assert stub.args("model_candidate", "promoted")[0]["gated"] is True
    assert out["engine"] == "llama-server@green" and out["status"] == "upgraded"


def test_stub_modules_blue_green_candidate_no_client_reached_is_stopped():
    stub = StubModules({("model_candidate", "started"): STARTED,
                        ("model_probe", "compare"): {"failed": True, "msg": "latency"}})
    out = rollout(stub, endpoint=BLUE_GREEN)
    assert stub.modules()[-2:] == [("model_candidate", "absent"), ("model_metrics", None)]
    assert "version" not in stub.args("model_candidate", "absent")[0]
    assert out["failure"].endswith("no client reached 2501/v: its instance was stopped and the host still serves 2412/v")
    assert out["rolled_back"] is False


def test_stub_modules_blue_green_promoted_then_failed_moves_the_clients_back():
    stub = StubModules({("model_candidate", "started"): STARTED,
                        ("model_candidate", "promoted"): PROMOTED})
    stub.script[("model_probe", "compare")] = {"passed": True, "probes": [{"name": "p"}], "changed": False}
    calls = {"n": 0}
    real = stub.__call__

    def runner(module, args):
        # the gate after the soak fails (the second compare)
        if module == "model_probe" and args.get("baseline") == "compare":
            calls["n"] += 1
            if calls["n"] == 2:
                stub.calls.append((module, args))
                return {"failed": True, "msg": "regressed after the soak", "step": account("probe", "failed")}
        return real(module, args)
    out = HostRollout("gpu-01", opts(endpoint=BLUE_GREEN, soak_seconds=1), runner, [].append, sleep=[].append).run()
    back = stub.args("model_candidate", "started")[1:] + stub.args("model_candidate", "promoted")[1:]
    assert [(a["version"], a["state"], a["gated"]) for a in back] == [("2412", "started", True), ("2412", "promoted", True)]
    assert out["rolled_back"] is True and "failed at %s: regressed after the soak" % TASKS["after_soak"] in out["failure"]


def test_stub_modules_a_rollout_whose_run_was_killed_stops_before_its_next_step():
    # the controller is gone after the sync: nothing more runs on the host, not even a
    # rollback or the metrics (the next run's read finds the host between two steps)
    stub, steps = StubModules(), []

    def alive():
        steps.append(len(stub.calls))
        return len(stub.calls) < 1
    with pytest.raises(ControllerGone, match="gpu-01: the run is gone; stopped before %s" % re.escape(TASKS["switch"])):
        HostRollout("gpu-01", opts(), stub, [].append, alive=alive, sleep=[].append).run()
    assert stub.modules() == [("model_sync", None)]


def test_stub_modules_blue_green_candidate_a_killed_run_left_running_is_gated_before_the_clients_move():
    # nothing changes on the re-run (synced, the candidate runs already), but no client
    # reached the candidate and no gate passed it: it is gated before the move
    kept = dict(STARTED, changed=False)
    stub = StubModules({("model_sync", None): {"changed": False}, ("model_candidate", "started"): kept,
                        ("model_candidate", "promoted"): PROMOTED})
    rollout(stub, endpoint=BLUE_GREEN)
    assert ("model_probe", "compare") in stub.modules()
    assert stub.args("model_candidate", "promoted")[0]["gated"] is True
    # the serving instance already serves the release (a converged re-run with probe_always
    # off is stopped by the read; here nothing is left ungated): no gate
    stub = StubModules({("model_sync", None): {"changed": False},
                        ("model_candidate", "started"): dict(kept, instance="blue"),
                        ("model_candidate", "promoted"): dict(PROMOTED, changed=False, ledger_event=None)})
    rollout(stub, endpoint=BLUE_GREEN)
    assert ("model_probe", "compare") not in stub.modules()
