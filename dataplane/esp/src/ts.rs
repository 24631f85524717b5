//! Traffic selectors ([RFC 7296 §3.13.1](https://www.rfc-editor.org/rfc/rfc7296#section-3.13.1)):
//! an address range, an IP protocol and a port range. The decrypted inner packet of an SA must
//! fall within the SA's selectors (RFC 4301 §5.2, step 4), or it is dropped.

use core::net::IpAddr;

use esprit_wire::{ip_proto, IpCidr};

/// One traffic selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub start: IpAddr,
    pub end: IpAddr,
    /// IP protocol, 0 for any.
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
}

impl TrafficSelector {
    /// All addresses of a prefix, any protocol and port.
    pub fn from_cidr(c: IpCidr) -> TrafficSelector {
        let (start, end) = match c.addr() {
            IpAddr::V4(a) => {
                let host = if c.prefix_len() == 32 { 0 } else { u32::MAX >> c.prefix_len() };
                (IpAddr::V4(a), IpAddr::V4((u32::from(a) | host).into()))
            }
            IpAddr::V6(a) => {
                let host = if c.prefix_len() == 128 { 0 } else { u128::MAX >> c.prefix_len() };
                (IpAddr::V6(a), IpAddr::V6((u128::from(a) | host).into()))
            }
        };
        TrafficSelector { start, end, protocol: 0, start_port: 0, end_port: u16::MAX }
    }

    /// True if `addr` is within the range (same family only).
    #[inline]
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (self.start, self.end, addr) {
            (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(a)) => (u32::from(s)..=u32::from(e)).contains(&u32::from(a)),
            (IpAddr::V6(s), IpAddr::V6(e), IpAddr::V6(a)) => (u128::from(s)..=u128::from(e)).contains(&u128::from(a)),
            _ => false,
        }
    }

    /// True if the selector places no constraint on ports.
    #[inline]
    pub fn any_port(&self) -> bool {
        self.start_port == 0 && self.end_port == u16::MAX
    }

    /// Whether an endpoint of a packet matches: `port` is `None` when the packet carries no
    /// port information (a non-first fragment, or a protocol without ports).
    #[inline]
    pub fn matches(&self, addr: IpAddr, protocol: u8, port: Option<u16>) -> bool {
        self.matches_with(addr, protocol, || port)
    }

    /// [`matches`](Self::matches) with the port read only if the selector narrows ports
    /// (most do not, and reading them cost every decrypted packet a dozen instructions).
    #[inline]
    pub fn matches_with(&self, addr: IpAddr, protocol: u8, port: impl FnOnce() -> Option<u16>) -> bool {
        if !self.contains_addr(addr) {
            return false;
        }
        if self.protocol != 0 && self.protocol != protocol {
            return false;
        }
        if self.any_port() {
            return true;
        }
        // RFC 4301 §4.4.1.1: narrowed ports and no port in the packet (OPAQUE) do not match.
        port().is_some_and(|p| (self.start_port..=self.end_port).contains(&p))
    }
}

/// What the selectors look at in an inner packet. The ports are read from its transport
/// header when a selector asks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow<'p> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// The transport header and what follows, in the first fragment only (empty in the
    /// others, which carry no ports).
    l4: &'p [u8],
}

impl<'p> Flow<'p> {
    /// Reads the flow of an IPv4 or IPv6 packet; `None` if it is not a valid IP packet.
    ///
    /// Ports are those of TCP, UDP, SCTP and UDP-Lite; for ICMP and ICMPv6 the "port" is
    /// type ‖ code as one 16-bit number in the source position, as RFC 7296 §3.13.1 defines.
    ///
    /// Always inlined: returned through memory, the `Flow` was copied with wider loads than
    /// the stores that built it, a store-forwarding stall per decrypted packet.
    #[inline(always)]
    pub fn of(pkt: &'p [u8]) -> Option<Flow<'p>> {
        match pkt.first()? >> 4 {
            4 => {
                let p = esprit_wire::ipv4::Packet::new_checked(pkt).ok()?;
                let (src, dst, proto) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()), p.protocol());
                let l4 = if p.frag_offset() == 0 { p.into_payload() } else { &[] };
                Some(Flow { src, dst, protocol: proto, l4 })
            }
            6 => {
                let p = esprit_wire::ipv6::Packet::new_checked(pkt).ok()?;
                let u = p.upper_layer().ok()?;
                let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
                let first = u.frag.is_none_or(|f| f.offset == 0);
                let l4 = if first { p.into_payload().get(u.offset..).unwrap_or(&[]) } else { &[] };
                Some(Flow { src, dst, protocol: u.protocol, l4 })
            }
            _ => None,
        }
    }

    /// The source port (for ICMP and ICMPv6, type ‖ code); `None` for protocols without
    /// ports and in non-first fragments.
    #[inline]
    pub fn src_port(&self) -> Option<u16> {
        ports(self.protocol, self.l4).0
    }

    /// The destination port (0 for ICMP and ICMPv6); `None` as for [`Self::src_port`].
    #[inline]
    pub fn dst_port(&self) -> Option<u16> {
        ports(self.protocol, self.l4).1
    }
}

fn ports(proto: u8, l4: &[u8]) -> (Option<u16>, Option<u16>) {
    match proto {
        ip_proto::TCP | ip_proto::UDP | 132 | 136 if l4.len() >= 4 => {
            (Some(u16::from_be_bytes([l4[0], l4[1]])), Some(u16::from_be_bytes([l4[2], l4[3]])))
        }
        ip_proto::ICMP | ip_proto::ICMPV6 if l4.len() >= 2 => (Some(u16::from_be_bytes([l4[0], l4[1]])), Some(0)),
        _ => (None, None),
    }
}

/// True if the flow's source matches one of `remote` and its destination one of `local`:
/// the check for an inbound inner packet (it comes from the remote side).
#[inline]
pub fn inbound_allowed(flow: &Flow, local: &[TrafficSelector], remote: &[TrafficSelector]) -> bool {
    remote.iter().any(|ts| ts.matches_with(flow.src, flow.protocol, || flow.src_port()))
        && local.iter().any(|ts| ts.matches_with(flow.dst, flow.protocol, || flow.dst_port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        TrafficSelector::from_cidr(s.parse().unwrap())
    }

    #[test]
    fn ranges_from_prefixes() {
        let t = ts("10.1.0.0/16");
        assert_eq!(t.end, "10.1.255.255".parse::<IpAddr>().unwrap());
        assert!(t.contains_addr("10.1.7.7".parse().unwrap()));
        assert!(!t.contains_addr("10.2.0.0".parse().unwrap()));
        assert!(!t.contains_addr("::1".parse().unwrap()));
        let h = ts("192.0.2.1/32");
        assert_eq!(h.start, h.end);
        let all6 = ts("::/0");
        assert!(all6.contains_addr("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn ports_and_protocols() {
        let mut t = ts("10.0.0.0/8");
        t.protocol = 6;
        t.start_port = 443;
        t.end_port = 443;
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(t.matches(a, 6, Some(443)));
        assert!(!t.matches(a, 6, Some(80)));
        assert!(!t.matches(a, 17, Some(443)));
        assert!(!t.matches(a, 6, None), "opaque ports never match narrowed selectors");
    }

    #[test]
    fn flow_of_packets() {
        // IPv4 UDP 10.0.0.1:1234 -> 10.0.0.2:53
        let mut p = vec![0u8; 28];
        esprit_wire::ipv4::Repr {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 17,
            payload_len: 8,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut p);
        p[20..24].copy_from_slice(&[0x04, 0xd2, 0, 53]);
        let f = Flow::of(&p).unwrap();
        assert_eq!((f.protocol, f.src_port(), f.dst_port()), (17, Some(1234), Some(53)));
        let local = [ts("10.0.0.0/24")];
        let remote = [ts("10.0.0.1/32")];
        assert!(inbound_allowed(&f, &local, &remote));
        assert!(!inbound_allowed(&f, &remote, &local));
        assert!(Flow::of(&[0x55]).is_none());
        assert!(Flow::of(&p[..19]).is_none());
        // A narrowed selector sees the ports; a non-first fragment has none (OPAQUE).
        let mut dns = ts("10.0.0.2/32");
        (dns.protocol, dns.start_port, dns.end_port) = (17, 53, 53);
        assert!(inbound_allowed(&f, &[dns], &remote));
        let mut frag = p.clone();
        frag[6..8].copy_from_slice(&[0x00, 0x10]); // fragment offset 16 (x 8 bytes)
        frag[10..12].copy_from_slice(&[0, 0]);
        let c = esprit_wire::checksum::checksum(&frag[..20]);
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        let g = Flow::of(&frag).unwrap();
        assert_eq!((g.src_port(), g.dst_port()), (None, None));
        assert!(!inbound_allowed(&g, &[dns], &remote));
        assert!(inbound_allowed(&g, &local, &remote), "unnarrowed selectors take it");
        // IPv6 ICMPv6 echo request: type ‖ code as the source "port", 0 as the destination.
        let mut q = vec![0u8; 48];
        q[0] = 0x60;
        q[4..6].copy_from_slice(&8u16.to_be_bytes());
        q[6] = 58;
        q[7] = 64;
        q[8..24].copy_from_slice(&"2001:db8::1".parse::<core::net::Ipv6Addr>().unwrap().octets());
        q[24..40].copy_from_slice(&"2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets());
        q[40] = 128;
        let h = Flow::of(&q).unwrap();
        assert_eq!((h.protocol, h.src_port(), h.dst_port()), (58, Some(128 << 8), Some(0)));
    }
}
