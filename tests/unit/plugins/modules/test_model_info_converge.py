# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_info's converge check: a host counts as already upgraded only when every part of
what an upgrade would do is in place. systemd and the engine are stand-ins here (a
systemctl script answering from files, a stub OpenAI server, a process started in the
release directory as the engine's main process); the real ones are exercised by the
integration tests' no-op upgrade."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import Ledger

from test_model_info import tree

MODEL = "qwen3-4b-instruct"
VARIANT = "gguf-q4_k_m"
UNIT = "modelops-inference.service"

SYSTEMCTL = """#!/bin/sh
# stand-in systemctl for the unit tests: answers from the files in $MODELOPS_STUB_SYSTEMD
case "$1" in
  is-active) cat "$MODELOPS_STUB_SYSTEMD/state" ;;
  show) cat "$MODELOPS_STUB_SYSTEMD/$3" 2>/dev/null || echo 0 ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def host(module_runner, tmp_path, monkeypatch, stub_engine):
    """A host on 2507 whose engine (stand-in) serves it, with its metrics file written."""
    root = tree(module_runner, tmp_path)
    stub = tmp_path / "systemd"
    stub.mkdir()
    (stub / "systemctl").write_text(SYSTEMCTL)
    os.chmod(stub / "systemctl", 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (stub, os.environ["PATH"]))
    monkeypatch.setenv("MODELOPS_STUB_SYSTEMD", str(stub))
    procs = []

    def start_engine(release):
        proc = subprocess.Popen(["sleep", "120"], cwd=str(root / MODEL / release))
        procs.append(proc)
        (stub / "MainPID").write_text("%d\n" % proc.pid)
    (stub / "state").write_text("active\n")
    (stub / "NeedDaemonReload").write_text("no\n")
    start_engine("2507/%s" % VARIANT)
    metrics = tmp_path / "modelops.prom"
    res = module_runner("model_metrics", model_root=str(root), model_name=MODEL, path=str(metrics))
    assert res.get("failed") is not True, res
    manifest = root / MODEL / "2507" / VARIANT / "manifest.json"
    with stub_engine(models=(MODEL,)) as engine:
        converge = dict(version="2507", variant=VARIANT, unit=UNIT, url=engine.url, served_name=MODEL,
                        manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
                        metrics_path=str(metrics))
        yield dict(root=root, stub=stub, engine=engine, converge=converge, metrics=metrics,
                   start_engine=start_engine, run=lambda **kw: module_runner(
                       "model_info", model_root=str(root), model_name=MODEL, converge=converge, **kw))
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_host_on_the_release_that_serves_it_is_converged_stub_engine(host, module_runner):
    before = sorted(os.listdir(host["root"] / ".modelops"))
    res = host["run"]()
    assert res.get("failed") is not True, res
    assert res["converged"] is True, res["converge_reason"]
    assert res["converge_reason"] == "current is 2507/%s and %s serves it" % (VARIANT, UNIT)
    assert res["changed"] is False
    # It asked the engine for a real completion, with the served name.
    assert [r[2]["model"] for r in host["engine"].requests if r[0] == "POST"] == [MODEL]
    # Read-only: nothing written under the root (no hash cache, no ledger, no lock).
    assert sorted(os.listdir(host["root"] / ".modelops")) == before
    # Without converge, nothing is said about it.
    plain = module_runner("model_info", model_root=str(host["root"]), model_name=MODEL)
    assert "converged" not in plain and "converge_reason" not in plain


def _tamper_file(h):
    path = h["root"] / MODEL / "2507" / VARIANT / "model.bin"
    os.chmod(path, 0o644)
    path.write_bytes(b"x" * 2000)


def _other_manifest(h):
    h["converge"]["manifest_sha256"] = "0" * 64


def _current_elsewhere(h):
    os.unlink(h["root"] / MODEL / "current")
    os.symlink("2504/%s" % VARIANT, h["root"] / MODEL / "current")


def _engine_started_from_another_release(h):
    h["start_engine"]("2504/%s" % VARIANT)


def _unit_down(h):
    (h["stub"] / "state").write_text("failed\n")


def _unit_file_changed(h):
    (h["stub"] / "NeedDaemonReload").write_text("yes\n")


def _engine_serves_another_name(h):
    h["engine"].models[:] = ["another-model"]


def _metrics_stale(h):
    h["metrics"].write_text(h["metrics"].read_text().replace("2507", "2504"))


def _metrics_missing(h):
    os.unlink(h["metrics"])


def _drift(h):
    h["extra"] = dict(engine_install={"directories": [str(h["root"] / "no-such-engine-dir")]})


CASES = [
    (_tamper_file, "changed file %s" % os.path.join("{root}", MODEL, "2507", VARIANT, "model.bin")),
    (_other_manifest, "manifest.json is not the verified manifest of 2507/%s" % VARIANT),
    (_current_elsewhere, "current is 2504/%s, not 2507/%s" % (VARIANT, VARIANT)),
    (_engine_started_from_another_release, "the engine did not serve current: %s (pid" % UNIT),
    (_unit_down, "%s was failed" % UNIT),
    (_unit_file_changed, "the unit file of %s changed on disk" % UNIT),
    (_engine_serves_another_name, "/v1/models lists ['another-model'], not '%s'" % MODEL),
    (_metrics_stale, "the metrics file {metrics} is not up to date"),
    (_metrics_missing, "the metrics file {metrics} cannot be read"),
    (_drift, "the engine's installation differs from what the inference_server role installs"),
]


@pytest.mark.parametrize("spoil,reason", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_each_difference_means_not_converged_and_says_which_stub_engine(host, spoil, reason):
    spoil(host)
    res = host["run"](**host.get("extra", {}))
    assert res.get("failed") is not True, res
    assert res["converged"] is False
    assert reason.format(root=host["root"], metrics=host["metrics"]) in res["converge_reason"], res["converge_reason"]


def test_a_held_host_lock_means_another_run_is_at_work_stub_engine(host):
    with HostLock(str(host["root"]), timeout=5, purpose="model_switch %s 2510/%s" % (MODEL, VARIANT)):
        res = host["run"]()
    assert res["converged"] is False
    assert res["converge_reason"].startswith("the host lock is held (model_switch %s 2510" % MODEL), res


def _gate(h, release="2507/%s" % VARIANT):
    """What model_probe writes when the suite gating ``release`` passed (its ledger code)."""
    Ledger(str(h["root"])).append({"action": "gate", "model": MODEL, "release": release, "suite": "smoke",
                                   "served": MODEL})


def test_with_gate_a_release_never_probed_since_it_was_made_current_is_not_converged_stub_engine(host):
    """A run that ended between the restart and the probes left 2507 serving, unprobed."""
    host["converge"]["gate"] = True
    res = host["run"]()
    assert res["converged"] is False and res["gate_pending"] is True, res
    assert res["converge_reason"].startswith("2507/%s is current but has not passed its probe gate" % VARIANT)
    # A gate of another release, or of this one before it was last made current, does not count.
    _gate(host, "2504/%s" % VARIANT)
    assert host["run"]()["gate_pending"] is True
    _gate(host)
    res = host["run"]()
    assert res["converged"] is True and res["gate_pending"] is False, res["converge_reason"]
    for version in ("2504", "2507"):
        Ledger(str(host["root"])).append({"action": "activate", "model": MODEL, "to": "%s/%s" % (version, VARIANT)})
    # (the metrics file would now name the new activation's time: not what is tested here)
    host["converge"]["metrics_path"] = None
    res = host["run"]()
    assert res["converged"] is False and res["gate_pending"] is True, res
    # A blue/green move of the clients records that the release passed its gate before it.
    Ledger(str(host["root"])).append({"action": "activate", "model": MODEL, "to": "2507/%s" % VARIANT, "gated": True})
    assert host["run"]()["gate_pending"] is False
    Ledger(str(host["root"])).append({"action": "activate", "model": MODEL, "to": "2507/%s" % VARIANT})
    # Without gate (an upgrade without a probe suite) the ledger is not asked.
    host["converge"]["gate"] = False
    res = host["run"]()
    assert res["converged"] is True and res["gate_pending"] is False, res["converge_reason"]


def test_gate_pending_is_said_also_when_something_else_differs_first_stub_engine(host):
    """The upgrade must probe even when the read stops at an earlier difference (the lock)."""
    host["converge"]["gate"] = True
    with HostLock(str(host["root"]), timeout=5, purpose="another run"):
        res = host["run"]()
    assert res["converged"] is False and res["gate_pending"] is True
    _current_elsewhere(host)
    res = host["run"]()
    assert res["gate_pending"] is False and res["converge_reason"].startswith("current is 2504")


def test_converge_needs_the_model_name(module_runner, tmp_path):
    res = module_runner("model_info", model_root=str(tmp_path), converge=dict(
        version="2507", variant=VARIANT, unit=UNIT, served_name=MODEL, manifest_sha256="0" * 64))
    assert res.get("failed") is True and "model_name" in res["msg"], res


def test_no_model_root_is_not_converged(module_runner, tmp_path):
    res = module_runner("model_info", model_root=str(tmp_path / "none"), model_name=MODEL, converge=dict(
        version="2507", variant=VARIANT, unit=UNIT, served_name=MODEL, manifest_sha256="0" * 64))
    assert res.get("failed") is not True, res
    assert res["converged"] is False and "does not exist" in res["converge_reason"]
