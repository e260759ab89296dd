# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rollout_plan on the shipped inventories (read by Ansible's own inventory code), and the
text_table filter that upgrade.yml --check prints the plan with."""

from __future__ import annotations

import os

import pytest

from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

from ansible_collections.modelops.fleet.plugins.filter.rollout_plan import rollout_plan
from ansible_collections.modelops.fleet.plugins.filter.text_table import text_table

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


def test_text_table_aligns_columns_and_shows_missing_cells():
    lines = text_table([{"host": "gpu-01", "to": "2412/gguf-q4_1", "bytes": 123},
                        {"host": "edge-100", "to": None, "ok": True}], ["host", "to", "bytes", "ok"])
    assert lines == ["host      to              bytes  ok",
                     "gpu-01    2412/gguf-q4_1  123    -",
                     "edge-100  -               -      yes"]
    with pytest.raises(AnsibleFilterError, match="row 0 is a str"):
        text_table(["x"], ["host"])
