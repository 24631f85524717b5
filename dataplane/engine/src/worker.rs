//! A worker: what one lcore does with each frame.
//!
//! Outside: ARP/ND, then NAT-T classification (which finds each ESP packet's SA once) → the
//! burst's ESP, whatever SAs it mixes, decapsulated at once → inner packets routed to the
//! inside; IKE punted; keepalives counted; ICMP path-MTU information applied to SAs; outer
//! fragments reassembled first.
//!
//! Inside: ARP/ND, then policy lookup → MTU check (ICMP fragmentation-needed / Packet Too
//! Big back to the sender, or fragmentation of inner IPv4 without DF) → the burst's packets,
//! whatever SAs they go to, encapsulated at once → outer packets routed to the peer's
//! current NAT mapping. A packet that matches a
//! protecting policy whose SA is missing is dropped, never sent in clear.
//!
//! A worker is sans-IO: frames come in through [`Worker::rx`], the clock is passed in, and
//! frames to transmit wait in per-interface queues for the driver (pcap files, AF_PACKET,
//! DPDK) to send. It reads the [`Shared`] tables without locks, pinning the epoch once per
//! burst, and asks the [`Control`](crate::shared::Control) for changes with
//! [`Request`]s.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arrayvec::ArrayVec;
use crossbeam_queue::ArrayQueue;
use esprit_esp::classify::{classify, peek_spi, Class, PmtuInfo};
use esprit_esp::frag::{FragError, Fragments, FragmentsV4};
use esprit_esp::icmp::{self, RateLimiter};
use esprit_esp::reasm::{ReasmConfig, Reassembler};
use esprit_esp::sa::{decap_mixed, encap_mixed, Endpoint, InboundMeta, InboundSa, OutboundSa};
use esprit_esp::{BufPool, DropCounters, DropReason, PacketBuf, MAX_BURST};
use esprit_satable::epoch::{self, Guard};
use esprit_wire::{arp, ethernet, icmpv6, ip_proto, ipv4, ipv6, EthernetAddress};

use crate::config::{Direction, Role};
use crate::local;
use crate::shared::{Event, Request, ResolveLimiter, Shared};
use crate::trace::Point;

const SEC: u64 = 1_000_000_000;

/// Per-interface counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IfStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// What a worker did, besides drops.
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
    /// ESP packets handed to the worker owning their SA.
    pub handed_off: u64,
    /// IKE datagrams sent for the control plane.
    pub ike_sent: u64,
    /// Time-stamp-counter cycles spent in rounds that did work (with `rx_packets`: the
    /// cost of a packet; idle polling is not counted).
    pub busy_cycles: u64,
}

impl Counters {
    /// Every counter with its stable name (for the stats segment and Prometheus).
    pub fn fields(&self) -> [(&'static str, u64); 26] {
        [
            ("esp_decrypted", self.esp_decrypted),
            ("esp_encrypted", self.esp_encrypted),
            ("ike_punted", self.ike_punted),
            ("ike_sent", self.ike_sent),
            ("natt_keepalives_rx", self.keepalives_rx),
            ("natt_keepalives_tx", self.keepalives_tx),
            ("icmp_frag_needed_tx", self.icmp_frag_needed_tx),
            ("icmp_packet_too_big_tx", self.icmp_packet_too_big_tx),
            ("icmp_time_exceeded_tx", self.icmp_time_exceeded_tx),
            ("icmp_echo_replies_tx", self.icmp_echo_replies_tx),
            ("pmtu_icmp_rx", self.pmtu_icmp_rx),
            ("pmtu_updates", self.pmtu_updates),
            ("inner_fragmented", self.inner_fragmented),
            ("inner_fragments_out", self.fragments_out),
            ("outer_fragments_in", self.fragments_held),
            ("outer_reassembled", self.reassembled),
            ("mss_clamped", self.mss_clamped),
            ("arp_rx", self.arp_rx),
            ("arp_replies_tx", self.arp_replies_tx),
            ("arp_requests_tx", self.arp_requests_tx),
            ("nd_rx", self.nd_rx),
            ("nd_adverts_tx", self.nd_adverts_tx),
            ("nd_solicits_tx", self.nd_solicits_tx),
            ("nat_mapping_changes", self.nat_mapping_changes),
            ("handed_off", self.handed_off),
            ("busy_cycles", self.busy_cycles),
        ]
    }
}

/// An IKE datagram for the control plane.
#[derive(Debug)]
pub struct Punted<B> {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// The interface it arrived on.
    pub ifidx: usize,
    /// The IP packet; the IKE message starts at `ike_offset` (past any non-ESP marker).
    pub buf: B,
    pub ike_offset: usize,
}

/// ESP packets of a burst waiting to be decapsulated together, each with its SA (found once,
/// by the classifier).
struct InBatch<'a, B> {
    bufs: ArrayVec<B, MAX_BURST>,
    metas: ArrayVec<InboundMeta, MAX_BURST>,
    sas: ArrayVec<&'a InboundSa, MAX_BURST>,
}

impl<'a, B> InBatch<'a, B> {
    fn new() -> Self {
        InBatch { bufs: ArrayVec::new(), metas: ArrayVec::new(), sas: ArrayVec::new() }
    }
    fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
}

/// Inner packets of a burst waiting to be encapsulated together, each with the SA its policy
/// chose.
struct OutBatch<'a, B> {
    bufs: ArrayVec<B, MAX_BURST>,
    sas: ArrayVec<&'a OutboundSa, MAX_BURST>,
}

impl<'a, B> OutBatch<'a, B> {
    fn new() -> Self {
        OutBatch { bufs: ArrayVec::new(), sas: ArrayVec::new() }
    }
    fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
}

/// An inside packet's policy (the SPI protecting it, if any) and that SPI's SA, looked up
/// with the rest of its burst.
#[derive(Clone, Copy)]
struct Protection<'a> {
    spi: Option<u32>,
    sa: Option<&'a OutboundSa>,
}

/// An ESP packet handed to the worker that owns its SA.
#[derive(Debug)]
pub struct Handoff<B> {
    pub spi: u32,
    pub meta: InboundMeta,
    pub buf: B,
}

/// Every worker's hand-off queue, indexed by worker.
pub type HandoffQueues<B> = Arc<[ArrayQueue<Handoff<B>>]>;

/// Packets held per worker while their next hop is resolved.
const MAX_UNRESOLVED: usize = 64;

/// A packet waiting for its next hop's MAC address.
struct Unresolved<B> {
    ifidx: usize,
    nh: IpAddr,
    deadline: u64,
    buf: B,
}

/// A route: egress interface and next hop (`None`: no route).
type Hop = Option<(usize, IpAddr)>;

/// Per-burst state passed down the call chain: the shared tables, the pinned epoch, and the
/// last route and neighbor looked up. A burst mostly goes to one server, or through one next
/// hop toward the clients, so those lookups are done once per burst instead of once per
/// packet; the cache lives as long as the context, so a route or neighbor the writer changed
/// between bursts is seen by the next one.
struct Cx<'a> {
    sh: &'a Shared,
    g: &'a Guard,
    now: u64,
    route: Cell<Option<(IpAddr, Hop)>>,
    neighbor: Cell<Option<(IpAddr, usize, EthernetAddress)>>,
}

impl<'a> Cx<'a> {
    fn new(sh: &'a Shared, g: &'a Guard, now: u64) -> Cx<'a> {
        Cx { sh, g, now, route: Cell::new(None), neighbor: Cell::new(None) }
    }

    /// The route to `dst` (egress interface and next hop).
    #[inline]
    fn route(&self, dst: IpAddr) -> Hop {
        match self.route.get() {
            Some((d, r)) if d == dst => r,
            _ => {
                let r = self.sh.route(dst, self.g);
                self.route.set(Some((dst, r)));
                r
            }
        }
    }

    /// The MAC address of next hop `nh` on `ifidx`. Only known neighbors are cached: an
    /// unknown one is resolved, and asked again.
    #[inline]
    fn neighbor(&self, nh: IpAddr, ifidx: usize) -> Option<EthernetAddress> {
        if let Some((a, i, mac)) = self.neighbor.get() {
            if a == nh && i == ifidx {
                return Some(mac);
            }
        }
        let mac = self.sh.neighbor(nh, ifidx, self.now, self.g)?;
        self.neighbor.set(Some((nh, ifidx, mac)));
        Some(mac)
    }
}

/// One worker lcore.
pub struct Worker<P: BufPool> {
    sh: Arc<Shared>,
    /// Worker 0 also sends NAT keepalives.
    keepalive_duty: bool,
    reasm: Reassembler,
    icmp_rl: RateLimiter,
    resolve: ResolveLimiter,
    last_keepalive: HashMap<u32, u64>,
    next_keepalive_scan: u64,
    pool: P,
    /// This worker's index among its peers, and everyone's hand-off queues.
    id: u32,
    handoff: Option<HandoffQueues<P::Buf>>,
    unresolved: Vec<Unresolved<P::Buf>>,
    tx: Vec<Vec<P::Buf>>,
    /// Identification of the next IPv6 datagram we fragment (random start, RFC 7739).
    frag_ident: u32,
    /// IKE datagrams for the control plane, if one is attached.
    pub punted: Vec<Punted<P::Buf>>,
    ike_listener: bool,
    /// Changes for the writer.
    pub requests: Vec<Request>,
    pub events: Vec<Event>,
    pub drops: DropCounters,
    pub counters: Counters,
    pub if_stats: Vec<IfStats>,
}

impl<P: BufPool> std::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("shared", &self.sh).finish()
    }
}

impl<P: BufPool> Worker<P> {
    /// Joins this worker to a set of workers that hand packets to each SA's owner.
    pub fn with_handoff(mut self, id: u32, queues: HandoffQueues<P::Buf>) -> Self {
        self.id = id;
        self.handoff = Some(queues);
        self
    }

    /// Sends a UDP datagram for the control plane (an IKE message), routed like everything
    /// we originate; datagrams larger than the link are fragmented, IPv4 and IPv6 (RFC 7383
    /// IKE fragmentation makes this rare).
    pub fn transmit(&mut self, src: Endpoint, dst: Endpoint, marker: bool, payload: &[u8], now: u64) {
        let sh = self.sh.clone();
        let g = epoch::pin();
        let cx = Cx::new(&sh, &g, now);
        let Some(mut b) = self.pool.alloc_len(60 + 12 + payload.len()) else {
            return self.drops.inc(DropReason::NoBuffer);
        };
        if !local::udp_datagram(&mut b, (src.addr, src.port), (dst.addr, dst.port), marker, payload) {
            return self.drop_pkt(b, DropReason::InnerMalformed);
        }
        self.counters.ike_sent += 1;
        let mtu = sh.route(dst.addr, &g).map_or(1500, |(i, _)| sh.ifs[i].mtu) as usize;
        if b.len() <= mtu {
            return self.route_out(&cx, b);
        }
        self.frag_ident = self.frag_ident.wrapping_add(1);
        match Fragments::new(b.data(), mtu, self.frag_ident) {
            Ok(mut frags) => loop {
                let Some(mut f) = self.pool.alloc() else {
                    self.drops.inc(DropReason::NoBuffer);
                    break;
                };
                match frags.next_into(&mut f) {
                    Some(Ok(())) => self.route_out(&cx, f),
                    _ => {
                        self.pool.free(f);
                        break;
                    }
                }
            },
            Err(_) => self.drops.inc(DropReason::TooBig),
        }
        self.pool.free(b);
    }

    /// Processes ESP packets other workers handed to this one (it owns their SAs).
    pub fn rx_handoff(&mut self, now: u64) -> usize {
        let Some(h) = self.handoff.clone() else { return 0 };
        let Some(q) = h.get(self.id as usize) else { return 0 };
        if q.is_empty() {
            return 0;
        }
        let sh = self.sh.clone();
        let g = epoch::pin();
        let cx = Cx::new(&sh, &g, now);
        let mut esp = InBatch::new();
        let mut out = OutBatch::new();
        let mut n = 0;
        while n < MAX_BURST * 4 {
            let Some(x) = q.pop() else { break };
            n += 1;
            match cx.sh.sa_in.get(&x.spi, cx.g) {
                Some(sa) => self.queue_in(&cx, sa, x.buf, x.meta, &mut esp, &mut out),
                None => self.drop_pkt(x.buf, DropReason::EspNoSa),
            }
        }
        if !esp.is_empty() {
            self.flush_inbound(&cx, &mut esp, &mut out);
        }
        if !out.is_empty() {
            self.flush_outbound(&cx, &mut out);
        }
        n
    }

    pub fn new(sh: Arc<Shared>, pool: P, keepalive_duty: bool) -> Worker<P> {
        let st = &sh.settings;
        Worker {
            reasm: Reassembler::new(ReasmConfig {
                slots: st.reassembly_slots,
                max_datagram: st.reassembly_max,
                timeout_ns: st.reassembly_timeout_ms * 1_000_000,
            }),
            icmp_rl: RateLimiter::new(st.icmp_rate, st.icmp_burst),
            resolve: ResolveLimiter::default(),
            last_keepalive: HashMap::new(),
            next_keepalive_scan: 0,
            tx: sh.ifs.iter().map(|_| Vec::new()).collect(),
            unresolved: Vec::new(),
            frag_ident: {
                let mut r = [0u8; 4];
                // Without randomness, a predictable start is still correct, only guessable.
                let _ = getrandom::fill(&mut r);
                u32::from_ne_bytes(r)
            },
            id: 0,
            handoff: None,
            if_stats: vec![IfStats::default(); sh.ifs.len()],
            keepalive_duty,
            pool,
            punted: Vec::new(),
            ike_listener: false,
            requests: Vec::new(),
            events: Vec::new(),
            drops: DropCounters::default(),
            counters: Counters::default(),
            sh,
        }
    }

    /// Whether IKE is punted (a control plane is attached) or dropped as `ike_no_listener`.
    pub fn set_ike_listener(&mut self, on: bool) {
        self.ike_listener = on;
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.sh
    }

    pub fn pool(&mut self) -> &mut P {
        &mut self.pool
    }

    /// Frames waiting to be sent on interface `ifidx`.
    pub fn tx_queue(&mut self, ifidx: usize) -> &mut Vec<P::Buf> {
        &mut self.tx[ifidx]
    }

    /// Packets held while their next hop is resolved.
    pub fn held(&self) -> usize {
        self.unresolved.len()
    }

    fn drop_pkt(&mut self, b: P::Buf, r: DropReason) {
        self.drops.inc(r);
        self.pool.free(b);
    }

    /// Processes frames received on interface `ifidx` at time `now` (ns).
    pub fn rx(&mut self, ifidx: usize, frames: impl IntoIterator<Item = P::Buf>, now: u64) {
        let sh = self.sh.clone();
        let g = epoch::pin();
        let cx = Cx::new(&sh, &g, now);
        let role = sh.ifs[ifidx].role;
        let mut esp = InBatch::new();
        let mut out = OutBatch::new();
        // IP packets of the burst, past Ethernet; their table lookups are made together.
        let mut ip = ArrayVec::<P::Buf, MAX_BURST>::new();
        for b in frames {
            self.if_stats[ifidx].rx_packets += 1;
            self.if_stats[ifidx].rx_bytes += b.len() as u64;
            let Some(b) = self.l2_in(&cx, ifidx, b) else {
                continue;
            };
            ip.push(b);
            if ip.is_full() {
                self.ip_burst(&cx, ifidx, role, &mut ip, &mut esp, &mut out);
            }
        }
        if !ip.is_empty() {
            self.ip_burst(&cx, ifidx, role, &mut ip, &mut esp, &mut out);
        }
        if !esp.is_empty() {
            self.flush_inbound(&cx, &mut esp, &mut out);
        }
        if !out.is_empty() {
            self.flush_outbound(&cx, &mut out);
        }
    }

    fn ip_burst<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        role: Role,
        bufs: &mut ArrayVec<P::Buf, MAX_BURST>,
        esp: &mut InBatch<'a, P::Buf>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        match role {
            Role::Outside => self.outside_burst(cx, ifidx, bufs, esp, out),
            Role::Inside => self.inside_burst(cx, ifidx, bufs, out),
        }
    }

    /// Ethernet in: ARP handled here; IP returned with the Ethernet header stripped.
    fn l2_in(&mut self, cx: &Cx<'_>, ifidx: usize, mut b: P::Buf) -> Option<P::Buf> {
        let Ok(f) = ethernet::Frame::new_checked(b.data()) else {
            self.drop_pkt(b, DropReason::EthTruncated);
            return None;
        };
        let (dst, et, hl, vlan) = (f.dst_addr(), f.ethertype(), f.header_len(), f.vlan_id());
        if vlan.is_some() {
            self.drop_pkt(b, DropReason::EthUnsupported);
            return None;
        }
        if dst.is_unicast() && dst != cx.sh.ifs[ifidx].mac {
            self.drop_pkt(b, DropReason::EthNotForUs);
            return None;
        }
        match et {
            ethernet::ethertype::ARP => {
                self.arp_in(cx, ifidx, b, hl);
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

    fn arp_in(&mut self, cx: &Cx<'_>, ifidx: usize, b: P::Buf, hl: usize) {
        self.counters.arp_rx += 1;
        let r = match arp::Packet::new_checked(&b.data()[hl..]).and_then(|p| arp::Repr::parse(&p)) {
            Ok(r) => r,
            Err(_) => return self.drop_pkt(b, DropReason::ArpIgnored),
        };
        let sender = IpAddr::V4(r.source_protocol_addr);
        let target = IpAddr::V4(r.target_protocol_addr);
        let ours = cx.sh.has_addr(ifidx, target, cx.g);
        // RFC 826: update an existing entry from any ARP; add one when it is for us.
        if ours || cx.sh.neighbors.get(&sender, cx.g).is_some() {
            self.requests.push(Request::Learn { addr: sender, mac: r.source_hardware_addr, ifidx, now: cx.now });
        }
        if !ours || r.operation != arp::Operation::Request {
            self.pool.free(b);
            return;
        }
        let mut reply = b;
        let mac = cx.sh.ifs[ifidx].mac;
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
    fn route_out(&mut self, cx: &Cx<'_>, b: P::Buf) {
        let Some(dst) = dst_addr(b.data()) else {
            return self.drop_pkt(b, DropReason::InnerMalformed);
        };
        let Some((ifidx, nh)) = cx.route(dst) else {
            return self.drop_pkt(b, DropReason::NoRoute);
        };
        let Some(mac) = cx.neighbor(nh, ifidx) else {
            self.resolve(cx, ifidx, nh);
            // Hold the packet while the neighbor is resolved (as Linux's unres_qlen does),
            // a few per worker and for at most a second.
            if self.unresolved.len() < MAX_UNRESOLVED {
                self.unresolved.push(Unresolved { ifidx, nh, deadline: cx.now + SEC, buf: b });
                return;
            }
            return self.drop_pkt(b, DropReason::NoNeighbor);
        };
        self.emit(cx, ifidx, mac, b);
    }

    fn emit(&mut self, cx: &Cx<'_>, ifidx: usize, mac: EthernetAddress, mut b: P::Buf) {
        let et = if b.data()[0] >> 4 == 4 { ethernet::ethertype::IPV4 } else { ethernet::ethertype::IPV6 };
        if !local::push_ethernet(&mut b, cx.sh.ifs[ifidx].mac, mac, et) {
            return self.drop_pkt(b, DropReason::NoBufferRoom);
        }
        self.send_frame(ifidx, b);
    }

    /// Sends held packets whose neighbor is now known; drops those that waited too long.
    fn retry_unresolved(&mut self, cx: &Cx<'_>) {
        if self.unresolved.is_empty() {
            return;
        }
        for u in std::mem::take(&mut self.unresolved) {
            match cx.sh.neighbor(u.nh, u.ifidx, cx.now, cx.g) {
                Some(mac) => self.emit(cx, u.ifidx, mac, u.buf),
                None if cx.now >= u.deadline => self.drop_pkt(u.buf, DropReason::NoNeighbor),
                None => self.unresolved.push(u),
            }
        }
    }

    /// Sends an ARP request or a neighbor solicitation for `addr` (rate-limited).
    fn resolve(&mut self, cx: &Cx<'_>, ifidx: usize, addr: IpAddr) {
        if !self.resolve.should_request(addr, cx.now) {
            return;
        }
        let Some(mut b) = self.pool.alloc() else {
            return self.drops.inc(DropReason::NoBuffer);
        };
        let mac = cx.sh.ifs[ifidx].mac;
        let ok = match addr {
            IpAddr::V4(a) => {
                let Some(IpAddr::V4(src)) = cx.sh.addr_like(ifidx, true, cx.g) else {
                    return self.pool.free(b);
                };
                self.counters.arp_requests_tx += 1;
                local::arp_frame(&mut b, arp::Operation::Request, mac, src, EthernetAddress::BROADCAST, a)
            }
            IpAddr::V6(a) => {
                let Some(IpAddr::V6(src)) = cx.sh.addr_like(ifidx, false, cx.g) else {
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

    /// Outside packets a burst at a time: the SAs of the ESP among them are fetched into
    /// the cache together first, so that their misses overlap (with many clients, each
    /// packet's SA slot and SA miss the caches); then each is classified and goes its way.
    fn outside_burst<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        bufs: &mut ArrayVec<P::Buf, MAX_BURST>,
        esp: &mut InBatch<'a, P::Buf>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let spis: ArrayVec<u32, MAX_BURST> = bufs.iter().filter_map(|b| peek_spi(b.data())).collect();
        cx.sh.sa_in.prefetch_many(&spis, cx.g);
        for b in bufs.drain(..) {
            self.outside_ip(cx, ifidx, b, esp, out);
        }
    }

    /// Classifies an outside IP packet: ESP is queued for decryption with the rest of its
    /// burst; everything else is handled here. (ESP is not returned to the caller: the
    /// tuple went through memory and cost a store-forwarding stall per packet, 5 % of a
    /// 64-byte burst with one SA.)
    fn outside_ip<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        b: P::Buf,
        esp: &mut InBatch<'a, P::Buf>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let class = classify(b.data(), |a| cx.sh.is_local(a, cx.g));
        match class {
            Class::Esp { spi, esp_offset, src, dst, udp } => match cx.sh.sa_in.get(&spi, cx.g) {
                Some(sa) if sa.params().local == dst => {
                    self.queue_in(cx, sa, b, InboundMeta { esp_offset, src, udp }, esp, out)
                }
                _ => self.drop_pkt(b, DropReason::EspNoSa),
            },
            Class::Ike { src, dst, ike_offset } => {
                if self.ike_listener {
                    self.counters.ike_punted += 1;
                    self.punted.push(Punted { src, dst, ifidx, buf: b, ike_offset });
                } else {
                    self.drop_pkt(b, DropReason::IkeNoListener);
                }
            }
            Class::Keepalive { .. } => {
                self.counters.keepalives_rx += 1;
                self.drop_pkt(b, DropReason::NattKeepalive);
            }
            Class::Pmtu(info) => {
                self.counters.pmtu_icmp_rx += 1;
                self.apply_pmtu(cx, info);
                self.pool.free(b);
            }
            Class::Fragment => self.reassemble(cx, ifidx, b, esp, out),
            Class::IcmpLocal => self.icmp_local(cx, ifidx, b),
            Class::Drop(r) => self.drop_pkt(b, r),
        }
    }

    fn reassemble<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        b: P::Buf,
        esp: &mut InBatch<'a, P::Buf>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let r = self.reasm.push(b.data(), cx.now).map(|o| o.map(<[u8]>::to_vec));
        match r {
            Err(reason) => self.drop_pkt(b, reason),
            Ok(None) => {
                self.counters.fragments_held += 1;
                self.pool.free(b);
            }
            Ok(Some(whole)) => {
                self.counters.fragments_held += 1;
                self.counters.reassembled += 1;
                self.pool.free(b);
                let Some(mut nb) = self.pool.alloc_len(whole.len()) else {
                    return self.drops.inc(DropReason::NoBuffer);
                };
                if !nb.append(whole.len()) {
                    return self.drop_pkt(nb, DropReason::FragTooBig);
                }
                nb.data_mut().copy_from_slice(&whole);
                // A reassembled datagram is classified like any other (never a fragment).
                self.outside_ip(cx, ifidx, nb, esp, out)
            }
        }
    }

    /// RFC 4301 §8.2.1: an ICMP PMTU message about one of our ESP packets lowers the path MTU
    /// of the SA it names, or of every SA toward that peer when the quote is too short to
    /// carry the SPI.
    fn apply_pmtu(&mut self, cx: &Cx<'_>, info: PmtuInfo) {
        let st = &cx.sh.settings;
        let min = if info.peer.addr.is_ipv4() { st.pmtu_min } else { esprit_esp::sa::MIN_PMTU_V6 };
        let ttl = st.pmtu_timeout * SEC;
        let mut learned = Vec::new();
        let mut consider = |spi: u32, sa: &esprit_esp::sa::OutboundSa| {
            if sa.peer() == info.peer && sa.params().local == info.local {
                if let Some(m) = sa.pmtu.learn(info.mtu, min, cx.now, ttl) {
                    learned.push(Event::PmtuLearned { spi, mtu: m });
                }
            }
        };
        match info.spi {
            Some(spi) => {
                if let Some(sa) = cx.sh.sa_out.get(&spi, cx.g) {
                    consider(spi, sa);
                }
            }
            // Without the SPI every SA toward the peer is a suspect. This walks the table:
            // such quotes come from routers that quote 8 bytes, and are rare.
            None => cx.sh.sa_out.for_each(cx.g, |spi, sa| consider(*spi, sa)),
        }
        if learned.is_empty() {
            self.drops.inc(DropReason::IcmpIgnored);
        }
        self.counters.pmtu_updates += learned.len() as u64;
        self.events.extend(learned);
    }

    fn icmp_local(&mut self, cx: &Cx<'_>, ifidx: usize, b: P::Buf) {
        enum Nd {
            Solicit(std::net::Ipv6Addr, std::net::Ipv6Addr, Option<EthernetAddress>),
            Advert(std::net::Ipv6Addr, EthernetAddress),
        }
        let nd = ipv6::Packet::new_checked(b.data()).ok().and_then(|p| {
            let i = icmpv6::Packet::new_checked(p.payload()).ok()?;
            match icmpv6::Repr::parse(&i, p.src_addr(), p.dst_addr()).ok()? {
                icmpv6::Repr::NeighborSolicit { target, lladdr } => Some(Nd::Solicit(p.src_addr(), target, lladdr)),
                icmpv6::Repr::NeighborAdvert { target, lladdr: Some(mac), .. } => Some(Nd::Advert(target, mac)),
                _ => None,
            }
        });
        match nd {
            Some(Nd::Solicit(src, target, lladdr)) => return self.nd_solicit(cx, ifidx, b, src, target, lladdr),
            Some(Nd::Advert(target, mac)) => {
                self.counters.nd_rx += 1;
                self.requests.push(Request::Learn { addr: IpAddr::V6(target), mac, ifidx, now: cx.now });
                return self.pool.free(b);
            }
            None => {}
        }
        // Echo requests to one of our addresses.
        if dst_addr(b.data()).is_some_and(|a| cx.sh.is_local(a, cx.g)) {
            self.echo(cx, b);
        } else {
            self.drop_pkt(b, DropReason::IcmpIgnored);
        }
    }

    fn nd_solicit(
        &mut self,
        cx: &Cx<'_>,
        ifidx: usize,
        mut b: P::Buf,
        src: std::net::Ipv6Addr,
        target: std::net::Ipv6Addr,
        lladdr: Option<EthernetAddress>,
    ) {
        self.counters.nd_rx += 1;
        if !cx.sh.has_addr(ifidx, IpAddr::V6(target), cx.g) {
            return self.drop_pkt(b, DropReason::IcmpIgnored);
        }
        let Some(mac) = lladdr else {
            return self.drop_pkt(b, DropReason::IcmpIgnored);
        };
        if !src.is_unspecified() {
            self.requests.push(Request::Learn { addr: IpAddr::V6(src), mac, ifidx, now: cx.now });
        }
        let our = cx.sh.ifs[ifidx].mac;
        let all_nodes = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let (to, to_mac) =
            if src.is_unspecified() { (all_nodes, EthernetAddress::ipv6_multicast(all_nodes)) } else { (src, mac) };
        let ok = local::nd_packet(&mut b, Some(to), our, target, target).is_some()
            && local::push_ethernet(&mut b, our, to_mac, ethernet::ethertype::IPV6);
        if ok {
            self.counters.nd_adverts_tx += 1;
            self.send_frame(ifidx, b);
        } else {
            self.drop_pkt(b, DropReason::NoBufferRoom);
        }
    }

    /// Answers an echo request addressed to us; the reply is routed (or tunnelled) back.
    fn echo(&mut self, cx: &Cx<'_>, b: P::Buf) {
        let Some(mut r) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::NoBuffer);
        };
        let ok = local::echo_reply(&mut r, b.data());
        self.pool.free(b);
        if !ok {
            return self.drop_pkt(r, DropReason::IcmpIgnored);
        }
        self.counters.icmp_echo_replies_tx += 1;
        self.originate(cx, r);
    }

    /// Sends a packet we originate: through a tunnel if a policy protects it, else routed.
    fn originate(&mut self, cx: &Cx<'_>, b: P::Buf) {
        let mut out = OutBatch::new();
        self.forward(cx, b, &mut out, false, None);
        if !out.is_empty() {
            self.flush_outbound(cx, &mut out);
        }
    }

    /// Adds an ESP packet to the burst's inbound batch — or hands it to the worker that owns
    /// its SA (the replay window's single writer).
    fn queue_in<'a>(
        &mut self,
        cx: &Cx<'a>,
        sa: &'a InboundSa,
        b: P::Buf,
        m: InboundMeta,
        esp: &mut InBatch<'a, P::Buf>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        if let Some(h) = &self.handoff {
            let owner = sa.owner(self.id);
            if owner != self.id {
                if let Some(q) = h.get(owner as usize) {
                    let r = q.push(Handoff { spi: sa.spi(), meta: m, buf: b });
                    self.counters.handed_off += 1;
                    if let Err(x) = r {
                        self.drop_pkt(x.buf, DropReason::HandoffFull);
                    }
                    return;
                }
            }
        }
        if esp.bufs.is_full() {
            self.flush_inbound(cx, esp, out);
        }
        esp.bufs.push(b);
        esp.metas.push(m);
        esp.sas.push(sa);
    }

    /// Decapsulates the inbound batch (every SA in it at once) and sends the inner packets on.
    fn flush_inbound<'a>(&mut self, cx: &Cx<'a>, esp: &mut InBatch<'a, P::Buf>, out: &mut OutBatch<'a, P::Buf>) {
        // Worked on in place: moving the batch out (1.8 KiB of arrays) was a copy per burst.
        let n = esp.bufs.len();
        let InBatch { bufs, metas, sas } = esp;
        // Which packets a trace under way wants, decided once for both of their captures.
        let tr = &cx.sh.trace;
        let mut traced = [false; MAX_BURST];
        if tr.active() {
            for ((b, m), t) in bufs.iter().zip(metas.iter()).zip(&mut traced) {
                *t = tr.wants(m.src.addr);
                if *t {
                    tr.capture(Point::EspWire, cx.now, b.data());
                }
            }
        }
        let mut res = [Err(DropReason::NoBuffer); MAX_BURST];
        let events = &mut self.events;
        decap_mixed(sas, bufs, metas, &mut res[..n], cx.now, |sa, sum| {
            if sum.soft_expired {
                events.push(Event::SoftLifetime { spi: sa.spi(), direction: Direction::In });
            }
            if sum.hard_expired {
                events.push(Event::HardLifetime { spi: sa.spi(), direction: Direction::In });
            }
        });
        // The last NAT mapping change asked for, so that a burst asks once per SA and source.
        let mut moved = None;
        for ((((b, m), &sa), r), traced) in bufs.drain(..).zip(metas.iter()).zip(sas.iter()).zip(res).zip(traced) {
            match r {
                Ok(d) => {
                    self.counters.esp_decrypted += 1;
                    if traced {
                        tr.capture(Point::Inner, cx.now, b.data());
                    }
                    if d.peer_changed && sa.is_udp_encap() && moved != Some((sa.spi(), m.src)) {
                        moved = Some((sa.spi(), m.src));
                        self.requests.push(Request::FollowNat { spi_in: sa.spi(), new: m.src });
                    }
                    let mut b = b;
                    if cx.sh.settings.mss_clamp {
                        self.clamp_inbound(cx, sa.params(), &mut b);
                    }
                    self.deliver_inner(cx, b, out);
                }
                Err(r) => self.drop_pkt(b, r),
            }
        }
        metas.clear();
        sas.clear();
    }

    /// A decrypted inner packet: to us, back into a tunnel, or routed to the inside.
    fn deliver_inner<'a>(&mut self, cx: &Cx<'a>, b: P::Buf, out: &mut OutBatch<'a, P::Buf>) {
        if dst_addr(b.data()).is_some_and(|a| cx.sh.is_local(a, cx.g)) {
            return self.local_in(cx, b);
        }
        self.forward(cx, b, out, true, None);
    }

    fn local_in(&mut self, cx: &Cx<'_>, b: P::Buf) {
        let is_echo = match b.data()[0] >> 4 {
            4 => ipv4::Packet::new_checked(b.data())
                .is_ok_and(|p| p.protocol() == ip_proto::ICMP && p.payload().first() == Some(&8)),
            _ => ipv6::Packet::new_checked(b.data())
                .is_ok_and(|p| p.next_header() == ip_proto::ICMPV6 && p.payload().first() == Some(&128)),
        };
        if is_echo {
            self.echo(cx, b);
        } else {
            self.drop_pkt(b, DropReason::ProtoUnhandled);
        }
    }

    // ---- inside

    /// Inside packets a burst at a time: the policies and SAs of all of them are looked up
    /// together first, so that their cache misses overlap (with many clients, each packet's
    /// policy slot, policy entry, its list, SA slot and SA miss the caches one after the
    /// other), then each packet goes its way with its answers.
    fn inside_burst<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        bufs: &mut ArrayVec<P::Buf, MAX_BURST>,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let n = bufs.len();
        let unspecified = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
        let mut flows = [(unspecified, unspecified); MAX_BURST];
        let mut parsed = [false; MAX_BURST];
        for (j, b) in bufs.iter().enumerate() {
            if let Some(f) = addrs(b.data()) {
                (flows[j], parsed[j]) = (f, true);
            }
        }
        let mut spis = [None; MAX_BURST];
        cx.sh.policies.lookup_many(&flows[..n], cx.g, &mut spis);
        // SPI 0 is never installed: a lookup that finds nothing.
        let keys: [u32; MAX_BURST] = core::array::from_fn(|j| spis[j].unwrap_or(0));
        let mut sas = [None; MAX_BURST];
        cx.sh.sa_out.get_many(&keys[..n], cx.g, &mut sas);
        for (j, b) in bufs.drain(..).enumerate() {
            let pre = parsed[j].then_some(Protection { spi: spis[j], sa: sas[j] });
            self.inside_ip(cx, ifidx, b, out, pre);
        }
    }

    fn inside_ip<'a>(
        &mut self,
        cx: &Cx<'a>,
        ifidx: usize,
        b: P::Buf,
        out: &mut OutBatch<'a, P::Buf>,
        pre: Option<Protection<'a>>,
    ) {
        let d = b.data();
        let ok = match d.first().map(|v| v >> 4) {
            Some(4) => match ipv4::Packet::new_checked(d) {
                Ok(p) if !p.verify_checksum() => Err(DropReason::Ipv4BadChecksum),
                Ok(_) => Ok(()),
                Err(_) => Err(DropReason::Ipv4Malformed),
            },
            Some(6) => ipv6::Packet::new_checked(d).map(|_| ()).map_err(|_| DropReason::Ipv6Malformed),
            _ => Err(DropReason::IpBadVersion),
        };
        if let Err(r) = ok {
            return self.drop_pkt(b, r);
        }
        // ND and pings to our own addresses.
        if b.data()[0] >> 4 == 6 {
            let nd = ipv6::Packet::new_checked(b.data())
                .is_ok_and(|p| p.next_header() == ip_proto::ICMPV6 && matches!(p.payload().first(), Some(135 | 136)));
            if nd {
                return self.icmp_local(cx, ifidx, b);
            }
        }
        if dst_addr(b.data()).is_some_and(|a| cx.sh.is_local(a, cx.g)) {
            return self.local_in(cx, b);
        }
        self.forward(cx, b, out, false, pre);
    }

    /// Forwards an IP packet that is not for us: TTL, then a protecting policy (encrypt) or,
    /// for packets out of a tunnel, a route to the inside. The TTL is decremented after the
    /// MTU decision, so an ICMP error quotes the packet as it arrived (as Linux does).
    /// `pre`: the packet's policy and SA, when its burst looked them up already.
    fn forward<'a>(
        &mut self,
        cx: &Cx<'a>,
        b: P::Buf,
        out: &mut OutBatch<'a, P::Buf>,
        from_tunnel: bool,
        pre: Option<Protection<'a>>,
    ) {
        let Some((src, dst)) = addrs(b.data()) else {
            return self.drop_pkt(b, DropReason::InnerMalformed);
        };
        let transit = !cx.sh.is_local(src, cx.g);
        if transit && ttl(b.data()) <= 1 {
            return self.time_exceeded(cx, b);
        }
        let spi = match pre {
            Some(p) => p.spi,
            None => cx.sh.policies.lookup(src, dst, cx.g),
        };
        match spi {
            Some(spi) => self.protect(cx, spi, pre.and_then(|p| p.sa), b, transit, out),
            None => {
                let toward_inside = cx.route(dst).is_some_and(|(i, _)| cx.sh.ifs[i].role == Role::Inside);
                if (from_tunnel || !transit) && toward_inside {
                    let mut b = b;
                    if transit {
                        decrement_ttl(b.data_mut());
                    }
                    self.route_out(cx, b);
                } else {
                    self.drop_pkt(b, DropReason::NoPolicy);
                }
            }
        }
    }

    /// The packet matches a policy protected by SA `spi` (`sa`, if looked up already): check
    /// its MTU, then queue it.
    fn protect<'a>(
        &mut self,
        cx: &Cx<'a>,
        spi: u32,
        sa: Option<&'a OutboundSa>,
        mut b: P::Buf,
        transit: bool,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let Some(sa) = sa.or_else(|| cx.sh.sa_out.get(&spi, cx.g)) else {
            return self.drop_pkt(b, DropReason::PolicyNoSa);
        };
        let link = cx.route(sa.peer().addr).map_or(0, |(i, _)| cx.sh.ifs[i].mtu);
        if link == 0 {
            return self.drop_pkt(b, DropReason::NoRoute);
        }
        let mtu = sa.inner_mtu(link, cx.now);
        if cx.sh.settings.mss_clamp {
            let v6 = b.data()[0] >> 4 == 6;
            if esprit_esp::mss::clamp(b.data_mut(), esprit_esp::mss::mss_for_mtu(mtu, v6)) {
                self.counters.mss_clamped += 1;
            }
        }
        if b.len() as u32 > mtu {
            return self.too_big(cx, sa, b, mtu, transit, out);
        }
        if transit {
            decrement_ttl(b.data_mut());
        }
        self.queue_out(cx, sa, b, out);
    }

    fn queue_out<'a>(&mut self, cx: &Cx<'a>, sa: &'a OutboundSa, b: P::Buf, out: &mut OutBatch<'a, P::Buf>) {
        if out.bufs.is_full() {
            self.flush_outbound(cx, out);
        }
        out.bufs.push(b);
        out.sas.push(sa);
    }

    /// Too big for the SA: fragment inner IPv4 without DF, otherwise tell the sender.
    fn too_big<'a>(
        &mut self,
        cx: &Cx<'a>,
        sa: &'a OutboundSa,
        mut b: P::Buf,
        mtu: u32,
        transit: bool,
        out: &mut OutBatch<'a, P::Buf>,
    ) {
        let fragmentable = b.data()[0] >> 4 == 4 && !ipv4::Packet::new_unchecked(b.data()).dont_frag();
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
                            self.queue_out(cx, sa, f, out);
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
            Err(FragError::DontFragment) | Err(FragError::Malformed) => self.icmp_too_big(cx, b, mtu),
            Err(_) => self.drop_pkt(b, DropReason::TooBig),
        }
    }

    /// ICMPv4 fragmentation-needed or ICMPv6 Packet Too Big to the sender, rate-limited.
    fn icmp_too_big(&mut self, cx: &Cx<'_>, b: P::Buf, mtu: u32) {
        if !self.icmp_rl.allow(cx.now) {
            return self.drop_pkt(b, DropReason::TooBigRateLimited);
        }
        let Some(mut e) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::NoBuffer);
        };
        let r = match (b.data()[0] >> 4, icmp_source(cx, b.data())) {
            (4, Some(IpAddr::V4(s))) => {
                icmp::frag_needed_v4(&mut e, s, b.data(), mtu.min(u16::MAX as u32) as u16).map(|_| 4)
            }
            (6, Some(IpAddr::V6(s))) => {
                icmp::packet_too_big_v6(&mut e, s, b.data(), mtu.max(ipv6::MIN_MTU as u32)).map(|_| 6)
            }
            _ => Err(icmp::Suppressed::Malformed),
        };
        self.drop_pkt(b, DropReason::TooBig);
        match r {
            Ok(4) => {
                self.counters.icmp_frag_needed_tx += 1;
                self.originate(cx, e);
            }
            Ok(_) => {
                self.counters.icmp_packet_too_big_tx += 1;
                self.originate(cx, e);
            }
            Err(_) => self.pool.free(e),
        }
    }

    fn time_exceeded(&mut self, cx: &Cx<'_>, b: P::Buf) {
        if !self.icmp_rl.allow(cx.now) {
            return self.drop_pkt(b, DropReason::TtlExceeded);
        }
        let Some(mut e) = self.pool.alloc() else {
            return self.drop_pkt(b, DropReason::TtlExceeded);
        };
        let r = match icmp_source(cx, b.data()) {
            Some(IpAddr::V4(s)) => icmp::time_exceeded_v4(&mut e, s, b.data()),
            Some(IpAddr::V6(s)) => icmp::time_exceeded_v6(&mut e, s, b.data()),
            None => Err(icmp::Suppressed::Malformed),
        };
        self.drop_pkt(b, DropReason::TtlExceeded);
        match r {
            Ok(()) => {
                self.counters.icmp_time_exceeded_tx += 1;
                self.originate(cx, e);
            }
            Err(_) => self.pool.free(e),
        }
    }

    /// A SYN out of a tunnel: clamp its MSS to what that tunnel carries (the inbound SA's
    /// transform and encapsulation over the outside link MTU), so the reply direction never
    /// needs fragmentation either.
    fn clamp_inbound(&mut self, cx: &Cx<'_>, p: &esprit_esp::sa::SaParams, b: &mut P::Buf) {
        let link = cx.sh.interface_of(p.local, cx.g).map_or(1500, |i| cx.sh.ifs[i].mtu);
        let mtu = esprit_esp::mtu::max_inner(link, p.local.is_ipv6(), p.encap.is_some(), p.transform.layout());
        let v6 = b.data()[0] >> 4 == 6;
        if esprit_esp::mss::clamp(b.data_mut(), esprit_esp::mss::mss_for_mtu(mtu, v6)) {
            self.counters.mss_clamped += 1;
        }
    }

    /// Encapsulates the outbound batch (every SA in it at once) and routes the outer packets.
    fn flush_outbound<'a>(&mut self, cx: &Cx<'a>, out: &mut OutBatch<'a, P::Buf>) {
        // Worked on in place, as the inbound batch.
        let n = out.bufs.len();
        let OutBatch { bufs, sas } = out;
        let tr = &cx.sh.trace;
        let mut traced = [false; MAX_BURST];
        if tr.active() {
            for ((b, sa), t) in bufs.iter().zip(sas.iter()).zip(&mut traced) {
                *t = tr.wants(sa.peer().addr);
                if *t {
                    tr.capture(Point::Inner, cx.now, b.data());
                }
            }
        }
        let mut res = [Ok(()); MAX_BURST];
        let events = &mut self.events;
        encap_mixed(sas, bufs, &mut res[..n], cx.now, |sa, sum| {
            if sum.soft_expired {
                events.push(Event::SoftLifetime { spi: sa.spi(), direction: Direction::Out });
            }
            if sum.hard_expired {
                events.push(Event::HardLifetime { spi: sa.spi(), direction: Direction::Out });
            }
            if sum.seq_low {
                events.push(Event::SeqNearExhaustion { spi: sa.spi() });
            }
        });
        for ((b, r), traced) in bufs.drain(..).zip(res).zip(traced) {
            match r {
                Ok(()) => {
                    self.counters.esp_encrypted += 1;
                    if traced {
                        tr.capture(Point::EspWire, cx.now, b.data());
                    }
                    self.route_out(cx, b);
                }
                Err(r) => self.drop_pkt(b, r),
            }
        }
        sas.clear();
    }

    // ---- timers

    /// Runs timers: reassembly timeouts and, on the worker with the duty, NAT keepalives for
    /// idle NAT-T SAs (RFC 3948 §4) — scanned at most once a second.
    pub fn poll(&mut self, now: u64) {
        let timeouts = self.reasm.expire(now);
        self.drops.add(DropReason::FragTimeout, timeouts);
        if !self.unresolved.is_empty() {
            let sh = self.sh.clone();
            let g = epoch::pin();
            self.retry_unresolved(&Cx::new(&sh, &g, now));
        }
        let interval = self.sh.keepalive_secs.load(std::sync::atomic::Ordering::Relaxed) * SEC;
        if interval == 0 || !self.keepalive_duty || now < self.next_keepalive_scan {
            return;
        }
        self.next_keepalive_scan = now + SEC;
        let sh = self.sh.clone();
        let g = epoch::pin();
        let cx = Cx::new(&sh, &g, now);
        let mut due = Vec::new();
        let mut seen = Vec::new();
        sh.sa_out.for_each(&g, |spi, sa| {
            if !sa.is_udp_encap() {
                return;
            }
            seen.push(*spi);
            // The interval starts when the worker first sees the SA, not at time zero.
            match self.last_keepalive.get(spi) {
                None => due.push((*spi, None)),
                Some(&sent) => {
                    let used = sa.stats.last_used.load(std::sync::atomic::Ordering::Relaxed);
                    if now >= sent.max(used).saturating_add(interval) {
                        let sport = sa.params().encap.map_or(4500, |e| e.local_port);
                        due.push((*spi, Some((sa.params().local, sport, sa.peer()))));
                    }
                }
            }
        });
        if self.last_keepalive.len() > seen.len() * 2 + 64 {
            let live: std::collections::HashSet<u32> = seen.into_iter().collect();
            self.last_keepalive.retain(|k, _| live.contains(k));
        }
        for (spi, send) in due {
            self.last_keepalive.insert(spi, now);
            let Some((local, sport, peer)) = send else {
                continue;
            };
            let Some(mut b) = self.pool.alloc() else {
                return self.drops.inc(DropReason::NoBuffer);
            };
            if local::keepalive(&mut b, local, sport, peer.addr, peer.port) {
                self.counters.keepalives_tx += 1;
                self.route_out(&cx, b);
            } else {
                self.pool.free(b);
            }
        }
    }
}

/// The address ICMP errors about `pkt` come from: ours on the interface toward its source
/// (for a tunnelled sender, the inside interface facing the protected network the packet
/// was heading to).
fn icmp_source(cx: &Cx<'_>, pkt: &[u8]) -> Option<IpAddr> {
    let (src, dst) = addrs(pkt)?;
    let v4 = src.is_ipv4();
    let pick = |i: usize| cx.sh.addr_like(i, v4, cx.g);
    cx.sh
        .route(src, cx.g)
        .and_then(|(i, _)| pick(i))
        .or_else(|| cx.sh.route(dst, cx.g).and_then(|(i, _)| pick(i)))
        .or_else(|| cx.sh.ifs.iter().position(|i| i.role == Role::Inside).and_then(pick))
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
