#!/usr/bin/env bash
# The whole test suite, for a fresh Debian 12 machine with the Rust toolchain (the README's command).
# Installs what it needs (Debian: tshark, openssl, g++; PyPI: scapy, pytest, cryptography), then runs:
# the workspace build, the unit and integration tests, a fuzz smoke over every target, and the Scapy/tshark
# interop suite. Idempotent, quick when everything is already installed. Exits non-zero on any failure.
#
# Environment: FUZZ_SECONDS (default 10) per fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== test.sh: %s\n' "$*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

step "installing what is missing"
apt_packages=(tshark openssl g++)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q || die "apt-get update failed"
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || die "apt-get install ${missing[*]} failed"
fi
# `python3` on PATH (pyenv's on these machines) is the one the suite runs with.
python3 -c 'import scapy, pytest, cryptography' 2>/dev/null \
    || python3 -m pip install -q scapy pytest cryptography || die "pip install failed"
command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"

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

if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: build, unit tests, fuzz smoke and interop suite all passed"
