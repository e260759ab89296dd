# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._probe import (
    baseline_from,
    judge_probe,
    percentile,
)
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import SuiteError, normalize_suite
from ansible_collections.modelops.fleet.plugins.plugin_utils._probe_suite import (
    apply_similarity,
    load_suite,
    similarity,
)


@pytest.mark.parametrize("name", ["smoke", "regression", "consistency"])
def test_shipped_suites_load(name):
    path, s = load_suite(name, 1.5)
    assert path.endswith("probe_suites/%s.yml" % name) and s["name"] == name
    for p in s["probes"]:
        assert p["messages"][0]["role"] == "user" and p["repeat"] >= p["min_pass"]
        for a in p["assert"]:
            if "latency_vs_baseline" in a:
                assert a["latency_vs_baseline"]["factor"] == 1.5


def write(tmp_path, text):
    f = tmp_path / "suite.yml"
    f.write_text(text)
    return str(f)


@pytest.mark.parametrize("text,where", [
    ("---\nprobes:\n  - name: a\n    prompt: hi\n    assert: [{length: {min: two}}]\n",
     "at $.probes[0].assert[0].length.min (probe a): 'two' is not of type 'integer'"),
    ("---\nprobes:\n  - name: a\n    prompt: hi\n    assert: [{sounds_right: true}]\n",
     "at $.probes[0].assert[0] (probe a): 'sounds_right' is not one of"),
    ("---\nprobes:\n  - name: a\n    assert: [{not_empty: true}]\n",
     "at $.probes[0] (probe a): a probe needs exactly one of 'prompt' or 'messages'"),
    ("---\nprobes:\n  - name: b\n    prompt: hi\n    repeat: 0\n    assert: [{not_empty: true}]\n",
     "at $.probes[0].repeat (probe b): 0 is less than the minimum of 1"),
    ("---\nprobes:\n  - name: c\n    prompt: hi\n    assert: [{similarity: {min: 0.9}}]\n",
     "at $.probes[0].assert[0].similarity (probe c): 'golden' is a required property"),
    ("---\nprobes: []\n", "at $.probes: [] should be non-empty"),
    ("---\nprobes:\n  - name: d\n    prompt: hi\n    repeat: 1\n    min_pass: 3\n    assert: [{not_empty: true}]\n",
     "probes[0] (d): min_pass (3) is larger than repeat (1)"),
    ("---\nprobes: [\n", "is not valid YAML"),
    ("---\nprobes:\n  - name: e\n    prompt: hi\n    assert: [{keywords_consistent: {min_coverage: 1.5}}]\n",
     "at $.probes[0].assert[0].keywords_consistent.min_coverage (probe e): 1.5 is greater than the maximum of 1"),
    ("---\nprobes:\n  - name: f\n    prompt: hi\n    assert: [{format_consistent: {formats: [yaml]}}]\n",
     "at $.probes[0].assert[0].format_consistent (probe f):"),
    ("---\nprobes:\n  - name: g\n    prompt: hi\n    assert: [{similar_to_previous: {golden: [x]}}]\n",
     "at $.probes[0].assert[0].similar_to_previous (probe g): Additional properties are not allowed"),
])
def test_malformed_suite_names_file_and_path(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    assert path in str(e.value)
    assert where in str(e.value), str(e.value)


def test_missing_suite_and_relative_paths(tmp_path):
    with pytest.raises(SuiteError, match="cannot read the probe suite .*nope.yml.*smoke, regression, consistency"):
        load_suite("nope.yml")
    write(tmp_path, "---\nprobes: [{name: a, prompt: hi, assert: [{not_empty: true}]}]\n")
    path, s = load_suite("suite.yml", search_dirs=[str(tmp_path)])
    assert path == str(tmp_path / "suite.yml") and s["name"] == "suite"


def test_similarity_with_the_real_minilm_model():
    golden = ["The capital of France is Paris."]
    assert similarity("The capital of France is Paris.", golden) > 0.99
    assert similarity("Paris is the capital city of France.", golden) >= 0.82
    assert similarity("I like turtles and green tea.", golden) < 0.3


def test_apply_similarity_fails_runs_below_the_threshold():
    probe = {"name": "cap", "repeat": 2, "min_pass": 2,
             "assert": [{"similarity": {"golden": ["The capital of France is Paris."], "min": 0.82}}]}
    runs = [{"answer": "Paris is the capital of France.", "latency_ms": 5.0, "failures": []},
            {"answer": "Bananas are yellow.", "latency_ms": 7.0, "failures": []},
            {"error": "boom", "transient": True}]
    assert apply_similarity([probe], [runs]) is True
    assert runs[0]["failures"] == [] and runs[1]["failures"][0].startswith("similarity: ")
    res = judge_probe(probe, {"name": "cap", "runs": runs})
    assert not res["passed"] and res["passes"] == 1 and "< min 0.82" in res["reason"]


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2 and percentile(list(range(1, 11)), 90) == 9


def test_consistency_suite_exercises_every_comparison_kind():
    dummy, s = load_suite("consistency")
    kinds = set(k for p in s["probes"] for a in p["assert"] for k in a)
    assert {"keywords_consistent", "format_consistent", "similar_to_previous"} <= kinds
    prompts = " ".join(p["messages"][0]["content"] for p in s["probes"])
    assert "markdown table" in prompts and "JSON" in prompts and "List" in prompts
    assert all(p["temperature"] == 0 for p in s["probes"])   # identical weights, identical answers


def test_similar_to_previous_with_the_real_minilm_model():
    probe = normalize_suite({"probes": [{"name": "cap", "prompt": "Q?", "repeat": 3, "min_pass": 3,
                                         "assert": [{"similar_to_previous": {}}]}]})["probes"][0]
    old = judge_probe(probe, {"name": "cap", "runs": [
        {"answer": "The capital of France is Paris.", "latency_ms": 5.0, "failures": []}]})
    baseline = baseline_from([old], {}, "t", [probe])
    runs = [{"answer": "The capital of France is Paris.", "latency_ms": 5.0, "failures": []},
            {"answer": "Bananas are yellow.", "latency_ms": 5.0, "failures": []},
            {"answer": "\n\n\n", "latency_ms": 5.0, "failures": []}]
    assert apply_similarity([probe], [runs], baseline) is True
    res = judge_probe(probe, {"name": "cap", "runs": runs}, baseline)
    assert res["similarity_to_previous"][0] > 0.99 and res["similarity_to_previous"][1] < 0.5
    assert res["similarity_to_previous"][2] == 0.0          # an empty answer resembles nothing
    assert not res["passed"] and res["passes"] == 1 and res["skipped"] == []
    assert res["kind_failures"][0].startswith("similar_to_previous: ") and "< min 0.8 to the old version's answers" \
        in res["kind_failures"][0]
    # Without a baseline nothing is judged, and the probe says it was skipped.
    runs = [{"answer": "Bananas are yellow.", "latency_ms": 5.0, "failures": []}]
    apply_similarity([probe], [runs], None)
    res = judge_probe(probe, {"name": "cap", "runs": runs}, None)
    assert runs[0]["failures"] == [] and "similarity_to_previous" not in res
    assert res["skipped"][0].startswith("similar_to_previous skipped: no baseline to compare with")
