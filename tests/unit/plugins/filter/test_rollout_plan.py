# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rollout_plan on the shipped inventories (read by Ansible's own inventory code), the
failed-canary stop, the failure budget and the summary upgrade.yml decides with, and the
text_table filter that upgrade.yml --check prints the plan with."""

from __future__ import annotations

import os

import pytest

from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

from ansible_collections.modelops.fleet.plugins.filter.rollout_plan import (
    rollout_batch,
    rollout_budget_spent,
    rollout_hold,
    rollout_plan,
    rollout_plays,
    rollout_summary,
)
from ansible_collections.modelops.fleet.plugins.filter.text_table import text_table
from ansible_collections.modelops.fleet.plugins.plugin_utils import _rollout as rollout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def plan_of(inventory):
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[os.path.join(REPO, "inventories", inventory)])
    vm = VariableManager(loader=loader, inventory=inv)
    hosts = [h.name for h in inv.get_hosts()]
    hostvars = {}
    for h in inv.get_hosts():
        v = vm.get_vars(host=h, include_hostvars=False)
        hostvars[h.name] = {"group_names": v["group_names"],
                            "model_upgrade_policy": v.get("model_upgrade_policy"),
                            "model_canary_size": v.get("model_canary_size", 1)}
        for key in ("model_variant", "model_is_site_mirror", "model_site_mirror", "model_sync_source", "model_mirror_url"):
            if key in v:
                hostvars[h.name][key] = v[key]
    return rollout_plan(hosts, hostvars)


def test_example_inventory_plan_canary_gpus_immediate_edges_frozen_critical():
    plan = plan_of("example")
    assert plan["canary"] == ["gpu-a100-01.example.com"]
    assert plan["rest"] == ["gpu-a100-02.example.com", "gpu-a100-03.example.com", "gpu-a100-04.example.com",
                            "gpu-l40s-01.example.com", "gpu-l40s-02.example.com"]
    assert plan["immediate"] == ["edge-%03d.branch.example.com" % i for i in range(1, 13)]
    assert plan["frozen"] == ["gpu-h100-crit-01.example.com", "gpu-h100-crit-02.example.com"]
    assert plan["groups"]["gpu_servers"]["policy"] == "canary"
    assert plan["host_group"]["edge-007.branch.example.com"] == "edge_devices"
    # The branch's site mirror is not upgraded; the edge boxes pull from it, the GPUs are pushed to.
    assert "mirror.branch.example.com" not in plan["host_group"]
    assert plan["mirrors"] == {"mirror.branch.example.com": ["gguf-q4_k_m"]}
    assert plan["sync"]["edge-001.branch.example.com"] == {
        "source": "mirror", "url": "http://mirror.branch.example.com:8090", "mirror": "mirror.branch.example.com"}
    assert plan["sync"]["gpu-a100-02.example.com"]["source"] == "push"


def test_demo_inventory_plan():
    plan = plan_of("demo")
    assert plan["canary"] == ["gpu-01"] and plan["rest"] == ["gpu-02"]
    assert plan["immediate"] == ["edge-01", "edge-02", "edge-03"] and plan["frozen"] == ["crit-01"]


def _hv(policy, groups, size=1):
    return {"group_names": groups, "model_upgrade_policy": policy, "model_canary_size": size}


def test_canary_size_as_percentage_rounds_up_and_keeps_one_host_back_never_more_than_all():
    hv = dict(("h%d" % i, _hv("canary", ["g"], "25%")) for i in range(1, 6))
    plan = rollout_plan(sorted(hv), hv)
    assert plan["canary"] == ["h1", "h2"] and plan["rest"] == ["h3", "h4", "h5"]
    hv = dict(("h%d" % i, _hv("canary", ["g"], 9)) for i in range(1, 3))
    assert rollout_plan(sorted(hv), hv)["canary"] == ["h1", "h2"]


def test_a_group_mixing_policies_is_refused_naming_group_and_host():
    hv = {"a": _hv("canary", ["gpu"]), "b": _hv("immediate", ["gpu"])}
    with pytest.raises(AnsibleFilterError, match="group gpu mixes policies canary and immediate .host b."):
        rollout_plan(["a", "b"], hv)


def test_unknown_policy_and_bad_canary_size_are_refused_naming_the_host():
    with pytest.raises(AnsibleFilterError, match="host a: model_upgrade_policy 'rolling' is not one of"):
        rollout_plan(["a"], {"a": _hv("rolling", ["g"])})
    with pytest.raises(AnsibleFilterError, match="host a: model_canary_size 'ten'"):
        rollout_plan(["a"], {"a": _hv("canary", ["g"], "ten")})


@pytest.mark.parametrize("serial", ["two", "12.5%", [1, "half"], True, [2, None]])
def test_a_batch_size_the_rest_play_cannot_use_fails_the_plan(serial):
    # Ansible's own serial keyword crashes on these ("invalid literal for int()") when the
    # rest play starts, after the canaries were upgraded: the plan refuses them first.
    hv = {"a": _hv("canary", ["g"]), "b": _hv("canary", ["g"])}
    with pytest.raises(AnsibleFilterError, match=r"model_serial .* is not a number of hosts or a percentage: set it to"):
        rollout_plan(["a", "b"], hv, serial)


@pytest.mark.parametrize("serial", [1, "2", "25%", 0, [1, "50%"], []])
def test_a_batch_size_the_rest_play_can_use_plans(serial):
    hv = {"a": _hv("canary", ["g"]), "b": _hv("canary", ["g"])}
    assert rollout_plan(["a", "b"], hv, serial)["canary"] == ["a"]


@pytest.mark.parametrize("pct, why", [
    ("half", "is not a number"), (True, "is not a number"), ("-5", "is not a percentage from 0 to 100"),
    (101, "is not a percentage from 0 to 100"), ("nan", "is not a percentage from 0 to 100"),
    ("inf", "is not a percentage from 0 to 100"),
])
def test_a_failure_budget_that_is_no_percentage_fails_the_plan_naming_the_host(pct, why):
    # -5 halted the rollout with no failure, nan and inf never halted it: refused up front.
    hv = {"a": _hv("canary", ["g"]), "b": _hv("canary", ["g"]), "c": _hv("frozen", ["crit"])}
    hv["b"]["model_max_fail_percentage"] = pct
    with pytest.raises(AnsibleFilterError, match="host b: model_max_fail_percentage %r %s: set it to the share" % (pct, why)):
        rollout_plan(["a", "b", "c"], hv)
    # a frozen host's value decides nothing
    hv["b"]["model_max_fail_percentage"] = 0
    hv["c"]["model_max_fail_percentage"] = pct
    assert rollout_plan(["a", "b", "c"], hv)["frozen"] == ["c"]


def _fleet():
    """Two canary groups (gpu: 1 canary of 3, npu: 1 of 2), an immediate edge group and a
    frozen host, as upgrade.yml sees them."""
    hv = {"gpu-1": _hv("canary", ["gpu"]), "gpu-2": _hv("canary", ["gpu"]), "gpu-3": _hv("canary", ["gpu"]),
          "npu-1": _hv("canary", ["npu"]), "npu-2": _hv("canary", ["npu"]),
          "edge-1": _hv("immediate", ["edge"]), "edge-2": _hv("immediate", ["edge"]),
          "crit-1": _hv("frozen", ["crit"])}
    return rollout_plan(list(hv), hv), hv


def test_a_failed_canary_holds_its_own_group_only():
    plan, hv = _fleet()
    hv["gpu-1"]["model_upgrade_status"] = "failed"
    hv["npu-1"]["model_upgrade_status"] = "upgraded"
    why = rollout_hold("gpu-3", plan, hv)
    assert why == "canary gpu-1 of group gpu ended failed: the group is left alone"
    assert rollout_hold("npu-2", plan, hv) == "" and rollout_hold("edge-1", plan, hv) == ""
    # A canary that never finished (started) or was never reached holds its group too.
    hv["gpu-1"]["model_upgrade_status"] = "started"
    assert "ended started" in rollout_hold("gpu-2", plan, hv)
    del hv["gpu-1"]["model_upgrade_status"]
    assert rollout_hold("gpu-2", plan, hv) == "canary gpu-1 of group gpu was not upgraded: the group is left alone"
    with pytest.raises(AnsibleFilterError, match="host nowhere is not in the rollout plan"):
        rollout_hold("nowhere", plan, hv)


def test_hosts_that_already_serve_the_release_or_could_not_be_read_are_in_no_play():
    plan, hv = _fleet()
    every = [[h, "modelops_canary"] for h in plan["canary"]] + [
        [h, "modelops_rest"] for h in plan["rest"] + plan["immediate"]]
    assert rollout_plays(plan, hv) == every and plan["frozen"][0] not in str(every)
    hv["gpu-1"]["modelops_converged"] = True      # a canary already on the release
    hv["edge-1"]["modelops_converged"] = "True"   # as a templated fact may come back
    hv["gpu-3"]["model_upgrade_status"] = "failed"  # its read failed: given up
    hv["npu-2"]["modelops_converged"] = False
    assert rollout_plays(plan, hv) == [p for p in every if p[0] not in ("gpu-1", "edge-1", "gpu-3")]
    # --check plans every host, whatever its read said
    assert rollout_plays(plan, hv, True) == every


def test_the_failure_budget_counts_failed_and_unfinished_hosts_of_the_planned_ones():
    plan, hv = _fleet()  # 7 planned hosts (the frozen one is not)
    hv["gpu-1"]["model_upgrade_status"] = "upgraded"
    hv["edge-1"]["model_upgrade_status"] = "failed"
    # 1 of 7 is 14.3 %: within 15, over 14.
    assert not rollout_budget_spent(plan, hv, 15) and rollout_budget_spent(plan, hv, 14)
    assert not rollout_budget_spent(plan, hv, "100")
    hv["edge-2"]["model_upgrade_status"] = "started"
    assert rollout_budget_spent(plan, hv, 25) and not rollout_budget_spent(plan, hv, 30)
    # 0 %: the first failure halts the rest.
    assert rollout_budget_spent(plan, hv, 0)
    with pytest.raises(AnsibleFilterError, match="model_max_fail_percentage 'half' is not a number"):
        rollout_budget_spent(plan, hv, "half")
    for pct in ("-5", "nan", "inf", 100.5):
        with pytest.raises(AnsibleFilterError, match="is not a percentage from 0 to 100"):
            rollout_budget_spent(plan, hv, pct)


def test_a_host_of_a_batch_counts_only_earlier_batches_against_the_budget():
    # The rest play runs each host on its own (strategy free): a host of the batch that
    # starts later than its neighbours must not count them as failed while they upgrade.
    plan, hv = _fleet()
    rest = plan["rest"] + plan["immediate"]  # gpu-2, gpu-3, npu-2, edge-1, edge-2
    for canary in plan["canary"]:
        hv[canary]["model_upgrade_status"] = "upgraded"
    hv["gpu-2"]["model_upgrade_status"] = "upgraded"
    hv["gpu-3"]["model_upgrade_status"] = "failed"    # batch 1 (2 hosts a batch)
    hv["npu-2"]["model_upgrade_status"] = "started"   # batch 2, upgrading now
    # 1 failed of 7 planned (14 %) is within 15 %: edge-1 (batch 2) goes on although its
    # neighbour npu-2 is 'started'; counted, that would be 2 of 7, over the budget.
    gate = rollout_batch("edge-1", plan, hv, rest, 2, 15)
    assert gate == {"batch": 2, "wave": "batch-2", "hold": "", "halted": False}
    assert rollout_budget_spent(plan, hv, 15)  # the plain budget counts npu-2
    # edge-2 is batch 3: npu-2 still 'started' (never finished) counts, the budget is spent.
    assert rollout_batch("edge-2", plan, hv, rest, 2, 15)["halted"] is True
    assert rollout_batch("edge-2", plan, hv, rest, 2, 15)["wave"] == "batch-3"


def test_a_host_of_a_group_whose_canary_failed_is_held_but_not_in_check_mode():
    plan, hv = _fleet()
    hv["gpu-1"]["model_upgrade_status"] = "failed"
    rest = plan["rest"] + plan["immediate"]
    gate = rollout_batch("gpu-2", plan, hv, rest, "100%", 100)
    assert gate["hold"] == "canary gpu-1 of group gpu ended failed: the group is left alone"
    assert rollout_batch("gpu-2", plan, hv, rest, "100%", 100, True)["hold"] == ""
    assert rollout_batch("edge-1", plan, hv, rest, "100%", 100)["hold"] == ""
    with pytest.raises(AnsibleFilterError, match="host crit-1 is not one of the play's hosts"):
        rollout_batch("crit-1", plan, hv, rest, 1, 100)
    with pytest.raises(AnsibleFilterError, match="model_serial 'two' is not a number of hosts"):
        rollout_batch("gpu-2", plan, hv, rest, "two", 100)


@pytest.mark.parametrize("serial, sizes", [
    (1, [1, 1, 1, 1, 1, 1, 1]), ("3", [3, 3, 1]), ("30%", [2, 2, 2, 1]), ("100%", [7]), (0, [7]),
    ("1%", [1, 1, 1, 1, 1, 1, 1]), ([1, "50%"], [1, 3, 3]), ([], [7]), ([2, 0], [2, 5]),
])
def test_batches_split_the_hosts_as_a_serial_play_does(serial, sizes):
    hosts = ["h%d" % i for i in range(7)]
    split = rollout.batches(hosts, serial)
    assert [len(b) for b in split] == sizes and sum(split, []) == hosts


def test_the_summary_names_every_host_and_the_ones_that_fail_the_run():
    plan, hv = _fleet()
    hv["gpu-1"]["model_upgrade_status"] = "upgraded"
    hv["npu-1"]["model_upgrade_status"] = "failed"
    hv["edge-1"]["model_upgrade_status"] = "started"
    hv["crit-1"]["modelops_drift"] = True
    out = rollout_summary(plan, hv)
    assert out["hosts"] == {"gpu-1": "upgraded", "npu-1": "failed", "gpu-2": "not upgraded", "gpu-3": "not upgraded",
                            "npu-2": "not upgraded", "edge-1": "started", "edge-2": "not upgraded",
                            "crit-1": "frozen (drift from pin)"}
    assert out["failed"] == ["npu-1", "edge-1"]
    assert out["failures"] == [rollout.NO_REASON, rollout.NO_REASON] and out["plan_rows"] == []
    hv["npu-1"]["model_upgrade_failure"] = "npu-1: upgrade failed at Gate on the probe suite"
    hv["crit-1"]["model_upgrade_plan"] = {"host": "crit-1", "action": "frozen"}
    hv["gpu-1"]["model_upgrade_plan"] = {"host": "gpu-1", "action": "upgrade"}
    out = rollout_summary(plan, hv)
    assert out["failures"] == ["npu-1: upgrade failed at Gate on the probe suite", rollout.NO_REASON]
    # the --check table: canaries first, frozen hosts last
    assert [r["host"] for r in out["plan_rows"]] == ["gpu-1", "crit-1"]
    hv["crit-1"]["modelops_drift"] = False
    assert rollout_summary(plan, hv)["hosts"]["crit-1"] == "frozen"


def test_text_table_aligns_columns_and_shows_missing_cells():
    lines = text_table([{"host": "gpu-01", "to": "2412/gguf-q4_1", "bytes": 123},
                        {"host": "edge-100", "to": None, "ok": True}], ["host", "to", "bytes", "ok"])
    assert lines == ["host      to              bytes  ok",
                     "gpu-01    2412/gguf-q4_1  123    -",
                     "edge-100  -               -      yes"]
    with pytest.raises(AnsibleFilterError, match="row 0 is a str"):
        text_table(["x"], ["host"])


PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        model_upgrade_status: "{{ 'failed' if inventory_hostname == 'g1' else 'upgraded' }}"
      when: inventory_hostname in ['g1', 'e1']
    - ansible.builtin.set_fact:
        modelops_drift: "{{ inventory_hostname == 'c1' }}"
      when: inventory_hostname == 'c1'
    - ansible.builtin.set_fact:
        model_upgrade_plan: {host: "{{ inventory_hostname }}", action: upgrade}
        model_upgrade_failure: "{{ inventory_hostname }}: refused"
      when: inventory_hostname in ['g1', 'e1']
- hosts: localhost
  gather_facts: false
  vars:
    _plan: "{{ groups['all'] | modelops.fleet.rollout_plan(hostvars) }}"
  tasks:
    - ansible.builtin.debug:
        msg:
          hold: "{{ 'g2' | modelops.fleet.rollout_hold(_plan, hostvars) }}"
          edge: "{{ 'e2' | modelops.fleet.rollout_hold(_plan, hostvars) }}"
          spent: "{{ _plan | modelops.fleet.rollout_budget_spent(hostvars, 10) }}"
          summary: "{{ _plan | modelops.fleet.rollout_summary(hostvars) }}"
"""

INVENTORY = """
all:
  vars: {ansible_connection: local}
  children:
    gpu: {hosts: {g1: {}, g2: {}}, vars: {model_upgrade_policy: canary}}
    edge: {hosts: {e1: {}, e2: {}}}
    crit: {hosts: {c1: {}}, vars: {model_upgrade_policy: frozen}}
"""


def test_the_policy_filters_read_real_hostvars_in_a_playbook(tmp_path):
    import json
    import shutil
    import subprocess
    import sys
    if shutil.which("ansible-playbook") is None:
        pytest.skip("needs the ansible CLI of the venv")
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data, dummy = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    msg = data["plays"][1]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert msg["hold"] == "canary g1 of group gpu ended failed: the group is left alone"
    assert msg["edge"] == ""
    assert msg["spent"] is True  # 1 failed of 4 planned is over 10 %
    assert msg["summary"]["hosts"] == {"g1": "failed", "g2": "not upgraded", "e1": "upgraded",
                                       "e2": "not upgraded", "c1": "frozen (drift from pin)"}
    assert msg["summary"]["failed"] == ["g1"] and msg["summary"]["failures"] == ["g1: refused"]
    assert msg["summary"]["plan_rows"] == [{"host": "g1", "action": "upgrade"}, {"host": "e1", "action": "upgrade"}]


SERIAL_PLAYBOOK = """
- hosts: all
  gather_facts: false
  serial: [1, "40%%"]
  strategy: free
  tasks:
    - ansible.builtin.set_fact:
        gate: "{{ inventory_hostname | modelops.fleet.rollout_batch(_plan, hostvars, ansible_play_hosts_all, [1, '40%%'], 100) }}"
        batch: "{{ ansible_play_batch }}"
      vars:
        _plan: "{{ groups['all'] | modelops.fleet.rollout_plan(hostvars) }}"
    - ansible.builtin.debug:
        msg: "%(marker)s {{ inventory_hostname }} {{ gate.wave }} {{ batch | join(',') }}"
"""


def test_the_batch_a_host_is_told_is_the_batch_ansible_runs_it_in(tmp_path):
    # Ansible's own serial split (a list, a percentage) against rollout_batch's, in a free
    # play over 5 hosts: batches of 1, 2 (40 %% of 5), 2.
    import shutil
    import subprocess
    import sys
    if shutil.which("ansible-playbook") is None:
        pytest.skip("needs the ansible CLI of the venv")
    marker = "BATCH-OF"
    (tmp_path / "play.yml").write_text(SERIAL_PLAYBOOK % {"marker": marker})
    (tmp_path / "inv.yml").write_text("all:\n  vars: {ansible_connection: local}\n"
                                      "  hosts: {a: {}, b: {}, c: {}, d: {}, e: {}}\n")
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = {}
    for line in proc.stdout.splitlines():
        if marker in line and "{{" not in line:
            host, wave, batch = line.split(marker, 1)[1].strip().strip('"').split()
            seen[host] = (wave, batch)
    assert seen == {"a": ("batch-1", "a"), "b": ("batch-2", "b,c"), "c": ("batch-2", "b,c"),
                    "d": ("batch-3", "d,e"), "e": ("batch-3", "d,e")}, proc.stdout[-3000:]


def _edge(mirror=None, **extra):
    hv = _hv("immediate", ["edge"])
    hv["model_variant"] = "gguf-q4_k_m"
    if mirror:
        hv["model_site_mirror"] = mirror
    hv.update(extra)
    return hv


def test_hosts_with_a_site_mirror_pull_from_it_and_the_mirror_is_told_what_to_stock():
    hv = {"mirror-a": {"group_names": ["site_mirrors"], "model_is_site_mirror": True,
                       "model_mirror_address": "10.1.0.5", "model_mirror_port": "8091"},
          "edge-1": _edge("mirror-a"), "edge-2": _edge("mirror-a", model_variant="gguf-q8_0"),
          "edge-3": _edge("mirror-a"),
          "gpu-1": dict(_hv("immediate", ["gpu"]), model_variant="fp16"),
          "far-1": dict(_edge(), model_sync_source="mirror", model_mirror_url="https://m.example.com/r/")}
    plan = rollout_plan(list(hv), hv)
    # The mirror serves releases only: it is not upgraded itself.
    assert "mirror-a" not in rollout.planned(plan) and "mirror-a" not in plan["frozen"]
    assert plan["mirrors"] == {"mirror-a": ["gguf-q4_k_m", "gguf-q8_0"]}
    assert plan["sync"]["edge-1"] == {"source": "mirror", "url": "http://10.1.0.5:8091", "mirror": "mirror-a"}
    assert plan["sync"]["gpu-1"] == {"source": "push", "url": "", "mirror": None}
    assert plan["sync"]["far-1"] == {"source": "mirror", "url": "https://m.example.com/r", "mirror": None}


def test_a_site_mirror_that_also_serves_is_planned_and_its_address_defaults_to_ansible_host():
    hv = {"gpu-1": dict(_hv("immediate", ["gpu"]), model_variant="gguf-q4_k_m", ansible_host="fe80::1"),
          "edge-1": _edge("gpu-1")}
    plan = rollout_plan(list(hv), hv)
    assert plan["immediate"] == ["gpu-1", "edge-1"]
    assert plan["sync"]["edge-1"]["url"] == "http://[fe80::1]:8090"
    assert plan["sync"]["gpu-1"]["source"] == "push"


def test_site_mirror_mistakes_are_refused_naming_the_host_and_what_to_do():
    with pytest.raises(AnsibleFilterError, match="host edge-1: model_site_mirror 'mirror-x' is not a host of the inventory"):
        rollout_plan(["edge-1"], {"edge-1": _edge("mirror-x")})
    with pytest.raises(AnsibleFilterError, match="host edge-1: model_site_mirror names the host itself"):
        rollout_plan(["edge-1"], {"edge-1": _edge("edge-1")})
    hv = {"edge-1": _edge("edge-2"), "edge-2": _edge("mirror-a"), "mirror-a": {"model_is_site_mirror": True}}
    with pytest.raises(AnsibleFilterError, match="host edge-1: its site mirror edge-2 pulls from a site mirror too .mirror-a."):
        rollout_plan(["edge-1", "edge-2"], hv)
    with pytest.raises(AnsibleFilterError, match="host edge-1: model_sync_source is mirror but model_mirror_url is not set"):
        rollout_plan(["edge-1"], {"edge-1": _edge(model_sync_source="mirror")})
    with pytest.raises(AnsibleFilterError, match="host m: model_mirror_port 'http' is not a port number"):
        rollout_plan(["edge-1"], {"edge-1": _edge("m"), "m": {"model_is_site_mirror": True, "model_mirror_port": "http"}})


def test_a_target_that_matches_no_host_fails_naming_it_before_any_host_is_touched(tmp_path):
    # upgrade.yml resolves model_target as a host pattern; one that matches nothing would
    # plan an empty rollout and "succeed" without upgrading anything.
    import shutil
    import subprocess
    import sys
    if shutil.which("ansible-playbook") is None:
        pytest.skip("needs the ansible CLI of the venv")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, MODELOPS_REPORT_DIR=str(tmp_path))
    proc = subprocess.run(["ansible-playbook", "-i", os.path.join(REPO, "inventories", "demo"),
                           os.path.join(REPO, "playbooks", "upgrade.yml"), "-e", "model_target=gpu-99:&nowhere"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "model_target 'gpu-99:&nowhere' matches no host of the inventory" in " ".join(out.split()), out[-3000:]
    assert "PLAY [Read every planned host once]" not in out, out[-3000:]
