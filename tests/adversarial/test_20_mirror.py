# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A hostile or broken mirror: endless data, a stall, a drip feed, a transfer killed halfway.

upgrade.yml with model_sync_source=mirror: the controller reads the manifest and its
signature from the repository it resolved the release in, the host downloads the files
from model_mirror_url, where on edge-01 mirror_server.py misbehaves for the weights. (The
honest mirror on the controller's 127.0.0.1 serves the same repository to anything on the
controller that asks for it by URL.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import GGUF, MIRROR_SERVER, MODEL, VARIANT, kill_group

PORT = 20899 + 4000
URL = "http://127.0.0.1:%d" % PORT
HOST = "edge-01"
HOST_DIR = "/srv/adv-mirror"


@pytest.fixture(scope="module")
def honest_mirror(world):
    """http.server on the controller's 127.0.0.1 serving the session's repository."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(PORT),
                             "--directory", world.repo], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(1)
    try:
        yield URL
    finally:
        kill_group(proc)


@pytest.fixture(scope="module")
def host_repo(world):
    """Release 2601 (and the server script) on edge-01, under /srv/adv-mirror."""
    rel = world.release_dir("2601")
    dest = "%s/%s/2601/%s" % (HOST_DIR, MODEL, VARIANT)
    world.ansible.adhoc(HOST, "-m", "ansible.builtin.file", "-a", "path=%s state=directory mode=0755" % dest)
    world.ansible.adhoc(HOST, "-m", "ansible.builtin.copy", "-a", "src=%s/ dest=%s/" % (rel, dest))
    world.ansible.adhoc(HOST, "-m", "ansible.builtin.copy", "-a",
                        "src=%s dest=%s/mirror_server.py" % (MIRROR_SERVER, HOST_DIR))
    yield HOST_DIR
    world.sh(HOST, "systemctl stop adv-mirror 2>/dev/null; rm -rf %s; true" % HOST_DIR)


def start_host_mirror(world, mode, rate=0):
    world.sh(HOST, "systemctl stop adv-mirror 2>/dev/null; systemctl reset-failed adv-mirror 2>/dev/null; "
                   "systemd-run --unit=adv-mirror python3 %s/mirror_server.py %s %d %s %d && sleep 1"
             % (HOST_DIR, HOST_DIR, PORT, mode, rate))


def mirror_log(world):
    return world.sh_out(HOST, "journalctl -u adv-mirror -o cat --no-pager | grep '^GET' || true")


def staging_sizes(world):
    out = world.sh_out(HOST, "find /srv/models/.staging -type f -printf '%s %p\\n' 2>/dev/null; true")
    return [(int(line.split()[0]), line.split()[1]) for line in out.splitlines() if line.strip()]


def mirror_upgrade(world, catalog, background=None):
    args = world.upgrade_args("2601", catalog=catalog, target="edge_devices",
                              extra={"model_sync_source": "mirror", "model_mirror_url": URL})
    if background:
        return world.ansible.background("ansible-playbook", *args, out=background)
    return world.ansible.playbook(*args, check=False)


def flat(text):
    return " ".join(text.split())


def cleanup_staging(world):
    world.sh(HOST, "chmod -R u+w /srv/models/.staging 2>/dev/null; rm -rf /srv/models/.staging; true")


@pytest.mark.case("mirror serves endless data", "download stops at the declared size; refused (sha256); nothing switched")
def test_endless_data(world, case, honest_mirror, host_repo):
    start_host_mirror(world, "endless")
    size = os.path.getsize(os.path.join(world.release_dir("2601"), GGUF))
    try:
        t0 = time.time()
        run = mirror_upgrade(world, world.case_catalog("endless"))
        took = time.time() - t0
        out = flat(run.stdout)
        m = re.search(r"%s of %s-2601-%s arrived with sha256 [0-9a-f]{64}, manifest says" % (re.escape(GGUF), MODEL, VARIANT), out)
        case.observed = "run failed in %.0f s: %s" % (took, m.group(0) if m else out[-200:])
        assert run.returncode != 0 and m, run.stdout[-4000:]
        assert "nothing was switched: the host still serves 2412/%s" % VARIANT in out
        # Never more on disk than the manifest declares (the corrupt copy was deleted).
        assert all(s <= size for s, p in staging_sizes(world))
        assert world.currents()[HOST] == "2412/%s" % VARIANT
        world.serving(case)
    finally:
        cleanup_staging(world)


@pytest.mark.case("mirror stalls", "socket timeout (30 s) ends the download; partial file kept; nothing switched")
def test_stalling_mirror(world, case, honest_mirror, host_repo):
    start_host_mirror(world, "stall")
    try:
        t0 = time.time()
        run = mirror_upgrade(world, world.case_catalog("stall"))
        took = time.time() - t0
        out = flat(run.stdout)
        m = re.search(r"download of \S+%s stalled or failed after \d+ bytes: [^(]*" % re.escape(GGUF), out)
        case.observed = "run failed in %.0f s: %s" % (took, m.group(0) if m else out[-200:])
        assert run.returncode != 0 and m, run.stdout[-4000:]
        assert "the partial file is kept and resumed next run" in out
        assert "nothing was switched" in out
        assert took < 300
        assert world.currents()[HOST] == "2412/%s" % VARIANT
        world.serving(case)
    finally:
        cleanup_staging(world)


@pytest.mark.case("mirror drip-feeds (slow retrieval)",
                  "upgrade.yml's model_sync_timeout ends it; partial file kept; nothing switched")
def test_drip_feed_is_bounded_by_sync_timeout(world, case, honest_mirror, host_repo):
    # Never idle long enough for the socket timeout: only an overall deadline ends it, set
    # through upgrade.yml (model_sync_timeout), as a user would. 8 s: the drip (64 KiB a
    # second) has left a partial file by then, and never finishes the 98 MB.
    start_host_mirror(world, "drip")
    args = world.upgrade_args("2601", catalog=world.case_catalog("drip"), target="edge_devices",
                              extra={"model_sync_source": "mirror", "model_mirror_url": URL,
                                     "model_sync_timeout": 8})
    try:
        t0 = time.time()
        run = world.ansible.playbook(*args, check=False)
        took = time.time() - t0
        out = flat(run.stdout)
        m = re.search(r"download of \S+ took longer than the sync timeout[^\"]*?resumed next run", out)
        case.observed = "run failed in %.0f s: %s" % (took, m.group(0) if m else out[-200:])
        assert run.returncode != 0 and m, run.stdout[-4000:]
        assert "nothing was switched: the host still serves 2412/%s" % VARIANT in out, out[-3000:]
        assert took < 300
        part = [s for s, p in staging_sizes(world) if p.endswith(GGUF + ".part")]
        assert part and 0 < part[0] < os.path.getsize(os.path.join(world.release_dir("2601"), GGUF))
        assert world.currents()[HOST] == "2412/%s" % VARIANT
        world.serving(case)
    finally:
        cleanup_staging(world)


@pytest.mark.case("transfer killed halfway", "next upgrade.yml resumes with Range from the partial file and converges")
def test_killed_transfer_resumes(world, case, honest_mirror, host_repo, tmp_path):
    start_host_mirror(world, "honest", 4 * 1024 * 1024)
    size = os.path.getsize(os.path.join(world.release_dir("2601"), GGUF))
    part = "/srv/models/.staging/%s/2601/%s/%s.part" % (MODEL, VARIANT, GGUF)
    catalog = world.case_catalog("resume")
    out = str(tmp_path / "first.log")
    proc = mirror_upgrade(world, catalog, background=out)
    got = 0
    try:
        deadline = time.time() + 240
        while time.time() < deadline and got < size // 4:
            time.sleep(1)
            got = int(world.sh_out(HOST, "stat -c %%s %s 2>/dev/null || echo 0" % part).splitlines()[-1])
        # Kill the download where it runs: the module process on the host writing the file.
        writer = world.sh_out(HOST, "for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q '%s' "
                                    "&& echo ${p#/proc/}; done; true" % os.path.basename(part))
        pids = [w for w in writer.split() if w.isdigit()]
        assert pids, writer
        world.sh(HOST, "kill -9 %s" % " ".join(pids))
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    first = flat(open(out).read())
    assert proc.returncode != 0, first[-3000:]
    assert "nothing was switched: the host still serves 2412/%s" % VARIANT in first, first[-3000:]
    stopped_at = int(world.sh_out(HOST, "stat -c %%s %s" % part).splitlines()[-1])
    assert size // 4 <= stopped_at < size
    assert world.currents()[HOST] == "2412/%s" % VARIANT

    run = mirror_upgrade(world, catalog)
    assert run.returncode == 0, run.stdout[-4000:]
    ranges = re.findall(r"GET /%s/2601/%s/%s range=bytes=(\d+)-" % (MODEL, VARIANT, re.escape(GGUF)), mirror_log(world))
    case.observed = "killed at %d of %d bytes; second run asked Range bytes=%s- and upgraded" % (
        stopped_at, size, ",".join(ranges) or "NONE")
    assert [int(r) for r in ranges] == [stopped_at], mirror_log(world)
    ledger = json.loads(world.sh_out(HOST, "cat /srv/models/.modelops/state.json"))
    install = [e for e in ledger["events"] if e.get("action") == "install" and e.get("to") == "2601/%s" % VARIANT][-1]
    assert install["bytes_transferred"] < size - stopped_at + 100000, install
    assert world.currents()[HOST] == "2601/%s" % VARIANT
    world.serving(case)
