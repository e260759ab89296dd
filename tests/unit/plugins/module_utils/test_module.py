# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""run_and_exit, the end of every module's main()."""

from __future__ import annotations

import time

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._step import account, probe_step, rollback_or


class Exit(Exception):
    pass


class FakeModule(object):
    def __init__(self, **params):
        self.params = params
        self.out = None

    def exit_json(self, **kw):
        self.out = ("exit", kw)
        raise Exit()

    def fail_json(self, **kw):
        self.out = ("fail", kw)
        raise Exit()


class Expected(Exception):
    pass


def boom(exc):
    def work():
        raise exc
    return work


def test_result_and_the_expected_errors():
    m = FakeModule()
    with pytest.raises(Exit):
        run_and_exit(m, lambda: {"changed": True, "x": 1}, Expected, exit_extra={"changed": False})
    assert m.out == ("exit", {"changed": True, "x": 1})  # the result wins over the extra
    with pytest.raises(Exit):
        run_and_exit(m, boom(Expected("names the file")), Expected, fail_extra={"ready": False})
    assert m.out == ("fail", {"msg": "names the file", "ready": False})
    with pytest.raises(Exit):
        run_and_exit(m, boom(OSError(28, "No space left on device")), Expected,
                     os_error=lambda e: "failed on /srv/models: %s" % e)
    assert m.out == ("fail", {"msg": "failed on /srv/models: [Errno 28] No space left on device"})
    # Without os_error an OSError is not hidden, and an unexpected error is never turned into a message.
    with pytest.raises(OSError):
        run_and_exit(m, boom(OSError(13, "Permission denied")), Expected)
    with pytest.raises(KeyError):
        run_and_exit(m, boom(KeyError("bug")), Expected)


def test_every_exit_and_failure_carries_the_step_account():
    # module_utils/_step.py: each step module returns its own account
    m = FakeModule(reason="rollback: probe failed", rollback=False)
    assert account(m, rollback_or("restart")) == "rollback"
    time.sleep(0.05)
    with pytest.raises(Exit):
        m.exit_json(changed=True, timing={"restart_s": 0.5})
    kind, out = m.out
    step = out["step"]
    assert kind == "exit" and out["changed"] is True and out["timing"] == {"restart_s": 0.5}
    assert step["name"] == "rollback" and step["outcome"] == "changed" and step["phases"] == {"restart_s": 0.5}
    assert 0.05 <= step["seconds"] < 5 and abs(step["started"] - time.time()) < 5
    with pytest.raises(Exit):
        m.exit_json(changed=False)
    assert m.out[1]["step"]["outcome"] == "ok"
    with pytest.raises(Exit):
        m.fail_json(msg="engine serves 2504, current is 2507", switched=True)
    kind, out = m.out
    assert kind == "fail" and out["msg"] == "engine serves 2504, current is 2507" and out["switched"] is True
    assert out["step"]["outcome"] == "failed" and out["step"]["name"] == "rollback"


def test_step_names_from_the_arguments():
    switch = rollback_or("restart")
    assert switch({"reason": "upgrade to qwen3-2507"}) == "restart" and switch({"reason": None}) == "restart"
    assert switch({"reason": "rollback.yml: asked"}) == "rollback" and switch({"rollback": True}) == "rollback"
    candidate = rollback_or(lambda p: "activate" if p["state"] == "promoted" else "restart")
    assert candidate({"state": "promoted"}) == "activate" and candidate({"state": "started"}) == "restart"
    assert candidate({"state": "promoted", "reason": "rollback: probe"}) == "rollback"
    assert probe_step({"baseline": "record"}) == "baseline" and probe_step({"baseline": "compare"}) == "probe"
