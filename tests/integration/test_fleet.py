# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test fleet itself: real systemd, real sshd, both connection plugins, teardown."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import FLEET_NAME, PORT_OFFSET, fleet, fleet_inventory_args

EXPECTED_GROUPS = {
    "gpu_servers": {"gpu-01", "gpu-02"},
    "edge_devices": {"edge-01", "edge-02", "edge-03"},
    "critical": {"crit-01"},
}


def test_fleet_has_every_inventory_host_running(test_fleet):
    hosts = test_fleet["hosts"]
    assert set(hosts) == set().union(*EXPECTED_GROUPS.values())
    for name, h in hosts.items():
        out = subprocess.run(["podman", "inspect", "--format",
                              "{{.State.Running}} {{json .HostConfig.PortBindings}}", h["id"]],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        running, bindings = out.split(" ", 1)
        assert running == "true", name
        # Published on loopback only.
        for binds in json.loads(bindings).values():
            for b in binds:
                assert b["HostIp"] == "127.0.0.1", (name, b)


def test_every_host_boots_real_systemd(ansible):
    proc = ansible.adhoc("all", "-m", "ansible.builtin.command",
                         "-a", "sh -c 'cat /proc/1/comm; systemctl is-system-running'")
    for host in set().union(*EXPECTED_GROUPS.values()):
        m = re.search(r"^%s \| CHANGED \| rc=0 >>\nsystemd\n(running|degraded)$" % re.escape(host),
                      proc.stdout, re.M)
        assert m, "%s did not report systemd as PID 1:\n%s" % (host, proc.stdout)


def test_groups_use_openssh_and_paramiko(ansible):
    out = ansible.adhoc("all", "-m", "ansible.builtin.ping", "-vvv").stdout
    # paramiko logs the port it connects to; OpenSSH shows its command line.
    for host in EXPECTED_GROUPS["edge_devices"]:
        port = ansible_port_of(ansible, host)
        assert re.search(r"ESTABLISH PARAMIKO SSH CONNECTION FOR USER: root on PORT %d TO "
                         r"127\.0\.0\.1" % port, out), host
        assert not re.search(r"SSH: EXEC ssh .*-o Port=%d " % port, out), host
    for host in EXPECTED_GROUPS["gpu_servers"] | EXPECTED_GROUPS["critical"]:
        port = ansible_port_of(ansible, host)
        assert re.search(r"SSH: EXEC ssh .*-o Port=%d .*127\.0\.0\.1" % port, out), host
        assert "on PORT %d TO" % port not in out, host
    assert set(re.findall(r"^(\S+) \| SUCCESS", out, re.M)) == set().union(*EXPECTED_GROUPS.values())


def ansible_port_of(ansible, host):
    proc = ansible.run("ansible-inventory", "--host", host)
    return int(json.loads(proc.stdout)["ansible_port"])


def test_unreachable_host_is_reported_by_name(ansible, test_fleet):
    """A host whose container is stopped is reported unreachable; the others still answer."""
    victim = test_fleet["hosts"]["crit-01"]
    subprocess.run(["podman", "stop", "-t", "2", victim["id"]], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        proc = ansible.adhoc("all", "-m", "ansible.builtin.ping", check=False)
        assert proc.returncode != 0
        assert re.search(r"^crit-01 \| UNREACHABLE!", proc.stdout, re.M), proc.stdout
        assert proc.stdout.count("SUCCESS") == 5
    finally:
        # fleet up restarts exactly the missing host and waits for it to boot.
        fleet("up", "--name", FLEET_NAME, *fleet_inventory_args(), "--port-offset", str(PORT_OFFSET))
    proc = ansible.adhoc("crit-01", "-m", "ansible.builtin.ping")
    assert "SUCCESS" in proc.stdout


def test_teardown_removes_only_that_fleets_containers(test_fleet):
    other = fleet("up", "--name", "teardown-check", "--host", "td-01:22295:28295")
    state = json.loads(other.stdout)
    cid = state["hosts"]["td-01"]["id"]
    removed = json.loads(fleet("down", "--name", "teardown-check").stdout)["removed"]
    assert removed == [cid]
    left = subprocess.run(["podman", "ps", "-a", "-q", "--filter",
                           "label=io.modelops.fleet.name=teardown-check"],
                          stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    assert left == []
    # The session's fleet is untouched.
    for h in test_fleet["hosts"].values():
        out = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", h["id"]],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        assert out == "true"


def test_port_in_use_is_a_clear_error(test_fleet):
    gpu = test_fleet["hosts"]["gpu-01"]
    proc = fleet("up", "--name", "clash", "--host", "clash-01:%d:28296" % gpu["ssh_port"],
                 check=False)
    assert proc.returncode == 1
    assert "clash-01" in proc.stderr and "127.0.0.1:%d is already in use" % gpu["ssh_port"] in proc.stderr
    fleet("down", "--name", "clash", check=False)
