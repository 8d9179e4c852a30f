#!/usr/bin/env bash
# The cost of stats and access logs: weir's CPU µs per request at 64 keep-alive connections,
# one worker, with stats alone (always on) and with an access log to a file in Envoy's default
# format, against BASELINE=<rev> (default 0d6c9d6: the build before Envoy's stats). Modes run
# in rotating order, several times; the table gives medians with min–max.
#
# Usage: bench/admin-overhead.sh [repetitions] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/median.sh
. bench/median.sh
reps=${1:-5}
secs=${2:-5}
baseline=${BASELINE:-0d6c9d6}
tree=$(mktemp -d /tmp/weir-baseline.XXXX)
git worktree add -q --detach "$tree" "$baseline"
trap 'git worktree remove --force "$tree"' EXIT
(cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release -q -p weir)
cargo build --release -q -p weir
current="${CARGO_TARGET_DIR:-target}/release/weir"
modes=(baseline stats access-log)
declare -A results
for ((i = 0; i < reps; i++)); do
  for ((j = 0; j < ${#modes[@]}; j++)); do
    mode=${modes[$(((i + j) % ${#modes[@]}))]}
    case $mode in
      baseline) line=$(ONLY=weir WEIR_BIN="$tree/target/release/weir" bench/measure.sh "$secs" 100 | grep '^weir ') ;;
      stats) line=$(ONLY=weir WEIR_BIN="$current" bench/measure.sh "$secs" 100 | grep '^weir ') ;;
      access-log) line=$(ONLY=weir WEIR_BIN="$current" WEIR_ACCESS_LOG=1 bench/measure.sh "$secs" 100 | grep '^weir ') ;;
    esac
    us=$(echo "$line" | sed 's/.*cpu_us_per_req=//')
    results[$mode]+="$us "
    echo "run $((i + 1)) $mode: $line" >&2
  done
done
echo "| weir build | CPU µs/request, median (min–max) over $reps runs | vs baseline |"
echo "|---|---|---|"
base=
for mode in "${modes[@]}"; do
  read -r median min max < <(median_min_max "${results[$mode]}")
  [ -z "$base" ] && base=$median
  delta=$(awk -v m="$median" -v o="$base" 'BEGIN {printf "%+.1f %%", (m - o) * 100 / o}')
  echo "| $mode | $median ($min–$max) | $delta |"
done
