# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers shared by the benchmarks in bench/ (not part of the collection's plugins).

- what the machine is (CPU, RAM, kernel, load), for the "Machine" table of each report;
- median / min / max summaries of timing series;
- rewriting one marked section of docs/performance.md, leaving the others alone;
- incompressible test data;
- running ansible / ansible-playbook / tests/fleet/fleet.py against a benchmark's fleet;
- a PNG canvas (standard library only: zlib + struct) with bars and a tiny bitmap font;
- the command-line options and the report blocks (machine table, notes, commands) the scripts share.

The scripts import it as ``import _common`` (they run as ``python bench/<script>.py``, so
bench/ is the first entry of sys.path).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "performance.md")
FLEET = os.path.join(REPO, "tests", "fleet", "fleet.py")
PUBLISH = os.path.join(REPO, "playbooks", "publish.yml")
STATE_ROOT = os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet")
MIB = 1 << 20
GIB = 1 << 30
GEN_CHUNK = 64 * MIB
# Options of the benchmarks' own OpenSSH sessions (ssh, sftp, rsync --rsh) to the fleet's hosts.
SSH_BATCH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR"]

DOC_HEADER = ("# Performance\n\n"
              "Benchmarks of modelops.fleet, measured on a real machine. Each section is written by its own script "
              "and rewritten only by it, between its `<!-- name:begin -->` and `<!-- name:end -->` markers: re-run the "
              "script rather than editing the numbers.\n")


class BenchError(Exception):
    """A benchmark step failed; the message names the command, host or file."""


# --------------------------------------------------------------------------- statistics

def median(values):
    return statistics.median(values) if values else None


def summary(values):
    """Median, min, max and count of a list of numbers (None for an empty list)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def spread(values):
    """(max - min) / median: how noisy a series of timings is."""
    if not values or not statistics.median(values):
        return 0.0
    return (max(values) - min(values)) / statistics.median(values)


def series(samples, key="wall_s"):
    """The values of key in a list of sample dicts, skipping samples without it."""
    return [s[key] for s in samples if s.get(key) is not None]


# --------------------------------------------------------------------------- the machine

def read_text(path, default=""):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return default


def first_line(cmd):
    """First line of what cmd prints (stdout, else stderr: `ssh -V` writes there), spaces collapsed."""
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    except OSError:
        return "not available"
    out = (proc.stdout or proc.stderr).strip()
    return " ".join(out.splitlines()[0].split()) if out else "not available"


def meminfo_kib(field):
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def loadavg():
    return read_text("/proc/loadavg").split()[:3]


def mount_of(path):
    """(fstype, source, mount point) of the filesystem holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("unknown", "unknown", "/")
    best_len = -1
    for line in read_text("/proc/mounts").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        source, mnt, fstype = fields[0], fields[1].replace("\\040", " "), fields[2]
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best_len:
            best, best_len = (fstype, source, mnt), len(mnt)
    return best


def machine_info(**extra):
    """CPU, RAM, kernel and Python of this machine; extra keys are added as given."""
    cpuinfo = read_text("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    info = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "sha_ni": "sha_ni" in flags,
        "aes_ni": "aes" in flags,
        "ram_gib": round((meminfo_kib("MemTotal") or 0) / (1 << 20), 1),
        "mem_available_gib_at_start": round((meminfo_kib("MemAvailable") or 0) / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    info.update(extra)
    return info


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def make_log(started=None):
    """A logger printing '[  12.3 s] message' to stderr, timed from started (default: now)."""
    t0 = time.time() if started is None else started

    def log(msg):
        print("[%6.1f s] %s" % (time.time() - t0, msg), file=sys.stderr, flush=True)
    return log


# --------------------------------------------------------------------------- formatting

def rewrite_from_results(args, finish, section):
    """--from-results: measure nothing, give the raw results of an earlier run to finish(res,
    args) (which redraws the chart and rewrites the doc section); 0, the exit status."""
    finish(read_json(args.from_results), args)
    what = "%s and the %s section" % (args.png, section) if getattr(args, "png", None) else "the %s section" % section
    print("rewrote %s of %s from %s" % (what, args.doc, args.from_results))
    return 0


def start_run(workdir, prefix="run."):
    """(start time, log function, a new run directory under workdir) of a benchmark run."""
    started = time.time()
    os.makedirs(workdir, exist_ok=True)
    return started, make_log(started), tempfile.mkdtemp(prefix=prefix, dir=workdir)


def fmt_size(n):
    if n >= GIB:
        return "%.2f GiB" % (n / GIB) if n % GIB else "%d GiB" % (n // GIB)
    if n >= MIB:
        return "%.1f MiB" % (n / MIB) if n % MIB else "%d MiB" % (n // MIB)
    if n >= 1024:
        return "%.1f KiB" % (n / 1024)
    return "%d B" % n


def fmt_seconds(x, digits=2):
    """'1.23 s' (digits after the point), or milliseconds below 0.1 s."""
    if x >= 0.1:
        return "%.*f s" % (digits, x)
    return "%.*f ms" % (max(digits - 1, 0), x * 1000)


def fmt_range(s, digits=2):
    """'1.23–1.45 s' for a summary's min and max (digits after the point), or
    milliseconds when the max is below 0.1 s."""
    if s["max"] < 0.1:
        return "%.*f–%.*f ms" % (max(digits - 1, 0), s["min"] * 1000, max(digits - 1, 0), s["max"] * 1000)
    return "%.*f–%.*f s" % (digits, s["min"], digits, s["max"])


def verdict(ok):
    return "**pass**" if ok else "**miss**"


# --------------------------------------------------------------------------- command line

def arg_parser(doc):
    """An ArgumentParser described by the first paragraph of doc (the script's docstring)."""
    return argparse.ArgumentParser(description=doc.split("\n\n", 1)[0])


def add_output_args(ap, section, workdir, results, png=None, workdir_help="controller-side data (deleted afterwards)"):
    """--workdir, --doc (the Markdown file whose section is rewritten), --results and, with png=(default, help), --png."""
    ap.add_argument("--workdir", default=workdir, help=workdir_help)
    ap.add_argument("--doc", default=DOC, help="Markdown file whose %s section is rewritten" % section)
    ap.add_argument("--results", default=results, help="JSON file for the raw results")
    if png:
        ap.add_argument("--png", default=png[0], help=png[1])


def add_from_results(ap):
    """--from-results: render an earlier run's raw results instead of measuring."""
    ap.add_argument("--from-results", metavar="JSON",
                    help="measure nothing: redraw the chart and rewrite the doc section from the raw results of an earlier run")


# --------------------------------------------------------------------------- the report

def markers(name):
    """The begin and end markers of the section called name in docs/performance.md."""
    return "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name


def section_head(begin, title, script, when, duration_s, own_script=None):
    """The first lines of a section: its begin marker, its title and an italic line that says which script wrote it,
    when, and how to run it again (own_script, e.g. "transfer.sh", for this section alone, or bench/run.sh)."""
    again = "`bash bench/run.sh`"
    if own_script:
        again = "`bash bench/%s` (this section only) or `bash bench/run.sh` (every benchmark)" % own_script
    return [begin, "## " + title, "",
            "_Generated by `bench/%s` on %s (run time %.0f s); do not edit by hand. Run it again with %s._" % (
                script, when, duration_s, again), ""]


def machine_table(m, res, rows, cpu_note=""):
    """The "Machine" section of a report: CPUs (cpu_note after the model), RAM, kernel, then rows ((label, text)
    pairs), then the load average at the start and at the end of the run."""
    return (["### Machine", "", "| | |", "|---|---|",
             "| CPUs | %d (`nproc`), %s%s |" % (m["nproc"], m["cpu_model"], cpu_note),
             "| RAM | %.1f GiB (%.1f GiB available at the start) |" % (m["ram_gib"], m["mem_available_gib_at_start"]),
             "| Kernel | Linux %s |" % m["kernel"]]
            + ["| %s | %s |" % row for row in rows]
            + ["| Load average | %s at the start, %s at the end |" % (" ".join(res["load_start"]), " ".join(res["load_end"]))])


def doc_link(doc_path, path):
    """path as a link in the Markdown file doc_path: relative to the file's directory."""
    return os.path.relpath(path, os.path.dirname(os.path.abspath(doc_path)))


def section_text(lines, notes, commands, name, end):
    """The whole section: lines, the "Reading the numbers" (notes) and "Commands" lists, the raw results file
    (bench/results/<name>.json) and the end marker."""
    lines = lines + ["", "### Reading the numbers", ""] + ["- " + n for n in notes]
    lines += ["", "### Commands", ""] + ["- " + c for c in commands]
    lines += ["- Raw samples: `bench/results/%s.json`." % name, end]
    return "\n".join(lines) + "\n"


def update_doc(path, section, begin, end):
    """Replace the text between begin and end in path with section (which carries the markers),
    or append it; create the file with the common header if needed. Atomic (temp file + rename)."""
    text = read_text(path)
    if not text:
        text = DOC_HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path):
    """The raw results of an earlier run (write_json's file)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- data

def write_big_file(path, size):
    """size bytes that do not compress: one random 64 MiB block written over and over, each
    copy with a different counter in its first 16 bytes (fast, and every block differs)."""
    block = bytearray(os.urandom(min(GEN_CHUNK, size) or 1))
    written = 0
    counter = 0
    with open(path, "wb") as f:
        while written < size:
            block[:16] = counter.to_bytes(16, "big")
            n = min(len(block), size - written)
            f.write(block if n == len(block) else block[:n])
            written += n
            counter += 1


# --------------------------------------------------------------------------- fleets and ansible

def fleet(*args, check=True):
    """Run tests/fleet/fleet.py with args; raise BenchError with its stderr when it fails."""
    proc = subprocess.run([sys.executable, FLEET] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    if check and proc.returncode != 0:
        raise BenchError("fleet.py %s failed: %s" % (" ".join(args), proc.stderr[-3000:]))
    return proc


def clean_up(fleet_name, keys, run_dir, workdir):
    """The end of a benchmark, also after a failure: fleet_name's fleet down (none when None), the GnuPG agents of
    keys stopped (if any), run_dir removed, and workdir too when nothing else is left in it."""
    if fleet_name:
        fleet("down", "--name", fleet_name, check=False)
    if keys is not None:
        keys.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        os.rmdir(workdir)
    except OSError:
        pass


def publish(ansible, keys, src, repo, release, seq, catalog, ev):
    """Sign the files in src with the publisher key of keys (tests/fleet/gpg_keys.py) and publish them to repo as
    release with playbooks/publish.yml, its extra vars written to ev; returns (proc, wall)."""
    with open(ev, "w", encoding="utf-8") as f:
        json.dump({"publish_source": src, "publish_repository": repo, "publish_release": release, "publish_sequence": seq,
                   "publish_gnupghome": keys.publisher.home, "publish_key_fingerprint": keys.publisher.fingerprint,
                   "publish_catalog": catalog}, f)
    return ansible.playbook(PUBLISH, ev)


def load_vllm_conftest(fleet_name):
    """tests/vllm/conftest.py (its Releases: publish both variants, upgrade.yml; the
    integration suite's Ansible runner), so that a benchmark drives a fleet as the tests
    do, with its OpenSSH masters where `fleet.py down --name fleet_name` ends them."""
    os.environ["MODELOPS_VLLM_FLEET"] = fleet_name
    path = os.path.join(REPO, "tests", "vllm", "conftest.py")
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("modelops_vllm_conftest_" + fleet_name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def container_pid(cid):
    proc = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", cid], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout.strip())


class Ansible(object):
    """Runs ansible / ansible-playbook against one benchmark fleet.

    inventory is one path or a list (given as -i each, in order); OpenSSH masters go to
    <state>/<fleet_name>/cp, where `fleet.py down --name <fleet_name>` finds and ends them, and
    the reports of the collection's rollout_report callback (if ansible.cfg enables it) to
    <state>/<fleet_name>/reports, out of the work tree.
    """

    def __init__(self, inventory, log, fleet_name="bench"):
        self.inventory = inventory
        self.log = log
        self.env = dict(os.environ)
        self.env.update({
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(STATE_ROOT, fleet_name, "cp"),
            "MODELOPS_REPORT_DIR": os.path.join(STATE_ROOT, fleet_name, "reports"),
        })

    def inventory_args(self):
        invs = [self.inventory] if isinstance(self.inventory, str) else list(self.inventory)
        out = []
        for inv in invs:
            out += ["-i", inv]
        return out

    def run(self, argv, env=None, check=True, timeout=1800):
        e = dict(self.env)
        e.update(env or {})
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)
        wall = time.perf_counter() - start
        if check and proc.returncode != 0:
            raise BenchError("%s failed (rc=%d):\n%s\n%s" % (" ".join(argv[:6]), proc.returncode,
                                                             proc.stdout[-4000:], proc.stderr[-2000:]))
        return proc, wall

    def adhoc(self, pattern, module, args, forks=None, oneline=True, check=True, env=None):
        argv = ["ansible", pattern] + self.inventory_args() + ["-m", module]
        if args:
            argv += ["-a", args]
        if forks:
            argv += ["-f", str(forks)]
        if oneline:
            argv.append("-o")
        return self.run(argv, check=check, env=env)

    def shell(self, pattern, cmd, forks=None):
        proc, wall = self.adhoc(pattern, "ansible.builtin.shell", cmd, forks=forks, oneline=False)
        return proc.stdout, wall

    def playbook(self, playbook, extra_vars, env=None, check=True, args=()):
        return self.run(["ansible-playbook"] + self.inventory_args() + [playbook, "-e", "@" + extra_vars] + list(args),
                        env=env, check=check)


def oneline_results(stdout):
    """{host: (status, result dict)} from `ansible -o` output."""
    out = {}
    for m in re.finditer(r"^(\S+) \| (\w+)!? => (\{.*\})$", stdout, re.M):
        out[m.group(1)] = (m.group(2), json.loads(m.group(3)))
    return out


def check_all_ok(stdout, hosts, what):
    res = oneline_results(stdout)
    for h in hosts:
        if h not in res or res[h][0] not in ("SUCCESS", "CHANGED"):
            raise BenchError("%s on %s did not succeed:\n%s" % (what, h, stdout[-3000:]))
    return res


# --------------------------------------------------------------------------- PNG

# 5x7 bitmap glyphs (rows top to bottom, 5 bits each, MSB left) for chart labels.
_FONT = {
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    ".": "00000 00000 00000 00000 00000 01100 01100", "+": "00000 00100 00100 11111 00100 00100 00000",
    "-": "00000 00000 00000 11111 00000 00000 00000", "/": "00001 00010 00010 00100 01000 01000 10000",
    "(": "00010 00100 01000 01000 01000 00100 00010", ")": "01000 00100 00010 00010 00010 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000", "x": "00000 00000 10001 01010 00100 01010 10001",
    "a": "00000 00000 01110 00001 01111 10001 01111", "b": "10000 10000 10110 11001 10001 10001 11110",
    "c": "00000 00000 01110 10000 10000 10001 01110", "d": "00001 00001 01101 10011 10001 10001 01111",
    "e": "00000 00000 01110 10001 11111 10000 01110", "f": "00110 01001 01000 11100 01000 01000 01000",
    "g": "00000 01111 10001 10001 01111 00001 01110", "h": "10000 10000 10110 11001 10001 10001 10001",
    "i": "00100 00000 01100 00100 00100 00100 01110", "k": "10000 10000 10010 10100 11000 10100 10010",
    "l": "01100 00100 00100 00100 00100 00100 01110", "m": "00000 00000 11010 10101 10101 10001 10001",
    "n": "00000 00000 10110 11001 10001 10001 10001", "o": "00000 00000 01110 10001 10001 10001 01110",
    "p": "00000 00000 11110 10001 11110 10000 10000", "r": "00000 00000 10110 11001 10000 10000 10000",
    "s": "00000 00000 01110 10000 01110 00001 11110", "t": "01000 01000 11100 01000 01000 01001 00110",
    "u": "00000 00000 10001 10001 10001 10011 01101", "v": "00000 00000 10001 10001 10001 01010 00100",
    "w": "00000 00000 10001 10001 10101 10101 01010", "y": "00000 00000 10001 10001 01111 00001 01110",
    "z": "00000 00000 11111 00010 00100 01000 11111",
}


class Canvas(object):
    """An RGB image in memory, written as PNG with the standard library only."""

    def __init__(self, width, height, bg=(255, 255, 255)):
        self.w, self.h = width, height
        self.rows = [bytearray(bytes(bg) * width) for dummy in range(height)]

    def rect(self, x0, y0, x1, y1, color):
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        if x1 <= x0:
            return
        for y in range(y0, y1):
            self.rows[y][x0 * 3:x1 * 3] = bytes(color) * (x1 - x0)

    def text(self, x, y, s, color=(0, 0, 0), scale=1):
        """Draw s with the 5x7 font, top-left at (x, y); unknown characters are skipped as blanks.
        Returns the x after the last glyph."""
        for ch in s:
            glyph = _FONT.get(ch) or _FONT.get(ch.lower()) or _FONT[" "]
            for row, bits in enumerate(glyph.split()):
                for col, bit in enumerate(bits):
                    if bit == "1":
                        self.rect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, color)
            x += 6 * scale
        return x

    @staticmethod
    def text_width(s, scale=1):
        return 6 * scale * len(s)

    def png(self):
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(tag, data):
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

    def save(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self.png())


def nice_step(top):
    """A round grid step that gives at most 10 grid lines up to top."""
    for step in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300):
        if top / step <= 10:
            return step
    return 600


def chart_axis(top, headroom):
    """(grid step, end of the axis) of a chart of values up to top: top times headroom, rounded up past a whole step."""
    top *= headroom
    step = nice_step(top)
    return step, step * (int(top / step) + 1)
