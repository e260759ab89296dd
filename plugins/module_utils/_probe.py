# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Behavioural probes: run a probe suite against an OpenAI-compatible API and judge it.

Standard library only: this runs on the target host (modelops.fleet.model_probe). The
controller half (YAML loading, JSON-schema validation of the suite, similarity with a
sentence-embedding model) is in plugins/plugin_utils/_probe_suite.py. Private to the
collection; the interface may change without notice.
"""

from __future__ import annotations

import json
import re
import time

from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError

DEFAULTS = {"max_tokens": 64, "temperature": 0.0, "repeat": 1, "min_pass": 1, "retries": 2}
# Kinds judged per run on the target; probe-level kinds after all runs; controller kinds
# by the action plugin.
RUN_KINDS = ("not_empty", "length", "contains_any", "contains_all", "not_contains", "regex",
             "is_json", "json_schema", "latency_ms", "language")
PROBE_KINDS = ("latency_vs_baseline",)
CONTROLLER_KINDS = ("similarity",)
ALL_KINDS = RUN_KINDS + PROBE_KINDS + CONTROLLER_KINDS
ANSWER_CHARS = 200


class SuiteError(Exception):
    """The suite is malformed. The message names the probe and the field."""


def _short(text, n=80):
    text = text if isinstance(text, str) else repr(text)
    return repr(text if len(text) <= n else text[:n] + "...")


def normalize_suite(suite, latency_factor=1.3, source="suite"):
    """Apply defaults, expand ``prompt``, check what a JSON schema cannot (regex syntax,
    min_pass <= repeat). Returns a new dict {name, probes: [...]}; raises SuiteError."""
    if not isinstance(suite, dict) or not isinstance(suite.get("probes"), list) or not suite["probes"]:
        raise SuiteError("%s: needs a non-empty list 'probes'" % source)
    defaults = dict(DEFAULTS)
    defaults.update(suite.get("defaults") or {})
    probes = []
    seen = set()
    for i, raw in enumerate(suite["probes"]):
        where = "%s: probes[%d]" % (source, i)
        if not isinstance(raw, dict) or not raw.get("name"):
            raise SuiteError("%s: every probe needs a 'name'" % where)
        name = raw["name"]
        where = "%s (%s)" % (where, name)
        if name in seen:
            raise SuiteError("%s: duplicate probe name" % where)
        seen.add(name)
        p = dict(defaults)
        p.update(raw)
        if "prompt" in p:
            if "messages" in raw:
                raise SuiteError("%s: give either 'prompt' or 'messages', not both" % where)
            p["messages"] = [{"role": "user", "content": p.pop("prompt")}]
        if not p.get("messages"):
            raise SuiteError("%s: needs 'prompt' or 'messages'" % where)
        if p["min_pass"] > p["repeat"]:
            raise SuiteError("%s: min_pass (%s) is larger than repeat (%s)" % (where, p["min_pass"], p["repeat"]))
        asserts = []
        for j, a in enumerate(p.get("assert") or []):
            if not isinstance(a, dict) or len(a) != 1:
                raise SuiteError("%s: assert[%d] must be a mapping with exactly one kind" % (where, j))
            kind, arg = list(a.items())[0]
            if kind not in ALL_KINDS:
                raise SuiteError("%s: assert[%d]: unknown kind %r (known: %s)" % (where, j, kind, ", ".join(ALL_KINDS)))
            if kind == "regex":
                try:
                    re.compile(arg)
                except (re.error, TypeError) as e:
                    raise SuiteError("%s: assert[%d].regex: invalid regular expression %r: %s" % (where, j, arg, e))
            if kind == "latency_vs_baseline":
                arg = dict(arg) if isinstance(arg, dict) else {}
                arg.setdefault("factor", latency_factor)
            if kind == "similarity":
                arg = dict(arg)
                arg.setdefault("min", 0.82)
            asserts.append({kind: arg})
        p["assert"] = asserts
        probes.append(p)
    return {"name": suite.get("name") or source, "probes": probes}


# --------------------------------------------------------------------------- checks

def check_json_schema(value, schema, path="$"):
    """Minimal JSON-schema check (type, enum, required, properties, minLength, maxLength,
    items, minItems): returns a list of error strings (empty when valid)."""
    errors = []
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    t = schema.get("type")
    if t is not None:
        allowed = t if isinstance(t, list) else [t]
        ok = False
        for name in allowed:
            if name in ("number", "integer"):
                if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                        (name == "number" or float(value).is_integer()):
                    ok = True
            elif isinstance(value, types.get(name, ())) and not (name != "boolean" and isinstance(value, bool)):
                ok = True
        if not ok:
            return ["%s is %s, not %s" % (path, type(value).__name__, "/".join(allowed))]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s is %s, not one of %s" % (path, _short(value), schema["enum"]))
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append("%s is shorter than %d chars" % (path, schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append("%s is longer than %d chars" % (path, schema["maxLength"]))
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append("%s lacks required key %r" % (path, key))
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                errors.extend(check_json_schema(value[key], sub, "%s.%s" % (path, key)))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append("%s has fewer than %d items" % (path, schema["minItems"]))
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errors.extend(check_json_schema(item, schema["items"], "%s[%d]" % (path, i)))
    return errors


def _is_cjk(ch):
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F


def language_share(text, lang):
    """Share (0..1) of the letters of text that belong to lang (zh, ja/ko via CJK, en)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    if lang in ("zh", "cjk"):
        hits = sum(1 for c in letters if _is_cjk(c))
    else:
        hits = sum(1 for c in letters if c.isascii())
    return float(hits) / len(letters)


def language_ok(text, lang):
    share = language_share(text, lang)
    need = 0.3 if lang in ("zh", "cjk") else 0.9
    return share >= need, share, need


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
    """Nearest-rank percentile (q in 0..100) of a list of numbers, None if empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return round(s[k], 1)


def is_transient(err):
    return err.status is None or err.status >= 500


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


def judge_probe(probe, result, baseline=None):
    """Fill in passed/passes/kind_failures/reason/latencies of a probe result from its
    runs (the controller calls it again after adding similarity failures to the runs)."""
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
    notes = []
    for a in probe["assert"]:
        kind, arg = list(a.items())[0]
        if kind != "latency_vs_baseline":
            continue
        base = ((baseline or {}).get("probes") or {}).get(probe["name"]) or {}
        mine = percentile(latencies, 50)
        if not base.get("p50_ms"):
            notes.append("latency_vs_baseline skipped: no baseline for this probe")
        elif mine is not None and mine > base["p50_ms"] * float(arg["factor"]):
            kind_failures.append("latency_vs_baseline: p50 %.0f ms > %.2f x baseline p50 %.0f ms"
                                 % (mine, float(arg["factor"]), base["p50_ms"]))
    probe_level = [f for f in kind_failures if f.startswith("latency_vs_baseline")]
    passed = passes >= probe["min_pass"] and not probe_level
    if passed:
        reason = "%d of %d runs passed (need %d)" % (passes, probe["repeat"], probe["min_pass"])
    elif errors and not kind_failures:
        reason = "no answer (not a behavioural failure): %s" % errors[-1]["error"]
    elif probe_level:
        reason = probe_level[0]
    else:
        why = kind_failures[0] if kind_failures else (errors[-1]["error"] if errors else "no run")
        reason = "%d of %d runs passed (need %d): %s" % (passes, probe["repeat"], probe["min_pass"], why)
        if errors:
            reason += "; %d run(s) got no answer: %s" % (len(errors), errors[-1]["error"])
    if notes:
        reason += " (%s)" % "; ".join(notes)
    sims = [x for r in answered for x in r.get("similarity", [])]
    if sims:
        result["similarity"] = sims
    result.update({
        "passed": passed, "passes": passes, "kind_failures": kind_failures,
        "attempts": sum(r.get("attempts", 1) for r in runs),
        "latencies_ms": latencies, "answers": [r["answer"][:ANSWER_CHARS] for r in answered],
        "errors": [r["error"] for r in errors], "reason": reason,
    })
    return result


def summarize(probes, results, baseline=None):
    """Judge every probe; returns (passed, public probe list, latency dict)."""
    out = []
    all_lat = []
    for p, r in zip(probes, results):
        judge_probe(p, r, baseline)
        all_lat.extend(r["latencies_ms"])
        out.append(r)
    latency = {"p50_ms": percentile(all_lat, 50), "p90_ms": percentile(all_lat, 90)}
    return all(r["passed"] for r in out), out, latency


def public(result):
    """A probe result without the full answers (returned to the user)."""
    return dict((k, v) for k, v in result.items() if k not in ("runs",))


def baseline_from(results, latency, suite_name):
    probes = {}
    for r in results:
        probes[r["name"]] = {"p50_ms": percentile(r["latencies_ms"], 50),
                             "p90_ms": percentile(r["latencies_ms"], 90),
                             "answers": r["answers"]}
    return {"suite": suite_name, "latency": latency, "probes": probes}


def failure_message(results, host_label):
    bad = [r for r in results if not r["passed"]]
    return "probe suite failed on %s: %s" % (
        host_label, "; ".join("probe %s: %s" % (r["name"], r["reason"]) for r in bad))
