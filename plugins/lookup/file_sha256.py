# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: file_sha256
version_added: 0.3.0
short_description: SHA-256 of files on the controller
description:
  - Returns the SHA-256 (hex) of each file named, read on the controller, in the order
    given. Binary files are fine (the P(ansible.builtin.file#lookup) lookup reads text).
  - The inference_server role uses it to tell whether the llama-server binary on a host
    is the one it would copy there, without a round trip to the host.
author:
  - modelops.fleet developers (@modelops)
options:
  _terms:
    description: Paths of files on the controller.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Hash the llama-server the role copies to the hosts
  ansible.builtin.debug:
    msg: "{{ lookup('modelops.fleet.file_sha256', '/opt/llama.cpp/bin/llama-server') }}"
"""

RETURN = r"""
_raw:
  description: The SHA-256 of each file, hex, in the order of the terms.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.modelops.fleet.plugins.module_utils._files import sha256_file


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        digests = []
        for term in terms:
            try:
                digests.append(sha256_file(term)[0])
            except OSError as e:
                raise AnsibleLookupError("cannot hash %s on the controller: %s" % (term, e))
        return digests
