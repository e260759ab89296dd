# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_metrics run as Ansible runs it, on a tree that model_activate manages; the file is
read back with Prometheus' own text-format parser."""

from __future__ import annotations

import datetime
import json
import os

from prometheus_client.parser import text_string_to_metric_families

from test_model_info import make_release

MODEL = "qwen3-4b-instruct"
VARIANT = "gguf-q4_k_m"
PROBE = {
    "changed": False, "passed": False, "suite_name": "smoke",
    "latency": {"p50_ms": 250.0, "p90_ms": 1200.5},
    "baseline": {"action": "probe_baseline", "latency": {"p50_ms": 200.0, "p90_ms": 900.0}, "time": "2026-01-01T00:00:00Z"},
    "probes": [{"name": "capital", "passed": True, "latencies_ms": [240.0, 260.0]},
               {"name": "json", "passed": True, "latencies_ms": [250.0]},
               {"name": "refusal", "passed": False, "latencies_ms": [1200.5], "reason": "did not refuse"}],
}


def families(path):
    with open(path) as f:
        text = f.read()
    return dict((f.name, f) for f in text_string_to_metric_families(text)), text


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def ledger(root):
    with open(os.path.join(str(root), ".modelops", "state.json")) as f:
        return json.load(f)["events"]


def setup_tree(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, MODEL, "2504", VARIANT, 100, 11)
    make_release(root, MODEL, "2507", VARIANT, 200, 12)
    for version in ("2504", "2507"):
        res = module_runner("model_activate", model_root=str(root), model_name=MODEL, version=version,
                            variant=VARIANT, reason="upgrade to %s" % version)
        assert res.get("failed") is not True, res
    return root


def test_check_then_write_then_unchanged_and_parses(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    prom = tmp_path / "textfile" / "modelops_fleet.prom"
    args = dict(model_root=str(root), model_name=MODEL, path=str(prom))
    check = module_runner("model_metrics", _ansible_check_mode=True, _ansible_diff=True, **args)
    assert check["changed"] is True and not prom.exists(), check
    assert check["diff"]["before"] == "" and "modelops_model_info" in check["diff"]["after"]
    real = module_runner("model_metrics", **args)
    assert real["changed"] is True and prom.exists(), real
    assert oct(os.stat(str(prom)).st_mode & 0o777) == "0o644"
    assert real["content"] == check["content"] == prom.read_text()
    again = module_runner("model_metrics", **args)
    assert again["changed"] is False, again
    # no temporary file left next to it (the collector would read *.prom only, but still)
    assert os.listdir(str(prom.parent)) == ["modelops_fleet.prom"]

    fams, text = families(str(prom))
    info = fams["modelops_model_info"].samples
    assert [(s.labels, s.value) for s in info] == [({"model": MODEL, "version": "2507", "variant": VARIANT}, 1.0)]
    prev = fams["modelops_model_previous_info"].samples
    assert prev[0].labels["version"] == "2504"
    assert fams["modelops_model_releases_installed"].samples[0].value == 2
    ok = fams["modelops_model_last_upgrade_success"].samples[0]
    assert ok.labels == {"model": MODEL, "result": "upgraded"} and ok.value == 1
    last = [e for e in ledger(root) if e["action"] == "activate"][-1]
    assert fams["modelops_model_last_upgrade_timestamp_seconds"].samples[0].value == epoch(last["time"])
    assert real["models"][0]["current"] == "2507/%s" % VARIANT


def test_switch_and_rollback_change_the_file(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    prom = tmp_path / "m.prom"
    args = dict(model_root=str(root), model_name=MODEL, path=str(prom))
    module_runner("model_metrics", **args)
    res = module_runner("model_activate", model_root=str(root), model_name=MODEL, version="2504",
                        variant=VARIANT, reason="rollback: probe suite failed")
    assert res["changed"] is True, res
    after = module_runner("model_metrics", **args)
    assert after["changed"] is True
    fams, dummy = families(str(prom))
    assert fams["modelops_model_info"].samples[0].labels["version"] == "2504"
    ok = fams["modelops_model_last_upgrade_success"].samples[0]
    assert ok.labels["result"] == "rolled_back" and ok.value == 0


def test_result_time_and_probe_options(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    prom = tmp_path / "m.prom"
    res = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(prom),
                        result="failed", time="2026-03-01T10:00:00Z", probe=PROBE)
    assert res.get("failed") is not True, res
    fams, text = families(str(prom))
    ok = fams["modelops_model_last_upgrade_success"].samples[0]
    assert ok.labels["result"] == "failed" and ok.value == 0
    assert fams["modelops_model_last_upgrade_timestamp_seconds"].samples[0].value == epoch("2026-03-01T10:00:00Z")
    labels = {"model": MODEL, "suite": "smoke"}
    ratio = fams["modelops_probe_pass_ratio"].samples[0]
    assert ratio.labels == labels and abs(ratio.value - 2.0 / 3) < 1e-6
    assert fams["modelops_probe_passed"].samples[0].value == 0
    assert fams["modelops_probe_latency_p50_seconds"].samples[0].value == 0.25
    assert fams["modelops_probe_latency_p90_seconds"].samples[0].value == 1.2005
    assert fams["modelops_probe_baseline_latency_p90_seconds"].samples[0].value == 0.9
    # without a probe, the last probe metrics are kept and nothing changes
    keep = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(prom),
                         result="failed", time="2026-03-01T10:00:00Z")
    assert keep["changed"] is False and keep["content"] == text, keep
    # epoch seconds are accepted too
    epoch_run = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(prom),
                              result="failed", time=str(epoch("2026-03-01T10:00:00Z")))
    assert epoch_run["changed"] is False


def test_labels_are_escaped(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    suite = 'my "odd" suite\\with\nnewline'
    probe = dict(PROBE, suite_name=suite)
    prom = tmp_path / "e.prom"
    res = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(prom), probe=probe)
    assert res.get("failed") is not True, res
    fams, dummy = families(str(prom))
    assert fams["modelops_probe_pass_ratio"].samples[0].labels["suite"] == suite


def test_errors_name_the_problem(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    bad = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(tmp_path / "m.txt"))
    assert bad["failed"] is True and "must end in .prom" in bad["msg"] and "m.txt" in bad["msg"]
    bad = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(tmp_path / "m.prom"),
                        probe={"changed": False})
    assert bad["failed"] is True and "model_probe" in bad["msg"]
    bad = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(tmp_path / "m.prom"),
                        result="failed", time="yesterday")
    assert bad["failed"] is True and "yesterday" in bad["msg"]
    bad = module_runner("model_metrics", model_root=str(root), path=str(tmp_path / "m.prom"), probe=PROBE)
    assert bad["failed"] is True and "model_name" in bad["msg"]


def test_empty_host_writes_a_valid_empty_file(module_runner, tmp_path):
    prom = tmp_path / "m.prom"
    res = module_runner("model_metrics", model_root=str(tmp_path / "nothing"), path=str(prom))
    assert res["changed"] is True and prom.read_text() == "" and res["models"] == []


def test_fail_on_error_false_warns_instead_of_failing(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = str(blocker / "m.prom")   # its parent is a file: cannot be written
    bad = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=path)
    assert bad["failed"] is True and "the metrics file %s" % path in bad["msg"]
    soft = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=path, fail_on_error=False)
    assert soft.get("failed") is not True and soft["written"] is False and soft["changed"] is False, soft
    assert "metrics not written: " in str(soft["warnings"]) and path in str(soft["warnings"]), soft["warnings"]
    ok = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(tmp_path / "ok.prom"),
                       fail_on_error=False)
    assert ok["written"] is True and ok["changed"] is True


def test_a_blue_green_host_says_which_instance_serves(module_runner, tmp_path):
    """model_candidate's move of the clients records the instance; in place there is none."""
    from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import Ledger
    root = setup_tree(module_runner, tmp_path)
    prom = tmp_path / "m.prom"
    args = dict(model_root=str(root), model_name=MODEL, path=str(prom))
    module_runner("model_metrics", **args)
    assert "modelops_model_serving_instance" not in families(str(prom))[0]
    Ledger(str(root)).append({"action": "activate", "model": MODEL, "from": "2504/%s" % VARIANT,
                              "to": "2507/%s" % VARIANT, "reason": "upgrade", "instance": "green", "gated": True})
    res = module_runner("model_metrics", **args)
    assert res["changed"] is True and res["models"][0]["instance"] == "green", res
    sample = families(str(prom))[0]["modelops_model_serving_instance"].samples
    assert [(s.labels, s.value) for s in sample] == [({"model": MODEL, "color": "green"}, 1.0)]


STEPS = [{"name": "sync", "outcome": "changed", "started": 1.0, "seconds": 4.25, "phases": {}},
         {"name": "restart", "outcome": "changed", "started": 6.0, "seconds": 1.5, "phases": {"ready_s": 1.0}},
         {"name": "probe", "outcome": "failed", "started": 8.0, "seconds": 2.0, "phases": {}},
         {"name": "rollback", "outcome": "changed", "started": 10.0, "seconds": 1.25, "phases": {}},
         {"name": "probe", "outcome": "ok", "started": 12.0, "seconds": 0.5, "phases": {}}]


def test_the_steps_each_module_accounted_for(module_runner, tmp_path):
    root = setup_tree(module_runner, tmp_path)
    prom = tmp_path / "m.prom"
    args = dict(model_root=str(root), model_name=MODEL, path=str(prom))
    res = module_runner("model_metrics", steps=STEPS, **args)
    assert res.get("failed") is not True and res["step"]["name"] == "metrics", res
    fams, text = families(str(prom))
    seconds = dict((s.labels["step"], s.value) for s in fams["modelops_upgrade_step_seconds"].samples)
    success = dict((s.labels["step"], s.value) for s in fams["modelops_upgrade_step_success"].samples)
    # calls of one step add up; a step with a failed call did not succeed
    assert seconds == {"sync": 4.25, "restart": 1.5, "probe": 2.5, "rollback": 1.25}, seconds
    assert success == {"sync": 1, "restart": 1, "probe": 0, "rollback": 1}, success
    assert all(s.labels["model"] == MODEL for s in fams["modelops_upgrade_step_seconds"].samples)
    # a run without steps (a status play) keeps the last upgrade's
    keep = module_runner("model_metrics", **args)
    assert keep["changed"] is False and keep["content"] == text, keep
    # something that is not a step account is refused, naming what it got
    bad = module_runner("model_metrics", steps=[{"name": "sync"}], **args)
    assert bad.get("failed") is True and "steps must be" in bad["msg"] and "'sync'" in bad["msg"], bad
