# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # Where a host keeps its models: the option of every module that reads or writes the
    # model store (model_activate, model_info, model_metrics, model_probe, model_sync).
    DOCUMENTATION = r"""
options:
  model_root:
    description:
      - Directory on the host holding the installed models (C(<model_root>/<model>/<version>/<variant>),
        the C(current) and C(previous) links) and the host ledger C(<model_root>/.modelops/state.json)
        with its lock and latency history.
    type: path
    default: /srv/models
"""
