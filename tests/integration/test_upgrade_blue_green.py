# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""upgrade.yml on a host in the blue/green mode (inference_server_mode=blue_green), llama.cpp:
the new version starts beside the old one, is judged there, and only then the clients'
connections move to it. A client polling the host's published port all along sees no failed
request, and never an answer of a release that failed its gate.

gpu-01 and gpu-02 (the client polls gpu-02), which end back in the in-place mode."""

from __future__ import annotations

import json
import re

import pytest

from conftest import GGUF, MODEL, VARIANT, fresh_hosts, publish_gguf, recap, rollout_steps, upgrade_overrides
from client_poller import ClientPoller, ask
from damage_gguf import zero_weights

HOST = "gpu-02"
SERVICE = "modelops-inference"


@pytest.fixture(scope="module")
def bg(ansible, keys, tmp_path_factory, test_fleet):
    base = tmp_path_factory.mktemp("bluegreen")
    env = {"repo": base / "repo", "catalog": str(base / "registry.db"), "base": base,
           "port": test_fleet["hosts"][HOST]["api_port"]}

    def publish(version, seq, weights=None, extra=""):
        publish_gguf(ansible, base, env["repo"], version, seq, keys.publisher, extra, weights)
    env["publish"] = publish
    fresh_hosts(ansible, MODEL)
    publish("2411", 1)
    yield env
    # Back to the in-place mode, whatever a failed test left.
    upgrade(ansible, keys, env, "-e", "inference_server_mode=in_place", "-e", "model_version=2412",
            "-e", "model_catalog=%s" % (base / "teardown.db"), check=False)


def upgrade(ansible, keys, env, *extra, check=True):
    overrides = upgrade_overrides(ansible, keys.publisher, env["repo"], env["catalog"])
    # both gpu_servers (model_target names a group); the client polls gpu-02
    overrides.update(model_target="gpu_servers", model_upgrade_policy="immediate", inference_server_mode="blue_green")
    return ansible.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), *extra, check=check)


def sh(ansible, cmd):
    out = ansible.adhoc(HOST, "-m", "ansible.builtin.shell", "-a", cmd).stdout
    return out.split(">>\n", 1)[1] if ">>\n" in out else out


def layout(ansible):
    """What serves on the host: the serving link, each instance's state and release, current."""
    out = sh(ansible, "readlink /var/lib/modelops/{s}/serving.sock || echo none; "
                      "for c in blue green; do echo $c $(systemctl is-active {s}@$c.service) "
                      "$(readlink /srv/models/{m}/$c || echo none); done; "
                      "readlink /srv/models/{m}/current; systemctl is-active {s}-front.socket {s}.service || true"
             .format(s=SERVICE, m=MODEL))
    lines = out.strip().splitlines()
    return {"serving": lines[0].split("/")[-2] if lines[0] != "none" else None,
            "blue": tuple(lines[1].split()[1:]), "green": tuple(lines[2].split()[1:]),
            "current": lines[3], "front": lines[4], "in_place_unit": lines[5]}


def ledger(ansible):
    return json.loads(sh(ansible, "cat /srv/models/.modelops/state.json"))["events"]


def test_a_host_enters_the_blue_green_mode_and_serves_from_an_instance(ansible, keys, bg):
    boot = upgrade(ansible, keys, bg, "-e", "model_version=2411")
    assert re.search(r"^\s+%s: upgraded$" % HOST, boot.stdout, re.M), boot.stdout[-3000:]
    lay = layout(ansible)
    assert lay["serving"] == "blue" and lay["blue"] == ("active", "2411/%s" % VARIANT), lay
    assert lay["green"] == ("inactive", "none") and lay["current"] == "2411/%s" % VARIANT, lay
    assert (lay["front"], lay["in_place_unit"]) == ("active", "inactive"), lay
    # The clients' address is the front socket's now: the published port answers.
    assert "paris" in ask(bg["port"], MODEL).lower()


def test_upgrade_moves_the_clients_with_no_failed_request(ansible, keys, bg):
    bg["publish"]("2412", 2, extra="v2")
    good = ask(bg["port"], MODEL)
    with ClientPoller(bg["port"], MODEL) as poller:
        run = upgrade(ansible, keys, bg)
    seen = poller.summary()
    bg["poller_upgrade"] = seen
    assert re.search(r"^\s+%s: upgraded$" % HOST, run.stdout, re.M), run.stdout[-3000:]
    # Judged before the clients moved: the gate ran on the new instance's socket.
    steps = [(h, task, status) for h, task, status in rollout_steps(run.stdout) if h == HOST]
    gates = [i for i, s in enumerate(steps) if "Gate the new version before any client reaches it" in s[1]]
    moves = [i for i, s in enumerate(steps) if "Move the clients to the new version" in s[1]]
    assert gates and steps[gates[0]][2] in ("ok", "changed"), steps
    assert moves and gates[0] < moves[0], steps
    lay = layout(ansible)
    assert lay["serving"] == "green" and lay["green"] == ("active", "2412/%s" % VARIANT), lay
    assert lay["blue"] == ("inactive", "none") and lay["current"] == "2412/%s" % VARIANT, lay
    # Every request of the client was answered, by the same model (same weights, same answer).
    assert seen["requests"] > 20 and seen["failed"] == 0, seen
    assert list(seen["answers"]) == [good], seen
    promoted = [e for e in ledger(ansible) if e.get("action") == "activate" and e.get("to") == "2412/%s" % VARIANT]
    assert promoted[-1]["instance"] == "green" and promoted[-1]["gated"] is True, promoted[-1]


def test_a_blue_green_host_at_the_target_costs_one_read(ansible, keys, bg):
    again = upgrade(ansible, keys, bg)
    assert recap(again.stdout)[HOST]["changed"] == 0, again.stdout[-3000:]
    assert "Start the new version beside the serving one" not in again.stdout
    assert re.search(r"^\s+%s: upgraded$" % HOST, again.stdout, re.M), again.stdout[-3000:]


def test_a_release_that_fails_its_gate_never_answers_a_client(ansible, keys, bg, tmp_path):
    """2413 loads and answers, but nonsense (most weights zeroed): its gate fails on its own
    instance, which is stopped; the clients were answered by 2412 all along."""
    damaged = tmp_path / GGUF
    zero_weights(ansible.artifacts["model_file"], str(damaged))
    bg["publish"]("2413", 3, weights=damaged.read_bytes())
    good = ask(bg["port"], MODEL)
    with ClientPoller(bg["port"], MODEL) as poller:
        run = upgrade(ansible, keys, bg, check=False)
    seen = poller.summary()
    bg["poller_bad"] = seen
    assert run.returncode != 0
    said = " ".join(run.stdout.split())
    assert re.search(r"%s: upgrade to %s-2413-%s failed at Gate the new version before any client reaches it.{0,1500}"
                     r"no client reached 2413/%s: its instance was stopped and the host still serves 2412/%s"
                     % (HOST, MODEL, VARIANT, VARIANT, VARIANT), said), said[-3000:]
    lay = layout(ansible)
    assert lay["serving"] == "green" and lay["green"] == ("active", "2412/%s" % VARIANT), lay
    assert lay["blue"] == ("inactive", "none") and lay["current"] == "2412/%s" % VARIANT, lay
    # No failed request, and no answer but the good version's.
    assert seen["requests"] > 20 and seen["failed"] == 0, seen
    assert list(seen["answers"]) == [good], seen


def test_without_memory_for_two_engines_the_host_is_upgraded_in_place_and_says_so(ansible, keys, bg):
    """A memory factor no host meets: the plan says in_place(memory); the run stops the
    serving instance, starts the new version in the other one and moves the clients to it."""
    bg["publish"]("2414", 4, extra="v4")
    factor = ("-e", "inference_server_blue_green_memory_factor=100000")
    plan = upgrade(ansible, keys, bg, *factor, "--check")
    row = re.search(r"^\s+%s\s+(.*)$" % HOST, plan.stdout, re.M)
    assert row and "in_place(memory)" in row.group(1).split(), plan.stdout[-3000:]
    run = upgrade(ansible, keys, bg, *factor)
    said = " ".join(run.stdout.split())
    assert "%s: upgraded in place, not blue/green: in_place: 2414/%s: two engines do not fit" % (HOST, VARIANT) in said, \
        said[-3000:]
    lay = layout(ansible)
    assert lay["serving"] == "blue" and lay["blue"] == ("active", "2414/%s" % VARIANT), lay
    assert lay["green"] == ("inactive", "none") and lay["current"] == "2414/%s" % VARIANT, lay


def test_the_host_goes_back_to_the_in_place_mode(ansible, keys, bg):
    # 2412 again (2413 failed): a catalog of its own, as anti-rollback refuses it in the run's catalog
    back = upgrade(ansible, keys, bg, "-e", "inference_server_mode=in_place", "-e", "model_version=2412",
                   "-e", "model_catalog=%s" % (bg["base"] / "back.db"))
    assert back.returncode == 0, back.stdout[-3000:]
    lay = layout(ansible)
    assert lay["serving"] is None and lay["front"] != "active" and lay["in_place_unit"] == "active", lay
    assert "paris" in ask(bg["port"], MODEL).lower()
    # The poller's figures, in the test log (bench/bluegreen_bench.py measures them side by side).
    print("blue/green poller: upgrade %s; failed release %s" % (bg.get("poller_upgrade"), bg.get("poller_bad")))
