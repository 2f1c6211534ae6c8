#!/bin/sh
# Compiler launcher of the header checks: runs the compile command as a syntax check
# (-fsyntax-only: parsed, instantiated and diagnosed, no code generated, which halves a
# header check's time), then creates the empty object file the build expects.
out=
prev=
for arg in "$@"; do
  if [ "$prev" = "-o" ]; then out=$arg; fi
  prev=$arg
done
"$@" -fsyntax-only || exit $?
if [ -n "$out" ]; then : > "$out"; fi
