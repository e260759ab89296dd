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

import hashlib
import json
import re
import time
import unicodedata

from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError
from ansible_collections.modelops.fleet.plugins.module_utils import _latency

DEFAULTS = {"max_tokens": 64, "temperature": 0.0, "repeat": 1, "min_pass": 1, "retries": 2}
# Kinds judged per run on the target; probe-level kinds after all runs; controller kinds
# by the action plugin.
RUN_KINDS = ("not_empty", "length", "contains_any", "contains_all", "not_contains", "regex",
             "is_json", "json_schema", "latency_ms", "language")
PROBE_KINDS = ("latency_vs_baseline",)
# Judged per run against the answers the baseline recorded for the same probe (the old
# version's answers to the same prompt): keywords and formats on the target, similarity on
# the controller.
PREVIOUS_KINDS = ("keywords_consistent", "format_consistent")
CONTROLLER_KINDS = ("similarity", "similar_to_previous")
ALL_KINDS = RUN_KINDS + PROBE_KINDS + PREVIOUS_KINDS + CONTROLLER_KINDS
# Kinds that need a recorded baseline; skipped with a note (or failed with
# require_baseline) when there is none.
BASELINE_KINDS = ("latency_vs_baseline", "keywords_consistent", "format_consistent", "similar_to_previous")
ANSWER_CHARS = 200
# Answers are stored in a baseline up to this length (the comparisons need more than the
# 200 characters shown in the results, and the ledger must stay small).
BASELINE_ANSWER_CHARS = 2000
FORMATS = ("json", "markdown_table", "list")


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
                for key in ("samples", "max_samples", "alpha"):
                    arg.setdefault(key, _latency.DEFAULTS[key])
                if not isinstance(arg["samples"], int) or arg["samples"] < _latency.MIN_SAMPLES:
                    raise SuiteError("%s: assert[%d].latency_vs_baseline: samples must be an integer of at least %d"
                                     % (where, j, _latency.MIN_SAMPLES))
                if not isinstance(arg["max_samples"], int) or arg["max_samples"] < arg["samples"]:
                    raise SuiteError("%s: assert[%d].latency_vs_baseline: max_samples (%s) must be an integer not below "
                                     "samples (%s)" % (where, j, arg["max_samples"], arg["samples"]))
                if not 0 < float(arg["alpha"]) < 0.5:
                    raise SuiteError("%s: assert[%d].latency_vs_baseline: alpha must be between 0 and 0.5" % (where, j))
            if kind == "similarity":
                arg = dict(arg)
                arg.setdefault("min", 0.82)
            if kind == "similar_to_previous":
                arg = dict(arg) if isinstance(arg, dict) else {}
                arg.setdefault("min", 0.8)
            if kind == "keywords_consistent":
                arg = dict(arg) if isinstance(arg, dict) else {}
                arg.setdefault("min_coverage", 0.6)
            if kind == "format_consistent":
                if arg is True:
                    arg = {"formats": list(FORMATS)}
                elif isinstance(arg, dict):
                    arg = {"formats": list(arg.get("formats") or FORMATS)}
                else:
                    raise SuiteError("%s: assert[%d].format_consistent: give true or {formats: [%s]}"
                                     % (where, j, ", ".join(FORMATS)))
                unknown = [f for f in arg["formats"] if f not in FORMATS]
                if unknown:
                    raise SuiteError("%s: assert[%d].format_consistent: unknown format(s) %s (known: %s)"
                                     % (where, j, ", ".join(map(repr, unknown)), ", ".join(FORMATS)))
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
    """Nearest-rank percentile (q in 0..100), rounded to 0.1 ms; None if empty."""
    value = _latency.percentile(values, q)
    return None if value is None else round(value, 1)


def is_transient(err):
    return err.status is None or err.status >= 500


# --------------------------------------------------------------------------- version-to-version

# English function words dropped from the key terms. Negations (no, not, never) are kept:
# they change what an answer says.
STOP_WORDS_EN = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing done down during each either
etc even ever every few for from further had has have having he her here hers herself him
himself his how however i if in into is it its itself just let lets may me might more most
much must my myself now of off on once only or other others our ours ourselves out over own
per please same shall she should so some such sure than that thats the their theirs them
themselves then there therefore these they this those though through thus to too under
until up upon us very via was we were what when where whether which while who whom whose
why will with within would yes yet you your yours yourself yourselves
""".split())
# Chinese function characters: a CJK run is cut at these before it is split into bigrams.
# Deliberately few: characters that are often part of content words (都 in 首都, 有 in
# 所有, 对 in 对象) and negations (不, 没, 无, 非) are kept.
STOP_CHARS_ZH = frozenset("的了是在和与及或也就而着之其吗呢吧啊呀嘛")
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# A token is a run of CJK ideographs, a decimal number, or a run of other word characters.
_TOKEN_RE = re.compile(r"[%s]+|\d+(?:[.,]\d+)+|[^\W%s]+" % (_CJK_CLASS, _CJK_CLASS), re.UNICODE)
_LIST_MARKER_RE = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]+", re.M)
_CAMEL_RE = re.compile(r"[a-z][A-Z]")


def _keywords_of_segment(seg, out):
    if _is_cjk(seg[0]):
        # CJK without a segmenter: cut the run at stop characters, then every pair of
        # adjacent characters (bigram) of each piece of two or more characters is a term.
        for piece in re.split("[%s]" % "".join(sorted(STOP_CHARS_ZH)), seg):
            out.extend(piece[i:i + 2] for i in range(len(piece) - 1))
        return
    stripped = seg.strip("_")
    if not stripped:
        return
    if stripped.isdigit():
        out.append(stripped)
    elif "_" in stripped or any(c.isdigit() for c in stripped) or _CAMEL_RE.search(stripped):
        out.append(stripped)                    # identifier: kept whole, case kept
    else:
        word = stripped.lower()
        if len(word) >= 2 and word not in STOP_WORDS_EN:
            out.append(word)


def extract_keywords(text):
    """The key terms of an answer, in order of first appearance, without duplicates.

    Deterministic and standard library only (see docs/probes.md, "Key terms"): the text is
    NFKC-normalised and list markers at line starts are removed; then
    - numbers (``17``, ``17.5``, ``1,000`` -> ``1000``) are terms;
    - identifiers (words with ``_``, a digit, or camelCase: ``user_id``, ``iOS17``,
      ``calculateScore``) are terms, case kept;
    - other words (any alphabet but CJK) are lowercased; English stop words and
      one-letter words are dropped;
    - runs of CJK ideographs are cut at Chinese function characters (的, 了, 是, ...) and
      every character bigram of the remaining pieces is a term (巴黎是法国的首都 ->
      巴黎, 法国, 首都); single characters left between stop characters are dropped.
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = _LIST_MARKER_RE.sub(" ", text)
    terms = []
    for m in _TOKEN_RE.finditer(text):
        tok = m.group(0)
        if tok[0].isdigit() and ("." in tok or "," in tok):
            if re.match(r"^\d{1,3}(,\d{3})+$", tok):
                tok = tok.replace(",", "")
            terms.append(tok)
        else:
            _keywords_of_segment(tok, terms)
    seen = set()
    ordered = []
    for t in terms:
        if t not in seen:
            seen.add(t)
            ordered.append(t)
    return ordered


def keyword_coverage(old, new):
    """Share of the old answer's key terms the new answer has: (coverage, lost terms in
    the old answer's order, number of old terms). An old answer without key terms is
    fully covered."""
    old_terms = extract_keywords(old)
    if not old_terms:
        return 1.0, [], 0
    new_terms = set(extract_keywords(new))
    lost = [t for t in old_terms if t not in new_terms]
    return float(len(old_terms) - len(lost)) / len(old_terms), lost, len(old_terms)


_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*)\n```$", re.S)
_TABLE_SEP_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_BULLET_RE = re.compile(r"^[ \t]*[-*+\u2022][ \t]+\S")
_NUMBERED_RE = re.compile(r"^[ \t]*\d{1,3}[.)][ \t]+\S")


def _cells(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return line.split("|")


def _json_problem(text):
    """None if text (or the single fenced code block it is) is a JSON object or array,
    else why not."""
    body = text.strip()
    m = _FENCE_RE.match(body)
    if m:
        body = m.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as e:
        return "not valid JSON (%s)" % e
    if not isinstance(value, (dict, list)):
        return "JSON, but a %s, not an object or array" % type(value).__name__
    return None


def detect_formats(text):
    """The structured formats an answer has: {format: description} with format among
    json (the whole answer, or its single fenced code block, is a JSON object or array),
    markdown_table (a header row with ``|`` followed by a separator row like
    ``|---|:--:|`` with as many cells) and list (two or more lines starting with ``-``,
    ``*``, ``+``, ``\u2022`` or ``1.``/``1)``)."""
    text = text or ""
    found = {}
    if _json_problem(text) is None:
        found["json"] = "valid JSON"
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        head, sep = lines[i], lines[i + 1]
        if "|" not in head + sep or not _TABLE_SEP_RE.match(sep) or not head.strip("| \t"):
            continue
        if len(_cells(head)) == len(_cells(sep)):
            found["markdown_table"] = "a markdown table"
            break
    bullets = sum(1 for line in lines if _BULLET_RE.match(line))
    numbered = sum(1 for line in lines if _NUMBERED_RE.match(line))
    if numbered >= 2:
        found["list"] = "a numbered list"
    elif bullets >= 2:
        found["list"] = "a bulleted list"
    return found


_FORMAT_LOSS = {
    "json": lambda new: "new answer is %s" % _json_problem(new),
    "markdown_table": lambda new: "new answer has no header/separator row",
    "list": lambda new: "new answer has no list (needs 2 or more lines starting with -, *, + or 1.)",
}


def format_losses(old_answers, new, formats=FORMATS):
    """Reasons why new lost a format that every old answer had (empty list if none)."""
    common = None
    for old in old_answers:
        have = detect_formats(old)
        common = dict(have) if common is None else dict((k, v) for k, v in common.items() if k in have)
    new_formats = detect_formats(new)
    losses = []
    for fmt in FORMATS:
        if fmt in formats and fmt in (common or {}) and fmt not in new_formats:
            losses.append("old answer was %s, %s" % (common[fmt], _FORMAT_LOSS[fmt](new)))
    return losses


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
