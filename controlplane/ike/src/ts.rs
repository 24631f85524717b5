//! Traffic-selector narrowing (RFC 7296 §2.9): the responder answers with the part of what
//! the initiator proposed that its policy allows.

use core::net::IpAddr;

pub use esprit_esp::ts::TrafficSelector;
use esprit_wire::IpCidr;

fn as_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4((x as u32).into())
    } else {
        IpAddr::V6(x.into())
    }
}

/// The selector both `a` and `b` allow, if any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if a.start.is_ipv4() != b.start.is_ipv4() {
        return None;
    }
    let v4 = a.start.is_ipv4();
    let lo = as_u128(a.start).max(as_u128(b.start));
    let hi = as_u128(a.end).min(as_u128(b.end));
    if lo > hi {
        return None;
    }
    let protocol = match (a.protocol, b.protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let (sp, ep) = (a.start_port.max(b.start_port), a.end_port.min(b.end_port));
    // An "OPAQUE" port range (start 65535, end 0) matches nothing here; keep it out.
    if sp > ep {
        return None;
    }
    Some(TrafficSelector { start: from_u128(v4, lo), end: from_u128(v4, hi), protocol, start_port: sp, end_port: ep })
}

/// Narrows `proposed` to `allowed`: every non-empty intersection, in the order proposed,
/// without duplicates. Empty: TS_UNACCEPTABLE.
pub fn narrow(proposed: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for p in proposed {
        for a in allowed {
            if let Some(x) = intersect(p, a) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// True if every selector of `inner` lies within one of `outer` (an initiator checking that
/// the responder only narrowed).
pub fn within(inner: &[TrafficSelector], outer: &[TrafficSelector]) -> bool {
    inner.iter().all(|i| outer.iter().any(|o| intersect(i, o) == Some(*i)))
}

/// A selector for a whole prefix, any protocol and port.
pub fn from_cidr(c: IpCidr) -> TrafficSelector {
    TrafficSelector::from_cidr(c)
}

/// A selector for one address.
pub fn host(a: IpAddr) -> TrafficSelector {
    TrafficSelector::from_cidr(IpCidr::host(a))
}

/// The prefixes a selector's address range covers exactly (for policies, which are
/// prefixes): the minimal list of CIDR blocks.
pub fn to_cidrs(ts: &TrafficSelector) -> Vec<IpCidr> {
    let v4 = ts.start.is_ipv4();
    let bits: u32 = if v4 { 32 } else { 128 };
    let (mut lo, hi) = (as_u128(ts.start), as_u128(ts.end));
    let mut out = Vec::new();
    while lo <= hi {
        // The largest block that starts at `lo` (alignment) and ends by `hi` (size).
        let align = if lo == 0 { bits } else { lo.trailing_zeros().min(bits) };
        let span = hi - lo; // addresses left, minus one
        let fit = if span == u128::MAX { 128 } else { 127 - (span + 1).leading_zeros() };
        let host = align.min(fit);
        if let Ok(c) = IpCidr::new(from_u128(v4, lo), (bits - host) as u8) {
            out.push(c);
        }
        if host >= 128 {
            break;
        }
        match lo.checked_add(1u128 << host) {
            Some(n) => lo = n,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(a: &str, b: &str) -> TrafficSelector {
        TrafficSelector {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
            protocol: 0,
            start_port: 0,
            end_port: 65535,
        }
    }

    #[test]
    fn road_warrior_narrowing() {
        // The client asks for everything; the gateway gives its virtual IP and protected net.
        let any = ts("0.0.0.0", "255.255.255.255");
        let vip = host("10.9.0.7".parse().unwrap());
        assert_eq!(narrow(&[any], &[vip]), [vip]);
        let lan = from_cidr("10.1.0.0/16".parse().unwrap());
        assert_eq!(narrow(&[any], &[lan]), [lan]);
        // IPv6 asked too, not allowed: dropped.
        let any6 = ts("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(narrow(&[any, any6], &[lan]), [lan]);
        assert!(narrow(&[any6], &[lan]).is_empty());
    }

    #[test]
    fn protocols_and_ports() {
        let mut a = ts("10.0.0.0", "10.0.0.255");
        a.protocol = 6;
        a.start_port = 80;
        a.end_port = 443;
        let mut b = ts("10.0.0.128", "10.1.0.0");
        b.start_port = 100;
        let x = intersect(&a, &b).unwrap();
        assert_eq!((x.start, x.end), ("10.0.0.128".parse().unwrap(), "10.0.0.255".parse().unwrap()));
        assert_eq!((x.protocol, x.start_port, x.end_port), (6, 100, 443));
        b.protocol = 17;
        assert!(intersect(&a, &b).is_none());
        assert!(within(&[x], &[a]));
        assert!(!within(&[a], &[x]));
    }

    #[test]
    fn ranges_as_prefixes() {
        let c = |s: &str| s.parse::<IpCidr>().unwrap();
        assert_eq!(to_cidrs(&ts("0.0.0.0", "255.255.255.255")), [c("0.0.0.0/0")]);
        assert_eq!(to_cidrs(&host("10.9.0.7".parse().unwrap())), [c("10.9.0.7/32")]);
        assert_eq!(
            to_cidrs(&ts("10.0.0.1", "10.0.0.6")),
            [c("10.0.0.1/32"), c("10.0.0.2/31"), c("10.0.0.4/31"), c("10.0.0.6/32")]
        );
        assert_eq!(to_cidrs(&ts("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), [c("::/0")]);
        assert_eq!(to_cidrs(&ts("2001:db8::", "2001:db8::ffff")), [c("2001:db8::/112")]);
    }
}
