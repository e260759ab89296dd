# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""upgrade.yml on the test fleet: canary first, frozen untouched, idempotent; a broken
model rolled back on the canary; a tampered release refused before any host is touched."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import MODEL, VARIANT, Ansible, fresh_hosts, publish_gguf, recap, rollout_steps, upgrade_overrides

ALL = ["gpu-01", "gpu-02", "edge-01", "edge-02", "edge-03", "crit-01"]
# A row of the --check plan table (a literal block of the debug output, one line per host)
PLAN_ROW = r"^\s+((?:gpu|edge|crit)-\d+)\s+(.*)$"


@pytest.fixture(scope="module")
def release_env(ansible, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("upgrade")
    env = {"repo": base / "repo", "catalog": str(base / "registry.db"), "base": base}

    def publish(version, seq, weights=None, extra=""):
        publish_gguf(ansible, base, env["repo"], version, seq, keys.publisher, extra, weights)
    env["publish"] = publish
    # Start from hosts without the model, whatever earlier test modules left on the fleet.
    fresh_hosts(ansible, MODEL)
    publish("2411", 1)
    return env


def upgrade(ansible, keys, env, *extra, check=True):
    overrides = upgrade_overrides(ansible, keys.publisher, env["repo"], env["catalog"])
    return ansible.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), *extra, check=check)


def currents(ansible):
    out = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                        "readlink /srv/models/%s/current || echo none" % MODEL).stdout
    return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", out, re.M))


def test_bootstrap_then_good_v2_canary_first_frozen_untouched_then_nothing(ansible, keys, release_env):
    boot = upgrade(ansible, keys, release_env, "-e", "model_version=2411", "-e", "model_upgrade_policy=immediate")
    assert currents(ansible) == dict((h, "2411/%s" % VARIANT) for h in ALL), boot.stdout[-3000:]

    release_env["publish"]("2412", 2, extra="v2")
    # --check prints the plan and changes nothing.
    plan = upgrade(ansible, keys, release_env, "--check")
    rows = dict((m.group(1), m.group(2).split()) for m in re.finditer(PLAN_ROW, plan.stdout, re.M))
    assert set(rows) == set(ALL), plan.stdout[-3000:]
    assert rows["gpu-01"][:6] == ["gpu_servers", "canary", "canary", "2411/%s" % VARIANT, "2412/%s" % VARIANT, "upgrade"]
    assert rows["gpu-02"][:3] == ["gpu_servers", "canary", "batch-1"]
    assert rows["edge-02"][:2] == ["edge_devices", "immediate"]
    assert rows["crit-01"][:3] == ["critical", "frozen", "-"]
    # Every engine is installed as the role installs it: nothing to configure.
    assert set(r[-2] for r in rows.values()) == {"ok", "-"} and rows["crit-01"][-2] == "-", rows
    # Same weights: only the changed generation_config.json would cross the wire.
    moved = int(rows["gpu-01"][-1])
    assert 0 < moved < 1024, rows["gpu-01"]
    # A single host (or any host pattern) as the target plans that host only.
    one = upgrade(ansible, keys, release_env, "--check", "-e", "model_target=gpu-02")
    one_rows = dict((m.group(1), m.group(2).split()) for m in re.finditer(PLAN_ROW, one.stdout, re.M))
    assert set(one_rows) == {"gpu-02"} and one_rows["gpu-02"][4] == "2412/%s" % VARIANT, one.stdout[-3000:]
    assert currents(ansible) == dict((h, "2411/%s" % VARIANT) for h in ALL)
    listing = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a", "ls /srv/models/%s" % MODEL).stdout
    assert "2412" not in listing

    # A batch size or failure budget the rollout cannot use fails the plan, before any host
    # is changed (model_serial=two used to crash the run when the rest play started, after
    # the canary had moved to 2412; nan never halted, -5 halted with no failure).
    for bad, said in (("model_serial=two", r"model_serial 'two' is not a number of hosts or a percentage: set it to"),
                      ("model_max_fail_percentage=nan",
                       r"host \S+: model_max_fail_percentage 'nan' is not a percentage from 0 to 100: set it to")):
        refused = upgrade(ansible, keys, release_env, "-e", bad, check=False)
        assert refused.returncode != 0 and re.search(said, " ".join(refused.stdout.split())), refused.stdout[-3000:]
        assert "PLAY [Canaries]" not in refused.stdout
        assert currents(ansible) == dict((h, "2411/%s" % VARIANT) for h in ALL), bad

    run = upgrade(ansible, keys, release_env)
    out = run.stdout
    # The canary play ran before the rest, on gpu-01 alone.
    canary_play = out.index("PLAY [Canaries]")
    rest_play = out.index("PLAY [The rest, in batches, within the failure budget]")
    assert canary_play < rest_play
    canary_section = out[canary_play:rest_play]
    assert "gpu-01" in canary_section and "gpu-02" not in canary_section and "edge-01" not in canary_section
    want = dict((h, "2412/%s" % VARIANT) for h in ALL)
    want["crit-01"] = "2411/%s" % VARIANT  # frozen, pinned at 2411
    assert currents(ansible) == want
    # The summary names every host's result.
    assert re.search(r"^\s+gpu-01: upgraded$", out, re.M) and re.search(r"^\s+crit-01: frozen$", out, re.M), out[-2000:]

    again = upgrade(ansible, keys, release_env)
    for host, c in recap(again.stdout).items():
        assert c["changed"] == 0 and c["failed"] == 0, (host, c)
    # The engines are installed as the role installs them: model_info saw no drift and the
    # run spent no round trip on their configuration.
    assert "inference_server : Install llama-server" not in again.stdout, again.stdout[-3000:]
    assert "inference_server : Install the systemd unit" not in again.stdout
    # Every upgraded host was already on 2412 and served it: the run's one read of each host
    # (model_info with converge) said so and no other module ran on it (no sync, no switch,
    # no metrics write).
    assert_no_op(again.stdout)


# What an upgrade runs on a host that is not already where it should be: the rollout task,
# and in it these steps.
ROLLOUT_TASK = "TASK [modelops.fleet.model_upgrade : Upgrade, and roll back on failure]"
HOST_STEPS = ["Make the release present on the host",
              "Switch to the new version and restart the engine on it",
              "Publish the host's model metrics for node_exporter"]


def assert_no_op(out):
    """Every planned host was read once and found serving the release: the plays that
    upgrade hosts had none left to work on, and no host ran an upgrade step."""
    assert ROLLOUT_TASK not in out, out[-3000:]
    for step in HOST_STEPS:
        assert not rollout_steps(out, step), (step, out[-3000:])
    assert re.search(r"TASK \[modelops.fleet.model_upgrade : Read what the host serves now", out), out[-3000:]
    for play in ("Canaries", "The rest, in batches, within the failure budget"):
        assert re.search(r"PLAY \[%s\] \**\nskipping: no hosts matched" % re.escape(play), out), (play, out[-3000:])


def test_a_damaged_release_on_a_host_is_not_taken_for_done(ansible, keys, release_env):
    # After the test above every host serves 2412 and a run has nothing to do. A file of
    # gpu-02's served release is changed on the host (same size, so only its hash tells).
    damage = ("cd /srv/models/%s/2412/%s && chmod u+w generation_config.json && "
              "printf '{' | dd of=generation_config.json bs=1 seek=1 conv=notrunc status=none && "
              "chmod 0444 generation_config.json" % (MODEL, VARIANT))
    ansible.adhoc("gpu-02", "-m", "ansible.builtin.shell", "-a", damage)
    run = upgrade(ansible, keys, release_env)
    changed = dict((h, c["changed"]) for h, c in recap(run.stdout).items() if h in ALL)
    # gpu-02 alone went through the upgrade: the release was synced again (verified
    # against the signed manifest) and the engine restarted on the intact copy.
    assert [h for h, n in changed.items() if n] == ["gpu-02"], (changed, run.stdout[-3000:])
    assert [h for h, dummy, status in rollout_steps(run.stdout, HOST_STEPS[0])] == ["gpu-02"], run.stdout[-3000:]
    # The damage put "{{" where the JSON has '{"': the served copy is the signed bytes again.
    head = ansible.adhoc("gpu-02", "-m", "ansible.builtin.shell", "-a",
                         "head -c 2 /srv/models/%s/current/generation_config.json" % MODEL).stdout
    assert re.search(r'^\{"$', head, re.M), head
    assert currents(ansible)["gpu-02"] == "2412/%s" % VARIANT
    # And now it is done: the next run is a no-op again.
    assert_no_op(upgrade(ansible, keys, release_env).stdout)


def test_a_host_that_cannot_be_read_is_given_up_and_named_and_the_rest_goes_on(ansible, keys, release_env, tmp_path):
    # edge-02's inventory names a Python that is not there: its one read fails (not an
    # unreachable host). The fleet is on 2412 (the tests above).
    broken = tmp_path / "broken-python.yml"
    broken.write_text(json.dumps({"all": {"hosts": {"edge-02": {"ansible_python_interpreter": "/nonexistent/python3"}}}}))
    layered = Ansible(ansible.inventories + [str(broken)], ansible.artifacts)
    overrides = upgrade_overrides(ansible, keys.publisher, release_env["repo"], release_env["catalog"])
    run = layered.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), check=False)
    said = " ".join(run.stdout.split())
    assert run.returncode != 0, run.stdout[-3000:]
    # Given up and named in the summary, with the task and the reason; the others were
    # read, found serving 2412 and left alone.
    assert "rollout of %s failed on edge-02 " % MODEL in said, run.stdout[-3000:]
    assert re.search(r"edge-02: could not be read before the upgrade \(Read what the host serves now and how its "
                     r"engine is installed: .*nonexistent/python3", said), run.stdout[-3000:]
    assert re.search(r"^\s+edge-02: failed$", run.stdout, re.M) and re.search(r"^\s+edge-01: upgraded$", run.stdout, re.M)
    assert_no_op(run.stdout)
    now = currents(ansible)
    assert now.pop("crit-01") == "2411/%s" % VARIANT and set(now.values()) == {"2412/%s" % VARIANT}, now


def main_pids(ansible):
    out = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                        "systemctl show -p MainPID --value modelops-inference.service").stdout
    return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\d+)$", out, re.M))


def test_engine_configuration_changed_by_hand_is_repaired_on_that_host_alone(ansible, keys, release_env):
    unit, env = "/etc/systemd/system/modelops-inference.service", "/etc/modelops/modelops-inference.env"
    ansible.adhoc("edge-01", "-m", "ansible.builtin.shell", "-a",
                  "echo '# edited by hand' >> %s && chmod 0644 %s" % (unit, env))
    before = main_pids(ansible)
    # --check says which host would be configured again, and why, and changes nothing
    plan = upgrade(ansible, keys, release_env, "--check")
    rows = dict((m.group(1), m.group(2).split()) for m in re.finditer(PLAN_ROW, plan.stdout, re.M))
    assert rows["edge-01"][-2] == "configure" and rows["gpu-02"][-2] == "ok", rows
    said = " ".join(plan.stdout.split())  # the callback may fold long messages
    assert "edge-01: the engine is not installed as the inference_server role installs it" in said, plan.stdout[-3000:]
    assert "%s: its content differs" % unit in said and "%s: mode 0644, not 0600" % env in said, plan.stdout[-3000:]
    assert main_pids(ansible) == before
    run = upgrade(ansible, keys, release_env)
    counts = recap(run.stdout)
    assert counts["edge-01"]["changed"] > 0, (counts, run.stdout[-3000:])
    for host in ALL[:-1]:
        if host != "edge-01":
            assert counts[host]["changed"] == 0, (host, counts[host])
    # edge-01 got the role's unit and environment back, and its engine restarted on them
    state = ansible.adhoc("edge-01", "-m", "ansible.builtin.shell", "-a",
                          "(grep -c 'edited by hand' %s || true); stat -c %%a %s" % (unit, env)).stdout
    assert re.search(r"^0\n600$", state, re.M), state
    after = main_pids(ansible)
    assert after["edge-01"] != before["edge-01"], (before, after)
    assert dict((h, p) for h, p in after.items() if h != "edge-01") == dict((h, p) for h, p in before.items() if h != "edge-01")
    assert currents(ansible)["edge-01"] == "2412/%s" % VARIANT


def test_broken_v3_fails_on_the_canary_which_is_rolled_back(ansible, keys, release_env, test_fleet):
    # Signed, complete and intact, but not a model llama-server can load.
    release_env["publish"]("2501", 3, weights=b"GGUF" + os.urandom(1 << 20))
    run = upgrade(ansible, keys, release_env, "-e", "model_target=gpu_servers", check=False)
    out = run.stdout
    assert run.returncode != 0
    assert "rollout of %s failed on gpu-01" % MODEL in out, out[-6000:]
    assert re.search(r"gpu-01: upgrade to %s-2501-%s failed at .*rolled back to 2412/%s, which serves again"
                     % (MODEL, VARIANT, VARIANT), out.replace("\n", " ")), out[-4000:]
    c = currents(ansible)
    assert c["gpu-01"] == "2412/%s" % VARIANT and c["gpu-02"] == "2412/%s" % VARIANT
    # The rest of the canary's group was not touched at all.
    listing = ansible.adhoc("gpu-02", "-m", "ansible.builtin.shell", "-a",
                            "ls /srv/models/%s" % MODEL).stdout
    assert "2501" not in listing
    # The canary serves again.
    ready = ansible.adhoc("gpu-01", "-m", "modelops.fleet.inference_ready", "-a",
                          "served_name=%s unit=modelops-inference.service timeout=60" % MODEL)
    assert "SUCCESS" in ready.stdout


def test_tampered_release_is_refused_before_any_host_is_touched(ansible, keys, release_env):
    release_env["publish"]("2502", 4)
    manifest = release_env["repo"] / MODEL / "2502" / VARIANT / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"][0]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run = upgrade(ansible, keys, release_env, "-e", "model_version=2502", check=False)
    assert run.returncode != 0
    assert "BAD signature" in run.stdout
    counts = recap(run.stdout)
    assert set(counts) == {"localhost"}, counts  # no play ran on any host
    listing = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                            "ls /srv/models/%s 2>/dev/null; true" % MODEL).stdout
    assert "2502" not in listing
