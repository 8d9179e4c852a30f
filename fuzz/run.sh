#!/usr/bin/env bash
# Builds one fuzz target and runs it for a bounded time, then prints how many inputs it ran.
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer args...]
#
# Stable Rust only: cargo-fuzz with `--sanitizer none`. One process, one job. The corpus grows in
# fuzz/corpus/TARGET (not in git), seeded from fuzz/seeds/TARGET (in git); a crash lands in
# fuzz/artifacts/TARGET/ and the run exits non-zero. The log is fuzz/artifacts/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer args...]" >&2
  echo "targets: request_decoder response_decoder chunked_decoder route_matcher config_loader" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

# Release with debug assertions and overflow checks (cargo-fuzz's default), no sanitizer: the
# code under test has no `unsafe` (the workspace denies it; the glibc calls in weir-proxy's
# memory.rs are not reached by the targets), and -Zsanitizer needs nightly.
cargo fuzz build --sanitizer none --target-dir "$CARGO_TARGET_DIR" "$target"

extra=()
seeds=()
case "$target" in
  request_decoder | response_decoder | chunked_decoder)
    extra+=(-dict=dicts/http.dict)
    ;;
  config_loader)
    extra+=(-dict=dicts/yaml.dict -max_len=16384)
    seeds+=(../examples configs)
    ;;
esac
[ -d "seeds/$target" ] && seeds+=("seeds/$target")

mkdir -p "corpus/$target" "artifacts/$target"
log="artifacts/$target.log"
start=$(date +%s)
status=0
# No -jobs/-workers: one process. -timeout catches hangs (an input that takes over 10 s).
cargo fuzz run --sanitizer none --target-dir "$CARGO_TARGET_DIR" "$target" \
  "corpus/$target" "${seeds[@]}" -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
  -artifact_prefix="artifacts/$target/" "${extra[@]}" "$@" \
  >"$log" 2>&1 || status=$?
end=$(date +%s)

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
coverage=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/' || true)
echo "target:     $target"
echo "wall time:  $((end - start)) s"
echo "executions: ${execs:-unknown}"
echo "coverage:   ${coverage:-unknown}"
echo "corpus:     $(find "corpus/$target" -type f | wc -l) files"
if [ "$status" -ne 0 ]; then
  echo "FAILED (exit $status): see $log" >&2
  grep -E '^(==[0-9]+== ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" >&2 || true
  exit "$status"
fi
