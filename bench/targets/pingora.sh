#!/usr/bin/env bash
# Pingora as a bench/run.sh target: the minimal proxy in bench/pingora-proxy (pinned pingora
# version in its Cargo.toml / Cargo.lock). See bench/targets/README-sozu-pingora.md.
#   pingora.sh install | version | start LISTEN_PORT ORIGIN_PORT CPU WORKDIR | stop WORKDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
crate=$root/bench/pingora-proxy
tools=$root/bench/.tools
bin=$tools/bin/weir-bench-pingora

die() { echo "pingora.sh: $*" >&2; exit 1; }
# shellcheck source=bench/targets/common.sh
. "$(dirname "$0")/common.sh"

cmd_install() {
  command -v cargo >/dev/null || die "cargo not found (needed to build bench/pingora-proxy)"
  command -v cc >/dev/null || die "a C compiler (cc) is needed to build pingora's C dependencies"
  # pingora-core always builds zlib-ng (flate2's zlib-ng feature) through cmake.
  if ! command -v cmake >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake; } \
      >/dev/null 2>&1 || true
    command -v cmake >/dev/null || die "cmake is needed to build pingora (apt-get install cmake)"
  fi
  mkdir -p "$tools/bin"
  # Own target dir unless the caller chose one (CARGO_TARGET_DIR, CARGO_BUILD_JOBS are honoured).
  local target=${CARGO_TARGET_DIR:-$tools/target} log=$tools/pingora-build.log
  if ! CARGO_TARGET_DIR=$target cargo build --release --locked \
      --manifest-path "$crate/Cargo.toml" >"$log" 2>&1; then
    tail -20 "$log" >&2
    die "building bench/pingora-proxy failed (full log: $log)"
  fi
  cp -f "$target/release/weir-bench-pingora" "$bin.new" && mv -f "$bin.new" "$bin"
}

cmd_version() {
  [ -x "$bin" ] || die "not installed (run: $0 install)"
  local v
  v=$(awk '/^name = "pingora"$/ {getline; gsub(/"/, "", $3); print $3; exit}' "$crate/Cargo.lock")
  echo "pingora $v"
}

cmd_start() {
  [ $# -eq 4 ] || die "usage: $0 start LISTEN_PORT ORIGIN_PORT CPU WORKDIR"
  local listen=$1 origin=$2 cpu=$3 work=$4
  [ -x "$bin" ] || die "not installed (run: $0 install)"
  mkdir -p "$work"
  work=$(cd "$work" && pwd)
  # No config file: everything is set in code (threads: 1, no access log, default upstream pool).
  taskset -c "$cpu" "$bin" "$listen" "$origin" "$work" </dev/null >"$work/pingora.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$work/pingora.main.pid"
  if ! wait_port "$pid" "$listen"; then
    tail -20 "$work/pingora.log" >&2 || true
    cmd_stop "$work"
    die "pingora did not accept connections on 127.0.0.1:$listen within 20 s"
  fi
  echo "$pid"
}

cmd_stop() {
  [ $# -eq 1 ] || die "usage: $0 stop WORKDIR"
  local f=$1/pingora.main.pid pid pids
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    pids=$(descendants "$pid")
    # SIGINT is Pingora's fast shutdown (SIGTERM is graceful, SIGQUIT is upgrade).
    kill -INT $pids 2>/dev/null || true
    wait_or_kill $pids
  fi
  rm -f "$f"
}

case "${1:-}" in
  install) cmd_install ;;
  version) cmd_version ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: $0 install | version | start LISTEN_PORT ORIGIN_PORT CPU WORKDIR | stop WORKDIR" ;;
esac
