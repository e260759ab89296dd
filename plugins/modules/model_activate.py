#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_activate
short_description: Switch the served version of a model on a host, or roll it back
version_added: 0.1.0
description:
  - Points C(<model_root>/<model>/current) at an installed release
    C(<version>/<variant>) and keeps the release it replaces as
    C(<model_root>/<model>/previous), the rollback target. Both are relative symlinks,
    replaced atomically (a new link renamed over the old one), so the engine always sees
    a complete release.
  - With O(rollback=true), swaps the two links, C(current) back to what C(previous)
    points to.
  - Before switching, checks that the release is installed, complete and intact against
    its C(manifest.json) (O(verify)). The hash cache C(<model_root>/.modelops/hashcache)
    makes this cheap for files that did not change since they were last hashed.
  - Records every activation, rollback and deleted release in the host ledger
    C(<model_root>/.modelops/state.json), and holds the host lock
    C(<model_root>/.modelops/lock) while it works, so that only one upgrade runs at a
    time on a host.
  - After a switch, deletes the oldest installed releases of the model beyond
    O(keep_versions); the releases C(current) and C(previous) point to are never deleted.
  - When C(current) already points to the requested release, nothing is changed,
    verified, pruned or written.
  - Runs on the target with the Python standard library only.
attributes:
  check_mode:
    details:
      - Verifies the release and reports the links, the ledger event and the releases
        that would be deleted; writes nothing and does not take the lock.
  diff_mode:
    support: full
    details: Shows C(current) and C(previous) before and after.
options:
  model_name:
    description: Model name, for example C(qwen3-4b-instruct).
    type: str
    required: true
  version:
    description:
      - Version of the release to activate, for example C(2507).
      - Requires O(variant). Mutually exclusive with O(rollback).
    type: str
  variant:
    description: Variant of the release to activate, for example C(gguf-q4_k_m).
    type: str
  rollback:
    description:
      - Point C(current) back at the release C(previous) points to, and C(previous) at
        the release that was current.
      - Fails when there is no C(previous) link.
    type: bool
    default: false
  verify:
    description:
      - Check every file of the release against its C(manifest.json) (size and sha256,
        through the hash cache) before switching; refuse a changed, missing or extra file,
        naming it.
    type: bool
    default: true
  keep_versions:
    description:
      - After a switch, keep this many installed releases of the model besides the ones
        C(current) and C(previous) point to, the most recently installed or activated
        ones; delete the others.
      - Recency is the later of the release directory's modification time and the last
        ledger event that activated it or switched away from it.
      - C(0) keeps only C(current) and C(previous).
    type: int
    default: 2
  lock_timeout:
    description: Seconds to wait for the host lock held by another upgrade before failing.
    type: int
    default: 60
  reason:
    description: Free text recorded with the event in the host ledger (a ticket, a canary verdict).
    type: str
notes:
  - The signature of a release is checked when it is synced (M(modelops.fleet.model_sync))
    or with M(modelops.fleet.model_verify); this module checks the files against the
    manifest on disk.
seealso:
  - module: modelops.fleet.model_info
  - module: modelops.fleet.model_verify
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.model_store
"""

EXAMPLES = r"""
- name: Serve the new release
  modelops.fleet.model_activate:
    model_name: qwen3-4b-instruct
    version: "2507"
    variant: gguf-q4_k_m
    reason: "canary passed"

- name: Roll back to the previous release
  modelops.fleet.model_activate:
    model_name: qwen3-4b-instruct
    rollback: true
    reason: "probe failed"

- name: Activate and keep only current and previous on a small edge device
  modelops.fleet.model_activate:
    model_root: /var/lib/models
    model_name: smollm2-135m-instruct
    version: "2411"
    variant: gguf-q4_1
    keep_versions: 0
"""

RETURN = r"""
current:
  description: The release C(current) points to (after the change), C(<version>/<variant>).
  returned: success
  type: str
  sample: 2507/gguf-q4_k_m
previous:
  description: The release C(previous) points to (after the change), or null.
  returned: success
  type: str
  sample: 2504/gguf-q4_k_m
pruned:
  description: Releases deleted (in check mode, that would be deleted), C(<version>/<variant>).
  returned: success
  type: list
  elements: str
  sample: ["2501/gguf-q4_k_m"]
ledger_event:
  description:
    - The activation or rollback event written to the ledger (in check mode, the event
      that would be written, without C(time)); null when nothing changed.
  returned: success
  type: dict
  sample:
    action: activate
    model: qwen3-4b-instruct
    from: 2504/gguf-q4_k_m
    to: 2507/gguf-q4_k_m
    reason: canary passed
    time: "2025-07-15T12:00:00Z"
verified:
  description: Result of the file check (files, bytes, bytes_read, files_cached); null when not verified.
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import HostLock
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    HostStateError, Ledger, installed_releases, iso_to_epoch, read_link, release_rel, remove_leftovers,
    remove_release, switch_link,
)
from ansible_collections.modelops.fleet.plugins.module_utils._files import HashCache, default_cache_path
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, ReleaseError, load_manifest_bytes, validate_model_name, validate_variant, validate_version,
    verify_tree,
)
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._specs import model_store_spec


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

    def validate(self):
        p = self.module.params
        validate_model_name(self.model)
        if p["version"] is not None:
            validate_version(p["version"])
            validate_variant(p["variant"])
        elif not p["rollback"]:
            raise ActivateError("nothing to do: set version and variant to activate a release, "
                                "or rollback=true to go back to the previous one")
        if p["keep_versions"] < 0:
            raise ActivateError("keep_versions must be 0 or more, got %d" % p["keep_versions"])
        if p["lock_timeout"] < 0:
            raise ActivateError("lock_timeout must be 0 or more, got %d" % p["lock_timeout"])

    def installed_list(self):
        found = installed_releases(self.root, self.model)
        return ", ".join(fmt(r) for r in found) if found else "none"

    def check_installed(self, release, rollback):
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
        if not os.path.isfile(os.path.join(rdir, MANIFEST)):
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
        p = self.module.params
        if not os.path.isdir(self.root):
            what = "roll back %s" % self.model if p["rollback"] else \
                "activate %s %s/%s" % (self.model, p["version"], p["variant"])
            raise ActivateError("cannot %s: model_root %s does not exist, so the release is not "
                                "installed on this host: sync it first with modelops.fleet.model_sync"
                                % (what, self.root))
        if self.check:
            return self.run_locked()
        purpose = "model_activate %s %s" % (
            self.model, "rollback" if p["rollback"] else release_rel(p["version"], p["variant"]))
        with HostLock(self.root, p["lock_timeout"], purpose=purpose):
            return self.run_locked()

    def run_locked(self):
        p = self.module.params
        rollback = p["rollback"]
        old_cur = read_link(self.model_dir, "current")
        old_prev = read_link(self.model_dir, "previous")
        if rollback:
            if old_prev is None:
                raise ActivateError(
                    "cannot roll back %s: %s does not exist (no earlier release was activated "
                    "on this host); activate a version explicitly with version and variant"
                    % (self.model, os.path.join(self.model_dir, "previous")))
            target = old_prev
        else:
            target = (p["version"], p["variant"])
        rdir = self.check_installed(target, rollback)
        before = {"current": fmt(old_cur), "previous": fmt(old_prev)}
        result = dict(changed=False, current=fmt(old_cur), previous=fmt(old_prev), pruned=[],
                      ledger_event=None, verified=None)
        if target == old_cur:
            result["msg"] = "%s %s is already current" % (self.model, fmt(target))
            if self.module._diff:
                result["diff"] = {"before": before, "after": dict(before)}
            return result

        if p["verify"]:
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
                 "from": fmt(old_cur), "to": fmt(target), "reason": p["reason"]}
        ledger = Ledger(self.root, readonly=self.check)
        if ledger.problem:
            self.module.warn(ledger.problem)
        protected = set(r for r in (target, new_prev) if r is not None)
        to_prune = self.plan_prune(p["keep_versions"], protected, ledger)
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model_store_spec(),
            model_name=dict(type="str", required=True),
            version=dict(type="str"),
            variant=dict(type="str"),
            rollback=dict(type="bool", default=False),
            verify=dict(type="bool", default=True),
            keep_versions=dict(type="int", default=2),
            lock_timeout=dict(type="int", default=60),
            reason=dict(type="str"),
        ),
        required_together=[("version", "variant")],
        mutually_exclusive=[("rollback", "version")],
        supports_check_mode=True,
    )
    run_and_exit(module, lambda: Activator(module).run(), (ActivateError, HostStateError, ReleaseError),
                 os_error=lambda e: "model_activate failed on %s: %s" % (module.params["model_root"], e))


if __name__ == "__main__":
    main()
