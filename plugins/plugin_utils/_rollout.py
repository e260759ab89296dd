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

from ansible.utils.helpers import pct_to_int

POLICIES = ("immediate", "canary", "frozen")
# The model_mirror role's default port (model_mirror_port).
MIRROR_PORT = 8090
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


def plan(hosts, hostvars, serial=None):
    """Split hosts into canaries, the rest (waves) and frozen hosts, per rollout group.

    The rollout group of a host is model_rollout_group, or its first inventory group. The
    policy is model_upgrade_policy (immediate, canary, frozen; default immediate). Hosts
    with model_is_site_mirror only serve releases to other hosts and are not planned; the
    plan's sync and mirrors say where each planned host gets the files (_sync_sources).

    The batch size (serial, the rest play's serial keyword) and each host's
    model_max_fail_percentage are checked here, before any host is changed: a value the
    rest play could not use would otherwise fail the run after the canaries."""
    if serial is not None:
        check_serial(serial)
    groups = {}
    order = []
    for h in hosts:
        hv = hostvars[h]
        if _truthy(hv.get("model_is_site_mirror", False)):
            # A host that only serves releases to its site (the model_mirror role).
            continue
        policy = hv.get("model_upgrade_policy", "immediate")
        if policy not in POLICIES:
            raise RolloutError("host %s: model_upgrade_policy %r is not one of %s" % (h, policy, ", ".join(POLICIES)))
        if policy != "frozen":
            fail_percentage(hv.get("model_max_fail_percentage", 100), h)
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
    out["sync"], out["mirrors"] = _sync_sources(planned(out), hostvars)
    return out


def _mirror_url(mirror, hv):
    address = str(hv.get("model_mirror_address") or hv.get("ansible_host") or mirror)
    if ":" in address and not address.startswith("["):
        address = "[%s]" % address
    port = hv.get("model_mirror_port", MIRROR_PORT)
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise RolloutError("host %s: model_mirror_port %r is not a port number" % (mirror, port))
    return "http://%s:%d" % (address, port)


def _sync_sources(hosts, hostvars):
    """Where each host gets the release's files, and what each site mirror must hold.

    A host with model_site_mirror (the inventory name of its site's mirror, stocked by the
    model_mirror role) pulls from that mirror; else model_sync_source (push, or mirror from
    model_mirror_url). Returns ({host: {source, url, mirror}}, {mirror: [variants]})."""
    sync, mirrors = {}, {}
    for h in hosts:
        hv = hostvars[h]
        mirror = hv.get("model_site_mirror")
        if mirror:
            if mirror not in hostvars:
                raise RolloutError("host %s: model_site_mirror %r is not a host of the inventory: name the "
                                   "inventory host that serves this site's releases (it runs the model_mirror role)"
                                   % (h, mirror))
            if mirror == h:
                raise RolloutError("host %s: model_site_mirror names the host itself: a site mirror gets its "
                                   "releases pushed from the controller; unset model_site_mirror on it" % h)
            upstream = hostvars[mirror].get("model_site_mirror")
            if upstream:
                raise RolloutError("host %s: its site mirror %s pulls from a site mirror too (%s): a site mirror "
                                   "is stocked from the controller; unset model_site_mirror on %s"
                                   % (h, mirror, upstream, mirror))
            sync[h] = {"source": "mirror", "url": _mirror_url(mirror, hostvars[mirror]), "mirror": mirror}
            variant = hv.get("model_variant")
            wanted = mirrors.setdefault(mirror, [])
            if variant not in wanted:
                wanted.append(variant)
            continue
        source = hv.get("model_sync_source", "push")
        if source not in ("push", "mirror"):
            raise RolloutError("host %s: model_sync_source %r is not push or mirror" % (h, source))
        url = str(hv.get("model_mirror_url") or "").rstrip("/")
        if source == "mirror" and not url:
            raise RolloutError("host %s: model_sync_source is mirror but model_mirror_url is not set: set the "
                               "mirror's base URL, or model_site_mirror to the inventory host of its site mirror" % h)
        sync[h] = {"source": source, "url": url, "mirror": None}
    return sync, mirrors


def planned(the_plan):
    """The hosts the run upgrades, in play order (canaries first)."""
    return the_plan["canary"] + the_plan["rest"] + the_plan["immediate"]


def plays(the_plan, hostvars, check_mode=False):
    """[host, group] for each host that has something to do, in play order: canaries to
    modelops_canary, the rest (and immediate groups) to modelops_rest. A planned host whose
    read said it already serves the release (the host var modelops_converged) has nothing to
    do, and one whose read failed (status failed) is given up: neither is in a play. In check
    mode every planned host is, so that the plan lists it."""
    out = []
    for hosts, group in ((the_plan["canary"], "modelops_canary"),
                         (the_plan["rest"] + the_plan["immediate"], "modelops_rest")):
        for h in hosts:
            done = _truthy((hostvars.get(h) or {}).get("modelops_converged", False)) or _status(hostvars, h) == "failed"
            if check_mode or not done:
                out.append([h, group])
    return out


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


def budget_spent(the_plan, hostvars, max_fail_percentage, ignore=()):
    """True when the failed planned hosts exceed max_fail_percentage of the planned hosts
    (the budget is checked before each batch of the rest). Hosts in ignore (the batch that
    is about to start: a host of it still counts as started while it upgrades) are not
    counted as failed."""
    hosts = planned(the_plan)
    if not hosts:
        return False
    pct = fail_percentage(max_fail_percentage)
    failed = [h for h in failed_hosts(the_plan, hostvars) if h not in ignore]
    return len(failed) * 100.0 > pct * len(hosts)


def fail_percentage(value, host=None):
    """model_max_fail_percentage as a number from 0 (the first failure halts the rest) to
    100 (never halts); anything else (a word, a negative number, nan, inf) is refused."""
    where = "host %s: " % host if host else ""
    what = ("set it to the share of the planned hosts, from 0 to 100, that may fail before the rollout "
            "halts (0: the first failure halts it; 100: it never halts)")
    try:
        pct = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        pct = None
    if pct is None:
        raise RolloutError("%smodel_max_fail_percentage %r is not a number: %s" % (where, value, what))
    if not math.isfinite(pct) or not 0 <= pct <= 100:
        raise RolloutError("%smodel_max_fail_percentage %r is not a percentage from 0 to 100: %s" % (where, value, what))
    return pct


def _batch_size(value, total):
    """One serial entry as a number of hosts, read by Ansible's own helper (an int, or a
    percentage of the play's hosts, at least 1); 0 or less means all of them."""
    try:
        if isinstance(value, bool):
            raise TypeError(value)
        n = pct_to_int(value, total)
    except (TypeError, ValueError):
        raise RolloutError("model_serial %r is not a number of hosts or a percentage: set it to a number of hosts "
                           "(2), a whole percentage of them ('25%%') or a list of these ([1, '50%%'])" % (value,))
    return total if n <= 0 else n


def _serial_sizes(serial):
    """The entries of a serial value: a list of them, or the one value."""
    return list(serial) if isinstance(serial, (list, tuple)) else [serial]


def check_serial(serial):
    """model_serial as the rest play's serial keyword takes it (a number of hosts, a
    percentage, or a list of them), checked before any host is changed."""
    for size in _serial_sizes(serial):
        _batch_size(size, 100)
    return serial


def batches(play_hosts, serial):
    """The play's hosts in the batches serial makes of them (serial: a number, a percentage
    or a list of them, the last one repeated), the way Ansible splits a serial play."""
    hosts = list(play_hosts)
    sizes = _serial_sizes(serial)
    if not sizes:
        sizes = ["100%"]
    total = len(hosts)
    out = []
    i = 0
    while hosts:
        n = _batch_size(sizes[min(i, len(sizes) - 1)], total)
        out.append(hosts[:n])
        hosts = hosts[n:]
        i += 1
    return out


def batch_gate(host, the_plan, hostvars, play_hosts, serial, max_fail_percentage, check_mode=False):
    """What the rest play does with host as its batch starts, decided for each host on its
    own (the play lets every host go at its own pace: no task runs once per batch):
    {"batch": n, "wave": "batch-<n>", "hold": why its group is left alone ('' when it is
    not; never in check mode), "halted": the failure budget was spent by earlier batches}."""
    split = batches(play_hosts, serial)
    for n, batch in enumerate(split, 1):
        if host in batch:
            break
    else:
        raise RolloutError("host %s is not one of the play's hosts %s" % (host, list(play_hosts)))
    return {"batch": n, "wave": "batch-%d" % n,
            "hold": "" if check_mode else canary_hold(the_plan, hostvars, host),
            "halted": budget_spent(the_plan, hostvars, max_fail_percentage, ignore=batch)}


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
