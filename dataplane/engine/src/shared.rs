//! State shared by every worker lcore, and the one writer that changes it.
//!
//! [`Shared`] holds the interfaces, settings and the lock-free tables (SAs by SPI,
//! policies, routes, neighbors). Workers only read it; everything that changes it — the
//! configuration, control-plane messages, neighbor learning, NAT mapping changes — goes
//! through [`Control`], which owns the tables' writers. Workers ask for changes with
//! [`Request`]s; in the offline engine they are applied after every burst, in the live data
//! plane by the control thread.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use esprit_esp::crypto::{default_provider, provider_by_name, CryptoProvider};
use esprit_esp::sa::{Endpoint, InboundSa, OutboundSa, SaError, SaParams};
use esprit_satable::epoch::{self, Guard};
use esprit_satable::policy::Policy;
use esprit_satable::{HashTable, PolicyTable, PolicyWriter, Rcu, TableFull, TableWriter};
use esprit_wire::{EthernetAddress, IpCidr};

use crate::config::{Config, Direction, Role, Settings};
use crate::tables::{Route, Routes, NEIGHBOR_TTL};

/// Default bounds of the tables (the live data plane takes them from the configuration).
pub const DEFAULT_MAX_SAS: usize = 1 << 16;
pub const DEFAULT_MAX_NEIGHBORS: usize = 1 << 12;

/// An interface as the workers see it (its addresses are in [`Shared::addrs`]: the
/// control plane may change them).
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub role: Role,
    pub mac: EthernetAddress,
    pub mtu: u32,
}

/// Our addresses, per interface index, with their prefix lengths.
pub type Addresses = Vec<Vec<(IpAddr, u8)>>;

/// Our addresses as the workers read them: per interface, and flat per family as numbers
/// for [`Shared::is_local`], which every packet asks two or three times. (Walking the
/// per-interface lists and comparing whole `IpAddr`s took 20–30 instructions a question.)
struct LocalAddrs {
    per_if: Addresses,
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl LocalAddrs {
    fn new(per_if: Addresses) -> LocalAddrs {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for &(a, _) in per_if.iter().flatten() {
            match a {
                IpAddr::V4(a) => v4.push(a.to_bits()),
                IpAddr::V6(a) => v6.push(a.to_bits()),
            }
        }
        LocalAddrs { per_if, v4, v6 }
    }
}

/// A neighbor cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub mac: EthernetAddress,
    pub ifidx: usize,
    /// `u64::MAX` for static entries.
    pub expires: u64,
}

/// What workers read.
pub struct Shared {
    pub settings: Settings,
    pub ifs: Vec<Iface>,
    pub sa_in: Arc<HashTable<u32, InboundSa>>,
    pub sa_out: Arc<HashTable<u32, OutboundSa>>,
    pub policies: Arc<PolicyTable>,
    pub neighbors: Arc<HashTable<IpAddr, Neighbor>>,
    routes: Rcu<Routes>,
    addrs: Rcu<LocalAddrs>,
    /// Seconds between NAT keepalives (the control plane may change it).
    pub keepalive_secs: std::sync::atomic::AtomicU64,
    /// `espritctl trace`: whose packets the workers copy, and where to.
    pub trace: crate::trace::Tracer,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("interfaces", &self.ifs.len())
            .field("sa_in", &self.sa_in.len())
            .field("sa_out", &self.sa_out.len())
            .finish()
    }
}

impl Shared {
    /// True if `a` is one of our addresses.
    #[inline]
    pub fn is_local(&self, a: IpAddr, g: &Guard) -> bool {
        let l = self.addrs.load(g);
        match a {
            // `any`, not `contains`: the latter's vector set-up costs more than a scan of
            // the few addresses an appliance has.
            IpAddr::V4(a) => l.v4.iter().any(|&x| x == a.to_bits()),
            IpAddr::V6(a) => l.v6.iter().any(|&x| x == a.to_bits()),
        }
    }

    /// True if `a` is one of our addresses on interface `ifidx`.
    #[inline]
    pub fn has_addr(&self, ifidx: usize, a: IpAddr, g: &Guard) -> bool {
        self.addrs.load(g).per_if.get(ifidx).is_some_and(|l| l.iter().any(|&(x, _)| x == a))
    }

    /// Our first address of `a`'s family on interface `ifidx`.
    #[inline]
    pub fn addr_like(&self, ifidx: usize, v4: bool, g: &Guard) -> Option<IpAddr> {
        self.addrs.load(g).per_if.get(ifidx)?.iter().map(|&(x, _)| x).find(|x| x.is_ipv4() == v4)
    }

    /// The interface that has address `a`.
    #[inline]
    pub fn interface_of(&self, a: IpAddr, g: &Guard) -> Option<usize> {
        self.addrs.load(g).per_if.iter().position(|l| l.iter().any(|&(x, _)| x == a))
    }

    /// Our addresses, per interface.
    pub fn addresses<'g>(&'g self, g: &'g Guard) -> &'g Addresses {
        &self.addrs.load(g).per_if
    }

    /// The interface and next hop toward `dst`.
    #[inline]
    pub fn route(&self, dst: IpAddr, g: &Guard) -> Option<(usize, IpAddr)> {
        self.routes.load(g).lookup(dst)
    }

    /// The MAC address of `addr` on interface `ifidx`, if known and fresh.
    #[inline]
    pub fn neighbor(&self, addr: IpAddr, ifidx: usize, now: u64, g: &Guard) -> Option<EthernetAddress> {
        self.neighbors.get(&addr, g).filter(|n| n.ifidx == ifidx && now < n.expires).map(|n| n.mac)
    }

    pub fn interface_index(&self, name: &str) -> Option<usize> {
        self.ifs.iter().position(|i| i.name == name)
    }
}

/// A change a worker asks the writer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// ARP or ND taught us `addr`'s MAC (RFC 826: update an existing entry from any ARP,
    /// create one only when the ARP was for us).
    Learn { addr: IpAddr, mac: EthernetAddress, ifidx: usize, now: u64 },
    /// An authenticated packet of inbound SA `spi_in` came from a new NAT mapping.
    FollowNat { spi_in: u32, new: Endpoint },
}

/// Something the control plane should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An authenticated packet came from a new NAT mapping; the SAs now follow it
    /// (RFC 7296 §2.23).
    NatMappingChanged { spi_in: u32, old: Endpoint, new: Endpoint },
    /// A soft lifetime (volume or time) was crossed: time to rekey.
    SoftLifetime { spi: u32, direction: Direction },
    /// A hard lifetime (volume or time) was reached: the SA passes no more traffic.
    HardLifetime { spi: u32, direction: Direction },
    /// No packet on the SA for `seconds` (at least its idle threshold).
    Idle { spi: u32, direction: Direction, seconds: u32 },
    /// A path MTU was learned for an outbound SA.
    PmtuLearned { spi: u32, mtu: u32 },
    /// Fewer than 2^16 sequence numbers are left on an outbound SA: rekey now.
    SeqNearExhaustion { spi: u32 },
}

/// Why an engine could not be built or a change applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("SA {spi:#x}: {source}")]
    Sa { spi: u32, source: SaError },
    #[error("crypto provider '{0}' is not available; available: {1}")]
    Provider(String, String),
    #[error("{what}: {source}")]
    Full { what: &'static str, source: TableFull },
}

/// The one writer of the shared tables.
pub struct Control {
    sh: Arc<Shared>,
    sa_in: TableWriter<u32, InboundSa>,
    sa_out: TableWriter<u32, OutboundSa>,
    policies: PolicyWriter,
    neighbors: TableWriter<IpAddr, Neighbor>,
    routes: Routes,
    addrs: Addresses,
    /// Events from changes the writer made (NAT mapping follows, time lifetimes).
    pub events: Vec<Event>,
    pub nat_mapping_changes: u64,
    /// The clock as of the last [`sweep`](Self::sweep); new SAs' time lifetimes start here.
    now: u64,
    /// The trace under way, if any.
    trace: Option<crate::trace::TraceWriter>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("shared", &self.sh).finish()
    }
}

/// Sizes of the shared tables.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_sas: usize,
    pub max_neighbors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_sas: DEFAULT_MAX_SAS, max_neighbors: DEFAULT_MAX_NEIGHBORS }
    }
}

impl Control {
    /// Builds the shared state from `cfg`: interfaces, connected and static routes, static
    /// neighbors, manually keyed SAs and policies.
    pub fn new(cfg: &Config, limits: Limits) -> Result<(Control, Arc<Shared>), EngineError> {
        let ifs: Vec<Iface> = cfg
            .interfaces
            .iter()
            .map(|i| Iface { name: i.name.clone(), role: i.role, mac: i.mac, mtu: i.mtu })
            .collect();
        let addrs: Addresses = cfg
            .interfaces
            .iter()
            .map(|i| i.addresses.iter().map(|a| (a.addr, a.subnet.prefix_len())).collect())
            .collect();
        let mut routes = Routes::default();
        for (idx, i) in cfg.interfaces.iter().enumerate() {
            for a in &i.addresses {
                routes.add(Route { dst: a.subnet, via: None, ifidx: idx });
            }
        }
        for r in &cfg.routes {
            routes.add(Route { dst: r.destination, via: r.via, ifidx: r.interface });
        }
        let (sa_in_t, sa_in) = HashTable::new(limits.max_sas);
        let (sa_out_t, sa_out) = HashTable::new(limits.max_sas);
        let (pol_t, policies) = PolicyTable::new(limits.max_sas);
        let (nb_t, neighbors) = HashTable::new(limits.max_neighbors);
        let sh = Arc::new(Shared {
            settings: cfg.settings.clone(),
            ifs,
            sa_in: sa_in_t,
            sa_out: sa_out_t,
            policies: pol_t,
            neighbors: nb_t,
            routes: Rcu::new(routes.clone()),
            addrs: Rcu::new(LocalAddrs::new(addrs.clone())),
            keepalive_secs: std::sync::atomic::AtomicU64::new(cfg.settings.keepalive_interval),
            trace: crate::trace::Tracer::default(),
        });
        let mut c = Control {
            sh: sh.clone(),
            sa_in,
            sa_out,
            policies,
            neighbors,
            routes,
            addrs,
            events: Vec::new(),
            nat_mapping_changes: 0,
            now: 0,
            trace: None,
        };
        let g = epoch::pin();
        for n in &cfg.neighbors {
            c.neighbors
                .insert(n.address, Neighbor { mac: n.mac, ifidx: n.interface, expires: u64::MAX }, &g)
                .map_err(|source| EngineError::Full { what: "neighbor table", source })?;
        }
        for s in &cfg.sas {
            c.add_sa(s.direction, s.params.clone(), &g)?;
        }
        for p in &cfg.policies {
            c.add_policy(Policy { src: p.src, dst: p.dst, spi: p.spi }, &g)?;
        }
        Ok((c, sh))
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.sh
    }

    fn provider(&self, t: esprit_esp::Transform) -> Result<&'static dyn CryptoProvider, EngineError> {
        let want = &self.sh.settings.crypto;
        if want == "auto" {
            return Ok(default_provider(t));
        }
        provider_by_name(want)
            .filter(|p| p.supports(t))
            .ok_or_else(|| EngineError::Provider(want.clone(), esprit_esp::crypto::provider_names().join(", ")))
    }

    /// Installs (or replaces) an SA. Its memory (the SA, key schedule, table entry) comes
    /// from the SA arena when the process reserved one ([`esprit_heap::for_sas`]).
    pub fn add_sa(&mut self, dir: Direction, params: SaParams, g: &Guard) -> Result<(), EngineError> {
        let spi = params.spi;
        let p = self.provider(params.transform)?;
        esprit_heap::for_sas(|| match dir {
            Direction::In => {
                let sa = InboundSa::new(params, p).map_err(|source| EngineError::Sa { spi, source })?;
                sa.clock.start(self.now);
                self.sa_in.insert(spi, sa, g).map_err(|source| EngineError::Full { what: "inbound SA table", source })
            }
            Direction::Out => {
                let sa = OutboundSa::new(params, p).map_err(|source| EngineError::Sa { spi, source })?;
                sa.clock.start(self.now);
                self.sa_out.insert(spi, sa, g).map_err(|source| EngineError::Full { what: "outbound SA table", source })
            }
        })
    }

    /// Removes an SA (and, for an outbound one, the policies pointing at it: their traffic
    /// is then dropped as `no_policy` — never sent in clear).
    pub fn delete_sa(&mut self, dir: Direction, spi: u32, g: &Guard) -> bool {
        match dir {
            Direction::In => self.sa_in.remove(&spi, g),
            Direction::Out => self.sa_out.remove(&spi, g),
        }
    }

    pub fn add_policy(&mut self, p: Policy, g: &Guard) -> Result<(), EngineError> {
        self.policies.add(p, g).map_err(|source| EngineError::Full { what: "policy table", source })
    }

    pub fn delete_policy(&mut self, src: IpCidr, dst: IpCidr, g: &Guard) -> bool {
        self.policies.remove(src, dst, g)
    }

    pub fn add_route(&mut self, r: Route, g: &Guard) {
        self.routes.add(r);
        self.publish_routes(g);
    }

    /// Removes the route to `dst` (with that gateway, if given); true if there was one.
    pub fn delete_route(&mut self, dst: IpCidr, via: Option<IpAddr>, g: &Guard) -> bool {
        let removed = self.routes.remove(dst, via);
        if removed {
            self.publish_routes(g);
        }
        removed
    }

    /// Adds an address to interface `ifidx`, with its connected route. False if it was there.
    pub fn add_address(&mut self, ifidx: usize, addr: IpAddr, prefix_len: u8, g: &Guard) -> Result<bool, String> {
        let subnet = IpCidr::new(addr, prefix_len).map_err(|_| format!("{addr}/{prefix_len} is not a prefix"))?;
        if self.addrs.iter().flatten().any(|&(a, _)| a == addr) {
            return Ok(false);
        }
        let Some(list) = self.addrs.get_mut(ifidx) else {
            return Err(format!("no interface with index {ifidx}"));
        };
        list.push((addr, prefix_len));
        self.sh.addrs.store(LocalAddrs::new(self.addrs.clone()), g);
        self.add_route(Route { dst: subnet, via: None, ifidx }, g);
        Ok(true)
    }

    /// Removes an address from interface `ifidx`, and its connected route unless another
    /// address of the interface is in the same subnet. False if it was not there.
    pub fn remove_address(&mut self, ifidx: usize, addr: IpAddr, g: &Guard) -> bool {
        let Some(list) = self.addrs.get_mut(ifidx) else {
            return false;
        };
        let Some(at) = list.iter().position(|&(a, _)| a == addr) else {
            return false;
        };
        let (_, len) = list.remove(at);
        let subnet = IpCidr::new(addr, len);
        let shared_subnet = subnet.is_ok_and(|s| list.iter().any(|&(a, l)| IpCidr::new(a, l) == Ok(s)));
        self.sh.addrs.store(LocalAddrs::new(self.addrs.clone()), g);
        if let (Ok(s), false) = (subnet, shared_subnet) {
            self.delete_route(s, None, g);
        }
        true
    }

    /// Deletes every SA and policy (before a full resynchronisation).
    pub fn flush(&mut self, g: &Guard) {
        self.sa_in.clear(g);
        self.sa_out.clear(g);
        self.policies.clear(g);
    }

    /// Follows a NAT mapping change the control plane decided on: both SAs of the pair.
    pub fn set_peer(&mut self, spi_in: u32, spi_out: u32, e: Endpoint, g: &Guard) -> Result<(), &'static str> {
        let i = self.sh.sa_in.get(&spi_in, g).ok_or("no inbound SA with that SPI")?;
        let o = self.sh.sa_out.get(&spi_out, g).ok_or("no outbound SA with that SPI")?;
        o.set_peer(e).map_err(|_| "address family differs from the SA's")?;
        i.set_peer(e);
        Ok(())
    }
    fn publish_routes(&mut self, g: &Guard) {
        self.sh.routes.store(self.routes.clone(), g);
    }

    /// Applies the workers' requests.
    pub fn apply(&mut self, reqs: impl IntoIterator<Item = Request>) {
        let g = epoch::pin();
        for r in reqs {
            match r {
                Request::Learn { addr, mac, ifidx, now } => {
                    if let Some(n) = self.sh.neighbors.get(&addr, &g) {
                        if n.expires == u64::MAX
                            || (n.mac == mac && n.ifidx == ifidx && n.expires > now + NEIGHBOR_TTL / 2)
                        {
                            continue; // static, or fresh and unchanged
                        }
                    }
                    // A full table keeps its entries; the lookup then fails and is counted.
                    let _ = self.neighbors.insert(
                        addr,
                        Neighbor { mac, ifidx, expires: now.saturating_add(NEIGHBOR_TTL) },
                        &g,
                    );
                }
                Request::FollowNat { spi_in, new } => self.follow_nat(spi_in, new, &g),
            }
        }
    }

    /// RFC 7296 §2.23: after an authenticated, non-replayed packet from a new address or
    /// port on a NAT-T SA, send to that address from now on — every outbound SA toward
    /// the old mapping moves with it.
    fn follow_nat(&mut self, spi_in: u32, new: Endpoint, g: &Guard) {
        let Some(sa) = self.sh.sa_in.get(&spi_in, g) else {
            return;
        };
        let old = sa.peer();
        if old == new || !sa.is_udp_encap() {
            return;
        }
        sa.set_peer(new);
        self.sh.sa_out.for_each(g, |_, o| {
            if o.peer() == old && o.is_udp_encap() {
                // A family change was filtered by the SA lookup (same local address).
                let _ = o.set_peer(new);
            }
        });
        self.nat_mapping_changes += 1;
        self.events.push(Event::NatMappingChanged { spi_in, old, new });
    }

    /// Sets the writer's clock (new SAs' time lifetimes start from it). The SAs of the
    /// configuration, installed before the clock was first set, start at its first reading.
    /// Starts trace `id` (ending any trace under way) into `dir`, or with an empty `dir`
    /// stops trace `id`.
    pub fn trace(&mut self, id: u32, peer: Option<IpAddr>, dir: &str, max_packets: u32) -> Result<(), String> {
        let t = &self.sh.trace;
        if dir.is_empty() {
            return match self.trace.take() {
                Some(w) if w.id == id => {
                    let s = w.stop(t)?;
                    eprintln!(
                        "esprit-dataplane: trace {id} stopped: {} ESP and {} inner packets written, {} left out",
                        s.esp_packets, s.inner_packets, s.left_out
                    );
                    Ok(())
                }
                other => {
                    self.trace = other;
                    Err(format!("no trace {id} under way"))
                }
            };
        }
        if let Some(w) = self.trace.take() {
            let _ = w.stop(t);
        }
        let w = crate::trace::TraceWriter::start(t, id, peer, std::path::Path::new(dir), max_packets, self.now)?;
        self.trace = Some(w);
        Ok(())
    }

    /// Ends the trace under way, if any (a control plane that flushes everything restarted:
    /// nobody will stop its trace).
    pub fn end_trace(&mut self) {
        if let Some(w) = self.trace.take() {
            let _ = w.stop(&self.sh.trace);
        }
    }

    /// Writes what the workers captured for the trace under way (the control thread, often).
    pub fn drain_trace(&mut self) {
        if let Some(w) = self.trace.as_mut() {
            if let Err(e) = w.drain(&self.sh.trace) {
                eprintln!("esprit-dataplane: trace stopped: {e}");
                if let Some(w) = self.trace.take() {
                    let _ = w.stop(&self.sh.trace);
                }
            }
        }
    }

    pub fn set_now(&mut self, now: u64) {
        if self.now == 0 && now != 0 {
            let g = epoch::pin();
            self.sh.sa_in.for_each(&g, |_, sa| sa.clock.start(now));
            self.sh.sa_out.for_each(&g, |_, sa| sa.clock.start(now));
        }
        self.now = now;
    }

    /// Checks every SA's time lifetimes and idle threshold (call about once a second): SAs
    /// past their hard time stop passing traffic; the findings become [`Event`]s.
    pub fn sweep(&mut self, now: u64) {
        self.set_now(now);
        let g = epoch::pin();
        let mut found = Vec::new();
        let mut note = |spi: u32, direction: Direction, s: esprit_esp::sa::Sweep| {
            if s.soft_expired {
                found.push(Event::SoftLifetime { spi, direction });
            }
            if s.hard_expired {
                found.push(Event::HardLifetime { spi, direction });
            }
            if let Some(seconds) = s.idle_secs {
                found.push(Event::Idle { spi, direction, seconds });
            }
        };
        self.sh.sa_in.for_each(&g, |spi, sa| note(*spi, Direction::In, sa.sweep(now)));
        self.sh.sa_out.for_each(&g, |spi, sa| note(*spi, Direction::Out, sa.sweep(now)));
        self.events.extend(found);
    }

    /// Forgets expired dynamic neighbors (call every few seconds).
    pub fn age_neighbors(&mut self, now: u64) {
        let g = epoch::pin();
        let mut stale = Vec::new();
        self.sh.neighbors.for_each(&g, |a, n| {
            if now >= n.expires {
                stale.push(*a);
            }
        });
        for a in stale {
            self.neighbors.remove(&a, &g);
        }
    }

    /// Every SPI installed, per direction (for listings and tests).
    pub fn spis(&self, dir: Direction) -> Vec<u32> {
        let g = epoch::pin();
        let mut v = Vec::new();
        match dir {
            Direction::In => self.sh.sa_in.for_each(&g, |k, _| v.push(*k)),
            Direction::Out => self.sh.sa_out.for_each(&g, |k, _| v.push(*k)),
        }
        v.sort_unstable();
        v
    }
}

/// Neighbor request bookkeeping local to a worker: at most one ARP/NS per address per
/// second.
#[derive(Debug, Default)]
pub struct ResolveLimiter {
    requested: HashMap<IpAddr, u64>,
}

impl ResolveLimiter {
    pub fn should_request(&mut self, addr: IpAddr, now: u64) -> bool {
        const INTERVAL: u64 = 1_000_000_000;
        match self.requested.get(&addr) {
            Some(&t) if now < t.saturating_add(INTERVAL) => false,
            _ => {
                if self.requested.len() > 4096 {
                    self.requested.retain(|_, t| now < t.saturating_add(INTERVAL));
                }
                self.requested.insert(addr, now);
                true
            }
        }
    }
}
