#!/usr/bin/env bash
# Runs every cargo-fuzz target of the Rust core for a while: `fuzz/rust.sh SECONDS [TARGET...]`
# (`make fuzz-rust`). The Rust counterpart of fuzz/ci.py.
#
# Installs cargo-fuzz (pinned) when it is missing, builds the targets in fuzz/ once, then runs
# each from a copy of its seeds in tests/data/fuzz-rust/TARGET/ (the stored corpus is never
# changed) for SECONDS. A crash (panic, overflow, out-of-bounds index, failed assertion,
# allocation failure), a timeout or an RSS over the limit fails the run and leaves the input
# in fuzz-artifacts/rust-TARGET-*: store it in tests/data/fuzz-rust/TARGET/ with the fix.
# Prints each target's executions, then "fuzz-rust: N passed, M failed".
#
# Stable Rust: `--sanitizer none` needs no nightly flag (the coverage instrumentation that
# libFuzzer uses is a stable codegen option). Safe Rust needs no AddressSanitizer to turn a
# bad index into a crash: bounds and overflow checks (`--debug-assertions`) panic, and a panic
# aborts the fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TARGETS_ALL=(wal_scan wal_roundtrip ann_from_bytes ann_roundtrip kernels)
# The same flags for build and run, or `cargo fuzz run` rebuilds.
FLAGS=(--fuzz-dir fuzz --sanitizer none --release --debug-assertions)

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/rust.sh SECONDS [TARGET...]  (targets: ${TARGETS_ALL[*]})" >&2
    exit 2
fi
seconds=$1
shift
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${TARGETS_ALL[@]}")

start=$SECONDS
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
installed=$SECONDS
cargo fuzz build "${FLAGS[@]}"
echo "fuzz-rust: cargo-fuzz ready in $((installed - start)) s, targets built in $((SECONDS - installed)) s"

mkdir -p fuzz-artifacts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    cp tests/data/fuzz-rust/"$target"/* "$corpus"/
    # -timeout: one input taking 30 s is a hang. -rss_limit_mb: memory that input can make
    # the decoder allocate is a bug too. The later -artifact_prefix overrides cargo-fuzz's.
    status=0
    cargo fuzz run "${FLAGS[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz-artifacts/rust-$target-" >"$work/$target.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -n 1)
    echo "fuzz-rust $target: ${runs:-?} executions, exit $status"
    if [[ $status -eq 0 ]]; then
        passed=$((passed + 1))
    else
        tail -n 60 "$work/$target.log" >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz-rust: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
