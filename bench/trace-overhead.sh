#!/usr/bin/env bash
# What `weir trace` costs the proxy it watches: CPU µs per proxied request of the proxy's process
# tree without and with the tracer attached, the records (traced syscalls) per request, and so
# the cost per recorded syscall; plus the tracer's own CPU per request.
#
# Layout as bench/run.sh: the proxy (one worker) pinned to CPU 0; the nginx origin, wrk -t1 -c64
# and the tracer on CPU 1. Modes alternate (off, traced, traced, off, …); medians with min–max.
# Needs root (the tracer loads eBPF programs).
#
# Usage: bench/trace-overhead.sh [repetitions] [seconds-per-run] [targets…]   (nginx haproxy weir)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/median.sh
. bench/median.sh
# shellcheck source=bench/targets/common.sh
. bench/targets/common.sh
reps=${1:-3}
secs=${2:-5}
shift 2 2>/dev/null || shift $#
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nginx haproxy weir)
cargo build --release -q -p weir
weir=${CARGO_TARGET_DIR:-target}/release/weir
for t in "${targets[@]}"; do bench/targets/"$t".sh install; done
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing

work=$(mktemp -d /tmp/weir-trace-bench.XXXX); chmod 755 "$work"
cleanup() {
  for t in "${targets[@]}"; do bench/targets/"$t".sh stop "$work/$t" 2>/dev/null || true; done
  [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

origin_port=18300
start_origin "$work" $origin_port 100

hz=$(getconf CLK_TCK)

declare -A off on records tracer_cpu
last_reqs=0
run() { # target pid port mode
  local t=$1 pid=$2 port=$3 mode=$4 t0 t1 out reqs tr tr0 tr1 done_line
  local url="http://127.0.0.1:$port/b100"
  if [ "$mode" = traced ]; then
    taskset -c 1 "$weir" trace --pid "$pid" --format json > /dev/null 2> "$work/trace.err" &
    tr=$!
    for _ in $(seq 1 100); do grep -q "weir trace: tracing" "$work/trace.err" && break; sleep 0.1; done
    tr0=$(awk '{print $14+$15}' /proc/$tr/stat)
  fi
  taskset -c 1 wrk -t1 -c64 -d1s "$url" > /dev/null # warm-up
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "$url")
  t1=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local us; us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN{printf "%.2f", d*1e6/hz/r}')
  if [ "$mode" = traced ]; then
    tr1=$(awk '{print $14+$15}' /proc/$tr/stat)
    kill -INT $tr; wait $tr 2>/dev/null || true
    done_line=$(grep "weir trace: done" "$work/trace.err")
    # Records per request over the whole trace (warm-up included: count its requests too).
    on[$t]+="$us "
    tracer_cpu[$t]+="$(awk -v d=$((tr1 - tr0)) -v hz="$hz" -v r="$reqs" 'BEGIN{printf "%.2f", d*1e6/hz/r}') "
    records[$t]+="$(echo "$done_line" | awk '{print $4}') "
    echo "  $t traced: $us µs/request; $done_line" >&2
  else
    off[$t]+="$us "
    echo "  $t off: $us µs/request" >&2
  fi
  last_reqs=$reqs
}

declare -A reqs_traced
i=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  port=$((18310 + i)); i=$((i + 1))
  pid=$(bench/targets/"$t".sh start "$port" $origin_port 0 "$work/$t")
  for ((r = 0; r < reps; r++)); do
    if ((r % 2 == 0)); then modes=(off traced); else modes=(traced off); fi
    for m in "${modes[@]}"; do
      run "$t" "$pid" "$port" "$m"
      if [ "$m" = traced ]; then reqs_traced[$t]+="$last_reqs "; fi
    done
  done
  bench/targets/"$t".sh stop "$work/$t"
done

echo "| proxy | CPU µs/request, untraced | traced | records (syscalls) per request | µs per recorded syscall | tracer's own CPU µs/request |"
echo "|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
  read -r off_m off_lo off_hi < <(median_min_max "${off[$t]}")
  read -r on_m on_lo on_hi < <(median_min_max "${on[$t]}")
  read -r tr_m _ _ < <(median_min_max "${tracer_cpu[$t]}")
  # records/request: the trace also saw the 1 s warm-up, so divide by the requests of both runs
  # (the warm-up's count is estimated at the measured rate over 1 s).
  per=$(paste -d' ' <(echo "${records[$t]}" | tr ' ' '\n' | grep .) <(echo "${reqs_traced[$t]}" | tr ' ' '\n' | grep .) |
    awk -v s="$secs" '{ v = $1 / ($2 * (s + 1) / s); printf "%.2f ", v }')
  read -r per_m _ _ < <(median_min_max "$per")
  cost=$(awk -v a="$on_m" -v b="$off_m" -v n="$per_m" 'BEGIN{printf "%.2f", (a - b) / n}')
  echo "| $t | $off_m ($off_lo–$off_hi) | $on_m ($on_lo–$on_hi) | $per_m | $cost | $tr_m |"
done
