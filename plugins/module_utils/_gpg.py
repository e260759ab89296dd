# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Detached GPG signatures of manifests, on the controller (python-gnupg).

Verification never uses the operator's own keyring: the pinned public keys are imported
into a throw-away GnuPG home for each verification, and the signer must additionally be
one of the trusted fingerprints. Private to the collection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import traceback

try:
    import gnupg
    HAS_GNUPG = True
    GNUPG_IMPORT_ERROR = None
except ImportError:
    HAS_GNUPG = False
    GNUPG_IMPORT_ERROR = traceback.format_exc()


class SignatureError(Exception):
    """The signature is missing, bad, untrusted, or made by an expired/revoked key."""


def normalise_fingerprint(fp):
    return "".join(str(fp).split()).upper()


def _require_gnupg():
    if not HAS_GNUPG:
        raise SignatureError("python-gnupg is required on the controller to check and make "
                             "signatures: pip install python-gnupg")


def kill_agent(gnupghome):
    """Stop the gpg-agent that gpg started for this home (if any), by its home."""
    if shutil.which("gpgconf"):
        subprocess.run(["gpgconf", "--homedir", gnupghome, "--kill", "all"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def verify_detached(data, signature, keyring_files, trusted_fingerprints, what="manifest.json"):
    """Verify an ASCII-armoured detached signature of data.

    keyring_files: public keys (armoured or binary exports) to trust for this check.
    trusted_fingerprints: the signer's primary key (or signing subkey) must be one of these.
    Returns the primary key fingerprint of the signer. Raises SignatureError.
    """
    _require_gnupg()
    trusted = set(normalise_fingerprint(f) for f in trusted_fingerprints or [])
    if not trusted:
        raise SignatureError("no trusted fingerprints given: pin the publisher's key "
                             "fingerprint(s) to verify %s" % what)
    if not signature:
        raise SignatureError("%s has no signature (%s.asc is missing or empty): refusing an "
                             "unsigned release" % (what, what))
    home = tempfile.mkdtemp(prefix="modelops-gpg-")
    try:
        os.chmod(home, 0o700)
        gpg = gnupg.GPG(gnupghome=home)
        imported = 0
        for path in keyring_files or []:
            try:
                with open(path, "rb") as f:
                    res = gpg.import_keys(f.read())
            except OSError as e:
                raise SignatureError("cannot read keyring %s: %s" % (path, e))
            if not res.fingerprints:
                raise SignatureError("keyring %s holds no OpenPGP public key" % path)
            imported += len(res.fingerprints)
        if not imported:
            raise SignatureError("no keyring given: pass the publisher's public key file(s)")
        data_path = os.path.join(home, "data")
        sig_path = os.path.join(home, "data.asc")
        with open(data_path, "wb") as f:
            f.write(data)
        with open(sig_path, "wb") as f:
            f.write(signature if isinstance(signature, bytes) else signature.encode("utf-8"))
        with open(sig_path, "rb") as f:
            v = gpg.verify_file(f, data_path)
        signer = normalise_fingerprint(v.pubkey_fingerprint or v.fingerprint or "")
        key_id = v.key_id or (v.problems[0].get("keyid") if v.problems else None)
        if v.key_status:
            raise SignatureError(
                "signature of %s was made by key %s whose status is: %s; refusing it "
                "(ask the publisher to re-sign with a valid key)"
                % (what, signer or key_id, v.key_status))
        if not v.valid:
            if v.status == "no public key":
                raise SignatureError(
                    "signature of %s was made by key %s, which is not in the pinned "
                    "keyring: untrusted signer" % (what, v.fingerprint or key_id))
            if v.status == "signature bad":
                raise SignatureError(
                    "BAD signature of %s (key %s): the manifest was changed after it was "
                    "signed, or the signature belongs to another manifest" % (what, key_id))
            raise SignatureError("signature of %s is not valid: %s"
                                 % (what, v.status or "no signature found"))
        fps = set([signer, normalise_fingerprint(v.fingerprint or "")])
        if not fps & trusted:
            raise SignatureError(
                "signature of %s is valid but made by key %s, which is not one of the "
                "trusted fingerprints %s" % (what, signer, ", ".join(sorted(trusted))))
        return signer
    finally:
        kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def sign_detached(data, gnupghome, fingerprint, passphrase=None):
    """Return an ASCII-armoured detached signature of data by the key fingerprint."""
    _require_gnupg()
    gpg = gnupg.GPG(gnupghome=gnupghome)
    fp = normalise_fingerprint(fingerprint)
    secret = [k for k in gpg.list_keys(secret=True)
              if normalise_fingerprint(k["fingerprint"]) == fp
              or fp in [normalise_fingerprint(s) for s in k.get("subkeys_fingerprints", []) or []]]
    if not secret:
        raise SignatureError("no secret key %s in GnuPG home %s" % (fp, gnupghome))
    sig = gpg.sign(data, keyid=fp, detach=True, passphrase=passphrase, binary=False)
    if not sig or not str(sig).startswith("-----BEGIN PGP SIGNATURE-----"):
        status = getattr(sig, "status", None) or "unknown error"
        raise SignatureError("signing with key %s failed: %s (wrong passphrase, or the key "
                             "is expired or revoked?)" % (fp, status))
    return str(sig).encode("utf-8")


def export_public_key(gnupghome, fingerprint):
    """The ASCII-armoured public key fingerprint from gnupghome (bytes)."""
    _require_gnupg()
    gpg = gnupg.GPG(gnupghome=gnupghome)
    fp = normalise_fingerprint(fingerprint)
    armoured = gpg.export_keys(fp, armor=True)
    if not armoured or "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in armoured:
        raise SignatureError("no public key %s in GnuPG home %s to export" % (fp, gnupghome))
    return (armoured.rstrip("\n") + "\n").encode("utf-8")


def signature_is_valid_for(data, signature, gnupghome, fingerprint):
    """True if signature is a good signature of data by fingerprint in gnupghome."""
    _require_gnupg()
    if not signature:
        return False
    gpg = gnupg.GPG(gnupghome=gnupghome)
    fd, sig_path = tempfile.mkstemp(prefix="modelops-sig-")
    fd2, data_path = tempfile.mkstemp(prefix="modelops-data-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(signature)
        with os.fdopen(fd2, "wb") as f:
            f.write(data)
        with open(sig_path, "rb") as f:
            v = gpg.verify_file(f, data_path)
        fp = normalise_fingerprint(fingerprint)
        return bool(v.valid) and fp in (normalise_fingerprint(v.pubkey_fingerprint or ""),
                                        normalise_fingerprint(v.fingerprint or ""))
    finally:
        os.unlink(sig_path)
        os.unlink(data_path)
