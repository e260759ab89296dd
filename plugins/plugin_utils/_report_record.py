# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout report's recorder: callback events of a run collected into one plain dict
(independent of Ansible objects, so that it can be unit tested and serialised), and the
constants the renderer shares. Used by the modelops.fleet.rollout_report callback.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time

STEP_ORDER = ("baseline", "sync", "verify", "configure", "activate", "restart", "ready", "probe", "soak", "rollback", "metrics")
STEP_COLOURS = {
    "sync": "#4e79a7", "verify": "#76b7b2", "configure": "#a0cbe8", "activate": "#59a14f", "restart": "#edc948",
    "ready": "#b07aa1", "probe": "#f28e2b", "baseline": "#ff9da7", "rollback": "#e15759",
    "soak": "#d4a6c8", "metrics": "#9c755f", "other": "#bab0ac",
}
STATE_COLOURS = {
    "upgraded": "#59a14f", "frozen": "#76b7b2", "failed": "#e15759", "unreachable": "#7f3c8d",
    "rolled back": "#e15759", "started": "#f28e2b", "not upgraded": "#bab0ac", "ok": "#9c755f",
}
BAD_STATES = ("failed", "unreachable", "started")
# module short name -> step, when the task has no modelops_step variable
ACTION_STEPS = {
    "model_sync": "sync", "model_verify": "verify", "model_activate": "activate", "model_switch": "restart",
    "inference_ready": "ready", "model_probe": "probe", "model_metrics": "metrics",
    "systemd": "restart", "systemd_service": "restart", "service": "restart",
}
SKIP_ACTIONS = ("include_role", "include_tasks", "import_role", "import_tasks", "meta")
SECRET_WORDS = ("password", "passphrase", "token", "secret")
FACT_KEYS = ("model_upgrade_context", "model_upgrade_status", "model_upgrade_failure",
             "model_upgrade_rolled_back", "_model_upgrade_from", "_model_upgrade_to",
             "modelops_drift", "modelops_current")
SCHEMA = 1


def is_secret_key(key):
    k = str(key).lower()
    return k == "api_key" or any(w in k for w in SECRET_WORDS)


def scrub(value):
    """A copy of value without secret keys (at any depth); other objects as strings."""
    if isinstance(value, dict):
        return dict((str(k), scrub(v)) for k, v in value.items() if not is_secret_key(k))
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def short_action(action):
    return str(action or "").rsplit(".", 1)[-1]


def _num(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def median(values):
    vals = sorted(v for v in (_num(x) for x in values or []) if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2.0


class Recorder(object):
    """Collects a run from callback events into a plain dict (independent of Ansible objects,
    so it can be unit tested and serialised)."""

    def __init__(self, now=time.time):
        self.now = now
        self.started = now()
        self.ended = None
        self.playbook = None
        self.plays = []
        self.hosts = {}
        self.order = []
        self.errors = []
        self._starts = {}
        self._summary = None

    # ----------------------------------------------------------------- hosts

    def host(self, name):
        h = self.hosts.get(name)
        if h is None:
            h = {"host": name, "group": None, "groups": [], "policy": None, "wave": None,
                 "model": None, "variant": None, "engine": None, "release": None, "from": None, "to": None,
                 "status": None, "failure": None, "rolled_back": None, "unreachable": False,
                 "steps": [], "probes": [], "bytes_transferred": 0, "bytes_linked": 0,
                 "failed_tasks": [], "facts_seen": False, "_failed_seen": False}
            self.hosts[name] = h
            self.order.append(name)
        return h

    def set_groups(self, name, groups):
        h = self.host(name)
        groups = [g for g in groups if g != "all" and g != "ungrouped"]
        h["groups"] = sorted(set(h["groups"]) | set(groups))
        if h["wave"] is None:
            if "modelops_canary" in groups:
                h["wave"] = "canary"
            elif "modelops_frozen" in groups:
                h["wave"] = "frozen"
        real = [g for g in h["groups"] if not g.startswith("modelops_")]
        if h["group"] is None and real:
            h["group"] = real[0]

    # ----------------------------------------------------------------- events

    def task_start(self, host, task_uuid):
        self._starts[(host, task_uuid)] = self.now()

    def task_result(self, host, task_uuid, task_name, action, step, status, res, no_log=False,
                    play=None, batch_hosts=None):
        """One result. status: ok, changed, failed, skipped, unreachable, ignored."""
        end = self.now()
        start = self._starts.pop((host, task_uuid), end)
        h = self.host(host)
        res = res if isinstance(res, dict) else {}
        if status == "unreachable":
            h["unreachable"] = True
        if not no_log:
            self._facts(h, res.get("ansible_facts"))
        if status == "skipped":
            # did nothing: the other engine mode's tasks, a canary's baseline on another host
            return
        short = short_action(action)
        if short == "model_rollout" and isinstance(res.get("steps"), list) and not no_log:
            # one host's rollout in one task (plugins/plugin_utils/_rollout_host.py): each of
            # its steps is a step of the host, timed by its own account
            # itself is no step (a failure of the task is kept, as any other's)
            for sub in res["steps"]:
                if isinstance(sub, dict):
                    self._rollout_step(h, sub, start, end)
        self._one(h, task_name, short, step, status, res, no_log, start, end)

    def _rollout_step(self, h, sub, start, end):
        account = sub.get("account") if isinstance(sub.get("account"), dict) else {}
        res = dict(sub.get("result")) if isinstance(sub.get("result"), dict) else {}
        if account:
            res["step"] = account
        # the step's span on the controller (round trips included), else its own account
        timed = sub if _num(sub.get("started")) is not None and _num(sub.get("seconds")) is not None else account
        if _num(timed.get("started")) is not None and _num(timed.get("seconds")) is not None:
            start, end = float(timed["started"]), float(timed["started"]) + float(timed["seconds"])
        status = sub.get("status") if sub.get("status") in ("ok", "changed", "failed") else "ok"
        self._one(h, str(sub.get("task") or ""), short_action(sub.get("action")), None, status, res, False, start, end)

    def _one(self, h, task_name, short, step, status, res, no_log, start, end):
        # A step module accounts for itself (module_utils/_step.py): its name (unless the
        # task names the step of its own flow), outcome, own seconds and phases.
        account = res.get("step") if isinstance(res.get("step"), dict) and not no_log else None
        if step is None and account is not None and account.get("name"):
            step = str(account["name"])
        if step is None:
            step = self._step_from_action(h, short, res, no_log)
        if status == "failed" and step is None and not no_log:
            h["failed_tasks"].append({"task": task_name, "msg": scrub(res.get("msg", ""))})
        if step is None:
            if status == "unreachable":
                h["failed_tasks"].append({"task": task_name, "msg": scrub(res.get("msg", "unreachable"))})
            return
        if status in ("failed", "unreachable"):
            h["_failed_seen"] = True
        entry = {"task": task_name, "action": short, "status": status, "start": start, "end": end}
        if account is not None and _num(account.get("seconds")) is not None:
            entry["seconds"] = float(account["seconds"])
            entry["outcome"] = scrub(account.get("outcome"))
            if isinstance(account.get("phases"), dict) and account["phases"]:
                entry["phases"] = scrub(account["phases"])
        if no_log:
            entry["censored"] = True
        elif status in ("failed", "unreachable", "ignored") and res.get("msg"):
            entry["msg"] = scrub(res.get("msg"))
        self._add_step(h, step, entry)
        if no_log or status == "skipped":
            return
        if short == "model_sync" or step == "sync" and "bytes_transferred" in res:
            self._sync(h, res)
        if short == "model_probe" and "probes" in res:
            self._probe(h, step, res, status)
        if isinstance(res.get("timing"), dict):
            entry["timing"] = scrub(res["timing"])
        if short in ("model_activate", "model_switch"):
            for key in ("ledger_event", "back_event"):
                ev = res.get(key)
                if isinstance(ev, dict):
                    h.setdefault("activations", []).append(scrub(
                        dict((k, ev.get(k)) for k in ("action", "from", "to", "reason", "time"))))

    def _step_from_action(self, h, short, res, no_log):
        step = ACTION_STEPS.get(short)
        if short in ("model_activate", "model_switch"):
            ev = res.get("ledger_event") if not no_log else None
            reason = str((ev or {}).get("reason") or "")
            if (ev or {}).get("action") == "rollback" or reason.startswith("rollback") or h["_failed_seen"]:
                step = "rollback"
        elif step == "probe":
            base = res.get("baseline") if isinstance(res.get("baseline"), dict) else {}
            if base.get("action") == "probe_baseline" and res.get("changed"):
                step = "baseline"
        return step

    def _add_step(self, h, step, entry):
        steps = h["steps"]
        last = steps[-1] if steps else None
        if last is not None and last["step"] == step:
            last["tasks"].append(entry)
            last["end"] = max(last["end"], entry["end"])
            last["status"] = worst(last["status"], entry["status"])
            if entry.get("msg") and not last.get("msg"):
                last["msg"] = entry["msg"]
            return
        new = {"step": step, "start": entry["start"], "end": entry["end"], "status": entry["status"],
               "tasks": [entry]}
        if entry.get("msg"):
            new["msg"] = entry["msg"]
        steps.append(new)

    def _facts(self, h, facts):
        if not isinstance(facts, dict):
            return
        ctx = facts.get("model_upgrade_context")
        if isinstance(ctx, dict):
            h["facts_seen"] = True
            for key in ("group", "policy", "wave", "from", "to", "release", "model", "variant", "engine"):
                if ctx.get(key) not in (None, ""):
                    h[key] = scrub(ctx.get(key))
        if "model_upgrade_status" in facts:
            h["facts_seen"] = True
            h["status"] = scrub(facts["model_upgrade_status"])
            if h["status"] == "frozen":
                h["policy"] = h["policy"] or "frozen"
                h["wave"] = h["wave"] or "frozen"
        if facts.get("model_upgrade_failure"):
            h["failure"] = scrub(facts["model_upgrade_failure"]).strip()
        if "model_upgrade_rolled_back" in facts:
            h["rolled_back"] = bool(facts["model_upgrade_rolled_back"])
        # what the role and the frozen play note today, when there is no context yet
        if facts.get("_model_upgrade_from") is not None and h["from"] is None:
            h["from"] = scrub(facts["_model_upgrade_from"]).strip() or None
        if facts.get("_model_upgrade_to") and h["to"] is None:
            h["to"] = scrub(facts["_model_upgrade_to"]).strip()
        if "modelops_current" in facts:
            h["from"] = h["from"] or (scrub(facts["modelops_current"]) if facts["modelops_current"] else None)
            h["to"] = h["to"] or h["from"]
        if "modelops_drift" in facts:
            h["drift"] = bool(facts["modelops_drift"])
        if isinstance(facts.get("model_upgrade_plan"), dict):
            h["facts_seen"] = True
            h["plan"] = scrub(facts["model_upgrade_plan"])
            for key in ("group", "policy", "wave"):
                if h[key] is None and facts["model_upgrade_plan"].get(key):
                    h[key] = scrub(facts["model_upgrade_plan"][key])

    def _sync(self, h, res):
        for key in ("bytes_transferred", "bytes_linked"):
            n = _num(res.get(key))
            if n is not None:
                h[key] += int(n)
        if res.get("release") and not h["release"]:
            h["release"] = scrub(res["release"])
        h.setdefault("syncs", []).append({
            "release": scrub(res.get("release")), "changed": bool(res.get("changed")),
            "bytes_transferred": _num(res.get("bytes_transferred")),
            "bytes_linked": _num(res.get("bytes_linked")),
            "files": len(res["files"]) if isinstance(res.get("files"), list) else None})

    def _probe(self, h, step, res, status):
        base = res.get("baseline") if isinstance(res.get("baseline"), dict) else None
        base_probes = base.get("probes") if base and isinstance(base.get("probes"), dict) else {}
        after_rollback = any(s["step"] == "rollback" for s in h["steps"][:-1])
        run = {"step": "rollback" if after_rollback and step == "probe" else step,
               "suite": scrub(res.get("suite_name")), "passed": bool(res.get("passed")),
               "status": status,
               "latency": scrub(res.get("latency")) if isinstance(res.get("latency"), dict) else None,
               "baseline": None, "probes": []}
        if base:
            run["baseline"] = {"latency": scrub(base.get("latency")), "time": scrub(base.get("time")),
                               "recorded": base.get("action") == "probe_baseline" and step == "baseline"}
        for p in res.get("probes") or []:
            if not isinstance(p, dict):
                continue
            lat = p.get("latencies_ms") or []
            bp = base_probes.get(p.get("name")) if isinstance(base_probes, dict) else None
            run["probes"].append(scrub({
                "name": p.get("name"), "passed": bool(p.get("passed")), "reason": p.get("reason"),
                "kind_failures": p.get("kind_failures") or [], "attempts": p.get("attempts"),
                "passes": p.get("passes"), "latencies_ms": lat, "latency_p50_ms": median(lat),
                "baseline_p50_ms": bp.get("p50_ms") if isinstance(bp, dict) else None,
                "errors": p.get("errors") or [], "similarity": p.get("similarity"),
                "latency_verdict": p.get("latency_verdict") if isinstance(p.get("latency_verdict"), dict) else None}))
        h["probes"].append(run)

    def stats(self, stats):
        """Take the final per-host counts and set_stats data from an AggregateStats."""
        self.ended = self.now()
        counts = {}
        for name in sorted(getattr(stats, "processed", {}) or {}):
            counts[name] = stats.summarize(name)
        self.counts = counts
        custom = getattr(stats, "custom", {}) or {}
        run = custom.get("_run") if isinstance(custom.get("_run"), dict) else {}
        summary = run.get("modelops_rollout")
        if not isinstance(summary, dict):
            for name, data in custom.items():
                if isinstance(data, dict) and isinstance(data.get("modelops_rollout"), dict):
                    summary = data["modelops_rollout"]
                    break
        self._summary = scrub(summary) if isinstance(summary, dict) else None
        for name, c in counts.items():
            if c.get("unreachable"):
                self.host(name)["unreachable"] = True

    # ----------------------------------------------------------------- report

    def report(self):
        ended = self.ended or self.now()
        summary = self._summary or {}
        summary_hosts = summary.get("hosts") if isinstance(summary.get("hosts"), dict) else {}
        counts = getattr(self, "counts", {})
        hosts = []
        for name in self.order:
            h = self.hosts[name]
            relevant = (h["steps"] or h["facts_seen"] or name in summary_hosts or h["unreachable"]
                        or h["status"] is not None)
            if not relevant:
                if h["failed_tasks"]:
                    self.errors.extend(dict(t, host=name) for t in h["failed_tasks"])
                continue
            hosts.append(self._host_report(h, summary_hosts.get(name), counts.get(name)))
        hosts.sort(key=lambda x: (x["state"] not in BAD_STATES and x["state"] != "rolled back",
                                  self.order.index(x["host"])))
        states = {}
        for x in hosts:
            states[x["state"]] = states.get(x["state"], 0) + 1
        run = {
            "schema": SCHEMA, "playbook": self.playbook, "plays": list(self.plays),
            "collection": collection_info(),
            "start": iso(self.started), "end": iso(ended), "duration": round(ended - self.started, 3),
            "summary": {
                "hosts": len(hosts), "states": states,
                "failed": [x["host"] for x in hosts if x["state"] in BAD_STATES or x["state"] == "rolled back"],
                "bytes_transferred": sum(x["bytes_transferred"] for x in hosts),
                "bytes_linked": sum(x["bytes_linked"] for x in hosts),
                "model": summary.get("model"), "releases": summary.get("releases"),
                "halted_by_failure_budget": summary.get("halted_by_failure_budget"),
                "rollout": summary or None,
            },
            "stats": counts,
            "errors": self.errors,
            "hosts": hosts,
        }
        return scrub(run)

    def _host_report(self, h, summary_state, counts):
        state = h["status"]
        rolled_back = h["rolled_back"]
        if rolled_back is None:
            rolled_back = any(s["step"] == "rollback" and s["status"] in ("ok", "changed") for s in h["steps"])
        if h["unreachable"] and state not in ("upgraded", "frozen"):
            state = "unreachable"
        elif state in (None, "started"):
            if summary_state:
                state = str(summary_state)
            elif counts and counts.get("failures"):
                state = "failed"
            elif state is None:
                state = "ok"
        if state and state.startswith("frozen"):
            state = "frozen"
        failure = h["failure"]
        if not failure and state in ("failed", "unreachable", "started"):
            bad = [t for s in h["steps"] for t in s["tasks"] if t["status"] in ("failed", "unreachable")]
            bad += h["failed_tasks"]
            if bad:
                failure = "%s: %s" % (bad[-1]["task"], bad[-1].get("msg") or bad[-1].get("status"))
        if h["wave"] is None and "modelops_rest" in h["groups"]:
            h["wave"] = "rest"
        steps = []
        for s in h["steps"]:
            # the seconds the step's modules account for themselves; the rest of the step's
            # span is Ansible's (templating, the connection, the module's transfer and start)
            own = [t["seconds"] for t in s["tasks"] if "seconds" in t]
            duration = round(s["end"] - s["start"], 3)
            steps.append({"step": s["step"], "status": s["status"], "start": iso(s["start"]),
                          "end": iso(s["end"]), "duration": duration,
                          "seconds": round(sum(own), 3) if own else None,
                          "overhead": round(max(duration - sum(own), 0.0), 3) if own else None,
                          "offset": round(s["start"] - self.started, 3), "msg": s.get("msg"),
                          "tasks": [{"task": t["task"], "action": t["action"], "status": t["status"],
                                     "duration": round(t["end"] - t["start"], 3),
                                     "seconds": t.get("seconds"), "outcome": t.get("outcome"),
                                     "phases": t.get("phases"),
                                     "msg": t.get("msg"), "censored": t.get("censored", False),
                                     "timing": t.get("timing")}
                                    for t in s["tasks"]]})
        out = {
            "host": h["host"], "group": h["group"], "policy": h["policy"], "wave": h["wave"],
            "model": h["model"], "variant": h["variant"], "engine": h["engine"], "release": h["release"],
            "from": h["from"], "to": h["to"], "state": state, "rolled_back": bool(rolled_back),
            "failure": failure, "bytes_transferred": h["bytes_transferred"],
            "bytes_linked": h["bytes_linked"], "steps": steps, "probes": h["probes"],
            "activations": h.get("activations", []), "syncs": h.get("syncs", []),
            "stats": counts,
        }
        if "drift" in h:
            out["drift"] = h["drift"]
        if "plan" in h:
            out["plan"] = h["plan"]
        if steps:
            out["start"] = steps[0]["start"]
            out["end"] = steps[-1]["end"]
            out["duration"] = round(h["steps"][-1]["end"] - h["steps"][0]["start"], 3)
        return out


def worst(a, b):
    rank = {"skipped": 0, "ok": 1, "changed": 2, "ignored": 3, "failed": 4, "unreachable": 5}
    return a if rank.get(a, 1) >= rank.get(b, 1) else b


def collection_info(root=None):
    """Which copy of modelops.fleet ran: its version and root, and whether it is an
    installed collection (a MANIFEST.json, as ansible-galaxy collection install writes)
    or a source checkout (galaxy.yml)."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    info = {"name": "modelops.fleet", "version": None, "path": root, "installed": False}
    try:
        with open(os.path.join(root, "MANIFEST.json")) as f:
            info.update(version=json.load(f)["collection_info"]["version"], installed=True)
        return info
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml")) as f:
            m = re.search(r"^version:\s*['\"]?([^'\"\s]+)", f.read(), re.M)
        info["version"] = m.group(1) if m else None
    except OSError:
        pass
    return info
