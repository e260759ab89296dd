#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: model_info
short_description: Report the models, releases, links, disk and ledger of a host
version_added: 0.1.0
description:
  - Lists the models installed under O(model_root) with their releases
    C(<version>/<variant>), what C(current) and C(previous) point to, and the space they
    use.
  - Also reports the disk space of the file system holding O(model_root), the last events
    of the host ledger C(<model_root>/.modelops/state.json), and who holds the host lock
    C(<model_root>/.modelops/lock) now, if anyone.
  - With O(engine_install), also compares the engine's installation on the host with what
    the P(modelops.fleet.inference_server#role) role would install and returns what differs in
    RV(engine_drift); the upgrade skips the engine's configuration when nothing does.
  - With O(converge), also tells whether the host already is where an upgrade to that release
    would leave it (RV(converged)) - C(current) points to the release, whose C(manifest.json)
    is the verified one and whose files match it (through the hash cache, so an unchanged
    release costs a stat per file), the engine's unit is active, was started from that
    release and answers a completion, the engine's installation has not drifted, the host
    lock is free and the metrics file says what M(modelops.fleet.model_metrics) would write.
    The upgrade then has nothing to do on the host and spends no other round trip on it.
  - Read-only. Without O(converge), does not hash model files (use
    M(modelops.fleet.model_verify) for that); does not fail when O(model_root) does not exist.
  - Runs on the target with the Python standard library only.
options:
  model_name:
    description:
      - Report only this model (and only its ledger events, plus events that concern no
        model). All models when omitted.
    type: str
  ledger_lines:
    description: How many of the latest ledger events to return.
    type: int
    default: 20
  engine_install:
    description:
      - What the engine's installation should be, as the inference_server role renders it
        on the controller (its C(endpoint.yml) publishes it as
        C(inference_server_endpoint.install)). Each difference is reported in
        RV(engine_drift). Files are hashed on the host (SHA-256).
    type: dict
    suboptions:
      user:
        description: The system user the engine runs as; must exist.
        type: str
      enabled_unit:
        description: A systemd unit that must be enabled at boot (C(systemctl is-enabled)).
        type: str
      stopped_units:
        description:
          - Systemd units that must be neither active nor enabled (the other engine layout's,
            when a host changes C(inference_server_mode)).
        type: list
        elements: str
        default: []
      directories:
        description: Directories that must exist.
        type: list
        elements: path
        default: []
      executables:
        description: Files that must exist and be executable (vLLM's C(vllm)).
        type: list
        elements: path
        default: []
      files:
        description: Files that must be regular files with this content, mode and owner.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Where the file is on the host.
            type: path
            required: true
          sha256:
            description: SHA-256 of the content the role installs (hex).
            type: str
            required: true
          mode:
            description: The file's mode, in octal, for example C("0644").
            type: str
            required: true
          owner:
            description: The file's owner (a user name).
            type: str
            default: root
          group:
            description: The file's group (a group name).
            type: str
            default: root
  memory:
    description:
      - Also return RV(memory) - the memory available for another engine (C(MemAvailable)) and,
        where C(nvidia-smi) is found, the free memory of the emptiest GPU (for the blue/green
        mode's plan).
    type: bool
    default: false
  converge:
    description:
      - The release an upgrade would leave the host on, and how its engine is reached. The
        result says in RV(converged) whether the host is there already and serves it, and in
        RV(converge_reason) why not. Needs O(model_name).
    type: dict
    suboptions:
      version:
        description: The release's version.
        type: str
        required: true
      variant:
        description: The release's variant.
        type: str
        required: true
      manifest_sha256:
        description:
          - SHA-256 of the release's verified C(manifest.json) (as M(modelops.fleet.model_release_info)
            returns it after checking its signature on the controller); the host's copy must be
            byte for byte that manifest.
        type: str
        required: true
      unit:
        description: The engine's systemd unit.
        type: str
        required: true
      url:
        description: Base URL of the engine's OpenAI-compatible API, as seen from the host.
        type: str
        default: http://127.0.0.1:8080
      served_name:
        description: The model name the engine must list in C(/v1/models).
        type: str
        required: true
      api_key:
        description: Bearer token for the engine's API, if it needs one.
        type: str
      completion:
        description: Also ask for one real completion (not only C(/health) and C(/v1/models)).
        type: bool
        default: true
      prompt:
        description: The prompt of that completion.
        type: str
        default: What is the capital of France? Answer in one word.
      max_tokens:
        description: Token limit of that completion.
        type: int
        default: 16
      metrics_path:
        description:
          - The node_exporter textfile M(modelops.fleet.model_metrics) writes for the model; the host
            counts as converged only when that file already says what model_metrics would write now.
            Omit it when the upgrade writes no metrics.
        type: path
      mode:
        description:
          - The engine's layout (C(inference_server_mode)). With V(blue_green), O(converge.unit) names
            the service (C(<service>.service)); the instance the clients reach must serve the release,
            the other instance must be stopped, and the checks of the unit and the completion are made
            on the serving instance, through the clients' address O(converge.url).
        type: str
        choices: [in_place, blue_green]
        default: in_place
      gate:
        description:
          - Count the release as done only when it passed its probe gate since it was made
            current - a C(gate) event of M(modelops.fleet.model_probe) (its O(modelops.fleet.model_probe#module:gate)
            option) follows the C(activate) or C(rollback) event that made it current in the
            host ledger. Then RV(gate_pending) says whether the upgrade must probe it.
          - Without it, a run that ended between the engine's restart and the probes leaves a
            version that the next run takes for done without ever probing it.
        type: bool
        default: false
seealso:
  - module: modelops.fleet.model_activate
  - module: modelops.fleet.model_switch
extends_documentation_fragment:
  - modelops.fleet.attributes
  - modelops.fleet.attributes.read_only
  - modelops.fleet.model_store
"""

EXAMPLES = r"""
- name: What does this host have?
  modelops.fleet.model_info:
  register: fleet_info

- name: Show what one model serves
  ansible.builtin.debug:
    msg: "{{ (fleet_info.models | selectattr('name', 'equalto', 'qwen3-4b-instruct') | first).current }}"

- name: One model, with the last 50 ledger events
  modelops.fleet.model_info:
    model_name: qwen3-4b-instruct
    ledger_lines: 50

- name: Is the host already on 2507 and serving it (nothing for an upgrade to do)?
  modelops.fleet.model_info:
    model_name: qwen3-4b-instruct
    converge:
      version: "2507"
      variant: gguf-q4_k_m
      manifest_sha256: "{{ release.manifest_sha256 }}"
      unit: modelops-inference.service
      served_name: qwen3-4b-instruct
  register: host_info
  # host_info.converged, and host_info.converge_reason says why not

- name: Does the engine's installation match what the inference_server role installs?
  modelops.fleet.model_info:
    model_name: qwen3-4b-instruct
    engine_install: "{{ inference_server_endpoint.install }}"
  register: host_info
  # host_info.engine_drift lists what differs, empty when nothing does
"""

RETURN = r"""
model_root:
  description: The model root reported on.
  returned: always
  type: str
  sample: /srv/models
models:
  description: The models found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
      sample: qwen3-4b-instruct
    current:
      description: What C(current) points to, C(<version>/<variant>), or null.
      type: str
      sample: 2507/gguf-q4_k_m
    previous:
      description: What C(previous) points to, C(<version>/<variant>), or null.
      type: str
      sample: 2504/gguf-q4_k_m
    releases:
      description:
        - Installed releases (directories with a C(manifest.json)), sorted by version and
          variant, each with C(version), C(variant), C(bytes) and C(files) (model files on
          disk, without the manifest and its signature), C(sequence) (from the manifest,
          null if it cannot be read) and C(installed) (modification time of the release
          directory, UTC ISO 8601).
      type: list
      elements: dict
      sample:
        - version: "2507"
          variant: gguf-q4_k_m
          bytes: 2497280256
          files: 1
          sequence: 12
          installed: "2025-07-16T08:00:00Z"
    bytes:
      description: Total size of the model's releases (hard-linked files count once per release).
      type: int
disk:
  description:
    - Size of the file system holding O(model_root) (or its nearest existing parent) in
      bytes, C(total), C(free) (available to unprivileged users) and C(used).
  returned: always
  type: dict
  sample: {"total": 500107862016, "free": 201863462912, "used": 298244399104}
ledger:
  description: The last O(ledger_lines) events of the host ledger, oldest first.
  returned: always
  type: list
  elements: dict
engine_drift:
  description:
    - How the engine's installation differs from O(engine_install), one sentence each
      (missing file, content, mode or owner changed, user missing, unit not enabled);
      empty when it matches.
  returned: when O(engine_install) is given
  type: list
  elements: str
  sample: ["/etc/systemd/system/modelops-inference.service: its content differs from what the role installs"]
lock:
  description: Who holds the host lock now (pid, host, started, purpose), or null when it is free.
  returned: always
  type: dict
converged:
  description: Whether the host is already on the release of O(converge) and its engine serves it (see the description).
  returned: when O(converge) is given
  type: bool
  sample: true
memory:
  description: With O(memory), C(available) (bytes, from C(MemAvailable)) and C(gpu_free) (bytes, or null without C(nvidia-smi)).
  returned: when O(memory=true)
  type: dict
  sample: {available: 21474836480, gpu_free: null}
serving_instance:
  description: With O(converge.mode=blue_green), the instance the clients reach (V(blue) or V(green)), or null.
  returned: when O(converge) is given with O(converge.mode=blue_green)
  type: str
  sample: green
gate_pending:
  description:
    - With O(converge.gate), whether the release of O(converge) is current but has not passed
      its probe gate since it was made current (the upgrade probes it again, even when nothing
      else is left to do).
  returned: when O(converge) is given
  type: bool
  sample: false
converge_reason:
  description: What was seen - why the host is not converged (the first thing that differs), or what it serves.
  returned: when O(converge) is given
  type: str
  sample: current is 2411/gguf-q4_k_m, not 2507/gguf-q4_k_m
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.modelops.fleet.plugins.module_utils._attest import restart_reason, unit_state
from ansible_collections.modelops.fleet.plugins.module_utils._bluegreen import Layout, gpu_free, meminfo_available
from ansible_collections.modelops.fleet.plugins.module_utils._engine_install import ENGINE_INSTALL_SPEC, engine_drift
from ansible_collections.modelops.fleet.plugins.module_utils._files import HashCache, default_cache_path
from ansible_collections.modelops.fleet.plugins.module_utils._hostlock import lock_holder
from ansible_collections.modelops.fleet.plugins.module_utils._hoststate import (
    HostStateError, Ledger, gate_pending, installed_releases, list_models, read_link, release_rel, tree_size, utc_iso,
)
from ansible_collections.modelops.fleet.plugins.module_utils._metrics import MetricsError, collect
from ansible_collections.modelops.fleet.plugins.module_utils._release import (
    MANIFEST, ReleaseError, load_manifest_bytes, verify_tree,
)
from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit
from ansible_collections.modelops.fleet.plugins.module_utils._ready import EngineNotReady, ReadinessWaiter
from ansible_collections.modelops.fleet.plugins.module_utils._specs import model_store_spec

CONVERGE_SPEC = dict(
    version=dict(type="str", required=True),
    variant=dict(type="str", required=True),
    manifest_sha256=dict(type="str", required=True),
    unit=dict(type="str", required=True),
    url=dict(type="str", default="http://127.0.0.1:8080"),
    served_name=dict(type="str", required=True),
    api_key=dict(type="str", no_log=True),
    completion=dict(type="bool", default=True),
    prompt=dict(type="str", default="What is the capital of France? Answer in one word."),
    max_tokens=dict(type="int", default=16, no_log=False),
    metrics_path=dict(type="path"),
    gate=dict(type="bool", default=False),
    mode=dict(type="str", choices=["in_place", "blue_green"], default="in_place"),
)


class HostInfo(object):
    def __init__(self, module):
        self.module = module
        self.root = module.params["model_root"]
        # blue/green: the instance the clients reach (converge)
        self.instance = None

    def disk(self):
        path = self.root
        while not os.path.isdir(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        try:
            st = os.statvfs(path)
        except OSError as e:
            self.module.warn("could not read the file system size of %s: %s" % (path, e))
            return None
        return {"total": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize,
                "used": (st.f_blocks - st.f_bfree) * st.f_frsize}

    def link(self, model_dir, name):
        try:
            target = read_link(model_dir, name)
        except (HostStateError, OSError) as e:
            self.module.warn(str(e))
            return None
        return release_rel(*target) if target else None

    def release(self, model_dir, version, variant):
        rdir = os.path.join(model_dir, version, variant)
        sequence = None
        try:
            with open(os.path.join(rdir, MANIFEST), "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            sequence = data.get("sequence") if isinstance(data, dict) else None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            self.module.warn("cannot read %s: %s" % (os.path.join(rdir, MANIFEST), e))
        files, size = tree_size(rdir)
        return {"version": version, "variant": variant, "bytes": size, "files": files,
                "sequence": sequence, "installed": utc_iso(os.stat(rdir).st_mtime)}

    def model(self, name):
        model_dir = os.path.join(self.root, name)
        releases = [self.release(model_dir, v, var) for v, var in installed_releases(self.root, name)]
        return {"name": name, "current": self.link(model_dir, "current"),
                "previous": self.link(model_dir, "previous"), "releases": releases,
                "bytes": sum(r["bytes"] for r in releases)}

    def gate_pending(self, c, events):
        """Whether c's release is current and still waits for its probe gate (see gate_pending)."""
        if not c["gate"]:
            return False
        model = self.module.params["model_name"]
        want = release_rel(c["version"], c["variant"])
        model_dir = os.path.join(self.root, model)
        current = self.link(model_dir, "current") if os.path.isdir(model_dir) else None
        return current == want and gate_pending(events, model, want)

    def serving_instance(self, c, model, want):
        """Blue/green: (why not converged or '', the serving instance's unit, its link); the
        instance the clients reach must serve want, and the other must be stopped."""
        service = c["unit"][:-len(".service")] if c["unit"].endswith(".service") else c["unit"]
        layout = Layout(service, self.root, model)
        try:
            serving = layout.serving()
            if serving is None:
                return ("no instance serves the clients: %s does not exist (the host is not in the blue/green "
                        "layout yet)" % layout.serving_link, None, None)
            self.instance = serving
            got = layout.release(serving)
            if got != want:
                return "the clients reach %s, which serves %s, not %s" % (layout.unit(serving), got, want), None, None
            other = layout.other(serving)
            if unit_state(layout.unit(other)) in ("active", "activating", "reloading") or layout.release(other):
                return ("%s (%s) runs beside the serving instance: a run ended before it moved the clients to it or "
                        "stopped it" % (layout.unit(other), layout.release(other) or "no release"), None, None)
        except HostStateError as e:
            return str(e), None, None
        return "", layout.unit(serving), layout.link(serving)

    def converge(self, c, drift, holder, pending):
        """'' when the host is already on c's release and its engine serves it (an upgrade to
        it has nothing to do), else the first thing that differs. Cheapest checks first."""
        model = self.module.params["model_name"]
        if holder is not None:
            return "the host lock is held (%s): another run is changing this host" % (
                holder.get("purpose") or holder.get("raw") or "by another process")
        if drift:
            return "the engine's installation differs from what the inference_server role installs"
        model_dir = os.path.join(self.root, model)
        want = release_rel(c["version"], c["variant"])
        current = self.link(model_dir, "current") if os.path.isdir(model_dir) else None
        if current != want:
            return "current is %s, not %s" % (current or "nothing", want)
        if pending:
            return ("%s is current but has not passed its probe gate since it was made current (a run ended "
                    "between the engine's restart and the probes, or the ledger has no gate event for it): "
                    "the upgrade probes it before it counts as done" % want)
        rdir = os.path.join(model_dir, c["version"], c["variant"])
        try:
            with open(os.path.join(rdir, MANIFEST), "rb") as f:
                raw = f.read()
            digest = hashlib.sha256(raw).hexdigest()
            if digest != c["manifest_sha256"].lower():
                return "%s is not the verified manifest of %s (sha256 %s, expected %s)" % (
                    os.path.join(rdir, MANIFEST), want, digest, c["manifest_sha256"])
            # The hash cache makes this a stat per file; it is read, never written, here.
            verify_tree(rdir, load_manifest_bytes(raw), cache=HashCache(default_cache_path(rdir)))
        except (OSError, ReleaseError) as e:
            return str(e)
        unit, link = c["unit"], os.path.join(model_dir, "current")
        if c["mode"] == "blue_green":
            why, unit, link = self.serving_instance(c, model, want)
            if why:
                return why
        reason = restart_reason(unit, link)
        if reason:
            return reason
        try:
            ReadinessWaiter(self.module, unit, params=c).serves_now()
        except EngineNotReady as e:
            return str(e)
        if c["metrics_path"]:
            try:
                content = collect(dict(model_root=self.root, model_name=model, result=None, time=None, probe=None,
                                       path=c["metrics_path"]), self.module.warn)[0]
                with open(c["metrics_path"], "r") as f:
                    written = f.read()
            except (OSError, UnicodeDecodeError, MetricsError, HostStateError) as e:
                return "the metrics file %s cannot be read: %s" % (c["metrics_path"], e)
            if written != content:
                return "the metrics file %s is not up to date" % c["metrics_path"]
        return ""

    def run(self):
        p = self.module.params
        result = dict(changed=False, model_root=self.root, models=[], disk=self.disk(),
                      ledger=[], lock=None)
        if p["ledger_lines"] < 0:
            raise HostStateError("ledger_lines must be 0 or more, got %d" % p["ledger_lines"])
        if p["engine_install"] is not None:
            result["engine_drift"] = engine_drift(p["engine_install"])
        if p["memory"]:
            result["memory"] = {"available": meminfo_available(), "gpu_free": gpu_free()}
        if not os.path.isdir(self.root):
            result["msg"] = "model_root %s does not exist: no models on this host" % self.root
            if p["converge"] is not None:
                result.update(converged=False, converge_reason=result["msg"], gate_pending=False)
            return result
        names = list_models(self.root)
        if p["model_name"] is not None:
            names = [n for n in names if n == p["model_name"]]
        result["models"] = [self.model(n) for n in names]
        try:
            ledger = Ledger(self.root, readonly=True)
            events = ledger.events
            if ledger.problem:
                self.module.warn(ledger.problem)
        except HostStateError as e:
            self.module.warn(str(e))
            events = []
        if p["model_name"] is not None:
            events = [e for e in events if e.get("model") in (None, p["model_name"])]
        result["ledger"] = [dict(e) for e in events[-p["ledger_lines"]:]] if p["ledger_lines"] else []
        result["lock"] = lock_holder(self.root)
        if p["converge"] is not None:
            c = p["converge"]
            result["gate_pending"] = self.gate_pending(c, events)
            why = self.converge(c, result.get("engine_drift"), result["lock"], result["gate_pending"])
            result["converged"] = not why
            served_by = c["unit"] if c["mode"] == "in_place" else "%s@%s.service" % (
                c["unit"][:-len(".service")], self.instance)
            result["converge_reason"] = why or "current is %s and %s serves it" % (
                release_rel(c["version"], c["variant"]), served_by)
            if c["mode"] == "blue_green":
                result["serving_instance"] = self.instance
        if p["model_name"] is not None and not names:
            result["msg"] = "model %s is not installed under %s" % (p["model_name"], self.root)
        else:
            result["msg"] = "%d model(s) under %s" % (len(names), self.root)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            model_store_spec(),
            model_name=dict(type="str"),
            ledger_lines=dict(type="int", default=20),
            engine_install=dict(type="dict", options=ENGINE_INSTALL_SPEC),
            converge=dict(type="dict", options=CONVERGE_SPEC),
            memory=dict(type="bool", default=False),
        ),
        required_by=dict(converge="model_name"),
        supports_check_mode=True,
    )
    run_and_exit(module, lambda: HostInfo(module).run(), HostStateError,
                 os_error=lambda e: "model_info failed on %s: %s" % (module.params["model_root"], e))


if __name__ == "__main__":
    main()
