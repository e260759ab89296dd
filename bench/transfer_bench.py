# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: moving a signed model release to hosts with model_sync, against rsync and copy.

Everything runs against a fleet of its own (fleet.py, name ``bench``, SSH on 127.0.0.1:24201+,
API ports 25201+) over Ansible's OpenSSH connection, on the same machine and the same data,
interleaved round by round (the order rotates each round) and summarised by the median:

1. Push a ~1 GiB release (one weights file of random bytes plus small tokenizer/config
   files, signed and published with playbooks/publish.yml) to one host and to four hosts
   at once: ``modelops.fleet.model_sync`` (source=push) against ``ansible.posix.synchronize``
   (rsync over ssh) and ``ansible.builtin.copy``.
2. Pull from a mirror on the host's own 127.0.0.1 (``python3 -m http.server``):
   model_sync (source=mirror) against a plain Python urllib download of the same files
   from the same server.
3. A weights-only upgrade (v2 has the same small files and new weights): bytes moved by
   model_sync against the changed bytes and the whole release.
4. A no-op re-run on an installed release: bytes moved and time, per ad-hoc command and
   per task (``ansible.posix.profile_tasks``).

Every round starts from clean hosts (the destination directories are removed, read-only
releases made writable first). The fleet is torn down, the GnuPG agents stopped and the data
under /var/tmp/modelops-bench-transfer/ removed at the end, also when the run fails.
Raw results go to bench/results/transfer.json; the text between the transfer markers of
docs/performance.md is rewritten from them, and docs/transfer.png is drawn (standard library
only: zlib + struct).

Run it with ``bash bench/transfer.sh`` (or ``bash bench/run.sh`` for every benchmark).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _common
from _common import (GIB, REPO, SSH_BATCH_OPTIONS, Ansible, BenchError, Canvas, check_all_ok, container_pid, first_line, fleet,
                     fmt_range, fmt_seconds, fmt_size, loadavg, make_log, read_text, series, summary, utc_now, verdict,
                     write_big_file, write_json)

RESULTS = os.path.join(REPO, "bench", "results", "transfer.json")
PNG = os.path.join(REPO, "docs", "transfer.png")
BEGIN, END = _common.markers("transfer")

FLEET_NAME = "bench"
MODEL, VARIANT = "bench-model", "gguf-q4_k_m"
V1, V2 = "2601", "2602"
WEIGHTS = "model.gguf"

# Host-side paths (inside the bench containers only).
ROOT = "/srv/bench"
RSYNC_DEST = "/srv/rsync-bench"
RSYNC_DEFAULT_DEST = "/srv/rsync-default-bench"
COPY_DEST = "/srv/copy-bench"
PULL_DEST = "/srv/pull-bench"
SFTP_DEST = "/srv/sftp-bench"
RSYNC_RAW_DEST = "/srv/rsync-raw-bench"
MIRROR_DIR = "/srv/bench-mirror"
TOOLS_DIR = "/srv/bench-tools"
MIRROR_PORT = 8898
MIRROR_UNIT = "modelops-bench-mirror"
CLEAN_DIRS = [ROOT, RSYNC_DEST, RSYNC_DEFAULT_DEST, COPY_DEST, PULL_DEST, SFTP_DEST, RSYNC_RAW_DEST]

# Goals from the issue.
RSYNC_THROUGHPUT_GOAL = 0.80   # model_sync throughput / rsync throughput, at least
COPY_TIME_GOAL = 1.0           # model_sync time / copy time, below ("faster than copy")
UPGRADE_BYTES_GOAL = 1.01      # bytes moved / changed bytes, at most
NOOP_BYTES_GOAL = 0
NOOP_SECONDS_GOAL = 1.0        # per host, module (task) time

TOOL_LABELS = {
    "model_sync": "`modelops.fleet.model_sync` (push)",
    "rsync": "`ansible.posix.synchronize` `compress=false` (rsync)",
    "rsync_default": "`ansible.posix.synchronize` defaults (rsync `--compress`)",
    "copy": "`ansible.builtin.copy`",
    "mirror_sync": "`modelops.fleet.model_sync` (`source=mirror`)",
    "urllib": "Python `urllib` download on the host",
}
# Bar colours of docs/transfer.png, in the order of the bars.
CHART_TOOLS = [("model_sync", (31, 119, 180), "blue"), ("rsync", (255, 127, 14), "orange"),
               ("rsync_default", (255, 187, 120), "light orange"), ("copy", (127, 127, 127), "grey")]

HOST_HASH = """import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
"""

HOST_FETCH = """import os, shutil, sys, urllib.request
base, dest = sys.argv[1], sys.argv[2]
for rel in sys.argv[3:]:
    path = os.path.join(dest, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(base + "/" + rel) as resp, open(path, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
"""

NOOP_PLAYBOOK = """---
- name: No-op re-run of model_sync, timed per task by ansible.posix.profile_tasks
  hosts: "{{ bench_hosts }}"
  gather_facts: false
  tasks:
    - name: bench warm-up ping
      ansible.builtin.ping:
    - name: bench model_sync no-op
      modelops.fleet.model_sync:
        src: "{{ bench_src }}"
        model_root: "{{ bench_root }}"
        keyring: "{{ bench_keyring }}"
        trusted_fingerprints: "{{ bench_fingerprints }}"
        catalog: "{{ bench_catalog }}"
      register: bench_noop
    - name: bench floor ping
      ansible.builtin.ping:
    - name: bench check nothing moved
      ansible.builtin.assert:
        that:
          - not bench_noop.changed
          - (bench_noop.bytes_transferred | default(0)) == 0
"""


# --------------------------------------------------------------------------- helpers

def machine_info():
    return _common.machine_info(
        ansible_core=first_line(["ansible", "--version"]),
        openssh=first_line(["ssh", "-V"]),
        rsync_controller=first_line(["rsync", "--version"]),
        podman=first_line(["podman", "--version"]),
    )


def fmt_mbs(nbytes, seconds):
    return "%.0f MB/s" % (nbytes / seconds / 1e6) if seconds else "n/a"


# --------------------------------------------------------------------------- data

def write_small_files(directory):
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": {"tok%d" % i: i for i in range(20000)}}}
    files = {
        "tokenizer.json": tokenizer,
        "tokenizer_config.json": {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}" * 40},
        "config.json": {"architecture": "llama", "context_length": 4096, "quantization": "q4_k_m"},
        "generation_config.json": {"temperature": 0.7, "top_p": 0.8},
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def release_files(directory):
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            out.append({"path": os.path.relpath(p, directory), "size": os.path.getsize(p)})
    return out


# --------------------------------------------------------------------------- ansible

def marker_times(stdout):
    m = re.search(r"BENCHTIME (\d+\.\d+) (\d+\.\d+)", stdout)
    if not m:
        raise BenchError("no BENCHTIME marker in:\n%s" % stdout[-2000:])
    return float(m.group(2)) - float(m.group(1))


# --------------------------------------------------------------------------- fleet

def rx_bytes(pid):
    """Bytes received by the container's network namespace (every interface but lo): what
    really crossed into the host, with SSH, TCP/IP and Ansible's module payloads."""
    total = 0
    for line in read_text("/proc/%d/net/dev" % pid).splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            total += int(data.split()[0])
    return total


def write_inventory(path, hosts, key):
    inv = {"all": {"children": {"bench": {
        "hosts": {h["name"]: {"ansible_port": h["ssh_port"]} for h in hosts},
        "vars": {
            "ansible_host": "127.0.0.1",
            "ansible_user": "root",
            "ansible_connection": "ssh",
            "ansible_ssh_private_key_file": key,
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }}}}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(inv, f, indent=2)  # JSON is YAML


# --------------------------------------------------------------------------- the benchmark

class Bench(object):
    def __init__(self, args, run_dir, log):
        self.args = args
        self.run_dir = run_dir
        self.log = log
        self.counter = 0
        self.hosts = []
        self.pids = {}
        self.ansible = None
        self.keys = None
        self.rel = {}
        self.key = None

    # ---------------------------------------------------------------- set-up

    def make_releases(self, keys):
        repo = os.path.join(self.run_dir, "repo")
        size = int(self.args.size_gb * GIB)
        for version, seq in ((V1, 1), (V2, 2)):
            src = os.path.join(self.run_dir, "src-" + version)
            os.makedirs(src)
            self.log("writing %s of weights for %s" % (fmt_size(size), version))
            write_big_file(os.path.join(src, WEIGHTS), size)
            write_small_files(src)
            self.log("publishing %s-%s-%s with playbooks/publish.yml" % (MODEL, version, VARIANT))
            _common.publish(self.ansible, keys, src, repo, "%s-%s-%s" % (MODEL, version, VARIANT), seq,
                            os.path.join(self.run_dir, "publish.db"), os.path.join(self.run_dir, "publish-%s.json" % version))
            shutil.rmtree(src)
            d = os.path.join(repo, MODEL, version, VARIANT)
            files = release_files(d)
            self.rel[version] = {"dir": d, "files": files, "bytes": sum(f["size"] for f in files),
                                 "weights_bytes": os.path.getsize(os.path.join(d, WEIGHTS)),
                                 "data_files": [f["path"] for f in files if not f["path"].startswith("manifest.json")]}
        small = [f for f in self.rel[V1]["files"] if f["path"] != WEIGHTS]
        same = all(os.path.getsize(os.path.join(self.rel[V2]["dir"], f["path"])) == f["size"] for f in small
                   if not f["path"].startswith("manifest.json"))
        if not same:
            raise BenchError("v1 and v2 should share their small files")

    def up(self):
        specs = []
        for i in range(self.args.hosts):
            specs += ["--host", "bench-%02d:%d:%d" % (i + 1, self.args.ssh_port_base + i, self.args.api_port_base + i)]
        self.log("bringing up %d hosts (fleet %s)" % (self.args.hosts, FLEET_NAME))
        state = json.loads(fleet("up", "--name", FLEET_NAME, *specs).stdout)
        self.key = state["key"]
        self.hosts = [state["hosts"][n] for n in sorted(state["hosts"])]
        for h in self.hosts:
            self.pids[h["name"]] = container_pid(h["id"])
        inv = os.path.join(self.run_dir, "inventory.yml")
        write_inventory(inv, self.hosts, self.key)
        self.ansible.inventory = inv
        names = self.names()
        proc, dummy = self.ansible.adhoc("bench", "ansible.builtin.ping", "", forks=len(names))
        check_all_ok(proc.stdout, names, "ping")
        tools = os.path.join(self.run_dir, "host-tools")
        os.makedirs(tools)
        for name, text in (("hash.py", HOST_HASH), ("fetch.py", HOST_FETCH)):
            with open(os.path.join(tools, name), "w", encoding="utf-8") as f:
                f.write(text)
        proc, dummy = self.ansible.adhoc("bench", "ansible.builtin.copy", "src=%s/ dest=%s/" % (tools, TOOLS_DIR),
                                         forks=len(names))
        check_all_ok(proc.stdout, names, "copy of the helper scripts")

    def names(self, n=None):
        return [h["name"] for h in self.hosts[:n or len(self.hosts)]]

    def pattern(self, n):
        return ",".join(self.names(n)) if n < len(self.hosts) else "bench"

    def host(self, name):
        return next(h for h in self.hosts if h["name"] == name)

    # ---------------------------------------------------------------- primitives

    def clean(self, n):
        dirs = " ".join(CLEAN_DIRS)
        self.ansible.shell(self.pattern(n), "chmod -R u+w %s 2>/dev/null; rm -rf %s; true" % (dirs, dirs), forks=n)
        os.sync()  # flush what the last run wrote, so that no run pays for the one before

    def rx(self, n):
        return {name: rx_bytes(self.pids[name]) for name in self.names(n)}

    def catalog(self):
        self.counter += 1
        return os.path.join(self.run_dir, "catalogs", "c%03d.db" % self.counter)

    def sync_args(self, version, catalog=None, **extra):
        args = {"src": self.rel[version]["dir"], "model_root": ROOT, "keyring": [self.keys.publisher.public],
                "trusted_fingerprints": [self.keys.publisher.fingerprint], "catalog": catalog or self.catalog()}
        args.update(extra)
        return args

    def model_sync(self, n, version, catalog=None, **extra):
        proc, wall = self.ansible.adhoc(self.pattern(n), "modelops.fleet.model_sync",
                                        json.dumps(self.sync_args(version, catalog, **extra)), forks=n, check=False)
        res = check_all_ok(proc.stdout, self.names(n), "model_sync %s" % version)
        return {h: r for h, (dummy, r) in res.items()}, wall

    def dest_bytes(self, n, dest):
        out, dummy = self.shell(n, "echo BENCHSIZE $(hostname) $(find %s -type f -printf '%%s\\n' 2>/dev/null "
                                   "| awk '{s+=$1} END {print s+0}') $(find %s -type f 2>/dev/null | wc -l)" % (dest, dest))
        sizes = {}
        for m in re.finditer(r"BENCHSIZE (\S+) (\d+) (\d+)", out):
            sizes[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return sizes

    def shell(self, n, cmd):
        return self.ansible.shell(self.pattern(n), cmd, forks=n)

    def check_dest(self, n, dest, version, tool):
        want = (self.rel[version]["bytes"], len(self.rel[version]["files"]))
        got = self.dest_bytes(n, dest)
        for name in self.names(n):
            if got.get(name) != want:
                raise BenchError("%s left %r on %s:%s, expected %d bytes in %d files"
                                 % (tool, got.get(name), name, dest, want[0], want[1]))

    def push(self, tool, n, version=V1):
        """One timed push of the release to the first n hosts, from clean hosts."""
        rel = self.rel[version]
        self.clean(n)
        if tool == "model_sync":
            args = json.dumps(self.sync_args(version))
            module, dest = "modelops.fleet.model_sync", "%s/%s/%s/%s" % (ROOT, MODEL, version, VARIANT)
        elif tool == "rsync":
            module, args, dest = "ansible.posix.synchronize", "src=%s/ dest=%s/ compress=false" % (rel["dir"], RSYNC_DEST), RSYNC_DEST
        elif tool == "rsync_default":
            module, args, dest = "ansible.posix.synchronize", "src=%s/ dest=%s/" % (rel["dir"], RSYNC_DEFAULT_DEST), RSYNC_DEFAULT_DEST
        elif tool == "copy":
            module, args, dest = "ansible.builtin.copy", "src=%s/ dest=%s/" % (rel["dir"], COPY_DEST), COPY_DEST
        else:
            raise BenchError("unknown tool %s" % tool)
        before = self.rx(n)
        proc, wall = self.ansible.adhoc(self.pattern(n), module, args, forks=n, check=False)
        after = self.rx(n)
        res = check_all_ok(proc.stdout, self.names(n), tool)
        self.check_dest(n, dest, version, tool)
        sample = {"wall_s": wall, "bytes": rel["bytes"] * n, "hosts": n,
                  "rx_bytes": {h: after[h] - before[h] for h in before}}
        if tool == "model_sync":
            sample["bytes_transferred"] = {h: r.get("bytes_transferred") for h, (dummy, r) in res.items()}
        return sample

    # ---------------------------------------------------------------- measurements

    def interleave(self, runs, calls, what):
        samples = {name: [] for name, dummy in calls}
        for i in range(runs):
            order = calls[i % len(calls):] + calls[:i % len(calls)]
            for name, call in order:
                sample = call()
                sample["round"] = i + 1
                samples[name].append(sample)
                extra = ""
                if "bytes" in sample and sample.get("wall_s"):
                    extra = "  %s" % fmt_mbs(sample["bytes"], sample["wall_s"])
                self.log("  %s round %d/%d %-14s %8.2f s%s" % (what, i + 1, runs, name, sample["wall_s"], extra))
        return samples

    def bench_push(self, n, runs, tools):
        calls = [(t, (lambda t=t: self.push(t, n))) for t in tools]
        return self.interleave(runs, calls, "push x%d" % n)

    def timeline(self):
        """One model_sync push to the first host with -vvv, every output line timestamped as it
        arrives: where the time goes (start-up, controller checks, plan, uploads, install)."""
        self.clean(1)
        argv = ["ansible", self.pattern(1), "-i", self.ansible.inventory, "-m", "modelops.fleet.model_sync", "-a",
                json.dumps(self.sync_args(V1)), "-o", "-vvv"]
        events = []
        start = time.perf_counter()
        with subprocess.Popen(argv, cwd=REPO, env=self.ansible.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            for line in proc.stdout:
                events.append((time.perf_counter() - start, line.rstrip("\n")))
            rc = proc.wait()
        wall = time.perf_counter() - start
        text = "\n".join(line for dummy, line in events)
        if rc != 0:
            raise BenchError("model_sync -vvv failed:\n%s" % text[-3000:])
        return phases(events, wall)

    def timed_upload(self, cmd, dest, name, tool=None):
        """Run cmd, an upload of v1 to dest on the first host outside Ansible, and check what it left there;
        its wall time in seconds."""
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError("%s failed: %s" % (name, proc.stderr[-2000:]))
        self.check_dest(1, dest, V1, tool or name)
        return wall

    def diag_once(self):
        """What model_sync's push is made of: the fixed cost of an ad-hoc command (ping), a raw
        sftp upload of the same files (what put_file does), and hashing the weights on the host."""
        self.clean(1)
        dummy, ping = self.ansible.adhoc(self.pattern(1), "ansible.builtin.ping", "")
        h = self.hosts[0]
        batch = os.path.join(self.run_dir, "sftp.batch")
        with open(batch, "w", encoding="utf-8") as f:
            f.write("-mkdir %s\n" % SFTP_DEST)
            for entry in self.rel[V1]["files"]:
                f.write("put %s %s/%s\n" % (os.path.join(self.rel[V1]["dir"], entry["path"]), SFTP_DEST, entry["path"]))
        sftp = self.timed_upload(["sftp", "-q", "-b", batch, "-P", str(h["ssh_port"]), "-i", self.key] + SSH_BATCH_OPTIONS
                                 + ["root@127.0.0.1"], SFTP_DEST, "sftp")
        out, dummy = self.shell(1, "s=$(date +%%s.%%N); python3 %s/hash.py %s/%s >/dev/null; e=$(date +%%s.%%N); echo BENCHTIME $s $e"
                                % (TOOLS_DIR, SFTP_DEST, WEIGHTS))
        host_hash = marker_times(out)
        os.sync()
        ssh = "ssh -S none -p %d -i %s %s" % (h["ssh_port"], self.key, " ".join(SSH_BATCH_OPTIONS))
        rsync = self.timed_upload(["rsync", "--archive", "--rsh=" + ssh, self.rel[V1]["dir"] + "/", "root@127.0.0.1:%s/" % RSYNC_RAW_DEST],
                                  RSYNC_RAW_DEST, "rsync", "raw rsync")
        sample = {"wall_s": sftp, "ping_s": ping, "sftp_s": sftp, "host_hash_s": host_hash, "rsync_raw_s": rsync,
                  "bytes": self.rel[V1]["bytes"]}
        sample["phases"] = self.timeline()
        return sample

    def bench_diag(self, runs):
        out = []
        for i in range(runs):
            s = self.diag_once()
            s["round"] = i + 1
            out.append(s)
            self.log("  diagnostics round %d/%d: ping %.2f s, raw sftp %.2f s (%s), raw rsync %.2f s (%s), sha256 of the weights "
                     "on the host %.2f s" % (i + 1, runs, s["ping_s"], s["sftp_s"], fmt_mbs(s["bytes"], s["sftp_s"]),
                                             s["rsync_raw_s"], fmt_mbs(s["bytes"], s["rsync_raw_s"]), s["host_hash_s"]))
            self.log("  model_sync -vvv timeline: %s" % ", ".join("%s %.2f s" % (k, v) for k, v in s["phases"].items()))
        return out

    def bench_mirror(self, runs):
        rel = self.rel[V1]
        mdir = "%s/%s/%s/%s" % (MIRROR_DIR, MODEL, V1, VARIANT)
        self.log("mirror: copying %s to %s on %s (untimed) and starting http.server on its 127.0.0.1:%d"
                 % (fmt_size(rel["bytes"]), mdir, self.names(1)[0], MIRROR_PORT))
        self.shell(1, "mkdir -p %s" % mdir)
        proc, dummy = self.ansible.adhoc(self.pattern(1), "ansible.posix.synchronize",
                                         "src=%s/ dest=%s/ compress=false" % (rel["dir"], mdir))
        check_all_ok(proc.stdout, self.names(1), "mirror upload")
        self.shell(1, "systemctl stop %s 2>/dev/null; systemctl reset-failed %s 2>/dev/null; "
                      "systemd-run --unit=%s python3 -m http.server --bind 127.0.0.1 %d --directory %s && sleep 1"
                      % (MIRROR_UNIT, MIRROR_UNIT, MIRROR_UNIT, MIRROR_PORT, MIRROR_DIR))
        url = "http://127.0.0.1:%d/%s/%s/%s" % (MIRROR_PORT, MODEL, V1, VARIANT)
        try:
            def ours():
                self.clean(1)
                res, wall = self.model_sync(1, V1, source="mirror", url=url)
                r = res[self.names(1)[0]]
                self.check_dest(1, "%s/%s/%s/%s" % (ROOT, MODEL, V1, VARIANT), V1, "model_sync mirror")
                return {"wall_s": wall, "bytes": rel["bytes"], "bytes_transferred": r.get("bytes_transferred")}

            def reference():
                self.clean(1)
                files = " ".join(rel["data_files"])
                out, wall = self.shell(1, "s=$(date +%%s.%%N); python3 %s/fetch.py %s %s %s; e=$(date +%%s.%%N); echo BENCHTIME $s $e"
                                       % (TOOLS_DIR, url, PULL_DEST, files))
                got = self.dest_bytes(1, PULL_DEST)[self.names(1)[0]]
                want = sum(f["size"] for f in rel["files"] if f["path"] in rel["data_files"])
                if got[0] != want:
                    raise BenchError("urllib download left %d bytes, expected %d" % (got[0], want))
                return {"wall_s": wall, "in_host_s": marker_times(out), "bytes": want}

            return self.interleave(runs, [("mirror_sync", ours), ("urllib", reference)], "mirror")
        finally:
            self.shell(1, "systemctl stop %s || true; rm -rf %s" % (MIRROR_UNIT, MIRROR_DIR))

    def bench_upgrade(self, runs):
        out = []
        name = self.names(1)[0]
        for i in range(runs):
            self.clean(1)
            cat = self.catalog()
            self.model_sync(1, V1, catalog=cat)
            os.sync()
            before = self.rx(1)
            res, wall = self.model_sync(1, V2, catalog=cat)
            after = self.rx(1)
            r = res[name]
            self.check_dest(1, "%s/%s/%s/%s" % (ROOT, MODEL, V2, VARIANT), V2, "model_sync upgrade")
            s = {"round": i + 1, "wall_s": wall, "bytes_transferred": r["bytes_transferred"], "bytes_linked": r["bytes_linked"],
                 "changed": r.get("changed"), "rx_bytes": after[name] - before[name],
                 "actions": {f["path"]: f["action"] for f in r.get("files", [])}}
            out.append(s)
            self.log("  upgrade round %d/%d: %.2f s, bytes_transferred %d, bytes_linked %d, received %d"
                     % (i + 1, runs, wall, s["bytes_transferred"], s["bytes_linked"], s["rx_bytes"]))
        return out

    def noop_profile(self, n, catalog):
        ev = os.path.join(self.run_dir, "noop-vars.json")
        with open(ev, "w", encoding="utf-8") as f:
            json.dump({"bench_hosts": self.pattern(n), "bench_src": self.rel[V2]["dir"], "bench_root": ROOT,
                       "bench_keyring": [self.keys.publisher.public], "bench_fingerprints": [self.keys.publisher.fingerprint],
                       "bench_catalog": catalog}, f)
        pb = os.path.join(self.run_dir, "noop.yml")
        if not os.path.exists(pb):
            with open(pb, "w", encoding="utf-8") as f:
                f.write(NOOP_PLAYBOOK)
        proc, wall = self.ansible.playbook(pb, ev, env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                                                        "ANSIBLE_FORKS": str(max(n, 4))})
        tasks = {}
        for m in re.finditer(r"^(bench [^\n]*?) -{3,} (\d+\.\d+)s\s*$", proc.stdout, re.M):
            tasks[m.group(1).strip()] = float(m.group(2))
        if "bench model_sync no-op" not in tasks:
            raise BenchError("no profile_tasks timing in:\n%s" % proc.stdout[-3000:])
        return {"wall_s": wall, "task_s": tasks["bench model_sync no-op"], "ping_task_s": tasks.get("bench floor ping"),
                "hosts": n}

    def bench_noop(self, runs, n_all):
        """model_sync of the installed v2 again: on one host, then on all hosts at once."""
        cat = self.catalog()
        out = {"adhoc": {}, "profile": {}}
        counts = [1] + ([n_all] if n_all > 1 else [])
        for n in counts:
            self.log("no-op: making sure %s is installed on %d host(s) (untimed)" % (V2, n))
            self.model_sync(n, V2, catalog=cat)
            os.sync()
            adhoc, prof = [], []
            for i in range(runs):
                before = self.rx(n)
                res, wall = self.model_sync(n, V2, catalog=cat)
                after = self.rx(n)
                adhoc.append({"round": i + 1, "wall_s": wall, "hosts": n,
                              "bytes_transferred": {h: r.get("bytes_transferred", 0) for h, r in res.items()},
                              "changed": {h: bool(r.get("changed")) for h, r in res.items()},
                              "rx_bytes": {h: after[h] - before[h] for h in before}})
                p = self.noop_profile(n, cat)
                p["round"] = i + 1
                prof.append(p)
                self.log("  no-op x%d round %d/%d: ad-hoc %.2f s, task %.2f s (ping task %.2f s), moved %s, received %s"
                         % (n, i + 1, runs, wall, p["task_s"], p["ping_task_s"] or 0,
                            sorted(set(adhoc[-1]["bytes_transferred"].values())), sorted(adhoc[-1]["rx_bytes"].values())))
            out["adhoc"][str(n)] = adhoc
            out["profile"][str(n)] = prof
        return out


PHASES = [
    ("startup", "Ansible start-up, inventory, first connection"),
    ("controller", "controller side before the plan: remote tmp dir, manifest signature (GnuPG), catalog"),
    ("plan", "module run 1 (plan): is it installed, which files to send"),
    ("upload", "uploads: one `put_file` (SFTP) per file"),
    ("install", "module run 2 (install): hash the uploaded files, verify, make read-only, rename"),
    ("rest", "the rest: clean-up of the remote tmp dir, result, exit"),
]


def phases(events, wall):
    """Split a -vvv model_sync push into PHASES from the timestamps of its output lines."""
    def first(pred, after=-1.0):
        return next(((t, line) for t, line in events if t > after and pred(line)), (None, None))

    def is_result(line):
        return re.match(r"^<[^>]+> \(\d+, b", line) is not None

    connect, dummy = first(lambda line: "ESTABLISH SSH CONNECTION" in line)
    mods = [t for t, line in events if line.startswith("Using module file") and "model_sync" in line]
    puts = [t for t, line in events if re.match(r"^<[^>]+> PUT ", line)]
    if connect is None or len(mods) < 2 or not puts:
        raise BenchError("cannot read the phases of model_sync from its -vvv output:\n%s" % "\n".join(l for dummy, l in events)[-3000:])
    plan_end, dummy = first(is_result, mods[0])
    upload_end = max(t for t, line in events if is_result(line) and puts[0] <= t < mods[1])
    install_end, dummy = first(is_result, mods[1])
    out = {"startup": connect, "controller": mods[0] - connect, "plan": plan_end - mods[0],
           "upload": upload_end - puts[0], "install": install_end - mods[1]}
    out["rest"] = wall - sum(out.values())
    out["total"] = wall
    return out


# --------------------------------------------------------------------------- analysis

def analyse(res):
    an = {}
    for key in ("push1", "push4"):
        if not res.get(key):
            continue
        block = {}
        for tool, samples in res[key].items():
            w = summary(series(samples))
            block[tool] = {"wall_s": w, "bytes": samples[0]["bytes"], "mb_s": samples[0]["bytes"] / w["median"] / 1e6,
                           "rx_bytes_per_host": statistics.median([v for s in samples for v in s["rx_bytes"].values()])}
        ms = block["model_sync"]["wall_s"]["median"]
        for ref in ("rsync", "rsync_default", "copy"):
            if ref in block:
                block[ref]["time_ratio"] = ms / block[ref]["wall_s"]["median"]
                block[ref]["throughput_ratio"] = block[ref]["wall_s"]["median"] / ms
        if "rsync" in block:
            block["rsync"]["goal_met"] = block["rsync"]["throughput_ratio"] >= RSYNC_THROUGHPUT_GOAL
        if "rsync_default" in block:
            block["rsync_default"]["goal_met"] = block["rsync_default"]["throughput_ratio"] >= RSYNC_THROUGHPUT_GOAL
        if "copy" in block:
            block["copy"]["goal_met"] = block["copy"]["time_ratio"] < COPY_TIME_GOAL
        an[key] = block
    if res.get("diag"):
        d = res["diag"]
        an["diag"] = {k: summary(series(d, k)) for k in ("ping_s", "sftp_s", "rsync_raw_s", "host_hash_s")}
        an["diag"]["bytes"] = d[0]["bytes"]
        an["diag"]["phases"] = {k: summary([s["phases"][k] for s in d]) for k in [p for p, dummy in PHASES] + ["total"]}
    if res.get("mirror"):
        m = res["mirror"]
        ours, ref = summary(series(m["mirror_sync"])), summary(series(m["urllib"]))
        an["mirror"] = {"mirror_sync": {"wall_s": ours, "bytes": m["mirror_sync"][0]["bytes"]},
                        "urllib": {"wall_s": ref, "in_host_s": summary(series(m["urllib"], "in_host_s")),
                                   "bytes": m["urllib"][0]["bytes"]},
                        "time_ratio": ours["median"] / ref["median"]}
    if res.get("upgrade"):
        u = res["upgrade"]
        bt = statistics.median([s["bytes_transferred"] for s in u])
        changed = res["release"][V2]["weights_bytes"]
        an["upgrade"] = {"bytes_transferred": bt, "bytes_transferred_max": max(s["bytes_transferred"] for s in u),
                         "bytes_linked": statistics.median([s["bytes_linked"] for s in u]),
                         "rx_bytes": statistics.median([s["rx_bytes"] for s in u]), "changed_bytes": changed,
                         "release_bytes": res["release"][V2]["bytes"], "ratio_vs_changed": bt / changed,
                         "ratio_vs_release": bt / res["release"][V2]["bytes"], "wall_s": summary(series(u)),
                         "goal_met": max(s["bytes_transferred"] for s in u) <= UPGRADE_BYTES_GOAL * changed}
    if res.get("noop"):
        no = {}
        for n, samples in res["noop"]["adhoc"].items():
            prof = res["noop"]["profile"][n]
            moved = max(v for s in samples for v in s["bytes_transferred"].values())
            changed = any(v for s in samples for v in s["changed"].values())
            task = summary(series(prof, "task_s"))
            per_host = task["median"] / int(n)
            no[n] = {"task_per_host_s": per_host, "adhoc_wall_s": summary(series(samples)), "task_s": task, "ping_task_s": summary(series(prof, "ping_task_s")),
                     "playbook_wall_s": summary(series(prof)), "bytes_transferred_max": moved, "changed": changed,
                     "rx_bytes_per_host": statistics.median([v for s in samples for v in s["rx_bytes"].values()]),
                     "bytes_goal_met": moved == NOOP_BYTES_GOAL and not changed,
                     "time_goal_met": per_host < NOOP_SECONDS_GOAL}
        an["noop"] = no
    return an


# --------------------------------------------------------------------------- chart

def draw_chart(path, push1):
    """Bars of the median 1-host push time per tool, min–max whiskers, a grey line every `step` s."""
    bars = [(t, rgb, push1[t]["wall_s"]) for t, rgb, dummy in CHART_TOOLS if t in push1]
    width, height = 520, 320
    left, right, top, bottom = 50, 20, 20, 30
    step, top_value = _common.chart_axis(max(b[2]["max"] for b in bars), 1.1)
    c = Canvas(width, height)
    plot_h = height - top - bottom

    def y_of(v):
        return int(round(height - bottom - v / top_value * plot_h))

    v = step
    while v <= top_value + 1e-9:
        c.rect(left, y_of(v), width - right, y_of(v) + 1, (215, 215, 215))
        v += step
    slot = (width - left - right) // len(bars)
    bar_w = int(slot * 0.6)
    for i, (dummy, rgb, s) in enumerate(bars):
        x0 = left + i * slot + (slot - bar_w) // 2
        c.rect(x0, y_of(s["median"]), x0 + bar_w, height - bottom, rgb)
        mid = x0 + bar_w // 2
        c.rect(mid - 1, y_of(s["max"]), mid + 1, y_of(s["min"]) + 1, (0, 0, 0))
        for val in (s["min"], s["max"]):
            c.rect(mid - 6, y_of(val), mid + 7, y_of(val) + 2, (0, 0, 0))
    c.rect(left - 2, top, left, height - bottom + 2, (0, 0, 0))
    c.rect(left - 2, height - bottom, width - right, height - bottom + 2, (0, 0, 0))
    c.save(path)
    return {"step_s": step, "top_s": top_value, "bars": [b[0] for b in bars]}


# --------------------------------------------------------------------------- report

def render(res, an, doc_path, png_path):
    m = res["machine"]
    p = res["params"]
    r1 = res["release"][V1]
    rel_png = _common.doc_link(doc_path, png_path)
    lines = _common.section_head(BEGIN, "Transfer", "transfer_bench.py", res["started"], res["duration_s"], "transfer.sh") + [
        "How fast `modelops.fleet.model_sync` moves a release to hosts, next to the tools an Ansible user would otherwise "
        "reach for, on the same machine, the same data and the same connection (Ansible's OpenSSH `ssh` plugin; rsync "
        "opens its own OpenSSH session). Every tool is timed as the wall time of one `ansible` ad-hoc command, so the "
        "fixed cost of starting Ansible is in every number alike. Tools are interleaved round by round (the order "
        "rotates each round) and every round starts from clean hosts (destination directories removed, then `sync`). "
        "Rounds: %d for one host, %d for %d hosts at once, %d for the mirror pull and the upgrade, %d for the no-op; the "
        "tables give medians. MB/s are 10^6 bytes of release per second of wall time." % (
            p["runs"], p["multi_runs"], p["hosts"], p["runs"], p["noop_runs"]),
        "",
    ] + _common.machine_table(m, res, [
        ("Controller", "Python %s, %s, %s, %s" % (m["python"], m["ansible_core"], m["openssh"], m["rsync_controller"])),
        ("Hosts", "%d podman containers (%s) booting systemd + sshd, Debian 12 (%s), all on this machine's disk and CPUs" % (
            p["hosts"], m["podman"], " ".join(res.get("host_rsync", "rsync").split()))),
    ], cpu_note=", AES-NI" if m["aes_ni"] else "") + [
        "",
        "### Release under test",
        "",
        "`%s/%s/%s/` (v1) and `%s/%s/%s/` (v2), published and signed with `playbooks/publish.yml` with a real GnuPG "
        "key: `%s` (%s of random bytes: one 64 MiB block from `os.urandom` repeated with a different counter in each "
        "copy, so it does not compress) plus %s, and `manifest.json` + `manifest.json.asc`; %d bytes in %d files. v2 has "
        "the same small files and new weights of the same size (%d bytes)." % (
            MODEL, V1, VARIANT, MODEL, V2, VARIANT, WEIGHTS, fmt_size(r1["weights_bytes"]),
            ", ".join("`%s`" % f["path"] for f in r1["files"] if f["path"] != WEIGHTS and not f["path"].startswith("manifest.json")),
            r1["bytes"], len(r1["files"]), res["release"][V2]["weights_bytes"]),
        "",
        "### Results",
        "",
        "| Measurement | model_sync (median) | Reference (median) | Ratio | Goal | Result |",
        "|---|---|---|---|---|---|",
    ]
    for key, n in (("push1", 1), ("push4", p["hosts"])):
        b = an.get(key)
        if not b:
            continue
        ms = b["model_sync"]
        where = "1 host" if n == 1 else "%d hosts at once (`-f %d`)" % (n, n)
        for ref, goal_text in (("rsync", "throughput ≥ %.2f × rsync's" % RSYNC_THROUGHPUT_GOAL),
                               ("rsync_default", "(context) ≥ %.2f ×" % RSYNC_THROUGHPUT_GOAL),
                               ("copy", "faster than copy (time ratio < %.2f)" % COPY_TIME_GOAL)):
            if ref not in b:
                continue
            rb = b[ref]
            ratio = ("throughput %.2f × (time %.2f ×)" % (rb["throughput_ratio"], rb["time_ratio"]) if ref != "copy"
                     else "time %.2f × (throughput %.2f ×)" % (rb["time_ratio"], rb["throughput_ratio"]))
            lines.append("| Push, %s, vs %s | %s (%s) | %s (%s) | %s | %s | %s |" % (
                where, TOOL_LABELS[ref], fmt_seconds(ms["wall_s"]["median"]), fmt_mbs(ms["bytes"], ms["wall_s"]["median"]),
                fmt_seconds(rb["wall_s"]["median"]), fmt_mbs(rb["bytes"], rb["wall_s"]["median"]), ratio, goal_text,
                verdict(rb["goal_met"]) if ref != "rsync_default" else ("pass" if rb["goal_met"] else "miss")))
    mi = an.get("mirror")
    if mi:
        lines.append("| Pull from a mirror on the host's 127.0.0.1, vs %s | %s (%s) | %s (%s; %s inside the host) | time %.2f × | "
                     "report only | — |" % (
                         TOOL_LABELS["urllib"], fmt_seconds(mi["mirror_sync"]["wall_s"]["median"]),
                         fmt_mbs(mi["mirror_sync"]["bytes"], mi["mirror_sync"]["wall_s"]["median"]),
                         fmt_seconds(mi["urllib"]["wall_s"]["median"]), fmt_mbs(mi["urllib"]["bytes"], mi["urllib"]["wall_s"]["median"]),
                         fmt_seconds(mi["urllib"]["in_host_s"]["median"]), mi["time_ratio"]))
    up = an.get("upgrade")
    if up:
        lines.append("| Weights-only upgrade v1 → v2, bytes moved (`bytes_transferred`) | %d (%s) | changed bytes: %d; whole "
                     "release: %d | %.4f × changed, %.4f × release | ≤ %.2f × changed | %s |" % (
                         up["bytes_transferred"], fmt_size(up["bytes_transferred"]), up["changed_bytes"], up["release_bytes"],
                         up["ratio_vs_changed"], up["ratio_vs_release"], UPGRADE_BYTES_GOAL, verdict(up["goal_met"])))
    no = an.get("noop")
    if no:
        for n, b in sorted(no.items(), key=lambda kv: int(kv[0])):
            where = "1 host" if n == "1" else "%s hosts at once" % n
            lines.append("| No-op re-run, %s: bytes moved | %d (changed: %s) | — | — | 0 | %s |" % (
                where, b["bytes_transferred_max"], "yes" if b["changed"] else "no", verdict(b["bytes_goal_met"])))
            task = fmt_seconds(b["task_s"]["median"])
            if n != "1":
                task += " for all %s, %s per host" % (n, fmt_seconds(b["task_per_host_s"]))
            lines.append("| No-op re-run, %s: task time (`profile_tasks`) | %s | `ping` task: %s | %.2f × | < %.1f s per host | %s |" % (
                where, task, fmt_seconds(b["ping_task_s"]["median"]) if b["ping_task_s"] else "n/a",
                b["task_s"]["median"] / b["ping_task_s"]["median"] if b["ping_task_s"] else 0, NOOP_SECONDS_GOAL,
                verdict(b["time_goal_met"])))
            lines.append("| No-op re-run, %s: wall time of the `ansible` command | %s | — | — | (context) | — |" % (
                where, fmt_seconds(b["adhoc_wall_s"]["median"])))
    lines += ["", "All push timings with their spread:", "",
              "| Tool | Hosts | Rounds | Median wall | Min–max | Throughput | Received per host (wire) |",
              "|---|---|---|---|---|---|---|"]
    for key in ("push1", "push4"):
        for tool, b in (an.get(key) or {}).items():
            lines.append("| %s | %d | %d | %s | %s | %s | %s |" % (
                TOOL_LABELS[tool], res[key][tool][0]["hosts"], b["wall_s"]["n"], fmt_seconds(b["wall_s"]["median"]), fmt_range(b["wall_s"]),
                fmt_mbs(b["bytes"], b["wall_s"]["median"]), fmt_size(b["rx_bytes_per_host"])))
    if mi:
        for tool in ("mirror_sync", "urllib"):
            s = mi[tool]["wall_s"]
            lines.append("| %s | 1 | %d | %s | %s | %s | (loopback inside the host) |" % (
                TOOL_LABELS[tool], s["n"], fmt_seconds(s["median"]), fmt_range(s), fmt_mbs(mi[tool]["bytes"], s["median"])))
    d = an.get("diag")
    if d:
        lines += ["", "What a push is made of (one host, %d rounds, medians): the fixed cost of an `ansible` ad-hoc command "
                  "with one module round trip (`-m ping`): %s; a raw `sftp` upload of the same %d files in a fresh OpenSSH "
                  "session (what Ansible's `put_file` does): %s (%s); the same files by plain `rsync --archive` in a fresh OpenSSH "
                  "session, without Ansible: %s (%s); sha256 of the %s weights file on the host with Python `hashlib` (what "
                  "model_sync's installer does after the upload): %s." % (
                      d["ping_s"]["n"], fmt_seconds(d["ping_s"]["median"]), len(r1["files"]), fmt_seconds(d["sftp_s"]["median"]),
                      fmt_mbs(d["bytes"], d["sftp_s"]["median"]), fmt_seconds(d["rsync_raw_s"]["median"]),
                      fmt_mbs(d["bytes"], d["rsync_raw_s"]["median"]), fmt_size(r1["weights_bytes"]), fmt_seconds(d["host_hash_s"]["median"]))]
        lines += ["", "A model_sync push to one host with `-vvv`, every output line timestamped as it arrives (%d rounds, "
                  "separate from the timed runs above):" % d["ping_s"]["n"], "", "| Phase | Median | Min–max |", "|---|---|---|"]
        for key, label in PHASES + [("total", "total wall time of the command")]:
            ps = d["phases"][key]
            lines.append("| %s | %s | %s |" % (label, fmt_seconds(ps["median"]), fmt_range(ps)))
    chart = res.get("chart")
    if chart:
        legend = ", ".join("%s = %s" % (dict((t, c) for t, dummy, c in CHART_TOOLS)[t], TOOL_LABELS[t]) for t in chart["bars"])
        lines += ["", "![Median wall time of a 1-host push per tool](%s)" % rel_png, "",
                  "_The chart: median wall time of the 1-host push, one bar per tool from left to right: %s. The black "
                  "whiskers span min–max over the rounds; the grey lines are every %s s (top %s s); shorter is "
                  "faster._" % (legend, ("%g" % chart["step_s"]), "%g" % chart["top_s"])]
    return _common.section_text(lines, notes(res, an), commands(res), "transfer", END)


def notes(res, an):
    out = []
    p = res["params"]
    d = an.get("diag")
    for key, n in (("push1", 1), ("push4", p["hosts"])):
        b = an.get(key)
        if not b:
            continue
        where = "one host" if n == 1 else "%d hosts at once" % n
        ms = b["model_sync"]["wall_s"]["median"]
        if "rsync" in b:
            rb = b["rsync"]
            if rb["goal_met"]:
                out.append("Push to %s: model_sync reaches %.2f × rsync's throughput (%.2f s against %.2f s), within the goal "
                           "of at least %.2f ×." % (where, rb["throughput_ratio"], ms, rb["wall_s"]["median"], RSYNC_THROUGHPUT_GOAL))
            else:
                need = rb["wall_s"]["median"] / RSYNC_THROUGHPUT_GOAL
                text = ("Push to %s: **misses** the rsync goal: %.2f × rsync's throughput where %.2f × is asked; it "
                        "takes %.2f s against rsync's %.2f s and would have to finish in %.2f s (%.2f s, %.0f%% less)." % (
                            where, rb["throughput_ratio"], RSYNC_THROUGHPUT_GOAL, ms, rb["wall_s"]["median"], need,
                            ms - need, 100 * (ms - need) / ms))
                if d and n == 1:
                    ph = {k: v["median"] for k, v in d["phases"].items()}
                    fixed = ph["controller"] + ph["plan"] + ph["install"]
                    text += (" Why, as far as the `-vvv` timeline above shows: work rsync does not do costs model_sync %s per push "
                             "whatever the network — the GnuPG check and remote tmp dir (%s), a plan module run (%s) and an "
                             "install module run (%s) that reads the whole weights file a second time to hash it (hashing "
                             "alone: %s per %s) — which is %.0f%% of the gap; the rest of the gap is the upload being slower "
                             "than rsync in these rounds (SFTP `put_file` against rsync's stream) and the machine's noise." % (
                                 fmt_seconds(fixed), fmt_seconds(ph["controller"]), fmt_seconds(ph["plan"]), fmt_seconds(ph["install"]),
                                 fmt_seconds(d["host_hash_s"]["median"]), fmt_size(res["release"][V1]["weights_bytes"]),
                                 min(100.0, 100 * fixed / (ms - rb["wall_s"]["median"]))))
                out.append(text)
        if "rsync" in b:
            out.append(robustness(b["model_sync"]["wall_s"], b["rsync"]["wall_s"], "rsync"))
        if "copy" in b:
            cb = b["copy"]
            out.append("Push to %s against `copy`: %.2f × its time (%s)%s." % (
                where, cb["time_ratio"], "faster, goal met" if cb["goal_met"] else "**slower, goal missed**",
                "" if cb["goal_met"] else " by %.2f s" % (ms - cb["wall_s"]["median"])))
    if d and an.get("push1"):
        b = an["push1"]
        ms = b["model_sync"]["wall_s"]["median"]
        ph = {k: v["median"] for k, v in d["phases"].items()}
        size = d["bytes"]
        text = ("Where model_sync's push time goes (one host, the `-vvv` timeline in the table above): its action plugin "
                "checks the signature with GnuPG on the controller (%s with the remote tmp dir), runs the module once to "
                "plan (%s), uploads each missing file with the connection's `put_file`, SFTP for the `ssh` plugin (%s, %s), "
                "and runs the module again to install (%s), which reads the whole uploaded weights file once more to hash "
                "it — `Installer.absorb_tail` → `sha256_prefix`: the hash is not computed while the bytes arrive; hashing "
                "the weights alone takes %s on the host — then verifies and renames the release into place. Ansible's "
                "own start-up is %s." % (
                    fmt_seconds(ph["controller"]), fmt_seconds(ph["plan"]), fmt_seconds(ph["upload"]), fmt_mbs(size, ph["upload"]),
                    fmt_seconds(ph["install"]), fmt_seconds(d["host_hash_s"]["median"]), fmt_seconds(ph["startup"])))
        if "rsync" in b:
            rs = b["rsync"]["wall_s"]["median"]
            gap = ms - rs
            text += (" %s the synchronize command (%s) %s. The upload itself took %s, plain rsync of the same files without "
                     "Ansible %s and raw SFTP without Ansible %s (%.2f × rsync's time; both in a fresh SSH session, the upload "
                     "reuses Ansible's ControlMaster); the two module runs took %s and the controller-side checks %s, where "
                     "synchronize runs one module and no GnuPG (a whole `-m ping` command: %s)." % (
                         "model_sync took %s longer than" % fmt_seconds(gap) if gap > 0 else "model_sync was %s faster than" % fmt_seconds(-gap),
                         fmt_seconds(rs), "in the timed runs",
                         fmt_seconds(ph["upload"]), fmt_seconds(d["rsync_raw_s"]["median"]), fmt_seconds(d["sftp_s"]["median"]),
                         d["sftp_s"]["median"] / d["rsync_raw_s"]["median"], fmt_seconds(ph["plan"] + ph["install"]),
                         fmt_seconds(ph["controller"]), fmt_seconds(d["ping_s"]["median"])))
        out.append(text)
    if an.get("push4"):
        out.append("%d hosts at once: the hosts are containers on this machine, so the %d streams share its %d CPUs "
                   "(SSH encryption on both ends, hashing, rsync's checksums) and one disk; the aggregate throughput "
                   "measures this machine more than a network, and the ratios between the tools are the meaningful part."
                   % (p["hosts"], p["hosts"], res["machine"]["nproc"]))
    mi = an.get("mirror")
    if mi:
        out.append("Mirror pull: model_sync takes %.2f × the time of the plain urllib download (%s against %s; %s of the "
                   "reference's time is spent inside the host, the rest is the ad-hoc command's fixed cost). model_sync "
                   "also checks the signature on the controller, hashes every byte while writing, verifies the staged "
                   "release and renames it into place; the reference only downloads." % (
                       mi["time_ratio"], fmt_seconds(mi["mirror_sync"]["wall_s"]["median"]), fmt_seconds(mi["urllib"]["wall_s"]["median"]),
                       fmt_seconds(mi["urllib"]["in_host_s"]["median"])))
    up = an.get("upgrade")
    if up:
        extra = up["bytes_transferred"] - up["changed_bytes"]
        text = ("Weights-only upgrade: model_sync moved %d bytes for %d changed bytes (%+d bytes, %.4f ×) and hard-linked "
                "%d bytes of unchanged files from v1; the whole release is %d bytes. The manifest and its signature travel "
                "as module arguments, not as transferred files. On the wire the host received %s (%.4f × the changed "
                "bytes): SSH framing, TCP/IP headers and Ansible's module payloads (two module runs) on top. The upgrade "
                "took %s." % (
                    up["bytes_transferred"], up["changed_bytes"], extra, up["ratio_vs_changed"], up["bytes_linked"],
                    up["release_bytes"], fmt_size(up["rx_bytes"]), up["rx_bytes"] / up["changed_bytes"],
                    fmt_seconds(up["wall_s"]["median"])))
        if not up["goal_met"]:
            text += " **Misses** the goal of at most %.2f ×." % UPGRADE_BYTES_GOAL
        out.append(text)
    for n, b in sorted((an.get("noop") or {}).items(), key=lambda kv: int(kv[0])):
        where = "one host" if n == "1" else "%s hosts at once" % n
        text = ("No-op re-run on %s: %d bytes moved, changed=%s; the model_sync task takes %s (a `ping` task in the same "
                "play: %s), the whole `ansible` command %s. The host received %s per run: the module's own code and "
                "arguments, not release data." % (
                    where, b["bytes_transferred_max"], "true" if b["changed"] else "false", fmt_seconds(b["task_s"]["median"]),
                    fmt_seconds(b["ping_task_s"]["median"]) if b["ping_task_s"] else "n/a", fmt_seconds(b["adhoc_wall_s"]["median"]),
                    fmt_size(b["rx_bytes_per_host"])))
        if n != "1":
            text += (" With %s hosts in one task the hosts run in parallel (`-f %s`), so the task time is shared: %s per host "
                     "against the goal of %.1f s." % (n, n, fmt_seconds(b["task_per_host_s"]), NOOP_SECONDS_GOAL))
        if not b["time_goal_met"]:
            text += " **Misses** the goal of under %.1f s per host by %.2f s." % (NOOP_SECONDS_GOAL, b["task_per_host_s"] - NOOP_SECONDS_GOAL)
            if b["ping_task_s"]:
                text += (" Of the task time, %s is what any module round trip costs here (the `ping` task) and %s is "
                         "model_sync's own work: the signature check with GnuPG on the controller and the cached "
                         "re-verify on the host." % (fmt_seconds(b["ping_task_s"]["median"]),
                                                     fmt_seconds(b["task_s"]["median"] - b["ping_task_s"]["median"])))
        out.append(text)
    load = float(res["load_start"][0])
    if load > 0.5 * (res["machine"]["nproc"] or 1) or float(res["load_end"][0]) > 0.5 * (res["machine"]["nproc"] or 1):
        out.append("Noise: other work was running on this %d-CPU machine (load average %s at the start, %s at the end). "
                   "Interleaving and medians keep the comparison fair, but absolute MB/s would be higher on an idle "
                   "machine; see the min–max column." % (res["machine"]["nproc"], res["load_start"][0], res["load_end"][0]))
    return out


def robustness(ours, ref, name):
    """Whether the spread of two timing series leaves the verdict in doubt."""
    if ours["n"] < 2 or ref["n"] < 2:
        return ("Only %d round(s) here: the verdict rests on single timings and may flip on a re-run of a loaded machine."
                % min(ours["n"], ref["n"]))
    if ours["min"] <= ref["max"] and ref["min"] <= ours["max"]:
        return ("The min–max ranges of model_sync (%s) and %s (%s) overlap: with this much other work on the machine the "
                "verdict is not robust; re-run on a quieter machine before acting on it." % (fmt_range(ours), name, fmt_range(ref)))
    return "The min–max ranges of model_sync (%s) and %s (%s) do not overlap." % (fmt_range(ours), name, fmt_range(ref))


def commands(res):
    inv = "-i <bench inventory> -o"
    return [
        "Fleet: `python tests/fleet/fleet.py up --name bench --host bench-01:24201:25201 ...`; inventory group `bench` with "
        "`ansible_host=127.0.0.1 ansible_user=root ansible_connection=ssh ansible_python_interpreter=/usr/bin/python3` and "
        "`ansible_ssh_common_args=\"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\"`; "
        "`ANSIBLE_SSH_CONTROL_PATH_DIR=/var/tmp/modelops-fleet/bench/cp`; `ansible.cfg` of the checkout (pipelining, "
        "`ControlPersist=60s`, default `ssh_transfer_method` = SFTP first).",
        "model_sync push: `ansible <hosts> %s -f <n> -m modelops.fleet.model_sync -a '{\"src\": \"<repo>/%s/%s/%s\", "
        "\"model_root\": \"%s\", \"keyring\": [<publisher.asc>], \"trusted_fingerprints\": [<fpr>], \"catalog\": <fresh file>}'`." % (
            inv, MODEL, V1, VARIANT, ROOT),
        "rsync: `ansible <hosts> %s -f <n> -m ansible.posix.synchronize -a 'src=<release dir>/ dest=%s/ compress=false'` "
        "(rsync `--archive --delay-updates` over a fresh `ssh -S none`; compression off because the weights do not compress); "
        "context: the module's defaults, `-a 'src=<release dir>/ dest=%s/'` (adds `--compress`)." % (inv, RSYNC_DEST, RSYNC_DEFAULT_DEST),
        "copy: `ansible <hosts> %s -f <n> -m ansible.builtin.copy -a 'src=<release dir>/ dest=%s/'`." % (inv, COPY_DEST),
        "Mirror: the release is copied to `%s/` on the host (untimed) and served by `systemd-run --unit=%s python3 -m "
        "http.server --bind 127.0.0.1 %d`; model_sync: `-a '{... \"source\": \"mirror\", \"url\": \"http://127.0.0.1:%d/%s/%s/%s\"}'`; "
        "reference: `ansible <host> -m ansible.builtin.shell -a 's=$(date +%%s.%%N); python3 fetch.py <url> %s <files>; "
        "e=$(date +%%s.%%N); echo BENCHTIME $s $e'`, `fetch.py` being `urllib.request.urlopen` + `shutil.copyfileobj` "
        "(1 MiB buffer) per file." % (MIRROR_DIR, MIRROR_UNIT, MIRROR_PORT, MIRROR_PORT, MODEL, V1, VARIANT, PULL_DEST),
        "Upgrade: model_sync of v1 (untimed), then of v2 (timed) with the same catalog; bytes from the module's "
        "`bytes_transferred` / `bytes_linked`; wire bytes from `/proc/<container pid>/net/dev` (received, all interfaces "
        "but `lo`).",
        "No-op: model_sync of the installed v2 again, as an ad-hoc command and in a play run with "
        "`ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks` (tasks: ping, model_sync, ping, assert unchanged and 0 bytes).",
        "Between rounds: `chmod -R u+w %s; rm -rf` of the same on the hosts, then `sync` on the controller." % " ".join(CLEAN_DIRS),
        "Diagnostics: `ansible <host> -m ansible.builtin.ping -o`; `sftp -b <batch> -P <port> root@127.0.0.1` with one `put` per "
        "file; `python3 hash.py %s/%s` (hashlib sha256, 1 MiB reads) timed inside the host." % (SFTP_DEST, WEIGHTS),
    ]


# --------------------------------------------------------------------------- main

def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--size-gb", type=float, default=1.0, help="size of the weights file in GiB (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="rounds for one host, the mirror and the upgrade (default 3)")
    ap.add_argument("--multi-runs", type=int, default=1, help="rounds of the push to all hosts at once (default 1)")
    ap.add_argument("--noop-runs", type=int, default=5, help="rounds of the no-op re-run (default 5)")
    ap.add_argument("--hosts", type=int, default=4, help="hosts in the fleet, pushed to at once (default 4)")
    ap.add_argument("--ssh-port-base", type=int, default=24201, help="SSH port of the first host on 127.0.0.1 (default 24201)")
    ap.add_argument("--api-port-base", type=int, default=25201, help="API port of the first host on 127.0.0.1 (default 25201)")
    _common.add_output_args(ap, "transfer", "/var/tmp/modelops-bench-transfer", RESULTS, (PNG, "PNG bar chart of the 1-host push"))
    _common.add_from_results(ap)
    args = ap.parse_args(argv)
    if args.runs < 1 or args.multi_runs < 0 or args.noop_runs < 1 or args.size_gb <= 0 or args.hosts < 1:
        ap.error("--runs, --noop-runs, --hosts and --size-gb must be positive, --multi-runs at least 0")
    return args


def report(res, args, results=None):
    """Summaries, the chart and the doc section from the raw results; with results, the results file too (written
    before the doc, so that a failing report leaves the samples)."""
    res["summary"] = analyse(res)
    res["chart"] = draw_chart(args.png, res["summary"]["push1"])
    if results:
        write_json(results, res)
    _common.update_doc(args.doc, render(res, res["summary"], args.doc, args.png), BEGIN, END)


def main(argv=None):
    args = parse_args(argv)
    if args.from_results:
        report(_common.read_json(args.from_results), args)
        print("rewrote %s and the transfer section of %s from %s" % (args.png, args.doc, args.from_results))
        return 0
    sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
    from gpg_keys import GpgTestKeys  # pylint: disable=import-outside-toplevel

    started = time.time()
    log = make_log(started)
    size = int(args.size_gb * GIB)
    os.makedirs(args.workdir, exist_ok=True)
    st = os.statvfs(args.workdir)
    need = size * (4 + args.hosts + 2)
    if st.f_bavail * st.f_frsize < need:
        sys.exit("transfer bench: needs about %s free on %s" % (fmt_size(need), args.workdir))
    run_dir = tempfile.mkdtemp(prefix="run.", dir=args.workdir)
    res = {"params": {"size_bytes": size, "runs": args.runs, "multi_runs": args.multi_runs, "noop_runs": args.noop_runs,
                      "hosts": args.hosts, "ssh_port_base": args.ssh_port_base},
           "started": utc_now(),
           "machine": machine_info(), "load_start": loadavg()}
    bench = Bench(args, run_dir, log)
    bench.ansible = Ansible(os.path.join(run_dir, "inventory.yml"), log, FLEET_NAME)
    keys = None
    try:
        os.makedirs(os.path.join(run_dir, "catalogs"))
        fleet("down", "--name", FLEET_NAME, check=False)  # leftovers of a run that was killed
        log("making GnuPG test keys")
        keys = GpgTestKeys(os.path.join(run_dir, "gpg"))
        bench.keys = keys
        write_inventory(bench.ansible.inventory, [], "")
        bench.make_releases(keys)
        res["release"] = {v: {k: r[k] for k in ("files", "bytes", "weights_bytes")} for v, r in bench.rel.items()}
        bench.up()
        out, dummy = bench.shell(1, "rsync --version | head -n1")
        host_rsync = re.search(r"rsync\s+version\s+\S+", out)
        res["host_rsync"] = host_rsync.group(0) if host_rsync else "rsync"
        log("push to 1 host, %d rounds" % args.runs)
        res["push1"] = bench.bench_push(1, args.runs, ["model_sync", "rsync", "rsync_default", "copy"])
        log("push diagnostics, %d rounds" % args.runs)
        res["diag"] = bench.bench_diag(args.runs)
        if args.hosts > 1 and args.multi_runs:
            log("push to %d hosts at once, %d round(s)" % (args.hosts, args.multi_runs))
            res["push4"] = bench.bench_push(args.hosts, args.multi_runs, ["model_sync", "rsync", "copy"])
        log("mirror pull, %d rounds" % args.runs)
        res["mirror"] = bench.bench_mirror(args.runs)
        log("weights-only upgrade, %d rounds" % args.runs)
        res["upgrade"] = bench.bench_upgrade(args.runs)
        log("no-op re-run, %d rounds" % args.noop_runs)
        res["noop"] = bench.bench_noop(args.noop_runs, args.hosts)
    finally:
        log("tearing down the fleet, the GnuPG agents and %s" % run_dir)
        _common.clean_up(FLEET_NAME, keys, run_dir, args.workdir)
    res["load_end"] = loadavg()
    res["duration_s"] = time.time() - started
    report(res, args, args.results)
    log("wrote %s, %s and the transfer section of %s" % (args.results, args.png, args.doc))
    an = res["summary"]
    p1 = an["push1"]
    print("push 1 host: model_sync %.2f s; throughput vs rsync %.2f x, time vs copy %.2f x; upgrade moved %d of %d changed "
          "bytes; no-op task %.2f s" % (p1["model_sync"]["wall_s"]["median"], p1["rsync"]["throughput_ratio"],
                                        p1["copy"]["time_ratio"], an["upgrade"]["bytes_transferred"], an["upgrade"]["changed_bytes"],
                                        an["noop"]["1"]["task_s"]["median"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
