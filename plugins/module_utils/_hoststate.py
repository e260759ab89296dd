# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host state under a model root: the ledger, the latency history and the version links
(the upgrade lock and the install lease are in _hostlock.py).

Standard library only (runs on the target). Layout:

  <root>/<model>/<version>/<variant>/     an installed release (read-only)
  <root>/<model>/current  -> <version>/<variant>   relative symlink: what the engine serves
  <root>/<model>/previous -> <version>/<variant>   relative symlink: rollback target
  <root>/.modelops/state.json             the ledger
  <root>/.modelops/lock                   one upgrade at a time per host (flock)

Writers of the ledger and the links hold HostLock. Private to the collection.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import time

from ansible_collections.modelops.fleet.plugins.module_utils._files import atomic_write, remove_tree
from ansible_collections.modelops.fleet.plugins.module_utils._release import MANIFEST, ReleaseError, parse_time

STATE_DIR = ".modelops"
STATE_FILE = "state.json"
LEDGER_SCHEMA = 1
LEDGER_MAX_EVENTS = 1000
LATENCY_FILE = "latency.json"
LATENCY_HISTORY_DAYS = 7
LATENCY_HISTORY_MAX = 500
LINK_NAMES = ("current", "previous")


class HostStateError(Exception):
    """The host state (links, ledger, lock) cannot be used as it is. The message says why."""


def state_dir(model_root):
    return os.path.join(model_root, STATE_DIR)


def ledger_path(model_root):
    return os.path.join(model_root, STATE_DIR, STATE_FILE)


def utc_iso(when=None):
    """UTC time as 2025-07-15T12:00:00Z (now, or an epoch timestamp)."""
    if when is None:
        t = datetime.datetime.now(datetime.timezone.utc)
    else:
        t = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_epoch(value):
    """Epoch seconds of an ISO time written by utc_iso, or None if it is not one."""
    try:
        return parse_time(value, "time").timestamp()
    except (ReleaseError, ValueError, OverflowError, TypeError):
        return None


# --------------------------------------------------------------------------- ledger

class Ledger(object):
    """The host ledger <root>/.modelops/state.json: {"schema": 1, "events": [...]}.

    Keeps the last LEDGER_MAX_EVENTS events; every append rewrites the file atomically
    (temp file and rename). Write it only while holding HostLock.

    A corrupt file is never silently dropped: a writable Ledger renames it to
    state.json.corrupt-<time> and starts a new ledger whose first event says so. A
    read-only Ledger (readonly=True) changes nothing and reports the problem in
    ``problem``.
    """

    def __init__(self, model_root, readonly=False):
        self.model_root = model_root
        self.path = ledger_path(model_root)
        self.readonly = readonly
        self.events = []
        self.problem = None
        self.recovered_to = None
        self._load()

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return
        except OSError as e:
            raise HostStateError("cannot read the ledger %s: %s" % (self.path, e.strerror))
        problem = None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            data = None
            problem = "not valid JSON (%s)" % e
        if problem is None:
            if not isinstance(data, dict):
                problem = "not a JSON object"
            elif isinstance(data.get("schema"), int) and not isinstance(data.get("schema"), bool) \
                    and data["schema"] > LEDGER_SCHEMA:
                raise HostStateError(
                    "the ledger %s has schema %d, newer than this collection reads (%d): "
                    "upgrade the modelops.fleet collection; the file is left as it is"
                    % (self.path, data["schema"], LEDGER_SCHEMA))
            elif data.get("schema") != LEDGER_SCHEMA:
                problem = "unknown schema %r" % (data.get("schema"),)
            elif not isinstance(data.get("events"), list) or \
                    not all(isinstance(e, dict) for e in data["events"]):
                problem = "'events' is not a list of objects"
        if problem is None:
            self.events = data["events"][-LEDGER_MAX_EVENTS:]
            return
        if self.readonly:
            self.problem = ("the ledger %s is corrupt (%s); the next change on this host "
                            "moves it aside and starts a new one" % (self.path, problem))
            return
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        dest = "%s.corrupt-%s" % (self.path, stamp)
        n = 1
        while os.path.lexists(dest):
            n += 1
            dest = "%s.corrupt-%s-%d" % (self.path, stamp, n)
        try:
            os.rename(self.path, dest)
        except OSError as e:
            raise HostStateError("the ledger %s is corrupt (%s) and could not be moved aside: "
                                 "%s" % (self.path, problem, e.strerror))
        self.recovered_to = dest
        self.problem = "the ledger %s was corrupt (%s); moved it to %s" % (self.path, problem, dest)
        self.events = []
        self.append({"action": "ledger_recovered", "error": problem, "moved_to": dest})

    def save(self):
        if self.readonly:
            raise HostStateError("internal error: the ledger %s was opened read-only" % self.path)
        self.events = self.events[-LEDGER_MAX_EVENTS:]
        data = {"schema": LEDGER_SCHEMA, "events": self.events}
        atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"),
                     mode=0o644)

    def append(self, event):
        """Add an event (a dict; ``time`` is set to now, UTC), write the file, return it."""
        stored = dict(event)
        stored["time"] = utc_iso()
        self.events.append(stored)
        self.save()
        return stored

    def tail(self, n):
        if not n or n <= 0:
            return []
        return [dict(e) for e in self.events[-n:]]


class LatencyHistory(object):
    """This host's probe latencies of the last days, <root>/.modelops/latency.json, beside
    the ledger (a file of its own, so that samples never push events out of the ledger):
    {"schema": 1, "probes": {key: [[epoch, ms], ...]}}, a key per served name, model,
    probe and request digest. Pruned to LATENCY_HISTORY_DAYS and LATENCY_HISTORY_MAX
    samples per key on every write; write it only while holding HostLock. An unreadable
    file reads as empty and is replaced on the next write (it holds observations, not
    state)."""

    def __init__(self, model_root):
        self.path = os.path.join(model_root, STATE_DIR, LATENCY_FILE)
        self.probes = {}
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            if isinstance(data, dict) and data.get("schema") == 1 and isinstance(data.get("probes"), dict):
                self.probes = data["probes"]
        except (OSError, ValueError, UnicodeDecodeError):
            pass

    @staticmethod
    def key(served, model, probe, digest):
        return "%s|%s|%s|%s" % (served, model or "", probe, digest or "")

    def samples(self, key, days=LATENCY_HISTORY_DAYS, now=None):
        since = (now if now is not None else time.time()) - days * 86400
        return [float(ms) for t, ms in self.probes.get(key, []) if t >= since]

    def add(self, key, latencies, now=None):
        now = now if now is not None else time.time()
        since = now - LATENCY_HISTORY_DAYS * 86400
        for k in list(self.probes):
            kept = [x for x in self.probes[k] if x[0] >= since]
            if kept:
                self.probes[k] = kept
            else:
                del self.probes[k]
        self.probes.setdefault(key, []).extend([round(now, 1), round(float(ms), 1)] for ms in latencies)
        self.probes[key] = self.probes[key][-LATENCY_HISTORY_MAX:]

    def save(self):
        atomic_write(self.path, (json.dumps({"schema": 1, "probes": self.probes}, sort_keys=True) + "\n").encode("utf-8"),
                     mode=0o644)


# --------------------------------------------------------------------------- links

def gate_pending(events, model, release):
    """Whether ``release`` (version/variant) of ``model`` still waits for its probe gate: the
    last ledger event that made it current (``activate`` or ``rollback``) is not followed by a
    ``gate`` event for it (written by model_probe when a suite gating that release passed),
    and the event itself does not say ``gated`` (a blue/green move of the clients to a release
    that passed its gate before).
    A release the ledger has no word of (a ledger that lost its events) waits too: probing it
    again costs one suite, keeping an unprobed one could keep a bad version."""
    for event in reversed(events):
        if event.get("model") != model:
            continue
        if event.get("action") == "gate" and event.get("release") == release:
            return False
        if event.get("action") in ("activate", "rollback") and event.get("to") == release:
            # blue/green: the release passed its gate before the clients were moved to it
            return not event.get("gated")
    return True


def release_rel(version, variant):
    return "%s/%s" % (version, variant)


def read_link(model_dir, name):
    """(version, variant) that <model_dir>/<name> points to, or None if there is no link.

    Raises HostStateError if it exists but is not a symlink of the form version/variant.
    The target need not exist (a dangling link still says what it meant).
    """
    path = os.path.join(model_dir, name)
    if not os.path.islink(path):
        if os.path.lexists(path):
            raise HostStateError("%s is not a symlink; it should be a link to <version>/<variant>: "
                                 "move it away" % path)
        return None
    target = os.readlink(path)
    if os.path.isabs(target):
        target = os.path.relpath(target, os.path.abspath(model_dir))
    parts = os.path.normpath(target).split(os.sep)
    if len(parts) != 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise HostStateError("%s points to %r, not to <version>/<variant> in %s"
                             % (path, os.readlink(path), model_dir))
    return parts[0], parts[1]


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def switch_link(model_dir, name, target_rel):
    """Point <model_dir>/<name> at target_rel (relative) atomically: a new symlink
    .<name>.new-<pid> renamed over the old one, so readers see the old or the new link,
    never none."""
    if os.path.isabs(target_rel):
        raise HostStateError("link target %r must be relative (<version>/<variant>)" % target_rel)
    path = os.path.join(model_dir, name)
    tmp = os.path.join(model_dir, ".%s.new-%d" % (name, os.getpid()))
    if os.path.lexists(path) and not os.path.islink(path):
        raise HostStateError("%s is not a symlink; refusing to replace it: move it away" % path)
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target_rel, tmp)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise HostStateError("cannot point %s at %s: %s" % (path, target_rel, e.strerror))
    _fsync_dir(model_dir)


def installed_releases(model_root, model):
    """Sorted [(version, variant)] of <root>/<model>/<version>/<variant>/ directories that
    contain manifest.json (links and hidden entries are ignored)."""
    model_dir = os.path.join(model_root, model)
    found = []
    for version in _subdirs(model_dir):
        for variant in _subdirs(os.path.join(model_dir, version)):
            if os.path.isfile(os.path.join(model_dir, version, variant, MANIFEST)):
                found.append((version, variant))
    return sorted(found)


def _subdirs(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith("."):
            continue
        st = os.lstat(os.path.join(directory, name))
        if stat.S_ISDIR(st.st_mode):
            out.append(name)
    return out


def list_models(model_root):
    """Sorted model directory names under model_root (hidden entries are ignored)."""
    return _subdirs(model_root)


# --------------------------------------------------------------------------- trees

def tree_size(path):
    """(files, bytes) of the regular files under path, not following symlinks, leaving out
    manifest.json and its signature at the top."""
    files = 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            if dirpath == path and name in (MANIFEST, MANIFEST + ".asc"):
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
    return files, total


def remove_release(model_dir, version, variant):
    """Delete <model_dir>/<version>/<variant>. It is first renamed to a hidden directory so
    that an interrupted delete never leaves a half release that looks installed; an empty
    <version> directory is removed too. Returns the bytes freed (by this release's files)."""
    version_dir = os.path.join(model_dir, version)
    rdir = os.path.join(version_dir, variant)
    dummy, size = tree_size(rdir)
    trash = os.path.join(model_dir, ".prune-%s-%s-%d" % (version, variant, os.getpid()))
    vmode = stat.S_IMODE(os.stat(version_dir).st_mode)
    if not vmode & stat.S_IWUSR:
        os.chmod(version_dir, vmode | stat.S_IRWXU)
    # Moving a directory to another parent rewrites its '..': it needs to be writable.
    os.chmod(rdir, stat.S_IRWXU)
    os.rename(rdir, trash)
    if not os.listdir(version_dir):
        os.rmdir(version_dir)
    elif not vmode & stat.S_IWUSR:
        os.chmod(version_dir, vmode)
    remove_tree(trash)
    return size


def remove_leftovers(model_dir):
    """Remove .prune-* directories that an interrupted remove_release left behind."""
    try:
        names = os.listdir(model_dir)
    except OSError:
        return
    for name in names:
        p = os.path.join(model_dir, name)
        if name.startswith(".prune-") and os.path.isdir(p) and not os.path.islink(p):
            remove_tree(p)
