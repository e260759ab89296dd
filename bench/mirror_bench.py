# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: a release to N hosts pushed from the controller, against one site mirror.

A fleet of its own (fleet.py, name ``mbench``): one site mirror (mb-00) and N hosts (mb-01..),
podman containers booting systemd and sshd, over Ansible's OpenSSH connection. A release of
--size-gb random weights plus small files is published with playbooks/publish.yml. Each
round, from clean hosts (the mirror's served tree and every host's model root removed), in
alternating order:

1. push: ``modelops.fleet.model_sync`` (source=push) from the controller to the N hosts at once;
2. site mirror: one ansible-playbook that stocks the mirror with the ``modelops.fleet.model_mirror``
   role (nginx; model_sync push to the mirror), then lets the N hosts pull from it
   (model_sync source=mirror, the URL upgrade.yml gives a host whose group sets
   model_site_mirror).

Bytes leaving the controller are read from the kernel, not from the tools: the bytes each
container's network namespace received (every interface but lo) during the run, minus what
the mirror sent (the hosts' downloads). Wall time is the command's. Raw results go to
bench/results/mirror.json; the text between the mirror markers of docs/performance.md is
rewritten. The fleet is torn down at the end, also when the run fails.

Run it with ``bash bench/mirror.sh``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time

import _common
from _common import GIB, REPO, Ansible, BenchError, check_all_ok, container_pid, fleet, fmt_size, loadavg, summary, utc_now
import transfer_bench as tb

RESULTS = os.path.join(REPO, "bench", "results", "mirror.json")
BEGIN, END = _common.markers("mirror")
FLEET_NAME = "mbench"
MIRROR = "mb-00"
SSH_BASE, API_BASE = 36000, 37000
MODEL, VARIANT, VERSION = "bench-model", "gguf-q4_k_m", "2601"
ROOT = "/srv/bench"
MIRROR_ROOT = "/srv/model-mirror"
MIRROR_PORT = 8090

PLAYBOOK = """---
- name: Stock the site mirror
  hosts: site_mirror
  gather_facts: false
  roles:
    - role: modelops.fleet.model_mirror
      vars:
        model_mirror_releases: ["{{ bench_release }}"]
        model_mirror_keyring: "{{ bench_keyring }}"
        model_mirror_trusted_fingerprints: "{{ bench_fingerprints }}"
        model_mirror_catalog: "{{ bench_catalog }}"

- name: Pull from the site mirror
  hosts: site_hosts
  gather_facts: false
  tasks:
    - name: Pull the release from the site mirror
      modelops.fleet.model_sync:
        src: "{{ bench_release.location }}"
        source: mirror
        url: "{{ bench_url }}"
        model_root: "{{ bench_root }}"
        keyring: "{{ bench_keyring }}"
        trusted_fingerprints: "{{ bench_fingerprints }}"
        catalog: "{{ bench_catalog }}"
"""


def tx_bytes(pid):
    """Bytes sent by the container's network namespace (every interface but lo)."""
    total = 0
    for line in _common.read_text("/proc/%d/net/dev" % pid).splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            total += int(data.split()[8])
    return total


class MirrorBench(object):
    def __init__(self, args, run_dir, log):
        self.args, self.run_dir, self.log = args, run_dir, log
        self.ansible = Ansible(os.path.join(run_dir, "inventory.yml"), log, FLEET_NAME)
        self.keys = None
        self.hosts = []
        self.pids = {}
        self.release = None
        self.counter = 0

    def clients(self):
        return [h["name"] for h in self.hosts if h["name"] != MIRROR]

    def publish(self):
        src = os.path.join(self.run_dir, "src")
        os.makedirs(src)
        size = int(self.args.size_gb * GIB)
        self.log("writing %s of weights" % fmt_size(size))
        _common.write_big_file(os.path.join(src, tb.WEIGHTS), size)
        tb.write_small_files(src)
        repo = os.path.join(self.run_dir, "repo")
        name = "%s-%s-%s" % (MODEL, VERSION, VARIANT)
        _common.publish(self.ansible, self.keys, src, repo, name, 1, os.path.join(self.run_dir, "publish.db"),
                        os.path.join(self.run_dir, "publish.json"))
        shutil.rmtree(src)
        d = os.path.join(repo, MODEL, VERSION, VARIANT)
        with open(os.path.join(d, "manifest.json"), "rb") as f:
            raw = f.read()
        files = tb.release_files(d)
        # What model_release_info returns and the model_mirror role reads.
        self.release = {"release": name, "version": VERSION, "location": d, "manifest_sha256": hashlib.sha256(raw).hexdigest(),
                        "manifest": json.loads(raw.decode("utf-8")), "bytes": sum(f["size"] for f in files)}

    def up(self):
        specs = ["--host", "%s:%d:%d" % (MIRROR, SSH_BASE, API_BASE)]
        for i in range(1, self.args.hosts + 1):
            specs += ["--host", "mb-%02d:%d:%d" % (i, SSH_BASE + i, API_BASE + i)]
        self.log("bringing up the mirror and %d hosts (fleet %s)" % (self.args.hosts, FLEET_NAME))
        state = json.loads(fleet("up", "--name", FLEET_NAME, *specs).stdout)
        self.hosts = [state["hosts"][n] for n in sorted(state["hosts"])]
        for h in self.hosts:
            self.pids[h["name"]] = container_pid(h["id"])
        tb.write_inventory(self.ansible.inventory, self.hosts, state["key"])
        with open(self.ansible.inventory, encoding="utf-8") as f:
            inv = json.load(f)
        bench = inv["all"]["children"].pop("bench")
        hosts = bench.pop("hosts")
        inv["all"]["vars"] = bench["vars"]
        inv["all"]["children"] = {"site_mirror": {"hosts": {MIRROR: hosts[MIRROR]}},
                                  "site_hosts": {"hosts": dict((n, hosts[n]) for n in self.clients())}}
        with open(self.ansible.inventory, "w", encoding="utf-8") as f:
            json.dump(inv, f, indent=2)
        self.url = "http://%s:%d/%s/%s/%s" % (state["hosts"][MIRROR]["address"], MIRROR_PORT, MODEL, VERSION, VARIANT)
        proc, dummy = self.ansible.adhoc("all", "ansible.builtin.ping", "", forks=len(self.hosts))
        check_all_ok(proc.stdout, [h["name"] for h in self.hosts], "ping")

    def counters(self):
        return dict((n, (tb.rx_bytes(p), tx_bytes(p))) for n, p in self.pids.items())

    def catalog(self):
        self.counter += 1
        return os.path.join(self.run_dir, "catalogs", "c%03d.db" % self.counter)

    def clean(self):
        dirs = "%s %s/%s" % (ROOT, MIRROR_ROOT, MODEL)
        self.ansible.shell("all", "chmod -R u+w %s 2>/dev/null; rm -rf %s %s/.staging; true" % (dirs, dirs, MIRROR_ROOT),
                           forks=len(self.hosts))
        os.sync()

    def check_hosts(self):
        out, dummy = self.ansible.shell("site_hosts", "echo BENCHSIZE $(hostname) $(find %s/%s -type f -printf '%%s\\n' "
                                        "| awk '{s+=$1} END {print s+0}')" % (ROOT, MODEL), forks=len(self.hosts))
        got = dict(line.split()[1:3] for line in out.splitlines() if line.startswith("BENCHSIZE"))
        for n in self.clients():
            if int(got.get(n, 0)) != self.release["bytes"]:
                raise BenchError("%s holds %s bytes of the release, expected %d" % (n, got.get(n), self.release["bytes"]))

    def measure(self, case):
        self.clean()
        before = self.counters()
        common = {"keyring": [self.keys.publisher.public], "trusted_fingerprints": [self.keys.publisher.fingerprint],
                  "catalog": self.catalog()}
        if case == "push":
            args = dict(common, src=self.release["location"], model_root=ROOT)
            proc, wall = self.ansible.adhoc("site_hosts", "modelops.fleet.model_sync", json.dumps(args),
                                            forks=len(self.hosts), check=False)
            check_all_ok(proc.stdout, self.clients(), "model_sync push")
        else:
            ev = os.path.join(self.run_dir, "mirror-vars.json")
            _common.write_json(ev, {"bench_release": self.release, "bench_url": self.url, "bench_root": ROOT,
                                    "bench_keyring": common["keyring"], "bench_fingerprints": common["trusted_fingerprints"],
                                    "bench_catalog": common["catalog"]})
            proc, wall = self.ansible.playbook(os.path.join(self.run_dir, "mirror.yml"), ev, args=("-f", str(len(self.hosts))))
        after = self.counters()
        self.check_hosts()
        rx = dict((n, after[n][0] - before[n][0]) for n in after)
        mirror_tx = after[MIRROR][1] - before[MIRROR][1]
        from_controller = sum(rx.values()) - (mirror_tx if case == "mirror" else 0)
        return {"wall_s": wall, "rx_bytes": rx, "mirror_tx_bytes": mirror_tx, "from_controller_bytes": from_controller}


def analyse(res):
    out = {}
    for case in ("push", "mirror"):
        samples = res["samples"][case]
        out[case] = {"wall_s": summary([s["wall_s"] for s in samples]),
                     "from_controller_bytes": summary([s["from_controller_bytes"] for s in samples]),
                     "mirror_tx_bytes": summary([s["mirror_tx_bytes"] for s in samples])}
    return out


def render(res, an):
    m = res["machine"]
    p = res["params"]
    rel = res["release_bytes"]
    lines = _common.section_head(BEGIN, "Push vs a site mirror", "mirror_bench.py", res.get("finished") or res["started"],
                                 res.get("duration_s", 0.0), "mirror.sh")
    lines += ["A release of %s (%s of random weights and small files) to %d hosts: pushed from the controller "
              "(`model_sync` push to all of them at once), or through one site mirror (the `model_mirror` role stocks it: "
              "nginx, `model_sync` push to the mirror; then the hosts pull from it, `model_sync` `source=mirror`, as "
              "`upgrade.yml` does for a group that sets `model_site_mirror`). %d round(s), alternating, each from clean "
              "hosts; medians with min–max." % (fmt_size(rel), fmt_size(int(p["size_gb"] * GIB)), p["hosts"], p["rounds"]), ""]
    lines += _common.machine_table(m, res, [("Hosts", "%d podman containers on one bridge (the mirror and %d hosts), "
                                             "OpenSSH from the controller" % (p["hosts"] + 1, p["hosts"]))])
    lines += ["", "### Results", "",
              "| | push from the controller | through one site mirror | mirror / push |", "|---|---|---|---|"]

    def cell(s, fmt):
        return "%s (%s–%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))

    def size(n):
        return fmt_size(int(n))
    a, b = an["push"], an["mirror"]
    lines.append("| bytes leaving the controller | %s | %s | %.2f × |" % (
        cell(a["from_controller_bytes"], size), cell(b["from_controller_bytes"], size),
        b["from_controller_bytes"]["median"] / a["from_controller_bytes"]["median"]))
    per_host = [x["from_controller_bytes"]["median"] / rel / p["hosts"] for x in (a, b)]
    lines.append("| per host, in releases | %.2f | %.2f | |" % tuple(per_host))
    lines.append("| bytes the mirror served | — | %s | |" % cell(b["mirror_tx_bytes"], size))
    walls = (cell(a["wall_s"], _common.fmt_seconds), cell(b["wall_s"], _common.fmt_seconds),
             b["wall_s"]["median"] / a["wall_s"]["median"])
    lines.append("| wall time | %s | %s | %.2f × |" % walls)
    notes = [
        "Bytes leaving the controller are the kernel's counters: every byte the containers' network namespaces received "
        "(TCP/IP, SSH and Ansible's module payloads included) minus what the mirror sent; push moves the release once per "
        "host, the site mirror once per site, whatever the number of hosts behind it.",
        "Wall time on this machine is not a network measurement: the controller, the mirror and the hosts share its "
        "CPUs and the bridge is memory. The mirror's run is two plays in a row (stock, then pull) and includes the "
        "mirror's own verification of the release; across real sites, push is bounded by the controller's uplink "
        "(N × the release), the mirror by the site's LAN.",
        "At 500 edge devices of one 4 GB model: push is 2 TB from the controller; one mirror per site of 50 is 40 GB "
        "from the controller and 200 GB from each mirror over its own site's network.",
    ]
    commands = ["`bash bench/mirror.sh` (4 hosts, 0.25 GiB, 2 rounds), or e.g. `bash bench/mirror.sh --hosts 8 --size-gb 1`.",
                "`python bench/mirror_bench.py --from-results bench/results/mirror.json` rewrites this section."]
    return _common.section_text(lines, notes, commands, "mirror", END)


def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--hosts", type=int, default=4, help="hosts behind the mirror (default 4)")
    ap.add_argument("--size-gb", type=float, default=0.25, help="GiB of weights (default 0.25)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    _common.add_output_args(ap, "mirror", "/var/tmp/modelops-bench-mirror", RESULTS)
    _common.add_from_results(ap)
    args = ap.parse_args(argv)
    if args.hosts < 1 or args.rounds < 1 or args.size_gb <= 0:
        ap.error("--hosts, --rounds and --size-gb must be positive")
    return args


def finish(res, args):
    res.setdefault("load_end", res["load_start"])
    an = analyse(res)
    res["summary"] = an
    _common.update_doc(args.doc, render(res, an), BEGIN, END)


def main(argv=None):
    args = parse_args(argv)
    if args.from_results:
        finish(_common.read_json(args.from_results), args)
        print("rewrote the mirror section of %s from %s" % (args.doc, args.from_results))
        return 0
    sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
    from gpg_keys import GpgTestKeys  # pylint: disable=import-outside-toplevel

    started, log, run_dir = _common.start_run(args.workdir)
    res = {"params": {"hosts": args.hosts, "size_gb": args.size_gb, "rounds": args.rounds}, "started": utc_now(),
           "machine": _common.machine_info(), "load_start": loadavg(), "samples": {"push": [], "mirror": []}}
    bench = MirrorBench(args, run_dir, log)
    try:
        os.makedirs(os.path.join(run_dir, "catalogs"))
        with open(os.path.join(run_dir, "mirror.yml"), "w", encoding="utf-8") as f:
            f.write(PLAYBOOK)
        fleet("down", "--name", FLEET_NAME, check=False)  # leftovers of a run that was killed
        bench.keys = GpgTestKeys(os.path.join(run_dir, "gpg"))
        tb.write_inventory(bench.ansible.inventory, [], "")
        bench.publish()
        res["release_bytes"] = bench.release["bytes"]
        bench.up()
        for i in range(args.rounds):
            for case in (("push", "mirror") if i % 2 == 0 else ("mirror", "push")):
                sample = bench.measure(case)
                sample["round"] = i + 1
                res["samples"][case].append(sample)
                log("round %d/%d %-6s %7.2f s, %s from the controller" % (i + 1, args.rounds, case, sample["wall_s"],
                                                                          fmt_size(sample["from_controller_bytes"])))
    finally:
        log("tearing down the fleet, the GnuPG agents and %s" % run_dir)
        _common.clean_up(FLEET_NAME, bench.keys, run_dir, args.workdir)
    res["load_end"] = loadavg()
    res["finished"] = utc_now()
    res["duration_s"] = time.time() - started
    finish(res, args)
    _common.write_json(args.results, res)
    an = res["summary"]
    print("controller egress: push %s, site mirror %s; wall: push %.1f s, mirror %.1f s" % (
        fmt_size(int(an["push"]["from_controller_bytes"]["median"])), fmt_size(int(an["mirror"]["from_controller_bytes"]["median"])),
        an["push"]["wall_s"]["median"], an["mirror"]["wall_s"]["median"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
