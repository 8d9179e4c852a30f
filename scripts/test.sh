#!/usr/bin/env bash
# The test command (README and CI): installs what the tests need, then runs every test.
# The tests drive weir with real clients (curl) over 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v curl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq curl
fi
cargo test --workspace --locked "$@"
