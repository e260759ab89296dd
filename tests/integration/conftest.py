# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests against a real local fleet.

The session brings up a copy of inventories/demo (fleet name "test", every port shifted by
PORT_OFFSET so it can run beside the demo fleet) and tears it down at the end, also when
tests fail. The overlay tests/integration/inventory makes every host of this copy a
llama.cpp host on the GGUF variant (the suite publishes GGUF releases to the whole fleet);
vLLM hosts are tested in tests/vllm on a fleet of their own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLEET = os.path.join(REPO, "tests", "fleet", "fleet.py")
# Scripts the suites copy to test hosts: an HTTP release mirror for the host's 127.0.0.1
# (throttled, or misbehaving on purpose), and a GGUF copier that zeroes most weights.
MIRROR_SERVER = os.path.join(REPO, "tests", "fleet", "mirror_server.py")
DAMAGE_GGUF = os.path.join(REPO, "tests", "fleet", "damage_gguf.py")
DEMO_INVENTORY = os.path.join(REPO, "inventories", "demo")
LLAMACPP_OVERLAY = os.path.join(REPO, "tests", "integration", "inventory")
INVENTORIES = [DEMO_INVENTORY, LLAMACPP_OVERLAY]
# MODELOPS_TEST_FLEET / MODELOPS_TEST_PORT_OFFSET let a second suite run beside this one.
PORT_OFFSET = int(os.environ.get("MODELOPS_TEST_PORT_OFFSET", "1000"))
FLEET_NAME = os.environ.get("MODELOPS_TEST_FLEET", "test")
sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
from suites import gpg_test_keys  # noqa: E402  pylint: disable=wrong-import-position
import host_shell  # noqa: E402  pylint: disable=wrong-import-position
import suite_timing  # noqa: E402  pylint: disable=wrong-import-position

# The model the suite publishes and serves (the fleet's artifacts: fleet.py artifacts).
MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fleet(*args, check=True):
    with suite_timing.spent("fleet.py %s" % args[0]):
        proc = subprocess.run([sys.executable, FLEET] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("fleet.py %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


FAILURE_MARKS = ("fatal:", "failed:", "FAILED!", "ERROR!", "[ERROR]")


def failure_excerpt(output, tail=4000, per_line=1500):
    """What a failed run's assertion shows: every line that reports a failure (with the task
    it belongs to), then the tail. The tail alone hides a canary's failure behind the later
    plays' output."""
    lines = output.splitlines()
    picked = []
    task = None
    for line in lines:
        if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            task = line
        elif any(mark in line for mark in FAILURE_MARKS):
            if task and (not picked or picked[-1] != task):
                picked.append(task)
            picked.append(line[:per_line])
    head = "\n".join(picked)
    return "failures:\n%s\n\n... last lines:\n%s" % (head or "(none reported)", output[-tail:])


class Ansible(object):
    def __init__(self, inventories, artifacts):
        self.inventories = inventories
        self.artifacts = artifacts

    def _inv_args(self):
        args = []
        for inv in self.inventories:
            args += ["-i", inv]
        return args

    def env(self, env=None):
        e = dict(os.environ)
        e["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
        e["ANSIBLE_NOCOLOR"] = "1"
        # OpenSSH masters go where fleet.py down finds and ends them.
        e["ANSIBLE_SSH_CONTROL_PATH_DIR"] = os.path.join(
            os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet"), FLEET_NAME, "cp")
        # Rollout reports of test runs go with the test artifacts, not into the checkout.
        e.setdefault("MODELOPS_REPORT_DIR", os.path.join(
            os.environ.get("MODELOPS_TEST_ARTIFACTS", os.path.join(REPO, "tests", "output")), "rollout-reports"))
        e.update(env or {})
        return e

    def run(self, cmd, *args, check=True, env=None):
        e = self.env(env)
        with suite_timing.spent(suite_timing.command_kind(cmd, args)):
            proc = subprocess.run([cmd] + self._inv_args() + list(args), cwd=REPO, env=e,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=900, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s %s failed (rc=%d):\n%s" % (
                cmd, " ".join(args), proc.returncode, failure_excerpt(proc.stdout)))
        return proc

    def playbook(self, playbook, *args, **kw):
        return self.run("ansible-playbook", playbook, *args, **kw)

    def adhoc(self, pattern, *args, **kw):
        if len(args) == 4 and args[0] == "-m" and args[1] in ("ansible.builtin.shell", "ansible.builtin.copy") \
                and args[2] == "-a" and set(kw) <= {"check"}:
            # A host check, or a file the test puts on a host: over the hosts' sshd without
            # starting Ansible (tests/fleet/host_shell.py)
            done = (self.host_shell if args[1] == "ansible.builtin.shell" else self.host_copy)(pattern, args[3])
            if done is not None:
                if kw.get("check", True) and done.returncode != 0:
                    raise AssertionError("%s %r on %s failed (rc=%d):\n%s" % (
                        args[1], args[3], pattern, done.returncode, done.stdout[-4000:]))
                return done
        return self.run("ansible", pattern, *args, **kw)

    def host_shell(self, pattern, command):
        """`ansible pattern -m ansible.builtin.shell -a command` over OpenSSH, with the same
        output and exit code (a CompletedProcess), or None where host_shell leaves it to Ansible."""
        return self._over_ssh("ssh (host check)", host_shell.run, "ansible.builtin.shell", pattern, command)

    def host_copy(self, pattern, text):
        """`ansible pattern -m ansible.builtin.copy -a text` (src=, dest=, mode=preserve) over
        OpenSSH, or None where host_shell leaves it to Ansible."""
        return self._over_ssh("ssh (copy to host)", host_shell.copy, "ansible.builtin.copy", pattern, text)

    def _over_ssh(self, kind, how, module, pattern, arg):
        e = self.env()
        with suite_timing.spent(kind):
            done = how(pattern, arg, [os.path.join(REPO, i) for i in self.inventories], e,
                       e["ANSIBLE_SSH_CONTROL_PATH_DIR"])
        if done is None:
            return None
        return subprocess.CompletedProcess(["ansible", pattern, "-m", module, "-a", arg], done[0], stdout=done[1])


def fleet_inventory_args():
    args = []
    for inv in INVENTORIES:
        args += ["--inventory", inv]
    return args


@pytest.fixture(scope="session")
def artifacts():
    path = os.path.join(os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet"),
                        "artifacts.json")
    if not os.path.exists(path):
        proc = fleet("artifacts")
        data = json.loads(proc.stdout)
    else:
        with open(path) as f:
            data = json.load(f)
    return data


def keep_fleet():
    """MODELOPS_FLEET_KEEP=1: leave a suite's fleet up at its end, for the next stage that
    shares it (scripts/test.sh: the adversarial suite runs on the integration suite's
    hosts) or for a developer's next run; scripts/test.sh tears every fleet down at its end."""
    return os.environ.get("MODELOPS_FLEET_KEEP") == "1"


def fleet_up(stage, name, *args):
    """`fleet.py up --name name args`, timed and said in the stage's one line on its fleet."""
    t0 = time.monotonic()
    state = json.loads(fleet("up", "--name", name, *args).stdout)
    suite_timing.fleet_line(stage, name, state, time.monotonic() - t0)
    return state


@pytest.fixture(scope="session")
def test_fleet(artifacts):
    try:
        yield fleet_up("integration", FLEET_NAME, *fleet_inventory_args(),
                       "--port-offset", str(PORT_OFFSET))
    finally:
        if not keep_fleet():
            fleet("down", "--name", FLEET_NAME, check=False)


@pytest.fixture(scope="session")
def ansible(test_fleet, artifacts):
    return Ansible(INVENTORIES + [test_fleet["inventory"]], artifacts)


def fresh_hosts(ansible, model=MODEL):
    """Remove the model, staging, ledger and metrics from every host,
    so that a test module starts from a known history whatever earlier modules left."""
    ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                  "rm -rf /srv/models/%s /srv/models/.staging /srv/models/.modelops "
                  "/var/lib/node_exporter/textfile_collector/modelops_fleet.prom" % model)


def publish_args(src, repo, version, sequence, key, catalog, variant=VARIANT):
    """The extra vars of playbooks/publish.yml: release <MODEL>-<version>-<variant> from the
    directory src into the repository repo, signed with key (a gpg_keys.Key), in catalog."""
    return ["-e", "publish_source=%s" % src, "-e", "publish_repository=%s" % repo,
            "-e", "publish_release=%s-%s-%s" % (MODEL, version, variant),
            "-e", "publish_sequence=%d" % sequence, "-e", "publish_gnupghome=%s" % key.home,
            "-e", "publish_key_fingerprint=%s" % key.fingerprint,
            "-e", "publish_catalog=%s" % catalog]


def publish_gguf(ansible, base, repo, version, sequence, key, extra="", weights=None, env=None):
    """Publish `version` into repo from a new directory base/src-<version>: the fleet's GGUF
    (a hard link) or the bytes `weights`, and a generation_config.json carrying `extra` (so
    that releases with the same weights differ); the publisher's catalog is base/publisher.db."""
    src = base / ("src-" + version)
    src.mkdir()
    if weights is None:
        os.link(ansible.artifacts["model_file"], str(src / GGUF))
    else:
        (src / GGUF).write_bytes(weights)
    (src / "generation_config.json").write_text(json.dumps({"release": version, "x": extra}))
    return ansible.playbook("playbooks/publish.yml", *publish_args(src, repo, version, sequence, key, base / "publisher.db"),
                            env=env)


def upgrade_overrides(ansible, key, repo, catalog):
    """The extra vars of playbooks/upgrade.yml for releases of repo signed by key (a gpg_keys.Key),
    with catalog as the hosts' catalog and a short canary soak."""
    return {"model_repository": str(repo), "model_keyring": [key.public],
            "model_trusted_fingerprints": [key.fingerprint], "model_catalog": catalog,
            "inference_server_llamacpp_binary_src": ansible.artifacts["llama_server"],
            "model_canary_soak_seconds": 2}


STEP_LINE = re.compile(r"^\[([^\]\s]+)\] (.+?): (ok|changed|failed)(?:, [\d.]+ s)?$", re.M)


def rollout_steps(output, task=None):
    """The steps model_rollout showed as they ended: [(host, step's words, ok/changed/failed)],
    in order; with task, only the steps whose words contain it."""
    return [m.groups() for m in STEP_LINE.finditer(output) if task is None or task in m.group(2)]


def recap(output):
    """Parse PLAY RECAP lines: {host: {"ok": n, "changed": n, ...}}."""
    result = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line:
            host, rest = line.split(":", 1)
            counts = {}
            for item in rest.split():
                if "=" in item:
                    k, v = item.split("=", 1)
                    counts[k] = int(v)
            if counts:
                result[host.strip()] = counts
    return result


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Real GnuPG keys for one test module (publisher, attacker, expired, revoked)."""
    yield from gpg_test_keys(tmp_path_factory)
