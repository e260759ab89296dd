# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The blue/green layout: which instance the serving link names, its atomic switch, the
release links, and the count of open connections to an instance's socket. The switch of a
real front (systemd-socket-proxyd) is tested on the fleet (test_upgrade_blue_green)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._bluegreen import Layout, meminfo_available
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import HostStateError
from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import OpenAIClient


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "models" / "m" / "2601" / "v").mkdir(parents=True)
    return Layout("svc", str(tmp_path / "models"), "m", state_root=str(tmp_path / "state"), run_root=str(tmp_path / "run"))


def test_the_serving_link_names_the_instance_and_moves_atomically(layout):
    assert layout.serving() is None and not layout.exists()
    layout.set_serving("blue")
    assert layout.serving() == "blue" and os.readlink(layout.serving_link) == layout.sock("blue")
    layout.set_serving("green")
    assert layout.serving() == "green"
    assert sorted(os.listdir(os.path.dirname(layout.serving_link))) == ["serving.sock"]  # no temporary left
    assert layout.unit("green") == "svc@green.service" and layout.other("green") == "blue"
    assert layout.url("blue") == "unix:" + layout.sock("blue")


def test_a_serving_link_to_something_else_is_refused_by_name(layout):
    os.makedirs(os.path.dirname(layout.serving_link))
    os.symlink("/tmp/elsewhere.sock", layout.serving_link)
    with pytest.raises(HostStateError, match="serving.sock points to /tmp/elsewhere.sock, not to an instance's socket"):
        layout.serving()


def test_release_links(layout):
    assert layout.release("blue") is None
    layout.set_release("blue", "2601/v")
    assert layout.release("blue") == "2601/v" and os.readlink(layout.link("blue")) == "2601/v"
    layout.drop_release("blue")
    assert layout.release("blue") is None


def test_open_connections_to_an_instance_are_counted(layout):
    os.makedirs(os.path.dirname(layout.sock("blue")))
    server = socket.socket(socket.AF_UNIX)
    server.bind(layout.sock("blue"))
    server.listen(4)
    try:
        assert layout.connections("blue") == 0
        clients = [socket.socket(socket.AF_UNIX) for dummy in range(2)]
        for c in clients:
            c.connect(layout.sock("blue"))
        accepted = [server.accept()[0] for dummy in clients]
        assert layout.connections("blue") == 2 and layout.connections("green") == 0
        for s in accepted + clients:
            s.close()
        assert layout.connections("blue") == 0
    finally:
        server.close()


def test_the_client_speaks_http_over_a_unix_socket(layout):
    """unix:<path> as the engine's URL (the probes of a blue/green candidate)."""
    os.makedirs(os.path.dirname(layout.sock("green")))
    server = socket.socket(socket.AF_UNIX)
    server.bind(layout.sock("green"))
    server.listen(1)

    def answer():
        conn = server.accept()[0]
        conn.recv(65536)
        body = b'{"data": [{"id": "m"}]}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        conn.close()
    t = threading.Thread(target=answer)
    t.start()
    try:
        assert OpenAIClient(layout.url("green"), timeout=5).models() == ["m"]
    finally:
        t.join(5)
        server.close()


def test_meminfo_available(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert meminfo_available(str(f)) == 2048 * 1024
    f.write_text("MemTotal: 100 kB\n")
    assert meminfo_available(str(f)) is None
