//! The route table: longest prefix match over a short list (connected subnets and static
//! routes). Published to the workers copy-on-write through an epoch pointer.

use std::net::IpAddr;

use esprit_wire::IpCidr;

/// How long a learned neighbor is trusted (ns).
pub const NEIGHBOR_TTL: u64 = 300 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: IpCidr,
    pub via: Option<IpAddr>,
    pub ifidx: usize,
}

/// Routes, longest prefix first.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    v: Vec<Route>,
}

impl Routes {
    pub fn add(&mut self, r: Route) {
        self.v.push(r);
        // Stable sort: for equal prefixes the first configured wins.
        self.v.sort_by_key(|r| std::cmp::Reverse(r.dst.prefix_len()));
    }

    /// Removes the route to `dst` (through `via`, if given); true if there was one.
    pub fn remove(&mut self, dst: IpCidr, via: Option<IpAddr>) -> bool {
        let n = self.v.len();
        self.v.retain(|r| !(r.dst == dst && (via.is_none() || r.via == via)));
        self.v.len() != n
    }

    /// The interface and next-hop address toward `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<(usize, IpAddr)> {
        self.v.iter().find(|r| r.dst.contains(dst)).map(|r| (r.ifidx, r.via.unwrap_or(dst)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> IpCidr {
        s.parse().unwrap()
    }
    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut r = Routes::default();
        r.add(Route { dst: c("0.0.0.0/0"), via: Some(a("198.51.100.254")), ifidx: 0 });
        r.add(Route { dst: c("10.1.0.0/16"), via: None, ifidx: 1 });
        r.add(Route { dst: c("10.1.2.0/24"), via: Some(a("10.1.0.9")), ifidx: 1 });
        assert_eq!(r.lookup(a("10.1.2.3")), Some((1, a("10.1.0.9"))));
        assert_eq!(r.lookup(a("10.1.7.7")), Some((1, a("10.1.7.7"))));
        assert_eq!(r.lookup(a("8.8.8.8")), Some((0, a("198.51.100.254"))));
        assert_eq!(r.lookup(a("::1")), None);
    }
}
