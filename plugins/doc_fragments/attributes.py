# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # What every module of the collection shares: its authors, and full check mode support
    # (a module adds its own details: what check mode reports, and its diff_mode support).
    DOCUMENTATION = r"""
options: {}
author:
  - modelops.fleet developers (@modelops)
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing the host.
    support: full
  diff_mode:
    description: Reports what changed (or would change, in check mode) when run with C(--diff).
"""

    # The modules that only read the host (inference_ready, model_info, model_release_info).
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
    details: Nothing is changed, so there is no diff.
"""

    # The modules with an action plugin (model_probe, model_sync, model_verify).
    ACTION = r"""
options: {}
attributes:
  action:
    description: Has a controller-side action plugin.
    support: full
"""
