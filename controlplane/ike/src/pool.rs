//! Virtual IP pools (RFC 7296 §2.19): each connected client gets an address of its own, even
//! when several share one NAT and one identity; a client that comes back gets its previous
//! address again if nobody else holds it.

use core::net::IpAddr;
use std::collections::HashMap;

use esprit_wire::IpCidr;

/// Who holds a lease: an IKE SA, by an id the caller chooses (our IKE SPI).
pub type Holder = u64;

/// Why a pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    #[error("pool '{name}': {why}")]
    Invalid { name: String, why: String },
}

/// One pool of addresses of one family.
#[derive(Debug, Clone)]
pub struct Pool {
    name: String,
    v4: bool,
    first: u128,
    /// Number of addresses.
    size: u128,
    leases: HashMap<u128, Holder>,
    /// The other way round: each holder's address (one per pool).
    held: HashMap<Holder, u128>,
    /// The address each identity last had (kept after release, for stickiness).
    last: HashMap<String, u128>,
    /// How many identities have each address as their last one (the values of `last`,
    /// counted: a lookup instead of a walk of every identity per new lease).
    remembered: HashMap<u128, u32>,
    /// Where the search for a free address resumes.
    cursor: u128,
}

fn as_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Pool {
    /// A pool of a prefix (`10.9.0.0/24`: the network and broadcast addresses are left out,
    /// as strongSwan does) or of a range (`10.9.0.10-10.9.0.99`).
    pub fn new(name: &str, spec: &str) -> Result<Pool, PoolError> {
        let bad = |why: String| PoolError::Invalid { name: name.to_string(), why };
        let (start, end) = if let Some((a, b)) = spec.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| bad(format!("'{a}' is not an address")))?;
            let b: IpAddr = b.trim().parse().map_err(|_| bad(format!("'{b}' is not an address")))?;
            if a.is_ipv4() != b.is_ipv4() || as_u128(a) > as_u128(b) {
                return Err(bad(format!("'{spec}' is not a range")));
            }
            (as_u128(a), as_u128(b))
        } else {
            let c: IpCidr = spec
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{spec}' is neither a prefix (10.9.0.0/24) nor a range (a-b)")))?;
            let bits = if c.is_ipv4() { 32 } else { 128 };
            let host_bits = bits - c.prefix_len() as u32;
            let first = as_u128(c.addr());
            let last = if host_bits >= 128 { u128::MAX } else { first + ((1u128 << host_bits) - 1) };
            // Network and broadcast addresses (IPv4 subnets of 4 and more addresses).
            if c.is_ipv4() && host_bits >= 2 {
                (first + 1, last - 1)
            } else {
                (first, last)
            }
        };
        let size = (end - start).saturating_add(1);
        let v4 = !spec.contains(':');
        Ok(Pool {
            name: name.to_string(),
            v4,
            first: start,
            size,
            leases: HashMap::new(),
            held: HashMap::new(),
            last: HashMap::new(),
            remembered: HashMap::new(),
            cursor: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn is_ipv4(&self) -> bool {
        self.v4
    }
    /// Addresses leased now.
    pub fn in_use(&self) -> usize {
        self.leases.len()
    }
    /// Addresses in the pool.
    pub fn size(&self) -> u128 {
        self.size
    }

    fn addr(&self, x: u128) -> IpAddr {
        if self.v4 {
            IpAddr::V4((x as u32).into())
        } else {
            IpAddr::V6(x.into())
        }
    }

    fn contains(&self, x: u128) -> bool {
        x >= self.first && x - self.first < self.size
    }

    /// An address for `holder`, whose peer is `identity`: the one it asked for if free, else
    /// the one this identity had last if free, else the next free one. `None`: exhausted.
    pub fn acquire(&mut self, holder: Holder, identity: &str, requested: Option<IpAddr>) -> Option<IpAddr> {
        if let Some(&x) = self.held.get(&holder) {
            return Some(self.addr(x));
        }
        let wanted = requested.filter(|a| a.is_ipv4() == self.v4 && !a.is_unspecified()).map(as_u128);
        let sticky = self.last.get(identity).copied();
        let pick = [wanted, sticky]
            .into_iter()
            .flatten()
            .find(|x| self.contains(*x) && !self.leases.contains_key(x))
            .or_else(|| self.next_free())?;
        self.leases.insert(pick, holder);
        self.held.insert(holder, pick);
        self.remember(identity, pick);
        Some(self.addr(pick))
    }

    /// Leases exactly `addr` to `holder` (an IKE SA restored from its checkpoint): false if
    /// it is not in this pool or leased to another holder.
    pub fn acquire_exactly(&mut self, holder: Holder, identity: &str, addr: IpAddr) -> bool {
        if addr.is_ipv4() != self.v4 {
            return false;
        }
        let x = as_u128(addr);
        if !self.contains(x) || self.leases.get(&x).is_some_and(|h| *h != holder) {
            return false;
        }
        if let Some(old) = self.held.insert(holder, x) {
            if old != x {
                self.leases.remove(&old);
            }
        }
        self.leases.insert(x, holder);
        self.remember(identity, x);
        true
    }

    /// Records `x` as `identity`'s last address.
    fn remember(&mut self, identity: &str, x: u128) {
        match self.last.insert(identity.to_string(), x) {
            Some(old) if old == x => return,
            Some(old) => {
                if let Some(n) = self.remembered.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        self.remembered.remove(&old);
                    }
                }
            }
            None => {}
        }
        *self.remembered.entry(x).or_insert(0) += 1;
    }

    fn next_free(&mut self) -> Option<u128> {
        if self.leases.len() as u128 >= self.size {
            return None;
        }
        // Addresses nobody held recently come first, so that a returning client's sticky
        // address is still free when it comes back.
        let mut fallback = None;
        let tries = self.size.min(1 << 20);
        for i in 0..tries {
            let off = (self.cursor + i) % self.size;
            let x = self.first + off;
            if self.leases.contains_key(&x) {
                continue;
            }
            if !self.remembered.contains_key(&x) {
                self.cursor = (off + 1) % self.size;
                return Some(x);
            }
            fallback.get_or_insert(x);
        }
        fallback
    }

    /// Gives back `holder`'s address (if it has one here).
    pub fn release(&mut self, holder: Holder) -> Option<IpAddr> {
        let x = self.held.remove(&holder)?;
        self.leases.remove(&x);
        Some(self.addr(x))
    }

    /// Frees the address `identity` holds (its holder is being replaced: INITIAL_CONTACT), so
    /// that the replacing SA gets the same one. The old holder's later `release` finds nothing.
    pub fn reclaim(&mut self, identity: &str) {
        if let Some(x) = self.last.get(identity) {
            if let Some(h) = self.leases.remove(x) {
                self.held.remove(&h);
            }
        }
    }

    /// Moves a lease to another holder (an IKE SA rekeyed into a new one).
    pub fn transfer(&mut self, from: Holder, to: Holder) {
        if let Some(x) = self.held.remove(&from) {
            // One address per holder: the one the client was given wins over any other.
            if let Some(other) = self.held.insert(to, x) {
                self.leases.remove(&other);
            }
            self.leases.insert(x, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unique_addresses_even_for_one_identity() {
        let mut p = Pool::new("rw", "10.9.0.0/24").unwrap();
        assert_eq!(p.size(), 254);
        let a = p.acquire(1, "psk-group", None).unwrap();
        let b = p.acquire(2, "psk-group", None).unwrap();
        assert_ne!(a, b, "two clients behind one NAT with one identity");
        assert_eq!(a, ip("10.9.0.1"));
        assert_eq!(p.acquire(1, "psk-group", None), Some(a), "idempotent per holder");
        assert_eq!(p.in_use(), 2);
    }

    #[test]
    fn sticky_and_requested() {
        let mut p = Pool::new("rw", "10.9.0.10-10.9.0.12").unwrap();
        let a = p.acquire(1, "alice", None).unwrap();
        p.acquire(2, "bob", None).unwrap();
        assert_eq!(p.release(1), Some(a));
        // Another newcomer does not take alice's address while a never-used one is free.
        let c = p.acquire(3, "carol", None).unwrap();
        assert_ne!(c, a);
        assert_eq!(p.acquire(4, "alice", None), Some(a), "alice gets her address back");
        assert_eq!(p.acquire(5, "dave", None), None, "exhausted");
        p.release(3);
        assert_eq!(p.acquire(6, "dave", Some(c)), Some(c), "a requested free address is honoured");
        assert_eq!(p.acquire(7, "erin", Some(ip("10.9.0.99"))), None, "outside the pool, and none free");
    }

    #[test]
    fn reclaim_hands_the_address_to_the_replacing_sa() {
        let mut p = Pool::new("rw", "10.9.0.0/24").unwrap();
        let a = p.acquire(1, "alice", None).unwrap();
        p.reclaim("alice");
        assert_eq!(p.acquire(2, "alice", None), Some(a), "INITIAL_CONTACT: the same address");
        assert_eq!(p.release(1), None, "the replaced SA's release frees nothing");
        assert_eq!(p.in_use(), 1);
        p.reclaim("nobody");
        assert_eq!(p.in_use(), 1);
    }

    #[test]
    fn bounds_and_errors() {
        assert_eq!(Pool::new("p", "10.0.0.0/31").unwrap().size(), 2);
        assert_eq!(Pool::new("p", "10.0.0.5/32").unwrap().size(), 1);
        let mut v6 = Pool::new("p6", "fd00::/120").unwrap();
        assert_eq!(v6.acquire(1, "x", None), Some(ip("fd00::")));
        assert!(Pool::new("p", "10.0.0.9-10.0.0.1").is_err());
        assert!(Pool::new("p", "bogus").unwrap_err().to_string().contains("neither a prefix"));
        let mut p = Pool::new("p", "10.0.0.0/30").unwrap();
        let a = p.acquire(1, "x", None).unwrap();
        p.transfer(1, 9);
        assert_eq!(p.release(1), None);
        assert_eq!(p.release(9), Some(a));
    }

    /// The indexes (holder → address, remembered addresses) never disagree with the leases
    /// and identities they index, whatever the sequence of operations; checked against a
    /// plain model of what is leased to whom.
    #[test]
    fn indexes_follow_the_leases() {
        use proptest::prelude::*;
        #[derive(Debug, Clone)]
        enum Op {
            Acquire(u64, u8, Option<u8>),
            Release(u64),
            Transfer(u64, u64),
            Reclaim(u8),
        }
        let op = prop_oneof![
            (0u64..12, 0u8..6, proptest::option::of(0u8..10)).prop_map(|(h, i, r)| Op::Acquire(h, i, r)),
            (0u64..12).prop_map(Op::Release),
            (0u64..12, 0u64..12).prop_map(|(a, b)| Op::Transfer(a, b)),
            (0u8..6).prop_map(Op::Reclaim),
        ];
        proptest!(ProptestConfig::with_cases(512), |(ops in proptest::collection::vec(op, 1..60))| {
            let mut p = Pool::new("rw", "10.9.0.1-10.9.0.8").unwrap();
            for o in ops {
                match o {
                    Op::Acquire(h, i, r) => {
                        let before = p.held.get(&h).copied();
                        let got = p.acquire(h, &format!("id{i}"), r.map(|r| IpAddr::from([10, 9, 0, r])));
                        if let Some(x) = before {
                            prop_assert_eq!(got, Some(p.addr(x)), "a holder keeps its address");
                        }
                    }
                    Op::Release(h) => {
                        let had = p.held.get(&h).copied();
                        prop_assert_eq!(p.release(h), had.map(|x| p.addr(x)));
                    }
                    Op::Transfer(a, b) => p.transfer(a, b),
                    Op::Reclaim(i) => p.reclaim(&format!("id{i}")),
                }
                // Every lease is indexed by its holder and the other way round, one per holder.
                prop_assert_eq!(p.leases.len(), p.held.len());
                for (x, h) in &p.leases {
                    prop_assert_eq!(p.held.get(h), Some(x));
                }
                // The remembered counts are exactly the values of `last`.
                let mut counted: HashMap<u128, u32> = HashMap::new();
                for x in p.last.values() {
                    *counted.entry(*x).or_insert(0) += 1;
                }
                prop_assert_eq!(&counted, &p.remembered);
                prop_assert!(p.leases.keys().all(|x| p.contains(*x)));
            }
        });
    }
}
