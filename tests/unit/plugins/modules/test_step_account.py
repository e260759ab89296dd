# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each step module returns its own account (module_utils/_step.py): the step's name, its
outcome, the seconds its work took where it ran, and the phases it timed. The account itself
is tested with a fake module in module_utils/test_module.py; here a real module run."""

from __future__ import annotations

from test_model_info import make_release

MODEL = "qwen3-4b-instruct"
VARIANT = "gguf-q4_k_m"


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
