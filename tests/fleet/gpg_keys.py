# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real GnuPG keys for tests: a publisher, an attacker, an expired and a revoked key.

Each key lives in its own GnuPG home under a directory the test owns; stop() ends the
gpg-agents gpg started for those homes (by home, never by name).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess


@dataclasses.dataclass
class Key:
    """A test key: its GnuPG home, fingerprint and exported public key file."""
    home: str
    fingerprint: str
    public: str
    passphrase: str | None = None
    # gpg --faked-system-time for keys that live in the past (the expired key).
    faked_time: str | None = None

    def time_args(self):
        return ["--faked-system-time", self.faked_time] if self.faked_time else []


def _gpg(home, *args, stdin=None):
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--yes"] + list(args),
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=True)


def make_key(base, name, passphrase=None, expire="never", faked_time=None):
    home = os.path.join(base, name)
    os.makedirs(home, mode=0o700)
    key = Key(home, None, None, passphrase, faked_time)
    _gpg(home, *key.time_args(), "--pinentry-mode", "loopback", "--passphrase", passphrase or "",
         "--quick-gen-key", "%s <%s@modelops-test.invalid>" % (name, name),
         "ed25519", "sign", expire)
    out = _gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
    fpr = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")][0]
    public = os.path.join(base, "%s.asc" % name)
    with open(public, "wb") as f:
        f.write(_gpg(home, "--armor", "--export", fpr).stdout)
    key.fingerprint, key.public = fpr, public
    return key


def revoke(key):
    """Publish key as revoked, with the revocation certificate gpg made with the key.

    Only the public key file (what verifiers pin) carries the revocation: the signer's own
    home keeps a usable secret key, as a thief of the key would.
    """
    path = os.path.join(key.home, "openpgp-revocs.d", "%s.rev" % key.fingerprint)
    with open(path) as f:
        cert = f.read().replace(":-----BEGIN PGP PUBLIC KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK")
    pub_home = key.home + "-published"
    os.makedirs(pub_home, mode=0o700)
    with open(key.public, "rb") as f:
        _gpg(pub_home, "--import", stdin=f.read())
    _gpg(pub_home, "--import", stdin=cert.encode())
    with open(key.public, "wb") as f:
        f.write(_gpg(pub_home, "--armor", "--export", key.fingerprint).stdout)


def sign(key, path):
    """Detached armoured signature of path, written to path + '.asc'."""
    _gpg(key.home, *key.time_args(), "--pinentry-mode", "loopback",
         "--passphrase", key.passphrase or "", "--local-user", key.fingerprint, "--armor", "--detach-sign",
         "--output", path + ".asc", path)


class GpgTestKeys(object):
    def __init__(self, base):
        self.base = base
        self.publisher = make_key(base, "publisher")
        self.protected = make_key(base, "protected", passphrase="correct horse battery")
        self.attacker = make_key(base, "attacker")
        self.revoked = make_key(base, "revoked")
        revoke(self.revoked)
        # Made and used in January 2020, valid for one day: expired ever since.
        self.expired = make_key(base, "expired", expire="1d", faked_time="20200101T000000")
        self.expired.faked_time = "20200101T120000"

    def stop(self):
        for name in os.listdir(self.base):
            home = os.path.join(self.base, name)
            if os.path.isdir(home):
                subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
