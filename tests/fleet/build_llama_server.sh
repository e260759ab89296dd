#!/usr/bin/env bash
# Build llama.cpp's llama-server from the sources vendored in the llama-cpp-python sdist
# (PyPI), and cache the binary outside the checkout, keyed by version and architecture.
# Prints the path of the cached binary on stdout. A second run with the cache present
# does nothing but print the path.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${MODELOPS_CACHE:-/var/cache/modelops-fleet}"
ARCH="$(uname -m)"
KEY="llama-server-${LLAMA_CPP_PYTHON_VERSION}-${ARCH}"
OUT="${CACHE}/${KEY}/llama-server"

# One build at a time per key (two test runs may start together).
mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock-${KEY}"
flock 9

if [[ -x "${OUT}" ]]; then
    echo "${OUT}"
    exit 0
fi

mkdir -p "${CACHE}"
WORK="$(mktemp -d "${CACHE}/build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

echo "building ${KEY} (takes ~8 minutes on 2 cores)" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" -d "${WORK}" >&2
tar -xzf "${WORK}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz" -C "${WORK}"
SRC="${WORK}/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"

# Fixed CPU baseline rather than -march=native, so the cached binary does not depend on
# the exact CPU of the machine that built it.
read -r -a CPU_FLAGS <<< "${LLAMA_CPU_FLAGS:-}"
if [[ ${#CPU_FLAGS[@]} -eq 0 && "${ARCH}" == x86_64 ]]; then
    CPU_FLAGS=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
fi

# Static, self-contained binary: it runs inside minimal Debian 12 test hosts.
cmake -S "${SRC}" -B "${WORK}/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_OPENMP=OFF \
    -DGGML_NATIVE=OFF \
    "${CPU_FLAGS[@]}" \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >&2
cmake --build "${WORK}/build" --target llama-server -j "$(nproc)" >&2

mkdir -p "${CACHE}/${KEY}.tmp"
cp "${WORK}/build/bin/llama-server" "${CACHE}/${KEY}.tmp/llama-server"
"${CACHE}/${KEY}.tmp/llama-server" --version >&2 || true
rm -rf "${CACHE:?}/${KEY}"
mv "${CACHE}/${KEY}.tmp" "${CACHE}/${KEY}"
echo "${OUT}"
