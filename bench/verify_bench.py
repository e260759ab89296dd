# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Benchmark: the cost of verifying a model release against its manifest.

Every measurement is taken side by side with a reference on the same machine and the
same files, interleaved (ours, reference, ours, reference, ...) and summarised by the
median:

1. Cold verify (no hash cache, every byte hashed) of a multi-GiB release, by the
   library in process and by the ``model_verify`` module process as Ansible runs it,
   against ``sha256sum`` (and, for context, ``openssl dgst -sha256``).
2. Warm re-verify of the same release with the hash cache, library and module process.
3. Peak RSS of the module process for the large and for a small release, and of
   ``sha256sum`` for both, each in a fresh child measured by GNU time.
4. A sweep of the read chunk size of ``sha256_file`` (its ``CHUNK`` constant).

The release data lives under /var/tmp/modelops-bench/ and is deleted at the end, also on
failure. The raw results go to bench/results/verify.json; the "Verification" section of
docs/performance.md (the text between the verify markers) is rewritten from them.

Run it with ``bash bench/run.sh`` (see bench/README.md for the options).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import _common
from _common import (GIB, MIB, REPO, first_line, fmt_range, fmt_seconds, fmt_size, loadavg, make_log, median, meminfo_kib, mount_of,
                     read_text, series, spread, summary, utc_now, verdict, write_big_file, write_json)

COLLECTIONS = os.path.join(REPO, ".collections")
RELEASE_MODULE = "ansible_collections.modelops.fleet.plugins.module_utils._release"
VERIFY_MODULE = "ansible_collections.modelops.fleet.plugins.modules.model_verify"
RESULTS = os.path.join(REPO, "bench", "results", "verify.json")
BEGIN, END = _common.markers("verify")
GNU_TIME = "/usr/bin/time"

MODEL, VERSION = "bench-model", "2507"
BIG_VARIANT, SMALL_VARIANT = "gguf-q4_k_m", "gguf-q8_0"
BIG_FILE = "model.gguf"

# Goals from the issue.
COLD_RATIO_GOAL = 1.10      # cold verify time / sha256sum time
WARM_SECONDS_GOAL = 0.5     # cached re-verify of the multi-GB release
RSS_GROWTH_GOAL_KIB = 4096  # "constant in file size": big minus small peak RSS


def release_lib():
    """Import the collection's _release module from this checkout."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return importlib.import_module(RELEASE_MODULE)


# --------------------------------------------------------------------------- helpers

def machine_info(workdir):
    fstype, source, mnt = mount_of(workdir)
    sha256sum = shutil.which("sha256sum") or "sha256sum"
    ldd_out = ""
    if shutil.which("ldd"):
        ldd_out = subprocess.run(["ldd", sha256sum], check=False, capture_output=True, text=True).stdout
    return _common.machine_info(
        python_openssl=ssl.OPENSSL_VERSION,
        sha256sum=first_line([sha256sum, "--version"]),
        sha256sum_uses_libcrypto="libcrypto" in ldd_out,
        openssl=first_line(["openssl", "version"]) if shutil.which("openssl") else None,
        gnu_time=first_line([GNU_TIME, "--version"]),
        workdir=workdir,
        filesystem="%s (%s mounted at %s)" % (fstype, source, mnt),
    )


# --------------------------------------------------------------------------- data

def write_small_files(directory):
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": {"tok%d" % i: i for i in range(20000)}}}
    config = {"architecture": "llama", "context_length": 4096, "quantization": "q4_k_m"}
    for name, data in (("tokenizer.json", tokenizer), ("config.json", config)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def make_release(lib, repo_root, variant, size):
    """Create <repo_root>/bench-model/2507/<variant>/ with the big file, the two small
    files and the manifest built by the library; return (directory, manifest, files)."""
    directory = os.path.join(repo_root, MODEL, VERSION, variant)
    os.makedirs(directory)
    write_big_file(os.path.join(directory, BIG_FILE), size)
    write_small_files(directory)
    meta = {"model_name": MODEL, "version": VERSION, "variant": variant, "sequence": 1, "expires": "2099-01-01T00:00:00Z"}
    manifest = lib.build_manifest(directory, meta)
    with open(os.path.join(directory, lib.MANIFEST), "wb") as f:
        f.write(lib.canonical_json(manifest))
    files = [os.path.join(directory, entry["path"]) for entry in manifest["files"]]
    return directory, manifest, files


def warm_page_cache(paths):
    """Read every byte once, untimed, so that every tool sees the data in the page cache."""
    buf = bytearray(8 * MIB)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# --------------------------------------------------------------------------- runners

def run_child(cmd, env=None):
    """Run cmd under GNU time; return wall seconds, CPU seconds, peak RSS (KiB) and stdout.

    The peak RSS comes from GNU time (a small C program that forks the command), not from
    this process's RUSAGE_CHILDREN: Linux carries the RSS high-water mark of the forking
    process across exec, so a child forked from this Python process would report at least
    this process's RSS.
    """
    with tempfile.NamedTemporaryFile(prefix="time.", suffix=".txt") as tfile, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", tfile.name] + cmd, check=False, stdout=out, stderr=err, env=env)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError("%s exited with %d:\n%s%s" % (" ".join(cmd), proc.returncode, stdout[-2000:], stderr[-2000:]))
        lines = read_text(tfile.name).split()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "maxrss_kib": int(lines[-1]), "stdout": stdout}


def check_hashes(output, manifest, directory, style):
    """Check the hashes printed by sha256sum / openssl against the manifest."""
    want = {os.path.join(directory, f["path"]): f["sha256"] for f in manifest["files"]}
    got = {}
    for line in output.splitlines():
        digest, path = line.split(None, 1)
        got[path.lstrip("*" if style == "openssl" else "")] = digest
    if got != want:
        raise RuntimeError("%s printed hashes that differ from the manifest: %r" % (style, got))


class Tools(object):
    """The things being timed, each returning one sample dict."""

    def __init__(self, lib, workdir):
        self.lib = lib
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS, os.environ.get("PYTHONPATH")) if p)
        self.args_count = 0

    def library(self, directory, manifest, cache_path=None):
        cache = self.lib.HashCache(cache_path) if cache_path else None
        cpu0 = time.process_time()
        start = time.perf_counter()
        if cache is None:
            stats = self.lib.verify_tree(directory, manifest, cache=None, full=True)
        else:
            stats = self.lib.verify_tree(directory, manifest, cache=cache)
            cache.save()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        return {"wall_s": wall, "cpu_s": cpu, "bytes_read": stats["bytes_read"], "files_cached": stats["files_cached"]}

    def module(self, directory, cache_path=None):
        """The module process as Ansible runs it on the target: python -m <module> <args.json>."""
        self.args_count += 1
        args_path = os.path.join(self.workdir, "args-%d.json" % self.args_count)
        args = {"path": directory, "trusted_fingerprints": ["X"], "keyring": ["/dev/null"],
                "hash_cache": cache_path or "", "full": cache_path is None}
        with open(args_path, "w", encoding="utf-8") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        sample = run_child([sys.executable, "-m", VERIFY_MODULE, args_path], env=self.env)
        result = json.loads(sample.pop("stdout"))
        if result.get("failed"):
            raise RuntimeError("model_verify failed: %s" % result.get("msg"))
        sample.update(bytes_read=result["bytes_read"], files_cached=result["files_cached"])
        return sample

    def sha256sum(self, files, manifest, directory):
        sample = run_child(["sha256sum"] + files)
        check_hashes(sample.pop("stdout"), manifest, directory, "sha256sum")
        return sample

    def openssl(self, files, manifest, directory):
        sample = run_child(["openssl", "dgst", "-sha256", "-r"] + files)
        check_hashes(sample.pop("stdout"), manifest, directory, "openssl")
        return sample

    def floor(self):
        """Python start-up plus importing AnsibleModule: the least a module process costs."""
        sample = run_child([sys.executable, "-c", "from ansible.module_utils.basic import AnsibleModule"], env=self.env)
        sample.pop("stdout")
        return sample


def interleave(runs, named_calls, log):
    """Run every call `runs` times, round-robin, rotating the order each round so no tool
    is always first; return {name: [samples]}."""
    samples = {name: [] for name, dummy in named_calls}
    for i in range(runs):
        order = named_calls[i % len(named_calls):] + named_calls[:i % len(named_calls)]
        for name, call in order:
            sample = call()
            samples[name].append(sample)
            log("  round %d/%d %-22s %8.3f s  cpu %7.3f s%s" % (
                i + 1, runs, name, sample["wall_s"], sample["cpu_s"],
                "  rss %d KiB" % sample["maxrss_kib"] if "maxrss_kib" in sample else ""))
    return samples


# --------------------------------------------------------------------------- benchmarks

def bench_cold(tools, big, runs, log):
    directory, manifest, files = big
    total = sum(f["size"] for f in manifest["files"])
    calls = [
        ("library", lambda: tools.library(directory, manifest)),
        ("sha256sum", lambda: tools.sha256sum(files, manifest, directory)),
        ("module", lambda: tools.module(directory)),
    ]
    if shutil.which("openssl"):
        calls.append(("openssl", lambda: tools.openssl(files, manifest, directory)))
    log("cold verify of %d bytes, %d rounds" % (total, runs))
    samples = interleave(runs, calls, log)
    for name in ("library", "module"):
        for s in samples[name]:
            if s["bytes_read"] != total:
                raise RuntimeError("cold %s run read %d bytes, expected %d" % (name, s["bytes_read"], total))
    return {"bytes": total, "samples": samples}


def bench_warm(tools, big, runs, cache_path, log):
    directory, manifest, dummy = big
    log("warm re-verify: populating the hash cache with one module run")
    populate = tools.module(directory, cache_path)
    if populate["bytes_read"] != sum(f["size"] for f in manifest["files"]):
        raise RuntimeError("the populating run did not hash every file")
    calls = [
        ("library", lambda: tools.library(directory, manifest, cache_path)),
        ("module", lambda: tools.module(directory, cache_path)),
        ("python_floor", tools.floor),
    ]
    log("warm re-verify, %d rounds" % runs)
    samples = interleave(runs, calls, log)
    for name in ("library", "module"):
        for s in samples[name]:
            if s["bytes_read"] != 0 or s["files_cached"] != len(manifest["files"]):
                raise RuntimeError("warm %s run hashed files again: %r" % (name, s))
    return {"populate": populate, "samples": samples}


def bench_small(tools, small, runs, log):
    directory, manifest, files = small
    calls = [
        ("module", lambda: tools.module(directory)),
        ("sha256sum", lambda: tools.sha256sum(files, manifest, directory)),
    ]
    log("small release (peak RSS), %d rounds" % runs)
    return {"bytes": sum(f["size"] for f in manifest["files"]), "samples": interleave(runs, calls, log)}


def bench_chunks(lib, path, chunks, runs, log):
    """Time sha256_file(path, chunk) for each chunk size, interleaved."""
    calls = []
    for chunk in chunks:
        def call(chunk=chunk):
            cpu0 = time.process_time()
            start = time.perf_counter()
            lib.sha256_file(path, chunk=chunk)
            return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0}
        calls.append(("chunk %d KiB" % (chunk >> 10), call))
    log("sha256_file chunk sweep on %s, %d rounds" % (path, runs))
    samples = interleave(runs, calls, log)
    return [{"chunk": chunk, "samples": samples["chunk %d KiB" % (chunk >> 10)]} for chunk in chunks]


# --------------------------------------------------------------------------- analysis

def analyse(res):
    """Summaries, ratios and goal checks derived from the raw samples."""
    cold = res["cold"]["samples"]
    total = res["cold"]["bytes"]
    out = {"cold": {}, "warm": {}, "memory": {}, "chunks": []}
    ref = median(series(cold["sha256sum"]))
    for name, samples in cold.items():
        wall = series(samples)
        out["cold"][name] = {"wall_s": summary(wall), "cpu_s": summary(series(samples, "cpu_s")),
                             "mb_per_s": total / 1e6 / median(wall), "spread": spread(wall)}
    for name in ("library", "module"):
        entry = out["cold"][name]
        entry["ratio_vs_sha256sum"] = entry["wall_s"]["median"] / ref
        entry["cpu_ratio_vs_sha256sum"] = entry["cpu_s"]["median"] / out["cold"]["sha256sum"]["cpu_s"]["median"]
        entry["goal_met"] = entry["ratio_vs_sha256sum"] <= COLD_RATIO_GOAL
        if "openssl" in cold:
            entry["ratio_vs_openssl"] = entry["wall_s"]["median"] / out["cold"]["openssl"]["wall_s"]["median"]
            entry["cpu_ratio_vs_openssl"] = entry["cpu_s"]["median"] / out["cold"]["openssl"]["cpu_s"]["median"]
    warm = res["warm"]["samples"]
    for name, samples in warm.items():
        out["warm"][name] = {"wall_s": summary(series(samples)), "cpu_s": summary(series(samples, "cpu_s"))}
    for name in ("library", "module"):
        entry = out["warm"][name]
        entry["goal_met"] = entry["wall_s"]["median"] < WARM_SECONDS_GOAL
        entry["speedup_vs_cold_sha256sum"] = ref / entry["wall_s"]["median"]
    small = res["small"]["samples"]
    for tool in ("module", "sha256sum"):
        big_rss = max(series(cold[tool], "maxrss_kib"))
        small_rss = max(series(small[tool], "maxrss_kib"))
        out["memory"][tool] = {"big_kib": big_rss, "small_kib": small_rss, "growth_kib": big_rss - small_rss,
                               "big_bytes": total, "small_bytes": res["small"]["bytes"]}
    out["memory"]["module"]["goal_met"] = out["memory"]["module"]["growth_kib"] <= RSS_GROWTH_GOAL_KIB
    for entry in res["chunks"]:
        wall = series(entry["samples"])
        cpu = series(entry["samples"], "cpu_s")
        out["chunks"].append({"chunk": entry["chunk"], "wall_s": summary(wall), "cpu_s": summary(cpu),
                              "mb_per_s": entry["bytes"] / 1e6 / median(wall), "cpu_mb_per_s": entry["bytes"] / 1e6 / median(cpu)})
    return out


# --------------------------------------------------------------------------- report

def fmt_pct(ratio):
    return "%+.1f%%" % ((ratio - 1) * 100)


def render(res, an):
    m = res["machine"]
    p = res["params"]
    cold, warm, mem = an["cold"], an["warm"], an["memory"]
    total = res["cold"]["bytes"]
    lines = _common.section_head(BEGIN, "Verification", "verify_bench.py", res["finished"], res["duration_s"]) + [
        "What it costs to check a release directory against its manifest (`model_verify`, the part that runs "
        "where the files are). Every tool is timed on the same files on the same machine, interleaved "
        "round by round (the order rotates each round), %d rounds each; the tables give medians. "
        "MB/s are 10^6 bytes per second of wall time." % p["runs"],
        "",
    ] + _common.machine_table(m, res, [
        ("Python", "%s, hashlib on %s" % (m["python"], m["python_openssl"])),
        ("sha256sum", "%s (%s libcrypto)" % (m["sha256sum"], "linked to" if m["sha256sum_uses_libcrypto"] else "not linked to")),
        ("openssl", m["openssl"] or "not installed"),
        ("Data directory", "`%s` on %s" % (m["workdir"], m["filesystem"])),
    ], cpu_note=", SHA-NI" if m["sha_ni"] else ", no SHA-NI") + [
        "",
        "### Release under test",
        "",
        "`%s/%s/%s/`: `%s` (%s of random data: one 64 MiB block from `os.urandom` repeated with a different "
        "counter in each copy, so it does not compress) plus `tokenizer.json` and `config.json`, %d bytes in all; "
        "the manifest is built by `build_manifest`. The small release for the memory comparison is the same "
        "layout with a %s model file (`%s`)." % (
            MODEL, VERSION, BIG_VARIANT, BIG_FILE, fmt_size(p["size_bytes"]), total, fmt_size(p["small_bytes"]), SMALL_VARIANT),
        "",
        "### Results",
        "",
        "| Measurement | Ours (median) | Reference (median) | Ratio ours/ref | Goal | Result |",
        "|---|---|---|---|---|---|",
    ]
    ref = cold["sha256sum"]
    for name, label in (("library", "Cold verify, library `verify_tree(full=True)`"),
                        ("module", "Cold verify, module process")):
        c = cold[name]
        lines.append("| %s | %s (%.0f MB/s) | `sha256sum`: %s (%.0f MB/s) | %.2f | ≤ %.2f | %s |" % (
            label, fmt_seconds(c["wall_s"]["median"], 3), c["mb_per_s"], fmt_seconds(ref["wall_s"]["median"], 3), ref["mb_per_s"],
            c["ratio_vs_sha256sum"], COLD_RATIO_GOAL, verdict(c["goal_met"])))
    for name, label in (("library", "Warm re-verify (hash cache), library"),
                        ("module", "Warm re-verify (hash cache), module process")):
        w = warm[name]
        lines.append("| %s | %s | cold `sha256sum`: %s | %.2g | < %.1f s | %s |" % (
            label, fmt_seconds(w["wall_s"]["median"], 3), fmt_seconds(ref["wall_s"]["median"], 3),
            w["wall_s"]["median"] / ref["wall_s"]["median"], WARM_SECONDS_GOAL, verdict(w["goal_met"])))
    mm, ms = mem["module"], mem["sha256sum"]
    lines.append("| Peak RSS, module process, %s vs %s model file | %d KiB vs %d KiB (%+d KiB) | `sha256sum`: %d KiB vs %d KiB | %.2f "
                 "| constant in file size (growth ≤ %d KiB) | %s |" % (
                     fmt_size(p["size_bytes"]), fmt_size(p["small_bytes"]), mm["big_kib"], mm["small_kib"], mm["growth_kib"],
                     ms["big_kib"], ms["small_kib"], mm["big_kib"] / mm["small_kib"], RSS_GROWTH_GOAL_KIB, verdict(mm["goal_met"])))
    lines += [
        "",
        "The memory ratio is big/small for the module process. All cold timings with their spread:",
        "",
        "| Cold verify of %s | Median wall | Min–max wall | Median CPU (user+sys) | Throughput | vs `sha256sum` | vs `openssl dgst` |" % fmt_size(total),
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("library", "library, in process"), ("module", "module process"),
                        ("sha256sum", "`sha256sum`"), ("openssl", "`openssl dgst -sha256`")):
        if name not in cold:
            continue
        c = cold[name]
        lines.append("| %s | %s | %s | %s | %.0f MB/s | %s | %s |" % (
            label, fmt_seconds(c["wall_s"]["median"], 3), fmt_range(c["wall_s"], 3), fmt_seconds(c["cpu_s"]["median"], 3), c["mb_per_s"],
            "%.2f" % c["ratio_vs_sha256sum"] if "ratio_vs_sha256sum" in c else "—",
            "%.2f" % c["ratio_vs_openssl"] if "ratio_vs_openssl" in c else "—"))
    lines += [
        "",
        "| Warm re-verify | Median wall | Min–max wall | Median CPU (user+sys) |",
        "|---|---|---|---|",
    ]
    for name, label in (("library", "library (load cache + `verify_tree`)"), ("module", "module process"),
                        ("python_floor", "floor: `python -c 'from ansible.module_utils.basic import AnsibleModule'`")):
        w = warm[name]
        lines.append("| %s | %s | %s | %s |" % (label, fmt_seconds(w["wall_s"]["median"], 3), fmt_range(w["wall_s"], 3), fmt_seconds(w["cpu_s"]["median"], 3)))
    if an["chunks"]:
        lines += [
            "",
            "`sha256_file` read chunk size (`CHUNK`, currently %d KiB), in process on the %s file, %d rounds:" % (
                res["chunk_constant"] >> 10, fmt_size(p["size_bytes"]), p["chunk_runs"]),
            "",
            "| Chunk | Median wall | Min–max wall | Throughput (wall) | Median CPU | Throughput (CPU) |",
            "|---|---|---|---|---|---|",
        ]
        for c in an["chunks"]:
            lines.append("| %d KiB | %s | %s | %.0f MB/s | %s | %.0f MB/s |" % (
                c["chunk"] >> 10, fmt_seconds(c["wall_s"]["median"], 3), fmt_range(c["wall_s"], 3), c["mb_per_s"],
                fmt_seconds(c["cpu_s"]["median"], 3), c["cpu_mb_per_s"]))
    return _common.section_text(lines, notes(res, an), commands(), "verify", END)


def commands():
    """The "Commands" list of the report: how each tool was run."""
    return [
        "Library: `verify_tree(release, manifest, cache=None, full=True)` in the benchmark's own process "
        "(warm: `HashCache(path)`, `verify_tree(..., cache=cache)`, `cache.save()`).",
        "Module process, as Ansible runs it on a target: `PYTHONPATH=<repo>/.collections python -m %s args.json` with "
        "`{\"ANSIBLE_MODULE_ARGS\": {\"path\": <release>, \"trusted_fingerprints\": [\"X\"], \"keyring\": [\"/dev/null\"], "
        "\"hash_cache\": \"\", \"full\": true}}` (warm: `\"hash_cache\": <file>, \"full\": false`; the cache is filled by "
        "one module run first). Its JSON output is checked: not failed, every byte read when cold, every file from the "
        "cache when warm." % VERIFY_MODULE,
        "Reference: `sha256sum <the 3 files>`; context: `openssl dgst -sha256 -r <the 3 files>`; both outputs are "
        "checked against the manifest.",
        "Every child process runs under `%s -f %%M` for its peak RSS; wall time is measured around it." % GNU_TIME,
    ]


def notes(res, an):
    m = res["machine"]
    cold, warm, mem = an["cold"], an["warm"], an["memory"]
    lib, mod, ref = cold["library"], cold["module"], cold["sha256sum"]
    out = []
    out.append(
        "Cold means no hash cache: every byte is read and hashed. It does not mean an empty page cache: the %s "
        "release fits in RAM and was read once, untimed, before the first timed run, so every tool reads it from the "
        "page cache and the numbers measure hashing, not the disk. On a first read from disk the disk sets the pace "
        "for every tool alike." % fmt_size(res["cold"]["bytes"]))
    out.append(
        "The signature check (GnuPG, trusted fingerprints, expiry, anti-rollback catalog) runs on the controller in the "
        "action plugin, once per release and on a few kilobytes; it is not part of these measurements.")
    for name, c in (("library", lib), ("module process", mod)):
        if c["goal_met"]:
            out.append("Cold verify, %s: %.2f × the time of `sha256sum` (%s; %.2f × in CPU time), within the goal of %.2f." % (
                name, c["ratio_vs_sha256sum"], fmt_pct(c["ratio_vs_sha256sum"]), c["cpu_ratio_vs_sha256sum"], COLD_RATIO_GOAL))
        else:
            out.append("Cold verify, %s: **misses** the goal: %.2f × the time of `sha256sum` (%.2f × in CPU time), %.0f%% over "
                       "the %.0f%% allowed; the comparison with `openssl dgst` below shows where the time goes." % (
                           name, c["ratio_vs_sha256sum"], c["cpu_ratio_vs_sha256sum"],
                           (c["ratio_vs_sha256sum"] - 1) * 100, (COLD_RATIO_GOAL - 1) * 100))
    if lib["ratio_vs_sha256sum"] < 1 and not m["sha256sum_uses_libcrypto"]:
        out.append(
            "Why faster than `sha256sum`: Python's `hashlib` uses OpenSSL's SHA-256, which uses the CPU's SHA "
            "extensions%s, while this `sha256sum` (coreutils, not linked to libcrypto) runs gnulib's portable C "
            "implementation. The goal is met by the choice of hash library, not by anything clever in the read loop; "
            "without SHA-NI OpenSSL falls back to vector code and the gap narrows (not measured here)." % (" (SHA-NI, present here)" if m["sha_ni"] else ""))
    if "ratio_vs_openssl" in lib:
        floor = warm["python_floor"]["wall_s"]["median"]
        text = ("For context, `openssl dgst -sha256` runs the same OpenSSL SHA-256 code without Python: the library takes "
                "%.2f × its time (%s), the module process %.2f × (%s); in CPU time %.2f × and %.2f ×. " % (
                    lib["ratio_vs_openssl"], fmt_pct(lib["ratio_vs_openssl"]), mod["ratio_vs_openssl"], fmt_pct(mod["ratio_vs_openssl"]),
                    lib["cpu_ratio_vs_openssl"], mod["cpu_ratio_vs_openssl"]))
        if lib["ratio_vs_openssl"] <= 1.03:
            text += ("The library keeps pace with it: one `readinto` and one `update` call per %d KiB chunk cost next to "
                     "nothing beside hashing the chunk (`openssl dgst` itself reads in 8 KiB pieces). " % (res["chunk_constant"] >> 10))
        else:
            text += ("The library's extra %.0f%% is Python around the hash: one `readinto` into a reused buffer and one "
                     "`update` call per %d KiB chunk. " % ((lib["ratio_vs_openssl"] - 1) * 100, res["chunk_constant"] >> 10))
        text += ("The module process adds a fixed cost, Python start-up and importing Ansible's module runtime (%s, the "
                 "floor row of the warm table), %.0f%% of its cold time here; the bigger the release, the smaller that share." % (
                     fmt_seconds(floor, 3), 100 * floor / mod["wall_s"]["median"]))
        out.append(text)
    current = next((c for c in an["chunks"] if c["chunk"] == res["chunk_constant"]), None)
    if current:
        out.append(chunk_note(an["chunks"], current))
    wmod, wfloor = warm["module"], warm["python_floor"]
    text = ("Warm re-verify (goal < %.1f s): the cached check itself, one `stat` per file plus reading the cache file, "
            "takes %s in the library. The module process takes %s (%s CPU), nearly all of it the fixed cost of any "
            "Ansible module process: Python start-up and importing `AnsibleModule` alone take %s (%s CPU), the floor row." % (
                WARM_SECONDS_GOAL, fmt_seconds(warm["library"]["wall_s"]["median"], 3), fmt_seconds(wmod["wall_s"]["median"], 3),
                fmt_seconds(wmod["cpu_s"]["median"], 3), fmt_seconds(wfloor["wall_s"]["median"], 3), fmt_seconds(wfloor["cpu_s"]["median"], 3)))
    if wfloor["wall_s"]["median"] > wmod["wall_s"]["median"]:
        text += (" That the floor's median wall time came out above the module's is noise from the other work on the "
                 "machine (see the min–max columns); the CPU times are the fairer comparison.")
    out.append(text)
    mm, ms = mem["module"], mem["sha256sum"]
    growth = ("memory does not grow with the file (one reusable %d KiB read buffer)" % (res["chunk_constant"] >> 10)
              if mm["goal_met"] else "**memory grows with the file size**, which it should not")
    out.append(
        "Peak RSS: the module process peaks at %d KiB verifying %s and %d KiB verifying %s (%+d KiB): %s. Almost all "
        "of it is the Python interpreter and Ansible's module runtime; `sha256sum` needs %d KiB / %d KiB. Peak RSS "
        "does not count the page cache. Measured with GNU time; the maximum over the rounds." % (
            mm["big_kib"], fmt_size(mm["big_bytes"]), mm["small_kib"], fmt_size(mm["small_bytes"]), mm["growth_kib"],
            growth, ms["big_kib"], ms["small_kib"]))
    noisy = [name for name, c in cold.items() if c["spread"] > 0.10]
    widest_cpu = max(cold, key=lambda name: spread(series(res["cold"]["samples"][name], "cpu_s")))
    load = float(res["load_start"][0])
    if noisy or load > 0.5 * (m["nproc"] or 1):
        out.append(
            "Noise: other work was running on this %d-CPU machine during the run (load average %s at the start, %s at "
            "the end)%s. The hash is single-threaded, so each tool competes for a CPU; interleaving the tools round by "
            "round and taking medians keeps the comparison fair, but the absolute MB/s may be lower than on an idle "
            "machine. CPU time is less disturbed than wall time, though not immune on shared hardware: the widest CPU-time "
            "spread was %s's, %s." % (
                m["nproc"], res["load_start"][0], res["load_end"][0],
                "; the min–max spread of %s exceeded 10%% of the median" % ", ".join(noisy) if noisy else "",
                widest_cpu, fmt_range(cold[widest_cpu]["cpu_s"], 3)))
    else:
        out.append("The machine was otherwise idle (load average %s at the start, %s at the end)." % (res["load_start"][0], res["load_end"][0]))
    return out


def chunk_note(chunks, current):
    """What the chunk-size sweep says about the current CHUNK.

    Judged on CPU time: the hash is single-threaded and the data is in the page cache, so CPU
    time is the work done, while wall time also counts waiting for a CPU other jobs hold.
    """
    best = max(chunks, key=lambda c: c["cpu_mb_per_s"])
    slowest = min(chunks, key=lambda c: c["cpu_mb_per_s"])
    speeds = ", ".join("%d KiB: %.0f" % (c["chunk"] >> 10, c["cpu_mb_per_s"]) for c in chunks)
    range_pct = (best["cpu_mb_per_s"] / slowest["cpu_mb_per_s"] - 1) * 100
    gap_pct = (best["cpu_mb_per_s"] / current["cpu_mb_per_s"] - 1) * 100
    text = ("Chunk size, judged on CPU time (wall time also counts waiting for a CPU held by other work): %s MB/s, "
            "%.1f%% between the fastest and the slowest; the current `CHUNK` of %d KiB " % (speeds, range_pct, current["chunk"] >> 10))
    if current is best:
        text += "was the fastest"
    else:
        text += "was %.1f%% behind the fastest (%d KiB)" % (gap_pct, best["chunk"] >> 10)
    if gap_pct <= 5:
        text += "; less than 5% is not a clear win over this machine's noise, so `CHUNK` stays."
    else:
        text += ": more than 5%, so a different `CHUNK` may help; re-run the sweep on an idle machine before changing it."
    return text


# --------------------------------------------------------------------------- main

def parse_args(argv):
    ap = _common.arg_parser(__doc__)
    ap.add_argument("--size-gb", type=float, default=4.0, help="size of the large model file in GiB (default 4)")
    ap.add_argument("--small-mb", type=int, default=64, help="size of the small release's model file in MiB (default 64)")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds per measurement (default 5)")
    ap.add_argument("--chunk-runs", type=int, default=3, help="rounds of the chunk-size sweep, 0 to skip it (default 3)")
    ap.add_argument("--chunks", default="64,256,1024,4096", help="chunk sizes in KiB for the sweep (default 64,256,1024,4096)")
    _common.add_output_args(ap, "verify", "/var/tmp/modelops-bench", RESULTS,
                            workdir_help="where the release data is written (deleted afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the release data (for debugging)")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite the doc section from the raw results of the last run (--results)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.size_gb <= 0 or args.small_mb < 1:
        ap.error("--runs, --size-gb and --small-mb must be positive")
    try:
        args.chunk_sizes = [int(c) << 10 for c in args.chunks.split(",")]
    except ValueError:
        ap.error("--chunks: expected chunk sizes in KiB separated by commas, e.g. 64,256,1024")
    if min(args.chunk_sizes) < 1:
        ap.error("--chunks: chunk sizes must be positive")
    return args


def report(res, args, results=None):
    """Summaries and the doc section from the raw results; with results, the results file too (written before the
    doc, so that a failing report leaves the samples)."""
    res["summary"] = analyse(res)
    if results:
        write_json(results, res)
    _common.update_doc(args.doc, render(res, res["summary"]), BEGIN, END)


def main(argv=None):
    args = parse_args(argv)
    if args.render_only:
        res = _common.read_json(args.results)
        report(res, args)
        print("rewrote the verify section of %s from %s (run of %s)" % (args.doc, args.results, res["finished"]))
        return 0
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit("%s (GNU time, Debian package 'time') is needed to measure peak RSS: apt-get install time" % GNU_TIME)
    lib = release_lib()
    started = time.time()
    log = make_log(started)
    size = int(args.size_gb * GIB)
    small_size = args.small_mb * MIB
    mem_needed_kib = (size + small_size) * 2 // 1024
    os.makedirs(args.workdir, exist_ok=True)
    if (meminfo_kib("MemAvailable") or 0) < mem_needed_kib:
        log("WARNING: less than twice the data size is available as RAM; the files may not stay in the page cache")
    run_dir = tempfile.mkdtemp(prefix="verify.", dir=args.workdir)
    res = {"params": {"size_bytes": size, "small_bytes": small_size, "runs": args.runs, "chunk_runs": args.chunk_runs},
           "started": utc_now(),
           "machine": machine_info(args.workdir), "chunk_constant": lib.CHUNK, "load_start": loadavg()}
    try:
        repo_root = os.path.join(run_dir, "repo")
        log("writing the %s release and the %s release under %s" % (fmt_size(size), fmt_size(small_size), repo_root))
        big = make_release(lib, repo_root, BIG_VARIANT, size)
        small = make_release(lib, repo_root, SMALL_VARIANT, small_size)
        log("flushing dirty pages (sync) and reading everything once, untimed")
        os.sync()
        warm_page_cache(big[2] + small[2])
        tools = Tools(lib, run_dir)
        res["cold"] = bench_cold(tools, big, args.runs, log)
        res["warm"] = bench_warm(tools, big, args.runs, os.path.join(repo_root, ".modelops", "hashcache"), log)
        res["small"] = bench_small(tools, small, args.runs, log)
        res["chunks"] = []
        if args.chunk_runs > 0:
            big_file = os.path.join(big[0], BIG_FILE)
            res["chunks"] = bench_chunks(lib, big_file, args.chunk_sizes, args.chunk_runs, log)
            for entry in res["chunks"]:
                entry["bytes"] = size
    finally:
        if args.keep:
            log("keeping %s" % run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    res["load_end"] = loadavg()
    res["finished"] = utc_now()
    res["duration_s"] = time.time() - started
    report(res, args, args.results)
    log("wrote %s and the verify section of %s" % (args.results, args.doc))
    an = res["summary"]
    print("cold ratio vs sha256sum: library %.2f, module %.2f; warm: library %s, module %s; "
          "peak RSS module: %d KiB (%s) vs %d KiB (%s)" % (
              an["cold"]["library"]["ratio_vs_sha256sum"], an["cold"]["module"]["ratio_vs_sha256sum"],
              fmt_seconds(an["warm"]["library"]["wall_s"]["median"], 3), fmt_seconds(an["warm"]["module"]["wall_s"]["median"], 3),
              an["memory"]["module"]["big_kib"], fmt_size(size), an["memory"]["module"]["small_kib"], fmt_size(small_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
