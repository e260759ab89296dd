# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Switching the served release of a model on a host: the checks, the verification against
the manifest, the two links, the ledger event and the retention, in one place. Used by
model_activate (the switch alone) and model_switch (the switch with the engine's restart).

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations

import os

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    Ledger, installed_releases, iso_to_epoch, read_link, release_rel, remove_leftovers,
    remove_release, switch_link,
)
from ansible_collections.modelops.fleet.plugins.module_utils._files import HashCache, default_cache_path
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, ReleaseError, load_manifest_bytes, validate_model_name, validate_variant, validate_version,
    verify_tree,
)


class ActivateError(Exception):
    """The release cannot be activated; the message says what to do."""


def fmt(release):
    return release_rel(*release) if release else None


class Activator(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.root = p["model_root"]
        self.model = p["model_name"]
        self.model_dir = os.path.join(self.root, self.model)
        self.check = module.check_mode

    # ------------------------------------------------------------------ checks

    def validate(self, require_target=True):
        p = self.module.params
        validate_model_name(self.model)
        if p["version"] is not None:
            validate_version(p["version"])
            validate_variant(p["variant"])
        elif not p["rollback"] and require_target:
            raise ActivateError("nothing to do: set version and variant to activate a release, "
                                "or rollback=true to go back to the previous one")
        if p["keep_versions"] < 0:
            raise ActivateError("keep_versions must be 0 or more, got %d" % p["keep_versions"])
        if p["lock_timeout"] < 0:
            raise ActivateError("lock_timeout must be 0 or more, got %d" % p["lock_timeout"])

    def check_root(self):
        p = self.module.params
        if not os.path.isdir(self.root):
            what = "roll back %s" % self.model if p["rollback"] else \
                "activate %s %s/%s" % (self.model, p["version"], p["variant"]) if p["version"] else \
                "serve %s" % self.model
            raise ActivateError("cannot %s: model_root %s does not exist, so the release is not "
                                "installed on this host: sync it first with modelops.fleet.model_sync"
                                % (what, self.root))

    def purpose(self, name="model_activate"):
        p = self.module.params
        what = "rollback" if p["rollback"] else release_rel(p["version"], p["variant"]) if p["version"] else "current"
        return "%s %s %s" % (name, self.model, what)

    def installed_list(self):
        found = installed_releases(self.root, self.model)
        return ", ".join(fmt(r) for r in found) if found else "none"

    def check_installed(self, release, rollback, restore=False):
        rdir = os.path.join(self.model_dir, release[0], release[1])
        name = "%s %s" % (self.model, fmt(release))
        if os.path.islink(rdir) or not os.path.isdir(rdir):
            if rollback:
                raise ActivateError(
                    "cannot roll back %s: previous points to %s, which is not installed on this "
                    "host any more (%s is missing; installed: %s); activate a version explicitly"
                    % (self.model, fmt(release), rdir, self.installed_list()))
            raise ActivateError(
                "release %s (%s) is not installed on this host: sync it first with "
                "modelops.fleet.model_sync (installed: %s)" % (name, rdir, self.installed_list()))
        if not restore and not os.path.isfile(os.path.join(rdir, MANIFEST)):
            raise ActivateError(
                "%s has no %s: release %s is incomplete (an interrupted install?); sync it again "
                "with modelops.fleet.model_sync" % (rdir, MANIFEST, name))
        return rdir

    def verify(self, rdir, release):
        mpath = os.path.join(rdir, MANIFEST)
        name = "%s %s" % (self.model, fmt(release))
        try:
            try:
                with open(mpath, "rb") as f:
                    raw = f.read()
            except OSError as e:
                raise ReleaseError("cannot read %s: %s" % (mpath, e.strerror))
            manifest = load_manifest_bytes(raw, mpath)
            ident = (manifest["model_name"], manifest["version"], manifest["variant"])
            if ident != (self.model, release[0], release[1]):
                raise ReleaseError("%s describes %s %s/%s, not %s" % (mpath, ident[0], ident[1], ident[2], name))
            cache = HashCache(default_cache_path(rdir))
            stats = verify_tree(rdir, manifest, cache=cache)
        except ReleaseError as e:
            raise ActivateError("refusing to activate %s: %s. current and previous are unchanged; "
                                "sync the release again (modelops.fleet.model_sync) to repair it"
                                % (name, e))
        if not self.check:
            try:
                cache.save()
            except OSError as e:
                self.module.warn("could not write hash cache %s: %s" % (cache.path, e))
        return stats

    # ------------------------------------------------------------------ retention

    def plan_prune(self, keep, protected, ledger):
        last_seen = {}
        for event in ledger.events:
            if event.get("model") != self.model or event.get("action") == "prune":
                continue
            t = iso_to_epoch(event.get("time"))
            if t is None:
                continue
            for key in ("to", "from", "release"):
                if isinstance(event.get(key), str):
                    last_seen[event[key]] = max(t, last_seen.get(event[key], 0))
        candidates = []
        for release in installed_releases(self.root, self.model):
            if release in protected:
                continue
            try:
                mtime = os.stat(os.path.join(self.model_dir, release[0], release[1])).st_mtime
            except OSError:
                mtime = 0
            candidates.append((max(mtime, last_seen.get(fmt(release), 0)), release))
        candidates.sort(reverse=True)
        return [release for dummy, release in candidates[keep:]]

    # ------------------------------------------------------------------ run

    def run(self):
        self.validate()
        self.check_root()
        if self.check:
            return self.run_locked()
        with HostLock(self.root, self.module.params["lock_timeout"], purpose=self.purpose()):
            return self.run_locked()

    def links(self):
        """(current, previous) as (version, variant) pairs, None where a link is missing."""
        return read_link(self.model_dir, "current"), read_link(self.model_dir, "previous")

    def requested(self):
        """The release the task asks for: (version, variant), or what previous points to for a
        rollback (failing when there is none)."""
        p = self.module.params
        if not p["rollback"]:
            return (p["version"], p["variant"])
        prev = read_link(self.model_dir, "previous")
        if prev is None:
            raise ActivateError(
                "cannot roll back %s: %s does not exist (no earlier release was activated "
                "on this host); activate a version explicitly with version and variant"
                % (self.model, os.path.join(self.model_dir, "previous")))
        return prev

    def run_locked(self, target=None, action=None, reason=None, prune=True, restore=False, extra=None):
        """Point current at target (default: the requested release), previous at what was
        current; verify first, record the event (action: activate or rollback, default from the
        task, with extra's keys), prune beyond keep_versions when prune. restore: target is what was served until
        a moment ago (a switch back): neither its manifest nor its files are checked again, only
        that it is still there. Holds no lock itself."""
        p = self.module.params
        rollback = p["rollback"] if action is None else action == "rollback"
        old_cur, old_prev = self.links()
        if target is None:
            target = self.requested()
        rdir = self.check_installed(target, rollback, restore)
        before = {"current": fmt(old_cur), "previous": fmt(old_prev)}
        result = dict(changed=False, current=fmt(old_cur), previous=fmt(old_prev), pruned=[],
                      ledger_event=None, verified=None)
        if target == old_cur:
            result["msg"] = "%s %s is already current" % (self.model, fmt(target))
            if self.module._diff:
                result["diff"] = {"before": before, "after": dict(before)}
            return result

        if p["verify"] and not restore:
            result["verified"] = self.verify(rdir, target)
        new_prev = old_prev
        if old_cur is not None:
            if os.path.isdir(os.path.join(self.model_dir, old_cur[0], old_cur[1])):
                new_prev = old_cur
            else:
                self.module.warn("current pointed to %s, which is not installed any more: "
                                 "keeping previous as it is" % fmt(old_cur))
        after = {"current": fmt(target), "previous": fmt(new_prev)}
        event = {"action": "rollback" if rollback else "activate", "model": self.model,
                 "from": fmt(old_cur), "to": fmt(target), "reason": p["reason"] if reason is None else reason}
        event.update(extra or {})
        ledger = Ledger(self.root, readonly=self.check)
        if ledger.problem:
            self.module.warn(ledger.problem)
        protected = set(r for r in (target, new_prev) if r is not None)
        to_prune = self.plan_prune(p["keep_versions"], protected, ledger) if prune else []
        result.update(changed=True, current=after["current"], previous=after["previous"],
                      pruned=[fmt(r) for r in to_prune], ledger_event=event)
        result["msg"] = "%s %s: %s -> %s" % (self.model, event["action"], event["from"], event["to"])
        if self.module._diff:
            result["diff"] = {"before": before, "after": after}
        if self.check:
            return result

        if new_prev != old_prev:
            switch_link(self.model_dir, "previous", fmt(new_prev))
        switch_link(self.model_dir, "current", fmt(target))
        result["ledger_event"] = ledger.append(event)
        pruned = []
        try:
            remove_leftovers(self.model_dir)
        except OSError as e:
            self.module.warn("could not remove leftovers of an interrupted prune in %s: %s"
                             % (self.model_dir, e))
        for release in to_prune:
            try:
                size = remove_release(self.model_dir, release[0], release[1])
            except OSError as e:
                self.module.warn("could not delete %s %s: %s" % (self.model, fmt(release), e))
                continue
            pruned.append(fmt(release))
            ledger.append({"action": "prune", "model": self.model, "release": fmt(release),
                           "bytes": size, "reason": "keep_versions=%d" % p["keep_versions"]})
        result["pruned"] = pruned
        return result
