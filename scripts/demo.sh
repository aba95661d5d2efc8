#!/usr/bin/env bash
# The appliance's main job, for now: the hub's data plane in action. Until the daemon (dmvpnd) lands, this
# runs the hub pipeline over traffic that Scapy builds for two spokes and a LAN host, and shows what the hub
# did, with tshark decrypting the hub's ESP using the SAs. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p dataplane --bin dp-replay
python3 scripts/demo.py target/release/dp-replay
