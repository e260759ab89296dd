# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tools/fleet_run.py: how its inputs are read and what exit code a scheduler gets. The
runs themselves go through ansible-runner against a real fleet in the molecule scenario
extensions/molecule/rollout; one real run on localhost is here."""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import fleet_run  # noqa: E402  pylint: disable=wrong-import-position


def res(rc, failed_hosts=(), dark=(), summary=None):
    return {"rc": rc, "failed_hosts": list(failed_hosts), "unreachable_hosts": list(dark), "summary": summary or {}}


def test_exit_codes_tell_failed_hosts_from_a_refusal_on_the_controller():
    assert fleet_run.exit_code(res(0)) == 0
    # upgrade.yml's summary play fails the run and names the hosts
    assert fleet_run.exit_code(res(2, ["localhost"], summary={"failed": ["gpu-01"]})) == 2
    assert fleet_run.exit_code(res(2, ["edge-01"])) == 2
    # a bad signature stops the controller play before any host is touched
    assert fleet_run.exit_code(res(2, ["localhost"])) == 1
    assert fleet_run.exit_code(res(4, [], ["edge-02"])) == 4


def test_extra_vars_key_value_json_and_file(tmp_path):
    f = tmp_path / "survey.json"
    f.write_text(json.dumps({"model_serial": 2}))
    got = fleet_run._extravars(["model_version=2507", '{"model_canary_size": "25%"}', "@%s" % f])
    assert got == {"model_version": "2507", "model_canary_size": "25%", "model_serial": 2}
    with pytest.raises(ValueError, match="extra var 'oops': use key=value"):
        fleet_run._extravars(["oops"])


def test_playbook_names_resolve_to_the_collection_and_unknown_ones_are_refused():
    assert fleet_run._playbook_path("upgrade") == os.path.join(REPO, "playbooks", "upgrade.yml")
    assert fleet_run._playbook_path("modelops.fleet.rollback") == os.path.join(REPO, "playbooks", "rollback.yml")
    with pytest.raises(ValueError, match="playbook 'upgrad': no such file and not one of upgrade, rollback"):
        fleet_run._playbook_path("upgrad")


def test_a_real_run_through_ansible_runner_returns_the_refusal_and_the_recap(tmp_path):
    """rollback.yml without rollback_target: its input check fails on the controller."""
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n  vars: {model_name: m}\n")
    result = fleet_run.run_playbook("rollback", [str(inv)], {}, private_data_dir=str(tmp_path / "pdd"))
    assert result["status"] == "failed" and result["rc"] != 0
    assert result["failed_hosts"] == ["localhost"]
    assert "set -e rollback_target=<hosts or group>" in result["stdout"]
    assert fleet_run.exit_code(result) == 1
    assert os.path.isdir(result["artifact_dir"])


def test_ee_mode_mounts_paths_where_they_are_and_refuses_a_missing_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    opts = fleet_run._ee_options("localhost/ee:1", [str(data), str(data) + ":ro"])
    assert opts["process_isolation"] and opts["process_isolation_executable"] == "podman"
    assert opts["container_image"] == "localhost/ee:1"
    assert opts["container_volume_mounts"] == ["%s:%s:rw" % (data, data), "%s:%s:ro" % (data, data)]
    assert "--network=host" in opts["container_options"]
    with pytest.raises(ValueError, match="cannot mount %s/nowhere into the execution environment" % tmp_path):
        fleet_run._ee_options("localhost/ee:1", [str(tmp_path / "nowhere")])
