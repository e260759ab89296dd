# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: what a rollout with playbooks/upgrade.yml costs, and how long each host does not answer.

Runs on a demo-shaped fleet of its own (fleet.py, name ``orch``, inventories/demo with every
port shifted by 8000: canary gpu_servers over OpenSSH, immediate edge_devices over paramiko,
a frozen critical host). Signed releases of the SmolLM2-135M GGUF are published with
playbooks/publish.yml (real GnuPG key), every host is bootstrapped with v1, then each round:

1. publishes the next version (new weights: the GGUF's ``general.name`` rewritten, so the file
   differs and is transferred, and loads the same) and rolls it out with upgrade.yml (canary
   first, then the rest), every task timed by the callback in bench/callback_plugins/ and
   attributed to a step (the task var ``modelops_step``, else the step the module's result
   names, else the action and role), with the seconds each step module measured itself; meanwhile
   one thread per host and endpoint polls ``/v1/models`` and a one-token completion on the
   host's published API port every 100 ms, and the longest time each host did not answer is
   its downtime;
2. runs a no-op upgrade.yml (everything already at the target), its floor (bench/noop_floor.yml:
   the release verified once on the controller and one model_info read per host, with the
   arguments the rollout's own read passed them) and ``ansible all -m ping`` over the same
   inventory, in an order that changes from round to round;
3. measures the engine's own start time on each host: ``systemctl restart modelops-inference``
   until ``/health`` answers (and until a completion answers), timed inside the host, for one
   host at a time and for the hosts of the second wave at once.

Raw results go to bench/results/orchestration.json; the text between the orchestration
markers of docs/performance.md is rewritten from them and docs/rollout.png is drawn. The
fleet is torn down and the GnuPG agents stopped at the end, also when the run fails.

Run it with ``bash bench/orchestration.sh`` (or ``bash bench/run.sh`` for every benchmark).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import _common
from _common import (REPO, SSH_BATCH_OPTIONS, Ansible, BenchError, Canvas, first_line, fleet, fmt_range, fmt_seconds, loadavg,
                     series, summary, utc_now, verdict, write_json)

RESULTS = os.path.join(REPO, "bench", "results", "orchestration.json")
PNG = os.path.join(REPO, "docs", "rollout.png")
UPGRADE = os.path.join(REPO, "playbooks", "upgrade.yml")
FLOOR = os.path.join(REPO, "bench", "noop_floor.yml")
DEMO_INVENTORY = os.path.join(REPO, "inventories", "demo")
# inventories/demo runs vLLM on its gpu_servers; this benchmark measures llama.cpp on every
# host (as the integration suite runs it), which tests/integration/inventory overlays.
LLAMACPP_OVERLAY = os.path.join(REPO, "tests", "integration", "inventory")
CALLBACKS = os.path.join(REPO, "bench", "callback_plugins")
BEGIN, END = _common.markers("orchestration")

MODEL, VARIANT = "smollm2-135m-instruct", "gguf-q4_1"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
UNIT = "modelops-inference"

# Goals from the issue.
NOOP_RATIO_GOAL = 1.5        # no-op upgrade.yml wall time / ping wall time, at most (issue 16)
DOWNTIME_SLACK_GOAL = 1.0    # downtime per host <= engine start time + this many seconds

# The steps of a rollout in the order of the docs table and the chart: key, its name in the chart, its bar colour
# (RGB) and its label in the docs.
STEPS = [
    ("startup", "start-up", (150, 150, 150), "Ansible start-up (process, inventory, playbook)"),
    ("controller", "resolve+plan", (140, 86, 75), "resolve, verify signature, plan (controller play)"),
    ("baseline", "baseline", (188, 189, 34), "baseline probes on the old version"),
    ("sync", "sync", (31, 119, 180), "sync (model_sync: transfer, verify)"),
    ("configure", "configure", (160, 203, 232), "configure the engine (inference_server prepare.yml)"),
    ("activate", "activate", (23, 190, 207), "activate (switch `current`; before model_switch)"),
    ("restart", "restart", (214, 39, 40), "restart (model_switch: switch, restart, wait until it serves)"),
    ("ready", "ready", (255, 127, 14), "ready (inference_ready gate; before model_switch)"),
    ("probe", "probes", (44, 160, 44), "probes (model_probe)"),
    ("soak", "soak", (148, 103, 189), "soak (canary pause)"),
    ("rollback", "rollback", (0, 0, 0), "rollback"),
    ("other", "other tasks", (200, 200, 200), "other per-host tasks (facts, model_info, includes)"),
    ("frozen", "frozen", (227, 119, 194), "frozen hosts (drift check)"),
    ("summary", "summary+exit", (120, 120, 120), "summary play and exit"),
]
STEP_KEYS = [step[0] for step in STEPS]
STEP_LABELS = {step[0]: step[3] for step in STEPS}

# Run inside a host: restart the engine and time it until /health, then a completion, answer.
HOST_START = r"""
import json, subprocess, time, urllib.request
def ok(url, data=None):
    try:
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200 and r.read() is not None
    except Exception:
        return False
t0 = time.time()
subprocess.run(["systemctl", "restart", "%(unit)s.service"], check=True)
t1 = time.time()
while not ok("http://127.0.0.1:8080/health"):
    time.sleep(0.02)
t2 = time.time()
body = json.dumps({"model": "%(model)s", "prompt": "1", "max_tokens": 1, "temperature": 0}).encode()
while not ok("http://127.0.0.1:8080/v1/completions", body):
    time.sleep(0.02)
t3 = time.time()
print("BENCHSTART " + json.dumps({"t0": t0, "restart_cmd_s": t1 - t0, "health_s": t2 - t0, "completion_s": t3 - t0}))
"""


def configured_callbacks():
    """The callbacks_enabled list of the checkout's ansible.cfg (the benchmark adds its own to it)."""
    cfg = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    cfg.read(os.path.join(REPO, "ansible.cfg"))
    value = cfg.get("defaults", "callbacks_enabled", fallback="") or ""
    return [c.strip() for c in value.split(",") if c.strip()]


# --------------------------------------------------------------------------- releases

def patched_weights(src, dest, tag):
    """Copy the GGUF with its general.name string rewritten (same length) to contain tag: new
    bytes, so the release's weights differ from the last one, and a model that loads the same."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    key = b"general.name"
    i = data.find(key, 0, 1 << 16)
    if i < 0 or data[i + len(key):i + len(key) + 4] != (8).to_bytes(4, "little"):
        raise BenchError("%s: no general.name string in the GGUF header; cannot make distinct releases" % src)
    length = int.from_bytes(data[i + len(key) + 4:i + len(key) + 12], "little")
    start = i + len(key) + 12
    name = ("bench %s " % tag).encode().ljust(length, b"x")[:length]
    data[start:start + length] = name
    with open(dest, "wb") as f:
        f.write(data)


def http_ok(url, body=None, timeout=2.0):
    try:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
            if resp.status != 200:
                return False
    except (urllib.error.URLError, OSError, ValueError):
        return False
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    if body is None:
        return bool(doc.get("data"))
    return bool(doc.get("choices"))


class Poller(threading.Thread):
    """Polls one endpoint of one host every interval s; keeps (start, end, ok) per request."""

    def __init__(self, host, kind, url, interval, stop):
        super().__init__(daemon=True)
        self.host, self.kind, self.url, self.interval, self.stop = host, kind, url, interval, stop
        self.body = None
        if kind == "completion":
            self.body = json.dumps({"model": MODEL, "prompt": "1", "max_tokens": 1, "temperature": 0}).encode()
        self.samples = []

    def run(self):
        nxt = time.time()
        while not self.stop.is_set():
            t0 = time.time()
            ok = http_ok(self.url, self.body)
            self.samples.append((t0, time.time(), ok))
            nxt += self.interval
            delay = nxt - time.time()
            if delay > 0:
                self.stop.wait(delay)
            else:
                nxt = time.time()


def downtime(samples, origin=0.0):
    """Longest time without an answer: the largest gap between the ends of two consecutive
    successful requests (normal polling gives about the interval; a stalled machine also shows
    here). Outages: the runs of failed requests (refused, error status, timeout), each from the
    start of its first failed request to the end of the next successful one, relative to origin."""
    oks = [end for dummy, end, ok in samples if ok]
    gaps = [b - a for a, b in zip(oks, oks[1:])]
    outages = []
    run_start = None
    for t0, t1, ok in samples:
        if not ok and run_start is None:
            run_start = t0
        elif ok and run_start is not None:
            outages.append({"start": run_start - origin, "duration_s": t1 - run_start})
            run_start = None
    if run_start is not None:
        outages.append({"start": run_start - origin, "duration_s": None})
    return {"longest_s": max(gaps) if gaps else None, "outages": len(outages), "outage_list": outages,
            "requests": len(samples), "failed": sum(1 for s in samples if not s[2]),
            "ok_first": bool(samples and samples[0][2]), "ok_last": bool(samples and samples[-1][2])}


def restart_parts(outages, restarts, origin):
    """Split the longest outage that contains an engine restart (from the unit's journal) into:
    before the stop began, the stop (Stopping -> Deactivated), systemd (-> Started), and start to
    the first successful answer; seconds, or None when the journal does not show such a restart."""
    best = None
    for o in outages:
        if o["duration_s"] is None:
            continue
        t0, t1 = origin + o["start"], origin + o["start"] + o["duration_s"]
        for r in restarts:
            if r["stopping"] is not None and r["started"] is not None and t0 - 5 <= r["stopping"] <= t1:
                if best is None or o["duration_s"] > best[0]["duration_s"]:
                    best = (o, r, t0, t1)
    if best is None:
        return None
    o, r, t0, t1 = best
    return {"outage_s": o["duration_s"], "before_stop_s": max(0.0, r["stopping"] - t0),
            "stop_s": (r["stopped"] or r["started"]) - r["stopping"], "systemd_s": r["started"] - (r["stopped"] or r["started"]),
            "start_to_answer_s": t1 - r["started"], "start_to_init_s": (r["init"] - r["started"]) if r["init"] else None}


def tasks_at(tl, host, t):
    """Names of the tasks (and handlers) host was running at time t (absolute), from the timeline."""
    out = []
    for task in tl["tasks"]:
        r = task["hosts"].get(host)
        if r and "start" in r and r["start"] <= t <= r.get("end", tl["end"]):
            out.append(("handler: " if task["handler"] else "") + task["name"])
    return out


# --------------------------------------------------------------------------- timelines

def step_spans(tl, proc_start, proc_end):
    """Wall time of one playbook run split into STEPS from the callback's timeline: each task (or
    handler) owns the time from its start to the next task's or play's start, and that span is
    credited to its step (controller / frozen / summary plays as a whole)."""
    plays = tl["plays"]
    events = sorted([(t["start"], "task", t) for t in tl["tasks"]] + [(p["start"], "play", p) for p in plays],
                    key=lambda e: e[0])
    spans = {k: 0.0 for k in STEP_KEYS}
    by_play = {}
    first_play = plays[0]["name"] if plays else None
    spans["startup"] = (plays[0]["start"] if plays else tl["end"]) - proc_start
    for i, (t, kind, obj) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else tl["end"]
        dt = max(0.0, nxt - t)
        play = obj["name"] if kind == "play" else obj["play"]
        by_play[play] = by_play.get(play, 0.0) + dt
        low = (play or "").lower()
        if play == first_play:
            step = "controller"
        elif "frozen" in low:
            step = "frozen"
        elif "summary" in low:
            step = "summary"
        elif kind == "play":
            step = "other"
        else:
            step = obj["step"] if obj["step"] in spans else "other"
        spans[step] += dt
    spans["summary"] += max(0.0, proc_end - tl["end"])
    return spans, by_play


def host_step_times(tl):
    """{host: {step: seconds}}: the time each host spent in each step's tasks (its own runs)."""
    out = {}
    for t in tl["tasks"]:
        for h, r in t["hosts"].items():
            if "start" in r and "end" in r and h != "localhost" and not r.get("expanded"):
                d = out.setdefault(h, {})
                d[t["step"]] = d.get(t["step"], 0.0) + (r["end"] - r["start"])
    return out


def host_step_own(tl):
    """({host: {step: seconds}}, {host: {step: seconds}}): what the step modules of each host's
    tasks measured of their own work (the step account each returns, module_utils/_step.py),
    and the controller's time of the same tasks (from the task's start for the host to its
    result); tasks without an account (set_fact, the soak, the configure tasks) are left out."""
    own, task = {}, {}
    for t in tl["tasks"]:
        for h, r in t["hosts"].items():
            if not isinstance(r.get("seconds"), (int, float)) or h == "localhost":
                continue
            d = own.setdefault(h, {})
            d[t["step"]] = d.get(t["step"], 0.0) + r["seconds"]
            if "start" in r and "end" in r:
                d = task.setdefault(h, {})
                d[t["step"]] = d.get(t["step"], 0.0) + (r["end"] - r["start"])
    return own, task


def host_done(tl):
    """{play: {host: seconds from the play's start to the end of the host's last task in it}}
    for the canary and batch plays: when each host was done, whether or not it waited for others."""
    starts = dict((p["name"], p["start"]) for p in tl["plays"])
    out = {}
    for t in tl["tasks"]:
        if t["play"] not in ("Canaries", "The rest, in batches, within the failure budget"):
            continue
        for h, r in t["hosts"].items():
            if "end" in r:
                d = out.setdefault(t["play"], {})
                d[h] = max(d.get(h, 0.0), r["end"] - starts[t["play"]])
    return out


def floor_args(tl):
    """{"floor_releases": [...], "floor_hosts": {host: args}}: the arguments of the run's
    model_release_info calls and of each host's first model_info call (its read), for
    bench/noop_floor.yml."""
    releases, hosts = [], {}
    for t in tl["tasks"]:
        short = (t["action"] or "").split(".")[-1]
        for h, r in t["hosts"].items():
            for a in r.get("args") or []:
                if short == "model_release_info":
                    releases.append({k: a.get(k) for k in ("repository", "model_name", "variant", "version", "allow_rollback",
                                                           "keyring", "trusted_fingerprints", "catalog")})
                elif short == "model_info" and h not in hosts:
                    hosts[h] = {k: v for k, v in a.items() if k in ("model_root", "model_name", "engine_install", "converge")
                                and v is not None}
    return {"floor_releases": releases, "floor_hosts": hosts}


def changed_tasks(tl):
    return [(t["name"], h) for t in tl["tasks"] for h, r in t["hosts"].items() if r.get("changed")]


def slowest_tasks(tl, n=8):
    """The n task spans (start to next start) that took longest, with their step."""
    events = sorted([t["start"] for t in tl["tasks"]] + [p["start"] for p in tl["plays"]] + [tl["end"]])
    out = []
    for t in tl["tasks"]:
        later = [e for e in events if e > t["start"]]
        dt = (later[0] if later else tl["end"]) - t["start"]
        out.append({"name": t["name"], "play": t["play"], "step": t["step"], "handler": t["handler"], "span_s": dt,
                    "hosts": len(t["hosts"])})
    return sorted(out, key=lambda x: -x["span_s"])[:n]


# --------------------------------------------------------------------------- the benchmark

class Bench(object):
    def __init__(self, args, run_dir, log):
        self.args = args
        self.run_dir = run_dir
        self.log = log
        self.state = None
        self.hosts = {}
        self.keys = None
        self.ansible = None
        self.artifacts = None
        self.versions = []
        self.repo = os.path.join(run_dir, "repo")
        self.catalog = os.path.join(run_dir, "registry.db")
        self.vars_file = os.path.join(run_dir, "upgrade-vars.json")
        # the arguments of the last rollout's reads (floor_args), for bench/noop_floor.yml
        self.floor_args = None

    # ---------------------------------------------------------------- set-up

    def up(self):
        name = self.args.fleet_name
        fleet("down", "--name", name, check=False)  # a clean fleet: leftovers of a killed run go
        self.log("bringing up fleet %s from %s, ports +%d" % (name, self.args.inventory, self.args.port_offset))
        for attempt in range(3):
            # A host's systemd sometimes stalls at boot on this loaded machine (sshd never starts):
            # start the fleet afresh and try again.
            inv_args = []
            for inv in self.args.inventory:
                inv_args += ["--inventory", inv]
            proc = fleet("up", "--name", name, *inv_args, "--port-offset",
                         str(self.args.port_offset), check=attempt == 2)
            if proc.returncode == 0:
                break
            self.log("fleet up, attempt %d: %s" % (attempt + 1, " ".join(proc.stderr.strip().splitlines()[-1:])))
            if not self.unstick(name):
                self.log("starting the fleet afresh")
                fleet("down", "--name", name, check=False)
        self.state = json.loads(proc.stdout)
        self.hosts = {h: self.state["hosts"][h] for h in sorted(self.state["hosts"])}
        self.ansible = Ansible(list(self.args.inventory) + [self.state["inventory"]], self.log, name)
        proc, dummy = self.ansible.adhoc("all", "ansible.builtin.ping", "")
        _common.check_all_ok(proc.stdout, list(self.hosts), "ping")

    def unstick(self, name):
        """Seen on this machine under load: a host's systemd stops processing its boot jobs (every
        job "waiting", none running, sshd never started); `systemctl daemon-reexec` lets the boot
        finish. Done only in this fleet's own containers (from fleet.py's state); True if any was."""
        state = json.loads(fleet("status", "--name", name).stdout)
        done = False
        for h in state.get("hosts", {}).values():
            probe = subprocess.run(["podman", "exec", h["id"], "systemctl", "is-system-running"], capture_output=True,
                                   text=True, timeout=60, check=False)
            if probe.stdout.strip() in ("initializing", "starting"):
                self.log("host %s: systemd stalled at boot (%s); systemctl daemon-reexec" % (h["name"], probe.stdout.strip()))
                subprocess.run(["podman", "exec", h["id"], "systemctl", "daemon-reexec"], capture_output=True, timeout=60,
                               check=False)
                done = True
        return done

    def publish(self, version, seq):
        src = os.path.join(self.run_dir, "src-%s" % version)
        os.makedirs(src)
        patched_weights(self.artifacts["model_file"], os.path.join(src, GGUF), version)
        with open(os.path.join(src, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"release": version, "temperature": 0.2}, f)
        dummy, wall = _common.publish(self.ansible, self.keys, src, self.repo, "%s-%s-%s" % (MODEL, version, VARIANT), seq,
                                      os.path.join(self.run_dir, "publisher.db"),
                                      os.path.join(self.run_dir, "publish-%s.json" % version))
        shutil.rmtree(src)
        self.versions.append(version)
        self.log("published %s-%s-%s (sequence %d) in %.1f s" % (MODEL, version, VARIANT, seq, wall))

    def probe_suite(self):
        """The probe suite of the rollouts: the shipped one named by --probe-suite, or ("smoke-bench")
        the shipped smoke suite with a latency-vs-baseline factor of --latency-factor."""
        if self.args.probe_suite != "smoke-bench":
            return self.args.probe_suite
        import yaml  # pylint: disable=import-outside-toplevel
        with open(os.path.join(REPO, "probe_suites", "smoke.yml"), encoding="utf-8") as f:
            suite = yaml.safe_load(f)
        for probe in suite["probes"]:
            for check in probe.get("assert", []):
                if "latency_vs_baseline" in check:
                    check["latency_vs_baseline"] = dict(check["latency_vs_baseline"] or {}, factor=self.args.latency_factor)
        suite["name"] = "smoke-bench"
        path = os.path.join(self.run_dir, "smoke-bench.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(suite, f, sort_keys=False)
        return path

    def write_vars(self, pinned):
        with open(self.vars_file, "w", encoding="utf-8") as f:
            json.dump({"model_repository": self.repo, "model_keyring": [self.keys.publisher.public],
                       "model_trusted_fingerprints": [self.keys.publisher.fingerprint], "model_catalog": self.catalog,
                       "inference_server_llamacpp_binary_src": self.artifacts["llama_server"],
                       "model_pinned_version": pinned, "model_probe_suite": self.probe_suite()}, f)

    def upgrade(self, *extra, timeline=None):
        """One timed ansible-playbook upgrade.yml; returns (proc, wall, start, end, timeline)."""
        env = {}
        if timeline:
            # Keep the callbacks ansible.cfg enables (what a user's run pays for) and add ours.
            env.update({"ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
                        "ANSIBLE_CALLBACKS_ENABLED": ",".join(configured_callbacks() + ["bench_timeline"]),
                        "BENCH_TIMELINE_FILE": timeline})
        for ev in self.args.extra_vars or []:
            extra = extra + ("-e", ev)
        start = time.time()
        proc, wall = self.ansible.playbook(UPGRADE, self.vars_file, env=env, check=False, args=list(extra))
        end = time.time()
        if proc.returncode != 0:
            raise BenchError("upgrade.yml %s failed (rc=%d):\n%s\n%s" % (
                " ".join(extra), proc.returncode, proc.stdout[-5000:], proc.stderr[-2000:]))
        tl = None
        if timeline:
            with open(timeline, encoding="utf-8") as f:
                tl = json.load(f)
        return proc, wall, start, end, tl

    def currents(self):
        out, dummy = self.ansible.shell("all", "readlink /srv/models/%s/current || echo none" % MODEL)
        return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", out, re.M))

    def check_currents(self, want_version, frozen_version):
        got = self.currents()
        want = {h: "%s/%s" % (frozen_version if "critical" in self.hosts[h]["groups"] else want_version, VARIANT)
                for h in self.hosts}
        if got != want:
            raise BenchError("after the rollout of %s the hosts serve %r, expected %r" % (want_version, got, want))

    def bootstrap(self):
        v1 = self.versions[0]
        self.write_vars(v1)
        self.log("bootstrap: every host gets %s (policy immediate)" % v1)
        dummy, wall, dummy2, dummy3, dummy4 = self.upgrade("-e", "model_version=%s" % v1, "-e", "model_upgrade_policy=immediate")
        self.check_currents(v1, v1)
        self.log("bootstrap took %.1f s" % wall)
        return wall

    # ---------------------------------------------------------------- measurements

    def rollout(self, rnd, version):
        """Roll version out (canary, then the rest) with every host's API polled; returns a sample."""
        stop = threading.Event()
        pollers = []
        for h, info in self.hosts.items():
            base = "http://127.0.0.1:%d" % info["api_port"]
            pollers.append(Poller(h, "models", base + "/v1/models", self.args.poll_interval, stop))
            pollers.append(Poller(h, "completion", base + "/v1/completions", self.args.poll_interval, stop))
        for p in pollers:
            p.start()
        time.sleep(1.0)  # every host answers before the rollout starts
        tl_path = os.path.join(self.run_dir, "timeline-rollout-%d.json" % rnd)
        try:
            proc, wall, start, end, tl = self.upgrade(timeline=tl_path)
        finally:
            time.sleep(1.0)
            stop.set()
            for p in pollers:
                p.join(10)
        self.check_currents(version, self.versions[0])
        spans, by_play = step_spans(tl, start, end)
        journal = {}
        for h in self.upgraded_hosts():
            try:
                journal[h] = self.engine_journal(h, start)
            except Exception as e:  # pylint: disable=broad-except
                journal[h] = {"error": str(e)[:500]}
        down = {}
        for p in pollers:
            d = downtime(p.samples, start)
            for o in d["outage_list"]:
                o["tasks"] = tasks_at(tl, p.host, start + o["start"])
            if p.kind == "completion" and isinstance(journal.get(p.host), list):
                d["restart"] = restart_parts(d["outage_list"], journal[p.host], start)
            down.setdefault(p.host, {})[p.kind] = d
        self.floor_args = floor_args(tl)
        done = host_done(tl)
        own, accounted = host_step_own(tl)
        return {"round": rnd, "version": version, "start_epoch": start, "wall_s": wall, "spans": spans, "plays": by_play,
                "journal": journal, "host_done": done,
                "host_steps": host_step_times(tl), "host_own": own, "host_accounted": accounted,
                "slowest": slowest_tasks(tl), "downtime": down,
                "step_sources": sorted(set("%s:%s" % (t["step"], t["step_source"]) for t in tl["tasks"])),
                "ok_summary": bool(re.search(r"upgraded", proc.stdout))}

    def noop(self, rnd):
        tl_path = os.path.join(self.run_dir, "timeline-noop-%d.json" % rnd)
        proc, wall, start, end, tl = self.upgrade(timeline=tl_path)
        spans, by_play = step_spans(tl, start, end)
        changed = changed_tasks(tl)
        recap = re.findall(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)", proc.stdout, re.M)
        tasks_per_host = {}
        for t in tl["tasks"]:
            for h in t["hosts"]:
                tasks_per_host[h] = tasks_per_host.get(h, 0) + 1
        return {"round": rnd, "wall_s": wall, "spans": spans, "plays": by_play, "changed": changed,
                "recap_changed": {h: int(c) for h, dummy, c in recap}, "tasks_per_host": tasks_per_host,
                "host_steps": host_step_times(tl), "slowest": slowest_tasks(tl, 12)}

    def floor(self, rnd):
        """bench/noop_floor.yml with the reads of this round's rollout (same release, same arguments)."""
        if not self.floor_args:
            raise BenchError("no model_info / model_release_info arguments were recorded from the rollout")
        path = os.path.join(self.run_dir, "floor-vars-%d.json" % rnd)
        write_json(path, self.floor_args)
        proc, wall = self.ansible.playbook(FLOOR, path, check=False)
        if proc.returncode != 0:
            raise BenchError("noop_floor.yml failed (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-5000:], proc.stderr[-2000:]))
        return {"round": rnd, "wall_s": wall}

    def ping(self, rnd):
        proc, wall = self.ansible.adhoc("all", "ansible.builtin.ping", "")
        _common.check_all_ok(proc.stdout, list(self.hosts), "ping")
        return {"round": rnd, "wall_s": wall}

    def ssh(self, host, script):
        info = self.hosts[host]
        cmd = (["ssh", "-i", self.state["key"], "-p", str(info["ssh_port"])] + SSH_BATCH_OPTIONS
               + ["-o", "ControlMaster=no", "-o", "ControlPath=none", "root@127.0.0.1", "python3", "-"])
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def engine_start(self, hosts):
        """Restart the engine on hosts at the same moment; its start time on each, timed inside the host."""
        script = HOST_START % {"unit": UNIT, "model": MODEL}
        procs = {h: self.ssh(h, script) for h in hosts}
        out = {}
        for h, p in procs.items():
            stdout, stderr = p.communicate(script, timeout=600)
            m = re.search(r"^BENCHSTART (.*)$", stdout, re.M)
            if p.returncode != 0 or not m:
                raise BenchError("engine restart on %s failed (rc=%d): %s %s" % (h, p.returncode, stdout[-1000:], stderr[-1000:]))
            out[h] = json.loads(m.group(1))
        return out

    def engine_journal(self, host, since):
        """The engine unit's stops and starts since the epoch time since, from the host's journal:
        [{"stopping": t, "stopped": t, "started": t, "init": t}] (absolute times, None when missing)."""
        cmd = ("journalctl -u %s.service -o short-unix --no-pager --since @%d | "
               "grep -E 'Stopping |Deactivated successfully|Started |threadpool init' || true" % (UNIT, int(since) - 1))
        script = "import subprocess, sys\nsys.stdout.write(subprocess.run(%r, shell=True, capture_output=True, text=True).stdout)\n" % cmd
        stdout, dummy = self.ssh(host, script).communicate(script, timeout=120)
        restarts = []
        for line in stdout.splitlines():
            m = re.match(r"^(\d+\.\d+) ", line)
            if not m:
                continue
            t = float(m.group(1))
            if "Stopping " in line:
                restarts.append({"stopping": t, "stopped": None, "started": None, "init": None})
            elif not restarts:
                continue
            elif "Deactivated successfully" in line and restarts[-1]["stopped"] is None:
                restarts[-1]["stopped"] = t
            elif "Started " in line and restarts[-1]["started"] is None:
                restarts[-1]["started"] = t
            elif "threadpool init" in line and restarts[-1]["init"] is None:
                restarts[-1]["init"] = t
        return restarts

    def start_times(self, rnd, wave2):
        alone = {}
        for h in self.upgraded_hosts():
            alone[h] = self.engine_start([h])[h]
        together = self.engine_start(wave2)
        return {"round": rnd, "alone": alone, "wave2": together}

    def upgraded_hosts(self):
        return [h for h in self.hosts if "critical" not in self.hosts[h]["groups"]]


# --------------------------------------------------------------------------- analysis

def analyse(res):
    an = {}
    rounds = res["rounds"]
    noop = [r["noop"] for r in rounds if r.get("noop")]
    ping = [r["ping"] for r in rounds if r.get("ping")]
    floor = [r["floor"] for r in rounds if r.get("floor")]
    n_hosts = len(res["hosts"])
    if noop and ping:
        nw, pw = summary(series(noop)), summary(series(ping))
        ratio = nw["median"] / pw["median"]
        an["noop"] = {"noop_wall_s": nw, "ping_wall_s": pw, "ratio": ratio, "goal_met": ratio <= NOOP_RATIO_GOAL,
                      "per_host_overhead_s": (nw["median"] - pw["median"]) / n_hosts,
                      "needed_s": pw["median"] * NOOP_RATIO_GOAL,
                      "spans": {k: summary([r["spans"][k] for r in noop]) for k in STEP_KEYS},
                      "changed": sorted(set("%s on %s" % (t, h) for r in noop for t, h in r["changed"])),
                      "tasks_per_host": noop[-1]["tasks_per_host"],
                      "plays": {k: summary([r["plays"].get(k, 0.0) for r in noop]) for k in noop[-1]["plays"]}}
        slow = {}
        for r in noop:
            for t in r["slowest"]:
                slow.setdefault((t["play"], t["name"], t["step"]), []).append(t["span_s"])
        an["noop"]["slowest"] = sorted(({"play": k[0], "name": k[1], "step": k[2], "span_s": summary(v)}
                                        for k, v in slow.items() if len(v) >= max(1, len(noop) // 2)),
                                       key=lambda x: -x["span_s"]["median"])[:10]
        host_sum = {}
        for r in noop:
            for h, steps in r["host_steps"].items():
                host_sum.setdefault(h, []).append(sum(steps.values()))
        an["noop"]["host_task_s"] = {h: summary(v) for h, v in host_sum.items()}
        if floor:
            fw = summary(series(floor))
            an["noop"]["floor_wall_s"] = fw
            an["noop"]["floor_ratio"] = fw["median"] / pw["median"]
            an["noop"]["over_floor"] = nw["median"] / fw["median"]
    ro = [r["rollout"] for r in rounds if r.get("rollout")]
    if ro:
        walls = summary(series(ro))
        spans = {k: summary([r["spans"][k] for r in ro]) for k in STEP_KEYS}
        groups = {"sync": ["sync"], "restart+ready": ["restart", "ready"], "probes": ["probe", "baseline"], "soak": ["soak"]}
        grouped = {g: summary([sum(r["spans"][k] for k in ks) for r in ro]) for g, ks in groups.items()}
        grouped["everything else"] = summary([r["wall_s"] - sum(r["spans"][k] for ks in groups.values() for k in ks)
                                              for r in ro])
        plays = {}
        for r in ro:
            for k, v in r["plays"].items():
                plays.setdefault(k, []).append(v)
        host_steps = {}
        for r in ro:
            for h, steps in r["host_steps"].items():
                for k, v in steps.items():
                    host_steps.setdefault(h, {}).setdefault(k, []).append(v)
        done = {}
        for r in ro:
            for play, d in (r.get("host_done") or {}).items():
                for h, v in d.items():
                    done.setdefault(play, {}).setdefault(h, []).append(v)
        own = {}
        for r in ro:
            for h, steps in (r.get("host_own") or {}).items():
                for k, v in steps.items():
                    task = (r.get("host_accounted") or {}).get(h, {}).get(k)
                    own.setdefault(h, {}).setdefault(k, []).append((v, task))
        an["rollout"] = {"wall_s": walls, "spans": spans, "grouped": grouped,
                         "host_own": {h: {k: {"own_s": summary([a for a, b in v]),
                                              "task_s": summary([b for a, b in v if b is not None]),
                                              "overhead_s": summary([b - a for a, b in v if b is not None])}
                                          for k, v in d.items()} for h, d in own.items()},
                         "host_done": {play: {h: summary(v) for h, v in d.items()} for play, d in done.items()},
                         "plays": {k: summary(v) for k, v in plays.items()},
                         "host_steps": {h: {k: summary(v) for k, v in d.items()} for h, d in host_steps.items()},
                         "step_sources": sorted(set(s for r in ro for s in r["step_sources"]))}
    st = [r["start"] for r in rounds if r.get("start")]
    if st:
        alone, wave2 = {}, {}
        for r in st:
            for h, v in r["alone"].items():
                alone.setdefault(h, []).append(v)
            for h, v in r["wave2"].items():
                wave2.setdefault(h, []).append(v)

        def block(d):
            return {h: {k: summary([x[k] for x in v]) for k in ("health_s", "completion_s", "restart_cmd_s")}
                    for h, v in d.items()}
        an["start"] = {"alone": block(alone), "wave2": block(wave2),
                       "alone_all": {k: summary([x[k] for v in alone.values() for x in v]) for k in ("health_s", "completion_s")},
                       "wave2_all": {k: summary([x[k] for v in wave2.values() for x in v]) for k in ("health_s", "completion_s")}}
    if ro and st:
        dt = {}
        canary = set(res["canary_hosts"])
        for h in res["hosts"]:
            per = {}
            for kind in ("models", "completion"):
                per[kind] = summary([r["downtime"][h][kind]["longest_s"] for r in ro if r["downtime"].get(h)])
            outages = [r["downtime"][h]["completion"]["outages"] for r in ro if r["downtime"].get(h)]
            where = {}
            for r in ro:
                for o in (r["downtime"].get(h, {}).get("completion", {}).get("outage_list") or []):
                    key = " / ".join(o.get("tasks") or ["between tasks"])
                    where.setdefault(key, []).append(o["duration_s"] or 0.0)
            parts = [r["downtime"][h]["completion"].get("restart") for r in ro if r["downtime"].get(h)]
            parts = [x for x in parts if x]
            if parts:
                entry_parts = {k: summary([x[k] for x in parts if x.get(k) is not None])
                               for k in ("outage_s", "before_stop_s", "stop_s", "systemd_s", "start_to_answer_s", "start_to_init_s")}
            else:
                entry_parts = None
            entry = {"models": per["models"], "completion": per["completion"], "outages": outages, "restart_parts": entry_parts,
                     "outage_tasks": sorted(([k, summary(v)] for k, v in where.items()), key=lambda kv: -kv[1]["max"])}
            if h in res["frozen_hosts"]:
                entry["wave"] = "frozen"
            else:
                entry["wave"] = "canary" if h in canary else "second wave"
                ref = an["start"]["alone" if h in canary else "wave2"].get(h) or an["start"]["alone"].get(h)
                start_s = ref["health_s"]["median"]
                entry["start_health_s"] = start_s
                entry["start_completion_s"] = ref["completion_s"]["median"]
                entry["start_alone_s"] = an["start"]["alone"][h]["health_s"]["median"]
                entry["limit_s"] = start_s + DOWNTIME_SLACK_GOAL
                worst = per["completion"]["median"]
                entry["goal_met"] = worst <= entry["limit_s"]
                entry["excess_s"] = worst - entry["limit_s"]
            dt[h] = entry
        an["downtime"] = dt
    return an


# --------------------------------------------------------------------------- chart

def draw_chart(path, ro):
    """Horizontal bars: median wall time of each step of a rollout, min–max whiskers, labels."""
    rows = [(k, name, rgb, ro["spans"][k]) for k, name, rgb, dummy in STEPS if ro["spans"][k] and ro["spans"][k]["max"] > 0.05]
    rows.append(("total", "total", (0, 0, 0), ro["wall_s"]))
    scale = 2
    row_h, left, right, top, bottom = 34, 190, 150, 40, 40
    width = 900
    height = top + bottom + row_h * len(rows)
    step, top_value = _common.chart_axis(max(r[3]["max"] for r in rows), 1.05)
    c = Canvas(width, height)
    plot_w = width - left - right

    def x_of(v):
        return int(round(left + v / top_value * plot_w))

    c.text(10, 10, "rollout v(n) to v(n+1), 6 hosts: median s per step (whiskers min-max)", scale=scale)
    v = 0.0
    while v <= top_value + 1e-9:
        c.rect(x_of(v), top, x_of(v) + 1, height - bottom, (215, 215, 215))
        c.text(x_of(v) - Canvas.text_width("%g" % v, scale) // 2, height - bottom + 8, "%g" % v, (90, 90, 90), scale)
        v += step
    for i, (key, name, rgb, s) in enumerate(rows):
        y0 = top + i * row_h + 6
        y1 = y0 + row_h - 12
        c.text(10, y0 + 4, name, scale=scale)
        c.rect(left, y0, x_of(s["median"]), y1, rgb)
        mid = (y0 + y1) // 2
        c.rect(x_of(s["min"]), mid - 1, x_of(s["max"]) + 1, mid + 1, (0, 0, 0) if key != "total" else (120, 120, 120))
        for val in (s["min"], s["max"]):
            c.rect(x_of(val) - 1, mid - 5, x_of(val) + 1, mid + 6, (0, 0, 0) if key != "total" else (120, 120, 120))
        c.text(max(x_of(s["max"]), x_of(s["median"])) + 8, y0 + 4, "%.1f" % s["median"], scale=scale)
    c.rect(left - 2, top, left, height - bottom, (0, 0, 0))
    c.save(path)
    return {"step_s": step, "top_s": top_value, "rows": [r[0] for r in rows]}


# --------------------------------------------------------------------------- report

def render(res, an, doc_path, png_path):
    m = res["machine"]
    p = res["params"]
    rel_png = _common.doc_link(doc_path, png_path)
    n_hosts = len(res["hosts"])
    lines = _common.section_head(BEGIN, "Orchestration and downtime", "orchestration_bench.py", res["started"], res["duration_s"],
                                 "orchestration.sh") + [
        "What a rollout with `playbooks/upgrade.yml` costs on a fleet shaped like `inventories/demo` (%d hosts: %s), "
        "next to the cheapest thing Ansible can do on the same hosts (`ansible all -m ping`), and how long each host "
        "does not answer during a rollout next to the engine's own start time. %d rounds; each round rolls a new "
        "release out (canary first, then the rest) while every host's API is polled, then runs a no-op upgrade and a "
        "ping run in alternating order, then restarts the engine on each host to time its start. Tables give medians "
        "over the rounds." % (n_hosts, res["fleet_shape"], p["rounds"]),
        "",
        "**This machine is shared**: other people's test fleets run on its %d CPUs at the same time (load average %s at "
        "the start, %s at the end), and the %d hosts here are containers on the same CPUs as the controller. Absolute "
        "times are inflated and noisy; compare the ratios measured side by side in the same rounds, and see the min–max "
        "columns." % (m["nproc"], " ".join(res["load_start"]), " ".join(res["load_end"]), n_hosts),
        "",
    ] + _common.machine_table(m, res, [
        ("Controller", "Python %s, %s, %s" % (m["python"], m["ansible_core"], m["openssh"])),
        ("Hosts", "%d podman containers (%s) booting systemd + sshd, Debian 12, llama.cpp `llama-server` on CPU "
                  "(1 thread) serving SmolLM2-135M-Instruct Q4_1 (%.0f MB)" % (n_hosts, m["podman"], res["weights_bytes"] / 1e6)),
    ]) + [
        "",
        "### Results",
        "",
        "| Measurement | Ours (median) | Reference (median) | Ratio | Goal | Result |",
        "|---|---|---|---|---|---|",
    ]
    no = an.get("noop")
    if no:
        lines.append("| No-op `upgrade.yml` (all at the target) vs `ansible all -m ping`, %d hosts | %s | %s | %.2f × | ≤ %.2f × | %s |" % (
            n_hosts, fmt_seconds(no["noop_wall_s"]["median"]), fmt_seconds(no["ping_wall_s"]["median"]), no["ratio"], NOOP_RATIO_GOAL,
            verdict(no["goal_met"])))
        lines.append("| Per-host overhead of the no-op upgrade over ping ((upgrade − ping) / %d hosts) | %s | — | — | (context) | — |" % (
            n_hosts, fmt_seconds(no["per_host_overhead_s"])))
        if no.get("floor_wall_s"):
            lines.append("| Floor of a no-op (`bench/noop_floor.yml`: verify once, one read per host) vs ping | %s | %s | %.2f × | "
                         "(the floor) | — |" % (fmt_seconds(no["floor_wall_s"]["median"]), fmt_seconds(no["ping_wall_s"]["median"]),
                                                no["floor_ratio"]))
            lines.append("| No-op `upgrade.yml` vs its floor | %s | %s | %.2f × | (report) | — |" % (
                fmt_seconds(no["noop_wall_s"]["median"]), fmt_seconds(no["floor_wall_s"]["median"]), no["over_floor"]))
    ro = an.get("rollout")
    if ro:
        g = ro["grouped"]
        lines.append("| Canary rollout v(n) → v(n+1), wall time | %s | — | sync %s, restart+ready %s, probes %s, soak %s, "
                     "everything else %s | (report) | — |" % (
                         fmt_seconds(ro["wall_s"]["median"]), fmt_seconds(g["sync"]["median"]), fmt_seconds(g["restart+ready"]["median"]),
                         fmt_seconds(g["probes"]["median"]), fmt_seconds(g["soak"]["median"]), fmt_seconds(g["everything else"]["median"])))
    dt = an.get("downtime")
    if dt:
        for h, e in dt.items():
            if e["wave"] == "frozen":
                lines.append("| Downtime of %s (frozen, not upgraded: the control) | %s | — | — | no outage | %s |" % (
                    h, fmt_seconds(e["completion"]["median"]), verdict(max(e["outages"] or [0]) == 0)))
                continue
            lines.append("| Downtime of %s (%s), completion | %s (max %s) | engine start (restart → `/health`, %s): %s | "
                         "%.2f × | ≤ start + %.1f s = %s | %s |" % (
                             h, e["wave"], fmt_seconds(e["completion"]["median"]), fmt_seconds(e["completion"]["max"]),
                             "alone" if e["wave"] == "canary" else "the second wave's hosts at once",
                             fmt_seconds(e["start_health_s"]), e["completion"]["median"] / e["start_health_s"],
                             DOWNTIME_SLACK_GOAL, fmt_seconds(e["limit_s"]), verdict(e["goal_met"])))
    if ro:
        lines += ["", "### Rollout time per step", "",
                  "Wall time of one rollout split by step: each task (and handler) owns the time from its start to the "
                  "next task's start (the canary and batch plays run with the `free` strategy: there a task starts once for "
                  "each host, and the time goes to the step the controller handed out last), so the steps add up to the "
                  "whole `ansible-playbook` run. The per-host table below is exact either way. Steps come from the task var "
                  "`modelops_step` where the role sets it (the soak, the configure tasks, the re-probe after a rollback), "
                  "else from the step the module's result names (its `step` account: `model_sync` → sync, `model_switch` → "
                  "restart, `model_probe` → probe or baseline, ...), else from the action and the `inference_server` role → "
                  "restart; seen in these runs (step:source): %s." % ", ".join("`%s`" % s for s in ro["step_sources"]), "",
                  "| Step | Median | Min–max | Share of the median total |", "|---|---|---|---|"]
        total = ro["wall_s"]["median"]
        for k, dummy, dummy2, label in STEPS:
            s = ro["spans"][k]
            if not s or s["max"] <= 0.0:
                continue
            lines.append("| %s | %s | %s | %.0f%% |" % (label, fmt_seconds(s["median"]), fmt_range(s), 100 * s["median"] / total))
        lines.append("| **total** (wall time of `ansible-playbook`) | %s | %s | 100%% |" % (fmt_seconds(total), fmt_range(ro["wall_s"])))
        plays = ro["plays"]
        lines += ["", "By play: %s." % "; ".join("%s %s" % (k, fmt_seconds(v["median"])) for k, v in plays.items())]
        hs = ro["host_steps"]
        if hs:
            steps_seen = [k for k in STEP_KEYS if any(k in d for d in hs.values())]
            lines += ["", "Time each host spent in each step's tasks (median over the rounds; per host, so not additive "
                      "across hosts):", "",
                      "| Host | " + " | ".join(steps_seen) + " |", "|---|" + "---|" * len(steps_seen)]
            for h in sorted(hs):
                lines.append("| %s | %s |" % (h, " | ".join(fmt_seconds(hs[h][k]["median"]) if k in hs[h] else "—" for k in steps_seen)))
        ho = ro.get("host_own") or {}
        if ho:
            seen = set(k for d in ho.values() for k in d)
            cols = [k for k in STEP_KEYS if k in seen] + sorted(k for k in seen if k not in STEP_KEYS)
            lines += ["", "What the step modules measured of their own work (the `step` account each returns: on the host, "
                      "or the whole action for the action plugins, whose module round trips are inside it) against the "
                      "time of the same tasks on the controller; the difference is Ansible's part of each round trip "
                      "(templating, the connection, the module's transfer, start and argument parsing). Medians over the "
                      "rounds, seconds: own / task (overhead):", "",
                      "| Host | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            for h in sorted(ho):
                lines.append("| %s | %s |" % (h, " | ".join(
                    "%s / %s (%s)" % tuple(fmt_seconds(ho[h][k][x]["median"]) if ho[h][k][x] else "—"
                                           for x in ("own_s", "task_s", "overhead_s")) if k in ho[h] else "—"
                    for k in cols)))
        chart = res.get("chart")
        if chart:
            lines += ["", "![Rollout time per step](%s)" % rel_png, "",
                      "_The chart: median wall time of each step over the rounds, one bar per step, black whiskers "
                      "min–max; the last bar is the whole run. Grid every %g s._" % chart["step_s"]]
    if dt and an.get("start"):
        st = an["start"]
        lines += ["", "### Downtime per host", "",
                  "Longest time without a successful answer during the rollout, from two threads per host polling its "
                  "published API port every %.0f ms (`GET /v1/models`; `POST /v1/completions` with one token): the "
                  "largest gap between two consecutive successful answers, so about %.0f ms is normal and the resolution "
                  "is one polling interval. Engine start time: `systemctl restart %s` until `/health` answers (and until a "
                  "one-token completion answers), timed inside the host, each upgraded host alone and the second wave's "
                  "%d hosts at once (as the rollout restarts them)." % (
                      p["poll_interval"] * 1000, p["poll_interval"] * 1000, UNIT, len(res["wave2_hosts"])), "",
                  "| Host | Wave | Downtime `/v1/models` | Downtime completion | Outages (runs of failed completions) per rollout | Start alone → `/health` | "
                  "→ completion | Start in its wave → `/health` | Goal (start + %.0f s) | Result |" % DOWNTIME_SLACK_GOAL,
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for h, e in dt.items():
            a = st["alone"].get(h)
            w = st["wave2"].get(h)
            lines.append("| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s |" % (
                h, e["wave"], fmt_seconds(e["models"]["median"]), fmt_seconds(e["completion"]["median"]), fmt_range(e["completion"]),
                ", ".join(str(o) for o in e["outages"]),
                fmt_seconds(a["health_s"]["median"]) if a else "—", fmt_seconds(a["completion_s"]["median"]) if a else "—",
                fmt_seconds(w["health_s"]["median"]) if w else ("(alone)" if a else "—"),
                fmt_seconds(e["limit_s"]) if "limit_s" in e else "—",
                verdict(e["goal_met"]) if "goal_met" in e else "—"))
    if dt and any(e.get("restart_parts") for e in dt.values()):
        lines += ["", "The restart outage from the engine unit's journal on the host (`journalctl -u %s`: `Stopping`, "
                  "`Deactivated`, `Started`, llama-server's `threadpool init` while it loads), matched to the outage that "
                  "contains the stop; medians over the rounds:" % UNIT, "",
                  "| Host | Outage | Failing before the stop | Stop (Stopping → Deactivated) | systemd (→ Started) | "
                  "Started → first answer | of which Started → `threadpool init` | Engine start alone (restart → `/health`) |",
                  "|---|---|---|---|---|---|---|---|"]
        for h, e in dt.items():
            rp = e.get("restart_parts")
            if not rp:
                continue
            a = an["start"]["alone"].get(h)

            def cell(k, rp=rp):
                return fmt_seconds(rp[k]["median"]) if rp.get(k) else "—"
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                h, cell("outage_s"), cell("before_stop_s"), cell("stop_s"), cell("systemd_s"), cell("start_to_answer_s"),
                cell("start_to_init_s"), fmt_seconds(a["health_s"]["median"]) if a else "—"))
    return _common.section_text(lines, notes(res, an), commands(res), "orchestration", END)


def notes(res, an):
    out = []
    n_hosts = len(res["hosts"])
    no = an.get("noop")
    if no:
        text = ("No-op upgrade: `upgrade.yml` with every host already at the target takes %.2f × the time of `ansible all "
                "-m ping` over the same %d hosts and inventory (%s against %s), %s per host more. " % (
                    no["ratio"], n_hosts, fmt_seconds(no["noop_wall_s"]["median"]), fmt_seconds(no["ping_wall_s"]["median"]),
                    fmt_seconds(no["per_host_overhead_s"])))
        if no["goal_met"]:
            text += "Within the goal of %.1f ×. " % NOOP_RATIO_GOAL
        else:
            text += ("**Misses** the goal of %.1f ×: it would have to finish in %s, %s (%.0f%%) less. " % (
                NOOP_RATIO_GOAL, fmt_seconds(no["needed_s"]), fmt_seconds(no["noop_wall_s"]["median"] - no["needed_s"]),
                100 * (no["noop_wall_s"]["median"] - no["needed_s"]) / no["noop_wall_s"]["median"]))
        sp = no["spans"]
        parts = ["%s %s" % (STEP_LABELS[k].split(" (")[0], fmt_seconds(sp[k]["median"])) for k in STEP_KEYS
                 if sp[k] and sp[k]["median"] >= 0.05]
        text += ("Why: a ping run is one module round trip per host; the no-op upgrade is the whole rollout with nothing "
                 "to do, in %d plays that run one after the other, with these task and handler runs per host: %s; its time "
                 "splits into %s." % (
                     len(no["plays"]), ", ".join("%s %d" % (h, v) for h, v in sorted(no["tasks_per_host"].items())),
                     ", ".join(parts)))
        out.append(text)
        if no.get("floor_wall_s"):
            fw = no["floor_wall_s"]
            out.append(
                "The floor: `bench/noop_floor.yml` does only what a no-op cannot skip and still know that every host serves "
                "the release: Ansible's start-up, the release's signature verified once on the controller "
                "(`model_release_info`), and one `model_info` read per host with the arguments the rollout's own read passed "
                "(the release's files checked against the signed manifest through the hash cache, `current`, the engine "
                "started from the release and answering one short completion, the installation, the lock, the metrics). It "
                "takes %s (%s–%s), %.2f × ping: %s. The no-op upgrade.yml is %.2f × its floor; the rest is the plan, the "
                "policy plays, the reports and the summary." % (
                    fmt_seconds(fw["median"]), fmt_seconds(fw["min"]), fmt_seconds(fw["max"]), no["floor_ratio"],
                    "the goal of %.1f × is below what one verified read per host costs here" % NOOP_RATIO_GOAL
                    if no["floor_ratio"] > NOOP_RATIO_GOAL else "the goal is above the floor", no["over_floor"]))
        if no["slowest"]:
            out.append("The no-op's slowest tasks (wall time from the task's start to the next, median): %s." % "; ".join(
                "%s (%s, %s) %s" % (t["name"], t["play"], t["step"], fmt_seconds(t["span_s"]["median"])) for t in no["slowest"][:8]))
        if no["changed"]:
            out.append("**The no-op upgrade reported changes**, which a no-op should not: %s." % ", ".join(no["changed"][:10]))
        else:
            out.append("The no-op upgrade changed nothing on any host (every task ok or skipped, `changed=0`).")
    ro = an.get("rollout")
    if ro:
        g = ro["grouped"]
        total = ro["wall_s"]["median"]
        out.append("Rollout: %s in all (median); sync %s (%.0f%%), restart+ready %s (%.0f%%), probes %s (%.0f%%), soak %s "
                   "(%.0f%%), everything else (Ansible start-up, the controller play, bookkeeping tasks, the frozen and "
                   "summary plays) %s (%.0f%%)." % (
                       fmt_seconds(total), fmt_seconds(g["sync"]["median"]), 100 * g["sync"]["median"] / total,
                       fmt_seconds(g["restart+ready"]["median"]), 100 * g["restart+ready"]["median"] / total,
                       fmt_seconds(g["probes"]["median"]), 100 * g["probes"]["median"] / total,
                       fmt_seconds(g["soak"]["median"]), 100 * g["soak"]["median"] / total,
                       fmt_seconds(g["everything else"]["median"]), 100 * g["everything else"]["median"] / total))
        if not (ro["spans"]["probe"] and ro["spans"]["probe"]["max"] > 0):
            out.append("No `model_probe` task ran in these rollouts: the role in this checkout gates on `inference_ready` "
                       "(a real completion) only, so the probes step is 0 here; it will show once the role runs the probe "
                       "suite.")
    dt = an.get("downtime")
    st = an.get("start")
    if dt and st:
        for h, e in dt.items():
            if e["wave"] == "frozen":
                out.append("%s (frozen) is the control: it is polled the same way and not restarted; its longest gap, %s, is "
                           "what polling alone shows on this loaded machine%s." % (
                               h, fmt_seconds(e["completion"]["median"]),
                               "" if max(e["outages"] or [0]) == 0 else " (some of its requests failed: %s outages per rollout)" % (
                                   ", ".join(str(o) for o in e["outages"]))))
                continue
            text = ("%s (%s): did not answer a completion for %s (median over the rounds, max %s); its engine starts in %s "
                    "alone and %s with its wave, so the goal is %s. " % (
                        h, e["wave"], fmt_seconds(e["completion"]["median"]), fmt_seconds(e["completion"]["max"]),
                        fmt_seconds(e["start_alone_s"]), fmt_seconds(e["start_health_s"]), fmt_seconds(e["limit_s"])))
            if e["goal_met"]:
                text += "Within the goal."
            else:
                text += "**Misses** it by %s." % fmt_seconds(e["excess_s"])
            rp = e.get("restart_parts")
            if rp and rp.get("start_to_answer_s") and rp.get("stop_s"):
                text += (" In the unit's journal the rollout's restart took %s to stop llama-server and %s from `Started` to "
                         "the first answer, against %s for a whole restart to `/health` with nothing else running." % (
                             fmt_seconds(rp["stop_s"]["median"]), fmt_seconds(rp["start_to_answer_s"]["median"]), fmt_seconds(e["start_alone_s"])))
            if e["outage_tasks"]:
                where = ["%s: %s, %s, %d×" % (k, fmt_seconds(v["median"]), fmt_seconds(v["max"]), v["n"]) for k, v in e["outage_tasks"][:4]]
                text += (" Its completions failed while it ran (task at the start of each outage, outage length median "
                         "and max, count): %s." % "; ".join(where))
            if max(e["outages"] or [0]) > 1:
                text += (" More than one outage in one rollout (%s per round): requests failed at more than one moment."
                         % ", ".join(str(o) for o in e["outages"]))
            out.append(text)
        long_ones = ["%s %s" % (h, fmt_seconds(e["completion"]["max"])) for h, e in dt.items()
                     if e["wave"] != "frozen" and e["completion"]["max"] >= 90.0]
        if long_ones:
            out.append("Outliers: %s. That is longer than any engine start measured here and matches systemd's default stop "
                       "timeout (`TimeoutStopSec`, 90 s; the unit sets none) plus a start: when llama-server does not exit on "
                       "SIGTERM, systemd waits 90 s before it kills it (`State 'stop-sigterm' timed out. Killing.` in the "
                       "unit's journal on those hosts, read after this run). A short `TimeoutStopSec` in the unit would bound "
                       "it." % ", ".join(long_ones))
        out.append("Downtime is at least the engine's stop and start: `systemctl restart` stops llama-server and starts it "
                   "again, and it loads the model before `/health` answers; nothing in the rollout keeps a second engine "
                   "serving meanwhile (one engine per host, one port), so the goal can only be met by a fast restart, not "
                   "by overlap. The models endpoint and the completion are down for about the same time.")
        out.append("Why the downtime during a rollout is longer than the engine's start time measured on its own: the start "
                   "time is measured with nothing else running on the fleet, while in the rollout the same restart competes "
                   "for this machine's %d CPUs with Ansible's workers (the second wave's hosts go over paramiko, SSH in "
                   "Python), the other hosts of the wave restarting at the same moment, the polling threads and the other "
                   "people's fleets; on a loaded 2-CPU machine llama-server's stop and its model load stretch accordingly. "
                   "The longest outage of every upgraded host begins in the task that restarts the engine (`model_switch`, "
                   "which switches, restarts and waits in one call; see the tasks above). Shorter outages that begin in "
                   "the probe tasks are not the engine being down: the engine has one slot (`--parallel 1`), and a one-token request "
                   "queued behind the readiness check's or the probes' own completions waits past the 2 s timeout of the poll." % (
                       res["machine"]["nproc"]))
    if res["params"].get("probe_suite") == "smoke-bench":
        out.append("Probe suite: the rollouts gate on `smoke-bench`, the shipped `smoke` suite with a "
                   "`latency_vs_baseline` factor of %.1f instead of the default 1.3. `smoke` takes one sample per probe, "
                   "and on this shared, loaded machine (with the polling threads on top) one sample of the new version "
                   "came out more than 1.3 × the old version's in trial runs, so the canary was rolled back on noise, not "
                   "on a regression; the benchmark needs rollouts that complete. `--probe-suite smoke` measures with the "
                   "shipped suite." % res["params"]["latency_factor"])
    failed = [r for r in res["rounds"] if r.get("error")]
    if failed:
        out.append("**%d of %d rounds failed** and are left out of the medians: %s." % (
            len(failed), len(res["rounds"]), "; ".join("round %d: %s" % (
                r["round"], " ".join(r["error"].split())[:300]) for r in failed)))
    out.append("Load added by the measurement: %d polling threads (two per host) send up to %.0f requests per second in all, "
               "half of them one-token completions that each host's single-thread llama-server computes; the engine start "
               "times are measured without that polling." % (2 * n_hosts, 2 * n_hosts / res["params"]["poll_interval"]))
    return out


def commands(res):
    return [
        "Fleet: `python tests/fleet/fleet.py up --name %s --inventory inventories/demo --inventory tests/integration/inventory "
        "--port-offset %d` (SSH and API ports +%d on 127.0.0.1; llama.cpp on every host); every Ansible command uses "
        "`-i inventories/demo -i tests/integration/inventory -i /var/tmp/modelops-fleet/%s/inventory.yml` "
        "(the fleet's ports and key), the checkout's `ansible.cfg` (forks 10, pipelining, `ControlPersist=60s`) and "
        "`ANSIBLE_SSH_CONTROL_PATH_DIR=/var/tmp/modelops-fleet/%s/cp`." % (
            res["fleet_name"], res["port_offset"], res["port_offset"], res["fleet_name"], res["fleet_name"]),
        "Releases: `ansible-playbook playbooks/publish.yml -e publish_source=<dir> -e publish_release=%s-<version>-%s "
        "-e publish_sequence=<n> ...` with a real GnuPG key (`tests/fleet/gpg_keys.py`); each version's weights are the "
        "SmolLM2 GGUF with its `general.name` string rewritten (same length), so every file hash differs and the model "
        "loads the same." % (MODEL, VARIANT),
        "Extra vars of every upgrade run (`-e @vars.json`): `model_repository`, `model_keyring`, "
        "`model_trusted_fingerprints`, `model_catalog` (the benchmark's own), `inference_server_llamacpp_binary_src`, "
        "`model_pinned_version` (v1, so the frozen host reports no drift).",
        "Bootstrap (untimed): `ansible-playbook upgrade.yml -e model_version=<v1> -e model_upgrade_policy=immediate`.",
        "Rollout: `ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=<ansible.cfg's "
        "callbacks_enabled>,bench_timeline MODELOPS_REPORT_DIR=/var/tmp/modelops-fleet/%s/reports ansible-playbook "
        "upgrade.yml` (latest release; the inventory's canary size 1 and soak %s s); afterwards "
        "`readlink /srv/models/%s/current` on every host is checked." % (res["fleet_name"], res.get("soak_s", "5"), MODEL),
        "No-op: the same `ansible-playbook upgrade.yml` again; floor: `ansible-playbook bench/noop_floor.yml -e "
        "@floor-vars.json` (the rollout's `model_release_info` and per-host `model_info` arguments, from the timeline "
        "callback); reference: `ansible all -m ansible.builtin.ping -o` with the same inventories; the three rotate which "
        "goes first from round to round.",
        "Downtime: threads on the controller, `GET http://127.0.0.1:<api port>/v1/models` and `POST "
        "http://127.0.0.1:<api port>/v1/completions` `{\"prompt\": \"1\", \"max_tokens\": 1}`, timeout 2 s, every %.0f ms "
        "each, from 1 s before the rollout to 1 s after it." % (res["params"]["poll_interval"] * 1000),
        "Engine start: `ssh root@127.0.0.1 -p <port> python3 -` with a script that runs `systemctl restart %s.service` and "
        "polls `http://127.0.0.1:8080/health`, then `/v1/completions`, every 20 ms, timing with the host's clock." % UNIT,
    ]


# --------------------------------------------------------------------------- main

def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds: each a rollout with downtime polling, a no-op upgrade, a ping run, engine starts (default 5)")
    ap.add_argument("--fleet-name", default="orch", help="fleet name for tests/fleet/fleet.py (default orch)")
    ap.add_argument("--inventory", action="append", default=None,
                    help="demo-shaped inventory, repeatable (default inventories/demo with tests/integration/inventory: "
                         "llama.cpp on every host)")
    ap.add_argument("--port-offset", type=int, default=8000, help="added to every port of the inventory (default 8000)")
    ap.add_argument("--poll-interval", type=float, default=0.1, help="seconds between two polls of one endpoint (default 0.1)")
    _common.add_output_args(ap, "orchestration", "/var/tmp/modelops-bench-orchestration", RESULTS,
                            (PNG, "PNG chart of the rollout time per step"))
    ap.add_argument("--probe-suite", default="smoke-bench",
                    help="model_probe_suite of the rollouts: a shipped suite (smoke, regression) or smoke-bench, the smoke "
                         "suite with --latency-factor (default smoke-bench)")
    ap.add_argument("--latency-factor", type=float, default=3.0,
                    help="latency_vs_baseline factor of smoke-bench (default 3.0; the shipped smoke suite uses 1.3)")
    ap.add_argument("--keep-fleet", action="store_true", help="leave the fleet up at the end (for debugging)")
    ap.add_argument("--extra-vars", action="append", default=None, metavar="VAR=VALUE",
                    help="an extra var for every upgrade.yml run, e.g. model_rollout_strategy=linear (repeatable)")
    _common.add_from_results(ap)
    args = ap.parse_args(argv)
    if args.inventory is None:
        args.inventory = [DEMO_INVENTORY, LLAMACPP_OVERLAY]
    if args.rounds < 1 or args.poll_interval <= 0:
        ap.error("--rounds and --poll-interval must be positive")
    return args


def finish(res, args):
    # A partial result (a run that was stopped) lacks what the end of the run adds.
    res.setdefault("load_end", res["load_start"])
    res.setdefault("duration_s", 0.0)
    res["summary"] = analyse(res)
    if res["summary"].get("rollout"):
        res["chart"] = draw_chart(args.png, res["summary"]["rollout"])
    _common.update_doc(args.doc, render(res, res["summary"], args.doc, args.png), BEGIN, END)


def main(argv=None):
    args = parse_args(argv)
    if args.from_results:
        return _common.rewrite_from_results(args, finish, "orchestration")
    sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
    from gpg_keys import GpgTestKeys  # pylint: disable=import-outside-toplevel

    started, log, run_dir = _common.start_run(args.workdir)
    res = {"params": {"rounds": args.rounds, "poll_interval": args.poll_interval, "probe_suite": args.probe_suite,
                      "latency_factor": args.latency_factor, "extra_vars": args.extra_vars or []},
           "started": utc_now(), "fleet_name": args.fleet_name, "port_offset": args.port_offset,
           "machine": _common.machine_info(ansible_core=first_line(["ansible", "--version"]),
                                           openssh=first_line(["ssh", "-V"]), podman=first_line(["podman", "--version"])),
           "load_start": loadavg(), "rounds": []}
    bench = Bench(args, run_dir, log)
    keys = None
    try:
        bench.artifacts = json.loads(fleet("artifacts").stdout)  # cached: llama-server, image, the GGUF
        res["weights_bytes"] = os.path.getsize(bench.artifacts["model_file"])
        bench.up()
        hosts = bench.hosts
        res["hosts"] = list(hosts)
        res["groups"] = {h: hosts[h]["groups"] for h in hosts}
        res["connections"] = {h: hosts[h]["connection"] for h in hosts}
        inv = json.loads(bench.ansible.run(["ansible-inventory"] + bench.ansible.inventory_args() + ["--list"])[0].stdout)
        hv = inv["_meta"]["hostvars"]
        policies = {h: hv[h].get("model_upgrade_policy", "immediate") for h in hosts}
        canary_groups = sorted(set(g for h in hosts for g in hosts[h]["groups"] if policies[h] == "canary"))
        # upgrade.yml's plan takes the first model_canary_size hosts of a canary group, in inventory order.
        canary_hosts = []
        for g in canary_groups:
            members = inv.get(g, {}).get("hosts", [])
            size = int(hv[members[0]].get("model_canary_size", 1)) if members else 0
            canary_hosts += members[:size]
        res["canary_hosts"] = canary_hosts
        res["frozen_hosts"] = [h for h in hosts if policies[h] == "frozen"]
        res["wave2_hosts"] = [h for h in hosts if h not in canary_hosts and h not in res["frozen_hosts"]]
        res["soak_s"] = sorted(set(str(hv[h].get("model_canary_soak_seconds", 0)) for h in canary_hosts))
        res["soak_s"] = "/".join(res["soak_s"]) or "0"
        res["fleet_shape"] = ", ".join("%s (%s, %s over %s)" % (h, "/".join(hosts[h]["groups"]), policies[h], hosts[h]["connection"])
                                       for h in hosts)
        log("making GnuPG test keys")
        keys = GpgTestKeys(os.path.join(run_dir, "gpg"))
        bench.keys = keys
        base = 2601
        bench.publish(str(base), 1)
        res["bootstrap_s"] = bench.bootstrap()
        for i in range(args.rounds):
            rnd = i + 1
            version = str(base + rnd)
            bench.publish(version, rnd + 1)
            entry = {"round": rnd}
            res["rounds"].append(entry)
            try:
                log("round %d/%d: rollout of %s with downtime polling" % (rnd, args.rounds, version))
                entry["rollout"] = bench.rollout(rnd, version)
                r = entry["rollout"]
                log("  rollout %.1f s: %s" % (r["wall_s"], ", ".join("%s %.1f" % (k, v) for k, v in r["spans"].items() if v >= 0.05)))
                log("  downtime (completion): %s" % ", ".join("%s %.2f s" % (h, d["completion"]["longest_s"] or -1)
                                                              for h, d in r["downtime"].items()))
                order = [("noop", bench.noop), ("floor", bench.floor), ("ping", bench.ping)]
                order = order[i % 3:] + order[:i % 3]
                for name, call in order:
                    entry[name] = call(rnd)
                    log("  %s %.1f s" % (name, entry[name]["wall_s"]))
                entry["start"] = bench.start_times(rnd, res["wave2_hosts"])
                log("  engine start alone: %s; wave 2 at once: %s" % (
                    ", ".join("%s %.2f s" % (h, v["health_s"]) for h, v in entry["start"]["alone"].items()),
                    ", ".join("%s %.2f s" % (h, v["health_s"]) for h, v in entry["start"]["wave2"].items())))
            except Exception as e:  # pylint: disable=broad-except
                # One failed round (a loaded machine can time a probe out) does not lose the others;
                # the report counts it.
                entry["error"] = str(e)[-3000:]
                log("  round %d failed: %s" % (rnd, str(e)[:2000]))
            if args.results:
                write_json(args.results + ".partial", res)  # what was measured so far, for --from-results
    finally:
        if args.keep_fleet:
            log("keeping fleet %s" % args.fleet_name)
        else:
            log("tearing down fleet %s" % args.fleet_name)
        _common.clean_up(None if args.keep_fleet else args.fleet_name, keys, run_dir, args.workdir)
    res["load_end"] = loadavg()
    res["duration_s"] = time.time() - started
    res["finished"] = utc_now()
    write_json(args.results, res)  # the raw samples first: --from-results can render them if the report fails
    try:
        os.remove(args.results + ".partial")
    except OSError:
        pass
    finish(res, args)
    write_json(args.results, res)
    log("wrote %s, %s and the orchestration section of %s" % (args.results, args.png, args.doc))
    an = res["summary"]
    if not (an.get("noop") and an.get("rollout") and an.get("downtime")):
        print("orchestration bench: no round completed; see the log and %s" % args.results, file=sys.stderr)
        return 1
    print("no-op upgrade vs ping: %.2f x; rollout median %.1f s; downtime (completion, median): %s" % (
        an["noop"]["ratio"], an["rollout"]["wall_s"]["median"],
        ", ".join("%s %.2f s" % (h, e["completion"]["median"]) for h, e in an["downtime"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
