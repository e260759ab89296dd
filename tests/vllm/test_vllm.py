# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real vLLM on the gpu_servers of the demo fleet, llama.cpp on the others: one model,
two variants, two engines, rolled out by upgrade.yml and rollback.yml as users run them.

The tests run in order on one fleet and build on each other's state (bootstrap, canary
upgrade, rollback, then the failures); each says what it starts from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request

from conftest import ALL, GGUF_VARIANT, GPU, HF_VARIANT, LLAMA, MODEL, recap, rollout_steps

VLLM_PORT = 8000


def sh(ansible, host, cmd, check=True):
    proc = ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd, check=check)
    m = re.search(r"^%s \| (?:CHANGED|SUCCESS) \| rc=0 >>\n(.*?)(?=^\S+ \| |\Z)" % re.escape(host),
                  proc.stdout, re.M | re.S)
    if check:
        assert m, proc.stdout[-3000:]
    return m.group(1).strip() if m else proc.stdout


def currents(ansible, hosts=ALL):
    out = ansible.adhoc(",".join(hosts), "-m", "ansible.builtin.shell", "-a",
                        "readlink /srv/models/%s/current || echo none" % MODEL).stdout
    return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", out, re.M))


def served_models(fleet, host):
    """/v1/models of the host, from the controller through the host's published API port."""
    port = fleet["hosts"][host]["api_port"]
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port, timeout=30) as resp:
        return json.loads(resp.read().decode("utf-8"))["data"]


def ask(fleet, host, question, max_tokens=24):
    port = fleet["hosts"][host]["api_port"]
    body = json.dumps({"model": MODEL, "max_tokens": max_tokens, "temperature": 0,
                       "messages": [{"role": "user", "content": question}]}).encode("utf-8")
    req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read().decode("utf-8"))["choices"][0]["message"]["content"]


def engine_pid(ansible, host):
    return sh(ansible, host, "systemctl show -p MainPID --value modelops-inference.service")


def want(version, gpu_version=None):
    out = dict((h, "%s/%s" % (gpu_version or version, HF_VARIANT)) for h in GPU)
    out.update((h, "%s/%s" % (version, GGUF_VARIANT)) for h in LLAMA)
    return out


def test_vllm_bootstrap_serves_safetensors_on_gpu_servers_and_gguf_on_edge(ansible, releases, vllm_fleet):
    releases.publish_both("2411", 1)
    boot = releases.upgrade("-e", "model_version=2411", "-e", "model_upgrade_policy=immediate")
    assert currents(ansible) == want("2411"), boot.stdout[-3000:]
    for host in GPU:
        # The real vLLM, on the engine's port, through the port the host publishes.
        unit = sh(ansible, host, "systemctl show -p ExecStart --value modelops-inference.service")
        assert "/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server --model /srv/models/%s/current" % MODEL in unit
        assert "--port %d" % VLLM_PORT in unit and "--enforce-eager" in unit, unit
        models = served_models(vllm_fleet, host)
        assert [m["id"] for m in models] == [MODEL] and models[0]["owned_by"] == "vllm", models
        assert "paris" in ask(vllm_fleet, host, "What is the capital of France?").lower()
        # The CPU unit shape is a valid unit for systemd itself.
        verify = ansible.adhoc(host, "-m", "ansible.builtin.command", "-a",
                               "systemd-analyze verify /etc/systemd/system/modelops-inference.service")
        assert "rc=0" in verify.stdout
        # ... and no line of it is ignored (a TasksMax joined to the next line was, unseen)
        assert "ignoring" not in verify.stdout, verify.stdout
    for host in LLAMA:
        models = served_models(vllm_fleet, host)
        assert models[0].get("owned_by") != "vllm", models
    # Bounded resources: KV cache and memory limit as inventories/demo states them.
    env = sh(ansible, "gpu-01", "cat /etc/modelops/modelops-inference.env; "
                                "systemctl show -p MemoryMax --value modelops-inference.service; "
                                "echo TasksMax=$(systemctl show -p TasksMax --value modelops-inference.service)")
    assert "VLLM_CPU_KVCACHE_SPACE=1" in env and str(4 * 1024 ** 3) in env and "TasksMax=512" in env, env


def test_variant_the_engine_cannot_serve_is_refused_before_anything_changes(ansible, releases):
    """Starts from the bootstrap: the gpu_servers serve 2411/bf16 on vLLM. A GGUF release
    sent to them is refused on the canary before anything is synced or switched, and the
    rest of the group is left alone."""
    pids = dict((h, engine_pid(ansible, h)) for h in GPU)
    run = releases.upgrade("-e", "model_target=gpu_servers", "-e", "model_variant=%s" % GGUF_VARIANT,
                           "-e", "model_version=2411", check=False)
    assert run.returncode != 0
    flat = " ".join(run.stdout.split())
    assert ("gpu-01: refused %s-2411-%s: engine vllm cannot serve variant %s" % (MODEL, GGUF_VARIANT, GGUF_VARIANT)) in flat, flat[-3000:]
    assert "Nothing was changed: the host still serves 2411/%s" % HF_VARIANT in flat
    for host, counts in recap(run.stdout).items():
        assert counts["changed"] == 0, (host, counts)
    assert currents(ansible, GPU) == dict((h, "2411/%s" % HF_VARIANT) for h in GPU)
    for host in GPU:
        assert sh(ansible, host, "ls /srv/models/%s/2411" % MODEL).split() == [HF_VARIANT]
        assert engine_pid(ansible, host) == pids[host]


def test_vllm_canary_upgrade_passes_the_probe_gate_then_the_rest(ansible, releases, vllm_fleet):
    """The demo's main job: 2412 with each group's policy; gpu-01 is the vLLM canary."""
    releases.publish_both("2412", 2)
    run = releases.upgrade()
    out = run.stdout
    canary = out[out.index("PLAY [Canaries]"):out.index("PLAY [The rest, in batches, within the failure budget]")]
    assert "gpu-01" in canary and "gpu-02" not in canary
    # The canary's baseline and both probe gates ran against vLLM and passed.
    gates = [(task.split(" (")[0], status) for host, task, status in rollout_steps(canary) if host == "gpu-01"
             and task.startswith("Gate")]
    assert gates == [("Gate on the probe suite", "ok"), ("Gate again after the soak", "changed")], canary[-4000:]
    expected = want("2412")
    expected["crit-01"] = "2411/%s" % GGUF_VARIANT  # frozen at 2411
    assert currents(ansible) == expected
    assert re.search(r"^\s+gpu-01: upgraded$", out, re.M) and re.search(r"^\s+gpu-02: upgraded$", out, re.M)
    for host in GPU:
        assert "paris" in ask(vllm_fleet, host, "What is the capital of France?").lower()
        # The restart onto 2412 stopped the old engine as soon as its processes were gone,
        # not after the stop timeout (the role's 60 s; systemd in a host without a cgroup
        # it can watch waits all of it and marks the unit failed).
        journal = sh(ansible, host, "journalctl -u modelops-inference.service --no-pager -o cat")
        assert "Deactivated successfully" in journal and "Processes still around" not in journal, journal[-3000:]
    # status.yml says which engine serves each host.
    table = ansible.playbook("modelops.fleet.status", "-e", "status_format=json",
                             "-e", "status_output=%s" % (releases.base / "status.json"))
    assert table.returncode == 0
    rows = dict((r["host"], r) for r in json.loads((releases.base / "status.json").read_text()))
    assert dict((h, rows[h]["engine"]) for h in ALL) == dict(
        [(h, "vllm") for h in GPU] + [(h, "llamacpp") for h in LLAMA])
    # And so does the rollout report.
    report_line = re.search(r"rollout report: (\S+)", out)
    assert report_line, out[-2000:]
    with open(os.path.join(os.path.dirname(report_line.group(1)), "report.json")) as f:
        report = json.load(f)
    engines = dict((h["host"], h["engine"]) for h in report["hosts"])
    assert engines == dict([(h, "vllm") for h in GPU] + [(h, "llamacpp") for h in LLAMA]), engines
    # Which copy of the collection ran: scripts/test.sh runs this suite from the tarball,
    # installed into a clean collections path (MODELOPS_COLLECTION_UNDER_TEST), not the checkout.
    under = os.environ.get("MODELOPS_COLLECTION_UNDER_TEST")
    if under:
        coll = report["collection"]
        assert coll["installed"] and coll["path"].startswith(os.path.realpath(under) + os.sep), coll


def test_rollback_yml_gates_a_vllm_host_on_the_engines_port(ansible, releases, vllm_fleet):
    """rollback.yml on a vLLM host: switch, restart, wait and probe on vLLM's port (8000)."""
    run = releases.rollback("-e", "rollback_target=gpu-02")
    assert re.search(r"TASK \[Gate on the probe suite\].*?\nchanged: \[gpu-02\]", run.stdout, re.S), run.stdout[-3000:]
    assert currents(ansible, ["gpu-02"]) == {"gpu-02": "2411/%s" % HF_VARIANT}
    assert "paris" in ask(vllm_fleet, "gpu-02", "What is the capital of France?").lower()
    # and forward again, through upgrade.yml
    releases.upgrade("-e", "model_target=gpu_servers")
    assert currents(ansible, GPU) == dict((h, "2412/%s" % HF_VARIANT) for h in GPU)


def _truncate_weights(src):
    weights = src / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()  # a hard link to the cached model: write a new file
    weights.write_bytes(data[:len(data) // 2])


def test_vllm_release_that_cannot_load_is_rolled_back_with_the_engines_error(ansible, releases):
    """Signed, complete and intact as published, but truncated safetensors: vLLM cannot
    load it. The canary is rolled back, the message carries vLLM's own error, and the rest
    of the group is never touched."""
    releases.publish("2501", 3, HF_VARIANT, damage=_truncate_weights)
    run = releases.upgrade("-e", "model_target=gpu_servers", check=False)
    flat = " ".join(run.stdout.split())
    assert run.returncode != 0
    assert "rollout of %s failed on gpu-01" % MODEL in flat, flat[-4000:]
    assert re.search(r"gpu-01: upgrade to %s-2501-%s failed at .*rolled back to 2412/%s, which serves again"
                     % (MODEL, HF_VARIANT, HF_VARIANT), flat), flat[-4000:]
    # vLLM's own words about the file, from the unit's journal
    assert re.search(r"safetensor|incomplete metadata|deserializ", flat, re.I), flat[-4000:]
    assert currents(ansible, GPU) == dict((h, "2412/%s" % HF_VARIANT) for h in GPU)
    assert "2501" not in sh(ansible, "gpu-02", "ls /srv/models/%s" % MODEL)
    ready = ansible.adhoc("gpu-01", "-m", "modelops.fleet.inference_ready", "-a",
                          "url=http://127.0.0.1:%d served_name=%s unit=modelops-inference.service timeout=300"
                          % (VLLM_PORT, MODEL))
    assert "SUCCESS" in ready.stdout


def _zero_weights(src, vllm_env):
    """Every tensor of the release set to zero, written with the vLLM environment's torch."""
    script = r'''
import sys, torch
from safetensors.torch import load_file, save_file
path = sys.argv[1]
tensors = load_file(path)
save_file({k: torch.zeros_like(v) for k, v in tensors.items()}, path + ".new", metadata={"format": "pt"})
'''
    weights = str(src / "model.safetensors")
    subprocess.run([os.path.join(vllm_env, "bin", "python"), "-c", script, weights], check=True)
    os.unlink(weights)
    os.rename(weights + ".new", weights)


def test_vllm_release_that_loads_but_answers_nonsense_is_rolled_back_by_the_probes(ansible, releases):
    """Zeroed weights: vLLM loads the release and answers, but not sensibly."""
    releases.publish("2502", 4, HF_VARIANT,
                     damage=lambda src: _zero_weights(src, ansible.artifacts["vllm_env"]))
    run = releases.upgrade("-e", "model_target=gpu_servers", check=False)
    flat = " ".join(run.stdout.split())
    assert run.returncode != 0
    assert re.search(r"gpu-01: upgrade to %s-2502-%s failed at Gate on the probe suite.*?probe"
                     % (MODEL, HF_VARIANT), flat), flat[-4000:]
    assert "rolled back to 2412/%s, which serves again" % HF_VARIANT in flat
    assert currents(ansible, GPU) == dict((h, "2412/%s" % HF_VARIANT) for h in GPU)


def test_vllm_still_loading_is_not_ready_never_failed(ansible):
    """While vLLM loads, inference_ready waits (no port yet, then 503): a short wait ends
    as "did not become ready", not as a crash; a long enough one succeeds."""
    host = "gpu-02"
    ansible.adhoc(host, "-m", "ansible.builtin.systemd_service", "-a",
                  "name=modelops-inference.service state=restarted")
    early = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                          "url=http://127.0.0.1:%d served_name=%s unit=modelops-inference.service timeout=8"
                          % (VLLM_PORT, MODEL), check=False)
    assert early.returncode != 0
    assert "did not become ready serving %r within 8s" % MODEL in early.stdout, early.stdout[-3000:]
    assert "crashed" not in early.stdout and "not running" not in early.stdout
    late = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                         "url=http://127.0.0.1:%d served_name=%s unit=modelops-inference.service timeout=600"
                         % (VLLM_PORT, MODEL))
    assert "SUCCESS" in late.stdout


def test_vllm_blue_green_judges_the_new_version_before_any_client_reaches_it(ansible, releases, vllm_fleet):
    """inference_server_mode=blue_green on the vLLM hosts (vllm serve --uds, two instances
    behind the front socket on port 8000). Starts from gpu_servers on 2412 in place (the tests
    above). The first run moves them into the blue/green layout at 2412; during the second, a
    client polling gpu-02 through its published port sees every request answered while 2503
    starts beside 2412, is gated on its own socket and takes the clients. The last test: the
    hosts stay blue/green."""
    from client_poller import ClientPoller  # pylint: disable=import-outside-toplevel
    bg = ("-e", "model_target=gpu_servers", "-e", "inference_server_mode=blue_green", "-e", "model_upgrade_policy=immediate")
    # 2412 again after 2502 was seen: a catalog of its own (anti-rollback refuses it in the run's)
    enter = releases.upgrade(*bg, "-e", "model_version=2412", "-e", "model_catalog=%s" % (releases.base / "bg-enter.db"))
    assert re.search(r"^\s+gpu-02: upgraded$", enter.stdout, re.M), enter.stdout[-3000:]
    entered = sh(ansible, "gpu-02", "readlink /var/lib/modelops/modelops-inference/serving.sock").split("/")[-2]
    # the in-place engine handed the clients over to an instance started on 2412 first
    assert entered == "blue", entered
    releases.publish("2503", 5, HF_VARIANT)
    port = vllm_fleet["hosts"]["gpu-02"]["api_port"]
    good = ask(vllm_fleet, "gpu-02", "What is the capital of France? Answer in one word.", max_tokens=8)
    with ClientPoller(port, MODEL, interval=0.2, timeout=60) as poller:
        run = releases.upgrade(*bg)
    seen = poller.summary()
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.stdout.index("Gate the new version before any client") < run.stdout.index("Move the clients to the new version")
    assert currents(ansible, GPU) == dict((h, "2503/%s" % HF_VARIANT) for h in GPU)
    assert sh(ansible, "gpu-02", "readlink /var/lib/modelops/modelops-inference/serving.sock; "
                                 "systemctl is-active modelops-inference@blue.service || true").splitlines() == \
        ["/run/modelops-inference/green/engine.sock", "inactive"]
    # vLLM served every request through the switch, from the same weights.
    assert seen["requests"] > 10 and seen["failed"] == 0, seen
    assert list(seen["answers"]) == [good], seen
