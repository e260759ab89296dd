#!/usr/bin/env bash
# What a client sees during a rollout, in place against blue/green: a client per host asks
# through its published port every 50 ms while a good release, then a bad one, is rolled out
# (fleet "bluegreen", two llama.cpp hosts). Writes bench/results/bluegreen.json and its section
# of docs/performance.md. Not part of scripts/test.sh. Extra arguments go to the script, e.g.
# bash bench/bluegreen.sh --rounds 1 --doc /tmp/perf.md --results /tmp/bg.json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
source scripts/setup.sh

# The host image, llama-server and the SmolLM2 GGUF, built or fetched once and cached.
python tests/fleet/fleet.py artifacts >/dev/null

python bench/bluegreen_bench.py "$@"
