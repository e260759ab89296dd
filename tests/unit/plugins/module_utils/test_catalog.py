# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._catalog import (
    Catalog,
    RollbackRefused,
)


def man(version, seq, variant="gguf-q4_k_m"):
    return {"model_name": "qwen3-4b-instruct", "version": version, "variant": variant,
            "sequence": seq, "expires": "2099-01-01T00:00:00Z"}


def test_records_releases_in_sqlite(tmp_path):
    db = str(tmp_path / "registry.db")
    with Catalog(db) as c:
        c.record(man("2507", 12), "a" * 64, "FP1")
        c.record(man("2507", 12), "a" * 64, "FP1")  # seen twice: one row
    rows = sqlite3.connect(db).execute(
        "SELECT model_name, version, variant, manifest_sha256, signer, sequence FROM releases"
    ).fetchall()
    assert rows == [("qwen3-4b-instruct", "2507", "gguf-q4_k_m", "a" * 64, "FP1", 12)]


def test_lower_sequence_is_refused_unless_rollback_is_asked(tmp_path):
    with Catalog(str(tmp_path / "r.db")) as c:
        c.record(man("2508", 13), "b" * 64, "FP1")
        with pytest.raises(RollbackRefused) as e:
            c.check(man("2507", 12), "a" * 64)
        msg = str(e.value)
        assert "qwen3-4b-instruct-2507-gguf-q4_k_m has sequence 12" in msg
        assert "lower than sequence 13" in msg and "allow_rollback" in msg
        c.check(man("2507", 12), "a" * 64, allow_rollback=True)
        # Same or higher sequence is fine; other variants of the same release too.
        c.check(man("2508", 13, "fp16"), "c" * 64)
        c.check(man("2509", 14), "d" * 64)


def test_same_release_with_another_manifest_needs_a_higher_sequence(tmp_path):
    with Catalog(str(tmp_path / "r.db")) as c:
        c.record(man("2507", 12), "a" * 64, "FP1")
        with pytest.raises(RollbackRefused) as e:
            c.check(man("2507", 12), "e" * 64)
        assert "already seen" in str(e.value) and "a" * 64 in str(e.value)
        c.check(man("2507", 13), "e" * 64)


def test_catalog_survives_reopen(tmp_path):
    db = str(tmp_path / "r.db")
    with Catalog(db) as c:
        c.record(man("2508", 13), "b" * 64, "FP1")
    with Catalog(db) as c:
        assert c.highest("qwen3-4b-instruct")[0] == 13
        with pytest.raises(RollbackRefused):
            c.check(man("2507", 12), "a" * 64)
