# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The formatting helpers every benchmark's Markdown uses (bench/_common.py), in one place."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench"))
import _common  # noqa: E402  pylint: disable=wrong-import-position


def test_seconds_and_ranges_switch_to_milliseconds_below_a_tenth():
    assert _common.fmt_seconds(1.234) == "1.23 s" and _common.fmt_seconds(1.234, 3) == "1.234 s"
    assert _common.fmt_seconds(0.0123) == "12.3 ms"
    assert _common.fmt_range({"min": 1.2, "max": 3.456}) == "1.20–3.46 s"
    assert _common.fmt_range({"min": 30.12, "max": 35.2}, 1) == "30.1–35.2 s"
    assert _common.fmt_range({"min": 0.0121, "max": 0.0456}, 3) == "12.10–45.60 ms"
