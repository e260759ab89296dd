# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based tests (Hypothesis) of the manifest path policy, the manifest parser,
verify_tree and the release-name parser, beside the example-based ones in test_release.py."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import unicodedata

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    ReleaseError,
    build_manifest,
    check_paths_distinct,
    check_relpath,
    load_manifest_bytes,
    parse_release_name,
    path_collision_key,
    release_name,
    verify_tree,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
META = {"model_name": "m", "version": "2411", "variant": "gguf-q4_1", "sequence": 1,
        "expires": "2099-01-01T00:00:00Z"}
HEX = "0" * 64

# Path-like text: mostly the characters that make paths interesting.
path_text = st.text(alphabet=st.sampled_from(list("ab./\\\x00\x1f\u200b\u2028e\u0301\u00e9AB~")),
                    min_size=0, max_size=40) | st.text(max_size=40)
safe_component = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"),
                                                whitelist_characters="-_"),
                         min_size=1, max_size=12)


@SETTINGS
@given(path_text)
@example("../x")
@example("a/../../etc/passwd")
@example("e\u0301")
@example("a\u200bb")
@example("C:x")
def test_check_relpath_accepts_only_paths_inside_the_release(path):
    try:
        out = check_relpath(path)
    except ReleaseError as e:
        assert str(e)  # refusals say why
        return
    assert out == path
    parts = path.split("/")
    assert not path.startswith("/") and "\\" not in path and "\x00" not in path
    assert all(p not in ("", ".", "..") for p in parts)
    assert unicodedata.normalize("NFC", path) == path
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in path)
    assert len(path.encode("utf-8")) <= MAX_PATH_BYTES
    assert all(len(p.encode("utf-8")) <= MAX_COMPONENT_BYTES for p in parts)
    root = "/srv/models/m/2411/v"
    joined = os.path.normpath(os.path.join(root, path))
    assert joined.startswith(root + "/"), joined


@SETTINGS
@given(st.lists(path_text, min_size=1, max_size=6))
def test_distinct_paths_never_collide_after_normalisation(paths):
    try:
        check_paths_distinct(paths)
    except ReleaseError:
        return
    keys = [path_collision_key(p) for p in paths]
    assert len(set(keys)) == len(keys)
    for k in keys:
        for other in keys:
            assert not other.startswith(k + "/")


def manifest_strategy():
    entry = st.fixed_dictionaries({
        "path": path_text,
        "size": st.one_of(st.integers(min_value=-2, max_value=10 ** 12), st.booleans(), st.none(), st.text(max_size=3)),
        "sha256": st.one_of(st.just(HEX), st.text(max_size=70)),
    })
    value = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
    return st.fixed_dictionaries(
        {"files": st.one_of(st.lists(entry, max_size=5), value)},
        optional={"schema": st.one_of(st.just(1), value), "model_name": st.one_of(st.just("m"), value),
                  "version": st.one_of(st.just("2411"), value), "variant": st.one_of(st.just("gguf-q4_1"), value),
                  "sequence": st.one_of(st.just(1), value),
                  "expires": st.one_of(st.just("2099-01-01T00:00:00Z"), value)})


@SETTINGS
@given(manifest_strategy())
def test_manifest_parser_accepts_or_refuses_never_crashes(data):
    raw = json.dumps(data).encode("utf-8")
    try:
        m = load_manifest_bytes(raw)
    except ReleaseError:
        return
    # What it accepts is a manifest every later step can rely on.
    paths = [f["path"] for f in m["files"]]
    assert len(set(paths)) == len(paths)
    for f in m["files"]:
        assert check_relpath(f["path"]) == f["path"]
        assert isinstance(f["size"], int) and not isinstance(f["size"], bool) and f["size"] >= 0


@SETTINGS
@given(st.binary(max_size=200))
def test_manifest_parser_on_arbitrary_bytes(raw):
    try:
        load_manifest_bytes(raw)
    except ReleaseError:
        pass


tree_strategy = st.dictionaries(
    st.lists(safe_component, min_size=1, max_size=3).map("/".join).filter(
        lambda p: p not in ("manifest.json", "manifest.json.asc")),
    st.binary(max_size=64), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_strategy, st.data())
def test_verify_tree_accepts_the_tree_it_was_built_from_and_names_any_change(files, data):
    try:
        for rel in files:
            check_relpath(rel)
        check_paths_distinct(sorted(files))
        policy_ok = True
    except ReleaseError:
        policy_ok = False
    root = tempfile.mkdtemp(prefix="relprop-")
    try:
        for rel, content in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        if not policy_ok:
            # The publisher is held to the same path policy as the hosts: refused at build.
            try:
                build_manifest(root, META)
            except ReleaseError:
                return
            raise AssertionError("build_manifest accepted a tree the path policy refuses: %r" % sorted(files))
        manifest = build_manifest(root, META)
        assert verify_tree(root, manifest)["files"] == len(files)
        victim = data.draw(st.sampled_from(sorted(files)))
        change = data.draw(st.sampled_from(["flip", "append", "delete"]))
        path = os.path.join(root, victim)
        if change == "delete":
            os.unlink(path)
        elif change == "append":
            with open(path, "ab") as f:
                f.write(b"x")
        else:
            content = files[victim]
            assume(content)
            with open(path, "r+b") as f:
                f.write(bytes([content[0] ^ 0xFF]))
        try:
            verify_tree(root, manifest, full=True)
        except ReleaseError as e:
            assert victim in str(e), (victim, str(e))
        else:
            raise AssertionError("verify_tree accepted a %s of %s" % (change, victim))
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(st.text(max_size=40))
@example("qwen3-4b-instruct-2507-gguf-q4_k_m")
@example("a-2507-")
def test_release_name_parser_round_trips_what_it_accepts(name):
    try:
        parsed = parse_release_name(name)
    except ReleaseError:
        return
    again = release_name(parsed["model_name"], parsed["version"], parsed["variant"])
    assert parse_release_name(again) == parsed


@SETTINGS
@given(st.lists(safe_component, min_size=1, max_size=3), st.lists(safe_component, min_size=1, max_size=3))
def test_names_from_parts_parse_back(model_parts, variant_parts):
    model = "-".join(p.lower() for p in model_parts)
    variant = "-".join(p.lower() for p in variant_parts)
    assume(model == model.lower() and not any(t.isdigit() and len(t) in (4, 6, 8) for t in model.split("-")[1:]))
    try:
        name = release_name(model, "2507", variant)
        parsed = parse_release_name(name)
    except ReleaseError:
        return
    assert parsed["version"] == "2507"
