# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Site mirrors: upgrade.yml stocks a site mirror (the model_mirror role: Debian's nginx,
releases pushed with model_sync) and the hosts of the group that names it in
model_site_mirror pull from it instead of from the controller.

The mirror is a test host of its own (smir-01, a one-host fleet beside the test fleet);
the edge hosts reach its nginx on podman's bridge, at the address fleet.py records
(fleet_address)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

import pytest

from conftest import GGUF, MODEL, VARIANT, Ansible, fleet, fresh_hosts, publish_gguf, recap, rollout_steps, upgrade_overrides

MIRROR = "smir-01"
PORT = 8090
EDGES = ["edge-01", "edge-02", "edge-03"]
SERVED = "/srv/model-mirror"


@pytest.fixture(scope="module")
def site(ansible, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("site-mirror")
    name = "testmirror"
    try:
        state = json.loads(fleet("up", "--name", name, "--host", "%s:23290:29290" % MIRROR).stdout)
        # The site: the mirror host serves releases only, the edge group pulls from it.
        site_inv = base / "site.yml"
        site_inv.write_text(json.dumps({"all": {"children": {
            "site_mirrors": {"hosts": {MIRROR: {"model_is_site_mirror": True,
                                                "model_mirror_address": "{{ fleet_address }}"}}},
            "edge_devices": {"vars": {"model_site_mirror": MIRROR}}}}}))
        site_ansible = Ansible(ansible.inventories + [state["inventory"], str(site_inv)], ansible.artifacts)
        env = {"repo": base / "repo", "catalog": str(base / "registry.db"), "base": base,
               "ansible": site_ansible, "address": state["hosts"][MIRROR]["address"]}
        fresh_hosts(ansible, MODEL)
        publish_gguf(ansible, base, env["repo"], "2501", 1, keys.publisher, "a")
        yield env
    finally:
        fleet("down", "--name", name, check=False)


def upgrade(site, keys, *extra, check=True):
    a = site["ansible"]
    overrides = upgrade_overrides(a, keys.publisher, site["repo"], site["catalog"])
    overrides["model_upgrade_policy"] = "immediate"
    return a.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), *extra, check=check)


def sh(site, host, cmd):
    out = site["ansible"].adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd).stdout
    return out.split(">>\n", 1)[1] if ">>\n" in out else out


def currents(site):
    out = site["ansible"].adhoc("all:!%s" % MIRROR, "-m", "ansible.builtin.shell", "-a",
                                "readlink /srv/models/%s/current || echo none" % MODEL).stdout
    return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", out, re.M))


def addresses(site):
    """{host: its address on podman's bridge}, from the fleets' inventory overlays (JSON)."""
    out = {}
    for inv in site["ansible"].inventories:
        if inv.endswith("inventory.yml"):
            with open(inv) as f:
                out.update((h, v["fleet_address"]) for h, v in json.load(f)["all"]["hosts"].items())
    return out


def served_url(site, path):
    return "http://%s:%d/%s" % (site["address"], PORT, path)


def test_the_edges_pull_the_release_from_their_site_mirror_and_the_controller_pushes_it_once(site, keys):
    run = upgrade(site, keys, "-e", "model_version=2501")
    out = run.stdout
    assert out.index("PLAY [Site mirrors]") < out.index("PLAY [The rest, in batches, within the failure budget]")
    want = dict((h, "2501/%s" % VARIANT) for h in ["gpu-01", "gpu-02", "crit-01"] + EDGES)
    assert currents(site) == want, out[-3000:]
    size = os.path.getsize(str(site["repo"] / MODEL / "2501" / VARIANT / GGUF))
    # Each edge downloaded the weights from the mirror's nginx, once, in full; no one else did.
    log = sh(site, MIRROR, "cat /var/log/nginx/modelops-mirror.access.log")
    gets = re.findall(r'^(\S+) \S+ \S+ \[[^]]+\] "GET /%s/2501/%s/%s HTTP/1.1" 200 (\d+)' % (MODEL, VARIANT, GGUF),
                      log, re.M)
    addr = addresses(site)
    assert sorted(ip for ip, n in gets) == sorted(addr[h] for h in EDGES), (log, addr)
    assert all(int(n) == size for ip, n in gets), gets
    # The mirror serves what it verified, nothing of its bookkeeping, and honours Range.
    with urllib.request.urlopen(served_url(site, "%s/2501/%s/manifest.json" % (MODEL, VARIANT)), timeout=10) as r:
        manifest = json.loads(r.read())
    assert manifest["version"] == "2501" and manifest["files"]
    req = urllib.request.Request(served_url(site, "%s/2501/%s/%s" % (MODEL, VARIANT, GGUF)),
                                 headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(req, timeout=10) as r:
        part = r.read()
        assert r.status == 206 and len(part) == 100
    with open(str(site["repo"] / MODEL / "2501" / VARIANT / GGUF), "rb") as f:
        f.seek(100)
        assert part == f.read(100)
    for hidden in (".modelops/state.json", ".modelops/lock", ".staging/"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(served_url(site, hidden), timeout=10)
        assert e.value.code == 404, hidden
    # The mirror is not upgraded itself: it has no engine and no current link.
    assert sh(site, MIRROR, "ls /srv/models/%s 2>&1 || true" % MODEL).strip().endswith("No such file or directory")

    again = upgrade(site, keys)
    for host, c in recap(again.stdout).items():
        assert c["changed"] == 0 and c["failed"] == 0, (host, c, again.stdout[-3000:])


def test_hosts_of_a_mirror_that_cannot_be_stocked_are_left_alone_and_the_run_fails_naming_it(site, keys):
    publish_gguf(site["ansible"], site["base"], site["repo"], "2502", 2, keys.publisher, "b")
    # --check plans the mirror's hosts like any other and changes nothing on the mirror.
    plan = upgrade(site, keys, "--check")
    row = r"^\s+((?:gpu|edge|crit)-\d+)\s+(.*)$"
    rows = dict((m.group(1), m.group(2).split()) for m in re.finditer(row, plan.stdout, re.M))
    assert [rows[h][5] for h in EDGES] == ["upgrade"] * 3, plan.stdout[-3000:]
    assert "2502" not in sh(site, MIRROR, "ls %s/%s" % (SERVED, MODEL))
    # The mirror's web server cannot run: the mirror is not stocked.
    sh(site, MIRROR, "systemctl mask --now nginx")
    try:
        run = upgrade(site, keys, check=False)
        assert run.returncode != 0
        said = " ".join(run.stdout.split())
        for h in EDGES:
            assert ("%s: its site mirror %s was not stocked with %s-2502-%s" % (h, MIRROR, MODEL, VARIANT)) in said, \
                run.stdout[-4000:]
        # The edges were not touched (no sync ran on them) and still serve 2501; the GPUs,
        # which are pushed to, upgraded.
        synced = [host for host, dummy, status in rollout_steps(run.stdout, "Make the release present on the host")]
        assert "gpu-01" in synced and not set(synced) & set(EDGES), synced
        now = currents(site)
        assert [now[h] for h in EDGES] == ["2501/%s" % VARIANT] * 3 and now["gpu-01"] == "2502/%s" % VARIANT, now
        assert re.search(r"^\s+edge-01: failed$", run.stdout, re.M), run.stdout[-2000:]
        # and says what went wrong on the mirror
        assert "(Run nginx, also after a reboot: Unable to start service nginx" in said, run.stdout[-3000:]
    finally:
        sh(site, MIRROR, "systemctl unmask nginx")
    # Fixed mirror, same run again: it converges.
    upgrade(site, keys)
    assert set(currents(site)[h] for h in EDGES) == {"2502/%s" % VARIANT}


def test_a_mirror_whose_port_serves_another_manifest_is_refused_and_its_hosts_are_left_alone(site, keys):
    publish_gguf(site["ansible"], site["base"], site["repo"], "2503", 3, keys.publisher, "c")
    # Something else answers on the mirror's port for the mirror itself (a more specific
    # listen address wins in nginx): the stocked files are right, what is served is not.
    fake = "/srv/other-site/%s/2503/%s" % (MODEL, VARIANT)
    sh(site, MIRROR, "mkdir -p %s && echo '{\"version\": \"2503\", \"files\": []}' > %s/manifest.json && "
       "printf 'server {\\n listen 127.0.0.1:%d;\\n root /srv/other-site;\\n}\\n' > /etc/nginx/conf.d/other.conf && "
       "nginx -t && systemctl reload nginx" % (fake, fake, PORT))
    try:
        run = upgrade(site, keys, check=False)
        assert run.returncode != 0
        said = " ".join(run.stdout.split())
        assert ("%s: the mirror at port %d serves a manifest.json for %s-2503-%s that is not the verified one"
                % (MIRROR, PORT, MODEL, VARIANT)) in said, run.stdout[-4000:]
        for h in EDGES:
            assert ("%s: its site mirror %s was not stocked with %s-2503-%s" % (h, MIRROR, MODEL, VARIANT)) in said
        now = currents(site)
        assert [now[h] for h in EDGES] == ["2502/%s" % VARIANT] * 3 and now["gpu-01"] == "2503/%s" % VARIANT, now
    finally:
        sh(site, MIRROR, "rm -rf /etc/nginx/conf.d/other.conf /srv/other-site && systemctl reload nginx")


def test_a_mirror_that_cannot_be_reached_leaves_its_hosts_alone_and_the_rest_of_the_run_goes_on(site, keys):
    # The mirror's ssh port, as the controller sees it, is closed (an inventory layered on top).
    down = site["base"] / "mirror-down.yml"
    down.write_text(json.dumps({"all": {"hosts": {MIRROR: {"ansible_port": 1}}}}))
    a = site["ansible"]
    overrides = upgrade_overrides(a, keys.publisher, site["repo"], site["catalog"])
    overrides["model_upgrade_policy"] = "immediate"
    run = Ansible(a.inventories + [str(down)], a.artifacts).playbook(
        "playbooks/upgrade.yml", "-e", json.dumps(overrides), "-e", "model_mirror_connect_timeout=5", check=False)
    assert run.returncode != 0
    said = " ".join(run.stdout.split())
    # Not an unreachable host that ends the run: the plays after the mirrors ran, and each
    # edge names the mirror and why.
    assert "PLAY [Summary]" in run.stdout, run.stdout[-4000:]
    for h in EDGES:
        assert ("%s: its site mirror %s was not stocked with %s-2503-%s (Reach the mirror:" % (h, MIRROR, MODEL, VARIANT)) \
            in said, run.stdout[-4000:]
    now = currents(site)
    assert [now[h] for h in EDGES] == ["2502/%s" % VARIANT] * 3, now
    # Reachable again (and serving the verified manifest again): the edges converge.
    upgrade(site, keys)
    assert set(currents(site)[h] for h in EDGES) == {"2503/%s" % VARIANT}
