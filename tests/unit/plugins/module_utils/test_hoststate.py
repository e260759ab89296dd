# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host lock, the ledger and the version links."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock, LockError, lock_holder
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    LEDGER_MAX_EVENTS, HostStateError, Ledger, installed_releases, read_link, remove_release, switch_link,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --------------------------------------------------------------------------- lock

def test_lock_writes_holder_and_times_out_naming_it(tmp_path):
    root = str(tmp_path)
    with HostLock(root, timeout=5, purpose="model_activate m 2507/fp16") as lock:
        path = tmp_path / ".modelops" / "lock"
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid()
        assert holder["purpose"] == "model_activate m 2507/fp16"
        assert ISO_Z.match(holder["started"])
        assert lock.holder == holder
        assert lock_holder(root) == holder
        # flock belongs to the open file: a second open in this very process conflicts too.
        start = time.monotonic()
        with pytest.raises(LockError) as err:
            HostLock(root, timeout=0.5, purpose="second", poll=0.05).acquire()
        assert time.monotonic() - start >= 0.5
        msg = str(err.value)
        assert str(path) in msg
        assert "pid %d" % os.getpid() in msg
        assert holder["started"] in msg
        assert "model_activate m 2507/fp16" in msg
    # Released: the holder info is cleared and the lock can be taken at once.
    assert (tmp_path / ".modelops" / "lock").read_text() == ""
    assert lock_holder(root) is None
    with HostLock(root, timeout=0):
        pass


def test_lock_holder_without_a_lock_file_writes_nothing(tmp_path):
    assert lock_holder(str(tmp_path)) is None
    assert not (tmp_path / ".modelops").exists()


def test_lock_dies_with_its_holder(tmp_path):
    """A crashed upgrade cannot leave a stale lock behind: flock goes with the process."""
    holder_code = (
        "import sys, time\n"
        "from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock\n"
        "with HostLock(sys.argv[1], timeout=5, purpose='holder process'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-c", holder_code, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "locked"
        info = lock_holder(str(tmp_path))
        assert info["pid"] == proc.pid and info["purpose"] == "holder process"
        with pytest.raises(LockError, match="pid %d" % proc.pid):
            HostLock(str(tmp_path), timeout=0.2, poll=0.05).acquire()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with HostLock(str(tmp_path), timeout=2, purpose="after the crash"):
        assert lock_holder(str(tmp_path)) is not None


# --------------------------------------------------------------------------- ledger

def test_ledger_append_tail_and_reload(tmp_path):
    root = str(tmp_path)
    ledger = Ledger(root)
    assert ledger.events == [] and not (tmp_path / ".modelops" / "state.json").exists()
    ev = ledger.append({"action": "activate", "model": "m", "from": None, "to": "2507/fp16"})
    assert ISO_Z.match(ev["time"])
    data = json.loads((tmp_path / ".modelops" / "state.json").read_text())
    assert data["schema"] == 1 and data["events"] == [ev]
    ledger.append({"action": "prune", "model": "m", "release": "2501/fp16"})
    again = Ledger(root)
    assert [e["action"] for e in again.events] == ["activate", "prune"]
    assert [e["action"] for e in again.tail(1)] == ["prune"]
    assert again.tail(0) == []
    assert len(again.tail(10)) == 2
    # Atomic writes leave no temp files behind.
    assert sorted(os.listdir(tmp_path / ".modelops")) == ["state.json"]


def test_ledger_keeps_the_last_events_only(tmp_path):
    root = str(tmp_path)
    ledger = Ledger(root)
    ledger.events = [{"action": "x", "n": i} for i in range(LEDGER_MAX_EVENTS)]
    ledger.append({"action": "x", "n": LEDGER_MAX_EVENTS})
    events = Ledger(root).events
    assert len(events) == LEDGER_MAX_EVENTS
    assert events[0]["n"] == 1 and events[-1]["n"] == LEDGER_MAX_EVENTS


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"schema": 1, "events": "x"}',
                                     b'{"schema": 0, "events": []}', b"\xff\xfe"])
def test_corrupt_ledger_is_moved_aside_and_recorded(tmp_path, garbage):
    state = tmp_path / ".modelops" / "state.json"
    state.parent.mkdir()
    state.write_bytes(garbage)
    # Read-only: reported, nothing touched.
    ro = Ledger(str(tmp_path), readonly=True)
    assert ro.events == [] and "corrupt" in ro.problem
    assert state.read_bytes() == garbage
    assert len(os.listdir(state.parent)) == 1
    # Writable: renamed, never silently dropped, and the new ledger says so.
    ledger = Ledger(str(tmp_path))
    moved = [n for n in os.listdir(state.parent) if n.startswith("state.json.corrupt-")]
    assert len(moved) == 1
    assert (state.parent / moved[0]).read_bytes() == garbage
    assert ledger.recovered_to == str(state.parent / moved[0])
    events = json.loads(state.read_text())["events"]
    assert [e["action"] for e in events] == ["ledger_recovered"]
    assert events[0]["moved_to"] == str(state.parent / moved[0])


def test_newer_ledger_schema_is_left_alone(tmp_path):
    state = tmp_path / ".modelops" / "state.json"
    state.parent.mkdir()
    state.write_text('{"schema": 2, "events": []}')
    with pytest.raises(HostStateError, match="newer"):
        Ledger(str(tmp_path))
    assert state.read_text() == '{"schema": 2, "events": []}'


# --------------------------------------------------------------------------- links

def test_switch_and_read_links(tmp_path):
    mdir = tmp_path / "m"
    (mdir / "2501" / "fp16").mkdir(parents=True)
    (mdir / "2504" / "fp16").mkdir(parents=True)
    assert read_link(str(mdir), "current") is None
    switch_link(str(mdir), "current", "2501/fp16")
    assert os.readlink(mdir / "current") == "2501/fp16"
    switch_link(str(mdir), "current", "2504/fp16")
    assert os.readlink(mdir / "current") == "2504/fp16"
    assert read_link(str(mdir), "current") == ("2504", "fp16")
    assert sorted(os.listdir(mdir)) == ["2501", "2504", "current"]  # no .current.new-* left
    # An absolute link into the model directory is understood.
    os.symlink(str(mdir / "2501" / "fp16"), mdir / "previous")
    assert read_link(str(mdir), "previous") == ("2501", "fp16")
    with pytest.raises(HostStateError, match="relative"):
        switch_link(str(mdir), "previous", str(mdir / "2501" / "fp16"))


def test_bad_links_are_errors(tmp_path):
    mdir = tmp_path / "m"
    mdir.mkdir()
    os.symlink("../../etc", mdir / "current")
    with pytest.raises(HostStateError, match="not to <version>/<variant>"):
        read_link(str(mdir), "current")
    (mdir / "previous").mkdir()
    with pytest.raises(HostStateError, match="not a symlink"):
        read_link(str(mdir), "previous")
    with pytest.raises(HostStateError, match="not a symlink"):
        switch_link(str(mdir), "previous", "2501/fp16")


def test_installed_releases(tmp_path):
    mdir = tmp_path / "m"
    for rel in ("2501/fp16", "2504/fp16", "2504/gguf-q4_k_m"):
        (mdir / rel).mkdir(parents=True)
        (mdir / rel / "manifest.json").write_text("{}")
    (mdir / "2509" / "fp16").mkdir(parents=True)            # no manifest: incomplete
    (mdir / ".prune-2499-fp16-1").mkdir()                     # hidden
    os.symlink("2504/fp16", mdir / "current")
    assert installed_releases(str(tmp_path), "m") == [
        ("2501", "fp16"), ("2504", "fp16"), ("2504", "gguf-q4_k_m")]
    assert installed_releases(str(tmp_path), "absent") == []


def test_remove_release_keeps_hard_linked_files_of_other_releases(tmp_path):
    mdir = tmp_path / "m"
    old = mdir / "2501" / "fp16"
    new = mdir / "2504" / "fp16"
    for d in (old, new):
        (d / "sub").mkdir(parents=True)
    (old / "sub" / "w.bin").write_bytes(b"w" * 100)
    os.link(old / "sub" / "w.bin", new / "sub" / "w.bin")
    (old / "manifest.json").write_text("{}")
    for d in (old, new):
        for dirpath, dirnames, filenames in os.walk(d):
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o444)
        for dirpath, dirnames, filenames in os.walk(d, topdown=False):
            os.chmod(dirpath, 0o555)
    size = remove_release(str(mdir), "2501", "fp16")
    assert size == 100
    assert not (mdir / "2501").exists()
    assert sorted(os.listdir(mdir)) == ["2504"]
    kept = new / "sub" / "w.bin"
    assert kept.read_bytes() == b"w" * 100
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o444
