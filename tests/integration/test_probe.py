# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""modelops.fleet.model_probe against the real llama-server serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import re

import pytest

from test_serve import SERVE

SERVED = "smollm2-135m-instruct"
LEDGER_ROOT = "/srv/probe-test"


@pytest.fixture(scope="module")
def served(ansible):
    """Every host serves SmolLM2-135M-Instruct as smollm2-135m-instruct (as test_serve.py)."""
    a = ansible.artifacts
    return ansible.playbook(SERVE, "-e", "fleet_llama_server=%s" % a["llama_server"],
                            "-e", "fleet_model_file=%s" % a["model_file"])


def probe(ansible, host, **params):
    args = {"served_name": SERVED}
    args.update(params)
    proc = ansible.adhoc(host, "-m", "modelops.fleet.model_probe", "-a", json.dumps(args), "-o", check=False)
    m = re.search(r"^%s \| (\w+)!? => (\{.*\})$" % re.escape(host), proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    return m.group(1), json.loads(m.group(2))


def verdicts(data):
    return {p["name"]: p["passed"] for p in data["probes"]}


def test_smoke_suite_passes(served, ansible):
    for host in ("gpu-01", "edge-01"):  # OpenSSH and paramiko
        status, data = probe(ansible, host, suite="smoke")
        assert status == "SUCCESS" and data["passed"] is True, data
        cap = data["probes"][0]
        assert cap["name"] == "capital" and "Paris" in cap["answers"][0]
        assert data["latency"]["p50_ms"] > 0 and data["baseline"] is None


def test_regression_suite_passes_with_stable_verdicts(served, ansible):
    runs = [probe(ansible, "gpu-02", suite="regression", fail_on_failure=False)[1] for dummy in range(2)]
    for data in runs:
        assert data["passed"] is True, json.dumps(data["probes"], indent=1)
    assert verdicts(runs[0]) == verdicts(runs[1])
    assert set(verdicts(runs[0])) == {"classify_json", "code_summary_keeps_names", "code_summary_mixed_zh_en",
                                      "polite_greeting", "capital_by_meaning"}
    classify = [p for p in runs[0]["probes"] if p["name"] == "classify_json"][0]
    answer = json.loads(classify["answers"][0])
    assert set(answer) >= {"type", "summary"}


def test_baseline_record_then_compare(served, ansible):
    host = "edge-02"
    ansible.adhoc(host, "-m", "ansible.builtin.file", "-a", "path=%s state=absent" % LEDGER_ROOT)
    status, rec = probe(ansible, host, suite="smoke", baseline="record", model_root=LEDGER_ROOT, model_name="smollm2")
    assert status == "CHANGED" and rec["passed"], rec
    assert rec["baseline"]["action"] == "probe_baseline" and rec["baseline"]["probes"]["capital"]["p50_ms"] > 0
    ledger = ansible.adhoc(host, "-m", "ansible.builtin.command", "-a", "cat %s/.modelops/state.json" % LEDGER_ROOT).stdout
    assert '"probe_baseline"' in ledger and '"served": "%s"' % SERVED in ledger
    # Generous factor: 6 hosts share 2 cores, so latency varies with what else runs.
    status, cmp_ = probe(ansible, host, suite="smoke", baseline="compare", model_root=LEDGER_ROOT, model_name="smollm2",
                         latency_factor=20)
    assert status == "SUCCESS" and cmp_["passed"], cmp_
    assert cmp_["baseline"]["time"] == rec["baseline"]["time"]
    assert "skipped" not in cmp_["probes"][0]["reason"]
    # Against an impossibly fast (tiny factor) baseline the same suite fails, naming the probe.
    status, slow = probe(ansible, host, suite="smoke", baseline="compare", model_root=LEDGER_ROOT, model_name="smollm2",
                         latency_factor=0.01)
    assert status == "FAILED" and "probe capital: latency_vs_baseline: p50" in slow["msg"]
    ansible.adhoc(host, "-m", "ansible.builtin.file", "-a", "path=%s state=absent" % LEDGER_ROOT)


def test_wrong_served_name_fails_naming_the_probe(served, ansible, tmp_path):
    suite = tmp_path / "wrong.yml"
    suite.write_text("---\nname: wrong\nprobes:\n  - name: ask_the_wrong_model\n    prompt: Hello\n"
                     "    assert: [{not_empty: true}]\n")
    status, data = probe(ansible, "crit-01", suite=str(suite), served_name="no-such-model")
    assert status == "FAILED" and data["passed"] is False
    assert "probe ask_the_wrong_model:" in data["msg"]
    assert "served name 'no-such-model' is not listed" in data["msg"] and SERVED in data["msg"]


def test_malformed_suite_is_refused_before_any_request(served, ansible, tmp_path):
    suite = tmp_path / "bad.yml"
    suite.write_text("---\nprobes:\n  - name: typo\n    prompt: Hello\n    assert: [{lenght: {max: 5}}]\n")
    status, data = probe(ansible, "edge-03", suite=str(suite))
    assert status == "FAILED"
    assert "malformed probe suite %s at $.probes[0].assert[0] (probe typo)" % suite in data["msg"]
    assert "probes" not in data


DAMAGE = r'''
import os, sys
src, dst = sys.argv[1], sys.argv[2]
size = os.path.getsize(src)
with open(src, "rb") as f, open(dst, "wb") as out:
    out.write(f.read())
# Keep the header, metadata and tokenizer (the first half) intact so llama-server still
# loads the file; zero most of the tensor data behind them.
with open(dst, "r+b") as out:
    start, end = size // 2, size - size // 20
    out.seek(start)
    out.write(b"\0" * (end - start))
'''


def test_damaged_model_fails_the_regression_suite_naming_probes(served, ansible, tmp_path):
    """A GGUF whose weights a fixture zeroed: it loads and answers, and the suite fails it."""
    host = "edge-03"
    script = tmp_path / "damage.py"
    script.write_text(DAMAGE)
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s dest=/tmp/damage.py" % script)
    d = "/srv/models/%s" % SERVED
    ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a",
                  "set -e; mkdir -p {d}/9998/gguf-q4_1; g=$(basename $(ls {d}/current/*.gguf)); "
                  "python3 /tmp/damage.py {d}/current/$g {d}/9998/gguf-q4_1/$g; "
                  "ln -sfn 9998/gguf-q4_1 {d}/current.new && mv -T {d}/current.new {d}/current; "
                  "systemctl restart modelops-inference.service".format(d=d))
    try:
        ready = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                              "served_name=%s unit=modelops-inference.service timeout=120" % SERVED, check=False)
        assert "SUCCESS" in ready.stdout, ready.stdout[-2000:]   # it loads and answers ...
        status, data = probe(ansible, host, suite="regression")
        assert status == "FAILED" and data["passed"] is False  # ... but does not behave
        failing = [p for p in data["probes"] if not p["passed"]]
        assert len(failing) >= 2, json.dumps(data["probes"], indent=1)
        for p in failing:
            assert p["name"] in data["msg"]
            assert p["reason"]
    finally:
        ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a",
                      "set -e; ln -sfn 2411/gguf-q4_1 {d}/current.new && mv -T {d}/current.new {d}/current; "
                      "rm -rf {d}/9998 /tmp/damage.py; systemctl reset-failed modelops-inference.service || true; "
                      "systemctl restart modelops-inference.service".format(d=d))
    ok = ansible.adhoc(host, "-m", "modelops.fleet.inference_ready", "-a",
                       "served_name=%s unit=modelops-inference.service timeout=120" % SERVED)
    assert "SUCCESS" in ok.stdout
