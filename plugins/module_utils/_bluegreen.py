# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two engine instances on one host (the blue/green mode): where things are, and what
serves.

- ``<model_dir>/blue`` and ``<model_dir>/green``: the release each instance serves, links
  of the form ``<version>/<variant>`` like ``current``; the instance's unit enters it when it
  starts, so ``/proc/<pid>/cwd`` says what it loaded.
- ``<service>@blue.service`` and ``<service>@green.service`` (one template unit): the
  engine, listening on the Unix socket ``/run/<service>/<color>/engine.sock`` only.
- ``/var/lib/modelops/<service>/serving.sock``: a link to the serving instance's socket.
  ``<service>-front.socket`` holds the clients' address (the port clients always used) and
  hands it to ``<service>-front.service``, ``systemd-socket-proxyd`` with that link as its
  backend: it connects there once per new client connection, so renaming the link moves
  new connections at once, and connections already open stay with the instance they
  reached until they end. No proxy configuration is rewritten or reloaded.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    HostStateError, read_link, release_rel, switch_link,
)
from ansible_collections.modelops.fleet.plugins.module_utils._openai_api import unix_url

COLORS = ("blue", "green")
STATE_ROOT = "/var/lib/modelops"
RUN_ROOT = "/run"
# /proc/net/unix: St 03 is SS_CONNECTED (an accepted or connecting socket)
_CONNECTED = "03"


class Layout(object):
    def __init__(self, service, model_root, model_name, state_root=STATE_ROOT, run_root=RUN_ROOT):
        self.service = service
        self.model_dir = os.path.join(model_root, model_name)
        self.run_dir = os.path.join(run_root, service)
        self.serving_link = os.path.join(state_root, service, "serving.sock")

    @staticmethod
    def other(color):
        return COLORS[1] if color == COLORS[0] else COLORS[0]

    def unit(self, color):
        return "%s@%s.service" % (self.service, color)

    def sock(self, color):
        return os.path.join(self.run_dir, color, "engine.sock")

    def url(self, color):
        return unix_url(self.sock(color))

    def link(self, color):
        return os.path.join(self.model_dir, color)

    def exists(self):
        return os.path.lexists(self.serving_link)

    def serving(self):
        """The color the clients' connections go to, or None (no link yet: a new host, or one
        that is still in the in-place layout)."""
        try:
            target = os.readlink(self.serving_link)
        except OSError:
            return None
        for color in COLORS:
            if target == self.sock(color):
                return color
        raise HostStateError("%s points to %s, not to an instance's socket (%s): point it at the serving "
                             "instance's socket or remove it" % (
                                 self.serving_link, target, " or ".join(self.sock(c) for c in COLORS)))

    def set_serving(self, color):
        """Point the serving link at color's socket atomically (rename over the old link)."""
        directory = os.path.dirname(self.serving_link)
        tmp = os.path.join(directory, ".serving.sock.new-%d" % os.getpid())
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.sock(color), tmp)
            os.replace(tmp, self.serving_link)
        except OSError as e:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise HostStateError("cannot point %s at %s: %s" % (self.serving_link, self.sock(color), e.strerror))

    def release(self, color):
        """<version>/<variant> that color's link points to, or None."""
        target = read_link(self.model_dir, color)
        return release_rel(*target) if target else None

    def set_release(self, color, rel):
        switch_link(self.model_dir, color, rel)

    def drop_release(self, color):
        path = self.link(color)
        if os.path.islink(path):
            os.unlink(path)

    def connections(self, color, proc_net_unix="/proc/net/unix"):
        """Open connections to color's socket (accepted by the engine and not closed yet)."""
        path = self.sock(color)
        count = 0
        try:
            with open(proc_net_unix) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 8 and fields[5] == _CONNECTED and fields[7] == path:
                        count += 1
        except OSError:
            return 0
        return count


def meminfo_available(path="/proc/meminfo"):
    """MemAvailable in bytes (None if the kernel does not say)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def gpu_free():
    """Free memory of the emptiest GPU in bytes, or None without nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    proc = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"], check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return max(int(x) for x in proc.stdout.split()) * 1024 * 1024
    except ValueError:
        return None


def fit_shortfall(release_bytes, factor, available, gpu):
    """'' when a second engine of a release of release_bytes fits (factor times its size in
    available memory and, when gpu is known, in free GPU memory), else why not. factor 0:
    always fits."""
    need = int(release_bytes * factor)
    if factor <= 0:
        return ""
    short = []
    if available is not None and available < need:
        short.append("%d MiB of memory available" % (available // 1048576))
    if gpu is not None and gpu < need:
        short.append("%d MiB free on the GPU" % (gpu // 1048576))
    if not short:
        return ""
    return "two engines do not fit: a second one needs %d MiB (%s x the release's size), the host has %s" % (
        need // 1048576, factor, " and ".join(short))
