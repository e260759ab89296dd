# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's execution-environment metadata, read as ansible-builder reads it
(its own introspection code), and its pins kept equal to those the test suite runs with."""

from __future__ import annotations

import os
import re

import yaml

from ansible_builder._target_scripts.introspect import process_collection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def pins(path):
    out = {}
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_ansible_builder_finds_the_collections_python_and_system_dependencies():
    python, system = process_collection(REPO)
    assert "python-gnupg==0.5.7" in python and "sentence-transformers==6.2.0" in python and "torch==2.13.0" in python
    assert "gnupg [platform:dpkg]" in system and "openssh-clients [platform:rpm]" in system


def test_the_ee_pins_are_the_ones_the_tests_run_with():
    ee = pins("meta/ee-requirements.txt")
    tested = pins("requirements.txt")
    tested.update(pins("requirements-test.txt"))
    assert ee and dict((k, tested.get(k)) for k in ee) == ee


def test_the_ee_definition_installs_the_collection_from_its_tarball():
    with open(os.path.join(REPO, "ee", "execution-environment.yml")) as f:
        ee = yaml.safe_load(f)
    assert ee["version"] == 3
    assert ee["dependencies"]["galaxy"]["collections"] == [{"name": "/build/files/modelops-fleet.tar.gz", "type": "file"}]
    assert ee["additional_build_files"] == [{"src": "files/modelops-fleet.tar.gz", "dest": "files"}]
