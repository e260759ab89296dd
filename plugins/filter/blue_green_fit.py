# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.modelops.fleet.plugins.module_utils._bluegreen import fit_shortfall


def blue_green_fit(memory, release_bytes, factor):
    """'' when a second engine fits in memory (model_info's memory result), else why not."""
    memory = memory or {}
    return fit_shortfall(int(release_bytes), float(factor), memory.get("available"), memory.get("gpu_free"))


class FilterModule(object):
    def filters(self):
        return {"blue_green_fit": blue_green_fit}
