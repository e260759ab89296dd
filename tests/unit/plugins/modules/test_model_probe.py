# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import Ledger

SERVED = "smollm2"
KEY = "sk-probe-secret-789"


def varying(engine, replies=None, fail_first=0, status=500):
    """Make a StubEngine answer the replies in turn, and HTTP `status` to the first
    `fail_first` chat requests."""
    base = engine.server.RequestHandlerClass
    state = {"n": 0, "fails": fail_first}

    class Handler(base):
        def do_POST(self):
            if self.path == "/v1/chat/completions":
                if state["fails"] > 0:
                    state["fails"] -= 1
                    length = int(self.headers.get("Content-Length", 0))
                    self.rfile.read(length)
                    engine.requests.append(("POST", self.path, {"failed": status}))
                    return self._send(status, {"error": {"message": "boom"}})
                if replies:
                    engine.reply = replies[state["n"] % len(replies)]
                    state["n"] += 1
            return base.do_POST(self)

    engine.server.RequestHandlerClass = Handler
    return engine


def suite(*probes, **defaults):
    return json.dumps({"name": "t", "defaults": defaults, "probes": list(probes)})


def probe(asserts, name="p", **kw):
    d = {"name": name, "prompt": "What is the capital of France?", "assert": asserts}
    d.update(kw)
    return d


def run(module_runner, engine, s, **kw):
    args = dict(url=engine.url, served_name=SERVED, suite=s, model_root=kw.pop("model_root", "/nonexistent"))
    args.update(kw)
    return module_runner("model_probe", **args)


CASES = [
    # kind, argument, passing reply, failing reply, words in the failure reason
    ("not_empty", True, "Paris.", "   ", "empty"),
    ("length", {"min": 2, "max": 40}, "Paris.", "P", "< min 2"),
    ("length", {"min": 2, "max": 10}, "Paris.", "Paris is the capital, of course.", "> max 10"),
    ("contains_any", ["Paris", "paris"], "It is Paris.", "It is Lyon.", "none of"),
    ("contains_all", ["user_id", "score"], "uses user_id and score", "uses user_id only", "['score'] missing"),
    ("not_contains", ["<think>"], "Paris.", "<think>hmm</think>Paris", "found"),
    ("regex", "(?i)^paris", "paris!", "Lyon", "does not match"),
    ("is_json", True, '{"a": 1}', "not json at all", "not JSON"),
    ("json_schema", {"type": "object", "required": ["type", "summary"],
                     "properties": {"type": {"enum": ["bug", "ux"]}, "summary": {"type": "string", "minLength": 5}}},
     '{"type": "bug", "summary": "crashes on start"}', '{"type": "feature", "summary": "x"}', "not one of"),
    ("json_schema", {"type": "object", "required": ["type", "summary"]},
     '{"type": "bug", "summary": "s"}', '{"type": "bug"}', "lacks required key 'summary'"),
    ("language", "zh", "巴黎是法国的首都。", "Paris is the capital.", "letters are zh"),
    ("language", "en", "Paris is the capital.", "巴黎是法国的首都。", "letters are en"),
]


@pytest.mark.parametrize("kind,arg,good,bad,why", CASES, ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_each_assertion_kind_passes_and_fails_stub_engine(module_runner, stub_engine, kind, arg, good, bad, why):
    s = suite(probe([{kind: arg}]))
    with stub_engine(models=[SERVED], reply=good) as engine:
        res = run(module_runner, engine, s)
        assert res["passed"] is True, res
        assert res["probes"][0]["kind_failures"] == []
        engine.reply = bad
        res = run(module_runner, engine, s)
    assert res["failed"] is True and res["passed"] is False
    p = res["probes"][0]
    assert p["passed"] is False and p["kind_failures"][0].startswith(kind + ":"), p
    assert why in p["kind_failures"][0], p
    assert "probe p: 0 of 1 runs passed" in res["msg"] and why in res["msg"]


def test_latency_ms_stub_engine(module_runner, stub_engine):
    with stub_engine(models=[SERVED]) as engine:
        assert run(module_runner, engine, suite(probe([{"latency_ms": {"max": 60000}}])))["passed"]
        res = run(module_runner, engine, suite(probe([{"latency_ms": {"max": 0.0001}}])))
    assert "latency_ms:" in res["probes"][0]["kind_failures"][0] and "> max" in res["msg"]


def test_request_carries_the_probe_settings_stub_engine(module_runner, stub_engine):
    s = suite({"name": "p", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
               "response_format": {"type": "json_object"}, "max_tokens": 7, "assert": [{"is_json": True}]})
    with stub_engine(models=[SERVED], reply='{"ok": true}') as engine:
        res = run(module_runner, engine, s)
    assert res["passed"]
    body = [r[2] for r in engine.requests if r[0] == "POST"][0]
    assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] == 7
    assert body["messages"][0]["role"] == "system" and body["model"] == SERVED


def test_k_of_n_stub_engine(module_runner, stub_engine):
    s = suite(probe([{"contains_any": ["Paris"]}], repeat=3, min_pass=2))
    with varying(stub_engine(models=[SERVED]), replies=["Paris", "Lyon", "Paris"]) as engine:
        res = run(module_runner, engine, s)
    p = res["probes"][0]
    assert res["passed"] and p["passes"] == 2 and p["attempts"] == 3 and len(p["latencies_ms"]) == 3
    assert p["answers"] == ["Paris", "Lyon", "Paris"]
    assert p["reason"].startswith("2 of 3 runs passed (need 2)")
    with varying(stub_engine(models=[SERVED]), replies=["Paris", "Lyon", "Lyon"]) as engine:
        res = run(module_runner, engine, s)
    assert not res["passed"] and "1 of 3 runs passed (need 2)" in res["msg"]


def test_transient_errors_are_retried_not_counted_as_failures_stub_engine(module_runner, stub_engine):
    s = suite(probe([{"contains_any": ["Paris"]}], retries=2))
    with varying(stub_engine(models=[SERVED]), fail_first=2) as engine:
        res = run(module_runner, engine, s)
    p = res["probes"][0]
    assert res["passed"], res
    assert p["attempts"] == 3 and p["passes"] == 1 and p["kind_failures"] == []
    assert len(p["transient_errors"]) == 2 and "HTTP 500" in p["transient_errors"][0]
    # More transient errors than retries: no answer, and not reported as misbehaviour.
    with varying(stub_engine(models=[SERVED]), fail_first=5) as engine:
        res = run(module_runner, engine, s)
    p = res["probes"][0]
    assert not res["passed"] and p["kind_failures"] == []
    assert p["reason"].startswith("no answer (not a behavioural failure)") and "HTTP 500" in p["reason"]


def test_client_errors_are_not_retried_stub_engine(module_runner, stub_engine):
    s = suite(probe([{"not_empty": True}], retries=3))
    with varying(stub_engine(models=[SERVED]), fail_first=1, status=400) as engine:
        res = run(module_runner, engine, s)
    assert not res["passed"] and res["probes"][0]["attempts"] == 1 and "HTTP 400" in res["msg"]


def test_wrong_served_name_fails_every_probe_by_name_stub_engine(module_runner, stub_engine):
    s = suite(probe([{"not_empty": True}], name="first"), probe([{"not_empty": True}], name="second"))
    with stub_engine(models=["other-model"]) as engine:
        res = run(module_runner, engine, s)
    assert not [r for r in engine.requests if r[0] == "POST"]
    assert "probe first:" in res["msg"] and "probe second:" in res["msg"]
    assert "served name 'smollm2' is not listed" in res["msg"] and "other-model" in res["msg"]


def test_fail_on_failure_false_reports_without_failing_stub_engine(module_runner, stub_engine):
    with stub_engine(models=[SERVED], reply="") as engine:
        res = run(module_runner, engine, suite(probe([{"not_empty": True}])), fail_on_failure=False)
    assert not res.get("failed") and res["passed"] is False


def test_malformed_suite_is_refused_before_any_request_stub_engine(module_runner, stub_engine):
    bad = suite(probe([{"regex": "(unclosed"}], name="broken"))
    with stub_engine(models=[SERVED]) as engine:
        res = run(module_runner, engine, bad)
        assert res["failed"] and "probes[0] (broken)" in res["msg"] and "assert[0].regex" in res["msg"]
        res = run(module_runner, engine, suite(probe([{"sounds_right": True}])))
        assert res["failed"] and "unknown kind 'sounds_right'" in res["msg"]
        res = run(module_runner, engine, suite(probe([{"not_empty": True}], repeat=1, min_pass=2)))
        assert res["failed"] and "min_pass (2) is larger than repeat (1)" in res["msg"]
    assert engine.requests == []


def test_baseline_record_then_compare_stub_engine(module_runner, stub_engine, tmp_path):
    root = str(tmp_path / "models")
    os.makedirs(root)
    s = suite(probe([{"latency_vs_baseline": {}}], repeat=2))
    with stub_engine(models=[SERVED]) as engine:
        res = run(module_runner, engine, s, model_root=root, baseline="compare")
        assert res["passed"] and "no baseline" in res["probes"][0]["reason"] and res["baseline"] is None
        # Nothing to compare with: the judge's 5 samples all the same (2 runs + 3 more), for
        # the host's history.
        assert len(res["probes"][0]["latency_samples_ms"]) == 5
        assert len([r for r in engine.requests if r[0] == "POST"]) == 5
        rec = run(module_runner, engine, s, model_root=root, baseline="record", model_name="m")
        assert rec["changed"] and rec["baseline"]["probes"]["p"]["p50_ms"] > 0
        ev = Ledger(root).tail(1)[0]
        assert ev["action"] == "probe_baseline" and ev["model"] == "m" and ev["served"] == SERVED
        assert set(ev["latency"]) == {"p50_ms", "p90_ms"} and ev["probes"]["p"]["answers"] == ["Paris.", "Paris."]
        # The baseline holds the judge's 5 samples (2 runs + 3 latency-only requests).
        assert len(ev["probes"]["p"]["latencies_ms"]) == 5
        # The recorded baseline is fast: make it impossibly fast to force a slow verdict.
        led = Ledger(root)
        led.events[-1]["probes"]["p"]["latencies_ms"] = [0.001, 0.0011, 0.0012, 0.0009, 0.001]
        led.save()
        # This host's history (the stub's usual latency, from the runs above) lifts a fresh
        # baseline faster than usual, by at most 1.5x: still far too fast for the stub.
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        verdict = res["probes"][0]["latency_verdict"]
        assert not res["passed"] and verdict["lifted_by"] == 1.5 and "lift capped at 1.5x" in verdict["message"], res
        # Without a history, the fresh baseline alone is the level.
        os.remove(os.path.join(root, ".modelops", "latency.json"))
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        assert not res["passed"], res
        assert "latency_vs_baseline fail: significantly slower" in res["msg"] and "1.30 x 5 fresh samples" in res["msg"]
        assert res["probes"][0]["latency_verdict"]["source"] == "fresh"
        assert res["baseline"]["time"] == ev["time"]
        led.events[-1]["probes"]["p"]["latencies_ms"] = [10.0 ** 6] * 5
        led.save()
        res = run(module_runner, engine, s, model_root=root, baseline="compare", latency_factor=2.0)
        assert res["passed"], res
        assert res["probes"][0]["latency_verdict"]["verdict"] == "pass" and "2.00 x" in res["probes"][0]["reason"]


def test_latency_history_is_the_baseline_without_a_recorded_one_stub_engine(module_runner, stub_engine, tmp_path):
    root = str(tmp_path / "models")
    os.makedirs(os.path.join(root, ".modelops"))
    s = suite(probe([{"latency_vs_baseline": {}}]))
    with stub_engine(models=[SERVED]) as engine:
        first = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        assert first["passed"] and first["changed"] is False
        path = os.path.join(root, ".modelops", "latency.json")
        hist = json.load(open(path))["probes"]
        # The first upgrade, unjudged, fills the history with the judge's 5 samples.
        assert [len(v) for v in hist.values()] == [5]
        # A history of impossibly fast answers: the sign test against its P90 fails the probe.
        key = list(hist)[0]
        import time as _time
        now = _time.time()
        hist[key] = [[now - 60, 0.001]] * 10
        json.dump({"schema": 1, "probes": hist}, open(path, "w"))
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        assert not res["passed"] and res["probes"][0]["latency_verdict"]["source"] == "history", res
        assert "P90 0 ms of this host's 10 recent samples" in res["msg"]
        # Samples older than 7 days are not a baseline (and are pruned on the next write).
        hist[key] = [[now - 8 * 86400, 0.001]] * 10
        json.dump({"schema": 1, "probes": hist}, open(path, "w"))
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        assert res["passed"] and "latency_vs_baseline skipped" in res["probes"][0]["reason"], res
        assert all(t > now - 86400 for t, ms in json.load(open(path))["probes"][key])


def test_api_key_is_sent_and_never_in_output_stub_engine(module_runner, stub_engine):
    with stub_engine(models=[SERVED], api_key=KEY, reply="Paris") as engine:
        res = run(module_runner, engine, suite(probe([{"not_empty": True}])), api_key=KEY)
        assert res["passed"]
        assert KEY not in json.dumps(res)
        bad = run(module_runner, engine, suite(probe([{"not_empty": True}])), api_key="wrong")
    assert not bad["passed"] and "401" in bad["msg"]
    chats = [r for r in engine.requests if r[0] == "POST"]
    assert len(chats) == 1  # the wrong key already fails /v1/models


@pytest.mark.skipif(shutil.which("ansible") is None, reason="needs the ansible CLI of the venv")
def test_action_plugin_end_to_end_on_localhost_stub_engine(stub_engine, tmp_path):
    """The action plugin through ansible: shipped suite, similarity, secrets not logged."""
    with stub_engine(models=[SERVED], api_key=KEY, reply="The capital of France is Paris.") as engine:
        args = {"url": engine.url, "served_name": SERVED, "suite": "regression", "api_key": KEY,
                "model_root": str(tmp_path), "fail_on_failure": False}
        proc = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,", "-vvv", "-o",
                               "-e", "ansible_python_interpreter=%s" % sys.executable,
                               "-m", "modelops.fleet.model_probe", "-a", json.dumps(args)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
    assert KEY not in proc.stdout
    out = proc.stdout
    m = re.search(r"^localhost \| (\w+)!? => (\{.*\})$", out, re.M)
    assert m, out[-3000:]
    data = json.loads(m.group(2))
    assert data["passed"] is False and not data.get("failed")  # the stub's fixed answer is not JSON
    probes = {p["name"]: p for p in data["probes"]}
    assert probes["capital_by_meaning"]["passed"] is True and probes["capital_by_meaning"]["similarity"] == [1.0]
    assert data["invocation"]["module_args"]["suite"].endswith("probe_suites/regression.yml")
    assert "is_json: the answer is not JSON" in probes["classify_json"]["kind_failures"][0]


TABLE = "| Planet | Moons |\n|---|---|\n| Earth | 1 |\n| Mars | 2 |"


def test_consistency_with_the_answers_recorded_on_the_old_version_stub_engine(module_runner, stub_engine, tmp_path):
    """keywords_consistent and format_consistent judged on the target against the baseline."""
    root = str(tmp_path / "models")
    os.makedirs(root)
    s = suite(probe([{"format_consistent": True}, {"keywords_consistent": {"min_coverage": 0.6}}], name="table"))
    with stub_engine(models=[SERVED], reply=TABLE) as engine:
        # No baseline yet: judged as passed on the rest, but the skip is visible.
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
        assert res["passed"] and res["probes"][0]["skipped"][0].startswith("format_consistent skipped: no baseline")
        assert res["skipped_assertions"] == ["table: " + x for x in res["probes"][0]["skipped"]]
        assert len(res["skipped_assertions"]) == 2 and "skipped" in res["probes"][0]["reason"]
        # ... and with require_baseline it fails, naming the probe.
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m", require_baseline=True)
        assert res["failed"] and "probe table: format_consistent: no baseline to compare with (require_baseline)" in res["msg"]
        rec = run(module_runner, engine, s, model_root=root, baseline="record", model_name="m")
        assert rec["changed"] and rec["baseline"]["probes"]["table"]["answers"] == [TABLE]
        assert Ledger(root).tail(1)[0]["probes"]["table"]["request"] == rec["baseline"]["probes"]["table"]["request"]
        # Same answer on the "new version": judged, nothing skipped.
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m", require_baseline=True)
        assert res["passed"] and res["skipped_assertions"] == [] and res["probes"][0]["keyword_coverage"] == [1.0]
        # The new version loses the table and most key terms.
        engine.reply = "Earth has one moon."
        res = run(module_runner, engine, s, model_root=root, baseline="compare", model_name="m")
    assert res["failed"] and not res["passed"]
    assert "probe table: 0 of 1 runs passed (need 1): format_consistent: old answer was a markdown table, " \
           "new answer has no header/separator row" in res["msg"]
    kinds = res["probes"][0]["kind_failures"]
    assert kinds[1].startswith("keywords_consistent: kept 1 of the old answer's 6 key terms (17% < min 60%), "
                               "lost: planet, moons, 1, mars, 2; new answer "), kinds


def test_a_passing_gate_is_recorded_a_failing_one_is_not_stub_engine(module_runner, stub_engine, tmp_path):
    """gate=: the ledger says the release passed its gate only when the suite passed."""
    root = str(tmp_path / "models")
    os.makedirs(root)
    s = suite(probe([{"contains_any": ["Paris"]}]))
    with stub_engine(models=[SERVED], reply="Lyon.") as engine:
        bad = run(module_runner, engine, s, model_root=root, model_name="m", gate="2601/gguf-q4_1")
        assert bad["failed"] and bad["gate_event"] is None
        assert [e for e in Ledger(root).events if e.get("action") == "gate"] == []
        engine.reply = "Paris."
        good = run(module_runner, engine, s, model_root=root, model_name="m", gate="2601/gguf-q4_1")
    assert good["passed"] and good["changed"], good
    event = Ledger(root).tail(1)[0]
    assert (event["action"], event["model"], event["release"], event["suite"]) == ("gate", "m", "2601/gguf-q4_1", "t")
    assert good["gate_event"] == event


def test_a_gate_needs_the_model_name_stub_engine(module_runner, stub_engine, tmp_path):
    with stub_engine(models=[SERVED], reply="Paris.") as engine:
        res = run(module_runner, engine, suite(probe([{"not_empty": True}])), model_root=str(tmp_path),
                  gate="2601/gguf-q4_1")
    assert res["failed"] and "gate=2601/gguf-q4_1 needs model_name" in res["msg"], res
    assert [r for r in engine.requests if r[0] == "POST"] == []
