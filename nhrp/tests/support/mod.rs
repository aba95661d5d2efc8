//! Test support: a pcap writer (Ethernet / IPv4 / GRE 0x2001 / NHRP) and a tshark runner, so that
//! tshark — the dissector of record — judges what we emit.

#![allow(dead_code)] // each test binary uses part of it

pub mod sim;
use nhrp::Time;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A packet that crossed the NBMA network: when (virtual time), its outer (NBMA) source and
/// destination, and the NHRP bytes.
pub type Frame = (Time, IpAddr, IpAddr, Vec<u8>);

/// Writes `frames` to a pcap file as Ethernet / IPv4 or IPv6 / GRE (0x2001) / NHRP, stamped with their
/// virtual times.
pub fn write_pcap(path: &Path, frames: &[Frame]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (at, src, dst, nhrp) in frames {
        let mut gre = vec![0, 0, 0x20, 0x01];
        gre.extend_from_slice(nhrp);
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + gre.len()) as u16;
                let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0];
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let c = ipv4_checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                frame.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                frame.extend_from_slice(&(gre.len() as u16).to_be_bytes());
                frame.extend_from_slice(&[47, 64]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            _ => panic!("outer addresses of two families: {src} -> {dst}"),
        }
        frame.extend_from_slice(&gre);
        f.extend_from_slice(&((at.0 / 1000) as u32).to_le_bytes());
        f.extend_from_slice(&((at.0 % 1000 * 1000) as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
    }
    std::fs::write(path, f).expect("write pcap");
}

/// Runs tshark over `pcap` and returns, per frame, the values of `fields` (occurrences joined by ',').
pub fn tshark_fields(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs (scripts/install-deps.sh installs it)");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

/// Asserts tshark dissects every frame as NHRP with a good checksum and no expert warning or error,
/// and returns the frames' values of `fields`.
pub fn dissect_clean(dir_name: &str, packets: &[Frame], fields: &[&str]) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("nhrp-tshark-{}-{dir_name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pcap = dir.join("nhrp.pcap");
    write_pcap(&pcap, packets);
    let mut all = vec!["nhrp.hdr.chksum.status", "_ws.expert.severity", "_ws.malformed", "nhrp"];
    all.extend_from_slice(fields);
    let rows = tshark_fields(&pcap, &all);
    assert_eq!(rows.len(), packets.len(), "one row per frame");
    for (i, r) in rows.iter().enumerate() {
        // A nested NHRP packet (the packet in error of an Error Indication) has its own checksum.
        assert!(r[0].split(',').all(|s| s == "1"), "frame {}: checksum status {:?}", i + 1, r[0]);
        // Comments, chats and notes are below 0x00600000 (PI_WARN); warnings and errors are refused.
        let worst = r[1].split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().expect("severity")).max();
        assert!(!matches!(worst, Some(s) if s >= 0x0060_0000), "frame {}: expert severity {:?}", i + 1, r[1]);
        assert!(r[2].is_empty(), "frame {}: malformed", i + 1);
    }
    if std::env::var_os("NHRP_KEEP_PCAP").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    rows.into_iter().map(|r| r[4..].to_vec()).collect()
}
