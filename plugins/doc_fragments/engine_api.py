# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # How to reach the inference engine's OpenAI-compatible API on the target host: the
    # options of the modules that talk to it (inference_ready, model_probe).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the engine's OpenAI-compatible API as seen from the target host (the
        inference_server role's C(inference_server_endpoint.url); llama.cpp listens on 8080,
        vLLM on 8000).
      - C(unix:<path>) talks HTTP over the Unix socket at that path, as a blue/green instance
        listens (M(modelops.fleet.model_candidate) returns its address).
    type: str
    default: http://127.0.0.1:8080
  served_name:
    description:
      - Model name the engine must list in C(/v1/models) and that the requests use
        (llama.cpp C(--alias), vLLM C(--served-model-name)).
    type: str
    required: true
  api_key:
    description:
      - Bearer token for engines started with an API key. Never logged or reported.
    type: str
"""
