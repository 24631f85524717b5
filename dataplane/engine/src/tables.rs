//! Forwarding tables: routes (longest prefix match), neighbors (ARP/ND cache with static
//! entries) and security policies (longest prefix match on the inner destination).
//!
//! These are the single-threaded tables of the offline engine; the live data plane replaces
//! them with lock-free tables behind the same lookups.

use std::collections::HashMap;
use std::net::IpAddr;

use esprit_wire::{EthernetAddress, IpCidr};

/// How long a learned neighbor is trusted (ns).
pub const NEIGHBOR_TTL: u64 = 300 * 1_000_000_000;
/// At most one resolution request per address per second.
const RESOLVE_INTERVAL: u64 = 1_000_000_000;

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
        self.v
            .sort_by_key(|r| std::cmp::Reverse(r.dst.prefix_len()));
    }

    /// The interface and next-hop address toward `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<(usize, IpAddr)> {
        self.v
            .iter()
            .find(|r| r.dst.contains(dst))
            .map(|r| (r.ifidx, r.via.unwrap_or(dst)))
    }
}

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    mac: EthernetAddress,
    ifidx: usize,
    /// `u64::MAX` for static entries.
    expires: u64,
}

/// The neighbor cache.
#[derive(Debug, Default, Clone)]
pub struct Neighbors {
    map: HashMap<IpAddr, Neighbor>,
    requested: HashMap<IpAddr, u64>,
}

impl Neighbors {
    pub fn add_static(&mut self, addr: IpAddr, mac: EthernetAddress, ifidx: usize) {
        self.map.insert(
            addr,
            Neighbor {
                mac,
                ifidx,
                expires: u64::MAX,
            },
        );
    }

    /// Learns (or refreshes) a dynamic entry; static entries are never overwritten.
    pub fn learn(&mut self, addr: IpAddr, mac: EthernetAddress, ifidx: usize, now: u64) {
        if mac.is_multicast() || addr.is_unspecified() {
            return;
        }
        match self.map.get_mut(&addr) {
            Some(n) if n.expires == u64::MAX => {}
            Some(n) => {
                *n = Neighbor {
                    mac,
                    ifidx,
                    expires: now.saturating_add(NEIGHBOR_TTL),
                }
            }
            None => {
                self.map.insert(
                    addr,
                    Neighbor {
                        mac,
                        ifidx,
                        expires: now.saturating_add(NEIGHBOR_TTL),
                    },
                );
            }
        }
        self.requested.remove(&addr);
    }

    pub fn lookup(&self, addr: IpAddr, ifidx: usize, now: u64) -> Option<EthernetAddress> {
        self.map
            .get(&addr)
            .filter(|n| n.ifidx == ifidx && now < n.expires)
            .map(|n| n.mac)
    }

    /// True if a resolution request for `addr` should go out now (rate-limited).
    pub fn should_request(&mut self, addr: IpAddr, now: u64) -> bool {
        match self.requested.get(&addr) {
            Some(&t) if now < t.saturating_add(RESOLVE_INTERVAL) => false,
            _ => {
                if self.requested.len() > 4096 {
                    self.requested
                        .retain(|_, t| now < t.saturating_add(RESOLVE_INTERVAL));
                }
                self.requested.insert(addr, now);
                true
            }
        }
    }

    /// Forgets expired dynamic entries.
    pub fn age(&mut self, now: u64) {
        self.map.retain(|_, n| now < n.expires);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub src: IpCidr,
    pub dst: IpCidr,
    pub spi: u32,
}

/// Protecting policies, most specific destination first.
#[derive(Debug, Default, Clone)]
pub struct Policies {
    v: Vec<Policy>,
}

impl Policies {
    pub fn add(&mut self, p: Policy) {
        self.v.push(p);
        self.v.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.dst.prefix_len()),
                std::cmp::Reverse(p.src.prefix_len()),
            )
        });
    }

    /// The outbound SPI protecting a packet from `src` to `dst`.
    pub fn lookup(&self, src: IpAddr, dst: IpAddr) -> Option<u32> {
        self.v
            .iter()
            .find(|p| p.dst.contains(dst) && p.src.contains(src))
            .map(|p| p.spi)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.v.iter()
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
        r.add(Route {
            dst: c("0.0.0.0/0"),
            via: Some(a("198.51.100.254")),
            ifidx: 0,
        });
        r.add(Route {
            dst: c("10.1.0.0/16"),
            via: None,
            ifidx: 1,
        });
        r.add(Route {
            dst: c("10.1.2.0/24"),
            via: Some(a("10.1.0.9")),
            ifidx: 1,
        });
        assert_eq!(r.lookup(a("10.1.2.3")), Some((1, a("10.1.0.9"))));
        assert_eq!(r.lookup(a("10.1.7.7")), Some((1, a("10.1.7.7"))));
        assert_eq!(r.lookup(a("8.8.8.8")), Some((0, a("198.51.100.254"))));
        assert_eq!(r.lookup(a("::1")), None);
    }

    #[test]
    fn neighbors_learn_age_and_respect_static() {
        let mut n = Neighbors::default();
        let m1 = "02:00:00:00:00:01".parse().unwrap();
        let m2 = "02:00:00:00:00:02".parse().unwrap();
        n.add_static(a("10.0.0.1"), m1, 0);
        n.learn(a("10.0.0.1"), m2, 0, 5);
        assert_eq!(n.lookup(a("10.0.0.1"), 0, 6), Some(m1));
        n.learn(a("10.0.0.2"), m2, 0, 5);
        assert_eq!(n.lookup(a("10.0.0.2"), 0, 6), Some(m2));
        assert_eq!(n.lookup(a("10.0.0.2"), 1, 6), None, "other interface");
        assert_eq!(n.lookup(a("10.0.0.2"), 0, 5 + NEIGHBOR_TTL), None);
        n.age(5 + NEIGHBOR_TTL);
        assert_eq!(n.len(), 1);
        assert!(n.should_request(a("10.0.0.3"), 0));
        assert!(!n.should_request(a("10.0.0.3"), 500_000_000));
        assert!(n.should_request(a("10.0.0.3"), 1_000_000_000));
    }

    #[test]
    fn policies() {
        let mut p = Policies::default();
        p.add(Policy {
            src: c("10.1.0.0/16"),
            dst: c("10.9.0.0/16"),
            spi: 1,
        });
        p.add(Policy {
            src: c("10.1.0.0/16"),
            dst: c("10.9.0.2/32"),
            spi: 2,
        });
        assert_eq!(p.lookup(a("10.1.0.5"), a("10.9.0.2")), Some(2));
        assert_eq!(p.lookup(a("10.1.0.5"), a("10.9.0.3")), Some(1));
        assert_eq!(p.lookup(a("10.2.0.5"), a("10.9.0.3")), None);
    }
}
