# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: how the cost of playbooks/upgrade.yml grows with the fleet, against `ansible -m ping`.

One fleet of its own (fleet.py, name ``scale``): the largest of --sizes hosts, each a podman
container booting systemd and sshd with llama.cpp's llama-server (OpenSSH, one group with the
immediate policy, the demo's group_vars/all), nested groups ``scale_<N>`` holding the first N
hosts. Every host is bootstrapped once with a signed release of the SmolLM2-135M GGUF, then for
each size N, smallest first, in each round:

1. a real upgrade of ``scale_<N>`` (``-e model_target=scale_<N>``) to a newly published release
   with the same weights (model_sync hard-links them from the installed release, so the bytes
   moved are a few hundred per host and the time is the orchestration's, not the network's):
   sync, switch, engine restart, readiness, probes;
2. a no-op upgrade of the same hosts and ``ansible scale_<N> -m ping``, in alternating order.

Per size: medians over the rounds; across sizes: the least-squares slope (seconds per added
host) of each, and the no-op's and upgrade's slope against ping's. Raw results go to
bench/results/scale.json, the chart to docs/scale.png, the text between the scale markers of
docs/performance.md is rewritten. The fleet is torn down at the end, also when the run fails.

Run it with ``bash bench/scale.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import _common
from _common import REPO, BenchError, Canvas, first_line, fleet, loadavg, summary, utc_now, write_json
import orchestration_bench as ob

RESULTS = os.path.join(REPO, "bench", "results", "scale.json")
PNG = os.path.join(REPO, "docs", "scale.png")
BEGIN, END = _common.markers("scale")
SSH_BASE, API_BASE = 34000, 35000
SLOPE_RATIO_GOAL = 1.5   # the issue: per-host cost flat, slope at most 1.5 x ping's
SERIES = [("ping", "ansible -m ping", (120, 120, 120)), ("noop", "no-op upgrade.yml", (31, 119, 180)),
          ("upgrade", "upgrade.yml, same weights", (214, 39, 40))]


def host_name(i):
    return "sc-%02d" % i


def write_inventory(path, sizes):
    """An inventory directory: hosts sc-01.. in group scale_hosts (immediate policy, OpenSSH) and
    scale_<N> for each size; group_vars/all is the demo's."""
    n = max(sizes)
    os.makedirs(os.path.join(path, "group_vars"))
    hosts = dict((host_name(i), {"ansible_port": SSH_BASE + i, "fleet_api_port": API_BASE + i}) for i in range(1, n + 1))
    children = {"scale_hosts": {"hosts": hosts}}
    for size in sizes:
        children["scale_%d" % size] = {"hosts": dict((host_name(i), None) for i in range(1, size + 1))}
    with open(os.path.join(path, "hosts.yml"), "w", encoding="utf-8") as f:
        json.dump({"all": {"children": children}}, f, indent=1)
    shutil.copy(os.path.join(ob.DEMO_INVENTORY, "group_vars", "all.yml"), os.path.join(path, "group_vars", "all.yml"))
    with open(os.path.join(path, "group_vars", "scale_hosts.yml"), "w", encoding="utf-8") as f:
        # one rollout group whatever scale_<N> groups a host is also in
        json.dump({"model_upgrade_policy": "immediate", "model_rollout_group": "scale_hosts", "ansible_connection": "ssh"}, f)


class ScaleBench(ob.Bench):
    def publish_same_weights(self, version, seq):
        """A release with the weights of the first one (a hard link) and its own generation_config.json."""
        src = os.path.join(self.run_dir, "src-%s" % version)
        os.makedirs(src)
        os.link(os.path.join(self.run_dir, "weights.gguf"), os.path.join(src, ob.GGUF))
        with open(os.path.join(src, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"release": version, "temperature": 0.2}, f)
        dummy, wall = _common.publish(self.ansible, self.keys, src, self.repo, "%s-%s-%s" % (ob.MODEL, version, ob.VARIANT),
                                      seq, os.path.join(self.run_dir, "publisher.db"),
                                      os.path.join(self.run_dir, "publish-%s.json" % version))
        shutil.rmtree(src)
        self.versions.append(version)
        self.log("published %s (same weights, sequence %d) in %.1f s" % (version, seq, wall))

    def currents_of(self, hosts):
        got = self.currents()
        return dict((h, got.get(h)) for h in hosts)

    def ping_size(self, size):
        proc, wall = self.ansible.adhoc("scale_%d" % size, "ansible.builtin.ping", "")
        _common.check_all_ok(proc.stdout, [host_name(i) for i in range(1, size + 1)], "ping")
        return wall

    def upgrade_size(self, size, version=None):
        """upgrade.yml on scale_<size>; with version, check every host of it serves it afterwards."""
        dummy, wall, dummy2, dummy3, dummy4 = self.upgrade("-e", "model_target=scale_%d" % size)
        if version:
            hosts = [host_name(i) for i in range(1, size + 1)]
            got = self.currents_of(hosts)
            want = dict((h, "%s/%s" % (version, ob.VARIANT)) for h in hosts)
            if got != want:
                raise BenchError("after the upgrade of scale_%d to %s the hosts serve %r" % (size, version, got))
        return wall


def fit(points):
    """Least-squares line through (x, y) points: (slope, intercept)."""
    n = len(points)
    mx = sum(x for x, dummy in points) / float(n)
    my = sum(y for dummy, y in points) / float(n)
    sxx = sum((x - mx) ** 2 for x, dummy in points)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def analyse(res):
    sizes = sorted(set(s["size"] for s in res["samples"]))
    per = {}
    for size in sizes:
        row = {}
        for key, dummy, dummy2 in SERIES:
            vals = [s[key] for s in res["samples"] if s["size"] == size and s.get(key) is not None]
            row[key] = summary(vals) if vals else None
        per[str(size)] = row
    slopes = {}
    for key, dummy, dummy2 in SERIES:
        pts = [(size, per[str(size)][key]["median"]) for size in sizes if per[str(size)][key]]
        if len(pts) >= 2:
            slope, icpt = fit(pts)
            slopes[key] = {"per_host_s": slope, "intercept_s": icpt}
    out = {"sizes": sizes, "per_size": per, "slopes": slopes}
    if "ping" in slopes and slopes["ping"]["per_host_s"] > 0:
        for key in ("noop", "upgrade"):
            if key in slopes:
                slopes[key]["vs_ping"] = slopes[key]["per_host_s"] / slopes["ping"]["per_host_s"]
    return out


def draw_chart(path, an):
    w, h, left, right, top, bottom = 640, 360, 60, 20, 30, 50
    c = Canvas(w, h)
    sizes = an["sizes"]
    ymax = max([an["per_size"][str(s)][k]["max"] for s in sizes for k, dummy, dummy2 in SERIES
                if an["per_size"][str(s)][k]] + [1.0])
    step, yend = _common.chart_axis(ymax, 1.1)
    xend = max(sizes) * 1.05

    def xy(x, y):
        return (int(left + (w - left - right) * x / xend), int(h - bottom - (h - top - bottom) * y / yend))

    v = 0.0
    while v <= yend + 1e-9:
        x0, y0 = xy(0, v)
        c.rect(left, y0, w - right, y0 + 1, (225, 225, 225))
        c.text(4, y0 - 3, "%gs" % v)
        v += step
    c.rect(left, h - bottom, w - right, h - bottom + 1, (0, 0, 0))
    c.rect(left, top, left + 1, h - bottom, (0, 0, 0))
    for s in sizes:
        x0, y0 = xy(s, 0)
        c.text(x0 - 6, h - bottom + 6, str(s))
    c.text(left + (w - left - right) // 2 - 15, h - bottom + 20, "hosts")
    lx = left + 10
    for key, label, color in SERIES:
        pts = [xy(s, an["per_size"][str(s)][key]["median"]) for s in sizes if an["per_size"][str(s)][key]]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
            n = max(abs(xb - xa), abs(yb - ya), 1)
            for i in range(n + 1):
                x, y = xa + (xb - xa) * i // n, ya + (yb - ya) * i // n
                c.rect(x - 1, y - 1, x + 1, y + 1, color)
        for x, y in pts:
            c.rect(x - 3, y - 3, x + 3, y + 3, color)
        c.rect(lx, 10, lx + 10, 18, color)
        lx = c.text(lx + 14, 11, label) + 16
    c.save(path)
    return {"width": w, "height": h}


def render(res, an, doc_path, png_path):
    m = res["machine"]
    lines = _common.section_head(BEGIN, "Cost vs fleet size", "scale_bench.py", res["finished"] or res["started"],
                                 res.get("duration_s", 0.0), "scale.sh")
    lines += ["What `playbooks/upgrade.yml` costs as the fleet grows, next to `ansible -m ping` on the same hosts: "
              "%s, %d round(s). The hosts are podman containers booting systemd and sshd, each running llama.cpp's "
              "`llama-server` (1 thread) on SmolLM2-135M-Instruct Q4_1, one group with the immediate policy, over OpenSSH, "
              "`forks = %s` (ansible.cfg); the controller and every host share this machine's CPUs. "
              "The upgrade publishes a release with the same weights for each size (model_sync hard-links them: "
              "the orchestration's cost, not the network's)." % (
                  ", ".join("%d" % s for s in an["sizes"]), res["params"]["rounds"], res["params"]["forks"]), ""]
    lines += _common.machine_table(m, res, [
        ("Controller", "Python %s, %s, %s" % (m.get("python", "?"), m.get("ansible_core", "?"), m.get("openssh", "?"))),
        ("Hosts", "%d podman containers (%s), memory available %.1f GiB before the fleet, %.1f GiB with it bootstrapped" % (
            max(an["sizes"]), m.get("podman", "?"), res["mem_available_gib"]["before"], res["mem_available_gib"]["bootstrapped"]))])
    lines += ["", "### Results", "", "![wall time vs hosts](%s)" % _common.doc_link(doc_path, png_path), "",
              "| Hosts | ping | no-op upgrade.yml | no-op / ping | upgrade.yml (same weights) | upgrade / ping |",
              "|---|---|---|---|---|---|"]
    for s in an["sizes"]:
        p = an["per_size"][str(s)]

        def cell(k, p=p):
            return "%s (%s–%s)" % (_common.fmt_seconds(p[k]["median"]), _common.fmt_seconds(p[k]["min"]),
                                   _common.fmt_seconds(p[k]["max"])) if p[k] else "—"

        def ratio(k, p=p):
            return "%.2f ×" % (p[k]["median"] / p["ping"]["median"]) if p[k] and p["ping"] else "—"
        cells = (s, cell("ping"), cell("noop"), ratio("noop"), cell("upgrade"), ratio("upgrade"))
        lines.append("| %d | %s | %s | %s | %s | %s |" % cells)
    sl = an["slopes"]
    lines += ["", "| Per added host (least-squares slope over the sizes) | seconds per host | against ping's slope | goal | result |",
              "|---|---|---|---|---|"]
    for key, label, dummy in SERIES:
        if key not in sl:
            continue
        vs = sl[key].get("vs_ping")
        goal = "≤ %.1f ×" % SLOPE_RATIO_GOAL if key == "noop" else "(report)"
        result = _common.verdict(vs <= SLOPE_RATIO_GOAL) if key == "noop" and vs is not None else "—"
        lines.append("| %s | %.3f s | %s | %s | %s |" % (label, sl[key]["per_host_s"], "%.2f ×" % vs if vs else "—", goal, result))
    notes = scale_notes(res, an)
    commands = ["`bash bench/scale.sh` (sizes 6, 12, 24, 48; 1 round), or `bash bench/scale.sh --sizes 6,12,24 --rounds 2`.",
                "`python bench/scale_bench.py --from-results bench/results/scale.json` redraws the chart and rewrites "
                "this section from the raw results."]
    return _common.section_text(lines, notes, commands, "scale", END)


def scale_notes(res, an):
    sl = an["slopes"]
    notes = []
    if "ping" in sl and "noop" in sl:
        notes.append("Per added host, a no-op costs %.3f s and ping %.3f s (%.2f ×); the fixed part (Ansible's start-up, "
                     "the controller play that resolves and verifies the release once, the summary) is %.1f s for the no-op "
                     "and %.1f s for ping." % (
                         sl["noop"]["per_host_s"], sl["ping"]["per_host_s"], sl["noop"].get("vs_ping", 0),
                         sl["noop"]["intercept_s"], sl["ping"]["intercept_s"]))
        notes.append("Straight-line extrapolation to 1000 hosts on this controller: no-op %.0f s, ping %.0f s%s. Here the "
                     "controller and every host share 2 CPUs, so a slope is mostly CPU time per host (Ansible forks a worker "
                     "per host and task; the hosts' sshd, Python and engine run on the same cores); a controller with more "
                     "cores and hosts elsewhere would be bound by forks instead (`forks = %s` here)." % (
                         sl["noop"]["intercept_s"] + 1000 * sl["noop"]["per_host_s"],
                         sl["ping"]["intercept_s"] + 1000 * sl["ping"]["per_host_s"],
                         (", upgrade %.0f s" % (sl["upgrade"]["intercept_s"] + 1000 * sl["upgrade"]["per_host_s"]))
                         if "upgrade" in sl else "", res["params"]["forks"]))
    notes.append("What changes at 1000 hosts: the weights. These upgrades move a few hundred bytes per host; a new 4 GB model "
                 "pushed from the controller (`model_sync` push) is 4 TB of controller egress, so large fleets pull from a "
                 "mirror (`model_sync` with `source: mirror`), or from a site mirror (the `model_mirror` role). A host "
                 "with nothing to do costs one module round trip (the run's read, `model_info` with `converge`, which "
                 "asks its engine for one short completion: on this machine every host's engine computes it on the "
                 "same 2 CPUs as the controller, on a real fleet on its own); a host that is upgraded adds the sync, "
                 "the switch, the probes and the metrics.")
    notes.append("In AWX: split the inventory across job slices (each slice is its own ansible-playbook, on its own execution "
                 "node), keep `model_max_fail_percentage` meaningful per slice, and give the job's container CPU in proportion "
                 "to forks: the per-host cost above is controller CPU.")
    return notes


def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--sizes", default="6,12,24,48", help="fleet sizes, comma-separated (default 6,12,24,48)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per size (default 1)")
    ap.add_argument("--fleet-name", default="scale")
    ap.add_argument("--probe-suite", default="smoke-bench", help="model_probe_suite of the upgrades (default smoke-bench)")
    ap.add_argument("--latency-factor", type=float, default=3.0, help="latency_vs_baseline factor of smoke-bench (default 3.0)")
    _common.add_output_args(ap, "scale", "/var/tmp/modelops-bench-scale", RESULTS, (PNG, "PNG chart of wall time vs hosts"))
    ap.add_argument("--keep-fleet", action="store_true", help="leave the fleet up at the end (for debugging)")
    _common.add_from_results(ap)
    args = ap.parse_args(argv)
    try:
        args.sizes = sorted(set(int(s) for s in args.sizes.split(",")))
    except ValueError:
        ap.error("--sizes: comma-separated numbers, e.g. 6,12,24,48")
    if args.sizes[0] < 1 or args.rounds < 1:
        ap.error("--sizes and --rounds must be positive")
    args.port_offset = 0
    return args


def finish(res, args):
    res.setdefault("load_end", res["load_start"])
    res.setdefault("finished", None)
    an = analyse(res)
    res["summary"] = an
    if an["sizes"]:
        res["chart"] = draw_chart(args.png, an)
        _common.update_doc(args.doc, render(res, an, args.doc, args.png), BEGIN, END)


def mem_available_gib():
    return _common.meminfo_kib("MemAvailable") / float(1 << 20)


def main(argv=None):
    args = parse_args(argv)
    if args.from_results:
        return _common.rewrite_from_results(args, finish, "scale")
    sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
    from gpg_keys import GpgTestKeys  # pylint: disable=import-outside-toplevel

    started, log, run_dir = _common.start_run(args.workdir)
    inv_dir = os.path.join(run_dir, "inventory")
    write_inventory(inv_dir, args.sizes)
    args.inventory = [inv_dir]
    import configparser  # pylint: disable=import-outside-toplevel
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "ansible.cfg"))
    res = {"params": {"sizes": args.sizes, "rounds": args.rounds, "probe_suite": args.probe_suite,
                      "latency_factor": args.latency_factor, "forks": cfg.get("defaults", "forks", fallback="5")},
           "started": utc_now(), "fleet_name": args.fleet_name,
           "machine": _common.machine_info(ansible_core=first_line(["ansible", "--version"]),
                                           openssh=first_line(["ssh", "-V"]), podman=first_line(["podman", "--version"])),
           "load_start": loadavg(), "samples": [], "mem_available_gib": {"before": mem_available_gib()}}
    bench = ScaleBench(args, run_dir, log)
    keys = None
    try:
        bench.artifacts = json.loads(fleet("artifacts").stdout)
        bench.up()
        log("fleet of %d hosts up" % len(bench.hosts))
        keys = GpgTestKeys(os.path.join(run_dir, "gpg"))
        bench.keys = keys
        shutil.copy(bench.artifacts["model_file"], os.path.join(run_dir, "weights.gguf"))
        base = 3001
        bench.publish_same_weights(str(base), 1)
        res["bootstrap_s"] = bench.bootstrap()
        res["mem_available_gib"]["bootstrapped"] = mem_available_gib()
        seq = 1
        for size in args.sizes:
            for rnd in range(1, args.rounds + 1):
                seq += 1
                version = str(base + seq - 1)
                bench.publish_same_weights(version, seq)
                sample = {"size": size, "round": rnd, "version": version}
                try:
                    sample["upgrade"] = bench.upgrade_size(size, version)
                    order = [("noop", lambda s=size: bench.upgrade_size(s)), ("ping", lambda s=size: bench.ping_size(s))]
                    if rnd % 2 == 0:
                        order.reverse()
                    for key, call in order:
                        sample[key] = call()
                    log("%d hosts, round %d: upgrade %.1f s, no-op %.1f s, ping %.1f s" % (
                        size, rnd, sample["upgrade"], sample["noop"], sample["ping"]))
                except Exception as e:  # pylint: disable=broad-except
                    sample["error"] = str(e)[-3000:]
                    log("%d hosts, round %d failed: %s" % (size, rnd, str(e)[:2000]))
                res["samples"].append(sample)
                if args.results:
                    write_json(args.results + ".partial", res)
    finally:
        log("tearing down fleet %s" % args.fleet_name if not args.keep_fleet else "keeping fleet %s" % args.fleet_name)
        _common.clean_up(None if args.keep_fleet else args.fleet_name, keys, run_dir, args.workdir)
    res["load_end"] = loadavg()
    res["duration_s"] = time.time() - started
    res["finished"] = utc_now()
    if args.results:
        write_json(args.results, res)
        try:
            os.unlink(args.results + ".partial")
        except OSError:
            pass
    finish(res, args)
    log("wrote %s, %s and the scale section of %s" % (args.results, args.png, args.doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
