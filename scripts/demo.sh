#!/usr/bin/env bash
# The main job on the local demo fleet: set up (apt, pip, llama-server, vLLM, host image,
# the model as GGUF and as safetensors),
# bring the demo fleet up (inventories/demo), and run the job on it.
# Leaves the fleet running; `scripts/demo.sh down` removes it.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

if [[ "${1:-}" == down ]]; then
    python tests/fleet/fleet.py down --name demo
    exit 0
fi

say "artifacts: llama-server, vLLM (CPU), host image, model as GGUF and safetensors (cached in ${MODELOPS_CACHE})"
python tests/fleet/fleet.py artifacts > "${MODELOPS_FLEET_STATE}/artifacts.json"
LLAMA_SERVER="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["llama_server"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"
MODEL_FILE="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_file"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"
MODEL_HF_DIR="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hf_dir"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"

say "the collection as users get it: built with ansible-galaxy, installed into a clean path"
use_installed_collection "${MODELOPS_FLEET_STATE}/demo-collections"

say "demo fleet up (inventories/demo)"
python tests/fleet/fleet.py up --name demo --inventory inventories/demo >/dev/null

say "every host answers over its connection (OpenSSH or paramiko)"
ansible all -i inventories/demo -m ansible.builtin.ping

say "publish two signed releases of the demo model (demo key in ${MODELOPS_FLEET_STATE}/demo-gpg)"
export MODELOPS_LLAMA_SERVER="${LLAMA_SERVER}"
GNUPGHOME_DEMO="${MODELOPS_FLEET_STATE}/demo-gpg"
if [[ ! -s "${GNUPGHOME_DEMO}/publisher.fpr" ]]; then
    mkdir -p "${GNUPGHOME_DEMO}" && chmod 700 "${GNUPGHOME_DEMO}"
    gpg --homedir "${GNUPGHOME_DEMO}" --batch --passphrase '' --quick-gen-key \
        'modelops demo publisher <demo@modelops.invalid>' ed25519 sign never 2>/dev/null
    gpg --homedir "${GNUPGHOME_DEMO}" --batch --with-colons --list-secret-keys \
        | awk -F: '/^fpr:/ {print $10; exit}' > "${GNUPGHOME_DEMO}/publisher.fpr"
    gpg --homedir "${GNUPGHOME_DEMO}" --batch --armor --export "$(cat "${GNUPGHOME_DEMO}/publisher.fpr")" \
        > "${GNUPGHOME_DEMO}/publisher.asc"
fi
FPR="$(cat "${GNUPGHOME_DEMO}/publisher.fpr")"
# One release, two variants: gguf-q4_1 for llama.cpp (edge devices, critical) and bf16
# (safetensors, converted from the same GGUF) for vLLM (gpu_servers). The versions differ
# in their generation config only; each variant is signed on its own.
publish_variant() {
    local version="$1" seq="$2" variant="$3" src="${MODELOPS_FLEET_STATE}/demo-src/$1-$3"
    rm -rf "${src}" && mkdir -p "${src}"
    if [[ "${variant}" == gguf-* ]]; then
        ln -f "${MODEL_FILE}" "${src}/$(basename "${MODEL_FILE}")" 2>/dev/null || cp "${MODEL_FILE}" "${src}/"
        printf '{"release": "%s", "temperature": 0.2}\n' "${version}" > "${src}/generation_config.json"
    else
        for f in "${MODEL_HF_DIR}"/*; do
            ln -f "${f}" "${src}/" 2>/dev/null || cp "${f}" "${src}/"
        done
        # vLLM reads generation_config.json for its default sampling: keep the model's
        # and add the release marker and temperature.
        rm -f "${src}/generation_config.json"
        python -c 'import json,sys; c=json.load(open(sys.argv[1])); c.update(release=sys.argv[2], temperature=0.2); print(json.dumps(c, indent=2))' \
            "${MODEL_HF_DIR}/generation_config.json" "${version}" > "${src}/generation_config.json"
    fi
    ansible-playbook modelops.fleet.publish -e publish_source="${src}" \
        -e publish_repository="${MODELOPS_FLEET_STATE}/demo-releases" \
        -e publish_release="smollm2-135m-instruct-${version}-${variant}" -e publish_sequence="${seq}" \
        -e publish_gnupghome="${GNUPGHOME_DEMO}" -e publish_key_fingerprint="${FPR}" \
        -e publish_catalog="${MODELOPS_FLEET_STATE}/demo-registry.db"
    gpgconf --homedir "${GNUPGHOME_DEMO}" --kill all || true
}
publish() {
    publish_variant "$1" "$2" gguf-q4_1
    publish_variant "$1" "$2" bf16
}
# A fresh repository and catalog each run: the catalog's anti-rollback would refuse 2411
# after an earlier run published 2412 and 2413.
rm -rf "${MODELOPS_FLEET_STATE}/demo-releases" "${MODELOPS_FLEET_STATE}/demo-registry.db"
publish 2411 1

say "bootstrap: every host gets v1 (2411), whatever its group's policy (vLLM hosts: ~1 min to load)"
ansible-playbook -i inventories/demo modelops.fleet.upgrade -e model_version=2411 -e model_upgrade_policy=immediate

say "publish v2 (2412), both variants: same weights, new generation config"
publish 2412 2

say "the plan (upgrade.yml --check): nothing changes"
ansible-playbook -i inventories/demo modelops.fleet.upgrade --check

say "the main job: upgrade.yml rolls the latest release out with each group's policy (vLLM canary first)"
ansible-playbook -i inventories/demo modelops.fleet.upgrade

say "publish v3 (2413); the edge devices take it blue/green: each starts 2413 beside 2412, judges it, then moves its clients"
publish 2413 3
ansible-playbook -i inventories/demo modelops.fleet.upgrade -e model_target=edge_devices -e inference_server_mode=blue_green
say "what every host serves now, and with which engine (status.yml)"
ansible-playbook -i inventories/demo modelops.fleet.status

REPORTS="${MODELOPS_REPORT_DIR:-${REPO}/rollout-reports}"
# shellcheck disable=SC2012  # names are <UTC time>-<playbook>: sorting by name is by time
say "the rollout's reports (HTML, JSON, JUnit): $(ls -d "${REPORTS}"/*-upgrade 2>/dev/null | tail -n 1)"

say "done: the demo fleet is up (remove it with: bash scripts/demo.sh down)"
