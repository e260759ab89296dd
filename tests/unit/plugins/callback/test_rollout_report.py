# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout_report callback: fed result objects shaped like Ansible's, and run for real by
ansible-playbook (enabled from ansible.cfg, directory from MODELOPS_REPORT_DIR) on localhost
with an unreachable host, no_log tasks and secrets in results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from ansible.executor.stats import AggregateStats

from ansible_collections.modelops.fleet.plugins.plugin_utils import _report_record as record
from ansible_collections.modelops.fleet.plugins.plugin_utils import _report_render as render
from ansible_collections.modelops.fleet.plugins.plugin_utils import _report_write as write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


class Clock(object):
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t

    def tick(self, seconds):
        self.t += seconds


class Host(object):
    def __init__(self, name, groups):
        self.name = name
        self.groups = groups

    def get_name(self):
        return self.name

    def get_groups(self):
        return [Group(g) for g in self.groups]


class Group(object):
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Task(object):
    count = 0

    def __init__(self, name, action, step=None, no_log=False):
        Task.count += 1
        self._uuid = "task-%d" % Task.count
        self.name = name
        self.action = action
        self.step = step
        self.no_log = no_log

    def get_name(self):
        return self.name

    def get_vars(self):
        return {"modelops_step": self.step} if self.step else {}


class Result(object):
    def __init__(self, host, task, result):
        self._host = host
        self._task = task
        self._result = result


class Run(object):
    """Drives a Recorder the way the callback does."""

    def __init__(self):
        self.clock = Clock()
        self.rec = record.Recorder(now=self.clock)
        self.rec.playbook = "upgrade.yml"
        self.stats = AggregateStats()

    def task(self, host, name, action, status, result=None, step=None, seconds=1.0, no_log=False):
        task = Task(name, action, step, no_log)
        self.rec.set_groups(host.name, host.groups)
        self.rec.task_start(host.name, task._uuid)
        self.clock.tick(seconds)
        res = dict(result or {})
        if no_log:
            res = {"censored": "hidden", "changed": res.get("changed", False), "_ansible_no_log": True}
        st = "changed" if status == "ok" and res.get("changed") else status
        self.rec.task_result(host.name, task._uuid, name, action, task.step, st, res,
                             no_log=no_log or bool(res.get("_ansible_no_log")))
        self.stats.increment({"ok": "ok", "changed": "ok", "failed": "failures", "skipped": "skipped",
                              "unreachable": "dark"}[status], host.name)
        if st == "changed":
            self.stats.increment("changed", host.name)

    def report(self):
        self.rec.stats(self.stats)
        return self.rec.report()


CTX = {"group": "gpu_servers", "policy": "canary", "model": "qwen3", "variant": "gguf",
       "from": "2504/gguf", "to": "2507/gguf", "release": "qwen3-2507-gguf"}
PROBE_OK = {"changed": False, "passed": True, "suite_name": "smoke", "latency": {"p50_ms": 300.0, "p90_ms": 450.0},
            "baseline": {"action": "probe_baseline", "latency": {"p50_ms": 280.0, "p90_ms": 400.0},
                         "probes": {"capital": {"p50_ms": 280.0, "p90_ms": 400.0}}, "time": "2026-01-01T00:00:00Z"},
            "probes": [{"name": "capital", "passed": True, "latencies_ms": [290.0, 310.0], "attempts": 2, "passes": 2},
                       {"name": "json", "passed": True, "latencies_ms": [450.0], "attempts": 1, "passes": 1}]}
PROBE_BAD = {"changed": False, "passed": False, "suite_name": "smoke", "latency": {"p50_ms": 900.0, "p90_ms": 950.0},
             "msg": "probe suite failed on http://127.0.0.1:8080: probe json: not valid JSON",
             "probes": [{"name": "capital", "passed": True, "latencies_ms": [900.0]},
                        {"name": "json", "passed": False, "latencies_ms": [950.0], "reason": "answer is not valid JSON <b>"}]}


def fleet_run():
    run = Run()
    canary = Host("gpu-01", ["gpu_servers", "modelops_canary"])
    bad = Host("gpu-02", ["gpu_servers", "modelops_rest"])
    gone = Host("edge-01", ["edge_devices", "modelops_rest"])
    frozen = Host("crit-01", ["critical", "modelops_frozen"])
    for host, wave in ((canary, "canary"), (bad, "batch-1")):
        run.task(host, "context", "ansible.builtin.set_fact", "ok",
                 {"ansible_facts": {"model_upgrade_context": dict(CTX, wave=wave), "model_upgrade_status": "started"}},
                 seconds=0.1)
        run.task(host, "sync", "modelops.fleet.model_sync", "ok",
                 {"changed": True, "release": "qwen3-2507-gguf", "bytes_transferred": 1234, "bytes_linked": 5000,
                  "files": [{"path": "a"}, {"path": "b"}]}, step="sync", seconds=10)
        run.task(host, "activate", "modelops.fleet.model_activate", "ok",
                 {"changed": True, "ledger_event": {"action": "activate", "from": "2504/gguf", "to": "2507/gguf",
                                                    "reason": "upgrade"}}, step="activate")
        run.task(host, "unit file", "ansible.builtin.template", "ok", {"changed": True}, step="restart", seconds=2)
        run.task(host, "restart", "ansible.builtin.systemd_service", "ok", {"changed": True}, step="restart", seconds=3)
        run.task(host, "ready", "modelops.fleet.inference_ready", "ok", {"changed": False}, step="ready", seconds=4)
    run.task(canary, "probe", "modelops.fleet.model_probe", "ok", PROBE_OK, step="probe", seconds=2)
    run.task(canary, "status", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_status": "upgraded", "model_upgrade_rolled_back": False}})
    run.task(bad, "probe", "modelops.fleet.model_probe", "failed", PROBE_BAD, step="probe", seconds=2)
    run.task(bad, "switch back", "modelops.fleet.model_activate", "ok",
             {"changed": True, "ledger_event": {"action": "activate", "from": "2507/gguf", "to": "2504/gguf",
                                                "reason": "rollback: probe"}}, step="rollback")
    run.task(bad, "restart old", "ansible.builtin.systemd_service", "ok",
             {"changed": True, "api_key": "sk-LEAK1", "env": {"DB_PASSWORD": "LEAK2", "path": "/x"}}, step="rollback")
    run.task(bad, "secret thing", "ansible.builtin.command", "ok", {"changed": True, "stdout": "LEAK3"},
             step="rollback", no_log=True)
    run.task(bad, "re-probe", "modelops.fleet.model_probe", "ok", dict(PROBE_OK, baseline=None), step="probe")
    run.task(bad, "failure", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_status": "failed", "model_upgrade_rolled_back": True,
                                "model_upgrade_failure": "gpu-02: probe json failed <script>alert(1)</script>",
                                "vault_token": "LEAK4"}})
    run.task(gone, "context", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_context": dict(CTX, group="edge_devices", policy="immediate",
                                                              wave="batch-1")}})
    run.task(gone, "sync", "modelops.fleet.model_sync", "unreachable",
             {"msg": "Failed to connect to the host via ssh", "unreachable": True}, step="sync")
    run.task(frozen, "frozen", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_status": "frozen", "modelops_drift": False,
                                "modelops_current": "2411/gguf"}})
    run.stats.set_custom_stats("modelops_rollout", {
        "model": "qwen3", "releases": ["qwen3-2507-gguf"], "failed": ["gpu-02", "edge-01"],
        "hosts": {"gpu-01": "upgraded", "gpu-02": "failed", "edge-01": "started", "crit-01": "frozen"},
        "halted_by_failure_budget": False, "api_token": "LEAK5"})
    return run


def test_report_per_host_steps_probes_rollback_and_states():
    report = fleet_run().report()
    hosts = dict((h["host"], h) for h in report["hosts"])
    # failures first
    assert [h["host"] for h in report["hosts"]][:2] == ["gpu-02", "edge-01"]
    c = hosts["gpu-01"]
    assert (c["group"], c["policy"], c["wave"], c["from"], c["to"]) == ("gpu_servers", "canary", "canary",
                                                                        "2504/gguf", "2507/gguf")
    assert c["state"] == "upgraded" and c["rolled_back"] is False and c["failure"] is None
    assert [s["step"] for s in c["steps"]] == ["sync", "activate", "restart", "ready", "probe"]
    restart = c["steps"][2]
    assert restart["duration"] == 5.0 and len(restart["tasks"]) == 2 and restart["status"] == "changed"
    assert c["steps"][0]["duration"] == 10.0 and c["bytes_transferred"] == 1234 and c["bytes_linked"] == 5000
    assert c["syncs"][0]["files"] == 2
    probe = c["probes"][0]
    assert probe["passed"] and probe["latency"]["p50_ms"] == 300.0 and probe["baseline"]["latency"]["p50_ms"] == 280.0
    assert probe["probes"][0]["latency_p50_ms"] == 300.0 and probe["probes"][0]["baseline_p50_ms"] == 280.0

    b = hosts["gpu-02"]
    assert b["state"] == "failed" and b["rolled_back"] is True and b["wave"] == "batch-1"
    assert "<script>" in b["failure"]  # kept as text in JSON; escaped in HTML/XML
    assert [s["step"] for s in b["steps"]] == ["sync", "activate", "restart", "ready", "probe", "rollback", "probe"]
    assert b["steps"][4]["status"] == "failed" and "not valid JSON" in b["steps"][4]["msg"]
    assert [r["step"] for r in b["probes"]] == ["probe", "rollback"]  # the re-probe after the rollback
    assert b["probes"][0]["probes"][1]["reason"] == "answer is not valid JSON <b>"
    assert b["activations"][-1]["reason"] == "rollback: probe"
    censored = b["steps"][5]["tasks"][-1]
    assert censored["censored"] is True and censored["msg"] is None

    u = hosts["edge-01"]
    assert u["state"] == "unreachable" and "Failed to connect" in u["failure"] and u["policy"] == "immediate"
    f = hosts["crit-01"]
    assert f["state"] == "frozen" and f["policy"] == "frozen" and f["from"] == "2411/gguf" and f["drift"] is False

    s = report["summary"]
    assert s["states"] == {"upgraded": 1, "failed": 1, "unreachable": 1, "frozen": 1}
    assert s["failed"] == ["gpu-02", "edge-01"] and s["bytes_transferred"] == 2468 and s["model"] == "qwen3"
    assert report["stats"]["edge-01"]["unreachable"] == 1


def test_no_secret_reaches_any_report(tmp_path):
    run = fleet_run()
    report = run.report()
    run_dir = write.write_reports(report, str(tmp_path), run.rec.started, "upgrade.yml")
    for name in ("report.json", "junit.xml", "report.html"):
        with open(os.path.join(run_dir, name)) as f:
            text = f.read()
        for leak in ("LEAK1", "LEAK2", "LEAK3", "LEAK4", "LEAK5", "api_key", "DB_PASSWORD", "api_token"):
            assert leak not in text, (name, leak)
    assert record.scrub({"a": {"Secret_X": 1, "ok": [{"token": 2, "k": 3}]}, "api_key": 4}) == {"a": {"ok": [{"k": 3}]}}


def test_junit_and_html_are_well_formed_and_escaped(tmp_path):
    run = fleet_run()
    report = run.report()
    run_dir = write.write_reports(report, str(tmp_path), run.rec.started, "upgrade.yml")
    assert os.path.basename(run_dir).endswith("-upgrade")
    assert os.path.realpath(os.path.join(str(tmp_path), "latest")) == os.path.realpath(run_dir)
    root = ET.parse(os.path.join(run_dir, "junit.xml")).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    by_name = dict((c.get("name"), c) for c in cases)
    assert by_name["gpu-02 upgrade 2504/gguf -> 2507/gguf"].find("failure").get("message").endswith("<script>alert(1)</script>")
    assert by_name["edge-01 upgrade 2504/gguf -> 2507/gguf"].find("error") is not None
    assert by_name["crit-01 upgrade 2411/gguf -> 2411/gguf"].find("skipped").get("message") == "frozen"
    assert by_name["gpu-01 upgrade 2504/gguf -> 2507/gguf"].find("failure") is None
    probes = [c.get("name") for c in cases if c.get("classname").startswith("probes.")]
    assert probes == ["gpu-02 probe smoke/capital", "gpu-02 probe smoke/json",
                      "gpu-02 probe smoke/capital (after rollback)", "gpu-02 probe smoke/json (after rollback)",
                      "gpu-01 probe smoke/capital", "gpu-01 probe smoke/json"]
    assert by_name["gpu-02 probe smoke/json"].find("failure").get("message") == "answer is not valid JSON <b>"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("10", "2", "1", "1")

    with open(os.path.join(run_dir, "report.html")) as f:
        page = f.read()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    # failures come before the host table, and the failing hosts before the others in it
    assert page.index('id="failures"') < page.index('id="hosts"')
    rows = re.findall(r'<tr class="host-row" data-host="([^"]+)" data-state="([^"]+)">', page)
    assert rows == [("gpu-02", "failed"), ("edge-01", "unreachable"), ("gpu-01", "upgraded"), ("crit-01", "frozen")]
    assert page.count('aria-label="timeline of ') == 3 and 'aria-label="probe latency of gpu-01"' in page
    # a second run gets its own directory and becomes latest
    second = write.write_reports(report, str(tmp_path), run.rec.started, "upgrade.yml")
    assert second != run_dir and os.path.realpath(os.path.join(str(tmp_path), "latest")) == os.path.realpath(second)


def test_step_falls_back_to_the_module_name():
    run = Run()
    h = Host("edge-02", ["edge_devices"])
    run.task(h, "sync", "modelops.fleet.model_sync", "ok", {"changed": True, "bytes_transferred": 7, "bytes_linked": 0})
    run.task(h, "activate", "modelops.fleet.model_activate", "ok",
             {"changed": True, "ledger_event": {"action": "activate", "reason": "upgrade to x"}})
    run.task(h, "restart", "ansible.builtin.systemd_service", "ok", {"changed": True})
    run.task(h, "ready", "modelops.fleet.inference_ready", "failed", {"msg": "crash loop"})
    run.task(h, "back", "modelops.fleet.model_activate", "ok",
             {"changed": True, "ledger_event": {"action": "activate", "reason": "rollback: ready failed"}})
    run.task(h, "baseline", "modelops.fleet.model_probe", "ok",
             dict(PROBE_OK, changed=True, baseline=dict(PROBE_OK["baseline"])))
    run.task(h, "debug", "ansible.builtin.debug", "ok", {"msg": "x"})
    report = run.report()
    (host,) = report["hosts"]
    assert [s["step"] for s in host["steps"]] == ["sync", "activate", "restart", "ready", "rollback", "baseline"]
    assert host["state"] == "failed" and host["rolled_back"] is True and "crash loop" in host["failure"]
    assert host["probes"][0]["baseline"]["recorded"] is True


def test_model_switch_is_the_restart_step_with_its_timing_and_both_ledger_events():
    run = Run()
    h = Host("edge-02", ["edge_devices"])
    timing = {"activate_s": 0.01, "restart_s": 0.1, "ready_s": 4.2, "total_s": 4.4}
    run.task(h, "sync", "modelops.fleet.model_sync", "ok", {"changed": True, "bytes_transferred": 7, "bytes_linked": 0})
    run.task(h, "switch", "modelops.fleet.model_switch", "failed", {
        "changed": True, "switched": True, "switched_back": True, "timing": timing,
        "msg": "modelops-inference.service does not serve m 2/v: crash loop; switched back to 1/v, which serves again",
        "ledger_event": {"action": "activate", "from": "1/v", "to": "2/v", "reason": "upgrade to m-2-v"},
        "back_event": {"action": "rollback", "from": "2/v", "to": "1/v", "reason": "rollback: did not serve 2/v"}})
    run.task(h, "switch back", "modelops.fleet.model_switch", "ok", {
        "changed": True, "timing": timing,
        "ledger_event": {"action": "rollback", "from": "2/v", "to": "1/v", "reason": "rollback.yml: requested"}})
    report = run.report()
    (host,) = report["hosts"]
    assert [s["step"] for s in host["steps"]] == ["sync", "restart", "rollback"]
    assert host["steps"][1]["tasks"][0]["timing"] == timing
    assert host["steps"][0]["tasks"][0]["timing"] is None
    assert [(a["action"], a["to"]) for a in host["activations"]] == [("activate", "2/v"), ("rollback", "1/v"),
                                                                     ("rollback", "1/v")]


def test_a_skipped_task_is_no_part_of_a_step():
    """The other engine mode's tasks (and a canary's baseline on another host) are skipped: the
    restart step of an in-place host is its model_switch call, not a skipped model_candidate."""
    run = Run()
    h = Host("edge-02", ["edge_devices"])
    run.task(h, "sync", "modelops.fleet.model_sync", "ok", {"changed": True, "bytes_transferred": 7, "bytes_linked": 0})
    run.task(h, "baseline", "modelops.fleet.model_probe", "skipped", {"skipped": True}, step="baseline")
    run.task(h, "switch", "modelops.fleet.model_switch", "ok", {"changed": True, "timing": {"total_s": 1.0}},
             step="restart")
    run.task(h, "start beside", "modelops.fleet.model_candidate", "skipped", {"skipped": True}, step="restart")
    run.task(h, "gate", "modelops.fleet.model_probe", "ok", PROBE_OK, step="probe")
    (host,) = run.report()["hosts"]
    assert [s["step"] for s in host["steps"]] == ["sync", "restart", "probe"]
    assert [t["action"] for t in host["steps"][1]["tasks"]] == ["model_switch"]


PLAYBOOK = """---
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        model_upgrade_context: {group: g, policy: immediate, wave: batch-1, from: null, to: "1/v", release: m-1-v, model: m, variant: v}
        model_upgrade_status: started
        admin_password: LEAKPW
    - ansible.builtin.command: "true"
      vars: {modelops_step: sync}
    - ansible.builtin.command: "echo LEAKNOLOG"
      no_log: true
      vars: {modelops_step: activate}
    - ansible.builtin.set_fact:
        model_upgrade_status: upgraded
"""
INVENTORY = """all:
  hosts:
    here: {ansible_connection: local, ansible_python_interpreter: "%s"}
    gone: {ansible_host: 127.0.0.1, ansible_port: 1, ansible_connection: ssh, ansible_ssh_common_args: "-o ConnectTimeout=3"}
""" % sys.executable


def test_enabled_from_ansible_cfg_with_unreachable_host(tmp_path):
    """ansible-playbook with the project's ansible.cfg writes the reports where
    MODELOPS_REPORT_DIR says; an unreachable host is reported as such."""
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               MODELOPS_REPORT_DIR=str(tmp_path / "reports"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([exe, "-i", str(tmp_path / "inv.yml"), str(tmp_path / "pb.yml")], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert proc.returncode != 0  # 'gone' is unreachable
    latest = tmp_path / "reports" / "latest"
    assert (latest / "report.json").exists(), proc.stdout[-3000:]
    report = json.loads((latest / "report.json").read_text())
    hosts = dict((h["host"], h) for h in report["hosts"])
    assert hosts["gone"]["state"] == "unreachable" and hosts["here"]["state"] == "upgraded"
    assert [s["step"] for s in hosts["here"]["steps"]] == ["sync", "activate"]
    assert hosts["here"]["steps"][1]["tasks"][0]["censored"] is True
    for name in ("report.json", "junit.xml", "report.html"):
        text = (latest / name).read_text()
        assert "LEAKPW" not in text and "LEAKNOLOG" not in text and "admin_password" not in text


def test_the_report_says_which_copy_of_the_collection_ran(tmp_path):
    src = record.collection_info(REPO)
    assert src["installed"] is False and src["version"] == "0.1.0" and src["path"] == REPO, src
    manifest = {"collection_info": {"namespace": "modelops", "name": "fleet", "version": "0.1.0"}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(manifest))
    inst = record.collection_info(str(tmp_path))
    assert inst["installed"] is True and inst["version"] == "0.1.0", inst
    report = fleet_run().report()
    assert report["collection"]["path"] == REPO and report["collection"]["installed"] is False
    assert "modelops.fleet 0.1.0 (installed)" in render.html_page(dict(report, collection=inst))
    assert "modelops.fleet 0.1.0 (source checkout)" in render.html_page(report)


def batch_host():
    """A run with gpu-02 started in the first batch."""
    run = Run()
    host = Host("gpu-02", ["gpu_servers", "modelops_rest"])
    run.task(host, "context", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_context": dict(CTX, wave="batch-1"), "model_upgrade_status": "started"}},
             seconds=0.1)
    return run, host


def test_steps_are_named_and_timed_by_the_modules_own_account():
    # No task variable: the step module's result names its step and says how long its own
    # work took; the rest of the step's span is Ansible's (the overhead).
    run, host = batch_host()
    run.task(host, "Switch to the new version", "modelops.fleet.model_switch", "ok",
             {"changed": True, "timing": {"restart_s": 1.2, "ready_s": 0.4},
              "step": {"name": "restart", "outcome": "changed", "started": 1000.0, "seconds": 1.75,
                       "phases": {"restart_s": 1.2, "ready_s": 0.4}}}, seconds=3)
    run.task(host, "Gate", "modelops.fleet.model_probe", "failed",
             dict(PROBE_BAD, step={"name": "probe", "outcome": "failed", "started": 1003.0, "seconds": 1.5,
                                   "phases": {"host_s": 1.25}}), seconds=2)
    run.task(host, "Switch back", "modelops.fleet.model_switch", "ok",
             {"changed": True, "step": {"name": "rollback", "outcome": "changed", "started": 1005.0, "seconds": 1.5,
                                        "phases": {}}}, seconds=2)
    # the caller's label wins over the module's name (the re-probe belongs to the rollback)
    run.task(host, "Probe the old version again", "modelops.fleet.model_probe", "ok",
             dict(PROBE_OK, step={"name": "probe", "outcome": "ok", "started": 1007.0, "seconds": 0.5, "phases": {}}),
             step="rollback", seconds=1)
    report = run.report()
    h = report["hosts"][0]
    assert [s["step"] for s in h["steps"]] == ["restart", "probe", "rollback"], h["steps"]
    restart, probe, rollback = h["steps"]
    assert (restart["duration"], restart["seconds"], restart["overhead"]) == (3.0, 1.75, 1.25), restart
    assert restart["tasks"][0]["phases"] == {"restart_s": 1.2, "ready_s": 0.4}
    assert restart["tasks"][0]["outcome"] == "changed" and restart["status"] == "changed"
    assert probe["seconds"] == 1.5 and probe["status"] == "failed" and probe["tasks"][0]["outcome"] == "failed"
    assert rollback["seconds"] == 2.0 and len(rollback["tasks"]) == 2 and rollback["overhead"] == 1.0, rollback
    assert [r["step"] for r in h["probes"]] == ["probe", "rollback"]
    assert "restart changed 3.0 s, own 1.8 s" in render.html_page(report)


def test_one_rollout_task_shows_each_of_its_steps_timed_by_their_accounts():
    # model_rollout runs a host's whole upgrade in one task: the report still shows every step
    # it ran, at the time its own account says, with the module's result (bytes, probes).
    run, host = batch_host()

    def sub(task, action, status, name, started, seconds, result):
        acc = {"name": name, "outcome": status, "started": started, "seconds": seconds, "phases": {}}
        return {"task": task, "action": action, "status": status, "account": acc, "result": dict(result, step=acc)}
    # the sync's span on the controller (its round trips) beside its own seconds
    steps = [dict(sub("Make the release present", "model_sync", "changed", "sync", 1000.5, 1.0,
                      {"changed": True, "bytes_transferred": 4096, "bytes_linked": 0}), started=1000.4, seconds=1.3),
             sub("Switch to the new version", "model_switch", "changed", "restart", 1001.6, 2.0,
                 {"changed": True, "ledger_event": {"action": "activate", "from": "2504/gguf", "to": "2507/gguf"}}),
             sub("Gate on the probe suite", "model_probe", "failed", "probe", 1003.7, 1.5, PROBE_BAD),
             sub("Switch back", "model_switch", "changed", "rollback", 1005.3, 1.5, {"changed": True}),
             sub("Probe the old version again", "model_probe", "ok", "rollback", 1006.9, 0.5, PROBE_OK)]
    run.task(host, "Upgrade, and roll back on failure", "modelops.fleet.model_rollout", "ok",
             {"changed": True, "status": "failed", "steps": steps}, seconds=8)
    run.task(host, "outcome", "ansible.builtin.set_fact", "ok",
             {"ansible_facts": {"model_upgrade_status": "failed", "model_upgrade_rolled_back": True,
                                "model_upgrade_failure": "gpu-02: upgrade failed at Gate on the probe suite"}}, seconds=0.1)
    h = run.report()["hosts"][0]
    assert [s["step"] for s in h["steps"]] == ["sync", "restart", "probe", "rollback"], h["steps"]
    sync, restart, probe, rollback = h["steps"]
    assert sync["start"] == record.iso(1000.4) and sync["seconds"] == 1.0 and sync["duration"] == 1.3, sync
    assert sync["overhead"] == 0.3 and h["steps"][1]["duration"] == 2.0, h["steps"]
    assert restart["status"] == "changed" and probe["status"] == "failed" and "not valid JSON" in probe["msg"]
    assert rollback["seconds"] == 2.0 and len(rollback["tasks"]) == 2
    assert h["bytes_transferred"] == 4096 and [r["step"] for r in h["probes"]] == ["probe", "rollback"]
    assert h["activations"][0]["to"] == "2507/gguf"
    assert h["state"] == "failed" and h["rolled_back"] is True, h
