//! The forwarding engine: what esprit-dataplane does with each frame.
//!
//! Outside: ARP/ND, then NAT-T classification → ESP grouped by SA and decapsulated in one
//! burst per SA → inner packets routed to the inside; IKE punted; keepalives counted; ICMP
//! path-MTU information applied to SAs; outer fragments reassembled first.
//!
//! Inside: ARP/ND, then policy lookup → MTU check (ICMP fragmentation-needed / Packet Too
//! Big back to the sender, or fragmentation of inner IPv4 without DF) → encapsulation grouped
//! by SA → outer packets routed to the peer's current NAT mapping. A packet that matches a
//! protecting policy whose SA is missing is dropped, never sent in clear.
//!
//! The engine is sans-IO: frames come in through [`Engine::rx`], the clock is passed in, and
//! frames to transmit wait in per-interface queues for the driver (pcap files, AF_PACKET,
//! DPDK) to send.

use std::collections::HashMap;
use std::net::IpAddr;

use arrayvec::ArrayVec;
use esprit_esp::classify::{classify, Class, PmtuInfo};
use esprit_esp::crypto::{default_provider, provider_by_name, CryptoProvider};
use esprit_esp::frag::{FragError, FragmentsV4};
use esprit_esp::icmp::{self, RateLimiter};
use esprit_esp::reasm::{ReasmConfig, Reassembler};
use esprit_esp::sa::{Endpoint, InboundMeta, InboundSa, OutboundSa, SaError};
use esprit_esp::{DropCounters, DropReason, PacketBuf, MAX_BURST};
use esprit_wire::{arp, ethernet, icmpv6, ip_proto, ipv4, ipv6, EthernetAddress};

use crate::config::{Config, Direction, Role, Settings};
use crate::local;
use crate::tables::{Neighbors, Policies, Policy, Route, Routes};

const SEC: u64 = 1_000_000_000;

/// A source of packet buffers.
pub trait BufPool {
    type Buf: PacketBuf;
    /// An empty buffer with the default headroom, or `None` if the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Returns a buffer.
    fn free(&mut self, b: Self::Buf);
    /// An empty buffer with room for `len` bytes after the default headroom (reassembled
    /// datagrams can exceed a normal buffer), or `None`.
    fn alloc_len(&mut self, len: usize) -> Option<Self::Buf> {
        let b = self.alloc()?;
        if b.tailroom() >= len {
            Some(b)
        } else {
            self.free(b);
            None
        }
    }
}

/// A pool of heap buffers, for the offline mode, tests and benches.
#[derive(Debug)]
pub struct HeapPool {
    free: Vec<esprit_esp::HeapBuf>,
    outstanding: usize,
    limit: usize,
}

impl HeapPool {
    /// A pool that hands out at most `limit` buffers at once.
    pub fn new(limit: usize) -> HeapPool {
        HeapPool {
            free: Vec::new(),
            outstanding: 0,
            limit,
        }
    }
    /// A buffer holding a copy of `frame`.
    pub fn alloc_frame(&mut self, frame: &[u8]) -> Option<esprit_esp::HeapBuf> {
        let mut b = self.alloc_len(frame.len())?;
        if !b.append(frame.len()) {
            self.free(b);
            return None;
        }
        b.data_mut().copy_from_slice(frame);
        Some(b)
    }
    /// Returns a buffer (the `BufPool::free` of this pool, callable without the trait).
    pub fn free_buf(&mut self, b: esprit_esp::HeapBuf) {
        <Self as BufPool>::free(self, b)
    }
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }
}

impl BufPool for HeapPool {
    type Buf = esprit_esp::HeapBuf;
    fn alloc(&mut self) -> Option<Self::Buf> {
        if self.outstanding >= self.limit {
            return None;
        }
        self.outstanding += 1;
        let mut b = self.free.pop().unwrap_or_default();
        b.reset(esprit_esp::buf::DEFAULT_HEADROOM);
        Some(b)
    }
    fn free(&mut self, b: Self::Buf) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.free.len() < 4096 && b.capacity() == esprit_esp::buf::DEFAULT_CAPACITY {
            self.free.push(b);
        }
    }
    fn alloc_len(&mut self, len: usize) -> Option<Self::Buf> {
        if len + esprit_esp::buf::DEFAULT_HEADROOM <= esprit_esp::buf::DEFAULT_CAPACITY {
            return self.alloc();
        }
        if self.outstanding >= self.limit {
            return None;
        }
        self.outstanding += 1;
        Some(esprit_esp::HeapBuf::new(
            esprit_esp::buf::DEFAULT_HEADROOM + len + 64,
            esprit_esp::buf::DEFAULT_HEADROOM,
        ))
    }
}

/// Per-interface counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IfStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// What the engine did, besides drops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub esp_decrypted: u64,
    pub esp_encrypted: u64,
    pub ike_punted: u64,
    pub keepalives_rx: u64,
    pub keepalives_tx: u64,
    pub icmp_frag_needed_tx: u64,
    pub icmp_packet_too_big_tx: u64,
    pub icmp_time_exceeded_tx: u64,
    pub icmp_echo_replies_tx: u64,
    pub pmtu_icmp_rx: u64,
    pub pmtu_updates: u64,
    pub inner_fragmented: u64,
    pub fragments_out: u64,
    pub fragments_held: u64,
    pub reassembled: u64,
    pub mss_clamped: u64,
    pub arp_rx: u64,
    pub arp_replies_tx: u64,
    pub arp_requests_tx: u64,
    pub nd_rx: u64,
    pub nd_adverts_tx: u64,
    pub nd_solicits_tx: u64,
    pub nat_mapping_changes: u64,
}

/// Something the control plane should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An authenticated packet came from a new NAT mapping; the SAs now follow it
    /// (RFC 7296 §2.23).
    NatMappingChanged {
        spi_in: u32,
        old: Endpoint,
        new: Endpoint,
    },
    /// A soft volume lifetime was crossed: time to rekey.
    SoftLifetime { spi: u32, direction: Direction },
    /// A path MTU was learned for an outbound SA.
    PmtuLearned { spi: u32, mtu: u32 },
}

/// An IKE datagram for the control plane.
#[derive(Debug)]
pub struct Punted<B> {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// The IP packet; the IKE message starts at `ike_offset` (past any non-ESP marker).
    pub buf: B,
    pub ike_offset: usize,
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("SA {spi:#x}: {source}")]
    Sa { spi: u32, source: SaError },
    #[error("crypto provider '{0}' is not available; available: {1}")]
    Provider(String, String),
}

struct Iface {
    name: String,
    role: Role,
    mac: EthernetAddress,
    addrs: Vec<IpAddr>,
    mtu: u32,
}

struct InEntry {
    sa: InboundSa,
}

/// The data plane's forwarding state and logic.
pub struct Engine<P: BufPool> {
    settings: Settings,
    ifs: Vec<Iface>,
    routes: Routes,
    neighbors: Neighbors,
    policies: Policies,
    sad_in: HashMap<u32, InEntry>,
    sad_out: HashMap<u32, OutboundSa>,
    reasm: Reassembler,
    icmp_rl: RateLimiter,
    last_keepalive: HashMap<u32, u64>,
    pool: P,
    tx: Vec<Vec<P::Buf>>,
    /// IKE datagrams for the control plane, if one is attached.
    pub punted: Vec<Punted<P::Buf>>,
    ike_listener: bool,
    pub events: Vec<Event>,
    pub drops: DropCounters,
    pub counters: Counters,
    pub if_stats: Vec<IfStats>,
}

impl<P: BufPool> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("interfaces", &self.ifs.len())
            .field("sas_in", &self.sad_in.len())
            .field("sas_out", &self.sad_out.len())
            .finish()
    }
}

type Batch<B, M> = ArrayVec<(B, M), MAX_BURST>;

impl<P: BufPool> Engine<P> {
    pub fn new(cfg: &Config, pool: P) -> Result<Self, EngineError> {
        let provider_for = |t| -> Result<&'static dyn CryptoProvider, EngineError> {
            if cfg.settings.crypto == "auto" {
                return Ok(default_provider(t));
            }
            provider_by_name(&cfg.settings.crypto)
                .filter(|p| p.supports(t))
                .ok_or_else(|| {
                    EngineError::Provider(
                        cfg.settings.crypto.clone(),
                        esprit_esp::crypto::provider_names().join(", "),
                    )
                })
        };
        let ifs: Vec<Iface> = cfg
            .interfaces
            .iter()
            .map(|i| Iface {
                name: i.name.clone(),
                role: i.role,
                mac: i.mac,
                addrs: i.addresses.iter().map(|a| a.addr).collect(),
                mtu: i.mtu,
            })
            .collect();
        let mut routes = Routes::default();
        for (idx, i) in cfg.interfaces.iter().enumerate() {
            for a in &i.addresses {
                routes.add(Route {
                    dst: a.subnet,
                    via: None,
                    ifidx: idx,
                });
            }
        }
        for r in &cfg.routes {
            routes.add(Route {
                dst: r.destination,
                via: r.via,
                ifidx: r.interface,
            });
        }
        let mut neighbors = Neighbors::default();
        for n in &cfg.neighbors {
            neighbors.add_static(n.address, n.mac, n.interface);
        }
        let mut policies = Policies::default();
        for p in &cfg.policies {
            policies.add(Policy {
                src: p.src,
                dst: p.dst,
                spi: p.spi,
            });
        }
        let mut sad_in = HashMap::new();
        let mut sad_out = HashMap::new();
        for s in &cfg.sas {
            let p = provider_for(s.params.transform)?;
            let spi = s.params.spi;
            match s.direction {
                Direction::In => {
                    let sa = InboundSa::new(s.params.clone(), p)
                        .map_err(|source| EngineError::Sa { spi, source })?;
                    sad_in.insert(spi, InEntry { sa });
                }
                Direction::Out => {
                    let sa = OutboundSa::new(s.params.clone(), p)
                        .map_err(|source| EngineError::Sa { spi, source })?;
                    sad_out.insert(spi, sa);
                }
            }
        }
        let st = &cfg.settings;
        Ok(Engine {
            reasm: Reassembler::new(ReasmConfig {
                slots: st.reassembly_slots,
                max_datagram: st.reassembly_max,
                timeout_ns: st.reassembly_timeout_ms * 1_000_000,
            }),
            icmp_rl: RateLimiter::new(st.icmp_rate, st.icmp_burst),
            settings: st.clone(),
            tx: ifs.iter().map(|_| Vec::new()).collect(),
            if_stats: vec![IfStats::default(); ifs.len()],
            ifs,
            routes,
            neighbors,
            policies,
            sad_in,
            sad_out,
            last_keepalive: HashMap::new(),
            pool,
            punted: Vec::new(),
            ike_listener: false,
            events: Vec::new(),
            drops: DropCounters::default(),
            counters: Counters::default(),
        })
    }

    /// Whether IKE is punted (a control plane is attached) or dropped as `ike_no_listener`.
    pub fn set_ike_listener(&mut self, on: bool) {
        self.ike_listener = on;
    }

    pub fn interface_names(&self) -> impl Iterator<Item = &str> {
        self.ifs.iter().map(|i| i.name.as_str())
    }

    pub fn interface_index(&self, name: &str) -> Option<usize> {
        self.ifs.iter().position(|i| i.name == name)
    }

    pub fn inbound_sa(&self, spi: u32) -> Option<&InboundSa> {
        self.sad_in.get(&spi).map(|e| &e.sa)
    }

    pub fn outbound_sa(&self, spi: u32) -> Option<&OutboundSa> {
        self.sad_out.get(&spi)
    }

    pub fn pool(&mut self) -> &mut P {
        &mut self.pool
    }

    /// Frames waiting to be sent on interface `ifidx`.
    pub fn tx_queue(&mut self, ifidx: usize) -> &mut Vec<P::Buf> {
        &mut self.tx[ifidx]
    }

    fn is_local(&self, a: IpAddr) -> bool {
        self.ifs.iter().any(|i| i.addrs.contains(&a))
    }

    fn drop_pkt(&mut self, b: P::Buf, r: DropReason) {
        self.drops.inc(r);
        self.pool.free(b);
    }

    /// Processes frames received on interface `ifidx` at time `now` (ns).
    pub fn rx(&mut self, ifidx: usize, frames: impl IntoIterator<Item = P::Buf>, now: u64) {
        let role = self.ifs[ifidx].role;
        let mut esp: Batch<P::Buf, InboundMeta> = ArrayVec::new();
        let mut esp_spi = 0u32;
        let mut out: Batch<P::Buf, ()> = ArrayVec::new();
        let mut out_spi = 0u32;
        for b in frames {
            self.if_stats[ifidx].rx_packets += 1;
            self.if_stats[ifidx].rx_bytes += b.len() as u64;
            let Some(b) = self.l2_in(ifidx, b, now) else {
                continue;
            };
            match role {
                Role::Outside => {
                    if let Some((b, spi, m)) = self.outside_ip(ifidx, b, now) {
                        if (esp.is_full() || spi != esp_spi) && !esp.is_empty() {
                            self.flush_inbound(esp_spi, &mut esp, &mut out, &mut out_spi, now);
                        }
                        esp_spi = spi;
                        esp.push((b, m));
                    }
                }
                Role::Inside => self.inside_ip(ifidx, b, &mut out, &mut out_spi, now),
            }
        }
        if !esp.is_empty() {
            self.flush_inbound(esp_spi, &mut esp, &mut out, &mut out_spi, now);
        }
        if !out.is_empty() {
            self.flush_outbound(out_spi, &mut out, now);
        }
    }

    /// Ethernet in: ARP handled here; IP returned with the Ethernet header stripped.
    fn l2_in(&mut self, ifidx: usize, mut b: P::Buf, now: u64) -> Option<P::Buf> {
        let Ok(f) = ethernet::Frame::new_checked(b.data()) else {
            self.drop_pkt(b, DropReason::EthTruncated);
            return None;
        };
        let (dst, et, hl, vlan) = (f.dst_addr(), f.ethertype(), f.header_len(), f.vlan_id());
        if vlan.is_some() {
            self.drop_pkt(b, DropReason::EthUnsupported);
            return None;
        }
        if dst.is_unicast() && dst != self.ifs[ifidx].mac {
            self.drop_pkt(b, DropReason::EthNotForUs);
            return None;
        }
        match et {
            ethernet::ethertype::ARP => {
                self.arp_in(ifidx, b, hl, now);
                None
            }
            ethernet::ethertype::IPV4 | ethernet::ethertype::IPV6 => {
                // Only ARP and ND teach the neighbor cache, never plain IP.
                b.adj(hl);
                Some(b)
            }
            _ => {
                self.drop_pkt(b, DropReason::EthUnsupported);
                None
            }
        }
    }

    fn arp_in(&mut self, ifidx: usize, b: P::Buf, hl: usize, now: u64) {
        self.counters.arp_rx += 1;
        let r = match arp::Packet::new_checked(&b.data()[hl..]).and_then(|p| arp::Repr::parse(&p)) {
            Ok(r) => r,
            Err(_) => return self.drop_pkt(b, DropReason::ArpIgnored),
        };
        let sender = IpAddr::V4(r.source_protocol_addr);
        let target = IpAddr::V4(r.target_protocol_addr);
        let ours = self.ifs[ifidx].addrs.contains(&target);
        // RFC 826: update an existing entry from any ARP; add one when it is for us.
        if ours || self.neighbors.lookup(sender, ifidx, now).is_some() {
            self.neighbors
                .learn(sender, r.source_hardware_addr, ifidx, now);
        }
        if !ours || r.operation != arp::Operation::Request {
            self.pool.free(b);
            return;
        }
        let mut reply = b;
        let mac = self.ifs[ifidx].mac;
        if local::arp_frame(
            &mut reply,
            arp::Operation::Reply,
            mac,
            r.target_protocol_addr,
            r.source_hardware_addr,
            r.source_protocol_addr,
        ) {
            self.counters.arp_replies_tx += 1;
            self.send_frame(ifidx, reply);
        } else {
            self.drop_pkt(reply, DropReason::NoBufferRoom);
        }
    }

    fn send_frame(&mut self, ifidx: usize, b: P::Buf) {
        self.if_stats[ifidx].tx_packets += 1;
        self.if_stats[ifidx].tx_bytes += b.len() as u64;
        self.tx[ifidx].push(b);
    }

    /// Routes an IP packet out: next hop, neighbor, Ethernet header, transmit queue.
    fn route_out(&mut self, mut b: P::Buf, now: u64) {
        let Some(dst) = dst_addr(b.data()) else {
            return self.drop_pkt(b, DropReason::InnerMalformed);
        };
        let Some((ifidx, nh)) = self.routes.lookup(dst) else {
            return self.drop_pkt(b, DropReason::NoRoute);
        };
        let Some(mac) = self.neighbors.lookup(nh, ifidx, now) else {
            self.resolve(ifidx, nh, now);
            return self.drop_pkt(b, DropReason::NoNeighbor);
        };
        let et = if dst.is_ipv4() {
            ethernet::ethertype::IPV4
        } else {
            ethernet::ethertype::IPV6
        };
        if !local::push_ethernet(&mut b, self.ifs[ifidx].mac, mac, et) {
            return self.drop_pkt(b, DropReason::NoBufferRoom);
        }
        self.send_frame(ifidx, b);
    }

    /// Sends an ARP request or a neighbor solicitation for `addr` (rate-limited).
    fn resolve(&mut self, ifidx: usize, addr: IpAddr, now: u64) {
        if !self.neighbors.should_request(addr, now) {
            return;
        }
        let Some(mut b) = self.pool.alloc() else {
            return self.drops.inc(DropReason::NoBuffer);
        };
        let mac = self.ifs[ifidx].mac;
        let ok = match addr {
            IpAddr::V4(a) => {
                let Some(IpAddr::V4(src)) =
                    self.ifs[ifidx].addrs.iter().copied().find(IpAddr::is_ipv4)
                else {
                    return self.pool.free(b);
                };
                self.counters.arp_requests_tx += 1;
                local::arp_frame(
                    &mut b,
                    arp::Operation::Request,
                    mac,
                    src,
                    EthernetAddress::BROADCAST,
                    a,
                )
            }
            IpAddr::V6(a) => {
                let Some(IpAddr::V6(src)) =
                    self.ifs[ifidx].addrs.iter().copied().find(IpAddr::is_ipv6)
                else {
                    return self.pool.free(b);
                };
                self.counters.nd_solicits_tx += 1;
                match local::nd_packet(&mut b, None, mac, src, a) {
                    Some(group) => local::push_ethernet(
                        &mut b,
                        mac,
                        EthernetAddress::ipv6_multicast(group),
                        ethernet::ethertype::IPV6,
                    ),
                    None => false,
                }
            }
        };
        if ok {
            self.send_frame(ifidx, b);
        } else {
            self.pool.free(b);
        }
    }

    // ---- outside

    /// Classifies an outside IP packet. ESP is returned for batching; everything else is
    /// handled here.
    fn outside_ip(
        &mut self,
        ifidx: usize,
        b: P::Buf,
        now: u64,
    ) -> Option<(P::Buf, u32, InboundMeta)> {
        let class = {
            let ifs = &self.ifs;
            classify(b.data(), |a| ifs.iter().any(|i| i.addrs.contains(&a)))
        };
        match class {
            Class::Esp {
                spi,
                esp_offset,
                src,
                dst,
                udp,
            } => match self.sad_in.get(&spi) {
                Some(e) if e.sa.params().local == dst => Some((
                    b,
                    spi,
                    InboundMeta {
                        esp_offset,
                        src,
                        udp,
                    },
                )),
                _ => {
                    self.drop_pkt(b, DropReason::EspNoSa);
                    None
                }
            },
            Class::Ike {
                src,
                dst,
                ike_offset,
            } => {
                if self.ike_listener {
                    self.counters.ike_punted += 1;
                    self.punted.push(Punted {
                        src,
                        dst,
                        buf: b,
                        ike_offset,
                    });
                } else {
                    self.drop_pkt(b, DropReason::IkeNoListener);
                }
                None
            }
            Class::Keepalive { .. } => {
                self.counters.keepalives_rx += 1;
                self.drop_pkt(b, DropReason::NattKeepalive);
                None
            }
            Class::Pmtu(info) => {
                self.counters.pmtu_icmp_rx += 1;
                self.apply_pmtu(info, now);
                self.pool.free(b);
                None
            }
            Class::Fragment => self.reassemble(ifidx, b, now),
            Class::IcmpLocal => {
                self.icmp_local(ifidx, b, now);
                None
            }
            Class::Drop(r) => {
                self.drop_pkt(b, r);
                None
            }
        }
    }

    fn reassemble(
        &mut self,
        ifidx: usize,
        b: P::Buf,
        now: u64,
    ) -> Option<(P::Buf, u32, InboundMeta)> {
        let r = self
            .reasm
            .push(b.data(), now)
            .map(|o| o.map(<[u8]>::to_vec));
        match r {
            Err(reason) => {
                self.drop_pkt(b, reason);
                None
            }
            Ok(None) => {
                self.counters.fragments_held += 1;
                self.pool.free(b);
                None
            }
            Ok(Some(whole)) => {
                self.counters.fragments_held += 1;
                self.counters.reassembled += 1;
                self.pool.free(b);
                let Some(mut nb) = self.pool.alloc_len(whole.len()) else {
                    self.drops.inc(DropReason::NoBuffer);
                    return None;
                };
                if !nb.append(whole.len()) {
                    self.drop_pkt(nb, DropReason::FragTooBig);
                    return None;
                }
                nb.data_mut().copy_from_slice(&whole);
                // A reassembled datagram is classified like any other (never a fragment).
                self.outside_ip(ifidx, nb, now)
            }
        }
    }

    /// RFC 4301 §8.2.1: an ICMP PMTU message about one of our ESP packets lowers the path MTU
    /// of the SA it names, or of every SA toward that peer when the quote is too short to
    /// carry the SPI.
    fn apply_pmtu(&mut self, info: PmtuInfo, now: u64) {
        let min = if info.peer.addr.is_ipv4() {
            self.settings.pmtu_min
        } else {
            esprit_esp::sa::MIN_PMTU_V6
        };
        let ttl = self.settings.pmtu_timeout * SEC;
        let mut learned = Vec::new();
        for (spi, sa) in &self.sad_out {
            let named = info.spi.is_none_or(|s| s == *spi);
            if named && sa.peer() == info.peer && sa.params().local == info.local {
                if let Some(m) = sa.pmtu.learn(info.mtu, min, now, ttl) {
                    learned.push(Event::PmtuLearned { spi: *spi, mtu: m });
                }
            }
        }
        if learned.is_empty() {
            self.drops.inc(DropReason::IcmpIgnored);
        }
        self.counters.pmtu_updates += learned.len() as u64;
        self.events.extend(learned);
    }

    fn icmp_local(&mut self, ifidx: usize, b: P::Buf, now: u64) {
        enum Nd {
            Solicit(
                std::net::Ipv6Addr,
                std::net::Ipv6Addr,
                Option<EthernetAddress>,
            ),
            Advert(std::net::Ipv6Addr, EthernetAddress),
        }
        let nd = ipv6::Packet::new_checked(b.data()).ok().and_then(|p| {
            let i = icmpv6::Packet::new_checked(p.payload()).ok()?;
            match icmpv6::Repr::parse(&i, p.src_addr(), p.dst_addr()).ok()? {
                icmpv6::Repr::NeighborSolicit { target, lladdr } => {
                    Some(Nd::Solicit(p.src_addr(), target, lladdr))
                }
                icmpv6::Repr::NeighborAdvert {
                    target,
                    lladdr: Some(mac),
                    ..
                } => Some(Nd::Advert(target, mac)),
                _ => None,
            }
        });
        match nd {
            Some(Nd::Solicit(src, target, lladdr)) => {
                return self.nd_solicit(ifidx, b, src, target, lladdr, now)
            }
            Some(Nd::Advert(target, mac)) => {
                self.counters.nd_rx += 1;
                self.neighbors.learn(IpAddr::V6(target), mac, ifidx, now);
                return self.pool.free(b);
            }
            None => {}
        }
        // Echo requests to one of our addresses.
        if dst_addr(b.data()).is_some_and(|a| self.is_local(a)) {
            self.echo(b, now);
        } else {
            self.drop_pkt(b, DropReason::IcmpIgnored);
        }
    }

    fn nd_solicit(
        &mut self,
        ifidx: usize,
        mut b: P::Buf,
        src: std::net::Ipv6Addr,
        target: std::net::Ipv6Addr,
        lladdr: Option<EthernetAddress>,
        now: u64,
    ) {
        self.counters.nd_rx += 1;
        if !self.ifs[ifidx].addrs.contains(&IpAddr::V6(target)) {
            return self.drop_pkt(b, DropReason::IcmpIgnored);
        }
        let Some(mac) = lladdr else {
            return self.drop_pkt(b, DropReason::IcmpIgnored);
        };
        if !src.is_unspecified() {
            self.neighbors.learn(IpAddr::V6(src), mac, ifidx, now);
        }
        let our = self.ifs[ifidx].mac;
        let to = if src.is_unspecified() {
            "ff02::1".parse().unwrap_or(src)
        } else {
            src
        };
        let ok = local::nd_packet(&mut b, Some(to), our, target, target).is_some()
            && local::push_ethernet(
                &mut b,
                our,
                if src.is_unspecified() {
                    EthernetAddress::ipv6_multicast(to)
                } else {
                    mac
                },
                ethernet::ethertype::IPV6,
            );
        if ok {
            self.counters.nd_adverts_tx += 1;
            self.send_frame(ifidx, b);
        } else {
            self.drop_pkt(b, DropReason::NoBufferRoom);
        }
    }

    /// Answers an echo request addressed to us; the reply is routed (or tunnelled) back.
    fn echo(&mut self, b: P::Buf, now: u64) {
        let Some(mut r) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::NoBuffer);
        };
        let ok = local::echo_reply(&mut r, b.data());
        self.pool.free(b);
        if !ok {
            return self.drop_pkt(r, DropReason::IcmpIgnored);
        }
        self.counters.icmp_echo_replies_tx += 1;
        self.originate(r, now);
    }

    /// Sends a packet we originate: through a tunnel if a policy protects it, else routed.
    fn originate(&mut self, b: P::Buf, now: u64) {
        let mut out: Batch<P::Buf, ()> = ArrayVec::new();
        let mut spi = 0;
        self.forward(b, &mut out, &mut spi, now, false);
        if !out.is_empty() {
            self.flush_outbound(spi, &mut out, now);
        }
    }

    fn flush_inbound(
        &mut self,
        spi: u32,
        batch: &mut Batch<P::Buf, InboundMeta>,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        let Some(entry) = self.sad_in.get(&spi) else {
            for (b, _) in batch.drain(..) {
                self.drop_pkt(b, DropReason::EspNoSa);
            }
            return;
        };
        let n = batch.len();
        let mut bufs: ArrayVec<P::Buf, MAX_BURST> = ArrayVec::new();
        let mut metas: ArrayVec<InboundMeta, MAX_BURST> = ArrayVec::new();
        for (b, m) in batch.drain(..) {
            bufs.push(b);
            metas.push(m);
        }
        let mut res = [Err(DropReason::NoBuffer); MAX_BURST];
        let sum = entry.sa.decap_burst(&mut bufs, &metas, &mut res[..n], now);
        let encap = entry.sa.is_udp_encap();
        if sum.soft_expired {
            self.events.push(Event::SoftLifetime {
                spi,
                direction: Direction::In,
            });
        }
        for ((b, m), r) in bufs.into_iter().zip(metas).zip(res) {
            match r {
                Ok(d) => {
                    self.counters.esp_decrypted += 1;
                    if d.peer_changed && encap {
                        self.follow_nat(spi, m.src);
                    }
                    let mut b = b;
                    if self.settings.mss_clamp {
                        self.clamp_inbound(spi, &mut b);
                    }
                    self.deliver_inner(b, out, out_spi, now);
                }
                Err(r) => self.drop_pkt(b, r),
            }
        }
    }

    /// RFC 7296 §2.23: after an authenticated, non-replayed packet from a new address or
    /// port on a NAT-T SA, send to that address from now on.
    fn follow_nat(&mut self, spi_in: u32, new: Endpoint) {
        let Some(e) = self.sad_in.get(&spi_in) else {
            return;
        };
        let old = e.sa.peer();
        if old == new {
            return;
        }
        e.sa.set_peer(new);
        for sa in self.sad_out.values() {
            if sa.peer() == old && sa.is_udp_encap() && sa.set_peer(new).is_err() {
                self.drops.inc(DropReason::EspEncapMismatch);
            }
        }
        self.counters.nat_mapping_changes += 1;
        self.events
            .push(Event::NatMappingChanged { spi_in, old, new });
    }

    /// A decrypted inner packet: to us, back into a tunnel, or routed to the inside.
    fn deliver_inner(
        &mut self,
        b: P::Buf,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        if dst_addr(b.data()).is_some_and(|a| self.is_local(a)) {
            return self.local_in(b, now);
        }
        self.forward(b, out, out_spi, now, true);
    }

    fn local_in(&mut self, b: P::Buf, now: u64) {
        let is_echo = match b.data()[0] >> 4 {
            4 => ipv4::Packet::new_checked(b.data())
                .is_ok_and(|p| p.protocol() == ip_proto::ICMP && p.payload().first() == Some(&8)),
            _ => ipv6::Packet::new_checked(b.data()).is_ok_and(|p| {
                p.next_header() == ip_proto::ICMPV6 && p.payload().first() == Some(&128)
            }),
        };
        if is_echo {
            self.echo(b, now);
        } else {
            self.drop_pkt(b, DropReason::ProtoUnhandled);
        }
    }

    // ---- inside

    fn inside_ip(
        &mut self,
        ifidx: usize,
        b: P::Buf,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        let d = b.data();
        let ok = match d.first().map(|v| v >> 4) {
            Some(4) => match ipv4::Packet::new_checked(d) {
                Ok(p) if !p.verify_checksum() => Err(DropReason::Ipv4BadChecksum),
                Ok(_) => Ok(()),
                Err(_) => Err(DropReason::Ipv4Malformed),
            },
            Some(6) => ipv6::Packet::new_checked(d)
                .map(|_| ())
                .map_err(|_| DropReason::Ipv6Malformed),
            _ => Err(DropReason::IpBadVersion),
        };
        if let Err(r) = ok {
            return self.drop_pkt(b, r);
        }
        // ND and pings to our own addresses.
        if b.data()[0] >> 4 == 6 {
            let nd = ipv6::Packet::new_checked(b.data()).is_ok_and(|p| {
                p.next_header() == ip_proto::ICMPV6
                    && matches!(p.payload().first(), Some(135 | 136))
            });
            if nd {
                return self.icmp_local(ifidx, b, now);
            }
        }
        if dst_addr(b.data()).is_some_and(|a| self.is_local(a)) {
            return self.local_in(b, now);
        }
        self.forward(b, out, out_spi, now, false);
    }

    /// Forwards an IP packet that is not for us: TTL, then a protecting policy (encrypt) or,
    /// for packets out of a tunnel, a route to the inside. The TTL is decremented after the
    /// MTU decision, so an ICMP error quotes the packet as it arrived (as Linux does).
    fn forward(
        &mut self,
        b: P::Buf,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
        from_tunnel: bool,
    ) {
        let Some((src, dst)) = addrs(b.data()) else {
            return self.drop_pkt(b, DropReason::InnerMalformed);
        };
        let transit = !self.is_local(src);
        if transit && ttl(b.data()) <= 1 {
            return self.time_exceeded(b, now);
        }
        match self.policies.lookup(src, dst) {
            Some(spi) => self.protect(spi, b, transit, out, out_spi, now),
            None => {
                let toward_inside = self
                    .routes
                    .lookup(dst)
                    .is_some_and(|(i, _)| self.ifs[i].role == Role::Inside);
                if (from_tunnel || !transit) && toward_inside {
                    let mut b = b;
                    if transit {
                        decrement_ttl(b.data_mut());
                    }
                    self.route_out(b, now);
                } else {
                    self.drop_pkt(b, DropReason::NoPolicy);
                }
            }
        }
    }

    /// The packet matches a policy protected by SA `spi`: check its MTU, then queue it.
    fn protect(
        &mut self,
        spi: u32,
        mut b: P::Buf,
        transit: bool,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        let Some(sa) = self.sad_out.get(&spi) else {
            return self.drop_pkt(b, DropReason::PolicyNoSa);
        };
        let link = self
            .routes
            .lookup(sa.peer().addr)
            .map_or(0, |(i, _)| self.ifs[i].mtu);
        if link == 0 {
            return self.drop_pkt(b, DropReason::NoRoute);
        }
        let mtu = sa.inner_mtu(link, now);
        if self.settings.mss_clamp {
            let v6 = b.data()[0] >> 4 == 6;
            if esprit_esp::mss::clamp(b.data_mut(), esprit_esp::mss::mss_for_mtu(mtu, v6)) {
                self.counters.mss_clamped += 1;
            }
        }
        if b.len() as u32 > mtu {
            return self.too_big(spi, b, mtu, transit, out, out_spi, now);
        }
        if transit {
            decrement_ttl(b.data_mut());
        }
        self.queue_out(spi, b, out, out_spi, now);
    }

    fn queue_out(
        &mut self,
        spi: u32,
        b: P::Buf,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        if (out.is_full() || spi != *out_spi) && !out.is_empty() {
            let s = *out_spi;
            self.flush_outbound(s, out, now);
        }
        *out_spi = spi;
        out.push((b, ()));
    }

    /// Too big for the SA: fragment inner IPv4 without DF, otherwise tell the sender.
    #[allow(clippy::too_many_arguments)]
    fn too_big(
        &mut self,
        spi: u32,
        mut b: P::Buf,
        mtu: u32,
        transit: bool,
        out: &mut Batch<P::Buf, ()>,
        out_spi: &mut u32,
        now: u64,
    ) {
        let fragmentable =
            b.data()[0] >> 4 == 4 && !ipv4::Packet::new_unchecked(b.data()).dont_frag();
        if fragmentable && transit {
            decrement_ttl(b.data_mut());
        }
        match FragmentsV4::new(b.data(), mtu as usize) {
            Ok(mut frags) => {
                self.counters.inner_fragmented += 1;
                loop {
                    let Some(mut f) = self.pool.alloc() else {
                        self.drops.inc(DropReason::NoBuffer);
                        break;
                    };
                    match frags.next_into(&mut f) {
                        Some(Ok(())) => {
                            self.counters.fragments_out += 1;
                            self.queue_out(spi, f, out, out_spi, now);
                        }
                        Some(Err(_)) => {
                            self.drop_pkt(f, DropReason::NoBufferRoom);
                            break;
                        }
                        None => {
                            self.pool.free(f);
                            break;
                        }
                    }
                }
                self.pool.free(b);
            }
            Err(FragError::DontFragment) | Err(FragError::Malformed) => {
                self.icmp_too_big(b, mtu, now)
            }
            Err(_) => self.drop_pkt(b, DropReason::TooBig),
        }
    }

    /// ICMPv4 fragmentation-needed or ICMPv6 Packet Too Big to the sender, rate-limited.
    fn icmp_too_big(&mut self, b: P::Buf, mtu: u32, now: u64) {
        if !self.icmp_rl.allow(now) {
            return self.drop_pkt(b, DropReason::TooBigRateLimited);
        }
        let Some(mut e) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::NoBuffer);
        };
        let from = self.icmp_source(b.data());
        let r = match (b.data()[0] >> 4, from) {
            (4, Some(IpAddr::V4(s))) => {
                icmp::frag_needed_v4(&mut e, s, b.data(), mtu.min(u16::MAX as u32) as u16)
                    .map(|_| 4)
            }
            (6, Some(IpAddr::V6(s))) => {
                icmp::packet_too_big_v6(&mut e, s, b.data(), mtu.max(ipv6::MIN_MTU as u32))
                    .map(|_| 6)
            }
            _ => Err(icmp::Suppressed::Malformed),
        };
        self.drop_pkt(b, DropReason::TooBig);
        match r {
            Ok(4) => {
                self.counters.icmp_frag_needed_tx += 1;
                self.originate(e, now);
            }
            Ok(_) => {
                self.counters.icmp_packet_too_big_tx += 1;
                self.originate(e, now);
            }
            Err(_) => self.pool.free(e),
        }
    }

    fn time_exceeded(&mut self, b: P::Buf, now: u64) {
        if !self.icmp_rl.allow(now) {
            return self.drop_pkt(b, DropReason::TtlExceeded);
        }
        let Some(mut e) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::TtlExceeded);
        };
        let r = match self.icmp_source(b.data()) {
            Some(IpAddr::V4(s)) => icmp::time_exceeded_v4(&mut e, s, b.data()),
            Some(IpAddr::V6(s)) => icmp::time_exceeded_v6(&mut e, s, b.data()),
            None => Err(icmp::Suppressed::Malformed),
        };
        self.drop_pkt(b, DropReason::TtlExceeded);
        match r {
            Ok(()) => {
                self.counters.icmp_time_exceeded_tx += 1;
                self.originate(e, now);
            }
            Err(_) => self.pool.free(e),
        }
    }

    /// The address ICMP errors about `pkt` come from: ours on the interface toward its
    /// source (for a tunnelled sender, the inside interface facing the protected network
    /// the packet was heading to).
    fn icmp_source(&self, pkt: &[u8]) -> Option<IpAddr> {
        let (src, dst) = addrs(pkt)?;
        let v4 = src.is_ipv4();
        let pick = |i: usize| {
            self.ifs[i]
                .addrs
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == v4)
        };
        self.routes
            .lookup(src)
            .and_then(|(i, _)| pick(i))
            .or_else(|| self.routes.lookup(dst).and_then(|(i, _)| pick(i)))
            .or_else(|| {
                self.ifs
                    .iter()
                    .find(|i| i.role == Role::Inside)
                    .and_then(|i| i.addrs.iter().copied().find(|a| a.is_ipv4() == v4))
            })
    }

    /// A SYN out of a tunnel: clamp its MSS to what that tunnel carries (the inbound SA's
    /// transform and encapsulation over the outside link MTU), so the reply direction never
    /// needs fragmentation either.
    fn clamp_inbound(&mut self, spi: u32, b: &mut P::Buf) {
        let Some(e) = self.sad_in.get(&spi) else {
            return;
        };
        let p = e.sa.params();
        let link = self
            .ifs
            .iter()
            .find(|i| i.addrs.contains(&p.local))
            .map_or(1500, |i| i.mtu);
        let mtu = esprit_esp::mtu::max_inner(
            link,
            p.local.is_ipv6(),
            p.encap.is_some(),
            p.transform.layout(),
        );
        let v6 = b.data()[0] >> 4 == 6;
        if esprit_esp::mss::clamp(b.data_mut(), esprit_esp::mss::mss_for_mtu(mtu, v6)) {
            self.counters.mss_clamped += 1;
        }
    }

    fn flush_outbound(&mut self, spi: u32, batch: &mut Batch<P::Buf, ()>, now: u64) {
        let Some(sa) = self.sad_out.get(&spi) else {
            for (b, _) in batch.drain(..) {
                self.drop_pkt(b, DropReason::PolicyNoSa);
            }
            return;
        };
        let n = batch.len();
        let mut bufs: ArrayVec<P::Buf, MAX_BURST> = batch.drain(..).map(|(b, _)| b).collect();
        let mut res = [Ok(()); MAX_BURST];
        let sum = sa.encap_burst(&mut bufs, &mut res[..n], now);
        if sum.soft_expired {
            self.events.push(Event::SoftLifetime {
                spi,
                direction: Direction::Out,
            });
        }
        for (b, r) in bufs.into_iter().zip(res) {
            match r {
                Ok(()) => {
                    self.counters.esp_encrypted += 1;
                    self.route_out(b, now);
                }
                Err(r) => self.drop_pkt(b, r),
            }
        }
    }

    // ---- timers

    /// Runs timers: NAT keepalives for idle NAT-T SAs, reassembly timeouts, neighbor aging.
    pub fn poll(&mut self, now: u64) {
        let timeouts = self.reasm.expire(now);
        self.drops.add(DropReason::FragTimeout, timeouts);
        self.neighbors.age(now);
        let interval = self.settings.keepalive_interval * SEC;
        if interval == 0 {
            return;
        }
        let mut due = Vec::new();
        let mut first_seen = Vec::new();
        for (spi, sa) in &self.sad_out {
            if !sa.is_udp_encap() {
                continue;
            }
            // The interval starts when the engine first sees the SA, not at time zero.
            let Some(&sent) = self.last_keepalive.get(spi) else {
                first_seen.push(*spi);
                continue;
            };
            let used = sa
                .stats
                .last_used
                .load(std::sync::atomic::Ordering::Relaxed);
            if now >= sent.max(used).saturating_add(interval) {
                let sport = sa.params().encap.map_or(4500, |e| e.local_port);
                due.push((*spi, sa.params().local, sport, sa.peer()));
            }
        }
        for spi in first_seen {
            self.last_keepalive.insert(spi, now);
        }
        for (spi, local, sport, peer) in due {
            self.last_keepalive.insert(spi, now);
            let Some(mut b) = self.pool.alloc() else {
                return self.drops.inc(DropReason::NoBuffer);
            };
            if local::keepalive(&mut b, local, sport, peer.addr, peer.port) {
                self.counters.keepalives_tx += 1;
                self.route_out(b, now);
            } else {
                self.pool.free(b);
            }
        }
    }
}

fn dst_addr(p: &[u8]) -> Option<IpAddr> {
    addrs(p).map(|(_, d)| d)
}

fn addrs(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => Some((
            IpAddr::V4(ipv4::Packet::new_unchecked(p).src_addr()),
            IpAddr::V4(ipv4::Packet::new_unchecked(p).dst_addr()),
        )),
        6 if p.len() >= 40 => Some((
            IpAddr::V6(ipv6::Packet::new_unchecked(p).src_addr()),
            IpAddr::V6(ipv6::Packet::new_unchecked(p).dst_addr()),
        )),
        _ => None,
    }
}

/// The TTL or hop limit of a checked IP packet.
fn ttl(p: &[u8]) -> u8 {
    match p.first().map(|v| v >> 4) {
        Some(4) if p.len() >= 20 => p[8],
        Some(6) if p.len() >= 40 => p[7],
        _ => 0,
    }
}

/// Decrements the TTL / hop limit (the caller checked it is above 1), patching the IPv4
/// header checksum incrementally.
fn decrement_ttl(p: &mut [u8]) {
    match p.first().map(|v| v >> 4) {
        Some(4) if p.len() >= 20 => ipv4::Packet::new_unchecked(p).decrement_ttl(),
        Some(6) if p.len() >= 40 => p[7] = p[7].saturating_sub(1),
        _ => {}
    }
}
