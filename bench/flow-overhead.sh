#!/usr/bin/env bash
# The flow recorder's cost: weir's CPU µs per request at 64 keep-alive connections, one worker,
# with the recorder off, sampling 1 request in 100, and recording every request (and, with
# BASELINE=<rev>, a build of a revision without the recorder). Modes are
# run in rotating order, several times; the table gives medians with min–max.
#
# Usage: bench/flow-overhead.sh [repetitions] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/median.sh
. bench/median.sh
reps=${1:-5}
secs=${2:-5}
modes=(off sampled:100 all)
# BASELINE=<git rev>: also measure a build of that revision (one without the recorder).
if [ -n "${BASELINE:-}" ]; then
  tree=$(mktemp -d /tmp/weir-baseline.XXXX)
  git worktree add -q --detach "$tree" "$BASELINE"
  (cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release -q -p weir)
  baseline_bin="$tree/target/release/weir"
  trap 'git worktree remove --force "$tree"' EXIT
  modes=(baseline "${modes[@]}")
fi
cargo build --release -q -p weir
declare -A results
for ((i = 0; i < reps; i++)); do
  for ((j = 0; j < ${#modes[@]}; j++)); do
    mode=${modes[$(((i + j) % ${#modes[@]}))]}
    if [ "$mode" = baseline ]; then
      line=$(ONLY=weir WEIR_BIN="$baseline_bin" bench/measure.sh "$secs" 100 | grep '^weir ')
    else
      line=$(ONLY=weir WEIR_BIN="${CARGO_TARGET_DIR:-target}/release/weir" WEIR_FLAGS="--flow-trace $mode" bench/measure.sh "$secs" 100 | grep '^weir ')
    fi
    us=$(echo "$line" | sed 's/.*cpu_us_per_req=//')
    results[$mode]+="$us "
    echo "run $((i + 1)) $mode: $line" >&2
  done
done
echo "| flow recorder | CPU µs/request, median (min–max) over $reps runs | vs ${modes[0]} |"
echo "|---|---|---|"
off_median=
for mode in "${modes[@]}"; do
  read -r median min max < <(median_min_max "${results[$mode]}")
  [ -z "$off_median" ] && off_median=$median
  delta=$(awk -v m="$median" -v o="$off_median" 'BEGIN {printf "%+.1f %%", (m - o) * 100 / o}')
  echo "| $mode | $median ($min–$max) | $delta |"
done
