#!/usr/bin/env bash
# scripts/bench.sh BUILD_DIR — runs every benchmark binary (bench_*) in turn.
# Each prints its own table with peers side by side and ratios.
set -euo pipefail
dir="$1"
found=0
for b in $(find "$dir/bench" -maxdepth 2 -type f -name 'bench_*' -perm -u+x 2>/dev/null | sort); do
  found=1
  echo "== $(basename "$b")"
  "$b"
  echo
done
[ "$found" -eq 1 ] || echo "no benchmarks built yet"
