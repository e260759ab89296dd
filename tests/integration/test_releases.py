# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signed releases on the test fleet: publish.yml, then model_verify on real hosts.

The SmolLM2 release is published with real GnuPG keys made by the test, copied to a host,
verified there (signature on the controller, hashes on the host), and then tampered with
in every way the release issue lists; each is refused with a message naming the file or
key.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from conftest import GGUF, MODEL, VARIANT, publish_args
from gpg_keys import sign

HOST_ROOT = "/srv/release-tests"


@pytest.fixture(scope="module")
def published(ansible, keys, tmp_path_factory):
    """Publish 2411 (sequence 1) and 2412 (sequence 2) with publish.yml."""
    base = tmp_path_factory.mktemp("publish")
    repo = base / "repo"
    catalog = str(base / "registry.db")
    out = {}
    for version, seq in (("2411", 1), ("2412", 2)):
        src = base / ("src-" + version)
        src.mkdir()
        try:
            os.link(ansible.artifacts["model_file"], str(src / GGUF))
        except OSError:
            shutil.copy(ansible.artifacts["model_file"], str(src / GGUF))
        (src / "tokenizer_config.json").write_text(json.dumps({"release": version}))
        (src / "params").mkdir()
        (src / "params" / "generation.json").write_text('{"temperature": 0.2}')
        extra = publish_args(src, repo, version, seq, keys.publisher, catalog)
        first = ansible.run("ansible-playbook", "playbooks/publish.yml", *extra)
        second = ansible.run("ansible-playbook", "playbooks/publish.yml", *extra)
        out[version] = {"dir": repo / MODEL / version / VARIANT, "first": first.stdout,
                        "second": second.stdout}
    out["repo"] = repo
    out["catalog"] = catalog
    return out


def recap_of(output):
    m = re.search(r"^localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                  output, re.M)
    return tuple(int(x) for x in m.groups())


def test_publish_builds_a_signed_release_and_is_idempotent(published, keys):
    d = published["2411"]["dir"]
    m = json.loads((d / "manifest.json").read_text())
    assert (m["model_name"], m["version"], m["variant"], m["sequence"]) == (MODEL, "2411", VARIANT, 1)
    assert sorted(f["path"] for f in m["files"]) == [
        "SmolLM2-135M-Instruct.Q4_1.gguf", "params/generation.json", "tokenizer_config.json"]
    assert (d / "manifest.json.asc").read_bytes().startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert recap_of(published["2411"]["first"])[1] > 0
    assert recap_of(published["2411"]["second"])[1:] == (0, 0, 0), published["2411"]["second"][-2000:]
    index = json.loads((published["repo"] / "index.json").read_text())
    assert [(e["version"], e["sequence"]) for e in index["releases"]] == [("2411", 1), ("2412", 2)]


def push(ansible, host, local_dir, dest):
    ansible.adhoc(host, "-m", "ansible.builtin.file", "-a", "path=%s state=directory mode=0755" % dest)
    ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a",
                  "src=%s/ dest=%s/ mode=preserve" % (local_dir, dest))


def verify(ansible, host, path, keys, catalog, keyring=None, trusted=None, **extra):
    args = {"path": path, "catalog": catalog,
            "keyring": keyring or [keys.publisher.public],
            "trusted_fingerprints": trusted or [keys.publisher.fingerprint]}
    args.update(extra)
    return ansible.adhoc(host, "-m", "modelops.fleet.model_verify", "-a", json.dumps(args), check=False)


@pytest.fixture(scope="module")
def on_host(ansible, published):
    """The 2411 release pushed to gpu-01 (OpenSSH) and edge-01 (paramiko)."""
    dest = "%s/%s/2411/%s" % (HOST_ROOT, MODEL, VARIANT)
    for host in ("gpu-01", "edge-01"):
        push(ansible, host, published["2411"]["dir"], dest)
    yield dest
    ansible.adhoc("gpu-01:edge-01", "-m", "ansible.builtin.file", "-a",
                  "path=%s state=absent" % HOST_ROOT)


@pytest.mark.parametrize("host", ["gpu-01", "edge-01"])
def test_signed_release_verifies_on_the_host_and_reverify_reads_nothing(ansible, keys, on_host, host, tmp_path):
    catalog = str(tmp_path / "registry.db")
    first = verify(ansible, host, on_host, keys, catalog)
    assert "SUCCESS" in first.stdout, first.stdout
    assert "signer: %s" % keys.publisher.fingerprint in first.stdout
    assert "release: %s-2411-%s" % (MODEL, VARIANT) in first.stdout
    second = verify(ansible, host, on_host, keys, catalog)
    assert "changed: false" in second.stdout
    assert re.search(r"^\s+bytes_read: 0$", second.stdout, re.M), second.stdout
    assert re.search(r"^\s+files_cached: 3$", second.stdout, re.M), second.stdout


def scratch(ansible, host, on_host, case, version="2411"):
    """A copy of the release on the host, in the release layout, for one tampering case."""
    path = "%s/%s/%s/%s/%s" % (HOST_ROOT, case, MODEL, version, VARIANT)
    ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a",
                  "mkdir -p %s && cp -a %s/. %s/" % (os.path.dirname(path), on_host, path))
    return path


def sh(ansible, host, cmd):
    ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd)


def refused(proc, *needles):
    assert proc.returncode != 0, proc.stdout
    assert "FAILED" in proc.stdout
    for n in needles:
        assert n in proc.stdout, "expected %r in:\n%s" % (n, proc.stdout[-3000:])


TAMPER = {
    "modified": ("python3 -c \"import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[3]^=1; "
                 "open(p,'wb').write(d)\" {p}/tokenizer_config.json", "changed file {p}/tokenizer_config.json"),
    "truncated": ("truncate -s 1000000 {p}/SmolLM2-135M-Instruct.Q4_1.gguf",
                  "truncated file {p}/SmolLM2-135M-Instruct.Q4_1.gguf: 1000000 bytes"),
    "extra": ("echo 'import os' > {p}/params/backdoor.py", "extra file {p}/params/backdoor.py"),
    "missing": ("rm {p}/params/generation.json", "missing file {p}/params/generation.json"),
    "symlink": ("rm {p}/tokenizer_config.json && ln -s /etc/shadow {p}/tokenizer_config.json",
                "{p}/tokenizer_config.json is a symlink (-> /etc/shadow)"),
    "nosig": ("rm {p}/manifest.json.asc", "has no signature"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_release_on_host_is_refused(ansible, keys, on_host, case, tmp_path):
    cmd, message = TAMPER[case]
    p = scratch(ansible, "edge-01", on_host, case)
    sh(ansible, "edge-01", cmd.format(p=p))
    refused(verify(ansible, "edge-01", p, keys, str(tmp_path / "registry.db")), message.format(p=p))


def resigned(tmp_path, published, key, mutate, version="2411"):
    """A manifest of the release, changed by mutate, signed by key (locally)."""
    src = published[version]["dir"]
    m = json.loads((src / "manifest.json").read_text())
    mutate(m)
    out = tmp_path / "manifest"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    sign(key, str(out / "manifest.json"))
    return out


def place_manifest(ansible, host, local_dir, path):
    for name in ("manifest.json", "manifest.json.asc"):
        ansible.adhoc(host, "-m", "ansible.builtin.copy", "-a",
                      "src=%s/%s dest=%s/%s" % (local_dir, name, path, name))


def bump_tokenizer(m):
    for f in m["files"]:
        if f["path"] == "tokenizer_config.json":
            f["sha256"] = "0" * 64


SIGNED_CASES = {
    "traversal": ("publisher", lambda m: m["files"][0].update(path="../../../../../etc/passwd"),
                  "escapes the release directory"),
    "absolute": ("publisher", lambda m: m["files"][0].update(path="/etc/passwd"), "is an absolute path"),
    "expired-manifest": ("publisher", lambda m: m.update(expires="2024-01-01T00:00:00Z"),
                         "expired at 2024-01-01T00:00:00Z"),
    "untrusted-key": ("attacker", bump_tokenizer, "not in the pinned keyring"),
    "expired-key": ("expired", bump_tokenizer, "signing key has expired"),
    "revoked-key": ("revoked", bump_tokenizer, "signing key was revoked"),
}


@pytest.mark.parametrize("case", sorted(SIGNED_CASES))
def test_resigned_manifest_is_refused(ansible, keys, published, on_host, case, tmp_path):
    who, mutate, message = SIGNED_CASES[case]
    key = getattr(keys, who)
    local = resigned(tmp_path, published, key, mutate)
    p = scratch(ansible, "edge-01", on_host, case)
    place_manifest(ansible, "edge-01", local, p)
    # The expired and revoked keys are pinned (in keyring and trusted): their state alone refuses them.
    keyring = [keys.publisher.public] + ([key.public] if who in ("expired", "revoked") else [])
    trusted = [keys.publisher.fingerprint] + ([key.fingerprint] if who in ("expired", "revoked") else [])
    proc = verify(ansible, "edge-01", p, keys, str(tmp_path / "registry.db"), keyring=keyring, trusted=trusted)
    refused(proc, message)
    if who != "publisher":
        assert key.fingerprint in proc.stdout


def test_mix_and_match_release_is_refused(ansible, keys, on_host, tmp_path):
    """The whole signed 2411 release placed where 2412 belongs."""
    p = scratch(ansible, "edge-01", on_host, "mixmatch", version="2412")
    refused(verify(ansible, "edge-01", p, keys, str(tmp_path / "registry.db")),
            "describes release %s-2411-%s, which does not belong in %s" % (MODEL, VARIANT, p))


def test_replayed_older_release_is_refused_unless_rollback(ansible, keys, published, on_host, tmp_path):
    catalog = str(tmp_path / "registry.db")
    shutil.copy(published["catalog"], catalog)   # has seen sequence 2 (2412) at publish time
    refused(verify(ansible, "edge-01", on_host, keys, catalog),
            "sequence 1, lower than sequence 2 already seen for model %s" % MODEL,
            "allow_rollback")
    ok = verify(ansible, "edge-01", on_host, keys, catalog, allow_rollback=True)
    assert "SUCCESS" in ok.stdout


def test_repo_latest_resolves_to_the_newest(ansible, keys, published):
    args = {"repository": str(published["repo"]), "model_name": MODEL, "variant": VARIANT,
            "keyring": [keys.publisher.public], "trusted_fingerprints": [keys.publisher.fingerprint],
            "catalog": published["catalog"]}
    proc = ansible.run("ansible", "localhost", "-m", "modelops.fleet.model_release_info",
                       "-a", json.dumps(args))
    assert "release: %s-2412-%s" % (MODEL, VARIANT) in proc.stdout
    assert "sequence: 2" in proc.stdout
