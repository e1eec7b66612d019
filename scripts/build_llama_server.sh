#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp source vendored in the
# llama-cpp-python sdist on PyPI, and cache the binary outside the checkout.
#
# Usage: scripts/build_llama_server.sh
# Env:   LLAMA_SERVER_CACHE  cache root (default: $HOME/.cache/llm-gateway)
#        PYTHON              python with pip (default: the checkout's .venv, else python3)
#        BUILD_JOBS          parallel build jobs (default: 2)
# The last line on stdout is the absolute path of the binary. Exits 0 at once if cached.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"

die() {
    echo "build_llama_server: error: $*" >&2
    exit 1
}
log() {
    echo "build_llama_server: $*" >&2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${LLAMA_SERVER_CACHE:-${HOME:?HOME is not set}/.cache/llm-gateway}"
target_dir="${cache_root}/llama-server-${LLAMA_CPP_PYTHON_VERSION}"
target_bin="${target_dir}/llama-server"

if [[ -x "${target_bin}" ]]; then
    echo "${target_bin}"
    exit 0
fi

if [[ -n "${PYTHON:-}" ]]; then
    python_bin="${PYTHON}"
elif [[ -x "${repo_root}/.venv/bin/python" ]]; then
    python_bin="${repo_root}/.venv/bin/python"
else
    python_bin="python3"
fi

for tool in cmake make tar "${python_bin}"; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required but not found on PATH"
done
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
    || die "a C++ compiler (c++ or g++) is required but not found on PATH"
"${python_bin}" -m pip --version >/dev/null 2>&1 || die "'${python_bin} -m pip' does not work"

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "${work_dir}"' EXIT

log "downloading llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} sdist"
"${python_bin}" -m pip download --quiet --no-deps --no-binary :all: \
    --dest "${work_dir}/dist" "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" >&2 \
    || die "pip download of llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} failed"

shopt -s nullglob
sdists=("${work_dir}"/dist/llama_cpp_python-*.tar.gz "${work_dir}"/dist/llama-cpp-python-*.tar.gz)
shopt -u nullglob
[[ ${#sdists[@]} -eq 1 ]] || die "expected one sdist in ${work_dir}/dist, found ${#sdists[@]}"

tar -xzf "${sdists[0]}" -C "${work_dir}"
src_dir="$(find "${work_dir}" -mindepth 3 -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -n 1)"
[[ -n "${src_dir}" && -f "${src_dir}/CMakeLists.txt" ]] \
    || die "vendor/llama.cpp with a CMakeLists.txt not found in the sdist"

build_dir="${work_dir}/build"
log "configuring ${src_dir}"
# No web UI: the prebuilt one would be fetched from a hub at build time, and tests don't need it.
cmake -S "${src_dir}" -B "${build_dir}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF \
    -DGGML_CCACHE=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON >&2 \
    || die "cmake configure failed"

log "building llama-server with ${BUILD_JOBS:-2} jobs (takes several minutes)"
started=${SECONDS}
cmake --build "${build_dir}" --config Release --target llama-server -j "${BUILD_JOBS:-2}" >&2 \
    || die "cmake build of llama-server failed"
log "built in $((SECONDS - started)) s"

built_bin="$(find "${build_dir}" -type f -name llama-server -perm -u+x | head -n 1)"
[[ -n "${built_bin}" ]] || die "build finished but no llama-server binary was found"

mkdir -p "${target_dir}"
# Copy any shared libraries the binary still links from the build tree (none with static libs).
while read -r lib; do
    cp -L "${lib}" "${target_dir}/"
done < <(ldd "${built_bin}" | awk -v b="${build_dir}" '$3 ~ "^"b {print $3}')
# Install atomically so a concurrent or interrupted run never leaves a half-written binary.
cp "${built_bin}" "${target_bin}.tmp.$$"
chmod 0755 "${target_bin}.tmp.$$"
mv -f "${target_bin}.tmp.$$" "${target_bin}"

"${target_bin}" --version >&2 2>&1 || die "built binary does not run: ${target_bin}"
echo "${target_bin}"
