#!/usr/bin/env bash
# Orchestration benchmark: upgrade.yml on a demo-shaped fleet of its own (fleet name "orch",
# inventories/demo with every port +8000): a no-op upgrade against `ansible all -m ping`, a
# canary rollout's time per step, and each host's downtime against the engine's start time.
# Writes bench/results/orchestration.json, docs/rollout.png and the "Orchestration and
# downtime" section of docs/performance.md. Not part of scripts/test.sh. Takes about 45
# minutes (5 rounds) on two loaded cores; the fleet is removed at the end. Extra arguments go to the
# script, e.g. bash bench/orchestration.sh --rounds 1 --doc /tmp/perf.md --results /tmp/o.json --png /tmp/o.png
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
source scripts/setup.sh

# The host image, llama-server and the SmolLM2 GGUF, built or fetched once and cached.
python tests/fleet/fleet.py artifacts >/dev/null

python bench/orchestration_bench.py "$@"
