# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The latency judge of latency_vs_baseline (plugins/module_utils/_latency.py)."""

from __future__ import annotations

import itertools
import random

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils import _latency as L
from ansible_collections.modelops.fleet.plugins.module_utils import _probe as P
from ansible_collections.modelops.fleet.plugins.module_utils import _probe_schema as S

BASE = [2018.0, 1950.0, 2100.0, 1990.0, 2050.0]


def brute_force_upper(x, y):
    """P(U >= observed) by enumerating every split of the pooled sample."""
    pooled = list(x) + list(y)
    observed = sum(1 for a in x for b in y if a > b)
    count = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        total += 1
        count += sum(1 for a in xs for b in ys if a > b) >= observed
    return count / float(total)


@pytest.mark.parametrize("seed", range(6))
def test_exact_mann_whitney_matches_enumeration(seed):
    rnd = random.Random(seed)
    x = [rnd.uniform(0, 10) for dummy in range(rnd.randint(2, 5))]
    y = [rnd.uniform(0, 10) for dummy in range(rnd.randint(2, 5))]
    u, p = L.mann_whitney_greater(x, y)
    assert p == pytest.approx(brute_force_upper(x, y))


def test_normal_approximation_with_ties_is_close_to_enumeration():
    x = [3, 3, 4, 5, 6, 6, 7]
    y = [1, 2, 3, 3, 4, 5]
    dummy, p = L.mann_whitney_greater(x, y)
    assert abs(p - brute_force_upper(x, y)) < 0.02


def test_sign_test():
    assert L.sign_test_greater([5, 6, 7, 8, 9], 1) == pytest.approx(1 / 32.0)
    assert L.sign_test_greater([0, 0, 0], 1) == 1.0


def test_the_one_sample_flap_of_the_seed_rule_passes():
    # One slow request (2735 ms against 2018 ms, the sample that rolled good upgrades back)
    # among otherwise ordinary ones: the median is within 1.3x and the verdict is pass.
    v = L.judge([2735.0, 2040.0, 1980.0, 2100.0, 2060.0], 1.3, fresh=BASE)
    assert v["verdict"] == "pass" and v["source"] == "fresh", v


def test_a_really_slower_engine_fails():
    v = L.judge([b * 2 for b in BASE], 1.3, fresh=BASE)
    assert v["verdict"] == "fail" and v["p_value"] < 0.05 and v["ratio"] == pytest.approx(2.0, rel=0.05)
    assert "significantly slower" in v["message"] and "p50" in v["message"]


def test_over_the_bound_with_some_evidence_is_inconclusive():
    v = L.judge([3000.0, 3000.0, 1000.0, 3000.0, 3000.0], 1.3, fresh=BASE)
    assert 0.05 <= v["p_value"] < L.MARGINAL_P, v
    assert v["verdict"] == "inconclusive" and "some evidence of slowness but not significant" in v["message"], v


def test_over_the_bound_without_evidence_of_slowness_passes_and_says_so():
    # The molecule rollout's canary, soaking while another host was killed: new p50 166 ms
    # against a bound of 161 ms, p=0.57. No evidence it is slower than the bound.
    base = [124.0, 120.0, 130.0, 118.0, 126.0]
    new = [166.0, 120.0, 210.0, 140.0, 180.0, 130.0, 200.0, 150.0, 175.0, 168.0, 125.0, 190.0, 145.0, 172.0, 167.0]
    v = L.judge(new, 1.3, fresh=base)
    assert v["p_value"] >= L.MARGINAL_P and v["new_p50_ms"] > v["bound_ms"], v
    assert v["verdict"] == "pass" and "median over the bound but no evidence of slowness" in v["message"], v


def test_too_few_samples_is_inconclusive_not_pass():
    assert L.judge([9000.0, 9000.0], 1.3, fresh=BASE)["verdict"] == "inconclusive"


def test_outliers_are_set_aside_and_counted():
    v = L.judge([2000.0, 2010.0, 1990.0, 2020.0, 60000.0], 1.3, fresh=BASE)
    assert v["outliers_new"] == 1 and v["new_p90_ms"] < 3000 and v["verdict"] == "pass"
    kept, out = L.split_outliers([1.0, 1.0, 1.0, 1.0])
    assert out == []


def test_history_source_when_there_is_no_fresh_baseline():
    hist = BASE * 2
    v = L.judge([b * 2 for b in BASE], 1.3, fresh=[2000.0], history=hist)
    assert v["source"] == "history" and v["verdict"] == "fail" and "P90 2100 ms" in v["message"]
    assert L.judge([2000.0] * 5, 1.3, fresh=[], history=hist)["verdict"] == "pass"
    none = L.judge([2000.0] * 5, 1.3, fresh=[2000.0], history=[2000.0])
    assert none["verdict"] == "none" and "fresh has 1, need 3" in none["message"]


# CI's adversarial run, host unreachable case: the old version measured 102 ms in a quiet
# minute, the new one (the same weights) 154 ms, what the host usually measures; p=0.0014.
QUIET_FRESH = [101.0, 99.0, 104.0, 102.0, 180.0]
USUAL_NEW = [150.0, 154.0, 158.0, 149.0, 156.0, 153.0, 160.0, 152.0, 155.0]
HOST_HISTORY = [160.0, 158.0, 166.0, 150.0, 171.0, 162.0, 149.0, 164.0, 159.0, 170.0]


def test_a_baseline_from_a_quiet_minute_is_lifted_to_the_hosts_usual_level():
    assert L.judge(USUAL_NEW, 1.3, fresh=QUIET_FRESH)["verdict"] == "fail"
    v = L.judge(USUAL_NEW, 1.3, fresh=QUIET_FRESH, history=HOST_HISTORY)
    assert v["verdict"] == "pass" and v["source"] == "fresh", v
    # 161 / 101.5 is over the 1.5 cap: the level is 1.5 x the fresh median.
    assert v["history_p50_ms"] == 161.0 and v["bound_ms"] == pytest.approx(1.3 * 1.5 * 101.5, abs=0.1), v
    assert "this host's usual p50 161 ms over 10 recent samples (the lift capped at 1.5x: 152 ms)" in v["message"], v
    assert "faster than usual" in v["message"]
    # Under the cap the history's median is the level.
    v = L.judge(USUAL_NEW, 1.3, fresh=[130.0, 128.0, 131.0, 129.0, 130.0], history=HOST_HISTORY)
    assert v["verdict"] == "pass" and v["bound_ms"] == pytest.approx(1.3 * 161.0, abs=0.1) and "capped" not in v["message"], v


def test_a_history_from_slower_days_raises_the_level_by_at_most_the_cap():
    v = L.judge([250.0, 255.0, 248.0, 252.0, 251.0], 1.3, fresh=[100.0, 101.0, 99.0, 100.0, 102.0],
                history=[1000.0] * 10)
    assert v["verdict"] == "fail" and v["bound_ms"] == pytest.approx(1.3 * 1.5 * 100.0, abs=0.1), v


def test_a_release_slower_than_the_hosts_usual_level_still_fails():
    v = L.judge([b * 2 for b in USUAL_NEW], 1.3, fresh=QUIET_FRESH, history=HOST_HISTORY)
    assert v["verdict"] == "fail" and v["p_value"] < 0.05, v


def test_a_history_faster_than_the_fresh_baseline_does_not_lower_the_bound():
    v = L.judge([b * 1.2 for b in BASE], 1.3, fresh=BASE, history=[1000.0] * 10)
    assert v["verdict"] == "pass" and "lifted_by" not in v and v["bound_ms"] == pytest.approx(1.3 * 2018.0, abs=0.1), v
    assert L.judge([b * 2 for b in BASE], 1.3, fresh=BASE, history=[1000.0] * 10)["verdict"] == "fail"


class FakeClient(object):
    """Answers with latencies from a list, in turn (no engine: the sampling loop only)."""

    def __init__(self, latencies):
        self.latencies = list(latencies)
        self.calls = 0

    def chat(self, served, messages, **kw):
        self.calls += 1
        return "Paris.", self.latencies.pop(0), {}


def probe(**arg):
    return S.normalize_suite({"probes": [{"name": "p", "prompt": "Capital of France?",
                                          "assert": [{"latency_vs_baseline": arg}]}]})["probes"][0]


def test_inconclusive_takes_more_samples_up_to_the_bound_then_holds():
    pr = probe()
    # Mostly slow answers with fast ones among them stay inconclusive for ever (p between
    # alpha and the marginal level): 15 samples, then held.
    client = FakeClient([3000.0, 1000.0, 3000.0] * 20)
    result = {"runs": [{"answer": "Paris.", "latency_ms": 3000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, result, 5, "compare", fresh=BASE)
    assert len(result["latency_samples_ms"]) == 15 and client.calls == 14
    P.judge_probe(pr, result)
    assert not result["passed"] and "held after 15 samples (max_samples 15)" in result["reason"], result["reason"]


def test_inconclusive_resolved_by_more_samples():
    pr = probe()
    # The first 5 samples are inconclusive (slow, with one fast among them); ordinary
    # answers after them bring the median back within the bound.
    client = FakeClient([3000.0, 1000.0, 3000.0, 3000.0] + [2000.0] * 16)
    result = {"runs": [{"answer": "Paris.", "latency_ms": 3000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, result, 5, "compare", fresh=BASE)
    P.judge_probe(pr, result)
    assert result["passed"] and result["latency_verdict"]["verdict"] == "pass", result
    assert len(result["latency_samples_ms"]) == 10


def test_a_fail_from_one_slow_round_is_not_confirmed_by_the_next():
    """One second of load (five slow answers in a row), then the engine answers as before:
    the first round alone fails, the confirmation round brings it back within the bound."""
    pr = probe()
    client = FakeClient([5000.0] * 4 + [2000.0] * 20)
    result = {"runs": [{"answer": "Paris.", "latency_ms": 5000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, result, 5, "compare", fresh=BASE)
    v = result["latency_verdict"]
    assert v["verdict"] == "pass" and v["first_fail_after"] == 5, v
    assert "a fail after 5 samples was not confirmed" in v["message"]
    assert len(result["latency_samples_ms"]) == 10


def test_a_slower_release_is_confirmed_and_fails():
    pr = probe()
    client = FakeClient([5000.0] * 30)
    result = {"runs": [{"answer": "Paris.", "latency_ms": 5000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, result, 5, "compare", fresh=BASE)
    v = result["latency_verdict"]
    assert v["verdict"] == "fail" and v["first_fail_after"] == 5 and v["n_new"] == 10, v
    assert client.calls == 9
    P.judge_probe(pr, result)
    assert not result["passed"] and "significantly slower" in result["reason"]


def test_record_takes_the_samples_and_compare_without_baseline_takes_them_for_the_history():
    pr = probe(samples=4, max_samples=8)
    client = FakeClient([2000.0] * 10)
    rec = {"runs": [{"answer": "Paris.", "latency_ms": 2000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, rec, 5, "record")
    assert len(rec["latency_samples_ms"]) == 4 and "latency_verdict" not in rec
    # Nothing to compare with: the samples are taken all the same (they fill the host's
    # history, the next upgrade's baseline), but no extra rounds and no verdict but none.
    client.calls = 0
    cmp_ = {"runs": [{"answer": "Paris.", "latency_ms": 2000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, cmp_, 5, "compare", history=[1.0, 2.0])
    assert client.calls == 3 and len(cmp_["latency_samples_ms"]) == 4
    assert cmp_["latency_verdict"]["verdict"] == "none"
    # "ignore" sends nothing more.
    client.calls = 0
    ign = {"runs": [{"answer": "Paris.", "latency_ms": 2000.0, "failures": []}]}
    P.collect_latency(client, "s", pr, ign, 5, "ignore")
    assert client.calls == 0 and ign["latency_samples_ms"] == [2000.0]


def test_a_host_without_fresh_baselines_is_gated_by_its_history_from_its_second_upgrade():
    """A non-canary host: upgrade 1 has no baseline, its samples fill the history; upgrade
    2 is judged against that history, and a slow release fails."""
    pr = probe()
    history = []
    first = {"runs": [{"answer": "Paris.", "latency_ms": 200.0, "failures": []}]}
    P.collect_latency(FakeClient([200.0] * 10), "s", pr, first, 5, "compare", history=history)
    assert first["latency_verdict"]["verdict"] == "none"
    history += first["latency_samples_ms"]
    slow = {"runs": [{"answer": "Paris.", "latency_ms": 900.0, "failures": []}]}
    P.collect_latency(FakeClient([900.0] * 20), "s", pr, slow, 5, "compare", history=history)
    assert slow["latency_verdict"]["source"] == "history" and slow["latency_verdict"]["verdict"] == "fail", slow


@pytest.mark.parametrize("arg,words", [
    ({"samples": 2}, "samples must be an integer of at least 3"),
    ({"samples": 6, "max_samples": 5}, "max_samples (5) must be an integer not below samples (6)"),
    ({"alpha": 0.9}, "alpha must be between 0 and 0.5"),
])
def test_bad_judge_settings_are_refused_naming_the_probe(arg, words):
    with pytest.raises(S.SuiteError) as e:
        probe(**arg)
    assert words in str(e.value) and "(p)" in str(e.value)
