# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The suites' host checks (`ansible <pattern> -m ansible.builtin.shell -a <command>`) over
the hosts' own sshd with OpenSSH, without starting Ansible.

The suites read a link, a file or a unit's state on test hosts several hundred times a run
(docs/test-suite.md). Through Ansible each of those costs 0.9-1.5 s on the test machine
(the interpreter, the inventory, the module's round trip); over an SSH master that stays
open it costs a few hundredths. The shell module is not what these tests test: they look
at what the collection left on a host.

`run()` resolves the host pattern against the same inventories (`ansible-inventory
--list`, once per set of inventories until one of their files changes), runs the command
on every matched host at once with `/bin/sh -c` as the shell module does, and writes the
output as the ad-hoc command's minimal callback does (`host | CHANGED | rc=0 >>`, stdout,
stderr, and `non-zero return code` on a failure; UNREACHABLE when ssh cannot connect),
with its exit codes (2: a host failed; 4: a host was unreachable). Whatever it does not
understand (a pattern with wildcards or regular expressions, a host not reached by
ssh or paramiko, a templated connection variable) it leaves to Ansible: `run()` returns
None."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tarfile
import threading

# (inventories) -> (newest mtime of their files, listing)
_LISTINGS = {}
_LOCK = threading.Lock()
WILDCARDS = set("*?[]~")


def _newest_mtime(paths):
    newest = 0.0
    for path in paths:
        if os.path.isfile(path):
            newest = max(newest, os.path.getmtime(path))
            continue
        for top, _dirs, files in os.walk(path):
            newest = max(newest, os.path.getmtime(top))
            for name in files:
                try:
                    newest = max(newest, os.path.getmtime(os.path.join(top, name)))
                except OSError:
                    pass
    return newest


def listing(inventories, env):
    """`ansible-inventory --list` of the inventories (cached until one of their files changes)."""
    key = tuple(inventories)
    newest = _newest_mtime(inventories)
    with _LOCK:
        cached = _LISTINGS.get(key)
        if cached and cached[0] >= newest:
            return cached[1]
    args = ["ansible-inventory", "--list"]
    for inv in inventories:
        args += ["-i", inv]
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=120, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    with _LOCK:
        _LISTINGS[key] = (newest, data)
    return data


def _group_hosts(data, group, seen=None):
    seen = seen if seen is not None else set()
    if group in seen or group not in data:
        return []
    seen.add(group)
    hosts = list(data[group].get("hosts", []))
    for child in data[group].get("children", []):
        hosts += _group_hosts(data, child, seen)
    return hosts


def resolve(pattern, data):
    """The hosts a host pattern names, in inventory order, as Ansible resolves
    `a:b` / `a,b` (union), `a:&b` (intersection) and `a:!b` (exclusion) of host and group
    names; None for a pattern with wildcards or a name the inventory does not have."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    every = _group_hosts(data, "all")
    order = dict((h, i) for i, h in enumerate(every))
    terms = [t for t in pattern.replace(",", ":").split(":") if t]
    if not terms:
        return None
    union, inter, excl = [], [], []
    for term in terms:
        target = union
        if term[0] in "!&":
            target = excl if term[0] == "!" else inter
            term = term[1:]
        if not term or WILDCARDS & set(term) and term != "*":
            return None
        if term in ("all", "*"):
            hosts = every
        elif term in hostvars:
            hosts = [term]
        elif term in data and term != "_meta":
            hosts = _group_hosts(data, term)
        else:
            return None
        target.append(set(hosts))
    chosen = set().union(*union) if union else set()
    for s in inter:
        chosen &= s
    for s in excl:
        chosen -= s
    return sorted(chosen, key=lambda h: order.get(h, len(order)))


def ssh_args(host, hv, control_dir):
    """The OpenSSH command line for a host's connection variables; None when the host is
    not reached over SSH or a variable is a template (left to Ansible)."""
    if hv.get("ansible_connection", "ssh") not in ("ssh", "paramiko", "ansible.builtin.ssh",
                                                   "ansible.builtin.paramiko_ssh", "paramiko_ssh"):
        return None
    address = hv.get("ansible_host", host)
    port = hv.get("ansible_port", 22)
    user = hv.get("ansible_user")
    key = hv.get("ansible_ssh_private_key_file")
    if any("{{" in str(v) for v in (address, port, user, key) if v is not None):
        return None
    args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
            "-o", "ControlPath=%s" % os.path.join(control_dir, "check-%C"),
            "-p", str(port)]
    if key:
        args += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    if user:
        args += ["-l", str(user)]
    return args + [str(address)]


def _strip(text):
    # the command module strips one trailing newline of stdout and stderr
    return text[:-1] if text.endswith("\n") else text


def format_result(host, rc, stdout, stderr):
    """One host's result as the ad-hoc minimal callback writes the shell module's."""
    if rc == 255:
        msg = "Failed to connect to the host via ssh: %s" % stderr.strip()
        return "%s | UNREACHABLE! => %s\n" % (host, json.dumps(
            {"changed": False, "msg": msg, "unreachable": True}, indent=4))
    caption = "CHANGED" if rc == 0 else "FAILED"
    failed = "" if rc == 0 else "non-zero return code"
    return "%s | %s | rc=%d >>\n%s%s%s\n" % (host, caption, rc, _strip(stdout), _strip(stderr), failed)


def _connections(pattern, inventories, env, control_dir):
    """{host: ssh command line} for the hosts of the pattern, in inventory order; None
    where the pattern or a host is left to Ansible."""
    data = listing(inventories, env)
    if data is None:
        return None
    hosts = resolve(pattern, data)
    if hosts is None:
        return None
    hostvars = data.get("_meta", {}).get("hostvars", {})
    conns = {}
    for host in hosts:
        args = ssh_args(host, hostvars.get(host, {}), control_dir)
        if args is None:
            return None
        conns[host] = args
    os.makedirs(control_dir, exist_ok=True)
    return conns


def _exit_code(rcs):
    """ansible's exit code for the hosts' return codes: 4 a host unreachable, 2 a host failed."""
    return 4 if 255 in rcs else (2 if any(rcs) else 0)


def run(pattern, command, inventories, env, control_dir, timeout=900):
    """(rc, output) of the command on the hosts of the pattern, or None (left to Ansible)."""
    conns = _connections(pattern, inventories, env, control_dir)
    if conns is None:
        return None
    hosts = list(conns)
    cmds = dict((h, args + ["/bin/sh -c %s" % shlex.quote(command)]) for h, args in conns.items())
    if not hosts:
        return 0, "[WARNING]: No hosts matched, nothing to do\n"
    procs = dict((h, subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)) for h, c in cmds.items())
    out, rcs = [], []
    for host in hosts:
        try:
            stdout, stderr = procs[host].communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs[host].kill()
            stdout, stderr = procs[host].communicate()
        rc = procs[host].returncode
        rcs.append(rc)
        out.append(format_result(host, rc, stdout, stderr))
    return _exit_code(rcs), "".join(out)


def copy_args(text):
    """The copy module's `src=... dest=... [mode=preserve]` as a dict, or None for any other
    option (left to Ansible)."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    opts = {}
    for word in words:
        if "=" not in word:
            return None
        k, v = word.split("=", 1)
        opts[k] = v
    if set(opts) - {"src", "dest", "mode"} or not {"src", "dest"} <= set(opts):
        return None
    if opts.get("mode", "preserve") != "preserve" or not os.path.exists(opts["src"]):
        return None
    return opts


def _mode(path, opts):
    """The mode the copy module gives a file: the source's with mode=preserve, else a new
    file's under umask 022 (0644, whatever the source's)."""
    return os.stat(path).st_mode & 0o7777 if opts.get("mode") == "preserve" else 0o644


def _tar_into(stream, src, opts):
    """A tar stream of the directory src's contents, with the modes the copy module gives
    (directories 0755), owned by nobody in particular (extracted with --no-same-owner)."""
    with tarfile.open(fileobj=stream, mode="w|") as tar:
        for top, dirs, files in os.walk(src):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(top, name)
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, src))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isdir():
                    info.mode = 0o755
                    tar.addfile(info)
                elif info.isfile():
                    info.mode = _mode(full, opts)
                    with open(full, "rb") as f:
                        tar.addfile(info, f)


def copy(pattern, text, inventories, env, control_dir, timeout=900):
    """`ansible pattern -m ansible.builtin.copy -a text` for a local file or directory, as
    tar (a directory) or cat (a file) over ssh; (rc, output) or None (left to Ansible).
    As the copy module: `src=dir/` copies the directory's contents into dest, `src=dir`
    the directory itself; a file goes to dest, or into dest when dest ends in / or is a
    directory; files are owned by the remote user, mode 0644 (the source's with
    mode=preserve), directories 0755."""
    opts = copy_args(text)
    if opts is None:
        return None
    conns = _connections(pattern, inventories, env, control_dir)
    if conns is None:
        return None
    src, dest = opts["src"], opts["dest"]
    is_dir = os.path.isdir(src)
    if is_dir:
        into = dest if src.endswith("/") else os.path.join(dest, os.path.basename(src.rstrip("/")))
        remote = "mkdir -p %s && tar --no-same-owner -C %s -xf -" % (shlex.quote(into), shlex.quote(into))
    else:
        name = shlex.quote(os.path.basename(src))
        d = shlex.quote(dest)
        remote = ("d=%s; if [ -d \"$d\" ] || [ \"${d%%/}\" != \"$d\" ]; then mkdir -p \"$d\"; d=\"${d%%/}/\"%s; "
                  "else mkdir -p \"$(dirname \"$d\")\"; fi; cat > \"$d.part\" && chmod %o \"$d.part\" && "
                  "mv -f \"$d.part\" \"$d\"" % (d, name, _mode(src, opts)))
    out, rcs = [], []
    for host, args in conns.items():
        proc = subprocess.Popen(args + ["/bin/sh -c %s" % shlex.quote(remote)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            if is_dir:
                _tar_into(proc.stdin, src, opts)
            else:
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, proc.stdin, 1 << 20)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            proc.stdin = None  # sent: communicate() only reads
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        stdout, stderr = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
        rc = proc.returncode
        rcs.append(rc)
        if rc == 0:
            out.append("%s | CHANGED => %s\n" % (host, json.dumps({"changed": True, "dest": dest, "src": src}, indent=4)))
        elif rc == 255:
            out.append(format_result(host, rc, stdout, stderr))
        else:
            out.append("%s | FAILED! => %s\n" % (host, json.dumps(
                {"changed": False, "msg": "copy of %s to %s failed: %s" % (src, dest, stderr.strip())}, indent=4)))
    return _exit_code(rcs), "".join(out)
