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
  timeout:
    description: Seconds to wait in total before failing.
    type: int
    default: 180
  completion:
    description: Whether to require one short real chat completion.
    type: bool
    default: true
  prompt:
    description: User message of the readiness completion.
    type: str
    default: "What is the capital of France? Answer in one word."
  max_tokens:
    description: Token limit of the readiness completion.
    type: int
    default: 16
  unit:
    description:
      - Name of the systemd unit running the engine. When set, a unit that is not active
        fails the wait early, with the unit's last journal lines in the message.
    type: str
  journal_lines:
    description: How many journal lines of O(unit) to include on failure.
    type: int
    default: 20
  max_restarts:
    description:
      - Fail as soon as systemd has restarted O(unit) this many times while waiting
        (a crash loop under C(Restart=on-failure)) instead of waiting for O(timeout).
    type: int
    default: 2
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
"""

import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._attest import AttestError, attest_unit, unit_number
from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError, OpenAIClient
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._specs import engine_api_spec


class EngineNotReady(Exception):
    pass


# "SomeError: what went wrong", bare or behind a logger prefix such as vLLM's
# "(Worker pid=870) ERROR 12-02 01:13:39 [multiproc_executor.py:953] ".
_ERROR_LINE = re.compile(r"(?:^|\] |^\S+ )((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)): (.+)$")
# Wrappers that only point at the real error ("See root cause above").
_WRAPPER = re.compile(r"root cause|see (the )?(stack trace|above)", re.I)
# How far back to look for the engine's own error lines.
_ERROR_SCAN_LINES = 400


def engine_errors(journal, limit=3):
    """The distinct error lines of a journal excerpt that name the cause, newest last."""
    found = []
    for line in journal.splitlines():
        m = _ERROR_LINE.search(line.strip())
        if not m or _WRAPPER.search(m.group(2)):
            continue
        text = "%s: %s" % (m.group(1), m.group(2).strip())
        if text in found:
            found.remove(text)
        found.append(text)
    return found[-limit:]


class ReadinessWaiter(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.client = OpenAIClient(p["url"], api_key=p["api_key"], timeout=30)
        self.served_name = p["served_name"]
        self.unit = p["unit"]

    def unit_state(self):
        if not self.unit:
            return None
        proc = subprocess.run(["systemctl", "is-active", self.unit], check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc.stdout.strip()

    def restarts(self):
        """How often systemd restarted the unit (Restart=on-failure) so far."""
        return unit_number(self.unit, "NRestarts") if self.unit else 0

    def journal(self, lines):
        if not self.unit:
            return ""
        proc = subprocess.run(
            ["journalctl", "-u", self.unit, "-n", str(lines), "--no-pager", "-o", "cat"],
            check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return proc.stdout.strip()

    def fail_with_journal(self, msg):
        n = self.module.params["journal_lines"]
        journal = self.journal(max(n, _ERROR_SCAN_LINES))
        errors = engine_errors(journal)
        if errors:
            msg = "%s\nEngine error: %s" % (msg, " | ".join(errors))
        tail = "\n".join(journal.splitlines()[-n:]) if n > 0 else ""
        if tail:
            msg = "%s\nLast journal lines of %s:\n%s" % (msg, self.unit, tail)
        raise EngineNotReady(msg)

    def wait(self):
        p = self.module.params
        start = time.monotonic()
        deadline = start + p["timeout"]
        last = "no answer yet"
        result = {"ready": False, "models": []}
        # A unit that restarts on failure passes through "activating": only give up on a
        # unit that is definitely down for several consecutive polls.
        down_polls = 0
        restarts_at_start = self.restarts()
        while time.monotonic() < deadline:
            state = self.unit_state()
            crashes = self.restarts() - restarts_at_start
            if crashes >= p["max_restarts"]:
                self.fail_with_journal(
                    "%s crashed and was restarted %d times while waiting for it to serve %r"
                    % (self.unit, crashes, self.served_name))
            if state in ("failed", "inactive"):
                down_polls += 1
                if down_polls >= 3:
                    self.fail_with_journal(
                        "%s is %s: the engine is not running (it crashed or was stopped)"
                        % (self.unit, state))
            else:
                down_polls = 0
            try:
                status = self.client.health()
                if status != 200:
                    last = "/health answered HTTP %d (model still loading?)" % status
                else:
                    models = self.client.models()
                    result["models"] = models
                    if self.served_name not in models:
                        last = "/v1/models lists %s, not %r" % (models, self.served_name)
                    elif not p["completion"]:
                        result["ready"] = True
                        break
                    else:
                        text, latency, dummy = self.client.chat(
                            self.served_name,
                            [{"role": "user", "content": p["prompt"]}],
                            max_tokens=p["max_tokens"])
                        result.update(ready=True, completion=text,
                                      latency_ms=round(latency, 1))
                        break
            except ApiError as e:
                last = str(e)
            time.sleep(1)
        result["elapsed"] = round(time.monotonic() - start, 2)
        if not result["ready"]:
            self.fail_with_journal(
                "engine at %s did not become ready serving %r within %ds; last: %s"
                % (p["url"], self.served_name, p["timeout"], last))
        if p["serves"]:
            try:
                result["served_dir"] = attest_unit(self.unit, p["serves"])["served_dir"]
            except AttestError as e:
                raise EngineNotReady(str(e))
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            engine_api_spec(),
            timeout=dict(type="int", default=180),
            completion=dict(type="bool", default=True),
            prompt=dict(type="str", default="What is the capital of France? Answer in one word."),
            max_tokens=dict(type="int", default=16, no_log=False),
            unit=dict(type="str"),
            journal_lines=dict(type="int", default=20),
            max_restarts=dict(type="int", default=2),
            serves=dict(type="path"),
        ),
        required_by={"serves": "unit"},
        supports_check_mode=True,
    )
    run_and_exit(module, lambda: ReadinessWaiter(module).wait(), EngineNotReady,
                 fail_extra={"ready": False}, exit_extra={"changed": False})


if __name__ == "__main__":
    main()
