//! ICMP errors the gateway sends to inner senders — fragmentation needed
//! ([RFC 1191 §4](https://www.rfc-editor.org/rfc/rfc1191#section-4)), Packet Too Big
//! ([RFC 4443 §3.2](https://www.rfc-editor.org/rfc/rfc4443#section-3.2)), time exceeded — and
//! the token bucket that rate-limits them ([RFC 4443 §2.4(f)](https://www.rfc-editor.org/rfc/rfc4443#section-2.4),
//! RFC 1812 §4.3.2.8).

use core::net::{Ipv4Addr, Ipv6Addr};

use esprit_wire::{icmpv4, icmpv6, ip_proto, ipv4, ipv6};

use crate::buf::PacketBuf;

/// An ICMPv4 error and its quote fit in 576 bytes (RFC 1812 §4.3.2.3).
pub const MAX_ICMPV4_ERROR: usize = 576;
/// An ICMPv6 error fits in the minimum IPv6 MTU (RFC 4443 §2.4(c)).
pub const MAX_ICMPV6_ERROR: usize = ipv6::MIN_MTU;
/// Hop limit / TTL of the errors we originate.
const TTL: u8 = 64;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Tokens × 10⁹ (nanotoken resolution keeps integer arithmetic exact).
    tokens: u64,
    rate: u64,
    max: u64,
    last: u64,
}

const SCALE: u64 = 1_000_000_000;

impl RateLimiter {
    pub fn new(rate_per_sec: u32, burst: u32) -> RateLimiter {
        let max = burst.max(1) as u64 * SCALE;
        RateLimiter { tokens: max, rate: rate_per_sec as u64, max, last: 0 }
    }

    /// Takes a token at time `now` (ns) if one is available.
    pub fn allow(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.tokens = self.tokens.saturating_add(elapsed.saturating_mul(self.rate)).min(self.max);
        if self.tokens >= SCALE {
            self.tokens -= SCALE;
            true
        } else {
            false
        }
    }
}

/// Why no ICMP error is sent about a packet (RFC 1122 §3.2.2, RFC 4443 §2.4(e)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// The offending packet is not a valid IP packet.
    Malformed,
    /// Its source is not a unicast address we can answer.
    NotUnicastSource,
    /// It is itself an ICMP error.
    AboutIcmpError,
    /// It is a non-first fragment.
    NonFirstFragment,
}

fn check_v4(offending: &[u8]) -> Result<ipv4::Packet<&[u8]>, Suppressed> {
    let p = ipv4::Packet::new_checked(offending).map_err(|_| Suppressed::Malformed)?;
    let s = p.src_addr();
    if s.is_unspecified() || s.is_broadcast() || s.is_multicast() || s.is_loopback() || p.dst_addr().is_multicast() {
        return Err(Suppressed::NotUnicastSource);
    }
    if p.frag_offset() != 0 {
        return Err(Suppressed::NonFirstFragment);
    }
    if p.protocol() == ip_proto::ICMP {
        let t = p.payload().first().copied().unwrap_or(0);
        if !matches!(t, icmpv4::kind::ECHO_REQUEST | icmpv4::kind::ECHO_REPLY | 13 | 14 | 15 | 16 | 17 | 18) {
            return Err(Suppressed::AboutIcmpError);
        }
    }
    Ok(p)
}

/// Writes into `out` (emptied) an IPv4 packet from `src` carrying an ICMPv4 error about
/// `offending`, quoting as much of it as fits in 576 bytes.
fn error_v4<B: PacketBuf>(
    out: &mut B,
    src: Ipv4Addr,
    offending: &[u8],
    msg: impl Fn(&'_ [u8]) -> icmpv4::Repr<'_>,
) -> Result<(), Suppressed> {
    let p = check_v4(offending)?;
    let quote_len = offending.len().min(p.total_len() as usize).min(MAX_ICMPV4_ERROR - 28);
    let icmp = msg(&offending[..quote_len]);
    let total = ipv4::HEADER_LEN + icmp.buffer_len();
    let cur = out.len();
    if !(out.trim(cur) && out.append(total)) {
        return Err(Suppressed::Malformed);
    }
    let d = out.data_mut();
    ipv4::Repr {
        src,
        dst: p.src_addr(),
        protocol: ip_proto::ICMP,
        payload_len: icmp.buffer_len(),
        ttl: TTL,
        tos: 0xc0, // internetwork control, as routers mark ICMP errors
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(d);
    icmp.emit(&mut d[ipv4::HEADER_LEN..]);
    Ok(())
}

/// ICMPv4 destination unreachable, fragmentation needed and DF set, with the next-hop MTU.
pub fn frag_needed_v4<B: PacketBuf>(
    out: &mut B,
    src: Ipv4Addr,
    offending: &[u8],
    next_hop_mtu: u16,
) -> Result<(), Suppressed> {
    error_v4(out, src, offending, |quoted| icmpv4::Repr::DstUnreachable {
        code: icmpv4::CODE_FRAG_NEEDED,
        next_hop_mtu,
        quoted,
    })
}

/// ICMPv4 time exceeded in transit.
pub fn time_exceeded_v4<B: PacketBuf>(out: &mut B, src: Ipv4Addr, offending: &[u8]) -> Result<(), Suppressed> {
    error_v4(out, src, offending, |quoted| icmpv4::Repr::TimeExceeded { code: 0, quoted })
}

fn check_v6(offending: &[u8]) -> Result<ipv6::Packet<&[u8]>, Suppressed> {
    let p = ipv6::Packet::new_checked(offending).map_err(|_| Suppressed::Malformed)?;
    let s = p.src_addr();
    if s.is_unspecified() || s.is_multicast() || s.is_loopback() {
        return Err(Suppressed::NotUnicastSource);
    }
    let u = p.upper_layer().map_err(|_| Suppressed::Malformed)?;
    if u.frag.is_some_and(|f| f.offset != 0) {
        return Err(Suppressed::NonFirstFragment);
    }
    if u.protocol == ip_proto::ICMPV6 {
        // RFC 4443 §2.4(e.1): never about an error message (types below 128).
        if p.payload().get(u.offset).is_some_and(|&t| t < 128) {
            return Err(Suppressed::AboutIcmpError);
        }
    }
    Ok(p)
}

fn error_v6<B: PacketBuf>(
    out: &mut B,
    src: Ipv6Addr,
    offending: &[u8],
    msg: impl Fn(&'_ [u8]) -> icmpv6::Repr<'_>,
) -> Result<(), Suppressed> {
    let p = check_v6(offending)?;
    let dst = p.src_addr();
    let quote_len = offending.len().min(p.total_len()).min(MAX_ICMPV6_ERROR - ipv6::HEADER_LEN - icmpv6::HEADER_LEN);
    let icmp = msg(&offending[..quote_len]);
    let total = ipv6::HEADER_LEN + icmp.buffer_len();
    let cur = out.len();
    if !(out.trim(cur) && out.append(total)) {
        return Err(Suppressed::Malformed);
    }
    let d = out.data_mut();
    ipv6::Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: icmp.buffer_len(),
        hop_limit: TTL,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(d);
    icmp.emit(&mut d[ipv6::HEADER_LEN..], src, dst);
    Ok(())
}

/// ICMPv6 Packet Too Big with `mtu`.
pub fn packet_too_big_v6<B: PacketBuf>(
    out: &mut B,
    src: Ipv6Addr,
    offending: &[u8],
    mtu: u32,
) -> Result<(), Suppressed> {
    error_v6(out, src, offending, |quoted| icmpv6::Repr::PacketTooBig { mtu, quoted })
}

/// ICMPv6 time exceeded (hop limit exceeded in transit).
pub fn time_exceeded_v6<B: PacketBuf>(out: &mut B, src: Ipv6Addr, offending: &[u8]) -> Result<(), Suppressed> {
    error_v6(out, src, offending, |quoted| icmpv6::Repr::TimeExceeded { code: 0, quoted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapBuf;

    fn udp_v4(len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        ipv4::Repr {
            src: "10.1.0.5".parse().unwrap(),
            dst: "10.9.0.2".parse().unwrap(),
            protocol: 17,
            payload_len: len - 20,
            ttl: 63,
            tos: 0,
            ident: 9,
            dont_frag: df,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut p);
        p
    }

    #[test]
    fn frag_needed_quotes_and_addresses() {
        let off = udp_v4(1500, true);
        let mut out = HeapBuf::default();
        frag_needed_v4(&mut out, "10.1.0.1".parse().unwrap(), &off, 1438).unwrap();
        let ip = ipv4::Packet::new_checked(out.data()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), "10.1.0.5".parse::<Ipv4Addr>().unwrap());
        assert_eq!(ip.total_len() as usize, MAX_ICMPV4_ERROR);
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.msg_code(), icmp.next_hop_mtu()), (3, 4, 1438));
        assert_eq!(icmp.data(), &off[..548]);
    }

    #[test]
    fn no_errors_about_errors_fragments_or_broadcast() {
        let mut out = HeapBuf::default();
        let src: Ipv4Addr = "10.1.0.1".parse().unwrap();
        // An ICMP error about an ICMP error.
        let mut e = HeapBuf::default();
        frag_needed_v4(&mut e, src, &udp_v4(100, true), 1000).unwrap();
        assert_eq!(frag_needed_v4(&mut out, src, e.data(), 1000), Err(Suppressed::AboutIcmpError));
        // A non-first fragment.
        let mut f = udp_v4(100, false);
        {
            let mut p = ipv4::Packet::new_unchecked(&mut f[..]);
            p.set_frag(false, false, 80);
            p.fill_checksum();
        }
        assert_eq!(frag_needed_v4(&mut out, src, &f, 1000), Err(Suppressed::NonFirstFragment));
        // From 0.0.0.0.
        let mut z = udp_v4(100, true);
        {
            let mut p = ipv4::Packet::new_unchecked(&mut z[..]);
            p.set_src_addr(Ipv4Addr::UNSPECIFIED);
            p.fill_checksum();
        }
        assert_eq!(frag_needed_v4(&mut out, src, &z, 1000), Err(Suppressed::NotUnicastSource));
        assert_eq!(frag_needed_v4(&mut out, src, &[0x45, 0], 1000), Err(Suppressed::Malformed));
    }

    #[test]
    fn packet_too_big_fits_1280() {
        let mut off = vec![0u8; 1400];
        ipv6::Repr {
            src: "2001:db8:1::5".parse().unwrap(),
            dst: "2001:db8:9::2".parse().unwrap(),
            next_header: 17,
            payload_len: 1360,
            hop_limit: 63,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut off);
        let mut out = HeapBuf::default();
        let src: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        packet_too_big_v6(&mut out, src, &off, 1390).unwrap();
        assert_eq!(out.len(), 1280);
        let ip = ipv6::Packet::new_checked(out.data()).unwrap();
        let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!((icmp.msg_type(), icmp.mtu()), (2, 1390));
    }

    #[test]
    fn rate_limiter() {
        let mut r = RateLimiter::new(10, 3);
        let t0 = 5_000_000_000;
        assert!(r.allow(t0) && r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0), "burst used up");
        assert!(!r.allow(t0 + 50_000_000), "half a token after 50 ms");
        assert!(r.allow(t0 + 100_000_000), "one token after 100 ms");
        assert!(!r.allow(t0 + 100_000_000));
        // A long pause refills only to the burst.
        for _ in 0..3 {
            assert!(r.allow(t0 + 100_000_000_000));
        }
        assert!(!r.allow(t0 + 100_000_000_000));
    }
}
