# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The latency judge of latency_vs_baseline: several samples, a robust statistic, a
significance test and three verdicts (pass, fail, inconclusive).

Two baselines, the verdict saying which it used:

* ``fresh``: samples taken on the old version just before the upgrade (a canary's
  recorded baseline). The new samples are compared with the baseline samples scaled by
  the factor: a one-sided Mann-Whitney U test (exact for small samples without ties,
  the normal approximation with the tie correction otherwise), medians as the statistic.
  When the host's history has enough samples and its median is above the fresh median,
  the baseline samples are scaled up to it first, by at most MAX_LIFT: a baseline taken
  in an unusually quiet moment is not the old version's level (on a shared machine the
  two sides are measured a minute apart, not side by side).
* ``history``: the seed's rule, the P90 of this host's latencies for the same probe over
  the last 7 days (kept in the host ledger as probes run). The new samples are compared
  with factor x that P90 by a sign test (exact binomial).

Verdicts: ``fail`` when the new version is significantly slower than the bound (p below
alpha) and its median is over it; ``pass`` when its median is within the bound, or over it
with no evidence of slowness (p at least MARGINAL_P); ``inconclusive`` in between (some
evidence, alpha <= p < MARGINAL_P) or with too few samples: the caller takes more samples
up to a stated bound, then holds with a message that says what was measured. Outliers (modified z-score over 3.5, Iglewicz and Hoaglin)
are set aside on each side before judging, and counted.

Standard library only: this runs on the target host (modelops.fleet.model_probe).
Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import math

DEFAULTS = {"factor": 1.3, "samples": 5, "max_samples": 15, "alpha": 0.05}
MIN_SAMPLES = 3
HISTORY_MIN_SAMPLES = 5
OUTLIER_Z = 3.5
# Exact Mann-Whitney distribution up to this many (m * n) pairs.
EXACT_PAIRS = 400
# Over the bound with alpha <= p < MARGINAL_P is "some evidence, not enough": inconclusive,
# more samples. p >= MARGINAL_P is no evidence of slowness: pass, saying so.
MARGINAL_P = 0.2
# The history can raise the fresh baseline's level by at most this factor.
MAX_LIFT = 1.5


def median(values):
    s = sorted(values)
    n = len(s)
    if not n:
        return None
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a list of numbers, None if empty."""
    if not values:
        return None
    s = sorted(values)
    return float(s[max(0, min(len(s) - 1, int(math.ceil(q * len(s) / 100.0)) - 1))])


def p90(values):
    return percentile(values, 90)


def split_outliers(values):
    """(kept, outliers): values whose modified z-score exceeds OUTLIER_Z are set aside.
    Needs five values; never sets aside more than a fifth of them (the largest scores)."""
    values = list(values)
    if len(values) < 5:
        return values, []
    med = median(values)
    mad = median([abs(v - med) for v in values])
    if not mad:
        return values, []
    scored = sorted(((0.6745 * abs(v - med) / mad, i) for i, v in enumerate(values)), reverse=True)
    limit = len(values) // 5
    out = set(i for z, i in scored[:limit] if z > OUTLIER_Z)
    return [v for i, v in enumerate(values) if i not in out], [v for i, v in enumerate(values) if i in out]


def _exact_u_upper(m, n, u):
    """P(U >= u) under H0 for sample sizes m, n without ties (U counts pairs x > y)."""
    # counts[k] = number of arrangements with U == k, built up by the usual recurrence
    # f(m, n, k) = f(m - 1, n, k - n) + f(m, n - 1, k)
    table = {}

    def f(a, b):
        key = (a, b)
        if key in table:
            return table[key]
        if a == 0 or b == 0:
            res = [1]
        else:
            left = f(a - 1, b)
            right = f(a, b - 1)
            res = [0] * (a * b + 1)
            for k, c in enumerate(left):
                res[k + b] += c
            for k, c in enumerate(right):
                res[k] += c
        table[key] = res
        return res

    counts = f(m, n)
    total = float(sum(counts))
    k0 = int(math.ceil(u - 1e-9))
    return sum(counts[k0:]) / total


def mann_whitney_greater(x, y):
    """One-sided Mann-Whitney U: p-value for 'x tends to be larger than y'. Returns (U, p)."""
    m, n = len(x), len(y)
    if not m or not n:
        return None, 1.0
    u = 0.0
    for a in x:
        for b in y:
            u += 1.0 if a > b else 0.5 if a == b else 0.0
    ties = len(set(x) | set(y)) < m + n
    if not ties and m * n <= EXACT_PAIRS:
        return u, _exact_u_upper(m, n, u)
    # Normal approximation with the tie correction and a continuity correction.
    pooled = sorted(list(x) + list(y))
    N = m + n
    tie_term = 0.0
    i = 0
    while i < N:
        j = i
        while j < N and pooled[j] == pooled[i]:
            j += 1
        t = j - i
        tie_term += t ** 3 - t
        i = j
    var = m * n / 12.0 * ((N + 1) - tie_term / (N * (N - 1)))
    if var <= 0:
        return u, 1.0
    z = (u - m * n / 2.0 - 0.5) / math.sqrt(var)
    return u, 0.5 * math.erfc(z / math.sqrt(2))


def sign_test_greater(values, bound):
    """Exact one-sided sign test: p-value for 'values tend to be above bound' (ties dropped)."""
    above = sum(1 for v in values if v > bound)
    n = sum(1 for v in values if v != bound)
    if not n:
        return 1.0
    return sum(math.comb(n, k) for k in range(above, n + 1)) / float(2 ** n)


def judge(new, factor, alpha=0.05, fresh=None, history=None):
    """Judge new latency samples (ms) against a baseline. fresh: the old version's samples
    just before the upgrade; history: this host's samples of the last days. Uses fresh when
    it has MIN_SAMPLES samples, else history when it has HISTORY_MIN_SAMPLES.

    Returns a dict: verdict (pass, fail, inconclusive or none when there is no usable
    baseline), source, the statistics, and a one-line message."""
    factor = float(factor)
    kept_new, out_new = split_outliers(new)
    base = None
    source = None
    if fresh and len(fresh) >= MIN_SAMPLES:
        source = "fresh"
        base, out_base = split_outliers(fresh)
    elif history and len(history) >= HISTORY_MIN_SAMPLES:
        source = "history"
        base, out_base = list(history), []
    res = {"source": source, "factor": factor, "alpha": alpha, "n_new": len(new),
           "new_p50_ms": _r(median(kept_new)), "new_p90_ms": _r(p90(kept_new)),
           "outliers_new": len(out_new)}
    if source is None:
        res.update(verdict="none", p_value=None, message="no baseline with enough samples (fresh has %d, need %d; "
                   "history has %d, need %d)" % (len(fresh or []), MIN_SAMPLES, len(history or []), HISTORY_MIN_SAMPLES))
        return res
    res.update(n_base=len(base) + len(out_base), outliers_base=len(out_base),
               base_p50_ms=_r(median(base)), base_p90_ms=_r(p90(base)))
    if source == "fresh":
        fresh_ref = median(base) or 0.0
        usual = median(history) if history and len(history) >= HISTORY_MIN_SAMPLES else None
        # The old version's level is the larger of its fresh median and this host's usual
        # one (the history's median): a baseline measured in an unusually quiet moment
        # must not make a release as fast as the host's usual look slower than the bound.
        # At most MAX_LIFT: a history from slower days must not dilute the gate much (a
        # release twice as slow as the fresh baseline fails whatever the history says).
        lift = min(usual / fresh_ref, MAX_LIFT) if usual and fresh_ref and usual > fresh_ref else 1.0
        ref = fresh_ref * lift
        bound = ref * factor
        dummy, p = mann_whitney_greater(kept_new, [b * factor * lift for b in base])
        ref_text = "%d fresh samples of the old version, p50 %.0f ms" % (len(base), fresh_ref)
        if lift > 1.0:
            ref_text = ("this host's usual p50 %.0f ms over %d recent samples%s, above the %s, which were "
                        "faster than usual" % (usual, len(history),
                                               " (the lift capped at %.1fx: %.0f ms)" % (MAX_LIFT, ref)
                                               if usual / fresh_ref > MAX_LIFT else "", ref_text))
            res.update(history_p50_ms=_r(usual), lifted_by=round(lift, 3))
    else:
        ref = p90(base) or 0.0
        bound = ref * factor
        p = sign_test_greater(kept_new, bound)
        ref_text = "P90 %.0f ms of this host's %d recent samples" % (ref, len(base))
    mine = median(kept_new) if kept_new else None
    res.update(bound_ms=_r(bound), p_value=round(p, 4), ratio=round(mine / ref, 3) if mine is not None and ref else None)
    measured = "new p50 %s ms over %d samples%s vs bound %.0f ms (%.2f x %s), p=%.3g" % (
        "-" if mine is None else "{0:.0f}".format(mine), len(kept_new),
        " (%d outliers set aside)" % len(out_new) if out_new else "", bound, factor, ref_text, p)
    if len(kept_new) < MIN_SAMPLES:
        verdict = "inconclusive"
        why = "too few samples"
    elif mine <= bound:
        verdict = "pass"
        why = "within the bound"
    elif p < alpha:
        verdict = "fail"
        why = "significantly slower than the bound (p < %g)" % alpha
    elif p < MARGINAL_P:
        verdict = "inconclusive"
        why = "over the bound, some evidence of slowness but not significant (%g <= p < %g)" % (alpha, MARGINAL_P)
    else:
        # The median is over the bound but the samples are as likely below it as above it:
        # no evidence that the new version is slower than the bound (a loaded moment).
        verdict = "pass"
        why = "median over the bound but no evidence of slowness (p >= %g)" % MARGINAL_P
    res.update(verdict=verdict, message="latency_vs_baseline %s: %s: %s" % (verdict, why, measured))
    return res


def _r(v):
    return None if v is None else round(v, 1)
