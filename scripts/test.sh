#!/usr/bin/env bash
# The whole test suite, for a fresh Debian 12 machine with the Rust toolchain (the README's command).
# Installs what it needs (scripts/install-deps.sh: tshark, openssl, g++; scapy, pytest, cryptography), then runs:
# the workspace build, the unit and integration tests, a fuzz smoke over every target, and the Scapy/tshark
# interop suite. Idempotent, quick when everything is already installed. Exits non-zero on any failure.
#
# Environment: FUZZ_SECONDS (default 10) per fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== test.sh: %s\n' "$*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

step "installing what is missing"
bash scripts/install-deps.sh || die "installing dependencies failed"

failed=()
run() { # run NAME CMD...: runs a step, remembers its failure
    local name="$1"; shift
    step "$name: $*"
    "$@" || failed+=("$name")
}

step "build: cargo build --workspace --all-targets"
cargo build --workspace --all-targets || die "build failed"
if cargo nextest --version >/dev/null 2>&1; then
    run "unit tests" cargo nextest run --workspace --no-fail-fast
    run "doc tests" cargo test --workspace --doc
else
    run "unit tests" cargo test --workspace --no-fail-fast
fi
run "fuzz smoke" bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
run "interop" python3 -m pytest -q tests/interop
run "system (namespace lab)" python3 -m pytest -q tests/system

if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: build, unit tests, fuzz smoke and interop suite all passed"
