# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release catalog on the controller (the seed's registry.db), in SQLite.

It records every signed release seen (fingerprints, signer, sequence, first-seen time)
and which host runs what. Anti-rollback checks read it. Private to the collection.
"""

from __future__ import annotations

import datetime
import os
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    model_name      TEXT NOT NULL,
    version         TEXT NOT NULL,
    variant         TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    signer          TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    expires         TEXT,
    first_seen      TEXT NOT NULL,
    PRIMARY KEY (model_name, version, variant, manifest_sha256)
);
CREATE INDEX IF NOT EXISTS releases_by_model ON releases (model_name, sequence);
CREATE TABLE IF NOT EXISTS deployments (
    host            TEXT NOT NULL,
    model_name      TEXT NOT NULL,
    version         TEXT NOT NULL,
    variant         TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    updated         TEXT NOT NULL,
    PRIMARY KEY (host, model_name)
);
"""


class RollbackRefused(Exception):
    """A release older than one already seen, without an explicit rollback request."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Catalog(object):
    def __init__(self, path):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        # Several forks may record at once: wait for the lock rather than fail.
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def highest(self, model_name):
        row = self.db.execute(
            "SELECT sequence, version, variant FROM releases WHERE model_name = ? "
            "ORDER BY sequence DESC LIMIT 1", (model_name,)).fetchone()
        return row

    def seen(self, model_name, version, variant):
        return self.db.execute(
            "SELECT manifest_sha256, sequence, signer, first_seen FROM releases "
            "WHERE model_name = ? AND version = ? AND variant = ? ORDER BY sequence DESC",
            (model_name, version, variant)).fetchall()

    def check(self, manifest, manifest_sha256, allow_rollback=False):
        """Refuse a replayed older release or a conflicting re-signed one."""
        name = "%s-%s-%s" % (manifest["model_name"], manifest["version"], manifest["variant"])
        seq = manifest["sequence"]
        top = self.highest(manifest["model_name"])
        if top and seq < top[0] and not allow_rollback:
            raise RollbackRefused(
                "release %s has sequence %d, lower than sequence %d already seen for model %s "
                "(%s-%s-%s): refusing a possible rollback attack. To roll back on purpose "
                "to a release the hosts keep, set allow_rollback: true"
                % (name, seq, top[0], manifest["model_name"], manifest["model_name"],
                   top[1], top[2]))
        for sha, old_seq, dummy, first_seen in self.seen(manifest["model_name"],
                                                         manifest["version"],
                                                         manifest["variant"]):
            if sha != manifest_sha256 and seq <= old_seq and not allow_rollback:
                raise RollbackRefused(
                    "release %s was already seen on %s with a different manifest (sha256 %s, "
                    "sequence %d); this one (sha256 %s) does not have a higher sequence: "
                    "refusing it. A corrected release must be published with a higher "
                    "sequence" % (name, first_seen, sha, old_seq, manifest_sha256))

    def record(self, manifest, manifest_sha256, signer):
        self.db.execute(
            "INSERT OR IGNORE INTO releases (model_name, version, variant, manifest_sha256, "
            "signer, sequence, expires, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (manifest["model_name"], manifest["version"], manifest["variant"], manifest_sha256,
             signer, manifest["sequence"], manifest.get("expires"), _now()))

    def record_deployment(self, host, manifest, manifest_sha256):
        self.db.execute(
            "INSERT OR REPLACE INTO deployments (host, model_name, version, variant, "
            "manifest_sha256, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (host, manifest["model_name"], manifest["version"], manifest["variant"],
             manifest_sha256, _now()))

    def releases(self, model_name=None):
        q = ("SELECT model_name, version, variant, manifest_sha256, signer, sequence, expires, "
             "first_seen FROM releases")
        args = ()
        if model_name:
            q += " WHERE model_name = ?"
            args = (model_name,)
        cols = ("model_name", "version", "variant", "manifest_sha256", "signer", "sequence",
                "expires", "first_seen")
        return [dict(zip(cols, r)) for r in self.db.execute(q + " ORDER BY sequence", args)]
