# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollout policy on the controller, in one place: the plan (canaries, the rest, frozen
hosts per rollout group), the failed-canary stop, the fleet-wide failure budget and the
run's summary. upgrade.yml only wires these (through the rollout_* filters).

A host's outcome is its ``model_upgrade_status`` host var, set by the model_upgrade role:
``started`` (and never finished: the host failed or became unreachable mid-way),
``upgraded``, ``failed``; ``frozen`` for frozen hosts. A planned host without one was not
reached by its play (ended by the canary stop, the budget, or a failure before the role).

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import math

POLICIES = ("immediate", "canary", "frozen")
# Outcomes that fail the run.
FAILED = ("started", "failed")


class RolloutError(Exception):
    pass


def _canary_count(size, n, host):
    s = str(size).strip()
    try:
        if s.endswith("%"):
            count = int(math.ceil(n * float(s[:-1]) / 100.0))
        else:
            count = int(s)
    except ValueError:
        raise RolloutError("host %s: model_canary_size %r is not a count or a percentage such as 25%%" % (host, size))
    return max(1, min(n, count))


def plan(hosts, hostvars):
    """Split hosts into canaries, the rest (waves) and frozen hosts, per rollout group.

    The rollout group of a host is model_rollout_group, or its first inventory group. The
    policy is model_upgrade_policy (immediate, canary, frozen; default immediate)."""
    groups = {}
    order = []
    for h in hosts:
        hv = hostvars[h]
        policy = hv.get("model_upgrade_policy", "immediate")
        if policy not in POLICIES:
            raise RolloutError("host %s: model_upgrade_policy %r is not one of %s" % (h, policy, ", ".join(POLICIES)))
        names = [g for g in hv.get("group_names", []) if g not in ("all", "ungrouped")]
        group = hv.get("model_rollout_group") or (names[0] if names else "ungrouped")
        if group not in groups:
            groups[group] = {"policy": policy, "hosts": [], "canary_size": hv.get("model_canary_size", 1)}
            order.append(group)
        elif groups[group]["policy"] != policy:
            raise RolloutError("group %s mixes policies %s and %s (host %s): give the group one policy"
                               % (group, groups[group]["policy"], policy, h))
        groups[group]["hosts"].append(h)
    out = {"groups": {}, "canary": [], "rest": [], "frozen": [], "immediate": []}
    for g in order:
        info = groups[g]
        hosts_g = info["hosts"]
        entry = {"policy": info["policy"], "hosts": hosts_g, "canary": [], "rest": []}
        if info["policy"] == "canary":
            n = _canary_count(info["canary_size"], len(hosts_g), hosts_g[0])
            entry["canary"], entry["rest"] = hosts_g[:n], hosts_g[n:]
            out["canary"] += entry["canary"]
            out["rest"] += entry["rest"]
        elif info["policy"] == "immediate":
            entry["rest"] = list(hosts_g)
            out["immediate"] += hosts_g
        else:
            out["frozen"] += hosts_g
        out["groups"][g] = entry
    out["host_group"] = dict((h, g) for g in order for h in groups[g]["hosts"])
    return out


def planned(the_plan):
    """The hosts the run upgrades, in play order (canaries first)."""
    return the_plan["canary"] + the_plan["rest"] + the_plan["immediate"]


def _status(hostvars, host):
    return (hostvars.get(host) or {}).get("model_upgrade_status")


def canary_hold(the_plan, hostvars, host):
    """Why host's group is left alone this run ('' when it is not): one of the group's
    canaries did not end upgraded (failed, never finished, or was never reached)."""
    group = the_plan["host_group"].get(host)
    if group is None:
        raise RolloutError("host %s is not in the rollout plan" % host)
    for canary in the_plan["groups"][group]["canary"]:
        status = _status(hostvars, canary)
        if status != "upgraded":
            return "canary %s of group %s %s: the group is left alone" % (
                canary, group, "was not upgraded" if status is None else "ended %s" % status)
    return ""


def failed_hosts(the_plan, hostvars):
    """Planned hosts whose upgrade ended in failure (recorded, not merely unreached)."""
    return [h for h in planned(the_plan) if _status(hostvars, h) in FAILED]


def budget_spent(the_plan, hostvars, max_fail_percentage):
    """True when the failed planned hosts exceed max_fail_percentage of the planned hosts
    (the budget is checked before each batch of the rest)."""
    hosts = planned(the_plan)
    if not hosts:
        return False
    try:
        pct = float(max_fail_percentage)
    except (TypeError, ValueError):
        raise RolloutError("model_max_fail_percentage %r is not a number" % (max_fail_percentage,))
    return len(failed_hosts(the_plan, hostvars)) * 100.0 > pct * len(hosts)


NO_REASON = "unreachable or failed before the upgrade started"


def summary(the_plan, hostvars):
    """{"hosts": {host: outcome}, "failed": [hosts that fail the run], "failures": [their
    reasons], "plan_rows": [the check-mode plan of each host that has one]}: planned hosts
    with their status ('not upgraded' when their play never reached them), frozen hosts as
    'frozen' or 'frozen (drift from pin)'; hosts in play order (canaries first, frozen last)."""
    hosts = {}
    for h in planned(the_plan):
        hosts[h] = _status(hostvars, h) or "not upgraded"
    for h in the_plan["frozen"]:
        hosts[h] = "frozen (drift from pin)" if _truthy((hostvars.get(h) or {}).get("modelops_drift")) else "frozen"
    failed = [h for h, s in hosts.items() if s in FAILED]
    return {"hosts": hosts, "failed": failed,
            "failures": [(hostvars.get(h) or {}).get("model_upgrade_failure") or NO_REASON for h in failed],
            "plan_rows": [(hostvars.get(h) or {})["model_upgrade_plan"] for h in hosts
                          if "model_upgrade_plan" in (hostvars.get(h) or {})]}


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)
