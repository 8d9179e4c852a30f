#!/usr/bin/env bash
# HAProxy as a bench/run.sh target: one thread, server-side keep-alive (http-reuse always), no log.
set -euo pipefail
case "$1" in
  install) command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; } ;;
  version) haproxy -v | awk 'NR == 1 {print "haproxy " $3}' ;;
  start|start-tls) # start-tls LISTEN ORIGIN CPU WORKDIR CERT KEY: TLS 1.3 only (bench/tls.sh)
    port=$2 origin=$3 cpu=$4 work=$5 tls=
    if [ "$1" = start-tls ]; then
      cat "$6" "$7" > "$work/haproxy-combined.pem"
      tls=" ssl crt $work/haproxy-combined.pem ssl-min-ver TLSv1.3"
    fi
    cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  # 2 × maxconn descriptors must fit the hard limit (20,000 in this container).
  maxconn 9500
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  option http-keep-alive
  http-reuse always
frontend bench
  bind 127.0.0.1:$port$tls
  default_backend origin
backend origin
  server o1 127.0.0.1:$origin
CONF
    taskset -c "$cpu" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
    echo $! > "$work/haproxy.pid"
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat "$work/haproxy.pid" ;;
  stop) [ -f "$2/haproxy.pid" ] && kill "$(cat "$2/haproxy.pid")" 2>/dev/null || true ;;
esac
