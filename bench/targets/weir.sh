#!/usr/bin/env bash
# weir as a bench/run.sh target: one worker, upstream keep-alive (its default), no access log.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${WEIR_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/weir}"
case "$1" in
  install) [ -n "${WEIR_BIN:-}" ] || (cd "$root" && cargo build --release -q -p weir) ;;
  version) echo "weir $("$bin" --version | awk '{print $2}') ($(git -C "$root" rev-parse --short HEAD))" ;;
  start)
    port=$2 origin=$3 cpu=$4 work=$5
    cat > "$work/weir.yaml" <<CONF
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $port } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          route_config:
            virtual_hosts:
            - { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: origin } } ] }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: origin
    load_assignment: { cluster_name: origin, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $origin } } } } ] } ] }
CONF
    taskset -c "$cpu" "$bin" -c "$work/weir.yaml" --concurrency 1 --log-level warn >"$work/weir.log" 2>&1 &
    echo $! > "$work/weir.pid"
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat "$work/weir.pid" ;;
  stop) [ -f "$2/weir.pid" ] && kill "$(cat "$2/weir.pid")" 2>/dev/null || true ;;
esac
