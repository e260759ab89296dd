# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollout reports on the test fleet: a bootstrap to v1 and an upgrade to v2 with
playbooks/upgrade.yml write JSON, JUnit XML and HTML reports (the rollout_report callback,
enabled in ansible.cfg), checked against what the hosts really serve; model_metrics writes a
Prometheus textfile that Prometheus' own parser reads and that matches the host state, and
that node_exporter (Debian's package on every host) serves when scraped;
status.yml prints the fleet as a table and as JSON; the HTML report renders in headless
Chromium (screenshot saved under the test artifacts)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

from conftest import MODEL, REPO, VARIANT, fresh_hosts, publish_gguf, upgrade_overrides

ALL = ["gpu-01", "gpu-02", "edge-01", "edge-02", "edge-03", "crit-01"]
GROUP = {"gpu-01": "gpu_servers", "gpu-02": "gpu_servers", "edge-01": "edge_devices",
         "edge-02": "edge_devices", "edge-03": "edge_devices", "crit-01": "critical"}
POLICY = {"gpu_servers": "canary", "edge_devices": "immediate", "critical": "frozen"}
PROM = "/var/lib/node_exporter/textfile_collector/modelops_fleet.prom"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.environ.get("MODELOPS_TEST_ARTIFACTS", os.path.join(REPO, "tests", "output"))


def currents(ansible):
    out = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a",
                        "readlink /srv/models/%s/current || echo none" % MODEL).stdout
    return dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 >>\n(\S+)$", out, re.M))


def fetch(ansible, pattern, path, dest):
    """{host: text} of a file on each host, copied to the controller with ansible.builtin.fetch."""
    ansible.adhoc(pattern, "-m", "ansible.builtin.fetch", "-a", "src=%s dest=%s/" % (path, dest))
    found = {}
    for host in os.listdir(str(dest)):
        local = os.path.join(str(dest), host, path.lstrip("/"))
        if os.path.exists(local):
            with open(local) as f:
                found[host] = f.read()
    return found


def ledgers(ansible, dest):
    return dict((h, json.loads(text)) for h, text in
                fetch(ansible, "all", "/srv/models/.modelops/state.json", dest).items())


def load_report(report_dir):
    latest = os.path.join(report_dir, "latest")
    assert os.path.isdir(latest), "no report written under %s: %s" % (report_dir, os.listdir(report_dir))
    with open(os.path.join(latest, "report.json")) as f:
        report = json.load(f)
    return latest, report


@pytest.fixture(scope="module")
def rollout(ansible, keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("reports")
    repo = base / "repo"
    catalog = str(base / "registry.db")

    def publish(version, seq, extra, weights=None):
        publish_gguf(ansible, base, repo, version, seq, keys.publisher, extra, weights,
                     env={"MODELOPS_REPORT_DIR": str(base / "publish-reports")})

    def upgrade(report_dir, *extra, **kw):
        overrides = upgrade_overrides(ansible, keys.publisher, repo, catalog)
        return ansible.playbook("playbooks/upgrade.yml", "-e", json.dumps(overrides), *extra,
                                env={"MODELOPS_REPORT_DIR": str(report_dir)}, **kw)

    # Start from hosts without the model, whatever earlier test modules left on this fleet:
    # the reports and the metrics are checked against a known history.
    fresh_hosts(ansible, MODEL)
    publish("2411", 1, "v1")
    boot = upgrade(base / "boot-reports", "-e", "model_version=2411", "-e", "model_upgrade_policy=immediate")
    publish("2412", 2, "v2")
    run = upgrade(base / "upgrade-reports")
    return {"base": base, "boot": boot, "run": run, "publish": publish, "upgrade": upgrade, "boot_dir": str(base / "boot-reports"),
            "upgrade_dir": str(base / "upgrade-reports"), "currents": currents(ansible)}


def test_json_report_matches_what_the_hosts_serve(ansible, rollout):
    serving = rollout["currents"]
    assert serving["gpu-01"] == "2412/%s" % VARIANT and serving["crit-01"] == "2411/%s" % VARIANT, serving
    latest, report = load_report(rollout["upgrade_dir"])
    assert "rollout report: %s" % rollout["upgrade_dir"] in rollout["run"].stdout
    hosts = dict((h["host"], h) for h in report["hosts"])
    assert sorted(hosts) == sorted(ALL), sorted(hosts)
    ledger = ledgers(ansible, rollout["base"] / "fetched-ledgers")
    for name in ALL:
        h = hosts[name]
        assert h["group"] == GROUP[name] and h["policy"] == POLICY[GROUP[name]], h
        assert h["engine"] == "llamacpp", h
        if name == "crit-01":
            assert h["state"] == "frozen" and h["wave"] == "frozen", h
            assert h["from"] == serving[name] and not h["steps"], h
            continue
        assert h["state"] == "upgraded" and not h["rolled_back"] and h["failure"] is None, h
        assert h["from"] == "2411/%s" % VARIANT and h["to"] == serving[name] == "2412/%s" % VARIANT, h
        # No model_serial in the demo inventory: the canary, then everyone else in one batch.
        assert h["wave"] == ("canary" if name == "gpu-01" else "batch-1"), h
        steps = [s["step"] for s in h["steps"]]
        for want in ("sync", "restart", "probe"):
            assert want in steps, (name, steps)
        assert steps.index("sync") < steps.index("restart") < steps.index("probe"), steps
        # The boot run installed the engine as the role installs it: model_info saw no drift,
        # so the upgrade spent no round trip on the engine's configuration.
        assert "configure" not in steps, (name, steps)
        # The restart step is one model_switch call: switch, restart, wait, each timed by the host.
        restart = [s for s in h["steps"] if s["step"] == "restart"][0]
        timing = restart["tasks"][-1]["timing"]
        assert restart["tasks"][-1]["action"] == "model_switch", restart
        assert set(timing) == {"activate_s", "restart_s", "ready_s", "total_s"}, timing
        assert 0 < timing["ready_s"] < timing["total_s"] <= restart["duration"] + 0.5, (timing, restart)
        for s in h["steps"]:
            assert s["duration"] >= 0 and s["start"] <= s["end"], s
        # bytes as the host's ledger recorded the install of 2412
        install = [e for e in ledger[name]["events"] if e.get("action") == "install" and e.get("to") == h["to"]][-1]
        assert h["bytes_transferred"] == install["bytes_transferred"] > 0, (h["bytes_transferred"], install)
        assert h["bytes_linked"] == install["bytes_linked"] >= os.path.getsize(ansible.artifacts["model_file"]), install
        activation = [e for e in ledger[name]["events"] if e.get("action") == "activate"][-1]
        assert h["activations"][-1]["to"] == activation["to"] == h["to"], (h["activations"], activation)
    assert hosts["gpu-01"]["wave"] == "canary"
    # probes: every upgraded host passed the shipped smoke suite after its switch; the canary
    # recorded its baseline on the old version (the ledger event) and was compared with it
    smoke = smoke_probe_names()
    for name in ALL[:-1]:
        gate = [r for r in hosts[name]["probes"] if r["step"] == "probe"]
        assert gate and gate[0]["suite"] == "smoke" and gate[0]["passed"], (name, hosts[name]["probes"])
        assert [p["name"] for p in gate[0]["probes"]] == smoke
        assert gate[0]["latency"]["p50_ms"] > 0 and all(p["latencies_ms"] for p in gate[0]["probes"])
    recorded = [e for e in ledger["gpu-01"]["events"] if e.get("action") == "probe_baseline"][-1]
    base = [r for r in hosts["gpu-01"]["probes"] if r["step"] == "baseline"]
    assert base and base[0]["baseline"]["recorded"] and base[0]["baseline"]["time"] == recorded["time"], base
    assert base[0]["latency"] == recorded["latency"]
    compared = [r for r in hosts["gpu-01"]["probes"] if r["step"] == "probe"][0]
    assert compared["baseline"]["latency"] == recorded["latency"] and not compared["baseline"]["recorded"]
    steps = [s["step"] for s in hosts["gpu-01"]["steps"]]
    assert steps[0] == "baseline" and steps.index("baseline") < steps.index("sync"), steps
    # the canary finished its sync before any other host of its group started one
    gpu02_sync = [s for s in hosts["gpu-02"]["steps"] if s["step"] == "sync"][0]
    gpu01_served = [s for s in hosts["gpu-01"]["steps"] if s["step"] == "restart"][-1]
    assert gpu01_served["end"] <= gpu02_sync["start"]
    s = report["summary"]
    assert s["states"] == {"upgraded": 5, "frozen": 1}, s
    assert s["failed"] == [] and s["model"] == MODEL and s["releases"] == ["%s-2412-%s" % (MODEL, VARIANT)], s
    assert s["rollout"]["hosts"]["gpu-01"] == "upgraded" and s["halted_by_failure_budget"] is False, s
    # the bootstrap report: every host from nothing to 2411 (crit-01 too, the policy was overridden)
    dummy, boot = load_report(rollout["boot_dir"])
    for h in boot["hosts"]:
        assert h["state"] == "upgraded" and h["from"] is None and h["to"] == "2411/%s" % VARIANT, h
        assert h["policy"] == "immediate", h
    # the reports of two runs live side by side; latest is the newest
    assert os.path.realpath(latest) != os.path.realpath(os.path.join(rollout["boot_dir"], "latest"))
    for path in ("report.json", "junit.xml", "report.html"):
        with open(os.path.join(latest, path)) as f:
            text = f.read()
        assert keys_leak(text) == [], path


def smoke_probe_names():
    import yaml
    with open(os.path.join(REPO, "probe_suites", "smoke.yml")) as f:
        return [p["name"] for p in yaml.safe_load(f)["probes"]]


def keys_leak(text):
    """Secret-looking keys in a report (there must be none)."""
    return re.findall(r'"(api_key|[^"]*(?:password|passphrase|secret|token)[^"]*)"\s*:', text, re.I)


def test_junit_has_a_case_per_host_and_probe(rollout):
    latest, report = load_report(rollout["upgrade_dir"])
    tree = ET.parse(os.path.join(latest, "junit.xml"))
    suite = tree.getroot().find("testsuite")
    cases = suite.findall("testcase")
    upgrades = dict((c.get("name").split()[0], c) for c in cases if c.get("classname").startswith("rollout."))
    assert sorted(upgrades) == sorted(ALL)
    for name, case in upgrades.items():
        assert case.get("classname") == "rollout.%s" % GROUP[name]
        assert case.find("failure") is None and case.find("error") is None, name
        if name == "crit-01":
            assert case.find("skipped").get("message") == "frozen"
        else:
            assert case.find("skipped") is None
            assert case.get("name") == "%s upgrade 2411/%s -> 2412/%s" % (name, VARIANT, VARIANT)
    probes = [c for c in cases if c.get("classname").startswith("probes.")]
    want = sum(len(run["probes"]) for h in report["hosts"] for run in h["probes"])
    assert len(probes) == want
    names = set(c.get("name") for c in probes)
    for name in ALL[:-1]:  # every upgraded host has a passed test case per probe of its gate
        for probe in smoke_probe_names():
            case = [c for c in probes if c.get("name") == "%s probe smoke/%s" % (name, probe)]
            assert len(case) == 1 and case[0].find("failure") is None, (name, probe, sorted(names))
            assert case[0].get("classname") == "probes.%s" % GROUP[name] and float(case[0].get("time")) > 0
    assert "gpu-01 probe smoke/%s (baseline)" % smoke_probe_names()[0] in names
    assert int(suite.get("tests")) == len(cases) and int(suite.get("failures")) == 0
    assert int(suite.get("skipped")) == 1


def prom_families(text):
    from prometheus_client.parser import text_string_to_metric_families
    return dict((f.name, f) for f in text_string_to_metric_families(text))


def scrape(ansible, pattern, dest):
    """{host: text} of node_exporter's /metrics on each host, scraped on the host itself
    (http://127.0.0.1:9100/metrics; Debian's prometheus-node-exporter in the host image,
    its textfile collector reading model_metrics' default directory)."""
    body = "/run/modelops-test-scrape.prom"
    ansible.adhoc(pattern, "-m", "ansible.builtin.uri", "-a", "url=http://127.0.0.1:9100/metrics dest=%s" % body)
    return fetch(ansible, pattern, body, dest)


def modelops_series(fams):
    """{(name, sorted labels): value} of the modelops_* samples of parsed families."""
    return dict(((s.name, tuple(sorted(s.labels.items()))), s.value)
                for name, f in fams.items() if name.startswith("modelops_") for s in f.samples)


def assert_scraped_as_written(scraped, written, host):
    """node_exporter read the textfile without error and serves exactly its samples."""
    fams = prom_families(scraped)
    assert fams["node_textfile_scrape_error"].samples[0].value == 0, (host, scraped[-2000:])
    files = [s.labels.get("file", "") for s in fams["node_textfile_mtime_seconds"].samples]
    assert any(f.endswith("modelops_fleet.prom") for f in files), (host, files)
    assert modelops_series(fams) == modelops_series(prom_families(written)), host
    return fams


def test_metrics_written_by_the_upgrade_role(ansible, rollout, tmp_path):
    # What upgrade.yml itself wrote (no module call of this test first): every upgraded host
    # says 2412 and a successful upgrade, with the metrics of its last probe run; the frozen
    # host keeps what the bootstrap (2411, every group immediate) wrote: the frozen play of
    # the 2412 run does not write to it.
    texts = fetch(ansible, "all", PROM, tmp_path / "role-prom")
    assert sorted(texts) == sorted(ALL), sorted(texts)
    hosts = dict((h["host"], h) for h in load_report(rollout["upgrade_dir"])[1]["hosts"])
    scraped = scrape(ansible, "all", tmp_path / "scraped")
    assert sorted(scraped) == sorted(ALL), sorted(scraped)
    for name, text in texts.items():
        # What a Prometheus scraping node_exporter gets: the upgraded hosts and the frozen one.
        fams = assert_scraped_as_written(scraped[name], text, name)
        version = "2411" if name == "crit-01" else "2412"
        assert fams["modelops_model_info"].samples[0].labels == {"model": MODEL, "version": version, "variant": VARIANT}
        ok = fams["modelops_model_last_upgrade_success"].samples[0]
        assert ok.labels == {"model": MODEL, "result": "upgraded"} and ok.value == 1, (name, ok)
        assert fams["modelops_probe_passed"].samples[0].value == 1, (name, text)
        assert fams["modelops_probe_pass_ratio"].samples[0].value == 1, (name, text)
        # Each step's own seconds, as its module accounted for them; the report read the same
        # accounts, so both say the same per step (crit-01's are the bootstrap's).
        seconds = dict((x.labels["step"], x.value) for x in fams["modelops_upgrade_step_seconds"].samples)
        success = dict((x.labels["step"], x.value) for x in fams["modelops_upgrade_step_success"].samples)
        assert {"sync", "restart", "probe"} <= set(seconds) and set(success.values()) == {1}, (name, text)
        assert seconds["restart"] > 0 and seconds["probe"] > 0, (name, text)
        if name == "crit-01":
            continue
        steps = hosts[name]["steps"]
        for step, value in seconds.items():
            own = sum(x["seconds"] or 0 for x in steps if x["step"] == step)
            spans = sum(x["duration"] for x in steps if x["step"] == step)
            assert abs(own - value) < 0.01 and own <= spans + 0.01, (name, step, value, steps)


def test_metrics_textfile_parses_and_matches_the_host_state(ansible, rollout, tmp_path):
    serving = currents(ansible)
    ansible.adhoc("all", "-m", "ansible.builtin.file", "-a", "path=%s state=absent" % PROM)
    check = ansible.adhoc("all", "-m", "modelops.fleet.model_metrics", "-a", "model_name=%s" % MODEL, "--check")
    assert len(re.findall(r"\| CHANGED =>", check.stdout)) == len(ALL), check.stdout[-3000:]
    absent = ansible.adhoc("all", "-m", "ansible.builtin.shell", "-a", "test -e %s && echo present || echo absent" % PROM)
    assert absent.stdout.count("absent") == len(ALL)
    first = ansible.adhoc("all", "-m", "modelops.fleet.model_metrics", "-a", "model_name=%s" % MODEL)
    assert len(re.findall(r"\| CHANGED =>", first.stdout)) == len(ALL), first.stdout[-3000:]
    again = ansible.adhoc("all", "-m", "modelops.fleet.model_metrics", "-a", "model_name=%s" % MODEL)
    assert len(re.findall(r"\| SUCCESS =>", again.stdout)) == len(ALL), again.stdout[-3000:]

    ledger = ledgers(ansible, tmp_path / "ledgers")
    texts = fetch(ansible, "all", PROM, tmp_path / "prom")
    assert sorted(texts) == sorted(ALL)
    for name in ALL:
        fams = prom_families(texts[name])
        info = fams["modelops_model_info"].samples
        assert len(info) == 1 and info[0].value == 1
        version, variant = serving[name].split("/")
        assert info[0].labels == {"model": MODEL, "version": version, "variant": variant}, info
        last = [e for e in ledger[name]["events"] if e.get("action") in ("activate", "rollback")][-1]
        ok = fams["modelops_model_last_upgrade_success"].samples[0]
        assert ok.labels == {"model": MODEL, "result": "upgraded"} and ok.value == 1
        ts = fams["modelops_model_last_upgrade_timestamp_seconds"].samples[0].value
        import datetime
        want = datetime.datetime.strptime(last["time"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        assert ts == want, (name, ts, last)
        prev = fams.get("modelops_model_previous_info")
        if name != "crit-01":
            assert prev.samples[0].labels["version"] == "2411", prev.samples
    # probe metrics from a real probe run on gpu-02, through a registered result
    play = tmp_path / "probe-metrics.yml"
    play.write_text("""---
- hosts: gpu-02
  gather_facts: false
  tasks:
    - modelops.fleet.model_probe:
        served_name: %s
        model_name: %s
        suite: smoke
        fail_on_failure: false
      register: probe
    - modelops.fleet.model_metrics:
        model_name: %s
        probe: "{{ probe }}"
    - ansible.builtin.copy:
        content: >-
          {{ {'passed': probe.probes | selectattr('passed') | list | length, 'total': probe.probes | length,
              'latency': probe.latency, 'suite': probe.suite_name} | to_json }}
        dest: "%s"
        mode: "0644"
      delegate_to: localhost
""" % (MODEL, MODEL, MODEL, tmp_path / "probe.json"))
    run = ansible.playbook(str(play), env={"MODELOPS_REPORT_DIR": str(tmp_path / "reports")})
    assert "changed=2" in run.stdout, run.stdout[-3000:]  # the metrics file got the probe metrics
    probe = json.loads((tmp_path / "probe.json").read_text())
    fams = prom_families(fetch(ansible, "gpu-02", PROM, tmp_path / "prom-after-probe")["gpu-02"])
    labels = {"model": MODEL, "suite": probe["suite"]}
    ratio = fams["modelops_probe_pass_ratio"].samples[0]
    assert ratio.labels == labels and ratio.value == pytest.approx(probe["passed"] / probe["total"], abs=1e-6)
    p50 = fams["modelops_probe_latency_p50_seconds"].samples[0].value
    assert p50 == pytest.approx(probe["latency"]["p50_ms"] / 1000.0, abs=1e-6) and p50 > 0
    assert fams["modelops_probe_latency_p90_seconds"].samples[0].value >= p50
    assert fams["modelops_model_info"].samples[0].labels["version"] == "2412"
    # a later run without a probe keeps the probe metrics and changes nothing
    keep = ansible.adhoc("gpu-02", "-m", "modelops.fleet.model_metrics", "-a", "model_name=%s" % MODEL)
    assert "SUCCESS" in keep.stdout, keep.stdout


def test_status_table_and_json(ansible, rollout, tmp_path):
    serving = currents(ansible)
    table = ansible.playbook("playbooks/status.yml", env={"MODELOPS_REPORT_DIR": str(tmp_path / "r1")})
    rows = {}
    shown = table.stdout[table.stdout.index("TASK [Show the fleet status]"):]
    shown = shown[:shown.index("PLAY RECAP")]
    for line in shown.splitlines():
        cells = line.strip().strip("-").strip().strip("'\"").split()
        if cells and cells[0] in ALL:
            rows[cells[0]] = " ".join(cells)
    assert sorted(rows) == sorted(ALL), table.stdout[-3000:]
    assert re.search(r"HOST\s+GROUP\s+POLICY\s+ENGINE\s+CURRENT\s+PREVIOUS\s+LAST RESULT", table.stdout)
    for name in ALL:
        assert rows[name].startswith("%s %s %s llamacpp %s" % (name, GROUP[name], POLICY[GROUP[name]], serving[name])), rows[name]
        assert " upgraded " in rows[name], rows[name]
    assert rows["gpu-01"].split()[5] == "2411/%s" % VARIANT
    assert rows["crit-01"].endswith("2411 ok"), rows["crit-01"]

    out = tmp_path / "status.json"
    # plus a host nothing answers on: it is a row saying so, and the others are still read
    ghost = tmp_path / "ghost.yml"
    ghost.write_text(json.dumps({"ghosts": {"hosts": {"ghost-01": {
        "ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh",
        "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no"}}}}))
    ansible.playbook("playbooks/status.yml", "-i", str(ghost), "-e", "status_format=json",
                     "-e", "status_output=%s" % out, env={"MODELOPS_REPORT_DIR": str(tmp_path / "r2")})
    data = json.loads(out.read_text())
    by_host = dict((r["host"], r) for r in data)
    assert by_host.pop("ghost-01")["last_result"] == "unreachable", data
    assert sorted(by_host) == sorted(ALL)
    ledger = ledgers(ansible, tmp_path / "ledgers")
    for name, r in by_host.items():
        last = [e for e in ledger[name]["events"] if e.get("action") in ("activate", "rollback")][-1]
        assert r["current"] == serving[name] and r["last_result"] == "upgraded", r
        assert r["last_change"] == last["time"] and r["group"] == GROUP[name], r
    assert by_host["crit-01"]["pin"] == "2411" and by_host["crit-01"]["drift"] is False
    assert by_host["gpu-01"]["pin"] is None and by_host["gpu-01"]["drift"] is False


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (scripts/setup.sh installs it)")
def test_html_report_renders_in_headless_chromium(rollout):
    latest, report = load_report(rollout["upgrade_dir"])
    page = os.path.join(os.path.realpath(latest), "report.html")
    with open(page) as f:
        source = f.read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", source), "the page loads an external asset"
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "rollout-report.png")
    if os.path.exists(shot):
        os.unlink(shot)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=%s" % profile]
    try:
        proc = subprocess.run(flags + ["--screenshot=%s" % shot, "--window-size=1280,2000", "file://" + page],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180, check=False)
        assert proc.returncode == 0 and os.path.exists(shot), proc.stdout[-2000:]
        with open(shot, "rb") as f:
            png = f.read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, len(png)
        dom = subprocess.run(flags + ["--dump-dom", "file://" + page], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=180, check=False)
        assert dom.returncode == 0, dom.stderr[-2000:]
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    html = dom.stdout
    rows = dict(re.findall(r'<tr class="host-row" data-host="([^"]+)" data-state="([^"]+)">', html))
    want = dict((h["host"], h["state"]) for h in report["hosts"])
    assert rows == want and rows["crit-01"] == "frozen" and rows["gpu-01"] == "upgraded", rows
    # the rendered rows show each host with its final state
    for name, state in want.items():
        assert re.search(r'data-host="%s"[^>]*>.*?<span class="state"[^>]*>%s</span>' % (name, state), html, re.S)
    assert html.count('aria-label="timeline of ') == 5  # every upgraded host has its bars


def test_failed_canary_is_reported_with_its_rollback(ansible, rollout, tmp_path):
    """A broken v3 (signed and intact, but not a model llama-server loads) fails on the canary,
    which is rolled back: the reports say so, failures first, and agree with the host."""
    rollout["publish"]("2501", 3, "v3", weights=b"GGUF" + os.urandom(1 << 20))
    report_dir = tmp_path / "reports"
    run = rollout["upgrade"](report_dir, "-e", "model_target=gpu_servers", check=False)
    assert run.returncode != 0
    serving = currents(ansible)
    assert serving["gpu-01"] == serving["gpu-02"] == "2412/%s" % VARIANT, serving
    latest, report = load_report(str(report_dir))
    hosts = dict((h["host"], h) for h in report["hosts"])
    assert report["hosts"][0]["host"] == "gpu-01"  # failures first
    c = hosts["gpu-01"]
    assert c["state"] == "failed" and c["rolled_back"] is True and c["wave"] == "canary", c
    assert c["from"] == "2412/%s" % VARIANT and c["to"] == "2501/%s" % VARIANT
    assert "rolled back to 2412/%s" % VARIANT in c["failure"], c["failure"]
    steps = [s["step"] for s in c["steps"]]
    failed = [s["step"] for s in c["steps"] if s["status"] == "failed"]
    assert failed and steps.index(failed[0]) < steps.index("rollback"), steps
    assert failed[0] in ("restart", "ready", "probe"), steps
    ledger = ledgers(ansible, tmp_path / "ledgers")["gpu-01"]
    back = [e for e in ledger["events"] if e.get("action") in ("activate", "rollback")][-1]
    assert back["to"] == "2412/%s" % VARIANT and back["reason"].startswith("rollback")
    assert c["activations"][-1]["to"] == back["to"] and c["activations"][-1]["reason"] == back["reason"]
    assert hosts["gpu-02"]["state"] == "not upgraded" and not hosts["gpu-02"]["steps"], hosts["gpu-02"]
    assert report["summary"]["failed"] == ["gpu-01"], report["summary"]

    suite = ET.parse(os.path.join(latest, "junit.xml")).getroot().find("testsuite")
    case = [t for t in suite.findall("testcase") if t.get("name").startswith("gpu-01 upgrade")][0]
    failure = case.find("failure")
    assert failure is not None and "rolled back to 2412" in failure.get("message")
    other = [t for t in suite.findall("testcase") if t.get("name").startswith("gpu-02 upgrade")][0]
    assert other.find("skipped").get("message") == "not upgraded"
    with open(os.path.join(latest, "report.html")) as f:
        page = f.read()
    assert page.index('id="failures"') < page.index('id="hosts"')
    fail_box = page[page.index('id="failures"'):page.index('id="hosts"')]
    assert "gpu-01" in fail_box and "rolled back to 2412" in fail_box

    # the host's metrics and the status table say the same
    ansible.adhoc("gpu-01", "-m", "modelops.fleet.model_metrics", "-a", "model_name=%s" % MODEL)
    fams = assert_scraped_as_written(scrape(ansible, "gpu-01", tmp_path / "scraped")["gpu-01"],
                                     fetch(ansible, "gpu-01", PROM, tmp_path / "prom")["gpu-01"], "gpu-01")
    ok = fams["modelops_model_last_upgrade_success"].samples[0]
    assert ok.labels["result"] == "rolled_back" and ok.value == 0
    assert fams["modelops_model_info"].samples[0].labels["version"] == "2412"
    out = tmp_path / "status.json"
    ansible.playbook("playbooks/status.yml", "-e", "status_format=json", "-e", "status_output=%s" % out,
                     "-e", "status_target=gpu_servers", env={"MODELOPS_REPORT_DIR": str(tmp_path / "r")})
    rows = dict((r["host"], r) for r in json.loads(out.read_text()))
    assert sorted(rows) == ["gpu-01", "gpu-02"]
    assert rows["gpu-01"]["last_result"] == "rolled back" and rows["gpu-01"]["last_change"] == back["time"]
    assert rows["gpu-02"]["last_result"] == "upgraded"
