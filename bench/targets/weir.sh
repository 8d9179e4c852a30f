#!/usr/bin/env bash
# weir as a bench/run.sh target: one worker, upstream keep-alive (its default), no access log.
set -euo pipefail
# shellcheck source=bench/targets/common.sh
. "$(dirname "$0")/common.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${WEIR_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/weir}"
case "$1" in
  install) [ -n "${WEIR_BIN:-}" ] || (cd "$root" && cargo build --release -q -p weir) ;;
  version) echo "weir $("$bin" --version | awk '{print $2}') ($(git -C "$root" rev-parse --short HEAD))" ;;
  start|start-tls) # start-tls LISTEN ORIGIN CPU WORKDIR CERT KEY: the listener serves TLS 1.3 only (bench/tls.sh)
    port=$2 origin=$3 cpu=$4 work=$5
    if [ "$1" = start-tls ]; then proxy_tls_config "$port" "$origin" "$6" "$7"; else proxy_config "$port" "$origin"; fi > "$work/weir.yaml"
    taskset -c "$cpu" "$bin" -c "$work/weir.yaml" --concurrency 1 --log-level warn >"$work/weir.log" 2>&1 &
    echo $! > "$work/weir.pid"
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat "$work/weir.pid" ;;
  stop) [ -f "$2/weir.pid" ] && kill "$(cat "$2/weir.pid")" 2>/dev/null || true ;;
esac
