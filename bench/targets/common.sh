# Sourced by the target scripts that manage a process tree themselves (sozu.sh, pingora.sh), by
# weir.sh and envoy.sh for the config they share, and by bench/run.sh and bench/trace-overhead.sh for the origin and the CPU count.

wait_port() { # pid port: wait until 127.0.0.1:port accepts, bounded to 20 s
  local pid=$1 port=$2 i
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

descendants() { # pid → the pid and all its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null); do descendants "$c"; done
}

wait_or_kill() { # pids…: wait up to 5 s for them to exit, then SIGKILL what is left
  local pids="$*" i p left
  for i in $(seq 1 50); do
    left=
    for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    pids=$left
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

start_origin() { # work port sizes…: the benches' origin, nginx on CPU 1 serving /bN (N bytes of x)
  local work=$1 port=$2 b
  shift 2
  for b in "$@"; do head -c "$b" /dev/zero | tr '\0' 'x' > "$work/b$b"; done
  cat > "$work/origin.conf" <<CONF
worker_processes 1; daemon off; pid $work/origin.pid; error_log $work/origin.err;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  open_file_cache max=16; sendfile off;
  server { listen 127.0.0.1:$port reuseport; root $work;
    location / { default_type application/octet-stream; } } }
CONF
  taskset -c 1 nginx -c "$work/origin.conf" >"$work/origin.out" 2>&1 &
  echo $! > "$work/origin.pid"
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}

cpu_ticks() { # pid → utime+stime (clock ticks) of its process tree
  local sum=0 p
  for p in $(descendants "$1"); do sum=$((sum + $(awk '{print $14+$15}' /proc/"$p"/stat 2>/dev/null || echo 0))); done
  echo $sum
}

proxy_config() { # port origin → the Envoy v3 config weir and Envoy both run: one listener, one route
  # The cluster lifts Envoy's default circuit breakers (1024 connections, pending and active
  # requests), which the idle-memory burst (9000 requests at once) trips in weir and Envoy alike;
  # nginx and HAProxy have no such limits. NO_BREAKERS=1 leaves the field out, for weir builds
  # older than circuit breakers (they refuse it).
  local breakers="    circuit_breakers: { thresholds: [ { max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000 } ] }"
  [ -z "${NO_BREAKERS:-}" ] || breakers=""
  cat <<CONF
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $1 } }
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
    load_assignment: { cluster_name: origin, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ] }
$breakers
CONF
}

proxy_tls_config() { # port origin cert key → proxy_config, its listener serving TLS 1.3 only (bench/tls.sh)
  # The filter chain gets a transport_socket (DownstreamTlsContext) next to its filters.
  proxy_config "$1" "$2" | awk -v cert="$3" -v key="$4" '
    /^    - filters:$/ && !done {
      print "    - transport_socket:"
      print "        name: envoy.transport_sockets.tls"
      print "        typed_config:"
      print "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
      print "          common_tls_context:"
      print "            tls_certificates:"
      print "            - { certificate_chain: { filename: " cert " }, private_key: { filename: " key " } }"
      print "            tls_params: { tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3 }"
      print "      filters:"
      done = 1; next
    }
    { print }'
}
