# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Served-model attestation against a real process started the way systemd starts an
engine: in the directory `current` points to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._attest import (
    AttestError,
    check_served,
)


def switch(model_dir, target):
    tmp = os.path.join(str(model_dir), ".current.new")
    os.symlink(target, tmp)
    os.replace(tmp, os.path.join(str(model_dir), "current"))


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "m"
    for version in ("2411", "2501"):
        (d / version / "gguf-q4_1").mkdir(parents=True)
    switch(d, "2411/gguf-q4_1")
    return d


@pytest.fixture
def engine(model_dir):
    """A process started in current (the kernel resolves the link when it enters it)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            cwd=str(model_dir / "current"))
    yield proc
    proc.kill()
    proc.wait()


def test_an_engine_started_from_current_attests(model_dir, engine):
    res = check_served(engine.pid, str(model_dir / "current"), "modelops-inference.service")
    assert res["served_dir"] == str(model_dir / "2411" / "gguf-q4_1")


def test_current_moved_without_a_restart_is_caught(model_dir, engine):
    switch(model_dir, "2501/gguf-q4_1")
    with pytest.raises(AttestError) as e:
        check_served(engine.pid, str(model_dir / "current"), "modelops-inference.service")
    msg = str(e.value)
    assert "modelops-inference.service (pid %d) serves 2411/gguf-q4_1" % engine.pid in msg
    assert "current is 2501/gguf-q4_1" in msg
    assert "restart modelops-inference.service" in msg


def test_a_removed_release_is_named_as_deleted(model_dir, engine):
    switch(model_dir, "2501/gguf-q4_1")
    os.rmdir(str(model_dir / "2411" / "gguf-q4_1"))
    with pytest.raises(AttestError) as e:
        check_served(engine.pid, str(model_dir / "current"))
    assert "serves 2411/gguf-q4_1 (deleted)" in str(e.value)


def test_an_engine_without_working_directory_says_how_to_fix_it(model_dir):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd="/")
    try:
        with pytest.raises(AttestError) as e:
            check_served(proc.pid, str(model_dir / "current"))
        assert "no WorkingDirectory=%s" % (model_dir / "current") in str(e.value)
        assert "re-run the inference_server role" in str(e.value)
    finally:
        proc.kill()
        proc.wait()


def test_nothing_to_attest_without_current(tmp_path, engine):
    with pytest.raises(AttestError) as e:
        check_served(engine.pid, str(tmp_path / "other" / "current"))
    assert "does not exist" in str(e.value)


def test_a_process_that_is_gone(model_dir):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(AttestError) as e:
        check_served(proc.pid, str(model_dir / "current"))
    assert "cannot read the working directory of process %d" % proc.pid in str(e.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a process as nobody: needs root")
def test_root_without_cap_sys_ptrace_reads_as_the_engine_user(monkeypatch):
    """In a container root lacks CAP_SYS_PTRACE and may not read another user's
    /proc/<pid>/cwd (EACCES, seen in podman hosts); the engine's own user may."""
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="attest-")
    try:
        os.chmod(base, 0o755)
        os.makedirs(os.path.join(base, "m", "2411", "gguf-q4_1"))
        switch(os.path.join(base, "m"), "2411/gguf-q4_1")
        proc = subprocess.Popen(["sleep", "60"], cwd=os.path.join(base, "m", "current"),
                                user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        try:
            real = os.readlink

            def no_ptrace(path):
                if path == "/proc/%d/cwd" % proc.pid:
                    raise PermissionError(13, "Permission denied")
                return real(path)
            monkeypatch.setattr(os, "readlink", no_ptrace)
            res = check_served(proc.pid, os.path.join(base, "m", "current"))
            assert res["served_dir"] == os.path.join(base, "m", "2411", "gguf-q4_1")
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(base)
