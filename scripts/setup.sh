#!/usr/bin/env bash
# lightning-cpp's one entry point on a fresh Debian 12 machine.
#
#   bash scripts/setup.sh example   install what is missing, build and run the seed example
#   bash scripts/setup.sh test      install what is missing, build, run the whole test suite:
#                                   on LibTorch 2.x (preset default), then the compat subset
#                                   on Debian's LibTorch 1.13 (preset compat), then the
#                                   fuzzers for a fixed number of inputs (preset fuzz)
#   bash scripts/setup.sh asan|tsan|fuzz  one of the sanitizer presets alone (docs/testing.md)
#   bash scripts/setup.sh deps      only install what is missing
#   bash scripts/setup.sh build     install what is missing and build (preset default)
#
# What is installed, each only when missing: Debian packages (needs root), and a project-local
# Python virtual environment (.venv, git-ignored) with PyPI's torch (LibTorch 2.x, the version
# pinned in scripts/requirements.txt) and the test peers (PyTorch Lightning, TensorBoard).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly PACKAGES=(
  g++ cmake ninja-build ccache          # toolchain
  python3 python3-venv ca-certificates  # the virtual environment and PyPI over https
  libtorch-dev libopenblas0-pthread     # compat build: Debian's LibTorch 1.13 and a fast BLAS for it
  libgloo-dev                           # c10d's Gloo headers for the 1.13 build
  libboost-dev librange-v3-dev          # Boost.Hana, Boost.CRC, range-v3
  zlib1g-dev                            # gzip-compressed IDX files
  libpng-dev libjpeg62-turbo-dev        # data/image.hpp: PNG and JPEG files
  libyaml-cpp-dev                       # lightning/cli: YAML config files
  dataset-fashion-mnist                 # a real data set for the examples and tests
  libgtest-dev libgmock-dev             # tests
  protobuf-compiler                     # tests: protoc --decode_raw reads TensorBoard event files
  libbenchmark-dev                      # bench/
  clang libclang-rt-14-dev              # fuzz/: libFuzzer and clang's sanitizer runtimes
)
readonly VENV=.venv
readonly REQUIREMENTS=scripts/requirements.txt

say() { echo "setup: $*"; }

elapsed() { echo "$((SECONDS - $1)) s"; }

# Stops with a clear message when the disk holding $2 has less than $1 GiB free: a pip or
# ninja run that fills the disk fails with a bare "No space left on device" halfway through.
require_free_gib() {
  local need=$1 dir=$2 what=$3 free_kib
  free_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  if ((free_kib < need * 1024 * 1024)); then
    echo "setup: $what needs about $need GiB free on the disk of $(realpath "$dir");" \
      "$((free_kib / 1024)) MiB are free. Free some space (old build folders, clones," \
      "~/.cache) and run this again." >&2
    exit 1
  fi
}

install_debian_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    # python3 from elsewhere (pyenv, a distribution build) serves as well, if it has venv.
    if [[ $p == python3 || $p == python3-venv ]] && command -v python3 >/dev/null &&
      python3 -c 'import ensurepip, venv' 2>/dev/null; then
      continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "all ${#PACKAGES[@]} Debian packages are installed"
    return
  fi
  say "missing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: installing them needs root; run:  sudo bash scripts/setup.sh ${1:-test}" >&2
    echo "setup: (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The virtual environment is (re)filled when requirements.txt changed since the last
# install that completed, or when its packages cannot be imported.
install_python_packages() {
  local stamp="$VENV/.lightning-requirements" want
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]] &&
    "$VENV/bin/python" -c 'import torch, torchvision, pytorch_lightning, tensorboard' 2>/dev/null; then
    say "$VENV has what $REQUIREMENTS pins"
    return
  fi
  # The wheel's download (~2.7 GB, in TMPDIR) and what it unpacks to (~5 GB) at once.
  require_free_gib 9 . "installing $REQUIREMENTS into $VENV"
  [[ $(realpath "${TMPDIR:-/tmp}") == $(realpath .)* ]] ||
    require_free_gib 3 "${TMPDIR:-/tmp}" "pip's download of torch into ${TMPDIR:-/tmp}"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  say "installing $REQUIREMENTS into $VENV (PyPI's torch is ~2.7 GB with its CUDA libraries)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
}

# Says which LibTorch each build uses, and why.
describe_libtorch() {
  local version cuda
  read -r version cuda < <("$VENV/bin/python" -c \
    'import torch; print(torch.__version__.split("+")[0], torch.version.cuda or "none")')
  say "LibTorch for the default build: torch $version from PyPI in $VENV (CUDA $cuda build)"
  if [[ $cuda == none ]]; then
    say "  CPU-only build of torch: the library's CUDA-only code is off"
  elif command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
    say "  CUDA toolkit found ($(nvcc_path)): the CUDA-only code and NCCL are compiled (no GPU needed)"
  else
    say "  no CUDA toolkit (nvcc): LibTorch's CMake config for a CUDA build insists on one, so"
    say "  the build links the wheel's CPU libraries directly (they run without GPU or toolkit);"
    say "  the CUDA-only code is off"
  fi
  say "LibTorch for the compat build: Debian's libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '(not installed)')"
}

nvcc_path() { command -v nvcc || echo /usr/local/cuda/bin/nvcc; }

install_missing() {
  local start=$SECONDS
  install_debian_packages "$1"
  install_python_packages
  describe_libtorch
  say "dependencies ready in $(elapsed "$start")"
}

# CMake's CUDA detection looks for nvcc on PATH; the toolkit's usual home is enough.
if [[ -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  export PATH="$PATH:/usr/local/cuda/bin"
fi

configure() { cmake --preset "$@"; }

# Builds a preset and runs its tests, saying how long each took (more arguments go to
# the configure step).
build_and_test() {
  local start=$SECONDS
  require_free_gib 3 . "the $1 build (objects, test programs, the files tests write)"
  configure "$1" "${@:3}"
  cmake --build --preset "$1"
  say "$1 build ($2) in $(elapsed "$start")"
  start=$SECONDS
  ctest --preset "$1"
  say "$1 tests ($2) in $(elapsed "$start")"
}

case "${1:-}" in
  deps) install_missing deps ;;
  build)
    install_missing build
    configure default
    cmake --build --preset default
    ;;
  example)
    install_missing example
    start=$SECONDS
    configure default
    cmake --build --preset default --target simple_linear
    say "built the seed example in $(elapsed "$start"); running it in build/ (it writes checkpoints there)"
    (cd build && ./examples/simple_linear)
    ;;
  test)
    install_missing test
    # The benchmarks are only syntax-checked here (never run by CI); `setup.sh build` or
    # `cmake --preset default` builds them as programs again.
    build_and_test default "LibTorch 2.x" -DLIGHTNING_BENCHMARKS_AS_CHECKS=ON
    build_and_test compat "LibTorch 1.13"
    build_and_test fuzz "libFuzzer, LibTorch 2.x"
    ;;
  asan | tsan | fuzz)
    install_missing "$1"
    build_and_test "$1" "$1 preset"
    ;;
  *)
    echo "usage: bash scripts/setup.sh example|test|deps|build|asan|tsan|fuzz" >&2
    exit 2
    ;;
esac
