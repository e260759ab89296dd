# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run upgrade.yml (or rollback.yml, status.yml) the way AWX does: through ansible-runner.

AWX runs a job template by handing ansible-runner a private data directory (project,
inventory, extra vars, env) and reading back the events: the play recap and the data the
playbook published with ``set_stats``. This entry point does the same, so a scheduler,
a CI job or a test gets the rollout summary as data instead of scraping output::

    python tools/fleet_run.py upgrade -i inventories/prod -e model_version=2507 --json summary.json

    from fleet_run import run_playbook
    result = run_playbook("upgrade", ["inventories/prod"], {"model_version": "2507"})
    result["summary"]["failed"]   # hosts whose upgrade failed, [] when all went well

Exit code: 0 when the run succeeded, 2 when hosts failed (the rollout summary says why;
unreachable hosts are failed hosts there), 4 when hosts were unreachable outside a
rollout's accounting, 1 for anything else: bad input, or a refusal on the controller
(a bad signature, an older release) before any host was touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.dirname(HERE)
PLAYBOOKS = ("upgrade", "rollback", "status", "publish")
# What a playbook publishes with set_stats, by playbook.
SUMMARY_KEYS = {"upgrade": "modelops_rollout", "rollback": "modelops_rollback", "status": "modelops_status"}


def _playbook_path(playbook):
    if os.path.isfile(playbook):
        return os.path.abspath(playbook)
    name = playbook[len("modelops.fleet."):] if playbook.startswith("modelops.fleet.") else playbook
    path = os.path.join(COLLECTION, "playbooks", name + ".yml")
    if not os.path.isfile(path):
        raise ValueError("playbook %r: no such file and not one of %s" % (playbook, ", ".join(PLAYBOOKS)))
    return path


def _changed(stats):
    changed = (stats or {}).get("changed") or {}
    return sorted(h for h, n in changed.items() if n)


def _ee_options(image, mounts):
    """ansible-runner's process isolation options for running in the execution environment
    image: podman, the host's network (the hosts are reached as from the controller), and
    every mount (path or path:ro) at the same path inside."""
    volumes = []
    for m in mounts or []:
        path, dummy, mode = m.partition(":")
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(path):
            raise ValueError("cannot mount %s into the execution environment: no such file or directory" % path)
        volumes.append("%s:%s:%s" % (path, path, "ro" if mode == "ro" else "rw"))
    return {"process_isolation": True, "process_isolation_executable": "podman", "container_image": image,
            "container_volume_mounts": volumes,
            # root inside: the mounted keys and files keep the controller's owners
            "container_options": ["--network=host", "--user=root"]}


def run_playbook(playbook, inventories, extravars=None, private_data_dir=None, envvars=None,
                 check=False, limit=None, verbosity=0, quiet=True, container_image=None, mounts=()):
    """Run one of the collection's playbooks through ansible-runner; return what AWX would see.

    With container_image, it runs inside that execution environment (podman, as AWX runs
    a job in its EE): the playbook is the collection's as installed in the image
    (modelops.fleet.<name>), and the inventories and mounts are mounted at their paths.

    Returns a dict: status (successful/failed/...), rc, summary (the set_stats data the
    playbook published, e.g. modelops_rollout), stats (the play recap per host:
    ok/changed/failures/dark/...), changed_hosts, unreachable_hosts, failed_hosts,
    artifact_dir (events, stdout, the job's files), command (what ansible-runner ran)
    and stdout (the job's output text).
    """
    import ansible_runner  # imported here: the module docs and --help need no ansible-runner

    path = _playbook_path(playbook)
    name = os.path.splitext(os.path.basename(path))[0]
    own_dir = private_data_dir is None
    pdd = private_data_dir or tempfile.mkdtemp(prefix="modelops-runner-")
    os.makedirs(pdd, exist_ok=True)
    env = {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    inventories = [os.path.abspath(i) for i in inventories]
    isolation = {}
    ident = uuid.uuid4().hex
    cmdline = ["--check", "--diff"] if check else []
    if container_image:
        # The inventories are controller files as well: mounted read-only at their paths
        # (unless a mount given already holds them).
        mounts = list(mounts or [])
        held = [os.path.abspath(m.partition(":")[0]) for m in mounts]
        for inv in inventories:
            if not any(inv == h or inv.startswith(h.rstrip("/") + "/") for h in held):
                mounts.append(inv + ":ro")
        isolation = _ee_options(container_image, mounts)
        # The EE's installed collection, not this checkout; its rollout report with the job's artifacts.
        path = "modelops.fleet." + name
        os.makedirs(os.path.join(pdd, "project"), exist_ok=True)
        # In a container ansible-runner always passes its own inventory directory, as AWX
        # writes it there: an empty one, and the real inventories given in order with -i.
        os.makedirs(os.path.join(pdd, "inventory"), exist_ok=True)
        with open(os.path.join(pdd, "inventory", "hosts"), "w") as f:
            f.write("# fleet_run.py: the inventories are given with -i\n")
        for inv in inventories:
            cmdline += ["-i", inv]
        inventories = None
        env.update({"ANSIBLE_CALLBACKS_ENABLED": "modelops.fleet.rollout_report",
                    # the job's own artifact directory, as the job's events and stdout
                    "MODELOPS_REPORT_DIR": "/runner/artifacts/%s/rollout-reports" % ident})
        project_dir = None
    else:
        # The collection's own ansible.cfg (when run from a checkout) makes the collection and
        # its settings visible as in `ansible-playbook` from the checkout; AWX uses the project's.
        cfg = os.path.join(COLLECTION, "ansible.cfg")
        if os.path.isfile(cfg) and "ANSIBLE_CONFIG" not in os.environ:
            env["ANSIBLE_CONFIG"] = cfg
        project_dir = COLLECTION
    env.update(envvars or {})
    r = ansible_runner.run(
        private_data_dir=pdd, project_dir=project_dir, playbook=path,
        inventory=inventories, extravars=dict(extravars or {}),
        envvars=env, cmdline=" ".join(shlex.quote(a) for a in cmdline) or None, limit=limit, verbosity=verbosity, quiet=quiet,
        suppress_env_files=True, ident=ident, **isolation)
    summary = {}
    for event in r.events:
        if event.get("event") == "playbook_on_stats":
            summary = (event.get("event_data") or {}).get("artifact_data") or {}
    stats = r.stats or {}
    stdout = ""
    try:
        with open(os.path.join(r.config.artifact_dir, "stdout")) as f:
            stdout = f.read()
    except OSError:
        pass
    result = {
        "playbook": path,
        "status": r.status,
        "rc": r.rc,
        "summary": summary.get(SUMMARY_KEYS.get(name, ""), summary),
        "stats": stats,
        "changed_hosts": _changed(stats),
        "failed_hosts": sorted((stats.get("failures") or {}).keys()),
        "unreachable_hosts": sorted((stats.get("dark") or {}).keys()),
        "artifact_dir": r.config.artifact_dir,
        "command": list(getattr(r.config, "command", None) or []),
        "stdout": stdout,
    }
    if own_dir and r.rc == 0 and os.environ.get("MODELOPS_RUNNER_KEEP") != "1":
        result["artifact_dir"] = None
        shutil.rmtree(pdd, ignore_errors=True)
    return result


def exit_code(result):
    if result["rc"] == 0:
        return 0
    summary = result.get("summary") or {}
    # The controller's own plays (resolve, verify, plan, summary) run on localhost: a
    # failure there alone is a refusal before any host was touched.
    managed_failed = [h for h in result["failed_hosts"] if h != "localhost"]
    if summary.get("failed") or managed_failed:
        return 2
    if result["unreachable_hosts"]:
        return 4
    return 1


def _extravars(values):
    out = {}
    for v in values or []:
        if v.startswith("@"):
            with open(v[1:]) as f:
                out.update(json.load(f))
        elif v.lstrip().startswith("{"):
            out.update(json.loads(v))
        elif "=" in v:
            k, val = v.split("=", 1)
            out[k] = val
        else:
            raise ValueError("extra var %r: use key=value, a JSON object or @file.json" % v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("playbook", help="upgrade, rollback, status, publish, or a playbook path")
    ap.add_argument("-i", "--inventory", action="append", required=True, help="inventory (repeatable)")
    ap.add_argument("-e", "--extra-vars", action="append", default=[],
                    help="key=value, a JSON object, or @file.json (repeatable)")
    ap.add_argument("--private-data-dir", help="ansible-runner's private data directory (default: a temporary one)")
    ap.add_argument("--limit")
    ap.add_argument("--check", action="store_true", help="print the plan, change nothing")
    ap.add_argument("--json", dest="json_out", help="write the result (without stdout) to this file")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("--show-output", action="store_true", help="stream the playbook output")
    ap.add_argument("--ee", metavar="IMAGE", help="run inside this execution environment (podman), as AWX does")
    ap.add_argument("--mount", action="append", default=[], metavar="PATH[:ro]",
                    help="with --ee: a controller path the run needs (keys, repository, catalog), mounted at the same path")
    args = ap.parse_args(argv)
    try:
        extravars = _extravars(args.extra_vars)
        result = run_playbook(args.playbook, args.inventory, extravars, args.private_data_dir,
                              check=args.check, limit=args.limit, verbosity=args.verbose,
                              quiet=not args.show_output, container_image=args.ee, mounts=args.mount)
    except (ValueError, OSError) as e:
        sys.stderr.write("fleet_run: %s\n" % e)
        return 1
    public = dict((k, v) for k, v in result.items() if k != "stdout")
    text = json.dumps(public, indent=2, sort_keys=True, default=str)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    if not args.show_output and result["rc"] != 0:
        sys.stderr.write(result["stdout"][-4000:])
    sys.stdout.write(text + "\n")
    return exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
