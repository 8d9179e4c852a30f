#!/usr/bin/env bash
# nginx as a bench/run.sh target: one worker, an upstream keepalive pool, no access log.
set -euo pipefail
case "$1" in
  install) command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } ;;
  version) nginx -v 2>&1 | sed 's|nginx version: nginx/|nginx |' ;;
  start|start-tls) # start-tls LISTEN ORIGIN CPU WORKDIR CERT KEY: TLS 1.3 only, tickets and a shared session cache (bench/tls.sh)
    port=$2 origin=$3 cpu=$4 work=$5 tls=
    if [ "$1" = start-tls ]; then
      tls="ssl_certificate $6; ssl_certificate_key $7; ssl_protocols TLSv1.3;
    ssl_session_cache shared:bench:10m; ssl_session_tickets on;"
    fi
    cat > "$work/nginx-proxy.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-proxy.pid; error_log $work/nginx-proxy.err;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  upstream origin { server 127.0.0.1:$origin; keepalive 128; }
  server { listen 127.0.0.1:$port${tls:+ ssl}; $tls
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
    taskset -c "$cpu" nginx -c "$work/nginx-proxy.conf" >"$work/nginx.out" 2>&1 &
    echo $! > "$work/nginx.pid"
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat "$work/nginx.pid" ;;
  stop) [ -f "$2/nginx.pid" ] && kill "$(cat "$2/nginx.pid")" 2>/dev/null || true ;;
esac
