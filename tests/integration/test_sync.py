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

from gpg_keys import GpgTestKeys

MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ROOT = "/srv/sync-tests"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    k = GpgTestKeys(str(tmp_path_factory.mktemp("gpg")))
    try:
        yield k
    finally:
        k.stop()


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
        ansible.run("ansible-playbook", "playbooks/publish.yml",
                    "-e", "publish_source=%s" % src, "-e", "publish_repository=%s" % repo,
                    "-e", "publish_release=%s-%s-%s" % (MODEL, version, VARIANT),
                    "-e", "publish_sequence=%d" % seq, "-e", "publish_gnupghome=%s" % keys.publisher.home,
                    "-e", "publish_key_fingerprint=%s" % keys.publisher.fingerprint,
                    "-e", "publish_catalog=%s" % (base / "publish.db"))
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

    status, res = module(ansible, host, "model_activate", act, diff=True)
    assert status == "CHANGED", res
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
