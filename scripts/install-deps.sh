#!/usr/bin/env bash
# Installs what the demo and the test suite need on a fresh Debian 12 machine with the Rust toolchain:
# Debian's tshark, openssl and g++, DPDK 22.11 with pkg-config and libclang (dpdk-sys builds against
# them), strongSwan (charon, swanctl, pki and the openssl/gcm plugins: the IKEv2 interop peer), and
# Scapy, pytest and cryptography for the `python3` on PATH.
# Quick when everything is already there. Sourced by test.sh and demo.sh.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
apt_packages=(tshark openssl g++ dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev nftables conntrack ethtool iputils-ping
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins strongswan-pki)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q || { echo "install-deps: apt-get update failed" >&2; exit 1; }
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null \
        || { echo "install-deps: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
# `python3` on PATH (pyenv's on these machines) is the one the suite and the demo run with.
python3 -c 'import scapy, pytest, cryptography, openapi_spec_validator, schemathesis, prometheus_client, requests' \
    2>/dev/null \
    || python3 -m pip install -q scapy pytest cryptography openapi-spec-validator schemathesis prometheus_client \
        requests \
    || { echo "install-deps: pip install failed" >&2; exit 1; }
command -v cargo >/dev/null || { echo "install-deps: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
