# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A release mirror on a test host's 127.0.0.1: throttled (the integration suite's resume
test) or misbehaving on purpose (the adversarial suite).

    python3 mirror_server.py ROOT PORT MODE [RATE]

Small files are always served honestly from ROOT. Files ending in .gguf are served
according to MODE:
  honest    the file, with Range support, at RATE bytes/s (0: as fast as possible)
  endless   no Content-Length, random bytes for ever (more than the manifest declares)
  stall     the declared Content-Length, the first MiB, then nothing (the connection stays open)
  drip      the file, 64 KiB every second: never idle long enough for a socket timeout
Every request is logged to stderr as "GET <path> range=<Range header>".
"""

from __future__ import annotations

import http.server
import os
import sys
import time

ROOT, PORT, MODE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
RATE = int(sys.argv[4]) if len(sys.argv) > 4 else 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        sys.stderr.write("GET %s range=%s\n" % (self.path, self.headers.get("Range")))
        sys.stderr.flush()

    def do_GET(self):
        path = os.path.join(ROOT, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        if not path.endswith(".gguf") or MODE == "honest":
            self.send_file(path, size, RATE if path.endswith(".gguf") else 0)
        elif MODE == "endless":
            self.send_response(200)
            self.end_headers()
            block = os.urandom(1 << 16)
            while True:
                self.wfile.write(block)
        elif MODE == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(path, "rb") as f:
                self.wfile.write(f.read(1 << 20))
            self.wfile.flush()
            time.sleep(3600)
        elif MODE == "drip":
            self.send_file(path, size, 1 << 16, tick=1.0)

    def send_file(self, path, size, rate, tick=0.1):
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                chunk = f.read(int(rate * tick) if rate else 1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)
                if rate:
                    time.sleep(tick)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
