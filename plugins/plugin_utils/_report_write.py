# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout report's writer: a new directory per run with report.json, junit.xml and
report.html (each written atomically), and the `latest` link to it.

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

from ansible_collections.modelops.fleet.plugins.module_utils._files import atomic_write
from ansible_collections.modelops.fleet.plugins.plugin_utils._report_render import html_page, junit_xml


def write_reports(report, report_dir, started, playbook):
    """Write report.json, junit.xml and report.html into a new run directory; point
    `latest` at it. Returns the run directory."""
    report_dir = os.path.abspath(os.path.expanduser(report_dir))
    os.makedirs(report_dir, exist_ok=True)
    stamp = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(playbook or "run"))[0]) or "run"
    name = "%s-%s" % (stamp, base)
    run_dir = os.path.join(report_dir, name)
    n = 1
    while True:
        try:
            os.mkdir(run_dir)
            break
        except FileExistsError:
            n += 1
            run_dir = os.path.join(report_dir, "%s-%d" % (name, n))
    atomic_write(os.path.join(run_dir, "report.json"),
                 (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    atomic_write(os.path.join(run_dir, "junit.xml"), junit_xml(report))
    atomic_write(os.path.join(run_dir, "report.html"), html_page(report).encode("utf-8"))
    latest = os.path.join(report_dir, "latest")
    tmp = os.path.join(report_dir, ".latest-%d" % os.getpid())
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.basename(run_dir), tmp)
        if os.path.isdir(latest) and not os.path.islink(latest):
            shutil.rmtree(latest)
        os.replace(tmp, latest)
    except OSError:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if os.path.islink(latest):
            os.unlink(latest)
        elif os.path.isdir(latest):
            shutil.rmtree(latest)
        shutil.copytree(run_dir, latest)
    return run_dir
