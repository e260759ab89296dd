# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real llama-server serving a real model on every host, under systemd."""

from __future__ import annotations

import json
import re
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


@pytest.fixture(scope="module")
def served(ansible):
    a = ansible.artifacts
    first = ansible.playbook(SERVE, "-e", "fleet_llama_server=%s" % a["llama_server"],
                             "-e", "fleet_model_file=%s" % a["model_file"])
    return first


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
    a = ansible.artifacts
    second = ansible.playbook(SERVE, "-e", "fleet_llama_server=%s" % a["llama_server"],
                              "-e", "fleet_model_file=%s" % a["model_file"])
    for host, c in recap(second.stdout).items():
        assert c["changed"] == 0, (host, c, second.stdout[-3000:])
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
