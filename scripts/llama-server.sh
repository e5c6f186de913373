#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU only) from the llama.cpp sources that the
# `llama-cpp-python` sdist on PyPI vendors, and writes a tiny random-weight GGUF model with the
# `gguf` package (scripts/tiny_gguf.py). Both are cached, so a second run takes about a second.
#
# Usage: scripts/llama-server.sh
#   stdout: two `export` lines for tests/llamacpp.rs, e.g.  eval "$(scripts/llama-server.sh)"
#   stderr: progress and the build time
# Environment:
#   INFERPROBE_LLAMA_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/inferprobe)
#   LLAMA_BUILD_JOBS        parallel compile jobs (default 2)
#
# Needs python3 with pip, a C/C++ compiler and cmake (installed with apt when missing and apt is
# usable). The cold build costs about 11 CPU-minutes: at least 6 minutes on 2 idle cores (50 minutes
# were measured on 2 cores shared with other builds).
set -euo pipefail

# The pinned releases. tests/llamacpp.rs reads LLAMA_CPP_PYTHON_VERSION from this line to find
# the cached build when INFERPROBE_LLAMA_SERVER is unset.
LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0

here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${INFERPROBE_LLAMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inferprobe}"
server_dir="$cache_root/llama-server-$LLAMA_CPP_PYTHON_VERSION"
server_bin="$server_dir/bin/llama-server"
model="$cache_root/tiny-llama.gguf"
jobs="${LLAMA_BUILD_JOBS:-2}"

log() { printf 'llama-server.sh: %s\n' "$*" >&2; }

pip_quiet() {
  PIP_ROOT_USER_ACTION=ignore python3 -m pip --disable-pip-version-check --no-input -q "$@" >&2
}

install_missing_tools() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  command -v make >/dev/null 2>&1 || missing+=(make)
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing build tools (${missing[*]}) and no apt-get to install them"
    exit 1
  fi
  log "installing ${missing[*]} with apt-get"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_server() {
  install_missing_tools
  # The work directory lives in the cache, so an interrupted build resumes where it stopped; it
  # is removed once the binary is in place.
  local work="$server_dir/work"
  local started=$SECONDS

  if [ ! -f "$work/sources.ok" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
    # `--no-binary llama-cpp-python` (not `:all:`): pip prepares the sdist's metadata, and with
    # `:all:` it would also build the build backend's own dependencies (cmake, ninja) from source.
    pip_quiet download --no-deps --no-binary llama-cpp-python -d "$work" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    tar -xzf "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$work"
    rm -f "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    touch "$work/sources.ok"
  fi
  local src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  [ -f "$src/tools/server/CMakeLists.txt" ] || {
    log "no llama.cpp server sources in the sdist ($src/tools/server)"
    exit 1
  }
  local fetched=$SECONDS

  log "building llama-server (CPU, Release, -j$jobs); about 11 CPU-minutes"
  # Only what llama-server needs: no tests, examples, unified app binary, web UI (neither built
  # with npm nor downloaded), HTTPS or curl. GGML_NATIVE=OFF makes a binary that runs on any
  # machine of the architecture the cache may be restored on; LLAMAFILE=OFF skips the large
  # sgemm kernels and OPENMP=OFF the libgomp dependency (a model this small needs neither).
  nice -n 10 cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF -DGGML_OPENMP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$work/configure.log" 2>&1 || {
    tail -n 40 "$work/configure.log" >&2
    exit 1
  }
  nice -n 10 cmake --build "$work/build" --target llama-server -j "$jobs" >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    exit 1
  }
  mkdir -p "$server_dir/bin"
  cp "$work/build/bin/llama-server" "$server_bin.tmp"
  mv "$server_bin.tmp" "$server_bin"
  local done_at=$SECONDS
  {
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (vendored llama.cpp), built $(date -u +%FT%TZ)"
    echo "download+unpack: $((fetched - started)) s, configure+build: $((done_at - fetched)) s, jobs: $jobs"
  } >"$server_dir/BUILD-INFO"
  log "built $server_bin in $((done_at - started)) s (download $((fetched - started)) s)"
  rm -rf "$work"
}

write_model() {
  local stamp="$model.stamp"
  local want
  want="gguf==$GGUF_VERSION $(sha256sum "$here/tiny_gguf.py" | cut -d' ' -f1)"
  if [ -f "$model" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  local pydir="$cache_root/python-gguf-$GGUF_VERSION"
  if [ ! -f "$pydir/.complete" ]; then
    log "installing gguf $GGUF_VERSION into $pydir"
    rm -rf "$pydir"
    # --target keeps the system Python untouched (and works where it is externally managed).
    pip_quiet install --target "$pydir" "gguf==$GGUF_VERSION"
    touch "$pydir/.complete"
  fi
  log "writing $model"
  PYTHONPATH="$pydir" python3 "$here/tiny_gguf.py" "$model.tmp"
  mv "$model.tmp" "$model"
  echo "$want" >"$stamp"
}

mkdir -p "$cache_root"
if [ -x "$server_bin" ]; then
  log "cached: $server_bin"
else
  build_server
fi
write_model
# Checks the binary starts on this machine (a cache restored elsewhere could not).
"$server_bin" --version >/dev/null 2>&1 || {
  log "$server_bin does not run here; delete $server_dir to rebuild"
  exit 1
}
printf 'export INFERPROBE_LLAMA_SERVER=%q\n' "$server_bin"
printf 'export INFERPROBE_LLAMA_MODEL=%q\n' "$model"
