//! The one list of reasons a worker drops a packet (VPP's `error.def`). Each has a per-worker counter
//! ([`crate::counters::WorkerCounters`]) and a stable name that management, metrics and `show` commands
//! print. Add a reason here, never a silent drop elsewhere.

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Why a packet left the pipeline without being forwarded.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons (the length of a per-worker counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake-case name, as printed by management and metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    // Layer 2.
    /// Frame shorter than an Ethernet header, or a truncated VLAN tag.
    L2Malformed = "l2_malformed",
    /// Destination MAC is neither ours, broadcast, nor a multicast group we take.
    L2NotForUs = "l2_not_for_us",
    /// 802.1Q tag missing, present where the port expects none, or with another VLAN id.
    L2WrongVlan = "l2_wrong_vlan",
    /// EtherType we do not handle.
    L2UnknownEthertype = "l2_unknown_ethertype",
    /// ARP packet that does not parse or is not Ethernet/IPv4.
    ArpMalformed = "arp_malformed",
    /// ARP request for an address that is not ours (consumed, nothing to answer).
    ArpNotForUs = "arp_not_for_us",

    // Layer 3.
    /// IPv4 header that fails its checks (version, IHL, total length).
    Ipv4Malformed = "ipv4_malformed",
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum = "ipv4_bad_checksum",
    /// IPv6 header or extension chain that does not parse.
    Ipv6Malformed = "ipv6_malformed",
    /// A fragment addressed to the box itself (the data plane does not reassemble).
    IpFragmentToUs = "ip_fragment_to_us",
    /// TTL or hop limit reached zero (an ICMP Time Exceeded was sent, rate limits allowing).
    TtlExpired = "ttl_expired",
    /// No route in the VRF's FIB.
    NoRoute = "no_route",
    /// The route says drop (null route, blackhole).
    RouteDrop = "route_drop",
    /// Too big for the egress MTU with DF set (an ICMP Fragmentation Needed / Packet Too Big was sent).
    MtuExceeded = "mtu_exceeded",
    /// Next hop's link-layer address unknown (resolution was asked of the control plane).
    NeighborMiss = "neighbor_miss",
    /// Addressed to the box, with a protocol nothing on the box serves.
    LocalUnhandled = "local_unhandled",
    /// UDP header that fails its checks.
    UdpMalformed = "udp_malformed",
    /// ICMP/ICMPv6 message that does not parse.
    IcmpMalformed = "icmp_malformed",

    // ESP (RFC 4303, RFC 3948).
    /// ESP packet too short for header, IV, trailer and ICV.
    EspMalformed = "esp_malformed",
    /// No inbound SA has this SPI.
    EspUnknownSpi = "esp_unknown_spi",
    /// Sequence number already seen or left of the anti-replay window (RFC 4303 §3.4.3).
    EspReplay = "esp_replay",
    /// Integrity check failed (bad ICV, wrong key).
    EspAuthFailed = "esp_auth_failed",
    /// Padding or pad length inconsistent after decryption (RFC 4303 §2.4).
    EspBadTrailer = "esp_bad_trailer",
    /// The SA passed its hard lifetime or ran out of sequence numbers and may no longer be used.
    EspSaExpired = "esp_sa_expired",
    /// The crypto engine failed an operation for a reason other than authentication (device error,
    /// an operation it could not run).
    EspCryptoFailed = "esp_crypto_failed",
    /// Inner packet does not match the SA (mode, next header, tunnel-mode selectors).
    EspPolicyMismatch = "esp_policy_mismatch",
    /// A NAT-T keepalive (RFC 3948 §2.3): consumed, counted here so it is visible.
    NattKeepalive = "natt_keepalive",

    // GRE (RFC 2784/2890) and the tunnel.
    /// GRE header that fails its checks (version, reserved bits, length).
    GreMalformed = "gre_malformed",
    /// GRE checksum present and wrong.
    GreBadChecksum = "gre_bad_checksum",
    /// No tunnel for this (local NBMA address, GRE key).
    GreUnknownTunnel = "gre_unknown_tunnel",
    /// Cleartext GRE on a tunnel that requires protection, or ESP-carried GRE whose SA belongs to a
    /// different tunnel.
    GreUnprotected = "gre_unprotected",
    /// GRE payload protocol we do not carry.
    GreUnknownProtocol = "gre_unknown_protocol",
    /// No TEIB entry for the overlay next hop (a resolution was asked of the control plane).
    TeibMiss = "teib_miss",
    /// The TEIB entry has no usable outbound SA yet on a protected tunnel.
    NoOutboundSa = "no_outbound_sa",

    // Resources.
    /// The punt ring to the control plane was full.
    PuntRingFull = "punt_ring_full",
    /// The port's transmit queue did not take the packet.
    TxFull = "tx_full",
    /// Headroom or tailroom too small for the encapsulation.
    NoBufferSpace = "no_buffer_space",
    /// The packet belongs to an SA owned by another worker and the handoff ring was full.
    HandoffRingFull = "handoff_ring_full",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in discriminant order");
        }
    }
}
