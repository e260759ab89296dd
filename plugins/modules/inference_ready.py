#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: inference_ready
short_description: Wait until an inference engine really serves a model
version_added: 0.1.0
description:
  - Waits until an OpenAI-compatible inference engine (llama.cpp C(llama-server) or vLLM)
    on the target host is ready, not merely alive.
  - Readiness means, in order, that C(/health) answers HTTP 200 (llama.cpp answers 503
    while the model loads), that C(/v1/models) lists O(served_name), and that one short
    real chat completion succeeds.
  - If O(unit) is given and the systemd unit stops or fails while waiting, the module
    fails at once and includes the unit's last journal lines in the message, led by the
    engine's own error lines (such as vLLM's C(SafetensorError) from a worker process),
    which a long traceback would otherwise push out of the last lines.
  - With O(serves), the engine must also really serve what that link points to now. The
    working directory of the unit's main process (systemd enters the unit's
    C(WorkingDirectory=<model_root>/<model>/current) when the engine starts) must be the
    link's target. An engine left running on the old version after C(current) moved still
    answers, and its C(/props) or C(/v1/models) name the C(current) link, so this is the
    check that tells.
  - Uses only the Python standard library on the target.
options:
  unit:
    description:
      - Name of the systemd unit running the engine. When set, a unit that is not active
        fails the wait early, with the unit's last journal lines in the message.
    type: str
  serves:
    description:
      - The model's C(current) link (or a release directory) the engine must have been
        started from. Fails, naming both, when the engine's working directory is another
        release. Requires O(unit); reading another process's working directory needs root.
    type: path
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.read_only
  - modelops.fleet.engine_api
  - modelops.fleet.ready
"""

EXAMPLES = r"""
- name: Wait until llama-server serves the new version
  modelops.fleet.inference_ready:
    served_name: qwen3-4b-instruct
    unit: modelops-llama-server.service
    timeout: 300

- name: Wait for vLLM behind an API key
  modelops.fleet.inference_ready:
    url: http://127.0.0.1:8000
    served_name: qwen3-4b-instruct
    api_key: "{{ vault_vllm_api_key }}"
    timeout: 900

- name: Wait, and check the engine was started from what current points to now
  modelops.fleet.inference_ready:
    served_name: qwen3-4b-instruct
    unit: modelops-inference.service
    serves: /srv/models/qwen3-4b-instruct/current
"""

RETURN = r"""
ready:
  description: Whether the engine became ready.
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 4.2
models:
  description: Model names listed by C(/v1/models).
  returned: when the engine answered
  type: list
  elements: str
  sample: [qwen3-4b-instruct]
completion:
  description: Text of the readiness completion.
  returned: when O(completion=true) and the engine became ready
  type: str
  sample: Paris.
latency_ms:
  description: Latency of the readiness completion in milliseconds.
  returned: when O(completion=true) and the engine became ready
  type: float
  sample: 312.5
served_dir:
  description: The release directory the engine's process was started in.
  returned: when O(serves) is set and the engine became ready
  type: str
  sample: /srv/models/qwen3-4b-instruct/2507/gguf-q4_k_m
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (ready); C(seconds) what the
      work took on the host, without Ansible's round trip; C(outcome) is ok, changed or failed;
      C(phases) the parts the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: ready, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._ready import EngineNotReady, ReadinessWaiter
from ansible_collections.modelops.fleet.plugins.module_utils._specs import engine_api_spec, ready_spec
from ansible_collections.modelops.fleet.plugins.module_utils._step import account


def main():
    module = AnsibleModule(
        argument_spec=dict(
            engine_api_spec(),
            unit=dict(type="str"),
            serves=dict(type="path"),
            **ready_spec()
        ),
        required_by={"serves": "unit"},
        supports_check_mode=True,
    )
    account(module, "ready")
    p = module.params
    run_and_exit(module, lambda: ReadinessWaiter(module, p["unit"], p["serves"]).wait(), EngineNotReady,
                 fail_extra={"ready": False}, exit_extra={"changed": False})


if __name__ == "__main__":
    main()
