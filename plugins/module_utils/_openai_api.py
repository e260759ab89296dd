# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Minimal client for an OpenAI-compatible inference API (llama-server, vLLM).

Standard library only: it runs on target hosts, including edge devices that have no
``requests``. Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error

from ansible.module_utils.urls import open_url


class ApiError(Exception):
    """The API could not be reached or answered with an error status."""

    def __init__(self, msg, status=None, body=None):
        super(ApiError, self).__init__(msg)
        self.status = status
        self.body = body


UNIX_PREFIX = "unix:"


def unix_url(path):
    """The base URL of an engine that listens on the Unix socket at path (blue/green
    instances do): ``unix:/run/modelops-inference/blue/engine.sock``."""
    return UNIX_PREFIX + path


class OpenAIClient(object):
    def __init__(self, base_url, api_key=None, timeout=30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # unix:<path>: HTTP over that socket (the Host header says localhost)
        self.unix_socket = None
        self.http_base = self.base_url
        if self.base_url.startswith(UNIX_PREFIX):
            self.unix_socket = self.base_url[len(UNIX_PREFIX):]
            self.http_base = "http://localhost"

    def _request(self, method, path, payload=None, timeout=None):
        url = self.base_url + path
        data = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        start = time.monotonic()
        try:
            with open_url(self.http_base + path, data=data, headers=headers, method=method,
                          timeout=timeout or self.timeout, follow_redirects="none",
                          use_proxy=False, unix_socket=self.unix_socket) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            body = e.read()
            raise ApiError("%s %s answered HTTP %d: %s" % (
                method, url, e.code, body[:300].decode("utf-8", "replace")),
                status=e.code, body=body)
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiError("%s %s failed: %s" % (method, url, reason))
        elapsed = (time.monotonic() - start) * 1000.0
        return status, body, elapsed

    def health(self):
        """Return the HTTP status of GET /health (503 while a model loads)."""
        try:
            status, dummy, dummy2 = self._request("GET", "/health", timeout=5)
            return status
        except ApiError as e:
            if e.status is not None:
                return e.status
            raise

    def models(self):
        dummy, body, dummy2 = self._request("GET", "/v1/models")
        try:
            data = json.loads(body)
            return [m.get("id") for m in data.get("data", [])]
        except (ValueError, AttributeError) as e:
            raise ApiError("GET %s/v1/models returned no model list: %s" % (self.base_url, e))

    def chat(self, model, messages, max_tokens=64, temperature=0.0, response_format=None,
             timeout=None):
        payload = {"model": model, "messages": messages, "max_tokens": max_tokens,
                   "temperature": temperature}
        if response_format:
            payload["response_format"] = response_format
        dummy, body, elapsed = self._request("POST", "/v1/chat/completions", payload,
                                             timeout=timeout)
        try:
            data = json.loads(body)
            content = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ApiError("POST %s/v1/chat/completions: unexpected answer (%s): %s" % (
                self.base_url, e, body[:300].decode("utf-8", "replace")))
        return content, elapsed, data
