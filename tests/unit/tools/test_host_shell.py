# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The suites' host checks over OpenSSH (tests/fleet/host_shell.py): host patterns resolved
as Ansible resolves them, from a real `ansible-inventory --list` of a small inventory, and
what is left to Ansible. tests/integration/test_host_checks.py compares the output with the
shell module's on the real fleet."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))

import host_shell  # noqa: E402  pylint: disable=wrong-import-position

INVENTORY = """
all:
  vars:
    ansible_user: root
  children:
    gpu_servers:
      hosts:
        gpu-01: {ansible_host: 127.0.0.1, ansible_port: 2201}
        gpu-02: {ansible_host: 127.0.0.1, ansible_port: 2202}
    edge:
      children:
        edge_a:
          hosts:
            edge-01: {ansible_host: 127.0.0.1, ansible_port: 2211, ansible_connection: paramiko}
    local:
      hosts:
        ctl: {ansible_connection: local}
    templated:
      hosts:
        tpl-01: {ansible_host: "{{ fleet_address }}", fleet_address: 10.0.0.9}
"""


def _listing(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    data = host_shell.listing([str(inv)], env)
    assert data is not None
    return inv, env, data


def test_patterns_resolve_as_ansible_resolves_them(tmp_path):
    _inv, _env, data = _listing(tmp_path)
    assert host_shell.resolve("gpu-01", data) == ["gpu-01"]
    assert host_shell.resolve("gpu_servers", data) == ["gpu-01", "gpu-02"]
    # nested groups, union, exclusion, intersection
    assert host_shell.resolve("edge", data) == ["edge-01"]
    assert host_shell.resolve("gpu_servers:edge", data) == ["gpu-01", "gpu-02", "edge-01"]
    assert host_shell.resolve("gpu_servers,edge", data) == ["gpu-01", "gpu-02", "edge-01"]
    assert set(host_shell.resolve("all:!local:!templated", data)) == {"gpu-01", "gpu-02", "edge-01"}
    assert host_shell.resolve("gpu_servers:&gpu-02", data) == ["gpu-02"]
    assert host_shell.resolve("gpu_servers:!gpu-01", data) == ["gpu-02"]
    # left to Ansible: wildcards, regular expressions, names the inventory does not have
    assert host_shell.resolve("gpu-0*", data) is None
    assert host_shell.resolve("~gpu", data) is None
    assert host_shell.resolve("gpu-0[1:2]", data) is None
    assert host_shell.resolve("nosuchhost", data) is None


def test_hosts_not_reached_over_ssh_are_left_to_ansible(tmp_path):
    _inv, _env, data = _listing(tmp_path)
    hv = data["_meta"]["hostvars"]
    args = host_shell.ssh_args("gpu-02", hv["gpu-02"], "/tmp/cp")
    assert args[-1] == "127.0.0.1" and args[args.index("-p") + 1] == "2202" and args[args.index("-l") + 1] == "root"
    # paramiko hosts have the same sshd
    assert host_shell.ssh_args("edge-01", hv["edge-01"], "/tmp/cp")[-1] == "127.0.0.1"
    assert host_shell.ssh_args("ctl", hv["ctl"], "/tmp/cp") is None
    assert host_shell.ssh_args("tpl-01", hv["tpl-01"], "/tmp/cp") is None


def test_a_pattern_with_a_local_host_runs_through_ansible(tmp_path):
    inv, env, _data = _listing(tmp_path)
    assert host_shell.run("local", "true", [str(inv)], env, str(tmp_path / "cp")) is None
    assert host_shell.run("gpu-0*", "true", [str(inv)], env, str(tmp_path / "cp")) is None


def test_the_listing_is_read_again_when_an_inventory_file_changes(tmp_path):
    inv, env, data = _listing(tmp_path)
    assert host_shell.resolve("gpu-03", data) is None
    inv.write_text(INVENTORY.replace("gpu-02: {", "gpu-03: {"))
    os.utime(str(inv), (os.path.getmtime(str(inv)) + 5,) * 2)
    data = host_shell.listing([str(inv)], env)
    assert host_shell.resolve("gpu-03", data) == ["gpu-03"]


def test_results_are_written_as_the_minimal_callback_writes_the_shell_modules():
    assert host_shell.format_result("gpu-01", 0, "a\nb\n", "") == "gpu-01 | CHANGED | rc=0 >>\na\nb\n"
    assert host_shell.format_result("gpu-01", 1, "out\n", "err\n") == \
        "gpu-01 | FAILED | rc=1 >>\nouterrnon-zero return code\n"
    unreachable = host_shell.format_result("gpu-01", 255, "", "Connection refused\n")
    assert unreachable.startswith("gpu-01 | UNREACHABLE! => {") and '"unreachable": true' in unreachable


def test_only_plain_copies_of_local_files_are_taken_from_ansible(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert host_shell.copy_args("src=%s dest=/srv/x/" % f) == {"src": str(f), "dest": "/srv/x/"}
    assert host_shell.copy_args("src=%s dest=/srv/x mode=preserve" % f)["mode"] == "preserve"
    # any other option, a missing source or a remote one stay with the copy module
    assert host_shell.copy_args("src=%s dest=/srv/x mode=0600" % f) is None
    assert host_shell.copy_args("src=%s dest=/srv/x owner=nobody" % f) is None
    assert host_shell.copy_args("src=%s dest=/srv/x remote_src=true" % f) is None
    assert host_shell.copy_args("content=hello dest=/srv/x") is None
    assert host_shell.copy_args("src=%s/missing dest=/srv/x" % tmp_path) is None
