# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each step module returns its own account (module_utils/_step.py): the step's name, its
outcome, the seconds its work took where it ran, and the phases it timed."""

from __future__ import annotations

import time

import pytest

from test_model_info import make_release

from ansible_collections.modelops.fleet.plugins.module_utils._step import account, is_rollback

MODEL = "qwen3-4b-instruct"
VARIANT = "gguf-q4_k_m"


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


def test_every_exit_and_failure_carries_the_account():
    m = FakeModule(reason="rollback: probe failed")
    assert account(m, lambda p: "rollback" if is_rollback(p["reason"]) else "restart") == "rollback"
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
    assert not is_rollback("upgrade to qwen3-2507") and not is_rollback(None) and is_rollback("rollback.yml: asked")


def test_a_real_module_names_its_step_and_times_it(module_runner, tmp_path):
    root = tmp_path / "models"
    make_release(root, MODEL, "2504", VARIANT, 100, 11)
    make_release(root, MODEL, "2507", VARIANT, 200, 12)
    args = dict(model_root=str(root), model_name=MODEL, variant=VARIANT)
    up = module_runner("model_activate", version="2507", reason="upgrade to 2507", **dict(args))
    assert up["changed"] is True and up["step"]["name"] == "activate" and up["step"]["outcome"] == "changed", up
    assert 0 < up["step"]["seconds"] < 30, up
    back = module_runner("model_activate", version="2504", reason="rollback: probe json failed", **dict(args))
    assert back["step"]["name"] == "rollback" and back["step"]["outcome"] == "changed", back
    same = module_runner("model_activate", version="2504", reason="rollback: again", **dict(args))
    assert same["changed"] is False and same["step"]["outcome"] == "ok", same
    # a failure accounts for itself too, and keeps its message
    bad = module_runner("model_activate", version="2599", reason="upgrade to 2599", **dict(args))
    assert bad.get("failed") is True and "2599" in bad["msg"], bad
    assert bad["step"]["name"] == "activate" and bad["step"]["outcome"] == "failed", bad
