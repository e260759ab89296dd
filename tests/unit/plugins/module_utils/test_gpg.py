# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signatures with real GnuPG keys made by the tests."""

from __future__ import annotations

import subprocess

import pytest

from gpg_keys import sign

from ansible_collections.modelops.fleet.plugins.module_utils._gpg import (
    SignatureError,
    sign_detached,
    signature_is_valid_for,
    verify_detached,
)

DATA = b'{"model_name": "qwen3-4b-instruct", "sequence": 12}\n'


def signed_by(key, tmp_path, data=DATA):
    p = tmp_path / ("m-%s.json" % key.fingerprint[:8])
    p.write_bytes(data)
    sign(key, str(p))
    return (tmp_path / (p.name + ".asc")).read_bytes()


def test_good_signature_by_pinned_key(gpg_keys, tmp_path):
    k = gpg_keys.publisher
    sig = signed_by(k, tmp_path)
    assert verify_detached(DATA, sig, [k.public], [k.fingerprint]) == k.fingerprint
    # Fingerprints may be given with spaces and in lower case.
    spaced = " ".join(k.fingerprint[i:i + 4] for i in range(0, 40, 4)).lower()
    assert verify_detached(DATA, sig, [k.public], [spaced]) == k.fingerprint


def test_changed_data_is_a_bad_signature(gpg_keys, tmp_path):
    k = gpg_keys.publisher
    sig = signed_by(k, tmp_path)
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA.replace(b"12", b"13"), sig, [k.public], [k.fingerprint],
                        what="host-1:/srv/m/manifest.json")
    assert "BAD signature of host-1:/srv/m/manifest.json" in str(e.value)


def test_missing_signature_is_refused(gpg_keys):
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, None, [k.public], [k.fingerprint], what="x/manifest.json")
    assert "x/manifest.json has no signature" in str(e.value)


def test_signature_by_key_outside_the_keyring_is_untrusted(gpg_keys, tmp_path):
    sig = signed_by(gpg_keys.attacker, tmp_path)
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, sig, [k.public], [k.fingerprint])
    assert "not in the pinned keyring" in str(e.value)
    assert gpg_keys.attacker.fingerprint in str(e.value)


def test_valid_signature_by_key_not_pinned_is_refused(gpg_keys, tmp_path):
    """The attacker's key slipped into the keyring file, but is not a trusted fingerprint."""
    sig = signed_by(gpg_keys.attacker, tmp_path)
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, sig, [k.public, gpg_keys.attacker.public], [k.fingerprint])
    assert "not one of the trusted fingerprints" in str(e.value)
    assert gpg_keys.attacker.fingerprint in str(e.value)


@pytest.mark.parametrize("key,reason", [
    ("expired", "signing key has expired"),
    # Signed with the secret key after its revocation was published: refused.
    ("revoked", "signing key was revoked"),
], ids=["expired", "revoked"])
def test_expired_or_revoked_key_is_refused(gpg_keys, tmp_path, key, reason):
    k = getattr(gpg_keys, key)
    sig = signed_by(k, tmp_path)
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, sig, [k.public], [k.fingerprint])
    assert reason in str(e.value) and k.fingerprint in str(e.value)


def test_garbage_signature_is_refused(gpg_keys):
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, b"not a signature", [k.public], [k.fingerprint])
    assert "not valid" in str(e.value)


def test_no_trusted_fingerprints_is_an_error(gpg_keys, tmp_path):
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, signed_by(k, tmp_path), [k.public], [])
    assert "no trusted fingerprints" in str(e.value)


def test_keyring_without_keys_is_named(gpg_keys, tmp_path):
    k = gpg_keys.publisher
    bogus = tmp_path / "empty.asc"
    bogus.write_text("hello")
    with pytest.raises(SignatureError) as e:
        verify_detached(DATA, signed_by(k, tmp_path), [str(bogus)], [k.fingerprint])
    assert "keyring %s holds no OpenPGP public key" % bogus in str(e.value)


def test_sign_with_passphrase(gpg_keys):
    k = gpg_keys.protected
    sig = sign_detached(DATA, k.home, k.fingerprint, k.passphrase)
    assert sig.startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert verify_detached(DATA, sig, [k.public], [k.fingerprint]) == k.fingerprint
    assert signature_is_valid_for(DATA, sig, k.home, k.fingerprint)
    assert not signature_is_valid_for(DATA + b" ", sig, k.home, k.fingerprint)


def test_sign_with_wrong_passphrase_fails(gpg_keys):
    k = gpg_keys.protected
    # gpg-agent caches a passphrase once used: start from a fresh agent.
    subprocess.run(["gpgconf", "--homedir", k.home, "--kill", "gpg-agent"], check=True)
    with pytest.raises(SignatureError) as e:
        sign_detached(DATA, k.home, k.fingerprint, "wrong")
    assert "signing with key %s failed" % k.fingerprint in str(e.value)
    assert "wrong" not in str(e.value).replace("wrong passphrase", "")


def test_sign_with_unknown_key_names_it(gpg_keys):
    k = gpg_keys.publisher
    with pytest.raises(SignatureError) as e:
        sign_detached(DATA, k.home, "0" * 40, None)
    assert "no secret key %s" % ("0" * 40) in str(e.value)
