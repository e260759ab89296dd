# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# When run from a checkout (scripts/test.sh), .collections/ansible_collections/modelops/fleet
# links to the checkout; when run by ansible-test, the collection root is already importable.
_COLLECTIONS = os.path.join(REPO, ".collections")
if os.path.isdir(_COLLECTIONS) and _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


class StubEngine(object):
    """A stand-in OpenAI-compatible server on 127.0.0.1 for unit tests of the HTTP logic.

    The real llama-server is exercised by the integration tests and molecule; this stub
    lets unit tests force states a real engine passes through too briefly to test
    (503 while loading, a wrong model name, an API key check).
    """

    def __init__(self, loading_polls=0, models=("smollm2",), api_key=None, reply="Paris."):
        self.loading_polls = loading_polls
        self.models = list(models)
        self.api_key = api_key
        self.reply = reply
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self):
                if stub.api_key is None:
                    return True
                return self.headers.get("Authorization") == "Bearer " + stub.api_key

            def do_GET(self):
                stub.requests.append(("GET", self.path, dict(self.headers)))
                if self.path == "/health":
                    if stub.loading_polls > 0:
                        stub.loading_polls -= 1
                        return self._send(503, {"error": {"message": "Loading model"}})
                    return self._send(200, {"status": "ok"})
                if not self._authorized():
                    return self._send(401, {"error": {"message": "Invalid API Key"}})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list",
                                            "data": [{"id": m} for m in stub.models]})
                return self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(("POST", self.path, body))
                if not self._authorized():
                    return self._send(401, {"error": {"message": "Invalid API Key"}})
                if self.path == "/v1/chat/completions":
                    return self._send(200, {"model": body.get("model"), "choices": [
                        {"message": {"role": "assistant", "content": stub.reply}}]})
                return self._send(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_engine():
    return StubEngine


def run_module(name, args, tmp_path):
    """Run a module of this collection as Ansible runs it: a process reading its args file."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p])
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.modelops.fleet.plugins.modules." + name,
         str(args_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=120,
        check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc=%d): %s %s"
                             % (name, proc.returncode, proc.stdout, proc.stderr))


@pytest.fixture
def module_runner(tmp_path):
    def _run(_module, **args):
        return run_module(_module, args, tmp_path)
    return _run


sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
from suites import gpg_test_keys  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory):
    yield from gpg_test_keys(tmp_path_factory)
