//! The IKE state machine ([`Endpoint`]) between our initiator, behind a simulated NAT, and
//! our responder, driven by a small bytecode: deliver, corrupt, drop, duplicate, reorder,
//! replay and forge datagrams, move simulated time, report data-plane events, rekey and
//! terminate. Whatever the schedule, nothing panics, and after every operation:
//!
//! * each endpoint holds at most `operations + 2` IKE SAs, and the responder leases no more
//!   addresses than it has IKE SAs;
//! * each endpoint's data-plane outputs only name pairs it installed and has not removed
//!   (cookies are never reused), no policy is left pointing at a removed pair, and what
//!   [`Endpoint::installed`] reports is exactly what the data plane was told to keep;
//! * both endpoints trace every peer, and each message they show in the clear decodes as an
//!   unencrypted IKE message.
//!
//! At the end the network turns reliable for two minutes of simulated time: by then no IKE
//! SA may still be in its handshake on either side (nor, with [`CHECK_HALF_OPEN_INDEX`], in
//! the responder's index of half-open SAs).
//!
//! The input: one seed byte for the random generator, then operations (see [`Op`]), each an
//! opcode byte and its argument bytes (missing ones read as zero). The seeds in
//! `corpus/ike_endpoint/` are written in it by hand, each named after what it does. With
//! `ESPRIT_FUZZ_TRACE` set, each operation, delivery and event, and the endpoints' SAs and
//! counters at the end, go to stderr (to write seeds, and to read a crash).
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use esprit_ikev2::config::{Connection, IkeConfig, Lifetimes, Retransmit};
use esprit_ikev2::crypto::{OpensslProvider, WithRandom};
use esprit_ikev2::identity::{parse_identity, IdentityPattern};
use esprit_ikev2::proposal::{EspProposal, IkeProposal};
use esprit_ikev2::{ts, ChildEvent, Endpoint, InitiatorOptions, Output};
use esprit_wire::IpCidr;
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

/// Operations run per input, at most (each may cost a handshake's worth of crypto).
const MAX_OPS: usize = 256;
/// IKE SAs the initiator may start on top of the first one.
const MAX_INITIATIONS: u8 = 8;
/// Whether to check the responder's index of half-open IKE SAs at the end (it once kept the
/// entry of every client that floated to port 4500 behind a NAT;
/// `half_open_index_forgets_floated_clients` in controlplane/ike/tests/chaos.rs).
const CHECK_HALF_OPEN_INDEX: bool = true;
/// Datagrams kept for [`Op::Replay`].
const HISTORY: usize = 32;
/// Datagrams waiting for one side, at most (the oldest are lost first).
const INBOX: usize = 256;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);

// ---- a replayable provider

/// OpenSSL's primitives, with a deterministic generator in place of its CSPRNG: SPIs, nonces,
/// IVs, cookie secrets and jitter depend only on the input, so a crash replays with the same
/// rekey-collision winners and cookie decisions. Diffie-Hellman private values stay
/// OpenSSL's: they only change key material, and a corrupted KE payload fails authentication
/// whatever they are.
static PROVIDER: WithRandom = WithRandom {
    base: &OpensslProvider,
    random: replayable_fill,
    name: "openssl with replayable randomness (fuzzing only)",
};
static RNG: Mutex<u64> = Mutex::new(0);

fn reseed(seed: u8) {
    *RNG.lock().unwrap_or_else(PoisonError::into_inner) = u64::from(seed);
}

fn replayable_fill(out: &mut [u8]) {
    let mut s = RNG.lock().unwrap_or_else(PoisonError::into_inner);
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut s).to_be_bytes()[..chunk.len()]);
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, good enough to stand in for
/// randomness in a test.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---- the configurations (the pair harness's road warrior, with short IKE lifetimes)

fn psk() -> Arc<Zeroizing<Vec<u8>>> {
    Arc::new(Zeroizing::new(b"sesame open".to_vec()))
}

/// IKE SAs rekey after ten minutes at most and expire after fifteen, so that time jumps
/// reach the timer-driven rekeys, their collisions and expiry.
const IKE_LIFETIME: Lifetimes =
    Lifetimes { rekey: Duration::from_secs(600), hard: Duration::from_secs(900), jitter: Duration::from_secs(60) };

fn cidr(s: &str) -> IpCidr {
    s.parse().expect("a literal prefix")
}

fn responder_config() -> IkeConfig {
    let conn = Connection {
        local_ts: vec![ts::from_cidr(cidr("10.1.0.0/16"))],
        pools: vec![0],
        dns: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, 53))],
        ike_lifetime: IKE_LIFETIME,
        dpd_delay: Duration::from_secs(30),
        ..Connection::psk(
            "rw",
            parse_identity("vpn.example.com").expect("a literal identity"),
            IdentityPattern::parse("*@example.com").expect("a literal pattern"),
            psk(),
            IkeProposal::parse("aes128gcm16-prfsha256-x25519-ecp256").expect("a literal proposal"),
            ["aes128gcm16", "aes128-sha1"].iter().map(|s| EspProposal::parse(s).expect("a literal proposal")).collect(),
        )
    };
    IkeConfig {
        connections: vec![conn],
        pools: vec![("rw".into(), "10.9.0.0/24".into())],
        retransmit: Retransmit { timeout: Duration::from_secs(2), base: 1.5, tries: 3 },
        // Low enough that forged and repeated IKE_SA_INITs reach the cookie exchange and
        // the limit on IKE SAs.
        cookie_threshold: 3,
        max_ike_sas: 32,
        // Small enough that the IKE_AUTH response goes out in fragments (RFC 7383).
        fragment_size: 200,
        ..IkeConfig::default()
    }
}

fn initiator_config() -> IkeConfig {
    let conn = Connection {
        ike_lifetime: IKE_LIFETIME,
        ..Connection::psk(
            "home",
            parse_identity("alice@example.com").expect("a literal identity"),
            IdentityPattern::parse("vpn.example.com").expect("a literal pattern"),
            psk(),
            IkeProposal::parse("aes128gcm16-prfsha256-x25519").expect("a literal proposal"),
            vec![EspProposal::parse("aes128gcm16").expect("a literal proposal")],
        )
    };
    IkeConfig {
        connections: vec![conn],
        retransmit: Retransmit { timeout: Duration::from_secs(2), base: 1.5, tries: 3 },
        // The IKE_AUTH request goes out in fragments too.
        fragment_size: 200,
        ..IkeConfig::default()
    }
}

fn options(flags: u8) -> InitiatorOptions {
    let request_vip = flags & 1 == 0;
    InitiatorOptions {
        request_vip,
        local_ts: if request_vip { vec![] } else { vec![ts::host(IpAddr::V4(CLIENT))] },
        remote_ts: vec![ts::from_cidr(cidr("10.1.0.0/16"))],
        initial_contact: flags & 2 == 0,
    }
}

// ---- the bytecode

/// The input, read front to back; what is missing reads as zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn arg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.arg(), self.arg()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The operations. `side` arguments: even for the initiator, odd for the responder.
#[derive(Debug)]
enum Op {
    /// `0, side`: deliver the oldest datagram waiting for `side`.
    Deliver { to_resp: bool },
    /// `1, side, pos_hi, pos_lo, x`: the same, with byte `pos % len` XORed with `x` (1 if 0).
    Corrupt { to_resp: bool, pos: u16, x: u8 },
    /// `2, side`: deliver it and keep it at the head (a duplicate follows).
    Duplicate { to_resp: bool },
    /// `3, side`: lose it.
    Drop { to_resp: bool },
    /// `4, side, n`: move the oldest `n % 4 + 1` datagrams to the back (reordering).
    Reorder { to_resp: bool, n: u8 },
    /// `5, flags, len, bytes…`: forged bytes to a side; flags bit 0: port 4500, bit 1: from a
    /// stranger (else from the client's NAT mapping), bit 2: to the initiator.
    Forge { flags: u8, data: Vec<u8> },
    /// `6, which`: deliver a datagram seen before again (to the side it went to).
    Replay { which: u8 },
    /// `7, n`: move time by `n` seconds (`n` < 200), else by `(n - 199) × 5` minutes, running
    /// the timers of both endpoints on the way (nothing is delivered meanwhile).
    Wait { n: u8 },
    /// `8, side, pick, kind, arg`: a data-plane event about one of `side`'s pairs.
    ChildEvent { resp: bool, pick: u8, kind: u8, arg: u8 },
    /// `9, side, pick`: rekey a pair now.
    RekeyChild { resp: bool, pick: u8 },
    /// `10, side, pick`: rekey an IKE SA now.
    RekeyIke { resp: bool, pick: u8 },
    /// `11, side, pick`: delete an IKE SA.
    Terminate { resp: bool, pick: u8 },
    /// `12, flags`: the initiator starts another IKE SA; flags bit 0: without a virtual IP,
    /// bit 1: without INITIAL_CONTACT.
    Initiate { flags: u8 },
    /// `13, k`: the NAT forgets its mappings; new ones use ports `1024 + 2k` and `1025 + 2k`.
    Rebind { k: u8 },
}

impl Op {
    fn read(input: &mut Input<'_>) -> Option<Op> {
        let code = input.byte()?;
        let side = |input: &mut Input<'_>| input.arg() & 1 == 1;
        Some(match code % 14 {
            0 => Op::Deliver { to_resp: side(input) },
            1 => Op::Corrupt { to_resp: side(input), pos: input.u16(), x: input.arg() },
            2 => Op::Duplicate { to_resp: side(input) },
            3 => Op::Drop { to_resp: side(input) },
            4 => Op::Reorder { to_resp: side(input), n: input.arg() },
            5 => {
                let flags = input.arg();
                let len = usize::from(input.arg());
                Op::Forge { flags, data: input.bytes(len).to_vec() }
            }
            6 => Op::Replay { which: input.arg() },
            7 => Op::Wait { n: input.arg() },
            8 => Op::ChildEvent { resp: side(input), pick: input.arg(), kind: input.arg(), arg: input.arg() },
            9 => Op::RekeyChild { resp: side(input), pick: input.arg() },
            10 => Op::RekeyIke { resp: side(input), pick: input.arg() },
            11 => Op::Terminate { resp: side(input), pick: input.arg() },
            12 => Op::Initiate { flags: input.arg() },
            _ => Op::Rebind { k: input.arg() },
        })
    }
}

// ---- the world

/// A datagram on its way (the initiator's already through the NAT).
#[derive(Debug, Clone)]
struct Flight {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// One endpoint, its inbox, and its data plane as far as the invariants need it.
struct Side {
    name: &'static str,
    ep: Endpoint,
    inbox: VecDeque<Flight>,
    /// Every cookie ever installed.
    ever: BTreeSet<u64>,
    /// Cookies installed and not removed.
    live: BTreeSet<u64>,
    /// (local prefix, remote prefix) → the pair carrying it.
    routes: BTreeMap<(IpCidr, IpCidr), u64>,
}

impl Side {
    fn new(name: &'static str, cfg: IkeConfig, now: Instant) -> Side {
        let mut ep = Endpoint::new(Arc::new(cfg), &PROVIDER, now, 1_900_000_000).expect("the pool is valid");
        ep.set_trace(esprit_ikev2::TraceScope::All);
        Side { name, ep, inbox: VecDeque::new(), ever: BTreeSet::new(), live: BTreeSet::new(), routes: BTreeMap::new() }
    }

    /// Applies the data-plane outputs, checking that each names a live pair; returns the
    /// datagrams to send.
    fn drain(&mut self) -> Vec<esprit_ikev2::Datagram> {
        let mut sent = Vec::new();
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Send(d) => sent.push(d),
                Output::Install(i) => {
                    assert!(self.ever.insert(i.cookie), "{}: cookie {} installed twice", self.name, i.cookie);
                    self.live.insert(i.cookie);
                    if i.route {
                        for p in &i.policies {
                            self.routes.insert(*p, i.cookie);
                        }
                    }
                }
                Output::Route { cookie, policies, .. } => {
                    assert!(self.live.contains(&cookie), "{}: route to pair {cookie}, not installed", self.name);
                    for p in policies {
                        self.routes.insert(p, cookie);
                    }
                }
                Output::Remove { cookie, unroute, .. } => {
                    assert!(self.live.remove(&cookie), "{}: remove of pair {cookie}, not installed", self.name);
                    for p in unroute {
                        if self.routes.get(&p) == Some(&cookie) {
                            self.routes.remove(&p);
                        }
                    }
                }
                Output::UpdatePeer { cookie, .. } => {
                    assert!(self.live.contains(&cookie), "{}: peer update of pair {cookie}, not installed", self.name);
                }
                Output::Event(e) => {
                    if tracing() {
                        eprintln!("      {}: {e:?}", self.name);
                    }
                }
                Output::Decrypted { datagram, .. } => {
                    let m = esprit_ikev2::message::decode(&datagram.data);
                    assert!(m.is_ok_and(|m| m.encrypted.is_none()), "{}: a traced message does not decode", self.name);
                }
            }
        }
        sent
    }

    fn push(&mut self, f: Flight) {
        if self.inbox.len() == INBOX {
            self.inbox.pop_front();
        }
        self.inbox.push_back(f);
    }

    /// A pair by `pick`: bit 7 chooses among every pair ever installed (stale cookies: the
    /// data plane may report on a pair the control plane just removed), else among live ones.
    fn pick_child(&self, pick: u8) -> u64 {
        let set = if pick & 0x80 == 0 { &self.live } else { &self.ever };
        match set.len() {
            0 => u64::from(pick),
            n => *set.iter().nth(usize::from(pick & 0x7f) % n).expect("in range"),
        }
    }

    /// Our SPI of an IKE SA by `pick` (an unknown one when there is none).
    fn pick_sa(&self, pick: u8) -> u64 {
        let list = self.ep.list();
        match list.len() {
            0 => u64::from(pick),
            n => {
                let sa = &list[usize::from(pick) % n];
                if sa.initiator {
                    sa.spi_i
                } else {
                    sa.spi_r
                }
            }
        }
    }

    fn check(&self, ops: usize) {
        let n = self.ep.ike_sa_count();
        assert!(n <= ops + 2, "{}: {n} IKE SAs after {ops} operations", self.name);
        for (pool, in_use, _) in self.ep.pool_usage() {
            assert!(in_use <= n, "{}: {in_use} addresses of {pool} leased by {n} IKE SAs", self.name);
        }
        if let Some((p, c)) = self.routes.iter().find(|(_, c)| !self.live.contains(c)) {
            panic!("{}: policy {p:?} points at removed pair {c}", self.name);
        }
        let installed: BTreeSet<u64> = self.ep.installed().iter().map(|c| c.cookie).collect();
        assert_eq!(installed, self.live, "{}: the endpoint's pairs and the data plane's differ", self.name);
    }
}

struct World {
    now: Instant,
    ops: usize,
    init: Side,
    resp: Side,
    /// The NAT's public ports for the client's ports 500 and 4500.
    nat_ports: (u16, u16),
    history: VecDeque<(bool, Flight)>,
    initiations: u8,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        let mut w = World {
            now,
            ops: 0,
            init: Side::new("initiator", initiator_config(), now),
            resp: Side::new("responder", responder_config(), now),
            nat_ports: (1024, 1025),
            history: VecDeque::new(),
            initiations: 0,
        };
        w.initiate(0);
        w
    }

    fn nat_public(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(NAT_PUBLIC), port)
    }

    /// The client's private address for a datagram to the NAT's public side, if mapped.
    fn nat_in(&self, to: SocketAddr) -> Option<SocketAddr> {
        if to.ip() != IpAddr::V4(NAT_PUBLIC) {
            return None;
        }
        let port = match to.port() {
            p if p == self.nat_ports.0 => 500,
            p if p == self.nat_ports.1 => 4500,
            _ => return None,
        };
        Some(SocketAddr::new(IpAddr::V4(CLIENT), port))
    }

    fn initiate(&mut self, flags: u8) {
        let local = SocketAddr::new(IpAddr::V4(CLIENT), 500);
        let gw = SocketAddr::new(IpAddr::V4(GATEWAY), 500);
        self.init.ep.initiate(self.now, 0, local, gw, options(flags));
        self.collect();
    }

    /// Moves what both endpoints produced into the network, through the NAT.
    fn collect(&mut self) {
        for d in self.init.drain() {
            let port = if d.local.port() == 500 { self.nat_ports.0 } else { self.nat_ports.1 };
            let from = self.nat_public(port);
            self.resp.push(Flight { from, to: d.remote, data: d.data });
        }
        for d in self.resp.drain() {
            self.init.push(Flight { from: d.local, to: d.remote, data: d.data });
        }
    }

    fn side(&mut self, resp: bool) -> &mut Side {
        if resp {
            &mut self.resp
        } else {
            &mut self.init
        }
    }

    fn deliver(&mut self, to_resp: bool, f: Flight) {
        if tracing() && !to_resp && self.nat_in(f.to).is_none() {
            eprintln!("      to the initiator: lost at the NAT (no mapping for {})", f.to);
        } else if tracing() {
            let what = match esprit_ikev2::message::decode(&f.data) {
                Ok(d) => format!("{:?} #{} response {}", d.header.exchange, d.header.message_id, d.header.response),
                Err(e) => format!("undecodable ({e})"),
            };
            eprintln!(
                "      to the {}: {what}, {} bytes",
                if to_resp { "responder" } else { "initiator" },
                f.data.len()
            );
        }
        if to_resp {
            self.resp.ep.handle_datagram(self.now, f.to, f.from, &f.data);
        } else if let Some(to) = self.nat_in(f.to) {
            self.init.ep.handle_datagram(self.now, to, f.from, &f.data);
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((to_resp, f));
        self.collect();
    }

    /// Runs both endpoints' timers up to `until`, delivering nothing (or everything, when
    /// `reliable`, between timers).
    fn run_until(&mut self, until: Instant, reliable: bool) {
        let mut rounds = 0;
        loop {
            if reliable {
                self.settle();
            }
            let next = [self.init.ep.poll_timeout(), self.resp.ep.poll_timeout()].into_iter().flatten().min();
            let Some(t) = next.filter(|t| *t <= until) else { break };
            self.now = self.now.max(t);
            self.init.ep.handle_timeout(self.now);
            self.resp.ep.handle_timeout(self.now);
            self.collect();
            rounds += 1;
            assert!(rounds < 10_000, "the timers fire forever");
        }
        self.now = self.now.max(until);
    }

    /// Delivers until both inboxes are empty.
    fn settle(&mut self) {
        let mut n = 0;
        loop {
            let to_resp = !self.resp.inbox.is_empty();
            let Some(f) = self.side(to_resp).inbox.pop_front() else { break };
            self.deliver(to_resp, f);
            n += 1;
            assert!(n < 10_000, "the endpoints talk forever");
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Deliver { to_resp } => {
                if let Some(f) = self.side(to_resp).inbox.pop_front() {
                    self.deliver(to_resp, f);
                }
            }
            Op::Corrupt { to_resp, pos, x } => {
                if let Some(mut f) = self.side(to_resp).inbox.pop_front() {
                    if !f.data.is_empty() {
                        let i = usize::from(pos) % f.data.len();
                        f.data[i] ^= x.max(1);
                    }
                    self.deliver(to_resp, f);
                }
            }
            Op::Duplicate { to_resp } => {
                if let Some(f) = self.side(to_resp).inbox.front().cloned() {
                    self.deliver(to_resp, f);
                }
            }
            Op::Drop { to_resp } => {
                self.side(to_resp).inbox.pop_front();
            }
            Op::Reorder { to_resp, n } => {
                let inbox = &mut self.side(to_resp).inbox;
                let n = (usize::from(n) % 4 + 1).min(inbox.len());
                inbox.rotate_left(n);
            }
            Op::Forge { flags, data } => {
                let port = if flags & 1 == 0 { 500 } else { 4500 };
                let to_resp = flags & 4 == 0;
                let stranger = SocketAddr::new(IpAddr::V4(STRANGER), port);
                let f = if to_resp {
                    let nat = if port == 500 { self.nat_ports.0 } else { self.nat_ports.1 };
                    let from = if flags & 2 == 0 { self.nat_public(nat) } else { stranger };
                    Flight { from, to: SocketAddr::new(IpAddr::V4(GATEWAY), port), data }
                } else {
                    let from = if flags & 2 == 0 { SocketAddr::new(IpAddr::V4(GATEWAY), port) } else { stranger };
                    let nat = if port == 500 { self.nat_ports.0 } else { self.nat_ports.1 };
                    Flight { from, to: self.nat_public(nat), data }
                };
                self.deliver(to_resp, f);
            }
            Op::Replay { which } => {
                if !self.history.is_empty() {
                    let (to_resp, f) = self.history[usize::from(which) % self.history.len()].clone();
                    self.deliver(to_resp, f);
                }
            }
            Op::Wait { n } => {
                let secs = if n < 200 { u64::from(n) } else { u64::from(n - 199) * 300 };
                let until = self.now + Duration::from_secs(secs);
                self.run_until(until, false);
            }
            Op::ChildEvent { resp, pick, kind, arg } => {
                let cookie = self.side(resp).pick_child(pick);
                let ev = match kind % 6 {
                    0 => ChildEvent::SoftLifetime,
                    1 => ChildEvent::HardLifetime,
                    2 => ChildEvent::SeqNearExhaustion,
                    3 => ChildEvent::Idle(u32::from(arg)),
                    4 => ChildEvent::Resumed,
                    _ => {
                        // ESP from the NAT's current mapping (after a rebinding) or elsewhere.
                        let to = match (resp, arg & 1 == 0) {
                            (true, true) => self.nat_public(self.nat_ports.1),
                            (true, false) => SocketAddr::new(IpAddr::V4(NAT_PUBLIC), 40_000 + u16::from(arg)),
                            (false, true) => SocketAddr::new(IpAddr::V4(GATEWAY), 4500),
                            (false, false) => SocketAddr::new(IpAddr::V4(STRANGER), 4500),
                        };
                        ChildEvent::NatMappingChanged(to)
                    }
                };
                let now = self.now;
                self.side(resp).ep.handle_child_event(now, cookie, ev);
                self.collect();
            }
            Op::RekeyChild { resp, pick } => {
                let now = self.now;
                let s = self.side(resp);
                let cookie = s.pick_child(pick);
                s.ep.rekey_child(now, cookie);
                self.collect();
            }
            Op::RekeyIke { resp, pick } => {
                let now = self.now;
                let s = self.side(resp);
                let spi = s.pick_sa(pick);
                s.ep.rekey_ike(now, spi);
                self.collect();
            }
            Op::Terminate { resp, pick } => {
                let now = self.now;
                let s = self.side(resp);
                let spi = s.pick_sa(pick);
                s.ep.terminate(now, spi);
                self.collect();
            }
            Op::Initiate { flags } => {
                if self.initiations < MAX_INITIATIONS {
                    self.initiations += 1;
                    self.initiate(flags);
                }
            }
            Op::Rebind { k } => {
                let base = 1024 + 2 * u16::from(k % 8);
                self.nat_ports = (base, base + 1);
            }
        }
    }

    fn trace(&self, when: &str) {
        if !tracing() {
            return;
        }
        for s in [&self.init, &self.resp] {
            let sas: Vec<_> = s.ep.list().into_iter().map(|sa| (sa.state, sa.children.len())).collect();
            eprintln!("{when}, {}: IKE SAs (state, pairs) {sas:?}, pairs {:?}", s.name, s.live);
            eprintln!("  {:?}", s.ep.stats);
        }
    }

    fn check(&self) {
        self.init.check(self.ops);
        self.resp.check(self.ops);
    }
}

fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ESPRIT_FUZZ_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    reseed(input.arg());
    let mut w = World::new();
    w.check();
    while let Some(op) = Op::read(&mut input) {
        w.ops += 1;
        if w.ops > MAX_OPS {
            break;
        }
        if tracing() {
            eprintln!("{:>3} {op:?}", w.ops);
        }
        w.run(op);
        w.check();
    }
    w.trace("after the operations");
    // A reliable network for two minutes: every handshake finishes or times out (the
    // half-open timeout is 30 s), and the invariants still hold.
    let until = w.now + Duration::from_secs(120);
    w.run_until(until, true);
    w.check();
    w.trace("after two reliable minutes");
    if CHECK_HALF_OPEN_INDEX {
        assert_eq!(w.resp.ep.half_open_count(), 0, "responder: half-open IKE SAs outlive their timeout");
    }
    for s in [&w.init, &w.resp] {
        let stuck: Vec<_> =
            s.ep.list()
                .into_iter()
                .filter(|sa| matches!(sa.state, "connecting" | "half-open" | "authenticating"))
                .collect();
        assert!(stuck.is_empty(), "{}: IKE SAs stuck in their handshake: {stuck:?}", s.name);
    }
});
