# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The suites' host checks go over the hosts' sshd without starting Ansible
(tests/fleet/host_shell.py, through Ansible.adhoc): on the real fleet they print what
`ansible -m ansible.builtin.shell` prints and exit as it exits, so the tests read them the
same way."""

from __future__ import annotations

import re

import suite_timing


def blocks(output):
    """{host: its block of the ad-hoc output}, without Ansible's warnings and errors (2.19
    writes a failed task's origin after the host's block)."""
    found = {}
    host = None
    for line in output.splitlines():
        if line.startswith(("[WARNING]", "[DEPRECATION WARNING]", "[ERROR]")):
            host = None
            continue
        m = re.match(r"^(\S+) \| (CHANGED|FAILED|UNREACHABLE!)", line)
        if m:
            host = m.group(1)
            found[host] = []
        if host:
            found[host].append(line)
    return dict((h, "\n".join(lines)) for h, lines in found.items())


CASES = [
    # every host, stdout and stderr
    ("all", "echo host $(hostname); echo to-stderr >&2; readlink /srv/models || echo none"),
    # a group less a host, a command that fails on some hosts
    ("gpu_servers:edge_devices:!gpu-01", "test \"$(hostname)\" != edge-02 || { echo no; exit 3; }; echo yes"),
    ("gpu-02", "printf 'no newline'"),
]


def test_host_checks_print_and_exit_as_the_shell_module(ansible):
    for pattern, cmd in CASES:
        real = ansible.run("ansible", pattern, "-m", "ansible.builtin.shell", "-a", cmd, check=False)
        quick = ansible.host_shell(pattern, cmd)
        assert quick is not None, "host_shell left %r to Ansible" % pattern
        assert blocks(quick.stdout) == blocks(real.stdout), (quick.stdout, real.stdout)
        assert quick.returncode == real.returncode, (quick.returncode, real.stdout)
    # and adhoc() takes that path
    before = suite_timing._SPENT.get("ssh (host check)", [0, 0.0])[0]
    ansible.adhoc("gpu-02", "-m", "ansible.builtin.shell", "-a", "true")
    assert suite_timing._SPENT["ssh (host check)"][0] == before + 1


def test_files_put_on_a_host_land_as_the_copy_module_puts_them(ansible, tmp_path):
    """The same copies through the copy module and through host_copy, into two directories
    of a host: the same files, bytes, modes and owners."""
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"\0a" * 5000)
    (src / "sub" / "b.txt").write_text("b\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    copies = [("src=%s/ dest={d}/contents/" % src), ("src=%s dest={d}/" % src),
              ("src=%s dest={d}/file-into-dir/" % (src / "a.bin")), ("src=%s dest={d}/renamed.txt" % (src / "sub" / "b.txt")),
              ("src=%s dest={d}/run.sh mode=preserve" % (src / "run.sh"))]
    listing = ("cd {d} && find . -mindepth 1 | sort | while read f; do "
               "echo \"$f $(stat -c '%a %U %s' \"$f\") $( [ -f \"$f\" ] && sha256sum < \"$f\" | cut -c1-16)\"; done")
    seen = {}
    for way, d in (("ansible", "/srv/copy-by-ansible"), ("ssh", "/srv/copy-by-ssh")):
        ansible.run("ansible", "gpu-02", "-m", "ansible.builtin.shell", "-a", "rm -rf %s; mkdir %s" % (d, d))
        for text in copies:
            if way == "ansible":
                ansible.run("ansible", "gpu-02", "-m", "ansible.builtin.copy", "-a", text.format(d=d))
            else:
                done = ansible.host_copy("gpu-02", text.format(d=d))
                assert done is not None and done.returncode == 0, (text, done and done.stdout)
        seen[way] = ansible.host_shell("gpu-02", listing.format(d=d)).stdout.split(">>\n", 1)[1]
    assert "./tree/sub/b.txt 644 root 2" in seen["ssh"] and "./run.sh 755 root" in seen["ssh"], seen["ssh"]
    assert seen["ssh"] == seen["ansible"], seen
    ansible.host_shell("gpu-02", "rm -rf /srv/copy-by-ansible /srv/copy-by-ssh")
