#!/usr/bin/env bash
# The whole test suite: unit tests, ansible-test sanity on the built and installed
# collection, ansible-lint, the molecule scenarios, and the integration tests against a
# real local fleet. Every stage runs; the exit code is non-zero if any stage failed.
# The test fleets are torn down at the end, also when a stage fails or the run is
# interrupted.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

ARTIFACTS="${MODELOPS_TEST_ARTIFACTS:-${REPO}/tests/output}"
mkdir -p "${ARTIFACTS}"
export MODELOPS_TEST_ARTIFACTS="${ARTIFACTS}"

teardown() {
    python tests/fleet/fleet.py down --name molecule >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name molrollout >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name test >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name adv >/dev/null 2>&1 || true
}
trap teardown EXIT

declare -a PASSED=() FAILED=()
stage() {
    local name="$1"; shift
    say "stage ${name}: $*"
    local start=$SECONDS
    if "$@"; then
        PASSED+=("${name}")
        say "stage ${name} passed in $((SECONDS - start)) s"
    else
        FAILED+=("${name}")
        say "stage ${name} FAILED after $((SECONDS - start)) s"
    fi
}

sanity() {
    # ansible-test needs the collection at .../ansible_collections/modelops/fleet:
    # build it, install the tarball, and test the installed copy.
    local tmp
    tmp="$(mktemp -d)"
    ansible-galaxy collection build --force --output-path "${tmp}" "${REPO}" &&
    ansible-galaxy collection install --force -p "${tmp}/collections" "${tmp}"/modelops-fleet-*.tar.gz &&
    (cd "${tmp}/collections/ansible_collections/modelops/fleet" &&
        for m in plugins/modules/*.py; do
            m="$(basename "${m}" .py)"
            env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="${tmp}/collections" \
                ansible-doc -t module "modelops.fleet.${m}" >/dev/null || exit 1
        done &&
        PATH="${SANITY_VENV}/bin:${PATH}" VIRTUAL_ENV="${SANITY_VENV}" \
            ansible-test sanity --requirements --python 3.11 --color no "$@")
    local rc=$?
    rm -rf "${tmp}"
    return ${rc}
}

artifacts() {
    python tests/fleet/fleet.py artifacts > "${MODELOPS_FLEET_STATE}/artifacts.json" || return 1
    MODELOPS_LLAMA_SERVER="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["llama_server"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"
    MODELOPS_MODEL_FILE="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_file"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"
    export MODELOPS_LLAMA_SERVER MODELOPS_MODEL_FILE
}

stage unit       python -m pytest -q -p no:cacheprovider tests/unit
stage sanity     sanity
stage lint       bash -c "ansible-lint --profile production && antsibull-changelog lint"
stage artifacts  artifacts
if [[ " ${FAILED[*]} " != *" artifacts "* ]]; then
    stage molecule   molecule test --all
    stage integration python -m pytest -q -p no:cacheprovider tests/integration \
        --junitxml "${ARTIFACTS}/integration-junit.xml"
    stage adversarial python -m pytest -q -p no:cacheprovider tests/adversarial --junitxml "${ARTIFACTS}/adversarial-junit.xml"
fi

say "stages passed: ${PASSED[*]:-none}; failed: ${FAILED[*]:-none}"
echo "stages: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
[[ ${#FAILED[@]} -eq 0 ]]
