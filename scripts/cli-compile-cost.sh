#!/usr/bin/env bash
# The compile time and binary size of examples/cli.cpp with LightningCLI's default policy
# set (every valid combination) against the same program built for one combination
# (cpu/single_device/32-true): the project's own compile and link commands (ninja's, for
# an already configured build), without ccache, one after the other.
#   bash scripts/cli-compile-cost.sh [build-dir]          (figures: docs/cli.md)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compile=$(cd "$build" && ninja -t commands examples/cli | grep -- "-c $root/examples/cli.cpp")
compile=${compile/\/usr\/bin\/ccache /}
link=$(cd "$build" && ninja -t commands examples/cli | grep -- "-o examples/cli ")
object=examples/CMakeFiles/cli.dir/cli.cpp.o
sed 's|      .run();|      .run(L::cli::policy_product(L::cli::policies<L::accelerators::CPU>, L::cli::policies<L::strategies::SingleDevice>, L::cli::policies<L::precision::F32>));|' \
  examples/cli.cpp > "$work/cli_one.cpp"
grep -q 'policies<L::precision::F32>' "$work/cli_one.cpp" || { echo "no one-combination variant"; exit 1; }
cp examples/cli.cpp "$work/cli_all.cpp"
for variant in one all; do
  c=${compile//$root\/examples\/cli.cpp/$work/cli_$variant.cpp}
  c="${c//$object/$work/$variant.o} -I$root/examples"
  l=${link//$object/$work/$variant.o}
  l=${l/-o examples\/cli /-o $work/$variant }
  start=$(date +%s.%N)
  (cd "$build" && eval "$c")
  end=$(date +%s.%N)
  (cd "$build" && eval "$l")
  printf '%s: compile %.1f s, binary %s bytes (text %s)\n' "$variant" "$(echo "$end - $start" | bc)" \
    "$(stat -c %s "$work/$variant")" "$(size "$work/$variant" | awk 'NR==2 {print $1}')"
done
