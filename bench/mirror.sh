#!/usr/bin/env bash
# Site-mirror benchmark: a release to N hosts pushed from the controller (model_sync push)
# against one site mirror (the model_mirror role: nginx, stocked with model_sync; the hosts
# pull from it). Fleet name "mbench" (ports 36000+/37000+). Writes bench/results/mirror.json
# and the "Push vs a site mirror" section of docs/performance.md. Not part of
# scripts/test.sh. Extra arguments go to the script, e.g.
# bash bench/mirror.sh --hosts 8 --size-gb 1 --doc /tmp/perf.md --results /tmp/m.json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
source scripts/setup.sh

# The host image (nginx included), built once and cached.
python tests/fleet/fleet.py artifacts >/dev/null

python bench/mirror_bench.py "$@"
