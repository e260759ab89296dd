# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # The wait until an engine really serves: the options of inference_ready, and of
    # model_switch after its restart (module_utils/_specs.ready_spec).
    DOCUMENTATION = r"""
options:
  timeout:
    description: Seconds to wait in total before failing.
    type: int
    default: 180
  completion:
    description: Whether to require one short real chat completion.
    type: bool
    default: true
  prompt:
    description: User message of the readiness completion.
    type: str
    default: "What is the capital of France? Answer in one word."
  max_tokens:
    description: Token limit of the readiness completion.
    type: int
    default: 16
  journal_lines:
    description: How many journal lines of the engine's unit to include on failure.
    type: int
    default: 20
  max_restarts:
    description:
      - Fail as soon as systemd has restarted the engine's unit this many times while waiting
        (a crash loop under C(Restart=on-failure)) instead of waiting for O(timeout).
    type: int
    default: 2
"""
