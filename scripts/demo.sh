#!/usr/bin/env bash
# The main job on the local demo fleet: set up (apt, pip, llama-server, host image, model),
# bring the demo fleet up (inventories/demo), and run the job on it.
# Leaves the fleet running; `scripts/demo.sh down` removes it.
set -euo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

if [[ "${1:-}" == down ]]; then
    python tests/fleet/fleet.py down --name demo
    exit 0
fi

say "artifacts: llama-server, host image, model (cached in ${MODELOPS_CACHE})"
python tests/fleet/fleet.py artifacts > "${MODELOPS_FLEET_STATE}/artifacts.json"
LLAMA_SERVER="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["llama_server"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"
MODEL_FILE="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_file"])' "${MODELOPS_FLEET_STATE}/artifacts.json")"

say "demo fleet up (inventories/demo)"
python tests/fleet/fleet.py up --name demo --inventory inventories/demo >/dev/null

say "every host answers over its connection (OpenSSH or paramiko)"
ansible all -i inventories/demo -m ansible.builtin.ping

say "serve the model on every host and ask each one a question"
ansible-playbook -i inventories/demo tests/fleet/serve_demo.yml \
    -e fleet_llama_server="${LLAMA_SERVER}" -e fleet_model_file="${MODEL_FILE}"

say "done: the demo fleet is up (remove it with: bash scripts/demo.sh down)"
