# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError

POLICIES = ("immediate", "canary", "frozen")


def _canary_count(size, n, host):
    s = str(size).strip()
    try:
        if s.endswith("%"):
            count = int(math.ceil(n * float(s[:-1]) / 100.0))
        else:
            count = int(s)
    except ValueError:
        raise AnsibleFilterError("host %s: model_canary_size %r is not a count or a percentage such as 25%%" % (host, size))
    return max(1, min(n, count))


def rollout_plan(hosts, hostvars):
    """Split hosts into canaries, the rest (waves) and frozen hosts, per rollout group.

    The rollout group of a host is model_rollout_group, or its first inventory group. The
    policy is model_upgrade_policy (immediate, canary, frozen; default immediate).
    """
    groups = {}
    order = []
    for h in hosts:
        hv = hostvars[h]
        policy = hv.get("model_upgrade_policy", "immediate")
        if policy not in POLICIES:
            raise AnsibleFilterError("host %s: model_upgrade_policy %r is not one of %s" % (h, policy, ", ".join(POLICIES)))
        names = [g for g in hv.get("group_names", []) if g not in ("all", "ungrouped")]
        group = hv.get("model_rollout_group") or (names[0] if names else "ungrouped")
        if group not in groups:
            groups[group] = {"policy": policy, "hosts": [], "canary_size": hv.get("model_canary_size", 1)}
            order.append(group)
        elif groups[group]["policy"] != policy:
            raise AnsibleFilterError("group %s mixes policies %s and %s (host %s): give the group one policy"
                                     % (group, groups[group]["policy"], policy, h))
        groups[group]["hosts"].append(h)
    plan = {"groups": {}, "canary": [], "rest": [], "frozen": [], "immediate": []}
    for g in order:
        info = groups[g]
        hosts_g = info["hosts"]
        entry = {"policy": info["policy"], "hosts": hosts_g, "canary": [], "rest": []}
        if info["policy"] == "canary":
            n = _canary_count(info["canary_size"], len(hosts_g), hosts_g[0])
            entry["canary"], entry["rest"] = hosts_g[:n], hosts_g[n:]
            plan["canary"] += entry["canary"]
            plan["rest"] += entry["rest"]
        elif info["policy"] == "immediate":
            entry["rest"] = list(hosts_g)
            plan["immediate"] += hosts_g
        else:
            plan["frozen"] += hosts_g
        plan["groups"][g] = entry
    plan["host_group"] = dict((h, g) for g in order for h in groups[g]["hosts"])
    return plan


class FilterModule(object):
    def filters(self):
        return {"rollout_plan": rollout_plan}
