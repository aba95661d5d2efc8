#!/usr/bin/env python3
"""IKE responder benchmark: IKE_SA + CHILD_SA setups per second per core, our engine against strongSwan's
charon, in one run on one machine, driven by one load generator.

For each DH group (19 = ecp256, 31 = x25519; PSK, AES-GCM-16-128, PRF HMAC-SHA-256):
1. `ike-peer --quiet` (our engine as responder) in one namespace, `ike-load` (our engine as initiator,
   emulating COUNT distinct peers `spoke-N`, CONCURRENCY at a time) in the other;
2. charon as responder in the second namespace (kernel-libipsec, so each CHILD SA is really
   installed; logging off; its IKE SA table sized for the load; COOKIEs (`dos_protection`) and the
   per-IP half-open limit off so that they do not throttle the generator), `ike-load` in the first.

The responder's cost is its CPU time (utime + stime of the whole process, all threads, from
/proc/PID/stat) over the run, not wall time: the machine's cores are shared, and the generator runs
beside the responder. setups per CPU-second is the rate of one core kept busy.

    sudo python3 perf/ike-bench.py [--count 1000] [--concurrency 32] [--groups ecp256,x25519] [--json F]

Needs root, strongSwan (scripts/install-deps.sh) and the release binaries (built if missing).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/interop"))
import ikelab  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def binary(name: str) -> Path:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "perf", "--bin", name], cwd=ROOT, check=True)
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / name


def find_pid(root_pid: int, comm: str) -> int:
    """The process named `comm` at or below `root_pid` (`ip netns exec`, `unshare` and `sh` exec it)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        todo = [root_pid]
        while todo:
            pid = todo.pop()
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    return pid
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"no process {comm} under {root_pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def load(lab, ns: str, local: str, target: str, group: str, args) -> dict:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, str(binary("ike-load")), "--local", local, "--target", target,
         "--psk", ikelab.PSK, "--count", str(args.count), "--concurrency", str(args.concurrency),
         "--ike", f"aes128gcm16-prfsha256-{group}", "--esp", "aes128gcm16-noesn", "--remote-id", "hub",
         "--timeout", "30"],
        check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(pid: int, run) -> dict:
    before = cpu_seconds(pid)
    result = run()
    cpu = cpu_seconds(pid) - before
    result["cpu_s"] = cpu
    result["per_core_s"] = result["up"] / cpu if cpu > 0 else float("inf")
    return result


CHARON_SETTINGS = """
  ikesa_table_size = 4096
  ikesa_table_segments = 16
  dos_protection = no
  block_threshold = 1000000
  init_limit_half_open = 0
"""


def charon_conn(groups: str) -> str:
    return f"""
  bench {{
    version = 2
    encap = yes
    local_addrs = {ikelab.THEM}
    remote_addrs = %any
    proposals = aes128gcm16-prfsha256-{groups}
    local {{
      auth = psk
      id = hub
    }}
    remote {{
      auth = psk
    }}
    children {{
      gre {{
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = tunnel
        esp_proposals = aes128gcm16-noesn
      }}
    }}
  }}"""


def run(args) -> dict:
    groups = args.groups.split(",")
    results = {}
    for group in groups:
        lab = ikelab.Lab()
        try:
            peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK, "--quiet", "--no-dpd",
                                  "--ike", f"aes128gcm16-prfsha256-{group}", "--esp", "aes128gcm16-noesn")
            pid = find_pid(peer.proc.pid, "ike-peer")
            ours = measure(pid, lambda: load(lab, lab.ns_them, ikelab.THEM, ikelab.US, group, args))
            peer.stop()
            lab.start_charon(charon_conn(group), settings=CHARON_SETTINGS, log_level=0)
            pid = find_pid(lab.charon.pid, "charon")
            charon = measure(pid, lambda: load(lab, lab.ns_us, ikelab.US, ikelab.THEM, group, args))
        finally:
            lab.close()
        results[group] = {"ours": ours, "charon": charon, "ratio": ours["per_core_s"] / charon["per_core_s"]}
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--groups", default="ecp256,x25519")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = run(args)
    print(f"{'group':8} {'responder':9} {'up':>6} {'failed':>6} {'cpu s':>7} {'wall s':>7} {'setups/cpu-s':>13}")
    for group, r in results.items():
        for who in ("ours", "charon"):
            x = r[who]
            print(f"{group:8} {who:9} {x['up']:6} {x['failed']:6} {x['cpu_s']:7.2f} {x['wall_s']:7.2f} "
                  f"{x['per_core_s']:13.0f}")
        print(f"{group:8} ratio ours/charon per core: {r['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
