# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A client of one host during a rollout: asks the same question through the clients'
address again and again (a new connection each time, as most clients do) and keeps, per
request, when it was sent and answered, whether it succeeded and what the answer was.

    with ClientPoller(port, model) as poller:
        ... rollout ...
    poller.summary()  # failed requests, longest gap between answers, the distinct answers
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

QUESTION = "What is the capital of France? Answer in one word."


def ask(port, model, question=QUESTION, timeout=10.0, max_tokens=8, api_key=None):
    """The answer of the engine behind 127.0.0.1:port (temperature 0: the same model gives the
    same answer), or raises."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}],
                       "max_tokens": max_tokens, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())["choices"][0]["message"]["content"]


class ClientPoller(threading.Thread):
    def __init__(self, port, model, interval=0.05, timeout=10.0, api_key=None):
        super().__init__(daemon=True)
        self.port, self.model, self.interval, self.timeout = port, model, interval, timeout
        self.api_key = api_key
        self.samples = []  # (sent, answered, ok, answer or error)
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            t0 = time.time()
            try:
                answer, ok = ask(self.port, self.model, timeout=self.timeout, api_key=self.api_key), True
            except Exception as e:  # pylint: disable=broad-except
                answer, ok = "%s: %s" % (type(e).__name__, e), False
            self.samples.append((t0, time.time(), ok, answer))
            self.stop_event.wait(self.interval)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(self.timeout + 5)

    def summary(self):
        """requests, failed, longest_gap_s (between two consecutive answers: a slow answer shows
        here too), longest_outage_s (first failed request to the next answer), answers (count
        per distinct answer), errors (the first few)."""
        oks = [s[1] for s in self.samples if s[2]]
        gaps = [b - a for a, b in zip(oks, oks[1:])]
        # outages: from the sending of the first failed request of a run of failures to the
        # next answer (0 without a failed request; an answer that is slow is not one)
        outages, first_failed = [], None
        for sent, answered, ok, dummy in self.samples:
            if not ok and first_failed is None:
                first_failed = sent
            elif ok and first_failed is not None:
                outages.append(answered - first_failed)
                first_failed = None
        if first_failed is not None and self.samples:
            outages.append(self.samples[-1][1] - first_failed)
        answers = {}
        for s in self.samples:
            if s[2]:
                answers[s[3]] = answers.get(s[3], 0) + 1
        return {"requests": len(self.samples), "failed": sum(1 for s in self.samples if not s[2]),
                "longest_gap_s": round(max(gaps), 3) if gaps else None,
                "longest_outage_s": round(max(outages), 3) if outages else 0.0, "answers": answers,
                "errors": [s[3] for s in self.samples if not s[2]][:5]}
