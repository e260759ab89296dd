# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Served-model attestation: which release a running engine really loaded.

What an engine reports about its model (llama-server's /props, vLLM's /v1/models root)
is the path it was given, and the units give it the ``current`` link: resolving that
later says where ``current`` points now, not what was loaded. The evidence used here is
the engine process's working directory. The units set
``WorkingDirectory=<model_root>/<model>/current``; systemd enters it when the engine
starts, so the kernel holds the directory ``current`` pointed to at that moment, and
``/proc/<pid>/cwd`` keeps naming it after ``current`` moves (with " (deleted)" once the
release is removed).

Standard library only (runs on the target). Private to the collection; the interface
may change without notice.
"""

from __future__ import annotations

import os
import subprocess


class AttestError(Exception):
    """The engine does not serve what it should, or it cannot be told; the message says."""


def unit_property(unit, prop):
    """A property of a systemd unit as systemctl shows it (NeedDaemonReload: yes), '' when unknown."""
    proc = subprocess.run(["systemctl", "show", "-p", prop, "--value", unit], check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.stdout.strip()


def unit_number(unit, prop):
    """A numeric property of a systemd unit (MainPID, NRestarts), 0 when unknown."""
    try:
        return int(unit_property(unit, prop) or 0)
    except ValueError:
        return 0


def unit_state(unit, query="is-active"):
    """What `systemctl <query> unit` says: for is-active active, activating, inactive,
    failed...; for is-enabled enabled, disabled, static...; '' when unknown."""
    proc = subprocess.run(["systemctl", query, unit], check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.stdout.strip()


def main_pid(unit):
    """systemd's MainPID of unit, 0 when it has none (not running)."""
    return unit_number(unit, "MainPID")


def _owner(pid):
    """(uid, gid) of process pid, from /proc/<pid>/status (readable by everyone)."""
    uid = gid = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


def process_dir(pid):
    """The working directory of process pid, as the kernel names it.

    Reading another user's /proc/<pid>/cwd takes CAP_SYS_PTRACE, which root lacks in a
    container (podman, LXC): then it is read by a readlink running as the process's own
    user, which may read its own."""
    link = "/proc/%d/cwd" % pid
    try:
        return os.readlink(link)
    except PermissionError:
        if os.geteuid() != 0:
            raise AttestError("cannot read the working directory of process %d: permission denied; "
                              "run the task as root (become: true)" % pid)
    except OSError as e:
        raise AttestError("cannot read the working directory of process %d: %s" % (pid, e.strerror))
    try:
        uid, gid = _owner(pid)
        proc = subprocess.run(["readlink", "--", link], user=uid, group=gid, extra_groups=[],
                              check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except (OSError, ValueError, TypeError) as e:
        raise AttestError("cannot read the working directory of process %d: %s; run the task as root "
                          "(become: true)" % (pid, e))
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AttestError("cannot read the working directory of process %d as its user %s: %s; run the "
                          "task as root (become: true)" % (pid, uid, proc.stderr.strip() or "no answer"))
    return proc.stdout.rstrip("\n")


def _short(path, base):
    """path relative to base when it is under it (<version>/<variant>), else as is."""
    return path[len(base) + 1:] if path.startswith(base + os.sep) else path


def check_served(pid, link, unit="the engine"):
    """Fail unless process pid was started in the directory link points to now.

    Returns {"served_dir", "pid"}. link is the model's ``current`` link (or a release
    directory)."""
    if not os.path.lexists(link):
        raise AttestError("%s does not exist: nothing to attest; activate a release first" % link)
    expected = os.path.realpath(link)
    served = process_dir(pid)
    if served != expected:
        base = os.path.dirname(os.path.abspath(link))
        name = os.path.basename(link) or link
        where = "its working directory, entered when it started"
        if served == "/":
            where = "its working directory is /: the unit has no WorkingDirectory=%s, re-run the " \
                    "inference_server role" % link
        raise AttestError(
            "%s (pid %d) serves %s (%s), %s is %s: the engine was not restarted after %s "
            "moved; restart %s" % (unit, pid, _short(served, base), where, name, _short(expected, base), name, unit))
    return {"served_dir": served, "pid": pid}


def attest_unit(unit, link):
    """check_served for systemd unit's main process."""
    pid = main_pid(unit)
    if not pid:
        raise AttestError("%s has no running main process: nothing serves %s" % (unit, link))
    return check_served(pid, link, unit)


def restart_reason(unit, link):
    """Why unit's engine must be restarted to serve what link points to now ('' when it need
    not be): the unit is not active, its unit file changed on disk, or its process was
    started from another release."""
    state = unit_state(unit)
    if state != "active":
        return "%s was %s" % (unit, state or "unknown")
    if unit_property(unit, "NeedDaemonReload") == "yes":
        return "the unit file of %s changed on disk" % unit
    try:
        attest_unit(unit, link)
    except AttestError as e:
        return "the engine did not serve current: %s" % e
    return ""
