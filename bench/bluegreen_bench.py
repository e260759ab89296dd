# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: what a client sees during a rollout, in place against blue/green.

One fleet of its own (fleet.py, name ``bluegreen``): two hosts running llama.cpp's
``llama-server`` (1 thread) on SmolLM2-135M-Instruct Q4_1, one group with the immediate
policy, ``bg-inplace`` in the in-place mode and ``bg-bluegreen`` in the blue/green mode
(``inference_server_mode``). Both are bootstrapped with a signed release; then, per round:

1. a good release (the same weights with their name string changed, so every file hash
   differs and the model answers the same) is rolled out to both hosts by one run of
   ``playbooks/upgrade.yml``, while one client per host asks the same question through the
   host's published port every 50 ms (a new connection each time): failed requests, the
   longest time between two answers, and the answers;
2. a bad release (most weights zeroed: it loads and answers nonsense, and fails the shipped
   ``smoke`` suite) is rolled out the same way: the run fails on both hosts and each rolls
   back (in place) or drops the new version (blue/green); answers that differ from the good
   version's answer came from the failing release.

Also, once, the cost of the blue/green front on one request: a one-token completion through
the clients' address (``systemd-socket-proxyd`` in front of the instance's Unix socket)
against the same request straight to the instance's socket, timed on the host.

Raw results go to bench/results/bluegreen.json; the text between the bluegreen markers of
docs/performance.md is rewritten. The fleet is torn down at the end, also when the run fails.

Run it with ``bash bench/bluegreen.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import _common
from _common import REPO, BenchError, first_line, fleet, loadavg, summary, utc_now
import orchestration_bench as ob

RESULTS = os.path.join(REPO, "bench", "results", "bluegreen.json")
BEGIN, END = _common.markers("bluegreen")
SSH_BASE, API_BASE = 38000, 39000
HOSTS = {"bg-inplace": "in_place", "bg-bluegreen": "blue_green"}
GOALS = {"failed": 0, "gap_s": 0.1, "bad_answers": 0}  # the goals for the blue/green mode

# Timed on the host: the same one-token completion through the clients' address and straight
# to the serving instance's socket, alternating, n times each (argv: n, socket path, model).
HOP_SCRIPT = r'''
import http.client, json, socket, sys, time
n, path, model = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = json.dumps({"model": model, "prompt": "1", "max_tokens": 1, "temperature": 0})


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)


def once(conn):
    t = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 200, r.status
    return time.perf_counter() - t


front, direct = [], []
for i in range(n):
    front.append(once(http.client.HTTPConnection("127.0.0.1", 8080)))
    direct.append(once(UnixConnection("localhost")))
print(json.dumps({"front_s": front, "direct_s": direct}))
'''


def write_inventory(path):
    os.makedirs(os.path.join(path, "group_vars"))
    hosts = {}
    for i, (name, mode) in enumerate(sorted(HOSTS.items()), start=1):
        hosts[name] = {"ansible_port": SSH_BASE + i, "fleet_api_port": API_BASE + i, "inference_server_mode": mode}
    with open(os.path.join(path, "hosts.yml"), "w", encoding="utf-8") as f:
        json.dump({"all": {"children": {"bg_hosts": {"hosts": hosts}}}}, f, indent=1)
    shutil.copy(os.path.join(ob.DEMO_INVENTORY, "group_vars", "all.yml"), os.path.join(path, "group_vars", "all.yml"))
    with open(os.path.join(path, "group_vars", "bg_hosts.yml"), "w", encoding="utf-8") as f:
        json.dump({"model_upgrade_policy": "immediate", "ansible_connection": "ssh"}, f)


class BlueGreenBench(ob.Bench):
    def publish_bad(self, version, seq):
        """A release whose weights are mostly zeroed (damage_gguf): loads, answers nonsense."""
        from damage_gguf import zero_weights  # pylint: disable=import-outside-toplevel
        src = os.path.join(self.run_dir, "src-%s" % version)
        os.makedirs(src)
        zero_weights(self.artifacts["model_file"], os.path.join(src, ob.GGUF))
        with open(os.path.join(src, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"release": version, "damaged": True}, f)
        _common.publish(self.ansible, self.keys, src, self.repo, "%s-%s-%s" % (ob.MODEL, version, ob.VARIANT), seq,
                        os.path.join(self.run_dir, "publisher.db"), os.path.join(self.run_dir, "publish-%s.json" % version))
        shutil.rmtree(src)
        self.log("published %s (weights zeroed, sequence %d)" % (version, seq))

    def rollout(self, expect_ok):
        """upgrade.yml with a client polling each host; (wall, {host: poller summary}, rc)."""
        from client_poller import ClientPoller  # pylint: disable=import-outside-toplevel
        pollers = dict((h, ClientPoller(self.hosts[h]["api_port"], ob.MODEL)) for h in HOSTS)
        for p in pollers.values():
            p.start()
        time.sleep(1.0)
        try:
            start = time.time()
            proc, dummy = self.ansible.playbook(ob.UPGRADE, self.vars_file, check=False)
            wall = time.time() - start
            time.sleep(1.0)
        finally:
            for p in pollers.values():
                p.stop_event.set()
            for p in pollers.values():
                p.join(20)
        if (proc.returncode == 0) != expect_ok:
            raise BenchError("upgrade.yml %s (rc=%d), expected it to %s:\n%s" % (
                "passed" if proc.returncode == 0 else "failed", proc.returncode, "pass" if expect_ok else "fail",
                proc.stdout[-5000:]))
        return wall, dict((h, p.summary()) for h, p in pollers.items()), proc.returncode

    def hop(self, n):
        """The front's cost on one request, timed on the blue/green host."""
        host = "bg-bluegreen"
        script = os.path.join(self.run_dir, "hop.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(HOP_SCRIPT)
        self.ansible.adhoc(host, "ansible.builtin.copy", "src=%s dest=/tmp/bench-hop.py" % script)
        out, dummy = self.ansible.shell(host, "python3 /tmp/bench-hop.py %d $(readlink /var/lib/modelops/modelops-inference/"
                                              "serving.sock) %s" % (n, ob.MODEL))
        return json.loads(out.strip().splitlines()[-1])


def good_answer(summaries):
    """The answer most requests got on the in-place host before anything failed (the good model's)."""
    counts = summaries["bg-inplace"]["answers"]
    return max(counts, key=counts.get) if counts else None


def analyse(res):
    out = {}
    for host, mode in HOSTS.items():
        good = [r["hosts"][host] for r in res["rounds"] if r["kind"] == "good"]
        bad = [r["hosts"][host] for r in res["rounds"] if r["kind"] == "bad"]
        out[mode] = {
            "good": {"failed": summary([s["failed"] for s in good]), "gap_s": summary([s["longest_gap_s"] for s in good]),
                     "requests": summary([s["requests"] for s in good])},
            "bad": {"failed": summary([s["failed"] for s in bad]), "gap_s": summary([s["longest_gap_s"] for s in bad]),
                    "requests": summary([s["requests"] for s in bad]),
                    "bad_answers": summary([s["bad_answers"] for s in bad])}}
        for kind, rows in (("good", good), ("bad", bad)):
            if rows and all("longest_outage_s" in s for s in rows):
                out[mode][kind]["outage_s"] = summary([s["longest_outage_s"] for s in rows])
    if res.get("hop"):
        out["hop"] = {"front_ms": summary([x * 1000 for x in res["hop"]["front_s"]]),
                      "direct_ms": summary([x * 1000 for x in res["hop"]["direct_s"]])}
    return out


def render(res, an):
    m = res["machine"]
    lines = _common.section_head(BEGIN, "What clients see during a rollout: in place and blue/green", "bluegreen_bench.py",
                                 res["finished"] or res["started"], res.get("duration_s", 0.0), "bluegreen.sh")
    lines += ["A client asks each host the same question through its published port every 50 ms (a new connection "
              "each time) while `upgrade.yml` rolls a release out to both hosts at once: `bg-inplace` "
              "(`inference_server_mode: in_place`) and `bg-bluegreen` (`blue_green`), llama.cpp `llama-server` (1 "
              "thread) on SmolLM2-135M-Instruct Q4_1, the shipped `smoke` probe suite, %d round(s). Each round rolls out "
              "a good release, then a bad one (most weights zeroed: it loads and answers nonsense, and fails its gate). "
              "Medians over the rounds, min–max in brackets." % res["params"]["rounds"], ""]
    lines += _common.machine_table(m, res, [
        ("Controller", "Python %s, %s, %s" % (m.get("python", "?"), m.get("ansible_core", "?"), m.get("openssh", "?"))),
        ("Hosts", "2 podman containers (%s) booting systemd and sshd, on the same CPUs as the controller" % m.get("podman", "?"))])

    def cell(s, digits=2, unit=" s"):
        if not s:
            return "—"
        f = "%%.%df%s" % (digits, unit)
        return (f % s["median"]) + " (" + (f % s["min"]).strip() + "–" + (f % s["max"]).strip() + ")"
    lines += ["", "### Results", "",
              "| Mode | Release rolled out | Requests | Failed requests | Longest outage | Longest time between two answers | "
              "Answers from the bad release |", "|---|---|---|---|---|---|---|"]
    for mode in ("in_place", "blue_green"):
        for kind, label in (("good", "good"), ("bad", "bad (fails its gate)")):
            a = an[mode][kind]
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                mode, label, cell(a["requests"], 0, ""), cell(a["failed"], 0, ""), cell(a.get("outage_s")),
                cell(a["gap_s"]), cell(a["bad_answers"], 0, "") if kind == "bad" else "—"))
    bgm = an["blue_green"]
    ok = bgm["good"]["failed"]["max"] == 0 and bgm["bad"]["failed"]["max"] == 0 and bgm["bad"]["bad_answers"]["max"] == 0
    lines += ["", "Goal (issue 19, blue/green): no failed request, no outage over 0.1 s, no answer from a release that "
              "failed its gate: **%s**." % ("met" if ok and (bgm["good"].get("outage_s") or {"max": 0})["max"] <= GOALS["gap_s"]
                                            else "missed")]
    notes = []
    ip = an["in_place"]
    notes.append("In place, the engine restarts on the new version: %d failed request(s) per rollout (median) and up to "
                 "%.2f s without an answer; a bad release answers clients from its restart until its gate fails and the "
                 "old version is back: %d of its answers reached the client (median per rollout)." % (
                     ip["good"]["failed"]["median"], ip["good"]["gap_s"]["max"], ip["bad"]["bad_answers"]["median"]))
    notes.append("Blue/green, the new version starts and is judged in the idle instance; the clients move with one rename "
                 "of the link the front resolves for each new connection: %d failed request(s) in any round, and a bad "
                 "release never answered a client (%d answers)." % (
                     max(bgm["good"]["failed"]["max"], bgm["bad"]["failed"]["max"]), bgm["bad"]["bad_answers"]["max"]))
    notes.append("The longest time between two answers is not an outage: the client asks every 50 ms and waits for each "
                 "answer, a completion of the 1-thread engine that takes 0.1–0.3 s here, longer while the second engine "
                 "loads and the probes run on the same 2 CPUs as the controller and both hosts. An outage starts with a "
                 "failed request (refused or an error), and the blue/green host had none; the in-place host's outages are "
                 "its engine's restart.")
    if an.get("hop"):
        h = an["hop"]
        notes.append("The front's cost: a one-token completion through the clients' address (systemd-socket-proxyd) took "
                     "%.2f ms (median, %.2f–%.2f) against %.2f ms (%.2f–%.2f) straight to the instance's socket, timed on the "
                     "host, %d of each, alternating: %.2f ms more per request." % (
                         h["front_ms"]["median"], h["front_ms"]["min"], h["front_ms"]["max"], h["direct_ms"]["median"],
                         h["direct_ms"]["min"], h["direct_ms"]["max"], len(res["hop"]["front_s"]),
                         h["front_ms"]["median"] - h["direct_ms"]["median"]))
    notes.append("Why this switch, and what it does not cover (memory for two engines, keep-alive connections): "
                 "[docs/blue_green.md](blue_green.md).")
    commands = ["`bash bench/bluegreen.sh` (3 rounds), or `bash bench/bluegreen.sh --rounds 1`; `python "
                "bench/bluegreen_bench.py --from-results bench/results/bluegreen.json` rewrites this section."]
    return _common.section_text(lines, notes, commands, "bluegreen", END)


def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds (a good and a bad release each; default 3)")
    ap.add_argument("--fleet-name", default="bluegreen")
    ap.add_argument("--hop-requests", type=int, default=50, help="requests each way for the front's cost (default 50)")
    _common.add_output_args(ap, "bluegreen", "/var/tmp/modelops-bench-bluegreen", RESULTS)
    ap.add_argument("--keep-fleet", action="store_true", help="leave the fleet up at the end (for debugging)")
    _common.add_from_results(ap)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be positive")
    args.port_offset = 0
    args.probe_suite = "smoke"
    return args


def finish(res, args):
    res.setdefault("load_end", res["load_start"])
    res.setdefault("finished", None)
    if res["rounds"]:
        an = analyse(res)
        res["summary"] = an
        _common.update_doc(args.doc, render(res, an), BEGIN, END)


def main(argv=None):
    args = parse_args(argv)
    if args.from_results:
        return _common.rewrite_from_results(args, finish, "bluegreen")
    sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
    from gpg_keys import GpgTestKeys  # pylint: disable=import-outside-toplevel

    started, log, run_dir = _common.start_run(args.workdir)
    inv_dir = os.path.join(run_dir, "inventory")
    write_inventory(inv_dir)
    args.inventory = [inv_dir]
    res = {"params": {"rounds": args.rounds, "probe_suite": "smoke", "hosts": HOSTS}, "started": utc_now(),
           "machine": _common.machine_info(ansible_core=first_line(["ansible", "--version"]),
                                           openssh=first_line(["ssh", "-V"]), podman=first_line(["podman", "--version"])),
           "load_start": loadavg(), "rounds": []}
    bench = BlueGreenBench(args, run_dir, log)
    keys = None
    try:
        bench.artifacts = json.loads(fleet("artifacts").stdout)
        bench.up()
        keys = GpgTestKeys(os.path.join(run_dir, "gpg"))
        bench.keys = keys
        base, seq = 4001, 1
        bench.publish(str(base), seq)
        bench.write_vars(None)
        bench.upgrade("-e", "model_version=%d" % base)
        log("bootstrapped: %s" % bench.currents())
        for rnd in range(1, args.rounds + 1):
            seq += 1
            bench.publish(str(base + seq - 1), seq)
            wall, hosts, rc = bench.rollout(expect_ok=True)
            good = good_answer(hosts)
            for s in hosts.values():
                s["bad_answers"] = sum(n for a, n in s["answers"].items() if a != good)
            res["rounds"].append({"round": rnd, "kind": "good", "wall_s": wall, "rc": rc, "hosts": hosts, "good_answer": good})
            log("round %d good: %s" % (rnd, json.dumps(dict((h, (s["failed"], s["longest_gap_s"])) for h, s in hosts.items()))))
            seq += 1
            bench.publish_bad(str(base + seq - 1), seq)
            wall, hosts, rc = bench.rollout(expect_ok=False)
            for s in hosts.values():
                s["bad_answers"] = sum(n for a, n in s["answers"].items() if a != good)
            res["rounds"].append({"round": rnd, "kind": "bad", "wall_s": wall, "rc": rc, "hosts": hosts, "good_answer": good})
            seen = dict((h, (s["failed"], s["longest_gap_s"], s["bad_answers"])) for h, s in hosts.items())
            log("round %d bad: %s" % (rnd, json.dumps(seen)))
        res["hop"] = bench.hop(args.hop_requests)
        res["finished"] = utc_now()
        res["duration_s"] = time.time() - started
    finally:
        res["load_end"] = loadavg()
        _common.write_json(args.results, res)
        if not args.keep_fleet:
            _common.clean_up(args.fleet_name, keys, run_dir, args.workdir)
    finish(res, args)
    log("done: %s" % args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
