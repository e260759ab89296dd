#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_probe
short_description: Run a behavioural probe suite against a served model
version_added: 0.1.0
description:
  - Sends the prompts of a probe suite to an OpenAI-compatible API (llama.cpp C(llama-server)
    or vLLM, C(/v1/chat/completions)) and judges the answers by behaviour, not exact text.
    The suite format is described in C(docs/probes.md).
  - The requests are made on the target host with the Python standard library. The action
    plugin loads and validates the suite on the controller and evaluates the C(similarity)
    assertions there (all-MiniLM-L6-v2, offline).
  - Each probe may run several times and pass when enough runs pass (k-of-n). Transient
    errors (connection, HTTP 5xx, timeouts) are retried and are not behavioural failures.
  - Baselines (latency p50/p90 per probe and overall, and each probe's answers) are recorded
    in and read from the host ledger under O(model_root). With O(baseline=compare) the
    C(latency_vs_baseline), C(keywords_consistent), C(format_consistent) and
    C(similar_to_previous) assertions judge this version against the baseline recorded on
    the old version (same prompts); without a usable baseline they are skipped, and the
    probe's C(skipped) and C(reason) say so (or they fail with O(require_baseline=true)).
  - C(latency_vs_baseline) is judged statistically (see C(docs/probes.md)) with several latency
    samples per side (C(samples), default 5), the median against the factor, a one-sided
    Mann-Whitney test against the old version's samples (or a sign test against the P90 of
    this host's last 7 days when there is no recorded baseline), outliers set aside, and
    three verdicts. An inconclusive verdict takes more samples up to C(max_samples)
    (default 15), then fails the probe with what was measured; a fail is confirmed by a
    second round of samples first. With no baseline the samples are still taken, for the
    host's history.
  - Latency samples of probes that passed are kept in C(.modelops/latency.json) under
    O(model_root) for 7 days; they are observations, so the result stays unchanged.
attributes:
  check_mode:
    details: The probes run in check mode too; no baseline is recorded.
  diff_mode:
    support: none
    details: Nothing is changed except the ledger, so there is no diff.
  action:
    details: The action plugin loads the suite and evaluates similarity on the controller.
options:
  suite:
    description:
      - Path on the controller to a YAML probe suite, or the name of a shipped suite
        (V(smoke), V(regression) or V(consistency), from the collection's C(probe_suites) directory).
      - The action plugin replaces it with the validated suite as JSON before the module runs.
    type: str
    required: true
  baseline:
    description:
      - V(record) stores this run's latencies (p50/p90) and answers as a C(probe_baseline)
        ledger event.
      - V(compare) reads the last baseline of O(served_name) (and O(model_name)), preferring one
        recorded with the same suite, for the C(latency_vs_baseline), C(keywords_consistent),
        C(format_consistent) and C(similar_to_previous) assertions.
      - V(ignore) does neither; those assertions are then skipped with a note.
    type: str
    choices: [record, compare, ignore]
    default: ignore
  model_name:
    description: Model name stored with the baseline and used to find it.
    type: str
  latency_factor:
    description: Default factor of C(latency_vs_baseline) assertions that give none.
    type: float
    default: 1.3
  timeout:
    description: Seconds per request.
    type: int
    default: 60
  require_baseline:
    description:
      - With O(baseline=compare), fail an assertion that needs a baseline (C(latency_vs_baseline),
        C(keywords_consistent), C(format_consistent), C(similar_to_previous)) when there is no
        usable one for its probe (none recorded, recorded with another prompt, no answers),
        instead of skipping it with a note.
      - Use it where a baseline was just recorded (canaries), so that a missing baseline
        cannot let a gate pass unchecked.
    type: bool
    default: false
  fail_on_failure:
    description: Fail the task, naming each failing probe and why, when the suite does not pass.
    type: bool
    default: true
  gate:
    description:
      - The release this run of the suite gates, as C(<version>/<variant>) (needs O(model_name)).
        When the whole suite passes (including the assertions judged on the controller), a
        C(gate) event for it is written to the host ledger, and RV(gate_event) returns it.
      - The C(converge.gate) check of M(modelops.fleet.model_info) counts a release as done only when such an event follows the event that made it
        current, so a run that ended between the engine's restart and the probes does not
        leave an unprobed version that the next run takes for done.
      - The C(modelops.fleet.model_upgrade) role sets it on the last gate of an upgrade (after
        the soak on canaries).
      - Not written in check mode, or when the suite fails.
    type: str
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.action
  - modelops.fleet.engine_api
  - modelops.fleet.model_store
"""

EXAMPLES = r"""
- name: Record a latency baseline on the old version
  modelops.fleet.model_probe:
    served_name: qwen3-4b-instruct
    model_name: qwen3-4b-instruct
    suite: smoke
    baseline: record

- name: Prove the new version behaves
  modelops.fleet.model_probe:
    served_name: qwen3-4b-instruct
    model_name: qwen3-4b-instruct
    suite: regression
    baseline: compare
    latency_factor: 1.3

- name: Canary, old version - record the answers of the consistency suite
  modelops.fleet.model_probe:
    served_name: qwen3-4b-instruct
    model_name: qwen3-4b-instruct
    suite: consistency
    baseline: record
    fail_on_failure: false

- name: Canary, new version - same prompts, judged against the old answers
  modelops.fleet.model_probe:
    served_name: qwen3-4b-instruct
    model_name: qwen3-4b-instruct
    suite: consistency
    baseline: compare
    require_baseline: true
"""

RETURN = r"""
passed:
  description: Whether every probe passed.
  returned: always
  type: bool
  sample: true
probes:
  description:
    - One entry per probe with C(name), C(passed), C(kind_failures) (the reasons of failed
      assertions), C(attempts) (requests sent, retries included), C(passes) (runs that passed),
      C(latencies_ms), C(answers) (first 200 characters of each answer), C(errors)
      (requests that got no answer), C(transient_errors) (retried errors), C(similarity)
      (scores, when the probe has a similarity assertion), C(similarity_to_previous) and
      C(keyword_coverage) (per answer, when judged against the baseline), C(skipped)
      (assertions not judged for lack of a baseline, each with the reason), C(reason),
      C(latency_samples_ms) and C(latency_verdict) (the latency judge, with C(verdict) pass, fail,
      inconclusive or none, C(source) fresh or history, medians, bound, p-value, message, and
      C(first_fail_after) when a first fail was put to a second round).
  returned: always
  type: list
  elements: dict
latency:
  description: p50 and p90 latency in milliseconds over all answered requests.
  returned: always
  type: dict
  sample: {p50_ms: 812.0, p90_ms: 1430.5}
gate_event:
  description: The C(gate) event written to the ledger for O(gate) (the suite passed), else null.
  returned: always
  type: dict
  sample: {action: gate, model: qwen3-4b-instruct, release: 2507/fp16, suite: smoke, served: qwen3-4b-instruct,
           time: "2026-12-06T07:30:00Z"}
baseline:
  description: The baseline used (O(baseline=compare)) or recorded (O(baseline=record)), else null.
  returned: always
  type: dict
skipped_assertions:
  description:
    - "One string per assertion that was not judged for lack of a baseline, in the form
      C(<probe>: <kind> skipped: <why>); empty when every assertion was judged."
    - Not named C(skipped), which Ansible reserves for skipped tasks.
  returned: always
  type: list
  elements: str
  sample: ["capital: keywords_consistent skipped: no baseline to compare with (...)"]
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (baseline (O(baseline=record))
      or probe); C(seconds) what the work took where it ran (the whole action, on the controller
      and the host; the module's own seconds on the host in C(phases.host_s)), without Ansible's
      round trip; C(outcome) is ok, changed or failed; C(phases) the parts the call timed (its
      C(timing)).
  returned: always
  type: dict
  sample: {name: baseline, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError, LatencyHistory, Ledger
from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError, OpenAIClient
from ansible_collections.modelops.fleet.plugins.module_utils._probe import (
    apply_previous, baseline_from, collect_latency, failure_message, fresh_latencies, public, request_digest,
    run_probe, skipped_summary, summarize,
)
from ansible_collections.modelops.fleet.plugins.module_utils._probe_schema import (
    SuiteError, is_normalized, normalize_suite,
)
from ansible_collections.modelops.fleet.plugins.module_utils._specs import probe_argument_spec
from ansible_collections.modelops.fleet.plugins.module_utils._step import account, probe_step


def last_baseline(model_root, served_name, model_name, suite_name):
    """The last probe_baseline event for this served name (and model), preferring one
    recorded with the same suite."""
    ledger = Ledger(model_root, readonly=True)
    found = []
    for event in reversed(ledger.events):
        if event.get("action") != "probe_baseline" or event.get("served") != served_name:
            continue
        if model_name and event.get("model") != model_name:
            continue
        if event.get("suite") == suite_name:
            return event
        found.append(event)
    return found[0] if found else None


def record_history(module, history, p, probes, results):
    """Add this run's latency samples to the host's history (observations, not a change:
    the result stays unchanged). A held lock or a write error only warns."""
    for probe, r in zip(probes, results):
        # Only the samples of probes that passed: a slow release that failed its gate must
        # not raise the bound the next one is judged by.
        if r.get("latency_samples_ms") and r.get("passed"):
            history.add(LatencyHistory.key(p["served_name"], p["model_name"], probe["name"], request_digest(probe)),
                        r["latency_samples_ms"])
    try:
        with HostLock(p["model_root"], timeout=10, purpose="model_probe latency history"):
            history.save()
    except (HostStateError, OSError) as e:
        module.warn("the latency samples were not added to %s: %s" % (history.path, e))


def suite_name(raw):
    try:
        return json.loads(raw).get("name")
    except (ValueError, AttributeError):
        return None


def record_gate(module, p, name, out=None):
    """Write the gate event of p['gate'] (the suite passed) to the ledger and return it."""
    event = {"action": "gate", "model": p["model_name"], "release": p["gate"], "suite": name,
             "served": p["served_name"]}
    if module.check_mode:
        return event
    try:
        with HostLock(p["model_root"], timeout=30, purpose="model_probe gate"):
            return Ledger(p["model_root"]).append(event)
    except HostStateError as e:
        module.fail_json(msg="the suite passed, but its gate of %s could not be recorded in the ledger under %s: %s; "
                             "the next run probes %s again" % (p["gate"], p["model_root"], e, p["gate"]), **(out or {}))


def main():
    module = AnsibleModule(argument_spec=probe_argument_spec(), supports_check_mode=True)
    account(module, probe_step)
    p = module.params
    if p["gate"] and not p["model_name"]:
        module.fail_json(msg="gate=%s needs model_name: the gate event names the model whose release passed" % p["gate"])
    if p["_gate_only"]:
        # The action plugin judged the whole suite (similarity on the controller): it passed.
        module.exit_json(changed=not module.check_mode, gate_event=record_gate(module, p, suite_name(p["suite"])))
    try:
        suite = json.loads(p["suite"])
    except ValueError:
        module.fail_json(msg="suite must be the suite as JSON (the model_probe action plugin loads %s on "
                             "the controller); run the module through modelops.fleet.model_probe" % p["suite"])
    if not is_normalized(suite):
        # The action plugin validated and normalized the suite once on the controller; a
        # suite from elsewhere is validated here.
        try:
            suite = normalize_suite(suite, p["latency_factor"],
                                    source=suite.get("name", "suite") if isinstance(suite, dict) else "suite")
        except SuiteError as e:
            module.fail_json(msg="malformed probe suite, nothing was sent: %s" % e)

    baseline = None
    if p["baseline"] == "compare":
        try:
            baseline = last_baseline(p["model_root"], p["served_name"], p["model_name"], suite["name"])
        except HostStateError as e:
            module.fail_json(msg=str(e))

    # This host's latencies of the last days: the judge's baseline when there is no fresh
    # one, and added to as probes run.
    history = LatencyHistory(p["model_root"])
    client = OpenAIClient(p["url"], api_key=p["api_key"], timeout=p["timeout"])
    listed_problem = None
    try:
        names = client.models()
        if p["served_name"] not in names:
            listed_problem = "served name %r is not listed by %s/v1/models (it lists %s)" % (
                p["served_name"], p["url"], ", ".join(names) or "nothing")
    except ApiError as e:
        listed_problem = "cannot list the served models: %s" % e

    results = []
    for probe in suite["probes"]:
        if listed_problem:
            results.append({"name": probe["name"], "runs": [{"error": listed_problem, "transient": False, "attempts": 0}],
                            "transient_errors": []})
        else:
            results.append(run_probe(client, p["served_name"], probe, p["timeout"]))
            apply_previous(probe, results[-1], baseline)
            key = LatencyHistory.key(p["served_name"], p["model_name"], probe["name"], request_digest(probe))
            collect_latency(client, p["served_name"], probe, results[-1], p["timeout"], p["baseline"],
                            fresh=fresh_latencies(probe, baseline), history=history.samples(key))
    require = p["require_baseline"] and p["baseline"] == "compare"
    passed, results, latency = summarize(suite["probes"], results, baseline, require)

    out = dict(changed=False, passed=passed, latency=latency, suite_name=suite["name"],
               baseline=None, probes=[public(r) for r in results],
               skipped_assertions=skipped_summary(results),
               # full answers for the controller's similarity checks; the action plugin drops it
               _probe_runs=[r["runs"] for r in results])
    if baseline is not None:
        out["baseline"] = baseline
    if p["baseline"] == "record" and not listed_problem:
        event = {"action": "probe_baseline", "model": p["model_name"], "served": p["served_name"]}
        event.update(baseline_from(results, latency, suite["name"], suite["probes"]))
        if module.check_mode:
            out["baseline"] = event
        else:
            try:
                with HostLock(p["model_root"], timeout=30, purpose="model_probe baseline"):
                    out["baseline"] = Ledger(p["model_root"]).append(event)
            except HostStateError as e:
                module.fail_json(msg="cannot record the baseline: %s" % e, **out)
            out["changed"] = True
    if not module.check_mode and not listed_problem:
        record_history(module, history, p, suite["probes"], results)
    out["gate_event"] = None
    if passed and p["gate"]:
        out["gate_event"] = record_gate(module, p, suite["name"], out)
        out["changed"] = out["changed"] or not module.check_mode
    if not passed and p["fail_on_failure"]:
        module.fail_json(msg=failure_message(results, p["url"]), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
