//! NAT-T demultiplexing of what arrives on the outside
//! ([RFC 3948 §2](https://www.rfc-editor.org/rfc/rfc3948#section-2), the cases Linux's
//! `xfrm4_input.c` writes out), with a named drop reason for every malformed case and no
//! "else it must be IKE" fall-through.
//!
//! | arrives | verdict |
//! | --- | --- |
//! | UDP to 4500, one byte `0xFF` | NAT keepalive |
//! | UDP to 4500, four zero bytes first | IKE behind the non-ESP marker: punt |
//! | UDP to 4500, otherwise | ESP whose first word is the SPI |
//! | UDP to 500 | IKE: punt |
//! | IP protocol 50 | ESP without NAT-T |
//! | ICMP frag-needed / Packet Too Big quoting one of our ESP packets | path MTU for that SA |
//! | an IPv4 or IPv6 fragment of ESP or UDP | to the reassembler first |

use core::net::IpAddr;

use esprit_wire::{icmpv4, icmpv6, ike, ip_proto, ipv4, ipv6, udp};

use crate::drop::DropReason;
use crate::sa::Endpoint;

/// Path-MTU information from an ICMP error about one of our ESP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtuInfo {
    /// The MTU reported (or estimated, for pre-RFC 1191 routers).
    pub mtu: u32,
    /// Our address, the source of the quoted packet.
    pub local: IpAddr,
    /// The peer the quoted packet was sent to (with its UDP port, 0 for raw ESP).
    pub peer: Endpoint,
    /// The SPI of the quoted packet, if enough of it was quoted.
    pub spi: Option<u32>,
}

/// What an outside packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// ESP: look up `spi` (with `dst`) in the inbound SA table.
    Esp { spi: u32, esp_offset: usize, src: Endpoint, dst: IpAddr, udp: bool },
    /// IKE for the control plane; `ike_offset` points at the IKE header (past the marker).
    Ike { src: Endpoint, dst: Endpoint, ike_offset: usize },
    /// A NAT keepalive from `src` (RFC 3948 §2.3).
    Keepalive { src: Endpoint },
    /// An ICMP error quoting one of our ESP packets.
    Pmtu(PmtuInfo),
    /// A fragment of ESP or UDP for us: reassemble, then classify the whole datagram.
    Fragment,
    /// ICMP for us that is not an error (echo, neighbor discovery): the engine answers.
    IcmpLocal,
    /// Dropped, for this reason.
    Drop(DropReason),
}

/// The SPI of an outer packet that looks like ESP (raw, or in UDP to port 4500 without the
/// non-ESP marker) at a glance: no checksum, length or address check. A hint for
/// prefetching the SA a burst will look up; [`classify`] decides.
#[inline]
pub fn peek_spi(pkt: &[u8]) -> Option<u32> {
    let (proto, off) = match pkt.first()? >> 4 {
        4 => (*pkt.get(9)?, ((pkt[0] & 0x0f) as usize) * 4),
        6 => (*pkt.get(6)?, 40),
        _ => return None,
    };
    let at = match proto {
        ip_proto::ESP => off,
        ip_proto::UDP if pkt.get(off + 2..off + 4)? == 4500u16.to_be_bytes() => off + 8,
        _ => return None,
    };
    let spi = u32::from_be_bytes(pkt.get(at..at + 4)?.try_into().ok()?);
    (spi != 0).then_some(spi)
}

/// Classifies an outer IP packet (starting at the IP header). `is_local` says whether an
/// address is one of ours.
pub fn classify(pkt: &[u8], is_local: impl Fn(IpAddr) -> bool) -> Class {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => classify_v4(pkt, is_local),
        Some(6) => classify_v6(pkt, is_local),
        Some(_) => Class::Drop(DropReason::IpBadVersion),
        None => Class::Drop(DropReason::Ipv4Malformed),
    }
}

fn classify_v4(pkt: &[u8], is_local: impl Fn(IpAddr) -> bool) -> Class {
    let Ok(p) = ipv4::Packet::new_checked(pkt) else {
        return Class::Drop(DropReason::Ipv4Malformed);
    };
    if !p.verify_checksum() {
        return Class::Drop(DropReason::Ipv4BadChecksum);
    }
    let (src, dst) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
    if !is_local(dst) {
        return Class::Drop(DropReason::IpNotForUs);
    }
    if p.is_fragment() {
        return match p.protocol() {
            ip_proto::ESP | ip_proto::UDP => Class::Fragment,
            _ => Class::Drop(DropReason::FragNotEsp),
        };
    }
    let off = p.header_len();
    match p.protocol() {
        ip_proto::ICMP => classify_icmpv4(&pkt[off..p.total_len() as usize], &is_local),
        proto => classify_l4(proto, pkt, off, p.total_len() as usize, src, dst),
    }
}

fn classify_v6(pkt: &[u8], is_local: impl Fn(IpAddr) -> bool) -> Class {
    let Ok(p) = ipv6::Packet::new_checked(pkt) else {
        return Class::Drop(DropReason::Ipv6Malformed);
    };
    let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
    let Ok(u) = p.upper_layer() else {
        return Class::Drop(DropReason::Ipv6BadExtHeaders);
    };
    if let Some(f) = u.frag {
        if !is_local(dst) {
            return Class::Drop(DropReason::IpNotForUs);
        }
        // An atomic fragment (offset 0, no MF; RFC 6946) is a whole packet.
        if f.offset != 0 || f.more_frags {
            return match f.next_header {
                ip_proto::ESP | ip_proto::UDP => Class::Fragment,
                _ => Class::Drop(DropReason::FragNotEsp),
            };
        }
    }
    let off = ipv6::HEADER_LEN + u.offset;
    let end = p.total_len();
    if u.protocol == ip_proto::ICMPV6 {
        // Neighbor discovery goes to solicited-node multicast: let the engine judge.
        let Ok(icmp) = icmpv6::Packet::new_checked(&pkt[off..end]) else {
            return Class::Drop(DropReason::IcmpIgnored);
        };
        if !icmp.verify_checksum(p.src_addr(), p.dst_addr()) {
            return Class::Drop(DropReason::IcmpIgnored);
        }
        return match icmp.msg_type() {
            icmpv6::kind::PACKET_TOO_BIG if is_local(dst) => {
                quoted(&pkt[off + icmpv6::HEADER_LEN..end], icmp.mtu(), &is_local)
            }
            t if t < 128 => Class::Drop(DropReason::IcmpIgnored),
            _ => Class::IcmpLocal,
        };
    }
    if !is_local(dst) {
        return Class::Drop(DropReason::IpNotForUs);
    }
    classify_l4(u.protocol, pkt, off, end, src, dst)
}

/// ESP or UDP at `off`, the datagram ending at `end`.
///
/// Inlined, as `natt` is, so that the addresses stay in registers: passed to a call, an
/// IPv4 `IpAddr` (17 bytes, 4 of them written) is copied with 8-byte loads, which stall on
/// store forwarding — per packet.
#[inline(always)]
fn classify_l4(proto: u8, pkt: &[u8], off: usize, end: usize, src: IpAddr, dst: IpAddr) -> Class {
    let l4 = &pkt[off..end];
    match proto {
        ip_proto::ESP => {
            if l4.len() < esprit_wire::esp::HEADER_LEN {
                return Class::Drop(DropReason::EspTruncated);
            }
            let spi = u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]]);
            if esprit_wire::esp::spi_is_reserved(spi) {
                return Class::Drop(DropReason::EspReservedSpi);
            }
            Class::Esp { spi, esp_offset: off, src: Endpoint { addr: src, port: 0 }, dst, udp: false }
        }
        ip_proto::UDP => {
            let Ok(u) = udp::Packet::new_checked(l4) else {
                return Class::Drop(DropReason::UdpMalformed);
            };
            let (s, d) = (Endpoint { addr: src, port: u.src_port() }, Endpoint { addr: dst, port: u.dst_port() });
            let payload = u.payload();
            let poff = off + udp::HEADER_LEN;
            match u.dst_port() {
                ike::NAT_T_PORT => natt(payload, poff, s, d, &u),
                ike::PORT => {
                    if !u.verify_checksum(src, dst) {
                        return Class::Drop(DropReason::UdpBadChecksum);
                    }
                    ike_at(payload, poff, s, d)
                }
                _ => Class::Drop(DropReason::UdpPortUnhandled),
            }
        }
        _ => Class::Drop(DropReason::ProtoUnhandled),
    }
}

/// RFC 3948 §2: the three things UDP 4500 can carry.
#[inline(always)]
fn natt(payload: &[u8], poff: usize, src: Endpoint, dst: Endpoint, u: &udp::Packet<&[u8]>) -> Class {
    match payload {
        [0xff] => Class::Keepalive { src },
        [0, 0, 0, 0, ..] => {
            // IKE is punted; verify its UDP checksum (ESP needs none: its ICV covers it).
            if !u.verify_checksum(src.addr, dst.addr) {
                return Class::Drop(DropReason::UdpBadChecksum);
            }
            ike_at(&payload[4..], poff + 4, src, dst)
        }
        p if p.len() < esprit_wire::esp::HEADER_LEN => Class::Drop(DropReason::NattRunt),
        p => {
            let spi = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            if esprit_wire::esp::spi_is_reserved(spi) {
                return Class::Drop(DropReason::EspReservedSpi);
            }
            Class::Esp { spi, esp_offset: poff, src, dst: dst.addr, udp: true }
        }
    }
}

fn ike_at(msg: &[u8], ike_offset: usize, src: Endpoint, dst: Endpoint) -> Class {
    match ike::Packet::new_checked(msg) {
        Ok(_) => Class::Ike { src, dst, ike_offset },
        Err(esprit_wire::Error::Truncated) => Class::Drop(DropReason::IkeTruncated),
        Err(_) => Class::Drop(DropReason::IkeBadLength),
    }
}

fn classify_icmpv4(icmp: &[u8], is_local: &impl Fn(IpAddr) -> bool) -> Class {
    let Ok(p) = icmpv4::Packet::new_checked(icmp) else {
        return Class::Drop(DropReason::IcmpIgnored);
    };
    if !p.verify_checksum() {
        return Class::Drop(DropReason::IcmpIgnored);
    }
    match (p.msg_type(), p.msg_code()) {
        (icmpv4::kind::DST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED) => {
            let q = p.data();
            let mtu = match p.next_hop_mtu() {
                // RFC 1191 §5/§7: an old router reports 0; estimate from the quoted total
                // length field (the quote itself is truncated).
                0 => plateau_below(q.get(2..4).map_or(0, |l| u16::from_be_bytes([l[0], l[1]]) as u32)),
                m => m as u32,
            };
            quoted(q, mtu, is_local)
        }
        (icmpv4::kind::ECHO_REQUEST, _) => Class::IcmpLocal,
        _ => Class::Drop(DropReason::IcmpIgnored),
    }
}

/// RFC 1191 §7's plateau table: the largest plateau below `len`.
fn plateau_below(len: u32) -> u32 {
    const PLATEAUS: [u32; 10] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296];
    PLATEAUS.iter().copied().find(|&p| p < len).unwrap_or(68)
}

/// Reads the quoted packet of a PMTU error: it must be one of ours, ESP or UDP from 4500.
/// RFC 792 guarantees only 8 bytes past the IP header — the UDP header, not the SPI — so the
/// SPI is optional and the peer endpoint identifies the SAs.
fn quoted(q: &[u8], mtu: u32, is_local: &impl Fn(IpAddr) -> bool) -> Class {
    // Quotes are truncated: read the headers by hand from what is there.
    let (local, peer_addr, proto, l4) = match q.first().map(|b| b >> 4) {
        Some(4) if q.len() >= 20 => {
            let hl = ((q[0] & 0x0f) as usize) * 4;
            if hl < 20 || q.len() < hl {
                return Class::Drop(DropReason::IcmpIgnored);
            }
            (IpAddr::V4(ipv4_at(q, 12)), IpAddr::V4(ipv4_at(q, 16)), q[9], &q[hl..])
        }
        Some(6) if q.len() >= 40 => {
            let (s, d) = (ipv6_at(q, 8), ipv6_at(q, 24));
            // Our own ESP packets carry no extension headers.
            (IpAddr::V6(s), IpAddr::V6(d), q[6], &q[40..])
        }
        _ => return Class::Drop(DropReason::IcmpIgnored),
    };
    if !is_local(local) {
        return Class::Drop(DropReason::IcmpIgnored);
    }
    let spi_at = |b: &[u8]| (b.len() >= 4).then(|| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (peer, spi) = match proto {
        ip_proto::ESP => (Endpoint { addr: peer_addr, port: 0 }, spi_at(l4)),
        ip_proto::UDP if l4.len() >= 8 && u16::from_be_bytes([l4[0], l4[1]]) == ike::NAT_T_PORT => {
            let spi = spi_at(&l4[8..]).filter(|&s| s != 0);
            (Endpoint { addr: peer_addr, port: u16::from_be_bytes([l4[2], l4[3]]) }, spi)
        }
        _ => return Class::Drop(DropReason::IcmpIgnored),
    };
    Class::Pmtu(PmtuInfo { mtu, local, peer, spi })
}

fn ipv4_at(b: &[u8], at: usize) -> core::net::Ipv4Addr {
    core::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn ipv6_at(b: &[u8], at: usize) -> core::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a.into()
}
