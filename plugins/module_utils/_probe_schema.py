# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The probe suite's schema: the assertion kinds and defaults, and normalize_suite, which
applies the defaults and checks what a JSON schema cannot (regex syntax, min_pass <=
repeat, the latency judge's settings). The controller validates a suite with it once
(plugin_utils/_probe_suite.py) and marks the result; modelops.fleet.model_probe on the
target accepts a marked suite as it is.

Standard library only. Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import re

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
FORMATS = ("json", "markdown_table", "list")


# Marks a suite normalize_suite returned: the target does not validate it again.
NORMALIZED = 1


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
    return {"name": suite.get("name") or source, "probes": probes, "normalized": NORMALIZED}


def is_normalized(suite):
    """True for a suite normalize_suite returned (the controller's, passed to the module)."""
    return isinstance(suite, dict) and suite.get("normalized") == NORMALIZED and isinstance(suite.get("probes"), list)
