# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Text analysis of answers, standard library only: a minimal JSON-schema check, the
language share of a text, the key terms of an answer and their coverage between two
versions, and the formats an answer uses (JSON, Markdown table, list) and those a new
version lost. Runs on the target host (modelops.fleet.model_probe).

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import json
import re
import unicodedata

from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import FORMATS, _short


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
