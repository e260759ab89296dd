#!/usr/bin/env bash
# Build the Debian 12 test-host image with debootstrap and import it into podman.
# The rootfs tarball is cached outside the checkout, keyed by the image version; a second
# run only re-imports it if podman lost the image. Prints the podman image name.
set -euo pipefail

IMAGE_VERSION="${MODELOPS_HOST_IMAGE_VERSION:-6}"
CACHE="${MODELOPS_CACHE:-/var/cache/modelops-fleet}"
SUITE=bookworm
KEY="host-image-${SUITE}-v${IMAGE_VERSION}"
TARBALL="${CACHE}/${KEY}.tar"
IMAGE="localhost/modelops-fleet-host:${SUITE}-v${IMAGE_VERSION}"
# rsync: the reference that benchmarks compare model_sync with (ansible.posix.synchronize).
# libnuma1: vLLM's CPU extension (vllm._C) links libnuma.so.1.
# prometheus-node-exporter: Debian's node_exporter, its textfile collector reading the
# directory modelops.fleet.model_metrics writes (the tests scrape it; v5).
# nginx, python3-apt: the model_mirror role makes a host a site mirror with Debian's nginx,
# installed through ansible.builtin.apt (which needs python3-apt); pre-installed so that
# the role's install is the no-op it is on a host that has them, as no Debian mirror is
# reachable from a test host (v6).
PACKAGES="systemd,systemd-sysv,openssh-server,python3,dbus,iproute2,procps,ca-certificates,rsync,libnuma1,prometheus-node-exporter,nginx,python3-apt"

# One build at a time per key (two test runs may start together).
mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock-${KEY}"
flock 9

if podman image exists "${IMAGE}"; then
    echo "${IMAGE}"
    exit 0
fi

if [[ ! -f "${TARBALL}" ]]; then
    # Use the Debian mirror this machine's apt is configured with.
    MIRROR="${MODELOPS_DEBIAN_MIRROR:-}"
    if [[ -z "${MIRROR}" ]]; then
        MIRROR="$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
            /etc/apt/sources.list.d/*.list 2>/dev/null \
            | grep -E '/debian/?( |$)' | head -n1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' || true)"
    fi
    if [[ -z "${MIRROR}" ]]; then
        echo "no Debian mirror found in /etc/apt; set MODELOPS_DEBIAN_MIRROR" >&2
        exit 1
    fi
    mkdir -p "${CACHE}"
    ROOTFS="$(mktemp -d "${CACHE}/rootfs.XXXXXX")"
    trap 'rm -rf "${ROOTFS}"' EXIT
    echo "debootstrap ${SUITE} into ${ROOTFS} (~90 s)" >&2
    debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${ROOTFS}" "${MIRROR}" >&2

    # Make the rootfs boot cleanly as a container: no getty, no host keys baked in
    # (each host generates its own at first boot), sshd enabled, key-only root login.
    chroot "${ROOTFS}" systemctl enable ssh.service >&2
    chroot "${ROOTFS}" systemctl mask getty@tty1.service console-getty.service \
        systemd-logind.service systemd-firstboot.service >&2 || true
    # No housekeeping timers on a test host: apt-daily's random delay (up to 12 h after
    # 06:00 and 18:00) lands inside an hour of tests on some host more often than not, and
    # an apt-get update beside an engine is noise in every latency the tests measure.
    chroot "${ROOTFS}" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer >&2
    # node_exporter as an operator sets it up for modelops.fleet: the textfile collector
    # pointed at model_metrics' default directory.
    mkdir -p "${ROOTFS}/var/lib/node_exporter/textfile_collector"
    cat > "${ROOTFS}/etc/default/prometheus-node-exporter" <<'ARGS'
ARGS="--collector.textfile.directory=/var/lib/node_exporter/textfile_collector"
ARGS
    chroot "${ROOTFS}" systemctl enable prometheus-node-exporter.service >&2
    # nginx runs only where the model_mirror role sets it up: as Debian installs it, it
    # would serve its default page on port 80 of every host.
    chroot "${ROOTFS}" systemctl disable nginx.service >&2
    rm -f "${ROOTFS}/etc/nginx/sites-enabled/default"
    rm -f "${ROOTFS}"/etc/ssh/ssh_host_*
    cat > "${ROOTFS}/etc/systemd/system/ssh-keygen.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
    chroot "${ROOTFS}" systemctl enable ssh-keygen.service >&2
    cat > "${ROOTFS}/etc/ssh/sshd_config.d/modelops-test.conf" <<'CONF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
CONF
    : > "${ROOTFS}/etc/machine-id"
    rm -rf "${ROOTFS}"/var/cache/apt/archives/*.deb "${ROOTFS}"/var/lib/apt/lists/*
    tar -C "${ROOTFS}" --numeric-owner -cf "${TARBALL}.tmp" .
    mv "${TARBALL}.tmp" "${TARBALL}"
fi

podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    "${TARBALL}" "${IMAGE}" >&2
echo "${IMAGE}"
