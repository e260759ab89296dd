# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.modelops.fleet.plugins.module_utils._release import engine_variant_mismatch


def engine_mismatch(variant, engine):
    """'' when engine can serve variant, otherwise the reason it cannot."""
    return engine_variant_mismatch(engine, variant)


class FilterModule(object):
    def filters(self):
        return {"engine_mismatch": engine_mismatch}
