# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Staged, resumable, deduplicated installation of a release on a host.

Standard library only (runs on the target). Layout:

  <root>/.staging/<model>/<version>/<variant>/   files as they arrive
      <path>.part                                a partial file (resumed, never restarted)
      <path>.part.<offset>.tail                  bytes pushed by the controller that
                                                 continue <path>.part at <offset>
  <root>/<model>/<version>/<variant>/            the installed release (renamed into place)

Nothing under <root>/<model>/ changes until the whole release is staged and verified.
Private to the collection.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import socket
import stat
import time
import urllib.error

from ansible.module_utils.urls import open_url

from ansible_collections.modelops.fleet.plugins.module_utils._files import (
    HashCache, atomic_write, default_cache_path, remove_tree, sha256_file, sha256_prefix, stream_hashing,
)
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, SIGNATURE, ReleaseError, release_name, verify_tree,
)


class SyncError(Exception):
    """The release could not be installed; the message says what to do."""


def release_dir(root, manifest):
    return os.path.join(root, manifest["model_name"], manifest["version"], manifest["variant"])


def staging_dir(root, manifest):
    return os.path.join(root, ".staging", manifest["model_name"], manifest["version"],
                        manifest["variant"])


def free_bytes(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def mount_point(path):
    """The mount point of the filesystem that holds path."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def disk_full_message(path, rel, release, done, size):
    """What ENOSPC while writing rel of release means for the user: which filesystem is
    full, how much more this file needs, how much is free."""
    return ("no space left on the filesystem mounted at %s (holding %s) while writing %s of %s: %d of %d "
            "bytes written, %d MiB more needed for this file, %d MiB free (No space left on device). Free "
            "space there (e.g. lower model_upgrade_keep_versions) and run again: the partial file is kept and "
            "resumed next run"
            % (mount_point(path), path, rel, release, done, size, max(size - done, 0) >> 20, free_bytes(path) >> 20))


class Installer(object):
    def __init__(self, root, manifest_raw, signature_raw, space_margin=64 * 1024 * 1024):
        from ansible_collections.modelops.fleet.plugins.module_utils._release import (
            load_manifest_bytes,
        )
        self.root = root
        self.raw = manifest_raw
        self.sig = signature_raw
        self.manifest = load_manifest_bytes(manifest_raw, "manifest of the release to sync")
        self.name = release_name(self.manifest["model_name"], self.manifest["version"],
                                 self.manifest["variant"])
        self.final = release_dir(root, self.manifest)
        self.staging = staging_dir(root, self.manifest)
        self.cache = HashCache(default_cache_path(self.final))
        self.space_margin = space_margin
        self.files = dict((f["path"], f) for f in self.manifest["files"])

    # ------------------------------------------------------------------ state

    def installed(self):
        """True if the release is in place, intact, with this exact manifest."""
        try:
            with open(os.path.join(self.final, MANIFEST), "rb") as f:
                if f.read() != self.raw:
                    return False
            verify_tree(self.final, self.manifest, cache=self.cache)
            return True
        except (IOError, OSError, ReleaseError):
            return False

    def known_hashes(self):
        """sha256 -> path of files of other installed releases under root (for hard links)."""
        found = {}
        for mpath in glob.glob(os.path.join(self.root, "*", "*", "*", MANIFEST)):
            rdir = os.path.dirname(mpath)
            if os.path.abspath(rdir) == os.path.abspath(self.final):
                continue
            try:
                with open(mpath, "rb") as f:
                    other = json.loads(f.read().decode("utf-8"))
                for entry in other.get("files", []):
                    p = os.path.join(rdir, entry["path"])
                    if entry.get("sha256") and os.path.isfile(p) and not os.path.islink(p):
                        found.setdefault(entry["sha256"], (p, entry.get("size")))
            except (IOError, OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
        return found

    def _staged_complete(self, rel):
        p = os.path.join(self.staging, rel)
        if not os.path.isfile(p) or os.path.islink(p):
            return False
        st = os.stat(p)
        if st.st_size != self.files[rel]["size"]:
            return False
        digest = self.cache.get(os.path.abspath(p), st)
        if digest is None:
            digest, dummy = sha256_file(p)
            self.cache.put(os.path.abspath(p), st, digest)
        return digest == self.files[rel]["sha256"]

    def check_staging(self):
        """Refuse a symlink on the way to or inside the staging directory before anything
        is written there: a file written through it would land outside the model root."""
        path = self.root
        for part in os.path.relpath(self.staging, self.root).split(os.sep):
            path = os.path.join(path, part)
            if os.path.islink(path):
                self._planted(path)
            if not os.path.lexists(path):
                return
        for dirpath, dirnames, filenames in os.walk(self.staging):
            for name in dirnames + filenames:
                if os.path.islink(os.path.join(dirpath, name)):
                    self._planted(os.path.join(dirpath, name))

    def _planted(self, path):
        raise SyncError(
            "%s is a symlink (-> %s); releases must not contain symlinks and the staging area is "
            "this collection's own: nothing was written; remove %s and run again"
            % (path, os.readlink(path), os.path.join(self.root, ".staging")))

    def plan(self):
        """What each file needs: present (staged), link (from a retained release), or
        transfer from an offset (resume)."""
        if self.installed():
            return {"installed": True, "files": [], "bytes_to_transfer": 0}
        self.check_staging()
        known = self.known_hashes()
        items = []
        for rel in sorted(self.files):
            entry = self.files[rel]
            if self._staged_complete(rel):
                items.append({"path": rel, "action": "present", "size": entry["size"], "offset": entry["size"]})
                continue
            src = known.get(entry["sha256"])
            if src and src[1] == entry["size"]:
                items.append({"path": rel, "action": "link", "size": entry["size"], "from": src[0],
                              "offset": entry["size"]})
                continue
            part = os.path.join(self.staging, rel) + ".part"
            offset = 0
            if os.path.isfile(part):
                offset = os.path.getsize(part)
                if offset > entry["size"]:
                    offset = 0  # longer than declared: not ours to resume
            items.append({"path": rel, "action": "transfer", "size": entry["size"], "offset": offset})
        need = sum(i["size"] - i["offset"] for i in items if i["action"] == "transfer")
        return {"installed": False, "files": items, "bytes_to_transfer": need}

    def check_space(self, plan):
        need = plan["bytes_to_transfer"] + self.space_margin
        free = free_bytes(self.staging)
        if free < need:
            raise SyncError(
                "not enough disk space on %s for %s: need %d MiB (%d MiB to transfer + %d MiB "
                "margin), %d MiB free. Free space (e.g. lower model_upgrade_keep_versions) and run again"
                % (self.root, self.name, need >> 20, plan["bytes_to_transfer"] >> 20,
                   self.space_margin >> 20, free >> 20))

    def prepare(self, plan):
        """Create the staging directories; drop stale pushed tails."""
        for rel in self.files:
            d = os.path.dirname(os.path.join(self.staging, rel))
            if not os.path.isdir(d):
                os.makedirs(d, 0o755)
        for tail in glob.glob(os.path.join(self.staging, "**", "*.tail"), recursive=True):
            base, offset = self._tail_parts(tail)
            if base is None or base not in self.files:
                os.unlink(tail)

    @staticmethod
    def _split_tail(name):
        # <path>.part.<offset>.tail
        if not name.endswith(".tail"):
            return None, None
        stem = name[:-len(".tail")]
        head, dot, offset = stem.rpartition(".")
        if not dot or not offset.isdigit() or not head.endswith(".part"):
            return None, None
        return head[:-len(".part")], int(offset)

    def _tail_parts(self, tail):
        rel = os.path.relpath(tail, self.staging).replace(os.sep, "/")
        return self._split_tail(rel)

    def tail_path(self, rel, offset):
        return os.path.join(self.staging, rel) + ".part.%d.tail" % offset

    # ------------------------------------------------------------------ writing

    def _finish_file(self, rel, part, h):
        entry = self.files[rel]
        size = os.path.getsize(part)
        if size != entry["size"]:
            return False
        digest = h.hexdigest()
        if digest != entry["sha256"]:
            os.unlink(part)
            raise SyncError("%s of %s arrived with sha256 %s, manifest says %s: the corrupt copy was "
                            "deleted; run again" % (rel, self.name, digest, entry["sha256"]))
        final = os.path.join(self.staging, rel)
        os.replace(part, final)
        self.cache.put(os.path.abspath(final), os.stat(final), digest)
        return True

    def absorb_tail(self, rel):
        """Append pushed tail bytes to <rel>.part, hashing while writing."""
        entry = self.files[rel]
        part = os.path.join(self.staging, rel) + ".part"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        tail = self.tail_path(rel, have)
        for other in glob.glob(os.path.join(self.staging, glob.escape(rel)) + ".part.*.tail"):
            if other != tail:
                os.unlink(other)  # a tail for another offset no longer continues the part
        if not os.path.exists(tail):
            return 0
        written = 0
        if have == 0:
            os.replace(tail, part)
            h, written = sha256_prefix(part, entry["size"])
            if written < os.path.getsize(part):
                with open(part, "r+b") as f:
                    f.truncate(entry["size"])
        else:
            h, dummy = sha256_prefix(part)
            with open(part, "ab") as out, open(tail, "rb", buffering=0) as src:
                written = stream_hashing(src, h, entry["size"] - have, out=out)
            os.unlink(tail)
        self._finish_file(rel, part, h)
        return written

    def pull(self, rel, base_url, timeout, validate_certs, deadline):
        """Download <base_url>/<rel> into <rel>.part with Range resume, hashing while writing,
        reading at most the size the manifest declares."""
        entry = self.files[rel]
        part = os.path.join(self.staging, rel) + ".part"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if have > entry["size"]:
            os.unlink(part)
            have = 0
        h, dummy = sha256_prefix(part) if have else (hashlib.sha256(), 0)
        url = base_url.rstrip("/") + "/" + rel
        headers = {"Range": "bytes=%d-" % have} if have else {}
        written = 0
        if have < entry["size"]:
            try:
                resp = open_url(url, headers=headers, timeout=timeout, validate_certs=validate_certs,
                                follow_redirects="safe")
            except urllib.error.HTTPError as e:
                if e.code == 416 and have == entry["size"]:
                    resp = None
                else:
                    raise SyncError("mirror answered HTTP %d for %s: %s" % (e.code, url, e.reason))
            except (urllib.error.URLError, socket.timeout, OSError) as e:
                raise SyncError("cannot download %s: %s (a partial file is kept and resumed next "
                                "run)" % (url, getattr(e, "reason", e)))
            if resp is not None:
                status = getattr(resp, "status", 200)
                mode = "ab"
                if have and status != 206:
                    # The mirror ignored the Range request: start this file over.
                    have = 0
                    h = hashlib.sha256()
                    mode = "wb"

                def check_deadline():
                    if deadline and time.monotonic() > deadline:
                        raise SyncError("download of %s took longer than the sync timeout: "
                                        "the partial file is kept and resumed next run" % url)

                try:
                    with open(part, mode) as out:
                        written = stream_hashing(resp, h, entry["size"] - have, out=out,
                                                 before_chunk=check_deadline)
                except (socket.timeout, OSError) as e:
                    # the part file is closed here: its size is what arrived
                    written = os.path.getsize(part) - have
                    if isinstance(e, SyncError):
                        raise
                    if getattr(e, "errno", None) == errno.ENOSPC:
                        raise SyncError(disk_full_message(part, rel, self.name, have + written, entry["size"]))
                    raise SyncError("download of %s stalled or failed after %d bytes: %s (the partial "
                                    "file is kept and resumed next run)" % (url, have + written, e))
                finally:
                    resp.close()
        if os.path.getsize(part) < entry["size"]:
            raise SyncError("mirror sent only %d of %d bytes of %s (the partial file is kept and resumed "
                            "next run)" % (os.path.getsize(part), entry["size"], url))
        self._finish_file(rel, part, h)
        return written

    def link(self, rel, src):
        dest = os.path.join(self.staging, rel)
        st = os.stat(src)
        digest = self.cache.get(os.path.abspath(src), st)
        if digest is None:
            digest, dummy = sha256_file(src)
            self.cache.put(os.path.abspath(src), st, digest)
        if digest != self.files[rel]["sha256"]:
            return False  # the retained copy is damaged: transfer instead
        if os.path.exists(dest):
            os.unlink(dest)
        os.link(src, dest)
        self.cache.put(os.path.abspath(dest), os.stat(dest), digest)
        return True

    def finalize(self):
        """Verify the staged release, write the manifest and signature, make it read-only,
        and rename it into place."""
        for leftover in glob.glob(os.path.join(self.staging, "**", "*.part*"), recursive=True):
            os.unlink(leftover)
        atomic_write(os.path.join(self.staging, MANIFEST), self.raw)
        if self.sig:
            atomic_write(os.path.join(self.staging, SIGNATURE), self.sig)
        try:
            verify_tree(self.staging, self.manifest, cache=self.cache)
        except ReleaseError as e:
            # The staging area is this collection's scratch space: what does not match the
            # manifest (a planted or stray file) is not kept, so the next run starts clean
            # instead of failing the same way until someone deletes it.
            self.discard_staging()
            raise SyncError("%s; the staging area %s was discarded, the next run downloads the release "
                            "again" % (e, self.staging))
        for dirpath, dirnames, filenames in os.walk(self.staging):
            for name in filenames:
                p = os.path.join(dirpath, name)
                # Hard-linked files are already read-only: a chmod would only bump their
                # ctime and invalidate the other release's hash-cache entries.
                if stat.S_IMODE(os.stat(p).st_mode) != 0o444:
                    os.chmod(p, 0o444)
        parent = os.path.dirname(self.final)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        if os.path.lexists(self.final):
            # An older, incomplete or damaged copy that is not what anything serves.
            graveyard = os.path.join(self.root, ".staging", ".replaced-%d-%d" % (os.getpid(), int(time.time())))
            os.rename(self.final, graveyard)
            remove_tree(graveyard)
        for dirpath, dirnames, filenames in os.walk(self.staging):
            os.chmod(dirpath, 0o555)
        os.rename(self.staging, self.final)
        # Re-key the cache on the final paths (rename keeps inode, mtime and ctime).
        for rel in self.files:
            p = os.path.join(self.final, rel)
            self.cache.put(os.path.abspath(p), os.stat(p), self.files[rel]["sha256"])
        self.cache.save()
        # Remove empty staging parents.
        d = os.path.dirname(self.staging)
        while d != self.root and os.path.isdir(d) and not os.listdir(d):
            os.rmdir(d)
            d = os.path.dirname(d)

    def discard_staging(self):
        if os.path.isdir(self.staging):
            remove_tree(self.staging)
