# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action plugins of model_probe and model_verify check a task against the module's own
argument spec (module_utils/_specs.py) on the controller, before they load a suite, send a
request or read a manifest: a wrong type or a missing option fails naming the option."""

from __future__ import annotations

import functools
import json
import pathlib
import re
import subprocess
import sys

import yaml


def adhoc(module, args, tmp_path):
    """ansible localhost -m <module> -a <args>: (status word, result)."""
    proc = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,", "-o",
                           "-e", "ansible_python_interpreter=%s" % sys.executable,
                           "-m", module, "-a", json.dumps(args)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=300,
                          cwd=str(tmp_path))
    m = re.search(r"^localhost \| (\w+)!? => (\{.*\})$", proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    return m.group(1), json.loads(m.group(2))


def test_model_probe_task_is_validated_before_any_request_stub_engine(stub_engine, tmp_path):
    with stub_engine(models=["smollm2"]) as engine:
        status, res = adhoc("modelops.fleet.model_probe", {"url": engine.url, "served_name": "smollm2",
                                                           "suite": "smoke", "timeout": "soon"}, tmp_path)
        assert status == "FAILED" and res["msg"].startswith("model_probe: ") and "timeout" in res["msg"], res
        status, res = adhoc("modelops.fleet.model_probe", {"url": engine.url, "suite": "smoke"}, tmp_path)
        assert status == "FAILED" and "missing required arguments: served_name" in res["msg"], res
        status, res = adhoc("modelops.fleet.model_probe", {"url": engine.url, "served_name": "smollm2",
                                                           "suite": "smoke", "baseline": "sometimes"}, tmp_path)
        assert status == "FAILED" and "baseline" in res["msg"] and "record, compare, ignore" in res["msg"], res
        assert engine.requests == []  # nothing was sent
        # A valid task gets as far as the engine; the spec's defaults apply (fail_on_failure).
        status, res = adhoc("modelops.fleet.model_probe", {"url": engine.url, "served_name": "smollm2",
                                                           "suite": "smoke"}, tmp_path)
        assert engine.requests and res["suite"].endswith("probe_suites/smoke.yml"), res
        # The step accounts for itself: the whole action, with the module's own seconds on the
        # host among its phases (the report and model_metrics read this, not task variables).
        step = res["step"]
        assert step["name"] == "probe" and step["outcome"] in ("ok", "failed"), step
        assert 0 < step["phases"]["host_s"] <= step["seconds"], step
        status, res = adhoc("modelops.fleet.model_probe", {"url": engine.url, "served_name": "smollm2",
                                                           "suite": "smoke", "baseline": "record",
                                                           "timeout": "soon"}, tmp_path)
        assert status == "FAILED" and res["step"]["name"] == "baseline" and res["step"]["outcome"] == "failed", res
        assert "host_s" not in res["step"]["phases"], res  # refused on the controller: no module ran


def test_model_verify_task_is_validated_before_the_manifest_is_read(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    base = {"path": str(release), "keyring": [str(tmp_path / "k.asc")], "trusted_fingerprints": ["0" * 40]}
    status, res = adhoc("modelops.fleet.model_verify", dict(base, allow_rollback="maybe"), tmp_path)
    assert status == "FAILED" and res["msg"].startswith("model_verify: ") and "allow_rollback" in res["msg"], res
    status, res = adhoc("modelops.fleet.model_verify", {"keyring": base["keyring"],
                                                        "trusted_fingerprints": base["trusted_fingerprints"]}, tmp_path)
    assert status == "FAILED" and "missing required arguments: path" in res["msg"], res
    # Valid arguments get as far as reading the manifest, which this directory lacks.
    status, res = adhoc("modelops.fleet.model_verify", base, tmp_path)
    assert status == "FAILED" and "manifest.json" in res["msg"] and not res["msg"].startswith("model_verify: "), res


def test_internal_options_are_refused_in_a_task(tmp_path):
    # _step, _manifest_content, ... are the plugin's channel to its module: a task that sets
    # one (to skip the signature check, say) is refused before anything is read.
    release = tmp_path / "release"
    release.mkdir()
    trust = {"keyring": [str(tmp_path / "k.asc")], "trusted_fingerprints": ["0" * 40]}
    status, res = adhoc("modelops.fleet.model_sync", dict(trust, src=str(release), _step="install",
                                                          _manifest_content="{}"), tmp_path)
    assert status == "FAILED" and res["msg"] == ("model_sync: _manifest_content, _step are set by the action plugin, "
                                                 "not by a task: remove them"), res
    status, res = adhoc("modelops.fleet.model_verify", dict(trust, path=str(release), _manifest_sha256="0" * 64), tmp_path)
    assert status == "FAILED" and res["msg"].startswith("model_verify: _manifest_sha256 is set by the action plugin"), res


MODULES = ["model_sync", "model_verify", "model_probe", "model_activate", "inference_ready", "model_info",
           "model_manifest", "model_metrics", "model_release_info", "model_switch",
           "model_candidate"]


@functools.lru_cache(maxsize=None)
def module_docs():
    """ansible-doc --json of every module of the collection, by short name."""
    proc = subprocess.run(["ansible-doc", "--json"] + ["modelops.fleet." + m for m in MODULES],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True, timeout=300)
    return {k.split(".")[-1]: v for k, v in json.loads(proc.stdout).items()}


def test_ansible_doc_shows_no_internal_option():
    docs = module_docs()
    assert sorted(docs) == sorted(MODULES)
    for name, doc in docs.items():
        options = doc["doc"]["options"]
        hidden = [o for o in options if o.startswith("_") or "set by the action plugin" in str(options[o]).lower()]
        assert not hidden, (name, hidden)
    assert "src" in docs["model_sync"]["doc"]["options"]  # the public ones are there


# The options each module_defaults group of meta/runtime.yml stands for (the playbooks and
# the model_upgrade role set them once per play or block for the whole group).
GROUP_OPTIONS = {
    "engine": {"url", "served_name", "api_key"},
    "store": {"model_root"},
    "trust": {"keyring", "trusted_fingerprints", "catalog", "allow_rollback"},
}


def test_every_module_of_a_group_takes_the_groups_options():
    runtime = yaml.safe_load(pathlib.Path(__file__).resolve().parents[4].joinpath("meta", "runtime.yml").read_text())
    groups = runtime["action_groups"]
    assert set(GROUP_OPTIONS) | {"fleet"} == set(groups)
    assert sorted(groups["fleet"]) == sorted(MODULES)
    docs = module_docs()
    for group, options in GROUP_OPTIONS.items():
        assert groups[group], group
        for module in groups[group]:
            assert options <= set(docs[module]["doc"]["options"]), (group, module, options)
        # and no module that takes them all is left out of the group
        takers = [m for m in MODULES if options <= set(docs[m]["doc"]["options"])]
        assert sorted(takers) == sorted(groups[group]), (group, takers)


def test_model_rollout_refuses_what_its_flow_cannot_read_before_any_step(tmp_path):
    # model_rollout runs on the controller: a release or endpoint without what the flow reads
    # is refused naming the keys and where they come from, before any step touches the host.
    endpoint = {"url": "http://127.0.0.1:9", "served_name": "m", "mode": "in_place", "engine": "llama-server"}
    status, res = adhoc("modelops.fleet.model_rollout", {"release": {"version": "2501"}, "endpoint": endpoint}, tmp_path)
    assert status == "FAILED" and res["msg"] == (
        "model_rollout: release on localhost lacks release, location, manifest (pass the result of model_release_info)"), res
    assert "steps" not in res
    release = {"version": "2501", "release": "m-2501-v", "location": str(tmp_path), "manifest": {"model_name": "m", "variant": "v"}}
    status, res = adhoc("modelops.fleet.model_rollout", {"release": release, "endpoint": {"url": endpoint["url"]}}, tmp_path)
    assert status == "FAILED" and "endpoint on localhost lacks served_name, mode, engine" in res["msg"], res
    status, res = adhoc("modelops.fleet.model_rollout", {"release": release, "endpoint": endpoint, "restart": "sometimes"},
                        tmp_path)
    assert status == "FAILED" and res["msg"].startswith("model_rollout: ") and "restart" in res["msg"], res
