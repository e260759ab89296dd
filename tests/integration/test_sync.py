# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""model_sync on the test fleet: push over OpenSSH and paramiko, pull from a mirror on the
host's 127.0.0.1, dedup by hard links, resume, a full disk."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import GGUF, MIRROR_SERVER, MODEL, VARIANT, publish_args

ROOT = "/srv/sync-tests"


@pytest.fixture(scope="module")
def repo(ansible, keys, tmp_path_factory):
    """2411 and 2412 of SmolLM2: 2412 differs only in its weights."""
    base = tmp_path_factory.mktemp("syncrepo")
    repo = base / "repo"
    with open(ansible.artifacts["model_file"], "rb") as f:
        weights = f.read()
    for version, seq, data in (("2411", 1, weights), ("2412", 2, weights[:-4096] + b"\x01" * 4096)):
        src = base / ("src-" + version)
        (src / "params").mkdir(parents=True)
        (src / GGUF).write_bytes(data)
        (src / "tokenizer_config.json").write_text(json.dumps({"chat_template": "x" * 5000}))
        (src / "params" / "generation.json").write_text('{"temperature": 0.2}')
        ansible.playbook("playbooks/publish.yml", *publish_args(src, repo, version, seq, keys.publisher, base / "publish.db"))
    return repo


def rel(repo, version):
    return repo / MODEL / version / VARIANT


def sync(ansible, host, keys, src, tmp_path, check=False, extra_args=(), **params):
    args = {"src": str(src), "model_root": ROOT, "keyring": [keys.publisher.public],
            "trusted_fingerprints": [keys.publisher.fingerprint], "catalog": str(tmp_path / "r.db")}
    args.update(params)
    proc = ansible.adhoc(host, "-m", "modelops.fleet.model_sync", "-a", json.dumps(args), "-o",
                         *(["--check"] if check else []), *extra_args, check=False)
    return proc


def result_of(proc, host):
    m = re.search(r"^%s \| (\w+)!? => (\{.*\})$" % re.escape(host), proc.stdout, re.M)
    assert m, proc.stdout[-3000:]
    return m.group(1), json.loads(m.group(2))


def sh(ansible, host, cmd):
    return ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd).stdout


@pytest.fixture(scope="module", autouse=True)
def cleanup(ansible):
    yield
    ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                  "chmod -R u+w %s 2>/dev/null; rm -rf %s /srv/mirror-test; true" % (ROOT, ROOT), check=False)


@pytest.mark.parametrize("host", ["gpu-01", "edge-01"])
def test_push_installs_then_upgrade_moves_only_the_weights(ansible, keys, repo, host, tmp_path):
    size = os.path.getsize(str(rel(repo, "2411") / GGUF))
    small = sum(os.path.getsize(str(p)) for p in rel(repo, "2411").rglob("*")
                if p.is_file() and p.name not in (GGUF, "manifest.json", "manifest.json.asc"))
    # Check mode: reports the plan, changes nothing.
    status, plan = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path, check=True), host)
    assert status == "CHANGED" and plan["bytes_to_transfer"] == size + small
    assert "No such file" in sh(ansible, host, "ls %s/%s 2>&1 || true" % (ROOT, MODEL))

    status, first = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path), host)
    assert status == "CHANGED", first
    assert first["bytes_transferred"] == size + small and first["bytes_linked"] == 0
    listing = sh(ansible, host, "cd %s/%s/2411/%s && find . -type f | sort && stat -c '%%a' %s ." % (ROOT, MODEL, VARIANT, GGUF))
    assert "./manifest.json.asc" in listing and "./params/generation.json" in listing
    assert "444\n555" in listing  # read-only once installed

    status, again = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path), host)
    assert status == "SUCCESS" and again["changed"] is False and again.get("bytes_transferred", 0) == 0

    status, up = result_of(sync(ansible, host, keys, rel(repo, "2412"), tmp_path), host)
    assert status == "CHANGED", up
    assert up["bytes_transferred"] == size, up       # only the weights moved
    assert up["bytes_linked"] == small               # tokenizer and params hard-linked
    inodes = sh(ansible, host, "stat -c %%i %s/%s/2411/%s/tokenizer_config.json %s/%s/2412/%s/tokenizer_config.json"
                % (ROOT, MODEL, VARIANT, ROOT, MODEL, VARIANT)).split()[-2:]
    assert inodes[0] == inodes[1]


def test_resume_a_partial_file(ansible, keys, repo, tmp_path):
    """A transfer that stopped halfway leaves <file>.part in staging; the next run sends the rest."""
    host = "edge-02"
    size = os.path.getsize(str(rel(repo, "2411") / GGUF))
    half = size // 2
    staging = "%s/.staging/%s/2411/%s" % (ROOT, MODEL, VARIANT)
    ansible.adhoc(host, "-m", "ansible.builtin.file", "-a", "path=%s state=directory" % staging)
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s dest=%s/%s.part" % (
        tmp_path_half(tmp_path, rel(repo, "2411") / GGUF, half), staging, GGUF))
    status, res = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path), host)
    assert status == "CHANGED", res
    gg = [f for f in res["files"] if f["path"] == GGUF][0]
    assert gg["offset"] == half
    small = res["bytes_transferred"] - (size - half)
    assert 0 < small < 20000, res  # the rest of the weights plus the small files only
    assert "No such file" in sh(ansible, host, "ls %s 2>&1 || true" % staging)


def tmp_path_half(tmp_path, src, n):
    out = tmp_path / "half.part"
    with open(str(src), "rb") as f:
        out.write_bytes(f.read(n))
    return str(out)


def test_pull_from_a_mirror_on_the_hosts_loopback(ansible, keys, repo, tmp_path):
    host = "edge-03"
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s/ dest=/srv/mirror-test/" % repo)
    sh(ansible, host, "systemd-run --unit=modelops-test-mirror python3 -m http.server --bind 127.0.0.1 "
                      "8899 --directory /srv/mirror-test && sleep 1")
    try:
        url = "http://127.0.0.1:8899/%s/2411/%s" % (MODEL, VARIANT)
        status, res = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path, source="mirror", url=url), host)
        assert status == "CHANGED", res
        size = os.path.getsize(str(rel(repo, "2411") / GGUF))
        assert res["bytes_transferred"] > size
        url2 = "http://127.0.0.1:8899/%s/2412/%s" % (MODEL, VARIANT)
        status, up = result_of(sync(ansible, host, keys, rel(repo, "2412"), tmp_path, source="mirror", url=url2), host)
        assert status == "CHANGED" and up["bytes_transferred"] == size and up["bytes_linked"] > 0, up
        log = sh(ansible, host, "journalctl -u modelops-test-mirror -o cat --no-pager | grep -c GET || true")
        assert int(log.strip().splitlines()[-1]) >= 4
    finally:
        sh(ansible, host, "systemctl stop modelops-test-mirror || true")


def test_mirror_with_a_tampered_file_is_refused_and_nothing_installed(ansible, keys, repo, tmp_path):
    host = "crit-01"
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s/ dest=/srv/mirror-test/" % repo)
    sh(ansible, host, "printf 'evil' | dd of=/srv/mirror-test/%s/2411/%s/%s bs=1 seek=100 conv=notrunc 2>/dev/null; "
                      "systemd-run --unit=modelops-test-mirror python3 -m http.server --bind 127.0.0.1 8899 "
                      "--directory /srv/mirror-test && sleep 1" % (MODEL, VARIANT, GGUF))
    try:
        url = "http://127.0.0.1:8899/%s/2411/%s" % (MODEL, VARIANT)
        status, res = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path, source="mirror", url=url), host)
        assert status == "FAILED"
        assert "%s of %s-2411-%s arrived with sha256" % (GGUF, MODEL, VARIANT) in res["msg"]
        assert "No such file" in sh(ansible, host, "ls %s/%s/2411 2>&1 || true" % (ROOT, MODEL))
    finally:
        sh(ansible, host, "systemctl stop modelops-test-mirror || true")


def test_full_disk_fails_cleanly(ansible, keys, repo, tmp_path):
    host = "gpu-02"
    status, res = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path, model_root="/srv/tiny"), host)
    assert status == "FAILED"
    assert "not enough disk space on /srv/tiny" in res["msg"] and "MiB free" in res["msg"]
    assert sh(ansible, host, "find /srv/tiny -mindepth 1 | wc -l").strip().splitlines()[-1] == "0"


def test_untrusted_release_is_not_synced(ansible, keys, repo, tmp_path):
    host = "gpu-02"
    status, res = result_of(sync(ansible, host, keys, rel(repo, "2411"), tmp_path,
                                 trusted_fingerprints=[keys.attacker.fingerprint],
                                 keyring=[keys.attacker.public]), host)
    assert status == "FAILED" and "not in the pinned keyring" in res["msg"]
    assert "No such file" in sh(ansible, host, "ls %s 2>&1 || true" % ROOT)


def module(ansible, host, name, args, check=False, diff=False):
    proc = ansible.adhoc(host, "-m", "modelops.fleet.%s" % name, "-a", json.dumps(args), "-o",
                         *(["--check"] if check else []), *(["--diff"] if diff else []), check=False)
    return result_of(proc, host)


def links(ansible, host):
    out = sh(ansible, host, "cd %s/%s && for l in current previous; do printf '%%s=%%s\\n' $l \"$(readlink $l)\"; done" % (ROOT, MODEL))
    return dict(line.split("=", 1) for line in out.strip().splitlines()[-2:])


def test_activate_info_and_rollback_on_the_host(ansible, keys, repo, tmp_path):
    host = "gpu-01"
    for v in ("2411", "2412"):
        status, res = result_of(sync(ansible, host, keys, rel(repo, v), tmp_path), host)
        assert status in ("SUCCESS", "CHANGED"), res
    act = {"model_root": ROOT, "model_name": MODEL, "version": "2411", "variant": VARIANT}

    status, res = module(ansible, host, "model_activate", act, check=True)
    assert status == "CHANGED"
    assert links(ansible, host) == {"current": "", "previous": ""}

    # --diff (minimal callback, which prints diffs) shows the links before and after
    proc = ansible.adhoc(host, "-m", "modelops.fleet.model_activate", "-a", json.dumps(act), "--diff")
    # (ansible.cfg's callback_result_format is yaml: the diff is of YAML documents)
    assert re.search(r"^%s \| CHANGED =>" % host, proc.stdout, re.M), proc.stdout[-3000:]
    assert re.search(r"^-\s+current: null$", proc.stdout, re.M), proc.stdout[-3000:]
    assert re.search(r"^\+\s+current: 2411/%s$" % VARIANT, proc.stdout, re.M), proc.stdout[-3000:]
    assert links(ansible, host) == {"current": "2411/%s" % VARIANT, "previous": ""}
    status, res = module(ansible, host, "model_activate", act)
    assert status == "SUCCESS" and res["changed"] is False

    status, res = module(ansible, host, "model_activate", dict(act, version="2412", reason="integration test"))
    assert status == "CHANGED", res
    assert links(ansible, host) == {"current": "2412/%s" % VARIANT, "previous": "2411/%s" % VARIANT}

    status, info = module(ansible, host, "model_info", {"model_root": ROOT, "model_name": MODEL})
    assert status == "SUCCESS", info
    m = [x for x in info["models"] if x["name"] == MODEL][0]
    assert m["current"] == "2412/%s" % VARIANT and m["previous"] == "2411/%s" % VARIANT
    assert sorted((r["version"], r["sequence"]) for r in m["releases"]) == [("2411", 1), ("2412", 2)]
    actions = [e["action"] for e in info["ledger"]]
    assert "install" in actions and actions[-1] == "activate"
    assert info["ledger"][-1].get("reason") == "integration test"

    status, res = module(ansible, host, "model_activate", {"model_root": ROOT, "model_name": MODEL, "rollback": True})
    assert status == "CHANGED", res
    assert links(ansible, host) == {"current": "2411/%s" % VARIANT, "previous": "2412/%s" % VARIANT}

    # A damaged release is refused and nothing is switched.
    bad = "%s/%s/2412/%s/params/generation.json" % (ROOT, MODEL, VARIANT)
    sh(ansible, host, "chmod u+w $(dirname %s) %s && printf '{\"temperature\": 9.9}' > %s" % (bad, bad, bad))
    status, res = module(ansible, host, "model_activate", dict(act, version="2412"))
    assert status == "FAILED" and bad in res["msg"], res
    assert links(ansible, host) == {"current": "2411/%s" % VARIANT, "previous": "2412/%s" % VARIANT}


def test_killed_pull_resumes_from_where_it_stopped(ansible, keys, repo, tmp_path):
    """Kill the controller's ansible process mid-download; the next run resumes with Range."""
    import subprocess
    import time
    host = "edge-02"
    size = os.path.getsize(str(rel(repo, "2412") / GGUF))
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s/ dest=/srv/mirror-test/" % repo)
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a", "src=%s dest=/srv/mirror-test/throttle.py" % MIRROR_SERVER)
    # The weights at 8 MiB/s, with Range support.
    sh(ansible, host, "systemd-run --unit=modelops-test-throttle python3 /srv/mirror-test/throttle.py "
                      "/srv/mirror-test 8898 honest %d && sleep 1" % (8 * 1024 * 1024))
    root = "/srv/resume-tests"
    part = "%s/.staging/%s/2412/%s/%s.part" % (root, MODEL, VARIANT, GGUF)
    args = {"src": str(rel(repo, "2412")), "model_root": root, "source": "mirror",
            "url": "http://127.0.0.1:8898/%s/2412/%s" % (MODEL, VARIANT),
            "keyring": [keys.publisher.public], "trusted_fingerprints": [keys.publisher.fingerprint],
            "catalog": str(tmp_path / "r.db")}
    try:
        # every inventory of the suite, the fleet's overlay (ports, key) last
        cmd = ["ansible", host] + ansible._inv_args() + ["-m", "modelops.fleet.model_sync", "-a", json.dumps(args)]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))), "ansible.cfg"))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        got = 0
        deadline = time.time() + 120
        try:
            while time.time() < deadline and got < size // 4:
                time.sleep(1)
                out = sh(ansible, host, "stat -c %%s %s 2>/dev/null || echo 0" % part)
                got = int(out.strip().splitlines()[-1])
            # Kill the transfer on the host: the module process writing the .part file, found
            # by its open file descriptor (killing only the controller is not enough: the
            # module on the host carries on without it).
            writer = sh(ansible, host, "for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q %s "
                                       "&& echo ${p#/proc/}; done; true" % os.path.basename(part))
            pids = [w for w in writer.strip().splitlines()[1:] if w.isdigit()]
            assert pids, writer
            sh(ansible, host, "kill -9 %s" % " ".join(pids))
        finally:
            proc.kill()
            proc.wait()
        assert size // 4 <= got < size, got
        time.sleep(2)
        stopped_at = int(sh(ansible, host, "stat -c %%s %s" % part).strip().splitlines()[-1])
        time.sleep(2)
        assert int(sh(ansible, host, "stat -c %%s %s" % part).strip().splitlines()[-1]) == stopped_at
        assert "No such file" in sh(ansible, host, "ls %s/%s/2412 2>&1 || true" % (root, MODEL))

        status, res = result_of(ansible.adhoc(host, "-m", "modelops.fleet.model_sync", "-a", json.dumps(args),
                                              "-o", check=False), host)
        assert status == "CHANGED", res
        gg = [f for f in res["files"] if f["path"] == GGUF][0]
        assert gg["offset"] == stopped_at
        assert res["bytes_transferred"] < size - stopped_at + 20000, res
        log = sh(ansible, host, "journalctl -u modelops-test-throttle -o cat --no-pager | grep -c '%s' || true" % GGUF)
        assert int(log.strip().splitlines()[-1]) >= 2  # two GETs for the weights: the killed one and the resume
        verify = {"path": "%s/%s/2412/%s" % (root, MODEL, VARIANT), "keyring": [keys.publisher.public],
                  "trusted_fingerprints": [keys.publisher.fingerprint], "catalog": ""}
        status, v = result_of(ansible.adhoc(host, "-m", "modelops.fleet.model_verify", "-a", json.dumps(verify),
                                            "-o", check=False), host)
        assert status == "SUCCESS", v
    finally:
        sh(ansible, host, "systemctl stop modelops-test-throttle || true; chmod -R u+w %s 2>/dev/null; rm -rf %s" % (root, root))
