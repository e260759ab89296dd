"""The latency judge at its production default (factor 1.3) on the shared 2-core fleet.

    python bench/latency_judge_bench.py [--upgrades 20]

Brings up inventories/demo with the integration suite's llama.cpp overlay (every host on
llama.cpp, GGUF) as fleet "jbench", every port shifted by 7000, publishes signed releases
of the demo model (the same weights under a new version each time: a good upgrade), and:

- rolls the gpu_servers forward --upgrades times with upgrade.yml and the shipped smoke
  suite, nothing overridden (canary gpu-01 with a fresh baseline, then gpu-02, judged
  against its 7-day history): every rollback here is a false rollback, and is counted;
- rolls one more good release out to the same group with the canary's llama-server
  sharing its unit with six busy loops (a wrapper installed as inference_server_llamacpp_binary;
  systemd in the cgroup-v1 test hosts does not enforce a CPUQuota): a really slower engine,
  which the judge must fail.

Every verdict comes from the rollout_report callback's report.json (latency_verdict of each
probe). Writes bench/results/latency_judge.json and the "latency-judge" section of
docs/performance.md.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

import _common
from _common import REPO, machine_info, summary, utc_now

FLEET_NAME = "jbench"
PORT_OFFSET = 7000
RESULTS = os.path.join(REPO, "bench", "results", "latency_judge.json")
BEGIN, END = "<!-- latency-judge:begin -->", "<!-- latency-judge:end -->"
MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"
GPU = ("gpu-01", "gpu-02")


class Bench(object):
    """Releases of the demo model (tests/vllm/conftest.py's Releases, GGUF variant) and
    upgrade.yml runs, each with its rollout report in a directory of its own."""

    def __init__(self, vc, ansible, keys, base):
        self.vc = vc
        self.releases = vc.Releases(ansible, keys, pathlib.Path(base))
        self.ansible = ansible
        self.reports = os.path.join(base, "reports")

    def publish(self, version, seq):
        self.releases.publish(version, seq, VARIANT)

    def upgrade(self, version, label, extra=None, target=None):
        overrides = dict(self.releases.overrides(), model_version=version)
        overrides.update(extra or {})
        if target:
            overrides["model_target"] = target
        report_dir = os.path.join(self.reports, label)
        t0 = time.time()
        proc = self.ansible.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), check=False,
                                     env={"MODELOPS_REPORT_DIR": report_dir})
        wall = time.time() - t0
        with open(os.path.join(report_dir, "latest", "report.json")) as f:
            report = json.load(f)
        return proc, wall, report


def verdicts(report):
    """{host: [latency_verdict of each probe run of the gate, in order]} and each host's state."""
    out, states = {}, {}
    for h in report["hosts"]:
        states[h["host"]] = h["state"]
        for run in h.get("probes") or []:
            if run["step"] != "probe":
                continue
            for p in run["probes"]:
                if p.get("latency_verdict"):
                    out.setdefault(h["host"], []).append(p["latency_verdict"])
    return out, states


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upgrades", type=int, default=20)
    ap.add_argument("--keep-fleet", action="store_true")
    args = ap.parse_args()
    log = _common.make_log()
    vc = _common.load_vllm_conftest(FLEET_NAME)
    itc = vc.itc
    with open(os.path.join(os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet"), "artifacts.json")) as f:
        artifacts = json.load(f)
    base = tempfile.mkdtemp(prefix="jbench-")
    from gpg_keys import GpgTestKeys
    keys = GpgTestKeys(os.path.join(base, "gpg"))
    started = time.time()
    rounds = []
    try:
        log("fleet up (%s, ports +%d)" % (FLEET_NAME, PORT_OFFSET))
        up = itc.fleet("up", "--name", FLEET_NAME, *itc.fleet_inventory_args(), "--port-offset", str(PORT_OFFSET))
        state = json.loads(up.stdout)
        ansible = itc.Ansible(itc.INVENTORIES + [state["inventory"]], artifacts)
        b = Bench(vc, ansible, keys, base)
        itc.fresh_hosts(ansible, MODEL)
        b.publish("2400", 1)
        proc, wall, dummy = b.upgrade("2400", "boot", extra={"model_upgrade_policy": "immediate"})
        if proc.returncode != 0:
            raise _common.BenchError("bootstrap failed:\n%s" % proc.stdout[-4000:])
        for i in range(args.upgrades):
            version = "24%02d" % (i + 1)
            b.publish(version, i + 2)
            proc, wall, report = b.upgrade(version, "good-%02d" % (i + 1), target="gpu_servers")
            v, states = verdicts(report)
            rounds.append({"kind": "good", "version": version, "rc": proc.returncode, "wall_s": round(wall, 1),
                           "states": states, "verdicts": v})
            log("good %s: rc=%d %s %s" % (version, proc.returncode, states,
                                          dict((h, ["%s/%s r=%s" % (x["verdict"], x["source"], x.get("ratio"))
                                                    for x in xs]) for h, xs in v.items())))
        version = "24%02d" % (args.upgrades + 1)
        b.publish(version, args.upgrades + 2)
        wrapper = os.path.join(base, "llama-server-slow")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nfor i in 1 2 3 4 5 6; do (while :; do :; done) & done\n"
                    "exec /usr/local/bin/llama-server \"$@\"\n")
        proc, wall, report = b.upgrade(version, "slow", target="gpu_servers", extra={
            "inference_server_llamacpp_binary_src": wrapper,
            "inference_server_llamacpp_binary": "/usr/local/lib/modelops/llama-server-slow"})
        v, states = verdicts(report)
        rounds.append({"kind": "slow", "version": version, "rc": proc.returncode, "wall_s": round(wall, 1),
                       "states": states, "verdicts": v})
        log("slow %s: rc=%d %s %s" % (version, proc.returncode, states, v))
    finally:
        if not args.keep_fleet:
            itc.fleet("down", "--name", FLEET_NAME, check=False)
        keys.stop()
    good = [r for r in rounds if r["kind"] == "good"]
    false_rollbacks = sum(1 for r in good for h in GPU if r["states"].get(h) not in ("upgraded",))
    judged = [x for r in good for xs in r["verdicts"].values() for x in xs]
    slow = [r for r in rounds if r["kind"] == "slow"][0]
    slow_v = slow["verdicts"].get("gpu-01", [])
    res = {
        "machine": machine_info(), "when": utc_now(), "wall_s": round(time.time() - started, 1),
        "upgrades": args.upgrades, "false_rollbacks": false_rollbacks,
        "verdict_counts": dict((k, sum(1 for x in judged if x["verdict"] == k))
                               for k in ("pass", "fail", "inconclusive", "none")),
        "sources": dict((k, sum(1 for x in judged if x["source"] == k)) for k in ("fresh", "history")),
        "ratio": summary([x["ratio"] for x in judged if x.get("ratio") is not None]),
        "samples_new": summary([x["n_new"] for x in judged]),
        "slow": {"rc": slow["rc"], "states": slow["states"], "verdicts": slow_v},
        "rounds": rounds,
    }
    _common.write_json(RESULTS, res)
    _common.update_doc(os.path.join(REPO, "docs", "performance.md"), render(res), BEGIN, END)
    shutil.rmtree(base, ignore_errors=True)
    log("false rollbacks: %d of %d good upgrades of %d hosts; slow canary: %s" % (
        false_rollbacks, args.upgrades, len(GPU), [x["verdict"] for x in slow_v]))
    return 0 if false_rollbacks == 0 and any(x["verdict"] == "fail" for x in slow_v) else 1


def render(res):
    m = res["machine"]
    r = res["ratio"]
    vc = res["verdict_counts"]
    slow = res["slow"]["verdicts"][0] if res["slow"]["verdicts"] else {}
    lines = [
        BEGIN,
        "## Latency judge at the default factor (1.3)",
        "",
        "`python bench/latency_judge_bench.py --upgrades %d`, %s, %s (%d CPUs, %.0f GiB), fleet `jbench` "
        "(inventories/demo with every host on llama.cpp, 6 hosts on these cores), the shipped `smoke` suite, "
        "nothing overridden." % (res["upgrades"], res["when"], m["cpu_model"], m["nproc"], m["ram_gib"]),
        "",
        "| | result |",
        "|---|---|",
        "| good upgrades of gpu_servers (canary gpu-01, then gpu-02) | %d, %d host upgrades |" % (
            res["upgrades"], res["upgrades"] * 2),
        "| false rollbacks | **%d** |" % res["false_rollbacks"],
        "| verdicts of the good upgrades | pass %d, fail %d, inconclusive %d, none %d |" % (
            vc["pass"], vc["fail"], vc["inconclusive"], vc["none"]),
        "| baseline used | fresh %d (canary), history %d (gpu-02) |" % (res["sources"]["fresh"], res["sources"]["history"]),
        "| new p50 / baseline, good upgrades | median %s, min %s, max %s |" % (r.get("median"), r.get("min"), r.get("max")),
        "| samples per judgement | median %s, max %s |" % (res["samples_new"].get("median"), res["samples_new"].get("max")),
        "| same release, canary engine sharing its unit with six busy loops | %s on gpu-01 (ratio %s, p=%s, %s samples); run rc=%d |" % (
            slow.get("verdict"), slow.get("ratio"), slow.get("p_value"), slow.get("n_new"), res["slow"]["rc"]),
        "",
        "\"none\" is a host judged with no baseline: gpu-02 (not a canary) is judged against its own "
        "history, which its first upgrade fills with `samples` samples. Ratios against the history are "
        "against its P90, so they run lower than the canary's against a fresh median.",
        "",
        "Wall time of the whole benchmark %.0f s." % res["wall_s"],
        END,
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
