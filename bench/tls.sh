#!/usr/bin/env bash
# weir against other reverse proxies with TLS 1.3 on the client side. The method is in
# bench/README.md ("TLS"); in short: as bench/run.sh (one worker pinned to CPU 0, a plain-HTTP
# nginx origin kept alive and the load generator on CPU 1, rotating order, medians with
# min–max), every proxy serving the same ECDSA P-256 certificate, generated for the run, TLS 1.3
# only. Four measurements:
#   1. keep-alive HTTPS (wrk): proxy CPU µs per request, 100 B and 4.5 KiB bodies;
#   2. full handshakes (bench/loadgen handshake … full): a new connection per request, no
#      resumption: handshakes per proxy CPU-second;
#   3. resumed handshakes (… resume): the same offering TLS 1.3 tickets, and the share resumed;
#   4. proxy RSS per idle TLS keep-alive connection (handshake and one request on each).
# Everything stays on 127.0.0.1 and every run is bounded in time and count.
#
# Usage: bench/tls.sh [--quick] [target…]
#   targets: weir envoy nginx haproxy (all four by default)
#   --quick: a smoke pass of seconds
# Environment: SECS (per run, 10), REPS (3), BODIES ("100 4608"), CONNS (wrk's connections, 64),
#   HS_CONC (handshake connections in flight, 16), IDLE_TLS_CONNS (2000), WEIR_BIN (the weir
#   binary; target/release/weir by default, built only if missing; either way the run uses a copy,
#   /tmp/weir-tls-bench-bin), OUT (the markdown table's file, bench/results/tls-latest.md), KEEP
#   (keep the work directory with the proxies' logs and configs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=bench/median.sh
. bench/median.sh
# shellcheck source=bench/targets/common.sh
. bench/targets/common.sh

quick=0
if [ "${1:-}" = --quick ]; then quick=1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(weir envoy nginx haproxy)
for t in "${targets[@]}"; do
  case $t in weir | envoy | nginx | haproxy) ;; *) echo "tls.sh: unknown target $t (weir envoy nginx haproxy)" >&2; exit 2 ;; esac
done
secs=${SECS:-10}; reps=${REPS:-3}; conns=${CONNS:-64}; hs_conc=${HS_CONC:-16}
idle_conns=${IDLE_TLS_CONNS:-2000}
read -r -a bodies <<< "${BODIES:-100 4608}"
if [ $quick = 1 ]; then secs=1; reps=1; bodies=(100); idle_conns=200; fi
[ "$idle_conns" -le 8000 ] || { echo "tls.sh: IDLE_TLS_CONNS is bounded to 8000" >&2; exit 2; }
out_file=${OUT:-bench/results/$([ $quick = 1 ] && echo tls-quick || echo tls-latest).md}

# What the runs need: Debian packages, then each target's own install.
need=()
for tool in wrk nginx curl taskset python3 openssl; do command -v $tool >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=(); for t in "${need[@]}"; do case $t in nginx) pkgs+=(nginx-light) ;; taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
weir_copy=/tmp/weir-tls-bench-bin
for t in "${targets[@]}"; do
  if [ "$t" = weir ]; then
    # The workspace may be rebuilt while this runs: run a copy of the binary, never the original.
    src=${WEIR_BIN:-$root/target/release/weir}
    if [ ! -x "$src" ]; then
      [ -z "${WEIR_BIN:-}" ] || { echo "tls.sh: WEIR_BIN=$WEIR_BIN is not an executable" >&2; exit 1; }
      nice cargo build --release -q -p weir
    fi
    cp -pf "$src" "$weir_copy.new" && mv -f "$weir_copy.new" "$weir_copy"
    export WEIR_BIN=$weir_copy
  fi
  bench/targets/"$t".sh install
done
# The handshake client: bench/loadgen's `handshake` mode (rustls).
loadgen_dir=bench/.tools/loadgen
CARGO_TARGET_DIR=$loadgen_dir nice cargo build --release --locked -q --manifest-path bench/loadgen/Cargo.toml
loadgen=$loadgen_dir/release/weir-bench-loadgen

work=$(mktemp -d /tmp/weir-tls-bench.XXXX); chmod 755 "$work"
idler=
cleanup() {
  [ -z "$idler" ] || kill "$idler" 2>/dev/null || true
  for t in "${targets[@]}"; do bench/targets/"$t".sh stop "$work/$t" 2>/dev/null || true; done
  if [ -f "$work/origin.pid" ]; then kill "$(cat "$work/origin.pid")" 2>/dev/null || true; fi
  # shellcheck disable=SC2046 # one pid per word
  kill $(jobs -p) 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "tls.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The certificate every proxy serves: ECDSA P-256, self-signed for localhost and 127.0.0.1.
cert=$work/cert.pem key=$work/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$key" -out "$cert" 2>/dev/null
chmod 600 "$key"

# The origin: plain-HTTP nginx, one worker on CPU 1, fixed bodies (the handshakes fetch 100 B).
origin_port=18300
start_origin "$work" $origin_port "${bodies[@]}" 100

declare -A port pid version
start_target() { # target: (re)start it serving TLS on its port, record its pid
  local t=$1
  mkdir -p "$work/$t"
  pid[$t]=$(bench/targets/"$t".sh start-tls "${port[$t]}" $origin_port 0 "$work/$t" "$cert" "$key")
  kill -0 "${pid[$t]}" 2>/dev/null || { echo "tls.sh: $t did not start" >&2; exit 1; }
}
stop_target() { # target: stop it and wait until its whole process tree is gone
  local t=$1 all
  all=$(descendants "${pid[$t]}")
  bench/targets/"$t".sh stop "$work/$t" || true
  # shellcheck disable=SC2086 # one pid per word
  wait_or_kill $all
}
i=0
for t in "${targets[@]}"; do
  port[$t]=$((18310 + i)); i=$((i + 1))
  start_target "$t"
  version[$t]=$(bench/targets/"$t".sh version)
done
# weir.sh names HEAD, which the copied binary need not have been built from: say when it was built.
[ -z "${pid[weir]:-}" ] || version[weir]="weir $("$weir_copy" --version | awk '{print $2}'), built $(date -u -r "$weir_copy" '+%F %H:%M') UTC (HEAD was $(git rev-parse --short HEAD))"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
https() { # target path [curl options…]: the body over TLS 1.3, verified against the certificate
  local t=$1 p=$2
  shift 2
  curl -fsS --max-time 10 --cacert "$cert" --resolve "localhost:${port[$t]}:127.0.0.1" "$@" "https://localhost:${port[$t]}$p"
}
for t in "${targets[@]}"; do
  for b in "${bodies[@]}"; do
    https "$t" "/b$b" --tlsv1.3 | cmp -s - "$work/b$b" ||
      { echo "$t returned wrong bytes for a $b-byte body over TLS" >&2; exit 1; }
  done
  if https "$t" /b100 --tlsv1.2 --tls-max 1.2 >/dev/null 2>&1; then
    echo "$t accepted TLS 1.2; the bench wants TLS 1.3 only" >&2; exit 1
  fi
done

rss_kib() { # resident set of a process tree, kB
  local sum=0 p
  for p in $(descendants "$1"); do sum=$((sum + $(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0))); done
  echo $sum
}
hz=$(getconf CLK_TCK)
alive() { # target: fails (with a note) if the proxy is gone
  kill -0 "${pid[$1]}" 2>/dev/null && return 0
  echo "tls.sh: $1 exited during the run (log: $(tail -3 "$work/$1"/*.log 2>/dev/null | tr '\n' ' '))" >&2
  return 1
}

# 1. Keep-alive HTTPS: wrk over TLS (its connections handshake once, then carry requests).
declare -A rps cpu kerr
keepalive() { # target body
  local t=$1 b=$2 url="https://127.0.0.1:${port[$1]}/b$2" t0 t1 out reqs e
  taskset -c 1 wrk -t1 -c"$conns" -d1s "$url" >/dev/null # warm-up
  t0=$(cpu_ticks "${pid[$t]}")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "$url")
  t1=$(cpu_ticks "${pid[$t]}")
  alive "$t"
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  e=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}')
  kerr[$t,$b]=$(( ${kerr[$t,$b]:-0} + e ))
  rps[$t,$b]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
  cpu[$t,$b]+="$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN{printf "%.2f", d*1e6/hz/r}') "
  echo "  $t ${b} B keep-alive: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(echo "${cpu[$t,$b]}" | awk '{print $NF}') CPU µs/request" >&2
}

# 2 and 3. Handshakes: bench/loadgen opens a connection per request (1 s warm-up in the same
# process, so that the resumed runs start with tickets) and reads the proxy's CPU itself over the
# measured seconds.
declare -A hs_per_cpu hs_us hs_rate hs_busy hs_err hs_resumed hs_fail hs_kx
handshakes() { # target full|resume
  local t=$1 mode=$2 out pids c ticks
  pids=$(descendants "${pid[$t]}" | paste -sd,)
  if ! out=$(taskset -c 1 "$loadgen" handshake "127.0.0.1:${port[$t]}" /b100 "$hs_conc" 1 "$secs" "$cert" "$mode" "$pids" 2>&1); then
    echo "  $t $mode handshakes failed: $out" >&2
    hs_fail[$t,$mode]=${out//|/\/}
    return 0
  fi
  alive "$t"
  c=$(echo "$out" | sed -n 's/.*completed=\([0-9]*\).*/\1/p')
  ticks=$(echo "$out" | sed -n 's/.*cpu_ticks=\([0-9]*\).*/\1/p')
  hs_per_cpu[$t,$mode]+="$(awk -v c="$c" -v d="$ticks" -v hz="$hz" 'BEGIN{v = 0; if (d > 0) v = c * hz / d; printf "%.0f", v}') "
  hs_us[$t,$mode]+="$(awk -v c="$c" -v d="$ticks" -v hz="$hz" 'BEGIN{printf "%.1f", d*1e6/hz/c}') "
  hs_rate[$t,$mode]+="$(echo "$out" | sed -n 's/.* rate=\([0-9]*\).*/\1/p') "
  # How busy the proxy was: below 100 % the client (on CPU 1 with the origin) set the pace.
  hs_busy[$t,$mode]+="$(awk -v d="$ticks" -v hz="$hz" -v s="$secs" 'BEGIN{printf "%.0f", d * 100 / hz / s}') "
  hs_err[$t,$mode]=$(( ${hs_err[$t,$mode]:-0} + $(echo "$out" | sed -n 's/.*errors=\([0-9]*\).*/\1/p') ))
  hs_resumed[$t,$mode]+="$(echo "$out" | awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]} printf "%.3f", v["resumed"] / v["completed"]}') "
  hs_kx[$t]=$(echo "$out" | sed -n 's/.*suite=\([^ ]*\) group=\([^ ]*\).*/\1, \2/p')
  echo "  $t $mode handshakes: $out" >&2
}

# 4. Memory per idle TLS keep-alive connection: a fresh proxy each time (memory freed by an
# earlier run would otherwise be reused), IDLE_TLS_CONNS clients that handshake (full), send one
# request and read its answer, then hold the connection idle.
declare -A idle idle_fail
idle_run() { # target
  local t=$1 before after
  stop_target "$t"
  start_target "$t"
  https "$t" /b100 >/dev/null
  sleep 0.5
  before=$(rss_kib "${pid[$t]}")
  rm -f "$work/idle.$t" "$work/idle.$t.failed"
  python3 bench/idle.py "${port[$t]}" "$idle_conns" "$work/idle.$t" "$cert" 60 &
  idler=$!
  for _ in $(seq 1 600); do [ -f "$work/idle.$t" ] || [ -f "$work/idle.$t.failed" ] && break; sleep 0.1; done
  sleep 1
  after=$(rss_kib "${pid[$t]}")
  kill "$idler" 2>/dev/null || true; wait "$idler" 2>/dev/null || true; idler=
  alive "$t"
  if [ -f "$work/idle.$t" ]; then
    idle[$t]+="$(awk -v a="$after" -v b="$before" -v n="$idle_conns" 'BEGIN{printf "%.0f", (a - b) * 1024 / n}') "
    echo "  $t idle TLS: $(echo "${idle[$t]}" | awk '{print $NF}') B per connection" >&2
  else
    idle_fail[$t]="failed ($(cat "$work/idle.$t.failed" 2>/dev/null || echo "no answer in 60 s"))"
    echo "  $t idle TLS: ${idle_fail[$t]}" >&2
  fi
}

n=${#targets[@]}
echo "measuring ${targets[*]} over TLS 1.3: ${reps} × (${#bodies[@]} keep-alive bodies, full and resumed handshakes, idle connections) × ${secs} s" >&2
for ((r = 0; r < reps; r++)); do
  for b in "${bodies[@]}"; do
    for ((j = 0; j < n; j++)); do keepalive "${targets[$(((r + j) % n))]}" "$b"; done
  done
  for mode in full resume; do
    for ((j = 0; j < n; j++)); do handshakes "${targets[$(((r + j) % n))]}" $mode; done
  done
done
for ((r = 0; r < reps; r++)); do
  for ((j = 0; j < n; j++)); do idle_run "${targets[$(((r + j) % n))]}"; done
done

# The table, then weir against the best of the others (the goals in bench/README.md).
cell() { local m lo hi; read -r m lo hi < <(median_min_max "$1"); echo "$m ($lo–$hi)"; }
med() { median_min_max "$1" | awk '{print $1}'; }
mkdir -p "$(dirname "$out_file")"
{
  echo "Measured $(date -u +%F) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)."
  echo "TLS 1.3 only, one ECDSA P-256 certificate for all; one worker per proxy on CPU 0; plain-HTTP nginx origin (kept alive) and the client on CPU 1;"
  echo "$reps runs of ${secs} s per cell in rotating order: median (min–max). CPU is Δ(utime+stime) of the proxy's process tree over the measured seconds."
  echo "Load average (1, 5, 15 min) at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)."
  echo
  echo "Keep-alive HTTPS (\`wrk -t1 -c$conns\`, OpenSSL client):"
  echo
  echo "| target | version | body | requests/s | CPU µs/request | errors (all runs) |"
  echo "|---|---|---|---|---|---|"
  for b in "${bodies[@]}"; do
    for t in "${targets[@]}"; do
      echo "| $t | ${version[$t]} | $b B | $(cell "${rps[$t,$b]}") | $(cell "${cpu[$t,$b]}") | ${kerr[$t,$b]:-0} |"
    done
  done
  echo
  echo "Handshakes: a new TLS connection per request (\`bench/loadgen handshake\`, rustls client, X25519, $hs_conc in flight), one GET of 100 B, close_notify, close."
  echo "Where the proxy is less than 100 % busy, the client (on CPU 1 with the origin) set the pace; the per-CPU-second figures do not depend on it."
  echo "Full: no session offered. Resumed: the client offers a TLS 1.3 ticket from the proxy's earlier connections (psk_dhe_ke); \"resumed\" is the share the proxy accepted (rustls' handshake_kind)."
  echo
  echo "| target | negotiated | full: handshakes per CPU-second | full: CPU µs/handshake | full: handshakes/s | full: proxy CPU busy % | resumed: handshakes per CPU-second | resumed: CPU µs/handshake | resumed: handshakes/s | resumed: proxy CPU busy % | resumed share | errors (full / resumed) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for t in "${targets[@]}"; do
    row="| $t | ${hs_kx[$t]:-—} |"
    for mode in full resume; do
      if [ -n "${hs_fail[$t,$mode]:-}" ] || [ -z "${hs_us[$t,$mode]:-}" ]; then
        row+=" failed | failed | failed | — |"
        [ $mode = full ] || row+=" — |"
      else
        row+=" $(cell "${hs_per_cpu[$t,$mode]}") | $(cell "${hs_us[$t,$mode]}") | $(cell "${hs_rate[$t,$mode]}") | $(med "${hs_busy[$t,$mode]}") |"
        if [ $mode = resume ]; then
          share=$(med "${hs_resumed[$t,$mode]}")
          if awk -v s="$share" 'BEGIN{exit !(s < 0.01)}'; then row+=" **none: does not resume** |"
          else row+=" $(awk -v s="$share" 'BEGIN{printf "%.1f %%", s * 100}') |"; fi
        fi
      fi
    done
    row+=" ${hs_err[$t,full]:-0} / ${hs_err[$t,resume]:-0} |"
    echo "$row"
  done
  echo
  echo "| target | RSS per idle TLS keep-alive connection ($idle_conns connections, fresh proxy each run) |"
  echo "|---|---|"
  for t in "${targets[@]}"; do
    if [ -n "${idle_fail[$t]:-}" ]; then echo "| $t | ${idle_fail[$t]} |"; else echo "| $t | $(cell "${idle[$t]}") B |"; fi
  done
  # weir against the best peer, on medians.
  peers=(); for t in "${targets[@]}"; do [ "$t" = weir ] || peers+=("$t"); done
  if [ -n "${pid[weir]:-}" ] && [ ${#peers[@]} -gt 0 ]; then
    echo
    echo "weir against the best of ${peers[*]} (medians):"
    echo
    echo "| figure | weir | best peer | weir ÷ best | goal | met |"
    echo "|---|---|---|---|---|---|"
    ratio_row() { # label weir-value "peer value…" lower|higher goal-ratio unit
      local label=$1 w=$2 vals=$3 dir=$4 goal=$5 best bt
      [ -n "$w" ] || { echo "| $label | — | — | — | — | — |"; return; }
      if [ "$dir" = lower ]; then best=$(echo "$vals" | tr ' ' '\n' | grep -v '^$' | sort -t: -k2 -g | head -1)
      else best=$(echo "$vals" | tr ' ' '\n' | grep -v '^$' | sort -t: -k2 -g | tail -1); fi
      [ -n "$best" ] || { echo "| $label | $w | — | — | — | — |"; return; }
      bt=${best%%:*}; best=${best#*:}
      awk -v l="$label" -v w="$w" -v b="$best" -v bt="$bt" -v d="$dir" -v g="$goal" 'BEGIN {
        if (b == 0) { printf "| %s | %s | %s (%s) | — | — | — |\n", l, w, b, bt; exit }
        r = w / b; met = (d == "lower") ? (r <= g) : (r >= g)
        printf "| %s | %s | %s (%s) | %.2f | %s %s | %s |\n", l, w, b, bt, r, (d == "lower" ? "≤" : "≥"), g, met ? "yes" : "**no**" }'
    }
    for b in "${bodies[@]}"; do
      vals=""; for t in "${peers[@]}"; do [ -z "${cpu[$t,$b]:-}" ] || vals+="$t:$(med "${cpu[$t,$b]}") "; done
      ratio_row "keep-alive CPU µs/request, $b B" "$(med "${cpu[weir,$b]}")" "$vals" lower 0.8
    done
    for mode in full resume; do
      vals=""; for t in "${peers[@]}"; do [ -z "${hs_per_cpu[$t,$mode]:-}" ] || vals+="$t:$(med "${hs_per_cpu[$t,$mode]}") "; done
      w=""; [ -z "${hs_per_cpu[weir,$mode]:-}" ] || w=$(med "${hs_per_cpu[weir,$mode]}")
      ratio_row "$([ $mode = full ] && echo full || echo resumed) handshakes per CPU-second" "$w" "$vals" higher 1.25
    done
    vals=""; for t in "${peers[@]}"; do [ -z "${idle[$t]:-}" ] || vals+="$t:$(med "${idle[$t]}") "; done
    w=""; [ -z "${idle[weir]:-}" ] || w=$(med "${idle[weir]}")
    ratio_row "bytes per idle TLS connection" "$w" "$vals" lower 1
  fi
} | tee "$out_file"
