//! Outbound policies: which SA protects a packet from `src` to `dst`, by longest prefix match
//! on the destination (RFC 4301 §4.4.1's SPD, reduced to what a remote-access gateway
//! needs). Host destinations — every road warrior's virtual IP, a million of them — live in
//! a [`HashTable`]; the few prefix policies (site subnets) in a copy-on-write list.

use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_epoch::Guard;
use esprit_wire::IpCidr;

use crate::hash::{HashTable, TableFull, TableWriter};
use crate::rcu::Rcu;

/// One policy: traffic from `src` to `dst` goes through the outbound SA `spi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub src: IpCidr,
    pub dst: IpCidr,
    pub spi: u32,
}

/// Read side.
pub struct PolicyTable {
    /// Host destinations: (source prefix, spi) pairs, most specific source first.
    hosts: Arc<HashTable<IpAddr, Vec<(IpCidr, u32)>>>,
    /// Other destinations, most specific first.
    prefixes: Rcu<Vec<Policy>>,
}

impl core::fmt::Debug for PolicyTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PolicyTable").field("hosts", &self.hosts.len()).finish()
    }
}

fn is_host(c: &IpCidr) -> bool {
    c.prefix_len() == if c.is_ipv4() { 32 } else { 128 }
}

impl PolicyTable {
    /// A table for up to `max_hosts` host policies, and its writer.
    pub fn new(max_hosts: usize) -> (Arc<Self>, PolicyWriter) {
        let (hosts, hw) = HashTable::new(max_hosts);
        let t = Arc::new(PolicyTable { hosts, prefixes: Rcu::new(Vec::new()) });
        (t.clone(), PolicyWriter { table: t, hosts: hw })
    }

    /// The SPI protecting a packet from `src` to `dst`.
    #[inline]
    pub fn lookup(&self, src: IpAddr, dst: IpAddr, guard: &Guard) -> Option<u32> {
        self.resolve(self.hosts.get(&dst, guard), src, dst, guard)
    }

    /// The SPI for `src` → `dst`, given the host entry of `dst` (if any): the entry's first
    /// source prefix holding `src`, else the first prefix policy that matches.
    #[inline]
    fn resolve(&self, host: Option<&Vec<(IpCidr, u32)>>, src: IpAddr, dst: IpAddr, guard: &Guard) -> Option<u32> {
        if let Some(&(_, spi)) = host.and_then(|v| v.iter().find(|(s, _)| s.contains(src))) {
            return Some(spi);
        }
        self.prefixes.load(guard).iter().find(|p| p.dst.contains(dst) && p.src.contains(src)).map(|p| p.spi)
    }

    /// The SPI protecting each `(src, dst)` of `flows` into `out` (the answers of
    /// [`lookup`](Self::lookup), flow by flow), with the cache misses of a burst overlapped:
    /// the host table's slots and entries through [`HashTable::get_many`], then each entry's
    /// list. With many clients every lookup misses three times; a burst pays that about once.
    /// `out` must be at least as long as `flows`.
    pub fn lookup_many(&self, flows: &[(IpAddr, IpAddr)], guard: &Guard, out: &mut [Option<u32>]) {
        const CHUNK: usize = 32;
        debug_assert!(out.len() >= flows.len());
        let unspecified = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
        for (flows, out) in flows.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let mut dsts = [unspecified; CHUNK];
            for (d, f) in dsts.iter_mut().zip(flows) {
                *d = f.1;
            }
            let mut lists: [Option<&Vec<(IpCidr, u32)>>; CHUNK] = [None; CHUNK];
            self.hosts.get_many(&dsts[..flows.len()], guard, &mut lists);
            for l in lists.iter().flatten() {
                crate::hash::prefetch_slice(l);
            }
            for (j, (&(src, dst), o)) in flows.iter().zip(out.iter_mut()).enumerate() {
                *o = self.resolve(lists[j], src, dst, guard);
            }
        }
    }

    /// Every policy (for listings).
    pub fn all(&self, guard: &Guard) -> Vec<Policy> {
        let mut v = Vec::new();
        self.hosts.for_each(guard, |dst, list| {
            for &(src, spi) in list {
                v.push(Policy { src, dst: IpCidr::host(*dst), spi });
            }
        });
        v.extend_from_slice(self.prefixes.load(guard));
        v
    }
}

/// The one writer of a [`PolicyTable`].
pub struct PolicyWriter {
    table: Arc<PolicyTable>,
    hosts: TableWriter<IpAddr, Vec<(IpCidr, u32)>>,
}

impl core::fmt::Debug for PolicyWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PolicyWriter").finish()
    }
}

impl PolicyWriter {
    pub fn table(&self) -> &Arc<PolicyTable> {
        &self.table
    }

    /// Adds a policy, or re-points an existing one (same src and dst) to a new SPI.
    pub fn add(&mut self, p: Policy, guard: &Guard) -> Result<(), TableFull> {
        if is_host(&p.dst) {
            let key = p.dst.addr();
            let mut v = self.table.hosts.get(&key, guard).cloned().unwrap_or_default();
            v.retain(|(s, _)| *s != p.src);
            v.push((p.src, p.spi));
            v.sort_by_key(|(s, _)| std::cmp::Reverse(s.prefix_len()));
            return self.hosts.insert(key, v, guard);
        }
        self.update_prefixes(guard, |list| {
            list.retain(|x| (x.src, x.dst) != (p.src, p.dst));
            list.push(p);
            list.sort_by_key(|x| (std::cmp::Reverse(x.dst.prefix_len()), std::cmp::Reverse(x.src.prefix_len())));
        });
        Ok(())
    }

    /// Removes the policy for `src` → `dst`; true if there was one.
    pub fn remove(&mut self, src: IpCidr, dst: IpCidr, guard: &Guard) -> bool {
        if is_host(&dst) {
            let key = dst.addr();
            let Some(mut v) = self.table.hosts.get(&key, guard).cloned() else {
                return false;
            };
            let before = v.len();
            v.retain(|(s, _)| *s != src);
            let removed = v.len() != before;
            if v.is_empty() {
                self.hosts.remove(&key, guard);
            } else if removed {
                // Replacing with fewer entries cannot exceed the capacity.
                let _ = self.hosts.insert(key, v, guard);
            }
            return removed;
        }
        let mut removed = false;
        self.update_prefixes(guard, |list| {
            let n = list.len();
            list.retain(|x| (x.src, x.dst) != (src, dst));
            removed = list.len() != n;
        });
        removed
    }

    /// Removes every policy that points at `spi` (when its SA goes away).
    pub fn remove_spi(&mut self, spi: u32, guard: &Guard) -> usize {
        let mut gone = Vec::new();
        for p in self.table.all(guard) {
            if p.spi == spi {
                gone.push(p);
            }
        }
        for p in &gone {
            self.remove(p.src, p.dst, guard);
        }
        gone.len()
    }

    pub fn clear(&mut self, guard: &Guard) {
        self.hosts.clear(guard);
        self.update_prefixes(guard, Vec::clear);
    }

    fn update_prefixes(&mut self, guard: &Guard, f: impl FnOnce(&mut Vec<Policy>)) {
        let mut v = self.table.prefixes.load(guard).clone();
        f(&mut v);
        self.table.prefixes.store(v, guard);
    }
}

#[cfg(all(test, not(crossbeam_loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn c(s: &str) -> IpCidr {
        s.parse().unwrap()
    }
    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_then_prefixes() {
        let (t, mut w) = PolicyTable::new(16);
        let g = crossbeam_epoch::pin();
        w.add(Policy { src: c("10.1.0.0/16"), dst: c("10.9.0.0/16"), spi: 1 }, &g).unwrap();
        w.add(Policy { src: c("10.1.0.0/16"), dst: c("10.9.0.2/32"), spi: 2 }, &g).unwrap();
        w.add(Policy { src: c("::/0"), dst: c("2001:db8:9::2/128"), spi: 3 }, &g).unwrap();
        assert_eq!(t.lookup(a("10.1.0.5"), a("10.9.0.2"), &g), Some(2));
        assert_eq!(t.lookup(a("10.1.0.5"), a("10.9.0.3"), &g), Some(1));
        assert_eq!(t.lookup(a("10.2.0.5"), a("10.9.0.2"), &g), None);
        assert_eq!(t.lookup(a("2001:db8:1::5"), a("2001:db8:9::2"), &g), Some(3));
        w.add(Policy { src: c("10.1.0.0/16"), dst: c("10.9.0.2/32"), spi: 7 }, &g).unwrap();
        assert_eq!(t.lookup(a("10.1.0.5"), a("10.9.0.2"), &g), Some(7), "re-pointed");
        assert_eq!(w.remove_spi(7, &g), 1);
        assert_eq!(t.lookup(a("10.1.0.5"), a("10.9.0.2"), &g), Some(1), "falls back to the prefix");
        assert!(w.remove(c("10.1.0.0/16"), c("10.9.0.0/16"), &g));
        assert_eq!(t.lookup(a("10.1.0.5"), a("10.9.0.3"), &g), None);
        assert_eq!(t.all(&g).len(), 1);
        w.clear(&g);
        assert!(t.all(&g).is_empty());
    }

    #[test]
    fn lookup_many_answers_as_lookup() {
        let (t, mut w) = PolicyTable::new(4096);
        let g = crossbeam_epoch::pin();
        for i in 0..1000u32 {
            let dst = IpCidr::host(IpAddr::V4(core::net::Ipv4Addr::from(0x0a09_0000 + i)));
            w.add(Policy { src: c("10.1.0.0/16"), dst, spi: 0x1000 + i }, &g).unwrap();
        }
        w.add(Policy { src: c("10.1.0.0/16"), dst: c("10.9.0.0/16"), spi: 1 }, &g).unwrap();
        w.add(Policy { src: c("::/0"), dst: c("2001:db8:9::2/128"), spi: 3 }, &g).unwrap();
        // Host hits, a source the host entry does not cover, the prefix fallback, misses,
        // IPv6; more than one chunk.
        let srcs = ["10.1.0.5", "10.2.0.5", "192.0.2.1"];
        let dsts = ["10.9.0.7", "10.9.3.231", "10.9.200.1", "10.8.0.1", "2001:db8:9::2", "2001:db8:9::3"];
        let flows: Vec<(IpAddr, IpAddr)> =
            (0..100).map(|i| (a(srcs[i % srcs.len()]), a(dsts[i / srcs.len() % dsts.len()]))).collect();
        let mut out = vec![None; flows.len()];
        t.lookup_many(&flows, &g, &mut out);
        for (f, o) in flows.iter().zip(&out) {
            assert_eq!(*o, t.lookup(f.0, f.1, &g), "{f:?}");
        }
        assert!(out.iter().any(|o| o.is_some_and(|s| s >= 0x1000)) && out.contains(&Some(1)) && out.contains(&None));
    }
}
