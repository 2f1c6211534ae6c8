#!/usr/bin/env bash
# The GPU checks of lightning-cpp, in one run, with one Markdown report:
#
#   bash scripts/gpu-check.sh OUTDIR
#
# On a machine with a CUDA GPU, a python3 whose torch has CUDA, and the CUDA toolkit
# (nvcc): configures build-gpu/ against that torch (torch.utils.cmake_prefix_path), builds
# only what has a GPU path, runs it, and writes OUTDIR/gpu-report.md (and the raw logs
# beside it):
#   - the CUDA toolchain check and the CTest tests labeled gpu (policies_tests: CUDA
#     accelerator, F16Mixed/BF16Mixed on CUDA; ddp_tests: NCCL world of one);
#   - bench/policy_combinations (accelerators x precisions, CUDA included),
#     bench/default_trainer_bench and bench/thread_wakeup_bench (the default Trainer
#     against the hand-written loop on a machine with cores to spare, issue 10);
#   - bench/ddp_bench where 2 GPUs or more exist.
# The GPU machine has no Debian packages: first, here, run
#
#   bash scripts/gpu-check.sh --pack
#
# (../shared/device/pack-deps.sh, plus zlib's headers, which it leaves out), and carry
# .deps/ along; with .deps/ present the build takes every dependency from it, as it will
# there (CMake's LIGHTNING_DEPS_DIR, system packages ignored). Without a GPU (here) the
# same runs: the gpu tests report their skips and the report says "no GPU". Meant to
# finish within 8 minutes on 16 cores.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ${1:-} == --pack ]]; then
  bash ../shared/device/pack-deps.sh || exit 1
  cp /usr/include/zlib.h /usr/include/zconf.h .deps/include/ || exit 1
  du -sh .deps
  exit 0
fi
out=${1:?usage: bash scripts/gpu-check.sh OUTDIR   (or --pack, here, before carrying .deps)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
report=$out/gpu-report.md
build=build-gpu
# The machine's own torch (the GPU machine's python3); here, the project's .venv.
python=${LIGHTNING_GPU_PYTHON:-python3}
if ! "$python" -c 'import torch' 2>/dev/null && [[ -x .venv/bin/python ]]; then
  python=$PWD/.venv/bin/python
fi
jobs=$(nproc)
start=$SECONDS
[[ -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null && export PATH="$PATH:/usr/local/cuda/bin"

say() { echo "gpu-check: $*"; }
section() { printf '\n## %s\n\n' "$1" >>"$report"; }
# Runs a step, its output to OUTDIR/<name>.log; the report gets its status and time.
step() {
  local name=$1 t=$SECONDS rc
  shift
  say "$name"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  printf -- '- `%s`: %s in %d s (log: %s.log)\n' "$name" \
    "$([[ $rc -eq 0 ]] && echo passed || echo "FAILED (exit $rc)")" $((SECONDS - t)) "$name" >>"$report"
  return $rc
}

gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
device=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
  head -1)
torch_info=$("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())' 2>&1)
{
  echo "# lightning-cpp GPU check"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- device: ${device:-no GPU (nvidia-smi found none)}; GPUs: $gpus"
  echo "- host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "- torch: $torch_info"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo none)"
} >"$report"

deps=()
[[ -d .deps ]] && deps=(-DLIGHTNING_DEPS_DIR="$PWD/.deps"
  -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
  -DCMAKE_DISABLE_FIND_PACKAGE_range-v3=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
  -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON)
section "Build"
step configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLIGHTNING_TORCH_PYTHON="$(command -v "$python")" -DLIGHTNING_WERROR=ON \
  -DLIGHTNING_BUILD_EXAMPLES=OFF "${deps[@]}" || { say "configure failed: $out/configure.log"; exit 1; }
targets=(policies_tests ddp_tests policy_combinations default_trainer_bench thread_wakeup_bench ddp_bench)
grep -q lightning_cuda_check "$build/build.ninja" && targets+=(lightning_cuda_check)
step build cmake --build "$build" -j "$jobs" --target "${targets[@]}" ||
  { say "build failed: $out/build.log"; exit 1; }

section "Tests (CTest, label gpu)"
if [[ -x $build/lightning_cuda_check ]]; then
  step cuda_check "$build/lightning_cuda_check"
  printf '  - %s\n' "$(tail -1 "$out/cuda_check.log")" >>"$report"
fi
step gpu_tests ctest --test-dir "$build" -L gpu --output-on-failure --timeout 300
grep -E '^[[:space:]]*[0-9]+ - |tests passed|Skipped|\*\*\*' "$out/gpu_tests.log" |
  sed 's/^[[:space:]]*/  - /' >>"$report"

section "Benchmarks"
bench() {
  local name=$1
  shift
  step "$name" "$build/bench/$name" --benchmark_format=console "$@"
  {
    echo
    echo '```'
    grep -E '^(BM_|Seed|FashionCNN|CNN|MLP|-{5}|Benchmark)|not registered' "$out/$name.log" | head -60
    echo '```'
  } >>"$report"
}
bench policy_combinations
bench default_trainer_bench --benchmark_repetitions=1
bench thread_wakeup_bench
if ((gpus >= 2)); then
  bench ddp_bench --benchmark_filter=Cuda
else
  echo "- ddp_bench: not run ($gpus GPU; its NCCL cases need 2)" >>"$report"
fi

printf '\nTotal: %d s.\n' $((SECONDS - start)) >>"$report"
say "report: $report ($((SECONDS - start)) s)"
