#!/usr/bin/env bash
# Verification benchmark: model_verify against sha256sum on this machine.
# Writes bench/results/verify.json and the "Verification" section of docs/performance.md.
# Not part of scripts/test.sh. Takes a few minutes and needs about 5 GiB free under
# /var/tmp/modelops-bench (deleted at the end). Extra arguments go to the script,
# e.g. bash bench/run.sh --size-gb 1 --runs 3
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

# GNU time measures the peak RSS of each child process.
if [[ ! -x /usr/bin/time ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench: /usr/bin/time is missing; install the Debian package 'time' (needs root)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
fi

python bench/verify_bench.py "$@"

# Transfer: model_sync vs rsync (ansible.posix.synchronize) and ansible.builtin.copy.
bash "$(dirname "${BASH_SOURCE[0]}")/transfer.sh"
