# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One upgrade at a time per host: the host lock and the install lease.

  <root>/.modelops/lock        flock(2) held by the module call that writes host state
  <root>/.modelops/lease.json  the upgrade installing a release, across the module calls
                               of one sync (plan, push, install)

Standard library only (runs on the target). Private to the collection.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import STATE_DIR, HostStateError, utc_iso
from ansible_collections.modelops.fleet.plugins.module_utils._files import atomic_write

LOCK_FILE = "lock"
LEASE_FILE = "lease.json"
# A lease whose staging area saw no write for this long was abandoned (its run died).
LEASE_IDLE = 120


class LockError(HostStateError):
    """Another process holds the host lock."""


def lock_path(model_root):
    return os.path.join(model_root, STATE_DIR, LOCK_FILE)


# --------------------------------------------------------------------------- lock

def _describe_holder(holder):
    if not holder:
        return "another process (holder unknown)"
    if not isinstance(holder, dict):
        return "another process (%s)" % holder
    parts = []
    if holder.get("pid") is not None:
        parts.append("pid %s" % holder["pid"])
    if holder.get("host"):
        parts.append("on %s" % holder["host"])
    if holder.get("started"):
        parts.append("started %s" % holder["started"])
    if holder.get("purpose"):
        parts.append(str(holder["purpose"]))
    return "another upgrade (%s)" % ", ".join(parts)


def _read_holder(fd):
    try:
        raw = os.pread(fd, 65536, 0)
    except OSError:
        return None
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"raw": text}
    return data if isinstance(data, dict) else {"raw": text}


class HostLock(object):
    """Exclusive lock on <root>/.modelops/lock: one upgrade at a time per host.

    flock(2) is tied to the open file, so a holder that dies releases the lock with it;
    the file's content (pid, host, start time, purpose) only says who holds it now.
    Polls every ``poll`` seconds until ``timeout`` seconds have passed, then raises
    LockError naming the lock file and the holder.
    """

    def __init__(self, model_root, timeout=60, purpose="upgrade", poll=0.2):
        self.model_root = model_root
        self.path = lock_path(model_root)
        self.timeout = timeout
        self.purpose = purpose
        self.poll = poll
        self.fd = None
        self.holder = None

    def acquire(self):
        directory = os.path.dirname(self.path)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise HostStateError("cannot open the host lock %s: %s" % (self.path, e.strerror))
        deadline = time.monotonic() + max(0, self.timeout or 0)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise HostStateError("cannot lock %s: %s" % (self.path, e.strerror))
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    pid = holder.get("pid") if isinstance(holder, dict) else None
                    raise LockError(
                        "%s holds %s; waited %ss. Wait for it to finish and retry (or raise "
                        "lock_timeout). The lock is released when that process exits%s"
                        % (_describe_holder(holder), self.path, self.timeout,
                           ": if it hangs, stop pid %s" % pid if pid is not None else ""))
                time.sleep(self.poll)
            self.holder = {"pid": os.getpid(), "host": socket.gethostname(),
                           "started": utc_iso(), "purpose": self.purpose}
            data = (json.dumps(self.holder, sort_keys=True) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_holder(model_root):
    """Holder info (dict) if someone holds the host lock now, else None. Writes nothing."""
    path = lock_path(model_root)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return _read_holder(fd) or {"raw": ""}
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- lease

def lease_path(model_root):
    return os.path.join(model_root, STATE_DIR, LEASE_FILE)


def read_lease(model_root):
    """The lease of the upgrade that is installing a release on this host, or None."""
    try:
        with open(lease_path(model_root), "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        return {"token": None, "broken": True, "epoch": 0}
    return data if isinstance(data, dict) else {"token": None, "broken": True, "epoch": 0}


def lease_activity(model_root, lease):
    """Epoch of the last sign of life of a lease: its own time, or the newest write in the
    staging area (the controller pushes into it while it holds the lease)."""
    last = float(lease.get("epoch") or 0)
    for dirpath, dirnames, filenames in os.walk(os.path.join(model_root, ".staging")):
        for name in filenames:
            try:
                last = max(last, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return last


def other_lease(model_root, token, idle=LEASE_IDLE, now=None):
    """The live lease of another upgrade (a dict, with ``idle_s``), or None when there is
    none, it is ours, or it was abandoned (no activity for ``idle`` seconds). Call it while
    holding HostLock."""
    lease = read_lease(model_root)
    if lease is None or lease.get("broken") or (token and lease.get("token") == token):
        return None
    now = time.time() if now is None else now
    quiet = now - lease_activity(model_root, lease)
    if quiet >= idle:
        return None
    out = dict(lease)
    out["idle_s"] = round(max(quiet, 0), 1)
    return out


def take_lease(model_root, token, release, purpose):
    """Record that the upgrade ``token`` installs ``release`` on this host, across the
    module calls of one sync (plan, push, install). Call it while holding HostLock."""
    data = {"token": token, "release": release, "purpose": purpose, "started": utc_iso(), "epoch": time.time()}
    atomic_write(lease_path(model_root), (json.dumps(data, sort_keys=True) + "\n").encode("utf-8"), mode=0o644)


def drop_lease(model_root, token):
    """Remove the lease if it is ``token``'s. Call it while holding HostLock."""
    lease = read_lease(model_root)
    if lease is not None and (lease.get("broken") or lease.get("token") == token):
        try:
            os.unlink(lease_path(model_root))
        except FileNotFoundError:
            pass


def describe_lease(lease):
    return "another upgrade (%s, since %s, last activity %.0f s ago) is installing %s on this host" % (
        lease.get("token") or "unknown", lease.get("started") or "?", lease.get("idle_s", 0), lease.get("release") or "?")
