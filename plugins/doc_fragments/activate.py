# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # The switch of a model's current link: the options of model_activate, and of
    # model_switch, which also restarts the engine on the release it switched to
    # (module_utils/_specs.activate_spec).
    DOCUMENTATION = r"""
options:
  model_name:
    description: Model name, for example C(qwen3-4b-instruct).
    type: str
    required: true
  version:
    description:
      - Version of the release to activate, for example C(2507).
      - Requires O(variant). Mutually exclusive with O(rollback).
      - M(modelops.fleet.model_switch) without O(version) and O(rollback) serves the release
        C(current) points to; M(modelops.fleet.model_activate) needs one of them.
    type: str
  variant:
    description: Variant of the release to activate, for example C(gguf-q4_k_m).
    type: str
  rollback:
    description:
      - Point C(current) back at the release C(previous) points to, and C(previous) at
        the release that was current.
      - Fails when there is no C(previous) link.
    type: bool
    default: false
  verify:
    description:
      - Check every file of the release against its C(manifest.json) (size and sha256,
        through the hash cache) before switching; refuse a changed, missing or extra file,
        naming it.
    type: bool
    default: true
  keep_versions:
    description:
      - After a switch, keep this many installed releases of the model besides the ones
        C(current) and C(previous) point to, the most recently installed or activated
        ones; delete the others.
      - Recency is the later of the release directory's modification time and the last
        ledger event that activated it or switched away from it.
      - C(0) keeps only C(current) and C(previous).
    type: int
    default: 2
  lock_timeout:
    description: Seconds to wait for the host lock held by another upgrade before failing.
    type: int
    default: 60
  reason:
    description: Free text recorded with the event in the host ledger (a ticket, a canary verdict).
    type: str
"""
