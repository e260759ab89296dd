# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Attacks on the release, each through playbooks/upgrade.yml against the whole fleet.

The fleet serves 2412. Each case offers upgrade.yml a repository in which an attacker has
damaged release 2601 (or offers something older or expired), and checks that the run
fails naming the file, key or release, that nothing was switched, and that every host
still serves a verified 2412.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil

import pytest

from conftest import GGUF, HOSTS, MODEL, VARIANT, kill_group, recap
from gpg_keys import sign

SERVING = dict((h, "2412/%s" % VARIANT) for h in HOSTS)


@pytest.fixture(autouse=True)
def no_staging_left(world, request):
    """Each case starts without staged files of an earlier case: model_sync rightly reuses
    staged files that match the manifest, which would hide what the next case damages."""
    yield
    if "controller_runs" in request.fixturenames:
        return  # refused on the controller: nothing was staged
    world.sh("all", "chmod -R u+w /srv/models/.staging 2>/dev/null; rm -rf /srv/models/.staging /srv/adv-elsewhere; "
                    "cd /srv/models/%s && if [ \"$(readlink current)\" != 2601/%s ]; then chmod -R u+w 2601 2>/dev/null; "
                    "rm -rf 2601; fi; true" % (MODEL, VARIANT))
    if world.currents() != SERVING:
        # A case let a host through: put the fleet back on 2412 so the next case starts clean.
        world.upgrade("2412", catalog=world.case_catalog("restore"), extra={"model_allow_rollback": True})
        world.sh("all", "cd /srv/models/%s && chmod -R u+w 2601 2>/dev/null; rm -rf 2601; true" % MODEL)


def flat(text):
    return " ".join(text.split())


def excerpt(text, needle, width=220):
    i = text.find(needle)
    if i < 0:
        return text[-width:]
    return text[max(0, i - 60):i + width - 60]


def refused(world, c, run, *needles, hosts_touched=True, health=None):
    """The run failed, naming every needle; nothing switched; every host serves 2412."""
    out = flat(run.stdout)
    c.observed = "run rc=%d: ...%s..." % (run.returncode, excerpt(out, needles[0]))
    assert run.returncode != 0, run.stdout[-4000:]
    for n in needles:
        assert n in out, "expected %r in:\n%s" % (n, run.stdout[-5000:])
    counts = recap(run.stdout)
    if not hosts_touched:
        # Refused on the controller: no play ran on any host.
        assert set(counts) == {"localhost"}, counts
        c.observed += " [no host contacted]"
    h = world.serving(c, health=health)
    assert dict((x, h[x]["current"]) for x in HOSTS) == SERVING


def refused_on_edge(world, c, name, *needles, repo=None):
    """Upgrade edge_devices to 2601 (from repo, default the session's; a fresh copy of the
    catalog): refused naming every needle (see refused). The run's result."""
    run = world.upgrade("2601", repo=repo, catalog=world.case_catalog(name), target="edge_devices")
    refused(world, c, run, *needles)
    return run


STAGING = "/srv/models/.staging/%s/2601/%s" % (MODEL, VARIANT)


@contextlib.contextmanager
def foothold(world, plant, *also_remove):
    """An attacker with a foothold on edge-01 runs the shell command `plant` (in it, {s}
    stands for the staging directory of 2601, the release about to be installed); the
    staging area and also_remove are removed afterwards."""
    world.sh("edge-01", plant.format(s=STAGING))
    try:
        yield STAGING
    finally:
        world.sh("edge-01", " ".join(("rm -rf /srv/models/.staging",) + also_remove))


def resign(world, manifest_path, mutate, key):
    with open(manifest_path) as f:
        m = json.load(f)
    mutate(m)
    os.chmod(manifest_path, 0o644)
    with open(manifest_path, "w") as f:
        f.write(json.dumps(m, indent=2, sort_keys=True) + "\n")
    sign(key, manifest_path)


# --------------------------------------------------------------------------- on the files

@pytest.mark.case("modified file", "refused at sync: sha256 mismatch names the file; nothing switched")
def test_modified_file(world, case):
    repo = world.case_repo("modified")
    p = os.path.join(world.release_dir("2601", repo), "generation_config.json")
    data = bytearray(open(p, "rb").read())
    data[3] ^= 1
    with open(p, "wb") as f:
        f.write(bytes(data))
    refused_on_edge(world, case, "modified", "generation_config.json of %s-2601-%s arrived with sha256" % (MODEL, VARIANT),
                    "nothing was switched: the host still serves 2412/%s" % VARIANT, repo=repo)


@pytest.mark.case("truncated file", "refused before any byte is pushed: size differs from the manifest")
def test_truncated_file(world, case):
    repo = world.case_repo("truncated", link=False)
    p = os.path.join(world.release_dir("2601", repo), GGUF)
    with open(p, "r+b") as f:
        f.truncate(1000000)
    refused_on_edge(world, case, "truncated", "%s on the controller is missing or does not have the size the manifest says" % p,
                    "nothing was switched", repo=repo)


@pytest.mark.case("missing file", "refused: the missing file is named; nothing switched")
def test_missing_file(world, case):
    # A file only this release has (params/sampling.json is also in 2412: it would be
    # hard-linked from there, rightly, and never read from the repository).
    repo = world.case_repo("missing")
    p = os.path.join(world.release_dir("2601", repo), "generation_config.json")
    os.unlink(p)
    refused_on_edge(world, case, "missing", "%s on the controller is missing" % p, "nothing was switched", repo=repo)


@pytest.mark.case("extra file", "refused: a file not in the manifest, planted in the host's staging, is named")
def test_extra_file_in_staging(world, case):
    # An attacker with a foothold on edge-01 plants a file in the staging directory of the
    # release about to be installed, hoping it is renamed into place with the release.
    with foothold(world, "mkdir -p {s}/params && echo 'import os' > {s}/params/backdoor.py") as staging:
        run = refused_on_edge(world, case, "extra", "extra file %s/params/backdoor.py" % staging, "nothing was switched")
        assert "No such file" in world.sh("edge-01", "ls /srv/models/%s/2601 2>&1; true" % MODEL)
        # The planted file does not stay to fail every later run: the staging area was discarded.
        assert "the staging area %s was discarded" % staging in " ".join(run.stdout.split()), run.stdout[-3000:]
        assert "No such file" in world.sh("edge-01", "ls %s 2>&1; true" % staging)


@pytest.mark.case("symlink inside the release", "refused: the symlink is named; nothing switched")
def test_symlink_in_staging(world, case):
    # The same foothold, used to point a directory of the staged release elsewhere.
    with foothold(world, "mkdir -p {s} /srv/adv-elsewhere && ln -sfn /srv/adv-elsewhere {s}/params", "/srv/adv-elsewhere") as staging:
        refused_on_edge(world, case, "symlink", "%s/params is a symlink (-> /srv/adv-elsewhere)" % staging, "nothing was switched")
        # Checked before anything is written: nothing went through the symlink.
        written = world.sh_out("edge-01", "ls -A /srv/adv-elsewhere")
        assert written == "", "files were written through the symlink: %s" % written


@pytest.mark.case("mix-and-match: files of another release", "refused at sync: the foreign file is named")
def test_mix_and_match_files(world, case):
    # 2601's signed manifest with 2412's generation_config.json (same size, other content).
    repo = world.case_repo("mixfiles")
    dst = os.path.join(world.release_dir("2601", repo), "generation_config.json")
    os.unlink(dst)
    shutil.copy(os.path.join(world.release_dir("2412"), "generation_config.json"), dst)
    refused_on_edge(world, case, "mixfiles", "generation_config.json of %s-2601-%s arrived with sha256" % (MODEL, VARIANT),
                    "nothing was switched", repo=repo)


# --------------------------------------------------------------------------- on the manifest
# These are refused on the controller, before any host is contacted: the six runs go in
# parallel, and one health check after all of them stands for each.

def _traversal(m):
    m["files"][0]["path"] = "../../../../../etc/cron.d/evil"


def _absolute(m):
    m["files"][0]["path"] = "/etc/cron.d/evil"


def _bump(m):
    for f in m["files"]:
        if f["path"] == "generation_config.json":
            f["sha256"] = "0" * 64


def _expired(m):
    m["expires"] = "2025-01-01T00:00:00Z"


def _resigned(world, name, mutate, key):
    repo = world.case_repo(name)
    resign(world, os.path.join(world.release_dir("2601", repo), "manifest.json"), mutate, key)
    return repo


def _replay(world, name):
    # A repository (or a mirror) that offers only the old, validly signed 2411 as latest.
    repo = os.path.join(world.base, "repo-" + name)
    shutil.copytree(world.release_dir("2411"), world.release_dir("2411", repo), copy_function=os.link)
    return repo


def _mixmanifest(world, name):
    # 2412's whole signed release placed where 2601 belongs.
    repo = os.path.join(world.base, "repo-" + name)
    shutil.copytree(world.release_dir("2412"), world.release_dir("2601", repo), copy_function=os.link)
    return repo


CONTROLLER_CASES = {
    "traversal": ("2601", lambda w, n: _resigned(w, n, _traversal, w.keys.publisher)),
    "absolute": ("2601", lambda w, n: _resigned(w, n, _absolute, w.keys.publisher)),
    "untrusted": ("2601", lambda w, n: _resigned(w, n, _bump, w.keys.attacker)),
    "expired": ("latest", lambda w, n: _resigned(w, n, _expired, w.keys.publisher)),
    "replay": ("latest", _replay),
    "mixmanifest": ("2601", _mixmanifest),
}


class Finished(object):
    def __init__(self, returncode, stdout):
        self.returncode = returncode
        self.stdout = stdout


@pytest.fixture(scope="module")
def controller_runs(world, tmp_path_factory):
    base = tmp_path_factory.mktemp("controller-cases")
    procs = {}
    for name, (version, prepare) in CONTROLLER_CASES.items():
        repo = prepare(world, name)
        args = world.upgrade_args(version, repo=repo, catalog=world.case_catalog(name))
        procs[name] = (world.ansible.background("ansible-playbook", *args, out=str(base / (name + ".log"))), args)
    runs = {}
    for name, (proc, args) in procs.items():
        try:
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        text = open(str(base / (name + ".log"))).read()
        world.ansible.log("ansible-playbook", args, text)
        runs[name] = Finished(proc.returncode, text)
    return runs, world.health()


@pytest.mark.case("path traversal in the manifest", "refused on the controller before any host is touched")
def test_path_traversal(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["traversal"], "manifest file '../../../../../etc/cron.d/evil' escapes the release directory",
            hosts_touched=False, health=health)


@pytest.mark.case("absolute path in the manifest", "refused on the controller before any host is touched")
def test_absolute_path(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["absolute"], "manifest file '/etc/cron.d/evil' is an absolute path",
            hosts_touched=False, health=health)


@pytest.mark.case("manifest re-signed by an untrusted key", "refused on the controller, naming the key")
def test_untrusted_key(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["untrusted"], world.keys.attacker.fingerprint, "not in the pinned keyring",
            hosts_touched=False, health=health)


@pytest.mark.case("expired manifest (freeze)", "refused on the controller: expired, re-sign with a later expiry")
def test_expired_manifest(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["expired"], "expired at 2025-01-01T00:00:00Z", "freeze-attack protection",
            hosts_touched=False, health=health)


@pytest.mark.case("older signed release replayed (rollback)", "refused on the controller: lower sequence than seen")
def test_replayed_older_release(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["replay"], "sequence 1, lower than sequence 2 already seen for model %s" % MODEL,
            "allow_rollback", hosts_touched=False, health=health)


@pytest.mark.case("mix-and-match: manifest of another release", "refused on the controller: manifest describes 2412")
def test_mix_and_match_manifest(world, case, controller_runs):
    runs, health = controller_runs
    refused(world, case, runs["mixmanifest"], "describes %s-2412-%s, not the release at its location" % (MODEL, VARIANT),
            hosts_touched=False, health=health)
