#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh. Source it (bash): it installs
# what a fresh Debian 12 machine lacks (apt and pip), then exports PATH and ANSIBLE_* so
# that this checkout is the modelops.fleet collection.
# Everything slow is cached outside the checkout under $MODELOPS_CACHE.

# Sourced from an interactive shell (README's fleet section): the set-up runs in a child
# bash, where `set -euo pipefail` and any failure stay, and this shell takes over only its
# environment and directory; the user's shell options are left as they were.
if [[ $- == *i* && "${BASH_SOURCE[0]}" != "${0}" ]]; then
    if _modelops_env="$(MODELOPS_SETUP_PRINT_ENV=1 bash "${BASH_SOURCE[0]}")"; then
        eval "${_modelops_env}"
        unset _modelops_env
        return 0
    fi
    unset _modelops_env
    echo "scripts/setup.sh failed (the reason is above); this shell is unchanged" >&2
    return 1
fi

set -euo pipefail
if [[ -n "${MODELOPS_SETUP_PRINT_ENV:-}" ]]; then
    # The child of an interactive source: stdout carries the environment only.
    exec 3>&1 1>&2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MODELOPS_CACHE="${MODELOPS_CACHE:-/var/cache/modelops-fleet}"
export MODELOPS_FLEET_STATE="${MODELOPS_FLEET_STATE:-/var/tmp/modelops-fleet}"
mkdir -p "${MODELOPS_CACHE}" "${MODELOPS_FLEET_STATE}"

say() { printf '\n==> %s\n' "$*" >&2; }

APT_PACKAGES=(podman runc debootstrap gnupg openssh-client rsync uidmap iproute2
              shellcheck git python3-venv curl ca-certificates cmake g++ make chromium
              libnuma1)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool validates and unit-tests the alerting rules (docs/prometheus/): the binary from
# Debian's prometheus package, unpacked into the cache, so that no Prometheus server is
# installed or started on this machine.
PROM_VERSION="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "${PROM_VERSION}" || "${PROM_VERSION}" == "(none)" ]] && [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
    PROM_VERSION="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
fi
PROMTOOL_DIR="${MODELOPS_CACHE}/promtool-${PROM_VERSION//[^A-Za-z0-9.+~-]/_}"
if [[ ! -x "${PROMTOOL_DIR}/promtool" ]]; then
    say "promtool from Debian's prometheus ${PROM_VERSION} (unpacked, not installed)"
    _deb_dir="$(mktemp -d)"
    (cd "${_deb_dir}" && apt-get download -qq -o APT::Sandbox::User=root "prometheus=${PROM_VERSION}")
    dpkg-deb --fsys-tarfile "${_deb_dir}"/prometheus_*.deb | tar -x -C "${_deb_dir}" ./usr/bin/promtool
    mkdir -p "${PROMTOOL_DIR}"
    mv "${_deb_dir}/usr/bin/promtool" "${PROMTOOL_DIR}/promtool"
    rm -rf "${_deb_dir}"
    unset _deb_dir
fi

# Every test host runs systemd, which needs inotify instances; with several fleets up the
# default limit runs out and sshd never starts ("Too many open files").
if [[ -w /proc/sys/fs/inotify/max_user_instances ]] &&
   [[ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]]; then
    echo 1024 > /proc/sys/fs/inotify/max_user_instances || true
fi

# Python virtual environment keyed by the pinned requirements.
PY="${PYTHON:-python3}"
REQ_HASH="$(cat "${REPO}/requirements.txt" "${REPO}/requirements-test.txt" | sha256sum | cut -c1-12)"
VENV="${MODELOPS_CACHE}/venv-$("${PY}" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')-${REQ_HASH}"
if [[ ! -x "${VENV}/bin/ansible-playbook" ]]; then
    say "creating ${VENV}"
    rm -rf "${VENV}"
    "${PY}" -m venv "${VENV}"
    "${VENV}/bin/pip" install --quiet --upgrade pip
    "${VENV}/bin/pip" install --quiet -r "${REPO}/requirements-test.txt"
fi
# ansible-test gets a venv of its own (it installs its pinned linters per sanity test),
# and an offline pip bootstrap in place of the script it would download.
SANITY_VENV="${MODELOPS_CACHE}/venv-sanity-$(grep -E '^ansible-core==' "${REPO}/requirements.txt" | cut -d= -f3)"
if [[ ! -x "${SANITY_VENV}/bin/ansible-test" ]]; then
    say "creating ${SANITY_VENV}"
    rm -rf "${SANITY_VENV}"
    "${PY}" -m venv "${SANITY_VENV}"
    "${SANITY_VENV}/bin/pip" install --quiet "$(grep -E '^ansible-core==' "${REPO}/requirements.txt")"
fi
export SANITY_VENV
PIP_BOOTSTRAP_VERSION="$("${SANITY_VENV}/bin/python" -c 'import re,sys,ansible_test._internal.python_requirements as m; print(re.search(r"pip=.([0-9.]+)", open(m.__file__).read()).group(1))' 2>/dev/null || echo 24.2)"
mkdir -p "${HOME}/.ansible/test/cache"
cp "${REPO}/scripts/ansible_test_get_pip.py" "${HOME}/.ansible/test/cache/get_pip_${PIP_BOOTSTRAP_VERSION//./_}.py"

export VIRTUAL_ENV="${VENV}"
export PATH="${VENV}/bin:${PROMTOOL_DIR}:${PATH}"

# This checkout is the collection: link it where ansible.cfg's collections_path looks.
mkdir -p "${REPO}/.collections/ansible_collections/modelops"
ln -sfn "${REPO}" "${REPO}/.collections/ansible_collections/modelops/fleet"
export ANSIBLE_CONFIG="${REPO}/ansible.cfg"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
cd "${REPO}"

# Build this checkout's collection tarball with ansible-galaxy and install it into a clean
# collections path ($1), as a user installs it; then point Ansible at that path instead of
# the checkout. Playbooks run from it by name: ansible-playbook modelops.fleet.upgrade.
use_installed_collection() {
    local dest="$1" tmp rc=0
    tmp="$(mktemp -d)"
    rm -rf "${dest}" && mkdir -p "${dest}" || return 1
    ansible-galaxy collection build --force --output-path "${tmp}" "${REPO}" >/dev/null &&
        ANSIBLE_COLLECTIONS_PATH="${dest}" ansible-galaxy collection install --force -p "${dest}" \
            "${tmp}"/modelops-fleet-*.tar.gz >/dev/null || rc=1
    rm -rf "${tmp}"
    ((rc == 0)) || return 1
    export ANSIBLE_COLLECTIONS_PATH="${dest}"
    say "modelops.fleet $(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
        "${dest}/ansible_collections/modelops/fleet/MANIFEST.json") installed from its tarball in ${dest}"
}

if [[ -n "${MODELOPS_SETUP_PRINT_ENV:-}" ]]; then
    for v in REPO MODELOPS_CACHE MODELOPS_FLEET_STATE SANITY_VENV VIRTUAL_ENV PATH ANSIBLE_CONFIG ANSIBLE_FORCE_COLOR; do
        printf 'export %s=%q\n' "${v}" "${!v}" >&3
    done
    printf 'cd %q\n' "${REPO}" >&3
fi
