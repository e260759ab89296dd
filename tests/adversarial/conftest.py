# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Adversarial and fault-injection suite: the real collection against a real fleet.

One fleet (name "adv", ports shifted by 4000, three hosts: tests/adversarial/inventory)
and one set of signed releases per session. Every case drives playbooks/upgrade.yml (or a
module of the collection where upgrade.yml has no handle on the fault), checks that the
bad thing was refused or survived with a message naming it, then checks that every host
still serves a verified version (modelops.fleet.model_verify on the release `current`
points to, modelops.fleet.inference_ready with a real completion).

At the end the suite prints a table (case, expected, observed, hosts serving a verified
version) and writes it to $MODELOPS_TEST_ARTIFACTS/adversarial.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INVENTORY = os.path.join(HERE, "inventory")
HEALTH = os.path.join(HERE, "playbooks", "health.yml")
PROBE_SUITE = os.path.join(HERE, "probe_suite.yml")
FLEET_NAME = os.environ.get("MODELOPS_ADV_FLEET", "adv")
PORT_OFFSET = int(os.environ.get("MODELOPS_ADV_PORT_OFFSET", "4000"))
STATE = os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet")
ARTIFACTS = os.environ.get("MODELOPS_TEST_ARTIFACTS", os.path.join(REPO, "tests", "output"))
# The rollout_report callback writes its reports here (the secrets case reads them).
REPORTS = os.path.join(ARTIFACTS, "adversarial-reports")
os.environ["MODELOPS_REPORT_DIR"] = REPORTS

MODEL = "smollm2-135m-instruct"
VARIANT = "gguf-q4_1"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
HOSTS = ["gpu-01", "gpu-02", "edge-01"]
MODEL_DIR = "/srv/models/%s" % MODEL


sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))
from damage_gguf import zero_weights  # noqa: E402  pylint: disable=wrong-import-position
from suites import gpg_test_keys, load_integration_conftest  # noqa: E402  pylint: disable=wrong-import-position
import suite_timing  # noqa: E402  pylint: disable=wrong-import-position

itc = load_integration_conftest("modelops_integration_conftest", FLEET_NAME)
recap = itc.recap
rollout_steps = itc.rollout_steps
MIRROR_SERVER = itc.MIRROR_SERVER


# --------------------------------------------------------------------------- the table

RESULTS = []


class Case(object):
    """One row of the table. A test fills observed/serving; a test that fails before it
    could says so (see pytest_runtest_makereport)."""

    def __init__(self, name, expected):
        self.name = name
        self.expected = expected
        self.observed = None
        self.serving = None
        self.outcome = "not run"
        RESULTS.append(self)


@pytest.fixture
def case(request):
    marker = request.node.get_closest_marker("case")
    if marker is None:
        raise AssertionError("test %s has no @pytest.mark.case(name, expected)" % request.node.name)
    c = Case(*marker.args)
    request.node.adv_case = c
    return c


def pytest_configure(config):
    config.addinivalue_line("markers", "case(name, expected): a row of the adversarial table")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    c = getattr(item, "adv_case", None)
    if c is None or rep.when != "call" and not (rep.when == "setup" and rep.failed):
        return
    if rep.failed:
        c.outcome = "FAILED"
        msg = str(rep.longrepr.reprcrash.message) if hasattr(rep.longrepr, "reprcrash") else str(rep.longrepr)
        c.observed = (c.observed + "; " if c.observed else "") + "TEST FAILED: " + msg.splitlines()[0][:300]
    else:
        c.outcome = "passed"


def table_markdown():
    def cell(v):
        return str(v if v is not None else "-").replace("|", "\\|").replace("\n", " ")
    lines = ["| case | expected | observed | hosts serving a verified version | test |",
             "|---|---|---|---|---|"]
    for c in RESULTS:
        lines.append("| %s |" % " | ".join(cell(x) for x in (c.name, c.expected, c.observed, c.serving, c.outcome)))
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    text = table_markdown()
    terminalreporter.section("adversarial and fault-injection cases")
    terminalreporter.write(text)
    try:
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, "adversarial.md"), "w") as f:
            f.write("# Adversarial and fault-injection suite\n\nFleet `%s`, %s.\n\n" % (
                FLEET_NAME, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))
            f.write(text)
        terminalreporter.write_line("table written to %s" % os.path.join(ARTIFACTS, "adversarial.md"))
    except OSError as e:
        terminalreporter.write_line("could not write adversarial.md: %s" % e)


# --------------------------------------------------------------------------- ansible

ANSIBLE_LOG = os.path.join(ARTIFACTS, "adversarial-ansible.log")


class Ansible(itc.Ansible):
    """The integration runner, plus: every output kept in one log (the secrets case reads
    it), and runs in the background that a test can watch and kill."""

    def run(self, cmd, *args, **kw):
        proc = None
        t0 = time.time()
        try:
            proc = super(Ansible, self).run(cmd, *args, **kw)
            return proc
        except AssertionError as e:
            self.log(cmd, args, str(e), time.time() - t0)
            raise
        finally:
            if proc is not None:
                self.log(cmd, args, proc.stdout, time.time() - t0)

    def _over_ssh(self, kind, how, module, pattern, arg):
        t0 = time.time()
        done = super(Ansible, self)._over_ssh(kind, how, module, pattern, arg)
        if done is not None:
            self.log(kind, (pattern, arg), done.stdout, time.time() - t0)
        return done

    @staticmethod
    def log(cmd, args, text, took=None):
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(ANSIBLE_LOG, "a") as f:
            shown = " ".join(a if len(a) < 200 else a[:200] + "..." for a in args)
            took_s = "%.1f s" % took if took is not None else "background"
            f.write("\n===== %s %s [%s]\n%s" % (cmd, shown, took_s, text))

    def env(self, extra=None):
        e = dict(os.environ)
        e["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
        e["ANSIBLE_NOCOLOR"] = "1"
        e["ANSIBLE_SSH_CONTROL_PATH_DIR"] = os.path.join(STATE, FLEET_NAME, "cp")
        e["PYTHONUNBUFFERED"] = "1"
        e.update(extra or {})
        return e

    def background(self, cmd, *args, out, env=None):
        """Start cmd in a session of its own (so that killpg reaches only it and its
        children), output to the file `out`."""
        f = open(out, "w")
        return subprocess.Popen([cmd] + self._inv_args() + list(args), cwd=REPO, env=self.env(env),
                                stdout=f, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def descendants(pid):
    """The pids of pid's children, their children and so on (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_group(proc):
    """The controller dies: SIGKILL a process this suite started (by its pid), its process
    group, and its descendants. ansible-playbook's workers run in sessions of their own
    (setsid), outside the group: a worker left alive would go on with its host's rollout
    after the controller was killed."""
    try:
        os.kill(proc.pid, signal.SIGSTOP)  # it starts no worker while they are listed
    except ProcessLookupError:
        pass
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def wait_for_text(path, needle, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            text = f.read()
        if needle in text:
            return text
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process ended (rc=%s) before %r appeared:\n%s" % (proc.returncode, needle, text[-4000:]))
        time.sleep(0.2)
    raise AssertionError("%r did not appear in %s within %ds" % (needle, path, timeout))


@pytest.fixture(scope="session")
def artifacts():
    path = os.path.join(STATE, "artifacts.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return json.loads(itc.fleet("artifacts").stdout)


@pytest.fixture(scope="session")
def adv_fleet(artifacts):
    try:
        yield itc.fleet_up("adversarial", FLEET_NAME, "--inventory", INVENTORY, "--port-offset", str(PORT_OFFSET))
    finally:
        # Paused hosts (the unreachable case) are unpaused by that case; tear down unless
        # the fleet is kept for the next stage or a developer's next run.
        if not itc.keep_fleet() and os.environ.get("MODELOPS_ADV_KEEP") != "1":
            itc.fleet("down", "--name", FLEET_NAME, check=False)


@pytest.fixture(scope="session")
def ansible(adv_fleet, artifacts):
    if os.path.exists(ANSIBLE_LOG):
        os.unlink(ANSIBLE_LOG)
    return Ansible([INVENTORY, adv_fleet["inventory"]], artifacts)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    yield from gpg_test_keys(tmp_path_factory)


# --------------------------------------------------------------------------- releases

# version -> (sequence, signer, kind of weights). "renamed": the same weights under another
# general.name in the GGUF header (same length): a file no other release has, so syncs
# transfer it instead of hard-linking it from the release the host serves.
RELEASES = {
    "2411": (1, "publisher", "good"),
    "2412": (2, "protected", "good"),      # signed with a passphrase-protected key
    "2501": (3, "publisher", "unloadable"),
    "2502": (4, "publisher", "zeroed"),
    "2601": (5, "publisher", "renamed"),
    "2602": (6, "publisher", "renamed"),
    "2603": (7, "publisher", "renamed"),    # the blue/green case's
}
GGUF_NAME = b"Smollm2 135M 8k Lc100K Mix1 Ep2"


def renamed_gguf(src, dst, version):
    """Copy of the GGUF src with general.name ending in the version instead of 'Ep2'."""
    with open(src, "rb") as f:
        data = f.read()
    i = data.find(GGUF_NAME, 0, 4096)
    if i < 0:
        raise AssertionError("general.name %r not found in the header of %s" % (GGUF_NAME, src))
    new = GGUF_NAME[:-3] + version[-3:].encode()
    with open(dst, "wb") as f:
        f.write(data[:i] + new + data[i + len(new):])


class World(object):
    """The session's signed releases, keys, catalogs and the API key."""

    def __init__(self, ansible, keys, base):
        self.ansible = ansible
        self.keys = keys
        self.base = base
        self.repo = os.path.join(base, "repo")
        self.catalog = os.path.join(base, "catalog-base.db")
        self.api_key = "sk-adv-" + secrets.token_hex(16)
        self.n = 0
        # Secrets go to Ansible in vars files (-e @file, mode 0600), as a user would pass
        # them: never on a command line, where ps and logs would show them.
        self.api_key_vars = self._secret_vars("api-key.json", {"inference_server_api_key": self.api_key})
        self.passphrase_vars = self._secret_vars("passphrase.json", {"publish_passphrase": keys.protected.passphrase})

    def _secret_vars(self, name, data):
        path = os.path.join(self.base, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        return path

    def release_dir(self, version, repo=None):
        return os.path.join(repo or self.repo, MODEL, version, VARIANT)

    def publish(self, version, repo=None, **kw):
        seq, signer, kind = RELEASES[version]
        seq = kw.get("sequence", seq)
        key = getattr(self.keys, kw.get("signer", signer))
        src = os.path.join(self.base, "src-%s-%d" % (version, self.n))
        self.n += 1
        os.makedirs(os.path.join(src, "params"))
        gguf = os.path.join(src, GGUF)
        if kind == "good":
            os.link(self.ansible.artifacts["model_file"], gguf)
        elif kind == "renamed":
            renamed_gguf(self.ansible.artifacts["model_file"], gguf, version)
        elif kind == "unloadable":
            with open(gguf, "wb") as f:
                f.write(b"GGUF" + os.urandom(1 << 20))
        else:
            zero_weights(self.ansible.artifacts["model_file"], gguf)
        # Same length in every release: a file of one release fits another's size exactly.
        with open(os.path.join(src, "generation_config.json"), "w") as f:
            f.write(json.dumps({"release": version, "temperature": 0.2}))
        with open(os.path.join(src, "params", "sampling.json"), "w") as f:
            f.write(json.dumps({"top_p": 0.9}))
        args = itc.publish_args(src, repo or self.repo, version, seq, key, os.path.join(self.base, "publisher.db"))
        if kw.get("expires_days") is not None:
            args += ["-e", "publish_expires_days=%d" % kw["expires_days"]]
        if key.passphrase:
            args += ["-e", "@" + self.passphrase_vars]
        self.ansible.playbook("playbooks/publish.yml", *args)
        return self.release_dir(version, repo)

    def case_catalog(self, name):
        """A copy of the catalog as it was after the bootstrap: each case sees the same
        history (2412 installed), whatever the cases before it resolved."""
        path = os.path.join(self.base, "catalog-%s.db" % name)
        shutil.copy(self.catalog, path)
        return path

    def case_repo(self, name, version="2601", link=True):
        """A repository holding a copy of one release (hard links), for one case to damage."""
        repo = os.path.join(self.base, "repo-%s" % name)
        src = self.release_dir(version)
        dst = self.release_dir(version, repo)
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            for fn in filenames:
                s, d = os.path.join(dirpath, fn), os.path.join(dst, rel, fn)
                if link and fn == GGUF:
                    os.link(s, d)
                else:
                    shutil.copy2(s, d)
                    os.chmod(d, 0o644)
        return repo

    def overrides(self, repo=None, catalog=None, **extra):
        o = {"model_repository": repo or self.repo,
             "model_keyring": [self.keys.publisher.public, self.keys.protected.public],
             "model_trusted_fingerprints": [self.keys.publisher.fingerprint, self.keys.protected.fingerprint],
             "model_catalog": catalog or self.catalog,
             "inference_server_llamacpp_binary_src": self.ansible.artifacts["llama_server"],
             "model_probe_suite": PROBE_SUITE}
        o.update(extra)
        return o

    def upgrade_args(self, version, repo=None, catalog=None, target=None, extra=None):
        o = self.overrides(repo, catalog, model_version=version, **(extra or {}))
        if target:
            o["model_target"] = target
        return ["playbooks/upgrade.yml", "-e", json.dumps(o), "-e", "@" + self.api_key_vars]

    def upgrade(self, version, repo=None, catalog=None, target=None, extra=None, check=False):
        return self.ansible.playbook(*self.upgrade_args(version, repo, catalog, target, extra), check=check)

    # ------------------------------------------------------------------ host checks

    def sh(self, host, cmd, check=True):
        return self.ansible.adhoc(host, "-m", "ansible.builtin.shell", "-a", cmd, check=check).stdout

    def sh_out(self, host, cmd):
        """stdout of a shell command on one host (the lines after the '| CHANGED | rc=0 >>' header)."""
        out = self.sh(host, cmd)
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(host + " |"):
                return "\n".join(lines[i + 1:]).strip()
        return out.strip()

    def currents(self):
        out = self.sh("all", "readlink %s/current || echo none" % MODEL_DIR)
        found = {}
        lines = out.splitlines()
        for i, line in enumerate(lines):
            for h in HOSTS:
                if line.startswith(h + " |") and i + 1 < len(lines):
                    found[h] = lines[i + 1].strip()
        return found

    def health(self):
        """{host: {"current", "verified", "ready", "msg"}} from tests/adversarial/playbooks/health.yml."""
        out = os.path.join(self.base, "health-%d" % self.n)
        self.n += 1
        os.makedirs(out)
        o = self.overrides()
        o["adv_health_dir"] = out
        self.ansible.playbook(HEALTH, "-e", json.dumps(o), "-e", "@" + self.api_key_vars, check=False)
        p = os.path.join(out, "health.json")
        reports = {}
        if os.path.exists(p):
            with open(p) as f:
                reports = json.load(f)
        missing = {"current": None, "verified": False, "ready": False, "msg": "no report (unreachable?)"}
        return dict((h, reports.get(h) or missing) for h in HOSTS)

    def serving(self, c, expect_all=True, health=None):
        """Run the health check (or take one already made), fill the table's last column,
        assert every host serves."""
        h = health or self.health()
        good = [x for x in HOSTS if h[x]["verified"] and h[x]["ready"]]
        c.serving = "%d/%d (%s)" % (len(good), len(HOSTS), ", ".join(
            "%s %s%s" % (x, h[x]["current"], "" if x in good else " NOT OK") for x in HOSTS))
        if expect_all:
            assert len(good) == len(HOSTS), json.dumps(h, indent=1)
        return h


@pytest.fixture(scope="session")
def world(ansible, keys, tmp_path_factory, adv_fleet):
    """Publish the releases, then bootstrap every host to 2412 with upgrade.yml."""
    t0 = time.monotonic()
    w = World(ansible, keys, str(tmp_path_factory.mktemp("adv")))
    for v in RELEASES:
        w.publish(v)
    reused = sorted(set(adv_fleet["hosts"]) - set(adv_fleet.get("created", ())))
    if reused:
        # Hosts another stage or an earlier run used (scripts/test.sh runs this suite on
        # the integration suite's hosts): their engines stay installed, but no release,
        # ledger or trust of theirs may decide a case here. upgrade.yml bootstraps them
        # from nothing, as it does a new host; the engine's configuration follows this
        # suite's inventory (upgrade.yml configures an engine that drifted from it).
        itc.fresh_hosts(ansible, MODEL)
    w.upgrade("2412", extra={"model_upgrade_policy": "immediate"}, check=True)
    assert w.currents() == dict((h, "2412/%s" % VARIANT) for h in HOSTS)
    # Remove what earlier sessions may have left (staging, scratch roots, and every
    # release but the one served: a retained copy of the same weights would be
    # hard-linked instead of transferred, and the transfer cases would test nothing).
    w.sh("all", "chmod -R u+w /srv/models/.staging 2>/dev/null; rm -rf /srv/models/.staging /srv/adv-*; "
                "find /srv/tiny -mindepth 1 -delete; cd %s && for v in */; do v=${v%%/}; [ -L \"$v\" ] && continue; "
                "[ \"$(readlink current | cut -d/ -f1)\" = \"$v\" ] || { chmod -R u+w \"$v\"; rm -rf \"$v\"; }; done; "
                "[ -e previous ] || rm -f previous; true" % MODEL_DIR)
    suite_timing.FLEET_LINES.append("adversarial: releases published and every host bootstrapped to 2412 "
                                    "in %.1f s (hosts reused from an earlier stage: %s)"
                                    % (time.monotonic() - t0, " ".join(reused) or "none"))
    return w
