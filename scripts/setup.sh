#!/usr/bin/env bash
# lightning-cpp's one entry point on a fresh Debian 12 machine.
#
#   bash scripts/setup.sh example   install what is missing, build, run the seed example
#   bash scripts/setup.sh test      install what is missing, build, run the test suite (CTest)
#   bash scripts/setup.sh deps      only install what is missing
#   bash scripts/setup.sh build     install what is missing and build
#
# Installing needs root (apt-get); the script skips every package already installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly PACKAGES=(
  g++ cmake ninja-build ccache          # toolchain
  libtorch-dev libopenblas0-pthread     # LibTorch 1.13 (CPU) and a fast BLAS for it
  libgloo-dev                           # c10d's Gloo headers (distributed CPU backend)
  libboost-dev librange-v3-dev          # Boost.Hana, range-v3
  zlib1g-dev                            # gzip-compressed IDX files
  dataset-fashion-mnist                 # a real data set for the examples and tests
  libgtest-dev libgmock-dev             # tests
  python3-torch                         # tests: Python's torch.load reads our checkpoints
  protobuf-compiler                     # tests: protoc --decode_raw reads TensorBoard event files
  python3-yaml                          # tests: hparams.yaml compared with PyYAML's yaml.dump
  libbenchmark-dev                      # bench/
)

install_missing() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "setup: all ${#PACKAGES[@]} Debian packages are installed"
    return
  fi
  echo "setup: missing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: installing them needs root; run:  sudo bash scripts/setup.sh ${1:-test}" >&2
    echo "setup: (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  cmake --preset default
  cmake --build --preset default
}

case "${1:-}" in
  deps) install_missing deps ;;
  build) install_missing build; build ;;
  example) install_missing example; build; ./build/examples/simple_linear ;;
  test) install_missing test; build; ctest --preset default ;;
  *)
    echo "usage: bash scripts/setup.sh example|test|deps|build" >&2
    exit 2
    ;;
esac
