# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real llama-server serving a real model on every host, under systemd."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from conftest import recap

SERVE = "tests/fleet/serve_demo.yml"
ALL_HOSTS = {"gpu-01", "gpu-02", "edge-01", "edge-02", "edge-03", "crit-01"}


def chat(port, content, max_tokens=32):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/chat/completions" % port,
        data=json.dumps({"model": "smollm2-135m-instruct", "max_tokens": max_tokens,
                         "temperature": 0,
                         "messages": [{"role": "user", "content": content}]}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def main_pid(ansible, host):
    proc = ansible.adhoc(host, "-m", "ansible.builtin.command",
                         "-a", "systemctl show -p MainPID --value modelops-inference.service")
    return int(proc.stdout.strip().splitlines()[-1])


def serve_demo(ansible, *extra):
    """Run tests/fleet/serve_demo.yml: SmolLM2-135M-Instruct 2411 served as smollm2-135m-instruct
    (on every host, unless `extra` limits it)."""
    a = ansible.artifacts
    return ansible.playbook(SERVE, "-e", "fleet_llama_server=%s" % a["llama_server"],
                            "-e", "fleet_model_file=%s" % a["model_file"], *extra)


@pytest.fixture(scope="module")
def served(ansible):
    return serve_demo(ansible)


def test_first_run_installs_and_every_host_answers(served, test_fleet):
    counts = recap(served.stdout)
    assert set(counts) == ALL_HOSTS
    for host, c in counts.items():
        assert c["failed"] == 0 and c["unreachable"] == 0, (host, c)
    # Each host answers a real completion through its own published port.
    for name, h in test_fleet["hosts"].items():
        data = chat(h["api_port"], "What is the capital of France?")
        text = data["choices"][0]["message"]["content"]
        assert text.strip(), name
        assert data["model"] == "smollm2-135m-instruct"
        assert data["usage"]["completion_tokens"] > 0, (name, data)
        # Not asserted: the exact text. At temperature 0 SmolLM2-135M answers this prompt
        # with French word salad ("L'Etoile, la Marseillaise, ..."), while "... Answer in
        # one word." gets "The capital of France is Paris." - behaviour, not text.


def test_engine_runs_as_dedicated_user_from_current(served, ansible):
    proc = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                         "pid=$(systemctl show -p MainPID --value modelops-inference.service); "
                         "ps -o user= -p $pid; readlink -f /proc/$pid/cwd >/dev/null; "
                         "tr '\\0' ' ' < /proc/$pid/cmdline")
    for host in ALL_HOSTS:
        block = re.search(r"^%s \| CHANGED \| rc=0 >>\n(.*?)\n(.*?)$" % re.escape(host),
                          proc.stdout, re.M)
        assert block, proc.stdout
        user, cmdline = block.group(1).strip(), block.group(2)
        assert user == "modelops-llm", host
        assert "/srv/models/smollm2-135m-instruct/current/SmolLM2-135M-Instruct.Q4_1.gguf" in cmdline
        assert "--alias smollm2-135m-instruct" in cmdline


def test_second_run_changes_nothing_and_restarts_nothing(served, ansible):
    before = {h: main_pid(ansible, h) for h in ("gpu-01", "edge-01")}
    second = serve_demo(ansible)
    for host, c in recap(second.stdout).items():
        assert c["changed"] == 0, (host, c, second.stdout[-3000:])
    # model_info saw every engine installed as the role installs it: no configuration tasks ran
    assert "inference_server : Install llama-server" not in second.stdout, second.stdout[-3000:]
    assert "inference_server : Write the service environment" not in second.stdout
    after = {h: main_pid(ansible, h) for h in before}
    assert before == after


def test_engine_that_cannot_start_is_reported_with_its_journal(served, ansible):
    """A corrupt model in `current`: the wait fails fast and quotes llama-server's log."""
    host = "edge-02"
    setup = ("set -e; d=/srv/models/smollm2-135m-instruct; mkdir -p $d/9999/gguf-bad; "
             "head -c 4096 /dev/urandom > $d/9999/gguf-bad/broken.gguf; "
             "ln -sfn 9999/gguf-bad $d/current.new; mv -T $d/current.new $d/current; "
             "systemctl restart modelops-inference.service")
    ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", setup)
    try:
        proc = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                             "served_name=smollm2-135m-instruct unit=modelops-inference.service "
                             "timeout=60", check=False)
        assert proc.returncode != 0
        assert "FAILED" in proc.stdout
        assert "Last journal lines of modelops-inference.service" in proc.stdout
        # llama-server's own words about the bad file are in the message.
        assert "crashed and was restarted" in proc.stdout
        assert re.search(r"invalid magic characters.*expected 'GGUF'", proc.stdout), proc.stdout
        assert "failed to load model from /srv/models/smollm2-135m-instruct/current/broken.gguf" in proc.stdout
    finally:
        restore = ("set -e; d=/srv/models/smollm2-135m-instruct; "
                   "ln -sfn 2411/gguf-q4_1 $d/current.new; mv -T $d/current.new $d/current; "
                   "rm -rf $d/9999; systemctl reset-failed modelops-inference.service || true; "
                   "systemctl restart modelops-inference.service")
        ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", restore)
    ok = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                       "served_name=smollm2-135m-instruct unit=modelops-inference.service")
    assert "SUCCESS" in ok.stdout


def test_switch_to_a_release_that_does_not_serve_switches_back(served, ansible):
    """model_switch to a release whose model file is corrupt: llama-server crash-loops, and the
    module points current back at the release it replaced, restarts the engine on it, waits
    until it serves again and fails saying so, in one call; the ledger has both events."""
    host = "edge-02"
    d = "/srv/models/smollm2-135m-instruct"
    # 7779: a version no other test publishes. verify=false: its manifest is a placeholder.
    sh(ansible, host, "set -e; rm -rf {d}/7779; mkdir -p {d}/7779/gguf-q4_1; echo '{{}}' > {d}/7779/gguf-q4_1/manifest.json; "
                      "head -c 4096 /dev/urandom > {d}/7779/gguf-q4_1/broken.gguf".format(d=d))
    try:
        run = ansible.adhoc(host, "-m", "modelops.fleet.model_switch", "-a",
                            "model_name=smollm2-135m-instruct version=7779 variant=gguf-q4_1 verify=false "
                            "unit=modelops-inference.service served_name=smollm2-135m-instruct timeout=60",
                            check=False)
        out = run.stdout
        assert run.returncode != 0, out[-3000:]
        assert "modelops-inference.service does not serve smollm2-135m-instruct 7779/gguf-q4_1" in out, out[-3000:]
        assert "switched back to 2411/gguf-q4_1, which serves again" in out
        assert "switched_back: true" in out, out[-3000:]
        assert sh(ansible, host, "readlink %s/current" % d).strip() == "2411/gguf-q4_1"
        assert served_dir(ansible, host) == "%s/2411/gguf-q4_1" % d
        events = json.loads(sh(ansible, host, "cat /srv/models/.modelops/state.json"))["events"][-2:]
        assert [(e["action"], e["from"], e["to"]) for e in events] == [
            ("activate", "2411/gguf-q4_1", "7779/gguf-q4_1"), ("rollback", "7779/gguf-q4_1", "2411/gguf-q4_1")]
    finally:
        sh(ansible, host, "rm -rf %s/7779" % d)
    ok = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                       "served_name=smollm2-135m-instruct unit=modelops-inference.service")
    assert "SUCCESS" in ok.stdout


def sh(ansible, host, cmd):
    return ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd).stdout.split(">>\n", 1)[-1]


def served_dir(ansible, host):
    """The directory the engine's process was started in, read as its own user (root in a
    container lacks CAP_SYS_PTRACE for another user's /proc/<pid>/cwd)."""
    return sh(ansible, host, "runuser -u modelops-llm -- readlink /proc/$(systemctl show -p MainPID --value "
                             "modelops-inference.service)/cwd").strip()


def task_block(stdout, name):
    """The output of the task whose name contains name, up to the next task."""
    m = re.search(r"TASK \[[^\]]*%s[^\]]*\][^\n]*\n((?:(?!TASK \[)[^\n]*\n)*)" % re.escape(name), stdout)
    return m.group(1) if m else ""


def test_switching_current_restarts_and_serves_the_new_version(served, ansible):
    host = "gpu-02"
    a = ansible.artifacts
    before = main_pid(ansible, host)
    # 7777: a version no other test module publishes (their releases hard-link the same file).
    sh(ansible, host, "d=/srv/models/smollm2-135m-instruct; rm -rf $d/7777; mkdir -p $d/7777 && cp -a $d/2411/gguf-q4_1 $d/7777/ "
                      "&& ln -sfn 7777/gguf-q4_1 $d/current.new && mv -T $d/current.new $d/current")
    args = ("-e", "fleet_llama_server=%s" % a["llama_server"], "-e", "fleet_model_file=%s" % a["model_file"],
            "--limit", host)
    # serve_demo.yml would point current back at 2411: apply the role alone.
    run = ansible.playbook("tests/integration/playbooks/inference_server.yml",
                           "-e", "inference_server_llamacpp_binary_src=%s" % a["llama_server"], *args[4:])
    c = recap(run.stdout)[host]
    assert c["changed"] == 1, run.stdout[-3000:]  # the restart, nothing else
    assert "changed: [%s]" % host in task_block(run.stdout, "Serve what current points to"), run.stdout[-3000:]
    after = main_pid(ansible, host)
    assert after != before
    # The new process was started from the release current points to now.
    assert served_dir(ansible, host) == "/srv/models/smollm2-135m-instruct/7777/gguf-q4_1"
    assert "/current/" in sh(ansible, host, "tr '\\0' ' ' < /proc/%d/cmdline" % after)
    again = ansible.playbook("tests/integration/playbooks/inference_server.yml",
                             "-e", "inference_server_llamacpp_binary_src=%s" % a["llama_server"], *args[4:])
    assert recap(again.stdout)[host]["changed"] == 0
    assert main_pid(ansible, host) == after


def test_engine_left_on_the_old_version_fails_the_attestation(served, ansible):
    """current moved and the engine was not restarted: it still answers, and /props names
    the current link, so only the directory its process was started in tells what it
    loaded. inference_ready's serves catches it; after a restart the same check passes."""
    host = "gpu-01"
    d = "/srv/models/smollm2-135m-instruct"
    ready = ("served_name=smollm2-135m-instruct unit=modelops-inference.service "
             "serves=%s/current timeout=%%d" % d)
    pid = main_pid(ansible, host)
    before = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a", ready % 60)
    assert "%s/2411/gguf-q4_1" % d in before.stdout, before.stdout[-2000:]
    # 7778: a version no other test publishes.
    sh(ansible, host, "rm -rf %s/7778; mkdir -p %s/7778 && cp -a %s/2411/gguf-q4_1 %s/7778/ "
                      "&& ln -sfn 7778/gguf-q4_1 %s/current.new && mv -T %s/current.new %s/current"
                      % ((d,) * 7))
    try:
        stale = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a", ready % 60, check=False)
        assert stale.returncode != 0, stale.stdout[-2000:]
        assert ("modelops-inference.service (pid %d) serves 2411/gguf-q4_1" % pid) in stale.stdout, stale.stdout[-2000:]
        assert "current is 7778/gguf-q4_1" in stale.stdout
        assert main_pid(ansible, host) == pid  # the check only reads
        sh(ansible, host, "systemctl restart modelops-inference.service")
        fresh = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a", ready % 120)
        assert "%s/7778/gguf-q4_1" % d in fresh.stdout, fresh.stdout[-2000:]
    finally:
        sh(ansible, host, "ln -sfn 2411/gguf-q4_1 %s/current.new && mv -T %s/current.new %s/current "
                          "&& systemctl restart modelops-inference.service && rm -rf %s/7778" % ((d,) * 4))
    ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a", ready % 120)


def test_engine_that_cannot_serve_the_variant_fails_before_changing_anything(served, ansible):
    host = "gpu-01"
    pid = main_pid(ansible, host)
    unit_before = sh(ansible, host, "sha256sum /etc/systemd/system/modelops-inference.service")
    run = ansible.playbook("tests/integration/playbooks/inference_server.yml", "--limit", host,
                           "-e", "inference_server_engine=vllm", check=False)
    assert run.returncode != 0
    assert "engine vllm cannot serve variant gguf-q4_1" in run.stdout
    assert "Nothing was changed" in run.stdout
    assert recap(run.stdout)[host]["changed"] == 0
    assert sh(ansible, host, "sha256sum /etc/systemd/system/modelops-inference.service") == unit_before
    assert main_pid(ansible, host) == pid


def test_vllm_unit_renders_and_passes_systemd_analyze_verify_mock_vllm_binary_no_gpu(served, ansible):
    """No GPU and no vLLM here: a stub executable stands in for vllm so the unit can be
    installed (not started) and checked by systemd-analyze verify on a real systemd host."""
    host = "crit-01"
    sh(ansible, host, "mkdir -p /opt/vllm-mock/bin /srv/models-vllm/qwen3-4b-instruct/2507/fp16 && "
                      "printf '#!/bin/sh\\nexit 1\\n' > /opt/vllm-mock/bin/vllm && chmod 755 /opt/vllm-mock/bin/vllm && "
                      "echo '{}' > /srv/models-vllm/qwen3-4b-instruct/2507/fp16/config.json && "
                      "ln -sfn 2507/fp16 /srv/models-vllm/qwen3-4b-instruct/current")
    run = ansible.playbook("tests/integration/playbooks/inference_server.yml", "--limit", host,
                           "-e", "inference_server_engine=vllm", "-e", "inference_server_start=false",
                           "-e", "inference_server_service_name=modelops-vllm",
                           "-e", "inference_server_model_root=/srv/models-vllm",
                           "-e", "inference_server_model_name=qwen3-4b-instruct",
                           "-e", "inference_server_vllm_binary=/opt/vllm-mock/bin/vllm",
                           "-e", "inference_server_vllm_cuda_visible_devices=0,1",
                           "-e", "inference_server_vllm_tensor_parallel_size=2",
                           "-e", "inference_server_api_key=sk-vllm-secret-123")
    assert "sk-vllm-secret-123" not in run.stdout
    verify = ansible.adhoc(host, "-m", "ansible.builtin.command", "-a",
                           "systemd-analyze verify /etc/systemd/system/modelops-vllm.service", check=False)
    assert verify.returncode == 0, verify.stdout
    assert "rc=0" in verify.stdout
    # systemd ignores a line it cannot read and says so; verify still exits 0
    assert "ignoring" not in verify.stdout, verify.stdout
    show = sh(ansible, host, "systemctl show -p ExecStart -p Environment -p User -p Restart -p TasksMax modelops-vllm.service")
    for expected in ("/opt/vllm-mock/bin/vllm serve /srv/models-vllm/qwen3-4b-instruct/current",
                     "--served-model-name qwen3-4b-instruct", "--port 8000", "--max-num-batched-tokens 4096",
                     "--gpu-memory-utilization 0.9", "--max-model-len 32768", "--tensor-parallel-size 2",
                     "CUDA_VISIBLE_DEVICES=0,1", "User=modelops-llm", "Restart=on-failure", "TasksMax=512"):
        assert expected in show, (expected, show)
    env = sh(ansible, host, "stat -c '%a %U' /etc/modelops/modelops-vllm.env; cat /etc/modelops/modelops-vllm.env")
    assert env.startswith("600 root") and "VLLM_API_KEY=sk-vllm-secret-123" in env
    assert sh(ansible, host, "systemctl is-active modelops-vllm.service || true").strip() == "inactive"


def test_api_key_is_required_and_never_logged(served, ansible, test_fleet):
    host = "edge-03"
    a = ansible.artifacts
    key = "sk-llama-secret-456"
    common = ("tests/integration/playbooks/inference_server.yml", "--limit", host,
              "-e", "inference_server_llamacpp_binary_src=%s" % a["llama_server"])
    run = ansible.playbook(*common, "-e", "inference_server_api_key=%s" % key, "-v")
    try:
        assert key not in run.stdout
        port = test_fleet["hosts"][host]["api_port"]
        with pytest.raises(urllib.error.HTTPError) as e:
            chat(port, "hello")
        assert e.value.code == 401
        req = urllib.request.Request(
            "http://127.0.0.1:%d/v1/models" % port, headers={"Authorization": "Bearer " + key})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        # The real engine's 4xx is not retried (the stub-engine unit tests check the same rule):
        # a wrong key fails the probe at once, naming the status.
        bad = ansible.adhoc(host, "-m", "modelops.fleet.model_probe", "-a", json.dumps(
            {"url": "http://127.0.0.1:8080", "served_name": "smollm2-135m-instruct", "suite": "smoke",
             "api_key": "sk-wrong"}), "-o", check=False)
        assert bad.returncode != 0 and "401" in bad.stdout, bad.stdout[-3000:]
        assert "sk-wrong" not in bad.stdout and key not in bad.stdout
    finally:
        ansible.playbook(*common)
    assert chat(test_fleet["hosts"][host]["api_port"], "hello")["choices"][0]["message"]["content"].strip()


def test_model_files_are_read_only_for_the_engine_user(served, ansible):
    out = ansible.adhoc("edge-01", "-m", "ansible.builtin.shell", "-a",
                        "runuser -u modelops-llm -- touch /srv/models/smollm2-135m-instruct/2411/gguf-q4_1/x",
                        check=False).stdout
    assert "Permission denied" in out
