# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version-to-version probes: key terms, formats, coverage judgement, missing baselines."""

from __future__ import annotations

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._probe import (
    apply_previous,
    baseline_from,
    judge_probe,
    previous_answers,
    request_digest,
    skipped_summary,
    summarize,
)
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import SuiteError, normalize_suite
from ansible_collections.modelops.fleet.plugins.module_utils._probe_text import (
    detect_formats,
    extract_keywords,
    format_losses,
    keyword_coverage,
)


# --------------------------------------------------------------------------- key terms

def test_keywords_english_drops_stop_words_and_keeps_order():
    assert extract_keywords("The capital of France is Paris.") == ["capital", "france", "paris"]
    # Case folded for words, duplicates once, negations kept, one-letter words dropped.
    assert extract_keywords("It is NOT Paris; it is not paris, I think. x") == ["not", "paris", "think"]


def test_keywords_identifiers_and_numbers():
    text = "calculate_score(user_id, score) returns a dict; iOS17 and calculateScore, 1,000 users, 17.5 ms, 42."
    assert extract_keywords(text) == ["calculate_score", "user_id", "score", "returns", "dict", "iOS17",
                                      "calculateScore", "1000", "users", "17.5", "ms", "42"]


def test_keywords_chinese_bigrams_cut_at_function_characters():
    # 是 and 的 cut the run; 都 is kept because it belongs to 首都.
    assert extract_keywords("巴黎是法国的首都。") == ["巴黎", "法国", "首都"]
    # A three-character piece gives two bigrams; a single character between stop characters
    # (了) is dropped; negation 不 is content.
    assert extract_keywords("我喜欢了苹果，不喜欢香蕉") == ["我喜", "喜欢", "苹果", "不喜", "欢香", "香蕉"]
    # Full-width forms are NFKC-normalised before extraction.
    assert extract_keywords("ＡＰＩ版本２") == ["api", "版本", "2"]


def test_keywords_mixed_chinese_and_english():
    text = "请用中文总结:def calculate_score(user_id: str, score: float),用户ID是3.14"
    assert extract_keywords(text) == ["请用", "用中", "中文", "文总", "总结", "def", "calculate_score", "user_id", "str",
                                      "score", "float", "用户", "id", "3.14"]
    # CJK run glued to an identifier is split by script.
    assert extract_keywords("我用user_id表示用户") == ["我用", "user_id", "表示", "示用", "用户"]


def test_keywords_ignore_list_markers_and_markup():
    assert extract_keywords("1. Red\n2. Blue\n- Green") == ["red", "blue", "green"]
    assert extract_keywords("| Planet | Moons |\n|---|---|\n| Earth | 1 |") == ["planet", "moons", "earth", "1"]
    assert extract_keywords('{"city": "Paris"}') == ["city", "paris"]
    assert extract_keywords("") == [] and extract_keywords("\n\n  \n") == [] and extract_keywords(None) == []


def test_keyword_coverage():
    cov, lost, total = keyword_coverage("The capital of France is Paris.", "Paris is the capital.")
    assert total == 3 and lost == ["france"] and abs(cov - 2 / 3.0) < 1e-9
    assert keyword_coverage("The capital of France is Paris.", "\n\n\n") == (0.0, ["capital", "france", "paris"], 3)
    assert keyword_coverage("Yes.", "anything") == (1.0, [], 0)   # nothing to lose


# --------------------------------------------------------------------------- formats

TABLE = "| Planet | Moons |\n| ---| :---: |\n| Earth | 1 |\n| Mars | 2 |"


@pytest.mark.parametrize("text,formats", [
    ('{"city": "Paris", "country": "France"}', {"json"}),
    ('[1, 2, 3]', {"json"}),
    ('```json\n{"a": 1}\n```', {"json"}),
    ('{  }', {"json"}),
    ('"just a string"', set()),           # a JSON scalar is not a structured answer
    ('{city: Paris}', set()),
    (TABLE, {"markdown_table"}),
    ("Planet | Moons\n--- | ---\nEarth | 1", {"markdown_table"}),
    ("| Planet | Moons |\n| Earth | 1 |", set()),          # no separator row
    ("| Planet | Moons |\n|---|---|---|", set()),           # separator with another cell count
    ("1. Red\n2. Blue\n3. Yellow", {"list"}),
    ("- Red\n* Blue", {"list"}),
    ("  - nested\n  - items", {"list"}),
    ("- only one item", set()),
    ("---\nA horizontal rule is not a list.", set()),
    ("The capital of France is Paris.", set()),
    ("Intro:\n\n" + TABLE + "\n\n1. first\n2. second", {"markdown_table", "list"}),
])
def test_detect_formats(text, formats):
    assert set(detect_formats(text)) == formats


def test_numbered_and_bulleted_lists_are_named():
    assert detect_formats("1. a\n2. b")["list"] == "a numbered list"
    assert detect_formats("- a\n- b")["list"] == "a bulleted list"


def test_format_losses_name_the_broken_format():
    assert format_losses([TABLE], "Earth has one moon, Mars two.") == [
        "old answer was a markdown table, new answer has no header/separator row"]
    loss = format_losses(['{"city": "Paris"}'], "{city: Paris}")
    assert len(loss) == 1 and loss[0].startswith("old answer was valid JSON, new answer is not valid JSON (")
    assert format_losses(["1. a\n2. b"], "a and b") == [
        "old answer was a numbered list, new answer has no list (needs 2 or more lines starting with -, *, + or 1.)"]
    # Keeping the format is enough (numbered -> bulleted is still a list); plain stays free.
    assert format_losses(["1. a\n2. b"], "- a\n- b") == []
    assert format_losses(["Paris."], '{"x": 1}') == []
    # Only formats every old answer had count; the assertion can be limited to some formats.
    assert format_losses([TABLE, "no table here"], "plain") == []
    assert format_losses([TABLE], "plain", formats=["json", "list"]) == []


# --------------------------------------------------------------------------- judging

def _probe(asserts, name="p", **kw):
    raw = {"name": name, "prompt": "Q?", "assert": asserts}
    raw.update(kw)
    return normalize_suite({"probes": [raw]})["probes"][0]


def _result(probe, *answers):
    return {"name": probe["name"], "transient_errors": [],
            "runs": [{"answer": a, "latency_ms": 10.0, "failures": [], "attempts": 1} for a in answers]}


def _baseline(probe, *answers):
    """What baseline: record stores after a run that got these answers."""
    res = judge_probe(probe, _result(probe, *answers))
    return baseline_from([res], {"p50_ms": 10.0, "p90_ms": 10.0}, "t", [probe])


def test_normalize_defaults_and_refusals():
    p = _probe([{"keywords_consistent": {}}, {"similar_to_previous": {}}, {"format_consistent": True}])
    assert p["assert"] == [{"keywords_consistent": {"min_coverage": 0.6}}, {"similar_to_previous": {"min": 0.8}},
                           {"format_consistent": {"formats": ["json", "markdown_table", "list"]}}]
    with pytest.raises(SuiteError, match="unknown format.*'yaml'"):
        _probe([{"format_consistent": {"formats": ["yaml"]}}])
    with pytest.raises(SuiteError, match="format_consistent: give true"):
        _probe([{"format_consistent": False}])


def test_keywords_consistent_passes_at_coverage_and_fails_naming_lost_terms():
    probe = _probe([{"keywords_consistent": {"min_coverage": 0.6}}])
    base = _baseline(probe, "The capital of France is Paris, on the Seine.")   # capital france paris seine
    ok = _result(probe, "Paris is the capital of France.")                      # 3 of 4 = 75%
    apply_previous(probe, ok, base)
    judge_probe(probe, ok, base)
    assert ok["passed"] and ok["keyword_coverage"] == [0.75] and ok["skipped"] == []
    bad = _result(probe, "Paris.")                                              # 1 of 4 = 25%
    apply_previous(probe, bad, base)
    judge_probe(probe, bad, base)
    assert not bad["passed"] and bad["keyword_coverage"] == [0.25]
    why = bad["kind_failures"][0]
    assert why.startswith("keywords_consistent: kept 1 of the old answer's 4 key terms (25% < min 60%)")
    assert "lost: capital, france, seine" in why and why in bad["reason"]


def test_keywords_consistent_takes_the_best_matching_old_answer():
    probe = _probe([{"keywords_consistent": {"min_coverage": 0.9}}], repeat=2, min_pass=2)
    base = _baseline(probe, "Red and blue.", "Green and yellow.")
    res = _result(probe, "Green, yellow.", "Blue and red!")
    apply_previous(probe, res, base)
    judge_probe(probe, res, base)
    assert res["passed"] and res["keyword_coverage"] == [1.0, 1.0]


def test_format_consistent_run_failure_names_the_format():
    probe = _probe([{"format_consistent": True}])
    base = _baseline(probe, TABLE)
    res = _result(probe, "Earth: 1 moon. Mars: 2 moons.")
    apply_previous(probe, res, base)
    judge_probe(probe, res, base)
    assert not res["passed"]
    assert res["kind_failures"][0].startswith(
        "format_consistent: old answer was a markdown table, new answer has no header/separator row")


def test_missing_baseline_skips_visibly_and_require_baseline_fails():
    probe = _probe([{"not_empty": True}, {"keywords_consistent": {}}, {"format_consistent": True},
                    {"similar_to_previous": {}}, {"latency_vs_baseline": {}}])
    res = _result(probe, "Paris.")
    apply_previous(probe, res, None)
    judge_probe(probe, res, None)
    assert res["passed"] is True and "keyword_coverage" not in res
    assert [s.split(" skipped: ")[0] for s in res["skipped"]] == [
        "keywords_consistent", "format_consistent", "similar_to_previous", "latency_vs_baseline"]
    assert "no baseline to compare with" in res["skipped"][0] and "baseline: record" in res["skipped"][0]
    assert "keywords_consistent skipped: no baseline" in res["reason"]
    assert skipped_summary([res])[0].startswith("p: keywords_consistent skipped: ")
    # The same without a baseline but require_baseline: the probe fails and says why.
    passed, results, dummy = summarize([probe], [_result(probe, "Paris.")], None, require_baseline=True)
    assert not passed and results[0]["skipped"] == []
    assert results[0]["reason"].startswith("keywords_consistent: no baseline to compare with (require_baseline)")


def test_baseline_without_this_probe_or_with_another_prompt_is_not_used():
    probe = _probe([{"keywords_consistent": {}}])
    other = _probe([{"keywords_consistent": {}}], name="other")
    answers, why = previous_answers(probe, _baseline(other, "Paris"))
    assert answers is None and "has no entry for this probe" in why
    changed = _probe([{"keywords_consistent": {}}], prompt="Another question?")
    answers, why = previous_answers(probe, _baseline(changed, "Paris"))
    assert answers is None and "another prompt or settings" in why
    legacy = {"suite": "t", "time": "2026-01-01T00:00:00Z", "probes": {"p": {"p50_ms": 3.0, "answers": ["Paris"]}}}
    answers, why = previous_answers(probe, legacy)
    assert answers is None and "without full answers" in why
    answers, why = previous_answers(probe, _baseline(probe, "  ", "Paris"))
    assert answers == ["Paris"] and why is None
    res = _result(probe, "Lyon")
    apply_previous(probe, res, _baseline(changed, "Paris"))
    judge_probe(probe, res, _baseline(changed, "Paris"))
    assert res["passed"] and "another prompt" in res["skipped"][0]


def test_baseline_stores_full_answers_and_request_digest():
    probe = _probe([{"not_empty": True}])
    long_answer = "word " * 300
    base = _baseline(probe, long_answer)
    entry = base["probes"]["p"]
    assert entry["answers"] == [long_answer[:2000]] and len(entry["answers"][0]) == 1500
    assert entry["request"] == request_digest(probe) and len(entry["request"]) == 16
    assert request_digest(probe) != request_digest(_probe([{"not_empty": True}], max_tokens=7))
