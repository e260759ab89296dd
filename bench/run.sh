#!/usr/bin/env bash
# Every benchmark, one after the other (not part of scripts/test.sh; see bench/README.md):
#   1. verification: model_verify against sha256sum (bench/verify_bench.py, a few minutes,
#      about 5 GiB free under /var/tmp/modelops-bench);
#   2. transfer: model_sync against rsync and copy (bench/transfer.sh, fleet "bench");
#   3. orchestration: upgrade.yml against ping, rollout per step, downtime against the
#      engine's start time (bench/orchestration.sh, fleet "orch");
#   3b. scale and site mirrors: upgrade.yml on 6..48 hosts (bench/scale.sh, fleet "scale");
#      push against one site mirror (bench/mirror.sh, fleet "mbench");
#   4. vLLM: its start next to llama-server's, a canary rollout to vLLM hosts per step
#      (bench/vllm_bench.py, fleet "vbench");
#   5. the latency judge at the default factor: 20 good upgrades (false rollbacks counted)
#      and a throttled engine (bench/latency_judge_bench.py, fleet "jbench");
#   6. what a client sees during a rollout, in place against blue/green (bench/bluegreen.sh,
#      fleet "bluegreen").
# Each writes bench/results/<name>.json and its own section of docs/performance.md.
# Extra arguments go to the verification script, e.g. bash bench/run.sh --size-gb 1 --runs 3
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh disable=SC1091
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

# Orchestration and downtime: upgrade.yml vs ping, rollout per step, downtime vs engine start.
bash "$(dirname "${BASH_SOURCE[0]}")/orchestration.sh"

bash "$(dirname "${BASH_SOURCE[0]}")/scale.sh"

# Site mirrors: bytes leaving the controller and wall time, push vs one site mirror.
bash "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"

# vLLM: the engine's start next to llama-server's, a canary rollout to vLLM hosts per step.
python bench/vllm_bench.py

# The latency judge at its production default: false rollbacks of good upgrades, a slow engine.
python bench/latency_judge_bench.py

# In place against blue/green: failed requests, longest gap, answers of a failing release.
bash "$(dirname "${BASH_SOURCE[0]}")/bluegreen.sh"
