#!/usr/bin/env bash
# Transfer benchmark: model_sync against rsync (ansible.posix.synchronize) and
# ansible.builtin.copy on a fleet of its own (fleet name "bench", ports 24201+/25201+).
# Writes bench/results/transfer.json, docs/transfer.png and the "Transfer" section of
# docs/performance.md. Not part of scripts/test.sh. Takes about 10-15 minutes and needs
# about 8 GiB free under /var/tmp (deleted at the end, with the fleet). Extra arguments go
# to the script, e.g. bash bench/transfer.sh --size-gb 0.25 --runs 1 --doc /tmp/perf.md
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
source scripts/setup.sh

# The host image (and the other fleet artifacts), built once and cached.
python tests/fleet/fleet.py artifacts >/dev/null

python bench/transfer_bench.py "$@"
