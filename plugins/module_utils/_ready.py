# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting until an engine really serves: health, model list, one completion, the unit's
state and crash count, the journal's error lines on failure, and the attestation of what
the engine was started from. Used by inference_ready (the wait alone) and model_switch
(the wait after its restart).

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import re
import subprocess
import time

from ansible_collections.modelops.fleet.plugins.module_utils._attest import (
    AttestError, attest_unit, unit_number, unit_property, unit_state,
)
from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import ApiError, OpenAIClient


class EngineNotReady(Exception):
    pass


def systemctl(*args):
    """(rc, stdout, stderr) of systemctl with args."""
    proc = subprocess.run(["systemctl"] + list(args), check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def restart_unit(unit):
    """Restart unit as an upgrade does: reload systemd first when its unit file changed, and
    reset a unit that crash-looped into systemd's start limit (it refuses a restart until
    then). Raises EngineNotReady when systemctl fails."""
    if unit_property(unit, "NeedDaemonReload") == "yes":
        rc, out, err = systemctl("daemon-reload")
        if rc != 0:
            raise EngineNotReady("systemctl daemon-reload failed (rc %d): %s" % (rc, err or out))
    systemctl("reset-failed", unit)
    rc, out, err = systemctl("restart", unit)
    if rc != 0:
        raise EngineNotReady("systemctl restart %s failed (rc %d): %s" % (unit, rc, err or out))


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
    """Waits as the module's engine API and ready options say (doc fragments engine_api and
    ready), for unit and, when serves is set, attests that the unit's process was started
    from what serves points to."""

    def __init__(self, module, unit=None, serves=None, params=None):
        self.module = module
        # params: the engine API and ready options, when they are not the module's own
        self.p = p = params if params is not None else module.params
        self.client = OpenAIClient(p["url"], api_key=p["api_key"], timeout=30)
        self.served_name = p["served_name"]
        self.unit = unit
        self.serves = serves

    def unit_state(self):
        return unit_state(self.unit) if self.unit else None

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
        n = self.p["journal_lines"]
        journal = self.journal(max(n, _ERROR_SCAN_LINES))
        errors = engine_errors(journal)
        if errors:
            msg = "%s\nEngine error: %s" % (msg, " | ".join(errors))
        tail = "\n".join(journal.splitlines()[-n:]) if n > 0 else ""
        if tail:
            msg = "%s\nLast journal lines of %s:\n%s" % (msg, self.unit, tail)
        raise EngineNotReady(msg)

    def poll(self, result):
        """One look at the engine: '' when it serves (result gets the models, the completion
        and its latency), else what it answered instead."""
        p = self.p
        try:
            status = self.client.health()
            if status != 200:
                return "/health answered HTTP %d (model still loading?)" % status
            models = self.client.models()
            result["models"] = models
            if self.served_name not in models:
                return "/v1/models lists %s, not %r" % (models, self.served_name)
            if p["completion"]:
                text, latency, dummy = self.client.chat(
                    self.served_name, [{"role": "user", "content": p["prompt"]}], max_tokens=p["max_tokens"])
                result.update(completion=text, latency_ms=round(latency, 1))
        except ApiError as e:
            return str(e)
        result["ready"] = True
        return ""

    def attest(self, result):
        if self.serves:
            try:
                result["served_dir"] = attest_unit(self.unit, self.serves)["served_dir"]
            except AttestError as e:
                raise EngineNotReady(str(e))
        return result

    def serves_now(self):
        """The engine serves now, started from what serves points to (one look, no wait):
        the result as wait() returns it, or EngineNotReady saying what was seen instead."""
        result = {"ready": False, "models": []}
        last = self.poll(result)
        if last:
            raise EngineNotReady("engine at %s does not serve %r now: %s" % (self.p["url"], self.served_name, last))
        return self.attest(result)

    def wait(self):
        p = self.p
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
            last = self.poll(result)
            if not last:
                break
            time.sleep(1)
        result["elapsed"] = round(time.monotonic() - start, 2)
        if not result["ready"]:
            self.fail_with_journal(
                "engine at %s did not become ready serving %r within %ds; last: %s"
                % (p["url"], self.served_name, p["timeout"], last))
        return self.attest(result)
