#!/usr/bin/env bash
# Rebuilds flow.bpf.o from flow.bpf.c with Debian's clang 14 (apt: clang-14 llvm-14 libbpf-dev).
# The object is committed so `cargo build` needs no clang; `build.sh --check` (run by .ci/run)
# rebuilds it into a temporary file and fails if it differs from the committed one.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v clang-14 >/dev/null 2>&1 || [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clang-14 llvm-14 libbpf-dev
fi
out=flow.bpf.o
[ "${1:-}" = "--check" ] && out=$(mktemp --suffix=.bpf.o)
# BTF line info records the compilation directory; pinning it to "." keeps the object the same
# wherever the repository is checked out.
clang-14 -O2 -g -fdebug-compilation-dir=. -target bpf -D__TARGET_ARCH_x86 -I"/usr/include/$(uname -m)-linux-gnu" \
  -c flow.bpf.c -o "$out"
llvm-strip-14 -g "$out"
if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$out" flow.bpf.o; then
    rm -f "$out"
    echo "crates/weir-ebpf/bpf/flow.bpf.o does not match flow.bpf.c: run crates/weir-ebpf/bpf/build.sh and commit" >&2
    exit 1
  fi
  rm -f "$out"
  echo "flow.bpf.o matches flow.bpf.c"
fi
