#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_metrics
short_description: Write Prometheus metrics of the served model for node_exporter's textfile collector
version_added: 0.1.0
description:
  - Writes a Prometheus text-format file (for node_exporter's textfile collector) describing
    what the host serves and how its last upgrade went, read from the host state under
    O(model_root) - the C(current) and C(previous) links and the host ledger
    C(<model_root>/.modelops/state.json).
  - C(modelops_model_info{model,version,variant}) is 1 for the version C(current) points to;
    C(modelops_model_previous_info{model,version,variant}) 1 for C(previous);
    C(modelops_model_releases_installed{model}) counts the installed releases;
    C(modelops_model_serving_instance{model,color}) is 1 for the instance that serves the
    clients on a blue/green host (C(inference_server_mode=blue_green)), as the last move of the
    clients recorded it.
  - C(modelops_model_last_upgrade_timestamp_seconds{model}) and
    C(modelops_model_last_upgrade_success{model,result}) describe the last upgrade - from
    O(result) and O(time) when given, else from the last activation or rollback in the ledger.
  - With O(probe) (a registered M(modelops.fleet.model_probe) result),
    C(modelops_probe_pass_ratio{model,suite}), C(modelops_probe_passed{model,suite}),
    C(modelops_probe_latency_p50_seconds{model,suite}) and
    C(modelops_probe_latency_p90_seconds{model,suite}) (and the baseline's, when the probe
    compared with one). Without O(probe), the probe metrics already in the file are kept.
  - With O(steps) (the C(step) each step module of the upgrade returned),
    C(modelops_upgrade_step_seconds{model,step}) (the seconds the step's calls measured
    themselves, added up per step) and C(modelops_upgrade_step_success{model,step}). Without
    O(steps), the step metrics already in the file are kept.
  - The file is written through a temporary file in the same directory and renamed over
    the old one, so the collector never reads half a file. It is rewritten, and the task
    reports a change, only when its content changes; nothing in it depends on when the
    module runs.
  - Runs on the target with the Python standard library only.
attributes:
  check_mode:
    details: Reports whether the file would change and writes nothing.
  diff_mode:
    support: full
    details: The old and the new content of the file.
options:
  path:
    description:
      - The metrics file. Its name must end in C(.prom) (the textfile collector reads only
        those). Its directory is created (mode 0755) when missing.
    type: path
    default: /var/lib/node_exporter/textfile_collector/modelops_fleet.prom
  model_name:
    description: Describe only this model. All models under O(model_root) when omitted.
    type: str
  result:
    description:
      - Result of the last upgrade of O(model_name), for example from the
        C(model_upgrade_status) fact - V(upgraded) (success 1), V(failed) or V(rolled_back)
        (success 0).
      - When omitted, the result is taken from the ledger - V(upgraded) after an activation,
        V(rolled_back) after a rollback (an activation whose reason starts with C(rollback)).
    type: str
    choices: [upgraded, failed, rolled_back]
  time:
    description:
      - When the last upgrade ended, in epoch seconds or as a UTC ISO 8601 time
        (C(2026-01-15T10:00:00Z)).
      - Defaults to the time of the last activation or rollback in the ledger. Give it with
        O(result=failed) when the failed attempt switched nothing (and so wrote no ledger event).
    type: str
  probe:
    description:
      - A registered result of M(modelops.fleet.model_probe) - its C(probes), C(latency),
        C(suite_name) and C(baseline) are used.
      - Requires O(model_name).
    type: dict
  steps:
    description:
      - The C(step) of the registered results of the upgrade's step modules
        (M(modelops.fleet.model_sync), M(modelops.fleet.model_switch),
        M(modelops.fleet.model_probe), ...) - each a dict with C(name), C(seconds) and
        C(outcome). Calls of the same step add up.
      - Requires O(model_name).
    type: list
    elements: dict
  mode:
    description: File mode of the metrics file.
    type: raw
    default: "0644"
  fail_on_error:
    description:
      - With V(false), a metrics file that cannot be written (or a ledger that cannot be read)
        does not fail the task; the task warns with the reason and returns C(written=false).
      - The roles use V(false), so that reporting never fails or rolls back an upgrade.
    type: bool
    default: true
seealso:
  - module: modelops.fleet.model_info
  - module: modelops.fleet.model_probe
notes:
  - The textfile collector must be enabled in node_exporter with
    C(--collector.textfile.directory) pointing at the directory of O(path).
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.model_store
"""

EXAMPLES = r"""
- name: Publish what the host serves and how the upgrade went
  modelops.fleet.model_metrics:
    model_name: qwen3-4b-instruct
    result: "{{ 'upgraded' if model_upgrade_status == 'upgraded' else 'failed' }}"
    probe: "{{ model_upgrade_probe }}"

- name: Keep the metrics current (e.g. from a status play), from the ledger alone
  modelops.fleet.model_metrics:
    path: /var/lib/prometheus/node-exporter/modelops_fleet.prom
"""

RETURN = r"""
path:
  description: The metrics file.
  returned: always
  type: str
  sample: /var/lib/node_exporter/textfile_collector/modelops_fleet.prom
written:
  description: Whether the file now holds these metrics (false in check mode, or when it could not be written with O(fail_on_error=false)).
  returned: always
  type: bool
content:
  description: The metrics written (or, in check mode, that would be written).
  returned: success
  type: str
  sample: |
    # HELP modelops_model_info The model version a host serves (current link).
    # TYPE modelops_model_info gauge
    modelops_model_info{model="qwen3-4b-instruct",variant="gguf-q4_k_m",version="2507"} 1
models:
  description: Per model, C(current), C(previous), C(last_upgrade) (C(result), C(success), C(time)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: qwen3-4b-instruct
      current: 2507/gguf-q4_k_m
      previous: 2504/gguf-q4_k_m
      last_upgrade: {result: upgraded, success: true, time: 1752580800.0}
step:
  description:
    - This call as a step of a rollout, in its own words - the rollout report and
      M(modelops.fleet.model_metrics) read it. C(name) is the step (metrics); C(seconds) what the
      work took on the host, without Ansible's round trip; C(outcome) is ok, changed or failed;
      C(phases) the parts the call timed (its C(timing)).
  returned: always
  type: dict
  sample: {name: metrics, outcome: changed, started: 1765029600.123, seconds: 2.417, phases: {}}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._files import atomic_write
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError
from ansible_collections.modelops.fleet.plugins.module_utils._metrics import MetricsError, collect
from ansible_collections.modelops.fleet.plugins.module_utils._specs import model_store_spec
from ansible_collections.modelops.fleet.plugins.module_utils._step import account


class Metrics(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params

    def run(self):
        p = self.p
        path = p["path"]
        if not os.path.basename(path).endswith(".prom"):
            raise MetricsError("path %s must end in .prom: node_exporter's textfile collector reads "
                               "only *.prom files" % path)
        content, models = collect(p, self.module.warn)
        try:
            with open(path, "r") as f:
                before = f.read()
        except FileNotFoundError:
            before = None
        except (OSError, UnicodeDecodeError) as e:
            raise MetricsError("cannot read the metrics file %s: %s" % (path, e))
        changed = before != content
        result = dict(changed=changed, path=path, content=content, models=models)
        if self.module._diff:
            result["diff"] = {"before": before or "", "after": content,
                              "before_header": path, "after_header": path}
        if changed and not self.module.check_mode:
            self.write(path, content)
        if os.path.exists(path) and not self.module.check_mode:
            file_args = self.module.load_file_common_arguments(dict(path=path, mode=p["mode"]))
            result["changed"] = self.module.set_fs_attributes_if_different(file_args, result["changed"])
        return result

    def write(self, path, content):
        try:
            atomic_write(path, content.encode("utf-8"), mode=0o644)
        except OSError as e:
            raise MetricsError("cannot write the metrics file %s: %s" % (path, e))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model_store_spec(),
            path=dict(type="path", default="/var/lib/node_exporter/textfile_collector/modelops_fleet.prom"),
            model_name=dict(type="str"),
            result=dict(type="str", choices=["upgraded", "failed", "rolled_back"]),
            time=dict(type="str"),
            probe=dict(type="dict"),
            steps=dict(type="list", elements="dict"),
            mode=dict(type="raw", default="0644"),
            fail_on_error=dict(type="bool", default=True),
        ),
        required_by=dict(probe="model_name", result="model_name", time="model_name", steps="model_name"),
        supports_check_mode=True,
    )
    account(module, "metrics")
    try:
        result = Metrics(module).run()
    except (MetricsError, HostStateError) as e:
        if module.params["fail_on_error"]:
            module.fail_json(msg=str(e))
        module.warn("metrics not written: %s" % e)
        module.exit_json(changed=False, written=False, path=module.params["path"], msg=str(e))
    result["written"] = not module.check_mode
    module.exit_json(**result)


if __name__ == "__main__":
    main()
