#!/usr/bin/env bash
# The appliance's main job: a DMVPN in network namespaces. Builds dmvpnd and dmvpnctl, then lab/dmvpnlab.py
# brings up a hub, two ISP routers and three spokes (our dmvpnd on DPDK af_packet vdevs, IKEv2 PSK), prints
# the hub's `show dmvpn`, pings LAN to LAN between spokes, shows the Phase 3 shortcut forming (first packets
# via the hub, then direct), and tears everything down. Installs what it needs first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p mgmt --features dpdk --bin dmvpnd --bin dmvpnctl
python3 lab/dmvpnlab.py
