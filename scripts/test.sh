#!/usr/bin/env bash
# The whole test suite: unit tests, ansible-test sanity on the built and installed
# collection, ansible-lint, the molecule scenarios, and the integration tests against a
# real local fleet (llama.cpp everywhere), the demo fleet with a real vLLM, a rollout
# inside the execution environment (built with ansible-builder), and the adversarial suite. Every stage runs and prints its time; the exit code is non-zero if any stage failed.
# The test fleets are torn down at the end, also when a stage fails or the run is
# interrupted.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

ARTIFACTS="${MODELOPS_TEST_ARTIFACTS:-${REPO}/tests/output}"
mkdir -p "${ARTIFACTS}"
# The profile at the end reads this run's JUnit files only.
rm -f "${ARTIFACTS}"/*-junit.xml
export MODELOPS_TEST_ARTIFACTS="${ARTIFACTS}"

teardown() {
    python tests/fleet/fleet.py down --name molecule >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name molrollout >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name test >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name adv >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name vllm >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name ee >/dev/null 2>&1 || true
    python tests/fleet/fleet.py down --name testmirror >/dev/null 2>&1 || true
}
trap teardown EXIT

# Each stage's time budget in seconds on a warm 2-core machine (caches built; the
# artifacts stage builds llama-server, vLLM and the host image once, ~15 min cold). The
# whole run must stay under CI's 90 minutes: a stage over its budget is named at the end.
declare -A BUDGET=([unit]=300 [sanity]=300 [lint]=120 [artifacts]=1500 [molecule]=600
                   [integration]=1500 [vllm]=1200 [ee]=900 [adversarial]=1500)
declare -a PASSED=() FAILED=() OVER=()
# Where a stage ended: passed or failed, and over its budget or not.
record() {
    local name="$1" rc="$2" took="$3" budget="${BUDGET[$1]:-600}"
    if (( rc == 0 )); then
        PASSED+=("${name}")
        say "stage ${name} passed in ${took} s"
    else
        FAILED+=("${name}")
        say "stage ${name} FAILED after ${took} s"
    fi
    if (( took > budget )); then
        OVER+=("${name} ${took}/${budget} s")
    fi
}
stage() {
    local name="$1"; shift
    say "stage ${name} (budget ${BUDGET[${name}]:-600} s): $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    record "${name}" "${rc}" $((SECONDS - start))
}
# A stage beside the others (stage_bg), its output kept in ARTIFACTS/<name>.log and shown
# when stage_wait collects it. Only stages that judge no latency run side by side: the
# fleet stages' probe gates compare an engine's latency with its own baseline, which a
# neighbour's load would skew.
declare -A BG_PID=() BG_START=()
stage_bg() {
    local name="$1"; shift
    say "stage ${name} (budget ${BUDGET[${name}]:-600} s), beside the next ones: $*"
    BG_START[${name}]=$SECONDS
    ( "$@" ) >"${ARTIFACTS}/${name}.log" 2>&1 &
    BG_PID[${name}]=$!
}
stage_wait() {
    local name="$1" rc=0
    wait "${BG_PID[${name}]}" || rc=$?
    say "stage ${name}: its output"
    cat "${ARTIFACTS}/${name}.log" >&2
    record "${name}" "${rc}" $((SECONDS - BG_START[${name}]))
}

sanity() {
    # ansible-test needs the collection at .../ansible_collections/modelops/fleet:
    # build it, install the tarball, and test the installed copy.
    local tmp
    tmp="$(mktemp -d)"
    ansible-galaxy collection build --force --output-path "${tmp}" "${REPO}" &&
    ansible-galaxy collection install --force -p "${tmp}/collections" "${tmp}"/modelops-fleet-*.tar.gz &&
    (cd "${tmp}/collections/ansible_collections/modelops/fleet" &&
        # every module's documentation renders (one ansible-doc for all: 0.5 s, not 5 s; it
        # only warns about a plugin it cannot render, so each must be in its output)
        mods=() && for m in plugins/modules/*.py; do mods+=("modelops.fleet.$(basename "${m}" .py)"); done &&
        docs="$(env -u ANSIBLE_CONFIG ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH="${tmp}/collections" ansible-doc -t module "${mods[@]}")" &&
        for m in "${mods[@]}"; do
            grep -q "^> MODULE ${m} " <<<"${docs}" || { echo "ansible-doc did not render ${m}" >&2; exit 1; }
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

# The vLLM stage runs the collection as users install it (the tarball from ansible-galaxy
# collection build, in a clean collections path), not the checkout.
vllm_installed() {
    use_installed_collection "${MODELOPS_FLEET_STATE}/vllm-collections" || return 1
    local rc=0
    MODELOPS_COLLECTION_UNDER_TEST="${ANSIBLE_COLLECTIONS_PATH}" python -m pytest -q -p no:cacheprovider tests/vllm \
        --junitxml "${ARTIFACTS}/vllm-junit.xml" || rc=$?
    unset ANSIBLE_COLLECTIONS_PATH
    return "${rc}"
}

stage artifacts  artifacts
# The unit tests mostly wait (stub engines, module subprocesses, gpg): one worker per core
# (pytest-xdist) halves the stage on 2 cores (docs/test-suite.md). They, the execution
# environment's stage (a rollout with the immediate policy: no latency judged) and the
# single-process sanity and lint stages share the two cores; side by side they take about
# half as long as one after the other (docs/test-suite.md).
stage_bg unit    python -m pytest -q -p no:cacheprovider -n auto tests/unit --junitxml "${ARTIFACTS}/unit-junit.xml"
if [[ " ${FAILED[*]} " != *" artifacts "* ]]; then
    # builds (or reuses) the EE: ~8 min cold, ~20 s when only the collection changed
    stage_bg ee  python -m pytest -q -p no:cacheprovider tests/ee --junitxml "${ARTIFACTS}/ee-junit.xml"
fi
stage sanity     sanity
stage lint       bash -c "ansible-lint --profile production && antsibull-changelog lint &&
    promtool check rules docs/prometheus/modelops-alerts.yml && promtool test rules tests/prometheus/alerts_test.yml"
stage_wait unit
if [[ " ${FAILED[*]} " != *" artifacts "* ]]; then
    stage_wait ee
    stage molecule   molecule test --all
    # The integration suite leaves its llama.cpp fleet up (MODELOPS_FLEET_KEEP=1) and the
    # adversarial suite runs on three of its hosts (same names, same port offset), cleaned
    # of the integration suite's releases before its bootstrap; it tears the fleet down at
    # its end. One llama.cpp fleet for both (docs/test-suite.md says what that saves).
    stage integration env MODELOPS_FLEET_KEEP=1 python -m pytest -q -p no:cacheprovider tests/integration \
        --junitxml "${ARTIFACTS}/integration-junit.xml"
    stage adversarial env MODELOPS_ADV_FLEET=test MODELOPS_ADV_PORT_OFFSET=1000 \
        python -m pytest -q -p no:cacheprovider tests/adversarial --junitxml "${ARTIFACTS}/adversarial-junit.xml"
    python tests/fleet/fleet.py down --name test >/dev/null 2>&1 || true
    stage vllm       vllm_installed
fi

# Where the time went: each stage's tests and the slowest of them, from the JUnit files.
python tests/fleet/suite_profile.py --top 20 "${ARTIFACTS}"/*-junit.xml >&2 || true
say "stages passed: ${PASSED[*]:-none}; failed: ${FAILED[*]:-none}"
if (( ${#OVER[@]} )); then
    say "over budget: $(IFS=,; echo "${OVER[*]}")"
fi
say "whole run: ${SECONDS} s"
echo "stages: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
[[ ${#FAILED[@]} -eq 0 ]]
