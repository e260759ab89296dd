# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The blue/green mode under a controller killed mid-upgrade: the clients keep being served
by exactly one engine, a verified version, and the next run finishes the upgrade.

Entering: every host serves 2602 in place (test_30_faults converged the fleet). Leaves the
gpu_servers in place again, on 2603."""

from __future__ import annotations

import json

import pytest

from conftest import MODEL, VARIANT, kill_group, wait_for_text

BG = {"inference_server_mode": "blue_green", "model_upgrade_policy": "immediate"}
HOST = "gpu-02"


def instances(world):
    """gpu-02: the instance the serving link names, and each instance's state and release."""
    out = world.sh_out(HOST, "readlink /var/lib/modelops/modelops-inference/serving.sock || echo none; "
                             "for c in blue green; do echo $(systemctl is-active modelops-inference@$c.service) "
                             "$(readlink /srv/models/%s/$c || echo none); done" % MODEL).strip().splitlines()[-3:]
    return {"serving": out[0].split("/")[-2] if out[0] != "none" else None,
            "blue": tuple(out[1].split()), "green": tuple(out[2].split())}


@pytest.mark.case("controller killed after the new version started beside the old one (blue/green)",
                  "clients served by the old instance all along; next run gates and promotes the new one")
def test_killed_after_the_candidate_started(world, case, adv_fleet, tmp_path):
    from client_poller import ClientPoller  # pylint: disable=import-outside-toplevel
    catalog = world.case_catalog("bluegreen")
    enter = world.upgrade("2602", catalog=catalog, target="gpu_servers", extra=BG)
    assert enter.returncode == 0, enter.stdout[-4000:]
    entered = instances(world)
    old, new = entered["serving"], {"blue": "green", "green": "blue"}.get(entered["serving"])
    assert new and entered[old] == ("active", "2602/%s" % VARIANT) and entered[new] == ("inactive", "none"), entered
    port = adv_fleet["hosts"][HOST]["api_port"]
    out = str(tmp_path / "killed.log")
    with ClientPoller(port, MODEL, api_key=world.api_key) as poller:
        args = world.upgrade_args("2603", catalog=catalog, target="gpu_servers", extra=BG)
        proc = world.ansible.background("ansible-playbook", *args, out=out)
        try:
            # The task after the start: every host of the batch has its candidate running.
            wait_for_text(out, "Record the serving version's behaviour beside the new one", 600, proc)
        finally:
            kill_group(proc)
        world.ansible.log("ansible-playbook", ["(killed run)"], open(out).read())
        killed = instances(world)
        # Exactly one engine takes the clients: the old one; the new one runs beside it, unseen.
        assert killed == {"serving": old, old: ("active", "2602/%s" % VARIANT), new: ("active", "2603/%s" % VARIANT)}, killed
        assert world.currents()[HOST] == "2602/%s" % VARIANT
        run = world.upgrade("2603", catalog=catalog, target="gpu_servers", extra=BG)
    seen = poller.summary()
    after = instances(world)
    case.observed = "after the kill: %s; rerun rc=%d: %s; client: %d requests, %d failed" % (
        killed, run.returncode, after, seen["requests"], seen["failed"])
    assert run.returncode == 0, run.stdout[-4000:]
    # The rerun kept the running candidate, gated it, then moved the clients.
    assert "Gate the new version before any client reaches it" in run.stdout
    assert after == {"serving": new, new: ("active", "2603/%s" % VARIANT), old: ("inactive", "none")}, after
    assert world.currents()[HOST] == "2603/%s" % VARIANT
    assert seen["requests"] > 20 and seen["failed"] == 0, json.dumps(seen)
    back = world.upgrade("2603", catalog=catalog, target="gpu_servers", extra={"inference_server_mode": "in_place"})
    assert back.returncode == 0, back.stdout[-4000:]
    world.serving(case)
