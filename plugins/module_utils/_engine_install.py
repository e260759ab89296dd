# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host-side half of the plan's drift check: does the engine's installation on this host
(system user, directories, files with their content, mode and owner, executables, unit
enabled at boot) match what the inference_server role would install? The controller renders
the role's templates and hashes them (the role's endpoint.yml); this compares, so that a
host with nothing to configure costs no configuration round trip at all."""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible_collections.modelops.fleet.plugins.module_utils._attest import unit_state
from ansible_collections.modelops.fleet.plugins.module_utils._files import sha256_file

# The shape model_info's engine_install option takes (argument_spec style).
ENGINE_INSTALL_SPEC = dict(
    user=dict(type="str"),
    enabled_unit=dict(type="str"),
    stopped_units=dict(type="list", elements="str", default=[]),
    directories=dict(type="list", elements="path", default=[]),
    executables=dict(type="list", elements="path", default=[]),
    files=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="path", required=True),
        sha256=dict(type="str", required=True),
        mode=dict(type="str", required=True),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
    )),
)


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def file_drift(want):
    """What differs between the file on the host and want (path, sha256, mode, owner,
    group), or None."""
    path = want["path"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "%s is missing" % path
    if not stat.S_ISREG(st.st_mode):
        return "%s is not a regular file" % path
    problems = []
    mode = int(str(want["mode"]), 8)
    if stat.S_IMODE(st.st_mode) != mode:
        problems.append("mode %04o, not %04o" % (stat.S_IMODE(st.st_mode), mode))
    owner = "%s:%s" % (_name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid))
    wanted = "%s:%s" % (want.get("owner") or "root", want.get("group") or "root")
    if owner != wanted:
        problems.append("owned by %s, not %s" % (owner, wanted))
    if sha256_file(path)[0] != want["sha256"]:
        problems.append("its content differs from what the role installs")
    return "%s: %s" % (path, "; ".join(problems)) if problems else None


UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def unit_file_exists(unit):
    """Whether unit (or, for an instance name@x.service, its template name@.service) has a
    unit file: a unit without one is neither active nor enabled (no systemctl call)."""
    names = [unit]
    if "@" in unit:
        names.append(unit.split("@", 1)[0] + "@." + unit.rsplit(".", 1)[-1])
    return any(os.path.exists(os.path.join(d, n)) for d in UNIT_DIRS for n in names)


def engine_drift(want):
    """Everything that differs between the engine's installation on this host and want
    (ENGINE_INSTALL_SPEC), as sentences; empty when nothing does."""
    drift = []
    if want.get("user"):
        try:
            pwd.getpwnam(want["user"])
        except KeyError:
            drift.append("system user %s does not exist" % want["user"])
    drift.extend("directory %s is missing" % d for d in want.get("directories") or [] if not os.path.isdir(d))
    for f in want.get("files") or []:
        problem = file_drift(f)
        if problem:
            drift.append(problem)
    drift.extend("%s is not an executable file" % x for x in want.get("executables") or []
                 if not (os.path.isfile(x) and os.access(x, os.X_OK)))
    if want.get("enabled_unit"):
        state = unit_state(want["enabled_unit"], "is-enabled")
        if state != "enabled":
            drift.append("%s is %s, not enabled at boot" % (want["enabled_unit"], state or "unknown"))
    for unit in want.get("stopped_units") or []:
        # the units of the other layout (inference_server_mode): in_place <-> blue_green
        if not unit_file_exists(unit):
            continue
        active, enabled = unit_state(unit), unit_state(unit, "is-enabled")
        if active in ("active", "activating", "reloading") or enabled == "enabled":
            drift.append("%s is %s and %s: it belongs to the other engine layout (inference_server_mode)"
                         % (unit, active or "unknown", enabled or "unknown"))
    return drift
