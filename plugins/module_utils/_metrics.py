# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node_exporter textfile that model_metrics writes: its samples from the host's links,
ledger and the last probe run, in Prometheus' text format. model_info uses the same
rendering to tell whether a host's metrics file is up to date.

Standard library only (runs on the target). Private to the collection; the interface may
change without notice.
"""

from __future__ import annotations

import os
import re

from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    HostStateError, Ledger, installed_releases, iso_to_epoch, list_models, read_link, release_rel,
)


class MetricsError(Exception):
    pass


HELP = {
    "modelops_model_info": "The model version a host serves (current link).",
    "modelops_model_previous_info": "The model version a host rolls back to (previous link).",
    "modelops_model_releases_installed": "Releases of the model installed on the host.",
    "modelops_model_serving_instance": "1 for the blue/green instance (blue or green) that serves the clients.",
    "modelops_model_last_upgrade_timestamp_seconds": "When the last upgrade (or rollback) of the model ended.",
    "modelops_model_last_upgrade_success": "1 if the last upgrade of the model succeeded, else 0.",
    "modelops_probe_pass_ratio": "Share of the probes of the last probe run that passed.",
    "modelops_probe_passed": "1 if every probe of the last probe run passed, else 0.",
    "modelops_probe_latency_p50_seconds": "Median latency of the answered probe requests of the last run.",
    "modelops_probe_latency_p90_seconds": "90th percentile latency of the answered probe requests of the last run.",
    "modelops_probe_baseline_latency_p50_seconds": "Median latency of the baseline the last probe run compared with.",
    "modelops_probe_baseline_latency_p90_seconds": "90th percentile latency of the baseline the last probe run compared with.",
    "modelops_upgrade_step_seconds": "Seconds each step of the last upgrade (or rollback) took, as the step measured itself.",
    "modelops_upgrade_step_success": "1 if the step of the last upgrade (or rollback) succeeded, else 0.",
}
ORDER = list(HELP)
PROBE_PREFIX = "modelops_probe_"
STEP_PREFIX = "modelops_upgrade_step_"


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def sample(name, labels, value):
    lab = ",".join('%s="%s"' % (k, escape_label(labels[k])) for k in sorted(labels))
    return "%s{%s} %s" % (name, lab, fmt_value(value)) if lab else "%s %s" % (name, fmt_value(value))


def render(samples):
    """samples: {metric name: [line, ...]} -> text with HELP/TYPE, metrics in a fixed order."""
    out = []
    for name in ORDER + sorted(n for n in samples if n not in HELP):
        lines = samples.get(name)
        if not lines:
            continue
        out.append("# HELP %s %s" % (name, HELP.get(name, name)))
        out.append("# TYPE %s gauge" % name)
        out.extend(sorted(lines))
    return "\n".join(out) + "\n" if out else ""


def parse_time(value):
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    t = iso_to_epoch(str(value))
    if t is None:
        raise MetricsError("time %r is neither epoch seconds nor a UTC ISO 8601 time such as "
                           "2026-01-15T10:00:00Z" % (value,))
    return t


def last_upgrade_event(events, model):
    for event in reversed(events):
        if event.get("model") != model or event.get("action") not in ("activate", "rollback"):
            continue
        reason = str(event.get("reason") or "")
        rolled_back = event.get("action") == "rollback" or reason.lower().startswith("rollback")
        return {"result": "rolled_back" if rolled_back else "upgraded", "time": iso_to_epoch(event.get("time")),
                "event": event}
    return None


def existing_lines(path, prefix):
    """Samples of an existing metrics file whose names start with prefix: {metric: [lines]}
    (the probe's, kept when no probe is given; the steps', kept when no steps are given)."""
    found = {}
    try:
        with open(path, "r") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return found
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            found.setdefault(m.group(1), []).append(line)
    return found


def probe_samples(model, probe):
    if not isinstance(probe, dict):
        raise MetricsError("probe must be a registered modelops.fleet.model_probe result (a dict)")
    if probe.get("skipped"):
        return {}
    probes = probe.get("probes")
    if not isinstance(probes, list):
        raise MetricsError("probe has no 'probes' list: give the registered result of a "
                           "modelops.fleet.model_probe task (was it censored by no_log?)")
    suite = str(probe.get("suite_name") or "unknown")
    labels = {"model": model, "suite": suite}
    out = {}
    total = len(probes)
    passed = sum(1 for p in probes if isinstance(p, dict) and p.get("passed"))
    out["modelops_probe_pass_ratio"] = [sample("modelops_probe_pass_ratio", labels,
                                               round(float(passed) / total, 6) if total else 0)]
    all_passed = bool(probe.get("passed")) if "passed" in probe else (total > 0 and passed == total)
    out["modelops_probe_passed"] = [sample("modelops_probe_passed", labels, all_passed)]
    for src, prefix in ((probe.get("latency"), "modelops_probe_latency_"),
                        (((probe.get("baseline") or {}) if isinstance(probe.get("baseline"), dict) else {}).get("latency"),
                         "modelops_probe_baseline_latency_")):
        if not isinstance(src, dict):
            continue
        for q in ("p50", "p90"):
            ms = src.get("%s_ms" % q)
            if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                name = "%s%s_seconds" % (prefix, q)
                out[name] = [sample(name, labels, round(ms / 1000.0, 6))]
    return out


def step_samples(model, steps):
    """The step accounts (module_utils/_step.py) of an upgrade: per step name, the seconds
    of its calls added up, and whether all of them succeeded."""
    seconds, success = {}, {}
    for st in steps:
        if not isinstance(st, dict) or not st.get("name") or not isinstance(st.get("seconds"), (int, float)):
            raise MetricsError("steps must be the 'step' of registered modelops.fleet step results "
                               "(each a dict with name, seconds and outcome), got %r" % (st,))
        name = str(st["name"])
        seconds[name] = seconds.get(name, 0.0) + float(st["seconds"])
        success[name] = success.get(name, True) and st.get("outcome") != "failed"
    out = {}
    for name in sorted(seconds):
        labels = {"model": model, "step": name}
        out.setdefault("modelops_upgrade_step_seconds", []).append(
            sample("modelops_upgrade_step_seconds", labels, round(seconds[name], 3)))
        out.setdefault("modelops_upgrade_step_success", []).append(
            sample("modelops_upgrade_step_success", labels, success[name]))
    return out


def keep_existing(p, prefix, samples):
    kept = existing_lines(p["path"], prefix)
    if p["model_name"] is not None:
        kept = dict((k, [ln for ln in v if 'model="%s"' % escape_label(p["model_name"]) in ln])
                    for k, v in kept.items())
    for k, v in kept.items():
        if v:
            samples[k] = v


def collect(p, warn):
    """What model_metrics writes for the options p (model_root, model_name, result, time,
    probe, path): (the text of the metrics file, what it says per model). warn(msg) takes
    the problems that do not stop it (an unreadable link or ledger)."""
    root = p["model_root"]
    samples = {}
    models = []
    names = list_models(root) if os.path.isdir(root) else []
    if p["model_name"] is not None:
        names = [p["model_name"]]
    events = []
    if os.path.isdir(root):
        ledger = Ledger(root, readonly=True)
        if ledger.problem:
            warn(ledger.problem)
        events = ledger.events
    for model in names:
        model_dir = os.path.join(root, model)
        info = {"name": model, "current": None, "previous": None, "last_upgrade": None}
        for link, metric in (("current", "modelops_model_info"), ("previous", "modelops_model_previous_info")):
            try:
                target = read_link(model_dir, link) if os.path.isdir(model_dir) else None
            except (HostStateError, OSError) as e:
                warn(str(e))
                target = None
            if target:
                info[link] = release_rel(*target)
                samples.setdefault(metric, []).append(
                    sample(metric, {"model": model, "version": target[0], "variant": target[1]}, 1))
        samples.setdefault("modelops_model_releases_installed", []).append(
            sample("modelops_model_releases_installed", {"model": model}, len(installed_releases(root, model))))
        last = last_upgrade_event(events, model)
        # blue/green: the last move of the clients names the instance it moved them to
        if last is not None and last["event"].get("instance") in ("blue", "green"):
            info["instance"] = last["event"]["instance"]
            samples.setdefault("modelops_model_serving_instance", []).append(
                sample("modelops_model_serving_instance", {"model": model, "color": info["instance"]}, 1))
        result = p["result"] if p["result"] is not None and model == p["model_name"] else None
        when = parse_time(p["time"]) if p["time"] is not None and model == p["model_name"] else None
        if result is None and last is not None:
            result = last["result"]
        if when is None and last is not None:
            when = last["time"]
        if result is not None:
            success = result == "upgraded"
            info["last_upgrade"] = {"result": result, "success": success, "time": when}
            samples.setdefault("modelops_model_last_upgrade_success", []).append(
                sample("modelops_model_last_upgrade_success", {"model": model, "result": result}, success))
        if when is not None:
            samples.setdefault("modelops_model_last_upgrade_timestamp_seconds", []).append(
                sample("modelops_model_last_upgrade_timestamp_seconds", {"model": model}, round(when, 3)))
        models.append(info)
    if p["probe"] is not None:
        samples.update(probe_samples(p["model_name"], p["probe"]))
    else:
        keep_existing(p, PROBE_PREFIX, samples)
    if p.get("steps") is not None:
        samples.update(step_samples(p["model_name"], p["steps"]))
    else:
        keep_existing(p, STEP_PREFIX, samples)
    return render(samples), models
