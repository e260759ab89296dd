# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    ReleaseError,
    parse_release_name,
)


def release_parts(name, default_variant="fp16"):
    """Split a release name into model_name, version and variant."""
    try:
        return parse_release_name(name, default_variant=default_variant)
    except ReleaseError as e:
        raise AnsibleFilterError(str(e))


class FilterModule(object):
    def filters(self):
        return {"release_parts": release_parts}
