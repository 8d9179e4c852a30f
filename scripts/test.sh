#!/usr/bin/env bash
# The test command (README and CI): installs what the tests need, then runs every test.
# The tests drive weir with real clients over 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# curl drives weir in the proxy tests; headless Chromium draws the flow timeline
# (crates/weir/tests/flow_view.rs); promtool (Debian's prometheus) checks the Prometheus scrape
# (crates/weir/tests/admin.rs).
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
cargo test --workspace --locked "$@"
