#!/usr/bin/env bash
# Scale benchmark: upgrade.yml (no-op and a same-weights upgrade) against `ansible -m ping` on
# fleets of 6, 12, 24 and 48 hosts (fleet name "scale", llama-server on every host). Writes
# bench/results/scale.json, docs/scale.png and the "Cost vs fleet size" section of
# docs/performance.md. Not part of scripts/test.sh. Extra arguments go to the script, e.g.
# bash bench/scale.sh --sizes 6,12,24 --rounds 2 --doc /tmp/perf.md --results /tmp/s.json --png /tmp/s.png
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
source scripts/setup.sh

# The host image, llama-server and the SmolLM2 GGUF, built or fetched once and cached.
python tests/fleet/fleet.py artifacts >/dev/null

python bench/scale_bench.py "$@"
