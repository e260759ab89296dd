# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Behavioural probes: run a normalized probe suite against an OpenAI-compatible API and
judge it: the assertions on each answer, the comparisons with the answers the old version
gave (its recorded baseline), latency samples and the latency judge (_latency.py), and
the results and baselines as the module returns and records them.

Standard library only: this runs on the target host (modelops.fleet.model_probe). The
suite's schema is _probe_schema.py, the text analysis _probe_text.py; the controller half
(YAML loading, similarity with a sentence-embedding model) is
plugins/plugin_utils/_probe_suite.py. Private to the collection; the interface may change
without notice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError
from ansible_collections.modelops.fleet.plugins.module_utils import _latency
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import (
    BASELINE_KINDS,
    PREVIOUS_KINDS,
    RUN_KINDS,
    _short,
)
from ansible_collections.modelops.fleet.plugins.module_utils._probe_text import (
    check_json_schema,
    format_losses,
    keyword_coverage,
    language_ok,
)

ANSWER_CHARS = 200
# Answers are stored in a baseline up to this length (the comparisons need more than the
# 200 characters shown in the results, and the ledger must stay small).
BASELINE_ANSWER_CHARS = 2000


def check_run(kind, arg, answer, latency_ms):
    """One assertion on one answer. Returns None when it holds, else the reason."""
    if kind == "not_empty":
        if bool(arg) and not answer.strip():
            return "not_empty: the answer is empty"
        return None
    if kind == "length":
        n = len(answer)
        if "min" in arg and n < arg["min"]:
            return "length: %d chars < min %d (%s)" % (n, arg["min"], _short(answer))
        if "max" in arg and n > arg["max"]:
            return "length: %d chars > max %d (%s)" % (n, arg["max"], _short(answer))
        return None
    if kind == "contains_any":
        if not any(s in answer for s in arg):
            return "contains_any: none of %s in %s" % (arg, _short(answer))
        return None
    if kind == "contains_all":
        missing = [s for s in arg if s not in answer]
        if missing:
            return "contains_all: %s missing from %s" % (missing, _short(answer))
        return None
    if kind == "not_contains":
        found = [s for s in arg if s in answer]
        if found:
            return "not_contains: %s found in %s" % (found, _short(answer))
        return None
    if kind == "regex":
        if not re.search(arg, answer):
            return "regex: %r does not match %s" % (arg, _short(answer))
        return None
    if kind in ("is_json", "json_schema"):
        try:
            value = json.loads(answer)
        except ValueError as e:
            if kind == "is_json" and not arg:
                return None
            return "%s: the answer is not JSON (%s): %s" % (kind, e, _short(answer))
        if kind == "is_json":
            return None
        errors = check_json_schema(value, arg)
        if errors:
            return "json_schema: %s" % "; ".join(errors[:5])
        return None
    if kind == "latency_ms":
        if latency_ms > arg["max"]:
            return "latency_ms: %.0f ms > max %s ms" % (latency_ms, arg["max"])
        return None
    if kind == "language":
        ok, share, need = language_ok(answer, arg)
        if not ok:
            return "language: %.0f%% of the letters are %s, need %.0f%% (%s)" % (share * 100, arg, need * 100, _short(answer))
        return None
    return None


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100), rounded to 0.1 ms; None if empty."""
    value = _latency.percentile(values, q)
    return None if value is None else round(value, 1)


def is_transient(err):
    return err.status is None or err.status >= 500


def request_digest(probe):
    """Fingerprint of what a probe sends (messages and the settings that change the
    answer), stored with its baseline so answers are compared only to the same prompt."""
    data = dict((k, probe.get(k)) for k in ("messages", "max_tokens", "temperature", "response_format"))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def previous_answers(probe, baseline):
    """The old version's answers to this probe from the baseline: (answers, None), or
    (None, why there are none)."""
    if not baseline:
        return None, ("no baseline to compare with (only baseline: compare reads one; record it on the old "
                      "version with baseline: record)")
    base = (baseline.get("probes") or {}).get(probe["name"])
    where = "the baseline of %s" % (baseline.get("time") or "unknown time")
    if not base:
        return None, "%s has no entry for this probe (suite %s)" % (where, baseline.get("suite"))
    if not base.get("request"):
        return None, "%s was recorded without full answers (before this collection stored them); record a new one" % where
    if base["request"] != request_digest(probe):
        return None, "%s was recorded with another prompt or settings for this probe; record a new one" % where
    answers = [a for a in base.get("answers") or [] if isinstance(a, str) and a.strip()]
    if not answers:
        return None, "%s has no non-empty answer for this probe" % where
    return answers, None


def _list_terms(terms, n=15):
    shown = ", ".join(terms[:n])
    return shown + (" (+%d more)" % (len(terms) - n) if len(terms) > n else "")


def apply_previous(probe, result, baseline):
    """Judge keywords_consistent and format_consistent of every answered run against the
    baseline's answers (in place: failures and keyword_coverage on the runs). Without
    usable baseline answers nothing is judged; judge_probe adds the skip note."""
    asserts = [list(a.items())[0] for a in probe["assert"] if list(a)[0] in PREVIOUS_KINDS]
    if not asserts:
        return
    old, dummy = previous_answers(probe, baseline)
    if old is None:
        return
    for run in result["runs"]:
        if "answer" not in run:
            continue
        new = run["answer"]
        for kind, arg in asserts:
            if kind == "keywords_consistent":
                best = None
                for o in old:
                    cov = keyword_coverage(o, new)
                    if best is None or cov[0] > best[0]:
                        best = cov
                coverage, lost, total = best
                run.setdefault("keyword_coverage", []).append(round(coverage, 3))
                if coverage < float(arg["min_coverage"]):
                    run["failures"].append(
                        "keywords_consistent: kept %d of the old answer's %d key terms (%.0f%% < min %.0f%%), "
                        "lost: %s; new answer %s" % (total - len(lost), total, coverage * 100,
                                                     float(arg["min_coverage"]) * 100, _list_terms(lost), _short(new)))
            elif kind == "format_consistent":
                losses = format_losses(old, new, arg["formats"])
                if losses:
                    run["failures"].append("format_consistent: %s: %s" % ("; ".join(losses), _short(new)))


# --------------------------------------------------------------------------- running

def run_probe(client, served_name, probe, timeout, sleep=time.sleep):
    """Run one probe repeat times. Returns the probe result with ``runs`` (full answers,
    per-run failures) for the controller; transient errors are retried and counted apart."""
    runs = []
    transient = []
    for dummy in range(probe["repeat"]):
        attempt = 0
        while True:
            attempt += 1
            try:
                answer, latency, dummy2 = client.chat(
                    served_name, probe["messages"], max_tokens=probe["max_tokens"],
                    temperature=probe["temperature"], response_format=probe.get("response_format"),
                    timeout=timeout)
                break
            except ApiError as e:
                if is_transient(e) and attempt <= probe["retries"]:
                    transient.append(str(e))
                    sleep(min(2.0 * attempt, 5.0))
                    continue
                runs.append({"error": str(e), "transient": is_transient(e), "attempts": attempt})
                answer = None
                break
        if answer is None:
            continue
        failures = []
        for a in probe["assert"]:
            kind, arg = list(a.items())[0]
            if kind in RUN_KINDS:
                why = check_run(kind, arg, answer, latency)
                if why:
                    failures.append(why)
        runs.append({"answer": answer, "latency_ms": round(latency, 1), "failures": failures, "attempts": attempt})
    return {"name": probe["name"], "runs": runs, "transient_errors": transient}


def latency_arg(probe):
    """The latency_vs_baseline argument of a probe, or None."""
    for a in probe["assert"]:
        if "latency_vs_baseline" in a:
            return a["latency_vs_baseline"]
    return None


def fresh_latencies(probe, baseline):
    """The old version's latency samples for this probe from a recorded baseline (the
    same request only); a baseline of an older collection has only its p50."""
    base = ((baseline or {}).get("probes") or {}).get(probe["name"]) or {}
    if base.get("request") and base["request"] != request_digest(probe):
        return []
    if base.get("latencies_ms"):
        return [float(v) for v in base["latencies_ms"]]
    return [float(base["p50_ms"])] if base.get("p50_ms") else []


def sample_latencies(client, served_name, probe, timeout, n):
    """n more requests of the probe for their latency only (errors are left out)."""
    out = []
    for dummy in range(n):
        try:
            dummy1, latency, dummy2 = client.chat(
                served_name, probe["messages"], max_tokens=probe["max_tokens"],
                temperature=probe["temperature"], response_format=probe.get("response_format"),
                timeout=timeout)
        except ApiError:
            continue
        out.append(round(latency, 1))
    return out


def collect_latency(client, served_name, probe, result, timeout, mode, fresh=None, history=None):
    """Latency samples of a probe with latency_vs_baseline, and the judge's verdict.

    mode record: take ``samples`` samples (the baseline of the old version). mode compare:
    take ``samples``, judge against the fresh baseline or the history; while the verdict is
    inconclusive take ``samples`` more, up to ``max_samples``; a first fail is confirmed by
    one more round, judged with all the samples. With nothing to compare with
    the ``samples`` are still taken: they go into the host's history, which judges the next
    upgrade of a host that records no fresh baseline (one sample per upgrade would leave
    such hosts ungated for their first HISTORY_MIN_SAMPLES upgrades). Sets
    result["latency_samples_ms"] and, when judged, result["latency_verdict"]."""
    arg = latency_arg(probe)
    samples = [r["latency_ms"] for r in result["runs"] if "answer" in r]
    if arg is None or not samples:
        result["latency_samples_ms"] = samples
        return
    if mode in ("record", "compare"):
        samples += sample_latencies(client, served_name, probe, timeout, arg["samples"] - len(samples))
    if mode == "compare":
        verdict = _latency.judge(samples, arg["factor"], arg["alpha"], fresh=fresh, history=history)
        first_fail = None
        while len(samples) < arg["max_samples"]:
            if verdict["verdict"] == "fail" and first_fail is None:
                # A fail is confirmed by a second round taken after the first, judged with
                # both: a second of load on a shared machine (another process, a timer)
                # slows one round, a slower release slows every round.
                first_fail = len(samples)
            elif verdict["verdict"] != "inconclusive":
                break
            more = sample_latencies(client, served_name, probe, timeout,
                                    min(arg["samples"], arg["max_samples"] - len(samples)))
            if not more:
                break
            samples += more
            verdict = _latency.judge(samples, arg["factor"], arg["alpha"], fresh=fresh, history=history)
        if first_fail is not None:
            verdict["first_fail_after"] = first_fail
            if verdict["verdict"] != "fail":
                verdict["message"] += " (a fail after %d samples was not confirmed by the next ones)" % first_fail
        result["latency_verdict"] = verdict
    result["latency_samples_ms"] = samples


def baseline_skips(probe, baseline, result=None):
    """(kind, why) for each assertion of the probe that needs a baseline it does not have
    (for latency_vs_baseline: the judge's verdict in the result, when it ran)."""
    skips = []
    for a in probe["assert"]:
        kind = list(a)[0]
        if kind not in BASELINE_KINDS:
            continue
        if kind == "latency_vs_baseline":
            verdict = (result or {}).get("latency_verdict")
            if verdict is None:
                base = ((baseline or {}).get("probes") or {}).get(probe["name"]) or {}
                if not base.get("p50_ms"):
                    skips.append((kind, "no baseline latency for this probe"))
            elif verdict["verdict"] == "none":
                skips.append((kind, verdict["message"]))
            continue
        answers, why = previous_answers(probe, baseline)
        if answers is None:
            skips.append((kind, why))
    return skips


def judge_probe(probe, result, baseline=None, require_baseline=False):
    """Fill in passed/passes/kind_failures/skipped/reason/latencies of a probe result from
    its runs (the controller calls it again after adding similarity failures to the runs).

    Assertions that compare with a baseline (BASELINE_KINDS) are skipped when there is no
    usable baseline: listed in ``skipped`` and in the reason, or, with require_baseline,
    failed."""
    runs = result["runs"]
    answered = [r for r in runs if "answer" in r]
    errors = [r for r in runs if "error" in r]
    latencies = [r["latency_ms"] for r in answered]
    passes = sum(1 for r in answered if not r["failures"])
    kind_failures = []
    for r in answered:
        for f in r["failures"]:
            if f not in kind_failures:
                kind_failures.append(f)
    probe_level = []
    skipped = []
    for kind, why in baseline_skips(probe, baseline, result):
        if require_baseline:
            probe_level.append("%s: no baseline to compare with (require_baseline): %s" % (kind, why))
        else:
            skipped.append("%s skipped: %s" % (kind, why))
    for a in probe["assert"]:
        kind, arg = list(a.items())[0]
        if kind != "latency_vs_baseline":
            continue
        verdict = result.get("latency_verdict")
        if verdict and verdict["verdict"] == "fail":
            probe_level.append(verdict["message"])
        elif verdict and verdict["verdict"] == "inconclusive":
            # Never a silent pass: the rollout holds and says what was measured.
            probe_level.append("%s; held after %d samples (max_samples %d): the latency could not be judged, "
                               "run again when the host is quieter or raise max_samples"
                               % (verdict["message"], verdict["n_new"], arg["max_samples"]))
    kind_failures.extend(probe_level)
    passed = passes >= probe["min_pass"] and not probe_level
    if passed:
        reason = "%d of %d runs passed (need %d)" % (passes, probe["repeat"], probe["min_pass"])
    elif errors and not kind_failures:
        reason = "no answer (not a behavioural failure): %s" % errors[-1]["error"]
    elif probe_level and passes >= probe["min_pass"]:
        reason = probe_level[0]
    else:
        # Every distinct failure (up to 4), so that a probe failing several kinds names
        # them all (e.g. an empty answer that also lost the table and the key terms).
        why = " | ".join(kind_failures[:4]) if kind_failures else (errors[-1]["error"] if errors else "no run")
        if len(kind_failures) > 4:
            why += " | (+%d more)" % (len(kind_failures) - 4)
        reason = "%d of %d runs passed (need %d): %s" % (passes, probe["repeat"], probe["min_pass"], why)
        if errors:
            reason += "; %d run(s) got no answer: %s" % (len(errors), errors[-1]["error"])
    if skipped:
        reason += " (%s)" % "; ".join(skipped)
    verdict = result.get("latency_verdict")
    if passed and verdict and verdict["verdict"] == "pass":
        reason += " (%s)" % verdict["message"]
    for key in ("similarity", "similarity_to_previous", "keyword_coverage"):
        values = [x for r in answered for x in r.get(key, [])]
        if values:
            result[key] = values
    result.update({
        "passed": passed, "passes": passes, "kind_failures": kind_failures, "skipped": skipped,
        "attempts": sum(r.get("attempts", 1) for r in runs),
        "latencies_ms": latencies, "answers": [r["answer"][:ANSWER_CHARS] for r in answered],
        "errors": [r["error"] for r in errors], "reason": reason,
    })
    return result


def summarize(probes, results, baseline=None, require_baseline=False):
    """Judge every probe; returns (passed, public probe list, latency dict)."""
    out = []
    all_lat = []
    for p, r in zip(probes, results):
        judge_probe(p, r, baseline, require_baseline)
        all_lat.extend(r["latencies_ms"])
        out.append(r)
    latency = {"p50_ms": percentile(all_lat, 50), "p90_ms": percentile(all_lat, 90)}
    return all(r["passed"] for r in out), out, latency


def public(result):
    """A probe result without the full answers (returned to the user)."""
    return dict((k, v) for k, v in result.items() if k not in ("runs",))


def skipped_summary(results):
    """'<probe>: <note>' for every skipped assertion of a judged suite."""
    return ["%s: %s" % (r["name"], note) for r in results for note in r.get("skipped", [])]


def baseline_from(results, latency, suite_name, probes=None):
    """The probe_baseline ledger event body: per probe the latencies, the answers (up to
    BASELINE_ANSWER_CHARS each, from the full answers of the runs) and the digest of the
    request, so a later compare judges new answers only against the same prompt."""
    digests = dict((p["name"], request_digest(p)) for p in probes or [])
    out = {}
    for r in results:
        if "runs" in r:
            answers = [run["answer"][:BASELINE_ANSWER_CHARS] for run in r["runs"] if "answer" in run]
        else:
            answers = r["answers"]
        lat = r.get("latency_samples_ms") or r["latencies_ms"]
        entry = {"p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
                 "latencies_ms": lat, "answers": answers}
        if r["name"] in digests:
            entry["request"] = digests[r["name"]]
        out[r["name"]] = entry
    return {"suite": suite_name, "latency": latency, "probes": out}


def failure_message(results, host_label):
    bad = [r for r in results if not r["passed"]]
    return "probe suite failed on %s: %s" % (
        host_label, "; ".join("probe %s: %s" % (r["name"], r["reason"]) for r in bad))
