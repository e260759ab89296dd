# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Files, one helper each: the hash-while-copying loop and the sha256 built on it, the hash
cache, atomic writes and the removal of a read-only tree.

Standard library only: this runs on target hosts as well as on the controller. Private to
the collection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile

CHUNK = 1 << 20  # 1 MiB: large enough for sha256 to run at full speed, constant memory


def stream_hashing(src, h, limit=None, out=None, before_chunk=None, chunk=CHUNK):
    """The one hash-while-copying loop: read src (anything with readinto) in chunks into
    one reusable buffer, feed h, write to out when given, stop at EOF or after limit bytes
    (all when None). before_chunk() runs before each read (a deadline check raises there).
    Returns the number of bytes read. Memory does not grow with size."""
    buf = bytearray(chunk)
    view = memoryview(buf)
    done = 0
    while limit is None or done < limit:
        if before_chunk is not None:
            before_chunk()
        n = src.readinto(view[:chunk if limit is None else min(chunk, limit - done)])
        if not n:
            break
        if out is not None:
            out.write(view[:n])
        h.update(view[:n])
        done += n
    return done


def sha256_prefix(path, limit=None, chunk=CHUNK):
    """(sha256 object, bytes read) of the first limit bytes of path (all when None)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        done = stream_hashing(f, h, limit, chunk=chunk)
    return h, done


def sha256_file(path, chunk=CHUNK):
    """Streaming sha256 of a file: (hex digest, size)."""
    h, size = sha256_prefix(path, chunk=chunk)
    return h.hexdigest(), size


class HashCache(object):
    """sha256 of files keyed by (size, mtime_ns, ctime_ns, inode, device).

    A re-verify of unchanged files costs one stat per file instead of reading every byte.
    ctime is part of the key because it cannot be set from user space: a file rewritten
    with its old size and mtime restored (``touch -d``) is still hashed again.
    """

    VERSION = 1

    def __init__(self, path=None):
        self.path = path
        self.entries = {}
        self.dirty = False
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    data = json.load(f)
                if data.get("version") == self.VERSION:
                    self.entries = data.get("entries", {})
            except (ValueError, OSError, AttributeError):
                # A damaged cache is only a cache: start over, never trust a partial one.
                self.entries = {}

    @staticmethod
    def key(st):
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def get(self, abspath, st):
        entry = self.entries.get(abspath)
        if entry and entry[:5] == self.key(st):
            return entry[5]
        return None

    def put(self, abspath, st, digest):
        self.entries[abspath] = self.key(st) + [digest]
        self.dirty = True

    def forget_missing(self):
        for p in [p for p in self.entries if not os.path.exists(p)]:
            del self.entries[p]
            self.dirty = True

    def save(self):
        if not self.path or not self.dirty:
            return
        self.forget_missing()
        atomic_write(self.path, json.dumps({"version": self.VERSION, "entries": self.entries},
                                           sort_keys=True).encode("utf-8"), mode=0o600)
        self.dirty = False


def remove_tree(path):
    """rmtree that also removes a read-only release.

    Only directories are made writable (unlinking needs write permission on the directory,
    not the file): files are often hard-linked into other releases, and a chmod would
    change those too (and invalidate their hash cache entries).
    """
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)
    shutil.rmtree(path)


def atomic_write(path, data, mode=0o644):
    """Write data to path through a temp file in the same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    _replace(path, lambda f: f.write(data), mode)


def _replace(path, write, mode):
    """Replace path by what write(file) writes, through a temp file in path's directory
    (fsynced, then renamed over it); the temp file is removed on any failure."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def same_content(a, b):
    """True when the regular files a and b hold the same bytes (b may be missing)."""
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def copy_atomic(src, dest, mode=0o644):
    """Copy the file src to dest through a temp file in dest's directory and a rename."""
    with open(src, "rb") as inp:
        _replace(dest, lambda out: shutil.copyfileobj(inp, out, CHUNK), mode)


def hash_files(root, relpaths, stats, cache=None, full=False):
    """sha256 of each file; returns ({relpath: (sha256, size)}, bytes_read, files_hashed)."""
    out = {}
    read = 0
    hashed = 0
    for rel in relpaths:
        full_path = os.path.join(root, rel)
        st = stats[rel]
        digest = None if (full or cache is None) else cache.get(os.path.abspath(full_path), st)
        if digest is None:
            digest, size = sha256_file(full_path)
            read += size
            hashed += 1
            if cache is not None:
                # Cache against the stat taken before reading: a concurrent write changes
                # mtime/ctime, so the entry simply will not match next time.
                cache.put(os.path.abspath(full_path), st, digest)
        out[rel] = (digest, st.st_size)
    return out, read, hashed


def default_cache_path(release_dir):
    """<model_root>/.modelops/hashcache for <model_root>/<model>/<version>/<variant>."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(release_dir))))
    return os.path.join(root, ".modelops", "hashcache")
