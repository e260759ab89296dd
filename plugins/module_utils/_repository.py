# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Release repositories: a local directory or an HTTP(S) mirror of the same layout.

Layout: <repo>/<model>/<version>/<variant>/{manifest.json, manifest.json.asc, files...}
and <repo>/index.json listing the releases (written by model_manifest). The index is
only for discovery: every candidate's manifest is fetched and its signature checked.
Private to the collection.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.urls import open_url

from ansible_collections.modelops.fleet.plugins.module_utils._files import atomic_write
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, SIGNATURE, ReleaseError, validate_model_name, validate_variant, validate_version,
)

INDEX = "index.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # a manifest or index larger than this is refused


def is_url(location):
    return location.startswith("http://") or location.startswith("https://")


class Repository(object):
    def __init__(self, location, timeout=30, validate_certs=True):
        self.location = location.rstrip("/")
        self.remote = is_url(location)
        self.timeout = timeout
        self.validate_certs = validate_certs

    def join(self, *parts):
        if self.remote:
            return "/".join([self.location] + list(parts))
        return os.path.join(self.location, *parts)

    def read(self, *parts, **kw):
        """Bytes of a small file of the repository (manifest, signature, index)."""
        missing_ok = kw.get("missing_ok", False)
        where = self.join(*parts)
        if self.remote:
            try:
                resp = open_url(where, timeout=self.timeout, validate_certs=self.validate_certs,
                                follow_redirects="safe")
                data = resp.read(MAX_MANIFEST_BYTES + 1)
            except Exception as e:  # urllib raises several unrelated types
                if missing_ok and getattr(e, "code", None) == 404:
                    return None
                raise ReleaseError("cannot fetch %s: %s" % (where, e))
        else:
            try:
                with open(where, "rb") as f:
                    data = f.read(MAX_MANIFEST_BYTES + 1)
            except (IOError, OSError) as e:
                if missing_ok and not os.path.exists(where):
                    return None
                raise ReleaseError("cannot read %s: %s" % (where, e))
        if len(data) > MAX_MANIFEST_BYTES:
            raise ReleaseError("%s is larger than %d bytes: refusing it"
                               % (where, MAX_MANIFEST_BYTES))
        return data

    def candidates(self, model_name, variant):
        """(version, relative dir) of the releases of model_name/variant, any order."""
        validate_model_name(model_name)
        validate_variant(variant)
        found = []
        raw = self.read(INDEX, missing_ok=True)
        if raw is not None:
            try:
                index = json.loads(raw.decode("utf-8"))
                entries = index["releases"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                raise ReleaseError("%s is not a valid release index" % self.join(INDEX))
            for e in entries:
                if e.get("model_name") == model_name and e.get("variant") == variant:
                    found.append(validate_version(str(e.get("version"))))
        elif not self.remote:
            model_dir = os.path.join(self.location, model_name)
            if os.path.isdir(model_dir):
                for version in os.listdir(model_dir):
                    if os.path.isfile(os.path.join(model_dir, version, variant, MANIFEST)):
                        try:
                            found.append(validate_version(version))
                        except ReleaseError:
                            continue
        else:
            raise ReleaseError("mirror %s has no %s: publish with model_manifest "
                               "(index: true) to create it" % (self.location, INDEX))
        return sorted(set(found), reverse=True)

    def manifest_and_signature(self, model_name, version, variant):
        raw = self.read(model_name, version, variant, MANIFEST)
        sig = self.read(model_name, version, variant, SIGNATURE, missing_ok=True)
        return raw, sig


def update_index(repo_dir, manifest, manifest_sha256):
    """Add or replace the release's entry in <repo_dir>/index.json (atomic write)."""
    path = os.path.join(repo_dir, INDEX)
    index = {"schema": 1, "releases": []}
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                index = json.loads(f.read().decode("utf-8"))
            index.setdefault("releases", [])
        except (ValueError, UnicodeDecodeError):
            raise ReleaseError("%s is not valid JSON: fix or remove it" % path)
    key = (manifest["model_name"], manifest["version"], manifest["variant"])
    entry = {"model_name": key[0], "version": key[1], "variant": key[2],
             "sequence": manifest["sequence"], "manifest_sha256": manifest_sha256,
             "path": "/".join(key)}
    others = [e for e in index["releases"]
              if (e.get("model_name"), e.get("version"), e.get("variant")) != key]
    new = dict(index, releases=sorted(others + [entry], key=lambda e: (
        e.get("model_name", ""), e.get("variant", ""), e.get("sequence", 0))))
    if new == index:
        return False
    atomic_write(path, (json.dumps(new, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return True
