#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_rollout
short_description: Upgrade one host to a signed release, gate it, and roll it back on failure
version_added: 0.2.0
description:
  - One host's whole rollout in one task, as the C(model_upgrade) role runs it after it read
    the host (M(modelops.fleet.model_info)) and configured its engine on drift. The flow is
    written top to bottom in the collection's C(plugins/plugin_utils/_rollout_host.py).
  - "In place: the old version's baseline (canaries, O(record_baseline)) -> M(modelops.fleet.model_sync)
    -> M(modelops.fleet.model_switch) (switch C(current), restart the engine, wait until the new
    version serves, in one host-side call) -> the probe gate (M(modelops.fleet.model_probe))."
  - "Blue/green (the endpoint's mode C(blue_green)): sync -> M(modelops.fleet.model_candidate)
    starts the new version beside the serving one -> the serving version's baseline -> the gate
    on the new instance, before any client reaches it -> the clients move to it."
  - With O(soak_seconds), the host then stays on the new version that long (on the
    controller's clock, per host) and is gated again.
  - On any failure the host is rolled back when this run switched it (switched back and
    restarted, or the clients moved back; a blue/green candidate no client reached is stopped)
    and the old version is probed again. The outcome says why, in the words of the step that
    failed.
  - Each step runs its module with the task's C(module_defaults) (groups C(engine), C(store),
    C(trust)), as its own task would, and shows a line on the console when it starts and ends.
  - Last, M(modelops.fleet.model_metrics) writes O(metrics_path) with the verdict and every
    step's own account.
  - Runs on the controller only (an action plugin); it has no check mode - C(upgrade.yml
    --check) plans with M(modelops.fleet.model_info) instead.
attributes:
  check_mode:
    support: none
    details: The rollout changes the host; plan it with M(modelops.fleet.model_info) in check mode.
  diff_mode:
    support: none
    details: Each step's module reports its own changes.
  action:
    details: The whole flow runs in the action plugin; each step's module runs on the host.
options:
  release:
    description:
      - The release to install, a result of M(modelops.fleet.model_release_info) (C(release),
        C(version), C(location), C(manifest) with C(model_name) and C(variant)).
    type: dict
    required: true
  endpoint:
    description:
      - The host's engine as the C(inference_server) role's C(endpoint.yml) describes it
        (C(inference_server_endpoint) - C(url), C(served_name), C(mode), C(engine), C(unit),
        C(service), C(memory_factor)).
    type: dict
    required: true
  read:
    description:
      - The host read made just before (a M(modelops.fleet.model_info) result). Its
        C(gate_pending) makes the gate run although nothing changed (a run killed between
        the switch and the gate).
    type: dict
    default: {}
  serving:
    description:
      - The C(version/variant) the host serves before the upgrade (what C(current) points to);
        the rollback goes back to it. Omitted on a host that serves nothing yet.
    type: str
  api_key:
    description: The engine's API key, when it needs one.
    type: str
  source:
    description: Push the release from the controller (V(push)) or let the host download it from O(mirror_url) (V(mirror)).
    type: str
    choices: [push, mirror]
    default: push
  mirror_url:
    description: The mirror's base URL (with O(source=mirror)); the release is under C(<mirror_url>/<model>/<version>/<variant>).
    type: str
    default: ""
  sync_timeout:
    description: Upper bound in seconds on the whole sync (0 - none).
    type: int
    default: 0
  keep_versions:
    description: How many installed versions the host keeps after the switch.
    type: int
    default: 2
  ready_timeout:
    description: Seconds an engine may take to start and answer.
    type: int
    default: 300
  drain_timeout:
    description: Blue/green - seconds the old instance may finish its open connections after the clients moved.
    type: int
    default: 30
  restart:
    description: V(always) restarts the engine although C(current) did not move (its configuration changed); V(auto) when it has to.
    type: str
    choices: [auto, always]
    default: auto
  probe_suite:
    description: The probe suite of the gates (a shipped suite's name or a path); V("") turns the gates off.
    type: str
    default: smoke
  probe_always:
    description: Gate also when nothing changed on the host.
    type: bool
    default: false
  latency_factor:
    description: The factor over the baseline's latency that C(latency_vs_baseline) allows.
    type: float
    default: 1.3
  record_baseline:
    description: Record the old version's behaviour first and require the gate to compare against it (canaries).
    type: bool
    default: false
  soak_seconds:
    description: Stay this long on the new version, then gate again (canaries); 0 - no soak.
    type: int
    default: 0
  metrics_path:
    description: The node_exporter textfile to write at the end (M(modelops.fleet.model_metrics)); V("") for none.
    type: str
    default: ""
  fail_host:
    description:
      - Fail the task when the upgrade failed (after the rollback). V(false) returns the
        failure in C(failure) and the facts, for a caller that reports every host at the end.
    type: bool
    default: true
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.action
seealso:
  - module: modelops.fleet.model_switch
  - module: modelops.fleet.model_candidate
  - module: modelops.fleet.model_probe
  - module: modelops.fleet.model_sync
"""

EXAMPLES = r"""
- name: Upgrade the host, gate it, roll back on failure (as the model_upgrade role does)
  modelops.fleet.model_rollout:
    release: "{{ release }}"
    read: "{{ host_read }}"
    serving: "{{ host_read.models[0].current | default(omit) }}"
    endpoint: "{{ inference_server_endpoint }}"
    probe_suite: smoke
    metrics_path: /var/lib/node_exporter/textfile_collector/modelops_fleet.prom
  register: rollout
"""

RETURN = r"""
status:
  description: V(upgraded), or V(failed) (after the rollback, when one was possible).
  returned: always
  type: str
  sample: upgraded
rolled_back:
  description: Whether the host was put back on the version it served before, and serves it.
  returned: always
  type: bool
failure:
  description: Why the upgrade failed, naming the host, the release, the step and what the host serves now.
  returned: always
  type: str
  sample: "gpu-01: upgrade to qwen3-4b-2501-gguf-q4_k_m failed at Gate on the probe suite (...): ...; rolled back to 2412/gguf-q4_k_m, which serves again"
reason:
  description: The step that failed and its message.
  returned: always
  type: str
engine:
  description: Blue/green - the engine and the instance that serves the clients now (C(llama-server@blue)).
  returned: always
  type: str
steps:
  description:
    - Every step that ran, in order, rollback and metrics included - C(task) (the step's
      words), C(action) (its module), C(status) (ok, changed, failed), C(account) (the
      C(step) its module returned - name, outcome, own seconds, phases) and C(result) (the
      module's whole result). The rollout report shows each as a step of the host.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._specs import rollout_argument_spec


def main():
    module = AnsibleModule(argument_spec=rollout_argument_spec(), supports_check_mode=False)
    module.fail_json(msg="modelops.fleet.model_rollout runs on the controller, through its action plugin; "
                         "run it as a task of a play, not as a module on the host")


if __name__ == "__main__":
    main()
