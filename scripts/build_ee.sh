#!/usr/bin/env bash
# Build (or reuse) the modelops.fleet execution environment with ansible-builder, from this
# checkout, and print its image name (localhost/modelops-fleet-ee:<key>).
#
#   bash scripts/build_ee.sh            # then: podman save / push it where AWX pulls from
#
# No container registry is needed: the base image is made here from the Debian 12 image the
# test fleet builds (tests/fleet/build_host_image.sh, debootstrap), with the collection's
# Python dependencies installed offline from wheels this machine's pip downloads (its own
# index settings, torch's CPU build). Both are cached outside the checkout, keyed by what
# goes into them: the base image and its wheels by the requirements and the base's
# Containerfile, the EE by the base and the collection's files (FILES.json of its tarball).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
if ! command -v ansible-builder >/dev/null; then
    # shellcheck source=scripts/setup.sh disable=SC1091
    source scripts/setup.sh
    set +x
fi
CACHE="${MODELOPS_CACHE:-/var/cache/modelops-fleet}"
# crun and raised rlimits do not work on machines like the test machine (ee/containers.conf).
export CONTAINERS_CONF="${CONTAINERS_CONF:-${REPO}/ee/containers.conf}"
CORE="ansible-core==2.19.14 ansible-runner==2.4.3 bindep pyyaml packaging dumb-init==1.2.5"

say() { echo "build_ee: $*" >&2; }

HOST_IMAGE="$(bash tests/fleet/build_host_image.sh)"
# (comments do not count: a reworded comment is no reason for a rebuild)
BASE_KEY="$( { echo "${HOST_IMAGE}" "${CORE}"; cat ee/base.Containerfile ee/pkgmgr meta/ee-requirements.txt; } \
    | grep -v '^ *#' | sha256sum | cut -c1-12)"
BASE_IMAGE="localhost/modelops-fleet-ee-base:${BASE_KEY}"

mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock-ee"
flock 9

if ! podman image exists "${BASE_IMAGE}"; then
    WHEELS="${CACHE}/ee-wheels-${BASE_KEY}"
    if [[ ! -d "${WHEELS}" ]]; then
        say "downloading the EE's wheels into ${WHEELS}"
        rm -rf "${WHEELS}.tmp"
        # shellcheck disable=SC2086
        python -m pip download -q --only-binary=:all: -d "${WHEELS}.tmp" -r meta/ee-requirements.txt ${CORE} >&2
        mv "${WHEELS}.tmp" "${WHEELS}"
    fi
    CTX="$(mktemp -d "${CACHE}/ee-base-context.XXXXXX")"
    trap 'rm -rf "${CTX}"' EXIT
    cp ee/base.Containerfile ee/pkgmgr meta/ee-requirements.txt "${CTX}/"
    cp -al "${WHEELS}" "${CTX}/wheels" 2>/dev/null || cp -a "${WHEELS}" "${CTX}/wheels"
    say "building ${BASE_IMAGE} from ${HOST_IMAGE} (a few minutes)"
    podman build -q --build-arg "HOST_IMAGE=${HOST_IMAGE}" -f "${CTX}/base.Containerfile" -t "${BASE_IMAGE}" "${CTX}" >&2
    rm -rf "${CTX}"
    trap - EXIT
    # Older bases (other keys) are no longer used.
    for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/modelops-fleet-ee-base:' \
                 | grep -v ":${BASE_KEY}$" || true); do
        podman rmi "${old}" >/dev/null 2>&1 || true
    done
    # and so are their wheels
    for old in "${CACHE}"/ee-wheels-*; do
        [[ "${old}" == "${WHEELS}" ]] || rm -rf "${old}"
    done
fi

# The collection as users install it: the tarball of ansible-galaxy collection build.
OUT="$(mktemp -d)"
trap 'rm -rf "${OUT}"' EXIT
ansible-galaxy collection build --force --output-path "${OUT}" . >/dev/null
TARBALL="$(ls "${OUT}"/modelops-fleet-*.tar.gz)"
EE_KEY="$( { echo "${BASE_KEY}"; cat ee/execution-environment.yml; tar -xOzf "${TARBALL}" FILES.json MANIFEST.json; } \
    | sha256sum | cut -c1-12)"
EE_IMAGE="localhost/modelops-fleet-ee:${EE_KEY}"
if ! podman image exists "${EE_IMAGE}"; then
    mkdir -p ee/files
    cp "${TARBALL}" ee/files/modelops-fleet.tar.gz
    CTX="${OUT}/context"
    say "building ${EE_IMAGE} with ansible-builder"
    ansible-builder build -f ee/execution-environment.yml -c "${CTX}" --container-runtime podman \
        --build-arg "EE_BASE_IMAGE=${BASE_IMAGE}" -t "${EE_IMAGE}" -v 1 >&2
    rm -f ee/files/modelops-fleet.tar.gz
    # Keep this EE and the previous one; older ones only take disk.
    for old in $(podman images --format '{{.CreatedAt}} {{.Repository}}:{{.Tag}}' | sort -r \
                 | awk '$NF ~ /^localhost\/modelops-fleet-ee:/ {print $NF}' | grep -v ":${EE_KEY}$" | tail -n +2 || true); do
        podman rmi "${old}" >/dev/null 2>&1 || true
    done
fi
echo "${EE_IMAGE}"
