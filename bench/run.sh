#!/usr/bin/env bash
# weir against other reverse proxies, side by side, on this machine. The method is in
# bench/README.md; in short: every proxy runs one worker pinned to CPU 0 with keep-alive on both
# sides and no access log; an nginx origin serving fixed bodies and the load generator
# (wrk -t1) share CPU 1; targets are measured in rotating order, several times; the table
# gives medians with min–max. Everything stays on 127.0.0.1 and every run is bounded in time.
#
# Usage: bench/run.sh [--quick] [target…]
#   targets: direct (wrk straight to the origin: the upper bound) weir envoy nginx haproxy sozu pingora
#   --quick: a smoke pass of seconds (CI runs `bench/run.sh --quick weir`)
# Environment: SECS (per run, 10), REPS (3), BODIES ("100 4608 65536"), CONNS (64),
#   IDLE_CONNS (9000: HAProxy needs two descriptors per connection and this machine allows
#   20,000), OUT (the markdown table's file, bench/results/latest.md)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/median.sh
. bench/median.sh
# shellcheck source=bench/targets/common.sh
. bench/targets/common.sh

quick=0
if [ "${1:-}" = --quick ]; then quick=1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(direct weir envoy nginx haproxy sozu pingora)
secs=${SECS:-10}; reps=${REPS:-3}; conns=${CONNS:-64}; idle_conns=${IDLE_CONNS:-9000}
read -r -a bodies <<< "${BODIES:-100 4608 65536}"
if [ $quick = 1 ]; then secs=1; reps=1; bodies=(100); idle_conns=200; fi
out_file=${OUT:-bench/results/$([ $quick = 1 ] && echo quick || echo latest).md}

# What the runs need: Debian packages, then each target's own install.
need=()
for tool in wrk nginx curl taskset python3; do command -v $tool >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=(); for t in "${need[@]}"; do case $t in nginx) pkgs+=(nginx-light) ;; taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
for t in "${targets[@]}"; do
  [ "$t" = direct ] || bench/targets/"$t".sh install
done
# The open-loop load generator for the fixed-rate latency runs (bench/loadgen: wrk keeps every
# connection busy, so its latencies are those of a saturated proxy).
loadgen_dir=bench/.tools/loadgen
CARGO_TARGET_DIR=$loadgen_dir cargo build --release --locked -q --manifest-path bench/loadgen/Cargo.toml
loadgen=$loadgen_dir/release/weir-bench-loadgen

work=$(mktemp -d /tmp/weir-bench.XXXX); chmod 755 "$work"
cleanup() {
  for t in "${targets[@]}"; do [ "$t" = direct ] || bench/targets/"$t".sh stop "$work/$t" 2>/dev/null || true; done
  [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The origin: nginx, one worker on CPU 1, fixed bodies from its open-file cache.
origin_port=18200
start_origin "$work" $origin_port "${bodies[@]}"

# Start every proxy (all stay up; an idle one costs nothing) and check the bytes.
declare -A port pid version
i=0
for t in "${targets[@]}"; do
  if [ "$t" = direct ]; then port[$t]=$origin_port; version[$t]="(no proxy)"; continue; fi
  port[$t]=$((18210 + i)); i=$((i + 1))
  mkdir -p "$work/$t"
  pid[$t]=$(bench/targets/"$t".sh start "${port[$t]}" $origin_port 0 "$work/$t")
  version[$t]=$(bench/targets/"$t".sh version)
done
for t in "${targets[@]}"; do
  for b in "${bodies[@]}"; do
    curl -fsS "http://127.0.0.1:${port[$t]}/b$b" | cmp -s - "$work/b$b" ||
      { echo "$t returned wrong bytes for a $b-byte body" >&2; exit 1; }
  done
done

rss_kib() { # resident set of a process tree, kB
  local sum=0
  for p in $(descendants "$1"); do sum=$((sum + $(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0))); done
  echo $sum
}
ms() { # wrk's latency ("1.23ms", "850.00us", "1.10s") in ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.3f", n }'
}
hz=$(getconf CLK_TCK)

declare -A rps cpu p50 p99
measure() { # target body → appends rps, CPU µs/request, p50, p99 (ms)
  local t=$1 b=$2 url="http://127.0.0.1:${port[$1]}/b$2" t0 t1 out reqs
  taskset -c 1 wrk -t1 -c"$conns" -d1s "$url" >/dev/null # warm-up
  [ "$t" = direct ] || t0=$(cpu_ticks "${pid[$t]}")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  [ "$t" = direct ] || t1=$(cpu_ticks "${pid[$t]}")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps[$t,$b]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
  p50[$t,$b]+="$(ms "$(echo "$out" | awk '$1 == "50%" {print $2}')") "
  p99[$t,$b]+="$(ms "$(echo "$out" | awk '$1 == "99%" {print $2}')") "
  [ "$t" = direct ] || cpu[$t,$b]+="$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN{printf "%.2f", d*1e6/hz/r}') "
  echo "  $t ${b} B: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s" >&2
}

echo "measuring ${targets[*]}: ${reps} × ${#bodies[@]} bodies × ${secs} s" >&2
n=${#targets[@]}
for ((r = 0; r < reps; r++)); do
  for b in "${bodies[@]}"; do
    for ((j = 0; j < n; j++)); do measure "${targets[$(((r + j) % n))]}" "$b"; done
  done
done

# Latency at a fixed request rate, open loop (each latency counted from the request's intended
# send time): half of nginx's maximum for that body (FIXED_RATE=N overrides; without nginx,
# half of the slowest target's), in rotating order like the runs above.
declare -A fixed_rate fp50 fp99 ferr ffail
for b in "${bodies[@]}"; do
  [ "$b" -le 4608 ] || continue
  if [ -n "${FIXED_RATE:-}" ]; then
    rate=$FIXED_RATE
  elif [ -n "${rps[nginx,$b]:-}" ]; then
    rate=$(median_min_max "${rps[nginx,$b]}" | awk '{printf "%d", $1 / 2}')
  else
    rate=$(for t in "${targets[@]}"; do median_min_max "${rps[$t,$b]}"; done | sort -g | awk 'NR == 1 {printf "%d", $1 / 2}')
  fi
  fixed_rate[$b]=$rate
  for ((r = 0; r < reps; r++)); do
    for ((j = 0; j < n; j++)); do
      t=${targets[$(((r + j) % n))]}
      if ! out=$(taskset -c 1 "$loadgen" "127.0.0.1:${port[$t]}" "/b$b" "$rate" "$conns" "$secs"); then
        echo "  $t failed the fixed-rate run at $rate requests/s ($b B)" >&2
        ffail[$t,$b]=1
        continue
      fi
      fp50[$t,$b]+="$(echo "$out" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p') "
      fp99[$t,$b]+="$(echo "$out" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p') "
      ferr[$t,$b]=$(( ${ferr[$t,$b]:-0} + $(echo "$out" | sed -n 's/.*errors=\([0-9]*\).*/\1/p') ))
      echo "  $t ${b} B at $rate/s: $out" >&2
    done
  done
done

# Syscalls per request, by name: a separate bounded run per proxy with bpftrace on the syscall
# tracepoints (every thread and child of the proxy), at full speed.
declare -A sys sys_top
mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
can_trace=0
command -v bpftrace >/dev/null && [ -d /sys/kernel/tracing/events/syscalls ] && can_trace=1
for t in "${targets[@]}"; do
  [ "$t" != direct ] && [ $can_trace = 1 ] || continue
  for b in "${bodies[@]}"; do
    [ "$b" -le 4608 ] || continue
    filter=$(descendants "${pid[$t]}" | sed 's/^/pid == /' | paste -sd'|' | sed 's/|/ || /g')
    bpftrace -e "tracepoint:syscalls:sys_enter_* /$filter/ { @[probe] = count(); }" > "$work/$t.$b.bpf" 2>&1 &
    bt=$!
    for _ in $(seq 1 60); do grep -q Attaching "$work/$t.$b.bpf" 2>/dev/null && break; sleep 0.5; done
    sleep 1
    out=$(taskset -c 1 wrk -t1 -c"$conns" -d"$([ $quick = 1 ] && echo 1 || echo 5)s" "http://127.0.0.1:${port[$t]}/b$b")
    kill -INT $bt; wait $bt 2>/dev/null || true
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    sed -n 's/^@\[tracepoint:syscalls:sys_enter_\(.*\)\]: \([0-9]*\)$/\1 \2/p' "$work/$t.$b.bpf" > "$work/$t.$b.counts"
    sys[$t,$b]=$(awk -v r="$reqs" '{s += $2} END {printf "%.2f", s / r}' "$work/$t.$b.counts")
    sys_top[$t,$b]=$(sort -k2 -n -r "$work/$t.$b.counts" | head -4 | awk -v r="$reqs" '{printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $2 / r}')
  done
done

# Memory: RSS per idle keep-alive connection (IDLE_CONNS clients, one request each, then idle),
# and the peak RSS while serving the largest body at full speed.
declare -A idle peak
for t in "${targets[@]}"; do
  [ "$t" != direct ] || continue
  before=$(rss_kib "${pid[$t]}")
  python3 bench/idle.py "${port[$t]}" "$idle_conns" "$work/idle.$t" "" 30 &
  idler=$!
  for _ in $(seq 1 600); do [ -f "$work/idle.$t" ] || [ -f "$work/idle.$t.failed" ] && break; sleep 0.1; done
  sleep 1
  after=$(rss_kib "${pid[$t]}")
  kill $idler 2>/dev/null || true; wait $idler 2>/dev/null || true
  if [ -f "$work/idle.$t" ]; then
    idle[$t]="$(awk -v a="$after" -v b="$before" -v n="$idle_conns" 'BEGIN{printf "%.0f", (a - b) * 1024 / n}') B"
  else
    idle[$t]="failed ($(cat "$work/idle.$t.failed" 2>/dev/null || echo "no answer in 60 s"))"
  fi
  big=${bodies[${#bodies[@]}-1]}
  taskset -c 1 wrk -t1 -c"$conns" -d"$([ $quick = 1 ] && echo 1 || echo 5)s" "http://127.0.0.1:${port[$t]}/b$big" >/dev/null &
  load=$!; max=0
  while kill -0 $load 2>/dev/null; do r=$(rss_kib "${pid[$t]}"); [ "$r" -gt "$max" ] && max=$r; sleep 0.1; done
  peak[$t]=$max
done

# The table.
mkdir -p "$(dirname "$out_file")"
{
  echo "Measured $(date -u +%F) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)."
  echo "One worker per proxy on CPU 0; origin (nginx, fixed bodies) and \`wrk -t1 -c$conns\` on CPU 1; $reps runs of ${secs} s per cell in rotating order: median (min–max)."
  echo
  echo "| target | version | body | requests/s | CPU µs/request | p50 ms | p99 ms | syscalls/request | top syscalls/request |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for b in "${bodies[@]}"; do
    for t in "${targets[@]}"; do
      cell() { read -r m lo hi < <(median_min_max "$1"); echo "$m ($lo–$hi)"; }
      c="—"; [ "$t" = direct ] || c=$(cell "${cpu[$t,$b]}")
      echo "| $t | ${version[$t]} | $b B | $(cell "${rps[$t,$b]}") | $c | $(cell "${p50[$t,$b]}") | $(cell "${p99[$t,$b]}") | ${sys[$t,$b]:-—} | ${sys_top[$t,$b]:-—} |"
    done
  done
  echo
  echo "Latency at a fixed request rate (open loop, \`bench/loadgen\`, $conns connections, counted from each request's intended send time):"
  echo
  echo "| target | body | rate (requests/s) | p50 ms | p99 ms | errors (all runs) |"
  echo "|---|---|---|---|---|---|"
  for b in "${bodies[@]}"; do
    [ -n "${fixed_rate[$b]:-}" ] || continue
    for t in "${targets[@]}"; do
      if [ -n "${ffail[$t,$b]:-}" ] || [ -z "${fp50[$t,$b]:-}" ]; then
        echo "| $t | $b B | ${fixed_rate[$b]} | failed | failed | — |"
      else
        echo "| $t | $b B | ${fixed_rate[$b]} | $(cell "${fp50[$t,$b]}") | $(cell "${fp99[$t,$b]}") | ${ferr[$t,$b]} |"
      fi
    done
  done
  echo
  echo "| target | RSS per idle keep-alive connection ($idle_conns connections) | peak RSS, ${bodies[${#bodies[@]}-1]} B bodies at full speed |"
  echo "|---|---|---|"
  for t in "${targets[@]}"; do
    [ "$t" != direct ] || continue
    echo "| $t | ${idle[$t]} | $((peak[$t] / 1024)) MiB |"
  done
} | tee "$out_file"
