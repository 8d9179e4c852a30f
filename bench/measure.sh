#!/usr/bin/env bash
# Measures weir against nginx as a reverse proxy on this machine: CPU µs per request and
# syscalls per request at 64 keep-alive connections, one worker each.
#
# Layout (2 cores): the proxy under test is pinned to CPU 0; the origin (nginx serving a fixed
# body from memory) and the load generator (wrk) share CPU 1. Everything is on 127.0.0.1.
# CPU per request = Δ(utime+stime) of the proxy's process tree over a wrk run ÷ requests.
# Syscalls per request = every syscall of the proxy's process (all threads) over a separate,
# bounded wrk run, counted with bpftrace on the syscall tracepoints (at full speed), or with
# `strace -c -f` where bpftrace is missing (strace slows the proxy, so connection set-up
# weighs more per request).
#
# Usage: bench/measure.sh [seconds-per-run] [body-bytes]
# Environment: WEIR_BIN (a weir binary to measure instead of building this tree), WEIR_FLAGS (extra flags for weir, e.g. "--flow-trace all"), ONLY=weir (skip nginx
# and strace: one CPU-per-request line for weir), WEIR_ACCESS_LOG=1 (weir writes an access log
# in Envoy's default format to a file).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
body_bytes=${2:-100}
conns=64
work=$(mktemp -d /tmp/weir-bench.XXXX); chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -F "$work/origin.pid" 2>/dev/null || true; pkill -F "$work/proxy-nginx.pid" 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in wrk nginx strace taskset bpftrace; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light strace util-linux bpftrace >/dev/null || true; break; }
done
if [ -z "${WEIR_BIN:-}" ]; then
  cargo build --release -q -p weir
fi
weir=${WEIR_BIN:-${CARGO_TARGET_DIR:-target}/release/weir}

head -c "$body_bytes" /dev/zero | tr '\0' 'x' > "$work/body"
origin_port=18081; weir_port=18080; nginx_port=18082

cat > "$work/origin.conf" <<CONF
worker_processes 1; daemon on; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$origin_port reuseport; root $work;
    location / { default_type text/plain; try_files /body =404; } } }
CONF
cat > "$work/proxy-nginx.conf" <<CONF
worker_processes 1; daemon on; pid $work/proxy-nginx.pid; error_log $work/proxy-nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 128; }
  server { listen 127.0.0.1:$nginx_port; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
access_log=
if [ -n "${WEIR_ACCESS_LOG:-}" ]; then
  access_log="access_log: [ { name: envoy.access_loggers.file, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: $work/access.log } } ]"
fi
cat > "$work/weir.yaml" <<CONF
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $weir_port } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          $access_log
          route_config:
            virtual_hosts:
            - { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: origin } } ] }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: origin
    load_assignment: { cluster_name: origin, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $origin_port } } } } ] } ] }
CONF

taskset -c 1 nginx -c "$work/origin.conf"
# shellcheck disable=SC2086
taskset -c 0 "$weir" -c "$work/weir.yaml" --concurrency 1 --log-level warn ${WEIR_FLAGS:-} & weir_pid=$!
taskset -c 0 nginx -c "$work/proxy-nginx.conf"
sleep 1
nginx_pid=$(cat "$work/proxy-nginx.pid")
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

# Byte-exact check before measuring.
for port in $weir_port $nginx_port; do
  curl -fsS "http://127.0.0.1:$port/" | cmp -s - "$work/body" || { echo "proxy on $port returned wrong bytes" >&2; exit 1; }
done

cpu_ticks() { # utime+stime of a pid and its threads, in clock ticks
  awk '{print $14+$15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)
run() { # name pid port → "requests cpu_us_per_req rps"
  local name=$1 pid=$2 port=$3
  taskset -c 1 wrk -t1 -c$conns -d1s "http://127.0.0.1:$port/" >/dev/null  # warm up
  local t0; t0=$(cpu_ticks "$pid")
  local out; out=$(taskset -c 1 wrk -t1 -c$conns -d${secs}s "http://127.0.0.1:$port/")
  local t1; t1=$(cpu_ticks "$pid")
  local reqs; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$name requests=$reqs rps=$rps cpu_us_per_req=$(awk -v d=$((t1-t0)) -v hz=$hz -v r=$reqs 'BEGIN{printf "%.2f", d*1e6/hz/r}')"
}
syscalls() { # name pid port → syscalls per request, by name
  local name=$1 pid=$2 port=$3 out reqs
  # bpftrace needs tracefs for the syscall tracepoints.
  mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  if command -v bpftrace >/dev/null && [ -d /sys/kernel/tracing/events/syscalls ]; then
    bpftrace -e "tracepoint:syscalls:sys_enter_* /pid == $pid/ { @[probe] = count(); }" \
      > "$work/$name.bpf" 2>&1 & local bt=$!
    # Attaching to every syscall tracepoint takes a few seconds.
    for _ in $(seq 1 60); do grep -q Attaching "$work/$name.bpf" 2>/dev/null && break; sleep 0.5; done
    sleep 1
    out=$(taskset -c 1 wrk -t1 -c$conns -d${secs}s "http://127.0.0.1:$port/")
    kill -INT $bt; wait $bt 2>/dev/null || true
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    sed -n 's/^@\[tracepoint:syscalls:sys_enter_\(.*\)\]: \([0-9]*\)$/\1 \2/p' "$work/$name.bpf" > "$work/$name.counts"
    tool=bpftrace
  else
    strace -c -f -p "$pid" -o "$work/$name.strace" & local st=$!
    sleep 1
    out=$(taskset -c 1 wrk -t1 -c$conns -d3s "http://127.0.0.1:$port/")
    sleep 0.5; kill -INT $st; wait $st 2>/dev/null || true
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    awk 'NR>2 && $NF!="total" && NF>=5 && $1 !~ /^-/ {print $NF, $4}' "$work/$name.strace" > "$work/$name.counts"
    tool="strace -c"
  fi
  local total; total=$(awk '{s+=$2} END {print s}' "$work/$name.counts")
  echo "$name syscalls_per_req=$(awk -v s="$total" -v r="$reqs" 'BEGIN{printf "%.3f", s/r}') ($tool, $reqs requests)"
  sort -k2 -n -r "$work/$name.counts" | head -10 | awk -v r="$reqs" '{printf "    %-14s %.3f/req\n", $1, $2/r}'
}
if [ "${ONLY:-}" = weir ]; then
  run weir "$weir_pid" $weir_port
  exit 0
fi
echo "# $(date -u +%F) $(nproc) cores, body ${body_bytes} B, wrk -t1 -c$conns, ${secs}s runs; proxy on CPU 0, origin+wrk on CPU 1"
run weir "$weir_pid" $weir_port
run nginx "$nginx_worker" $nginx_port
syscalls weir "$weir_pid" $weir_port
syscalls nginx "$nginx_worker" $nginx_port
