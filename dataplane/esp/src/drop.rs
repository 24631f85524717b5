//! Every reason the data plane drops a packet. Each has a stable snake_case name (used in the
//! counters printed by the offline mode and exported to Prometheus) and its own counter.

use core::sync::atomic::{AtomicU64, Ordering};

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal ),* $(,)?) => {
        /// Why a packet was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $variant ),*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $(DropReason::$variant),* ];
            /// Number of reasons.
            pub const COUNT: usize = [$($name),*].len();

            /// The stable snake_case name of this reason.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name),* }
            }

            /// The reason with this name.
            pub fn from_name(name: &str) -> Option<DropReason> {
                match name { $($name => Some(DropReason::$variant),)* _ => None }
            }
        }
    };
}

drop_reasons! {
    // ---- link and outer headers
    /// Frame shorter than an Ethernet header.
    EthTruncated = "eth_truncated",
    /// EtherType other than IPv4, IPv6 or ARP.
    EthUnsupported = "eth_unsupported",
    /// Unicast frame for another MAC address.
    EthNotForUs = "eth_not_for_us",
    /// ARP that is not for one of our addresses, or malformed.
    ArpIgnored = "arp_ignored",
    /// IPv4 header truncated or its length fields inconsistent.
    Ipv4Malformed = "ipv4_malformed",
    /// IPv4 header checksum does not verify.
    Ipv4BadChecksum = "ipv4_bad_checksum",
    /// IPv6 header truncated or its payload length inconsistent.
    Ipv6Malformed = "ipv6_malformed",
    /// IPv6 extension headers truncated, repeated or too many.
    Ipv6BadExtHeaders = "ipv6_bad_ext_headers",
    /// An IP version field that is neither 4 nor 6.
    IpBadVersion = "ip_bad_version",
    /// Addressed to someone else on the outside.
    IpNotForUs = "ip_not_for_us",
    /// TTL or hop limit exhausted.
    TtlExceeded = "ttl_exceeded",
    /// IP protocol the gateway does not handle on this interface.
    ProtoUnhandled = "proto_unhandled",
    /// UDP header truncated or its length field inconsistent.
    UdpMalformed = "udp_malformed",
    /// UDP checksum does not verify.
    UdpBadChecksum = "udp_bad_checksum",
    /// UDP to a port other than 500 and 4500.
    UdpPortUnhandled = "udp_port_unhandled",
    // ---- NAT-T demux (RFC 3948)
    /// NAT keepalive (one 0xFF byte): consumed, counted here.
    NattKeepalive = "natt_keepalive",
    /// UDP 4500 payload of 1 byte that is not 0xFF, or 2–7 bytes: neither keepalive, marker nor ESP.
    NattRunt = "natt_runt",
    /// IKE (non-ESP marker or port 500) shorter than an IKE header.
    IkeTruncated = "ike_truncated",
    /// IKE whose length field disagrees with the datagram.
    IkeBadLength = "ike_bad_length",
    /// IKE datagram received but no control plane is attached to take it, or the way to it
    /// (the ring to esprit-ike) is full.
    IkeNoListener = "ike_no_listener",
    /// ESP shorter than header + IV + minimal trailer + ICV.
    EspTruncated = "esp_truncated",
    /// ESP with a reserved SPI (1–255; 0 outside the marker).
    EspReservedSpi = "esp_reserved_spi",
    /// ESP whose ciphertext is not a multiple of the cipher's block or alignment.
    EspBadLength = "esp_bad_length",
    /// ESP for an SPI we have no inbound SA for.
    EspNoSa = "esp_no_sa",
    /// ESP arrived UDP-encapsulated for a raw SA, or raw for a UDP-encapsulated SA.
    EspEncapMismatch = "esp_encap_mismatch",
    // ---- outer reassembly
    /// Fragment overlapping another one of the same datagram (RFC 5722).
    FragOverlap = "frag_overlap",
    /// Reassembled datagram would exceed the configured maximum.
    FragTooBig = "frag_too_big",
    /// Fragment with an inconsistent length or offset.
    FragMalformed = "frag_malformed",
    /// Datagram not completed before the reassembly timeout (counted per datagram).
    FragTimeout = "frag_timeout",
    /// No free reassembly slot.
    FragTableFull = "frag_table_full",
    /// Fragment of something other than ESP or UDP to one of our NAT-T/IKE ports.
    FragNotEsp = "frag_not_esp",
    // ---- inbound SA processing
    /// Sequence number already seen (RFC 4303 §3.4.3).
    Replay = "replay",
    /// Sequence number left of the replay window.
    ReplayTooOld = "replay_too_old",
    /// ICV did not verify.
    AuthFailed = "auth_failed",
    /// Padding bytes are not 1, 2, 3, … or the pad length exceeds the payload.
    BadPadding = "bad_padding",
    /// Next header neither IPv4, IPv6 nor the dummy 59.
    BadNextHeader = "bad_next_header",
    /// Dummy packet (next header 59, RFC 4303 §2.6): dropped silently, counted.
    DummyPacket = "dummy_packet",
    /// Decrypted inner packet is not a valid IP packet.
    InnerMalformed = "inner_malformed",
    /// Inner packet outside the SA's traffic selectors.
    TsMismatch = "ts_mismatch",
    /// SA reached its hard lifetime.
    SaExpired = "sa_expired",
    // ---- outbound
    /// Sequence number space exhausted; the SA must be rekeyed (RFC 4303 §3.3.3).
    SeqExhausted = "seq_exhausted",
    /// Inside packet matches no policy and no plain route.
    NoPolicy = "no_policy",
    /// Inside packet matches a protecting policy whose SA is missing: never sent in clear.
    PolicyNoSa = "policy_no_sa",
    /// Too big for the SA's MTU with DF set: ICMP fragmentation-needed / Packet Too Big sent.
    TooBig = "too_big",
    /// Too big, and the ICMP error was suppressed by the rate limiter.
    TooBigRateLimited = "too_big_rate_limited",
    /// Not enough headroom or tailroom in the buffer to encapsulate.
    NoBufferRoom = "no_buffer_room",
    /// No buffer free to build a fragment or an ICMP error.
    NoBuffer = "no_buffer",
    // ---- forwarding
    /// No route to the destination.
    NoRoute = "no_route",
    /// Next hop's link-layer address unknown (resolution started).
    NoNeighbor = "no_neighbor",
    /// ICMP quoting a packet that is not one of our ESP packets, or unusable.
    IcmpIgnored = "icmp_ignored",
    /// Transmit queue full.
    TxFull = "tx_full",
    /// The worker owning the packet's SA has a full hand-off queue.
    HandoffFull = "handoff_full",
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per drop reason, written by one worker and readable by anyone.
///
/// Increments are a relaxed load and store (no locked instruction): each instance has a
/// single writer, the lcore that owns it.
#[derive(Debug)]
pub struct DropCounters {
    counts: [AtomicU64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters { counts: core::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl DropCounters {
    /// Counts one drop. Single writer only.
    #[inline]
    pub fn inc(&self, r: DropReason) {
        self.add(r, 1);
    }

    /// Counts `n` drops. Single writer only.
    #[inline]
    pub fn add(&self, r: DropReason, n: u64) {
        let c = &self.counts[r as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.counts[r as usize].load(Ordering::Relaxed)
    }

    /// The non-zero counters, in reason order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r))).filter(|&(_, n)| n != 0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &r in DropReason::ALL {
            assert!(seen.insert(r.name()), "duplicate {}", r.name());
            assert_eq!(DropReason::from_name(r.name()), Some(r));
            assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
    }

    #[test]
    fn counters() {
        let c = DropCounters::default();
        c.inc(DropReason::Replay);
        c.add(DropReason::AuthFailed, 3);
        assert_eq!(c.get(DropReason::Replay), 1);
        assert_eq!(c.total(), 4);
        assert_eq!(c.nonzero().collect::<Vec<_>>(), vec![(DropReason::Replay, 1), (DropReason::AuthFailed, 3)]);
    }
}
