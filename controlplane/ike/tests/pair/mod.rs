//! Two endpoints in memory (quinn's `Pair`): our initiator behind a simulated NAT and our
//! responder, simulated time, loss, duplication and reordering, and a simulated data plane
//! on each side that keeps what the endpoints install, so that tests can assert which SAs
//! end up installed — and send ESP through them with the data plane's own ESP engine.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_esp::sa::{Endpoint as EspEndpoint, InboundMeta, InboundSa, OutboundSa, SaParams, UdpEncap};
use esprit_esp::{DropReason, HeapBuf, PacketBuf};
use esprit_ikev2::config::{Connection, IkeConfig, Retransmit};
use esprit_ikev2::crypto::{default_provider, CryptoProvider};
use esprit_ikev2::identity::{parse_identity, IdentityPattern};
use esprit_ikev2::message::{self, PayloadType};
use esprit_ikev2::proposal::{EspProposal, IkeProposal};
use esprit_ikev2::ts;
use esprit_ikev2::{ChildInstall, Endpoint, Event, InitiatorOptions, Output};
use zeroize::Zeroizing;

pub const CLIENT_PRIVATE: &str = "192.168.1.10:500";
pub const NAT_PUBLIC_IP: &str = "203.0.113.2";
pub const GATEWAY: &str = "198.51.100.1:500";

pub fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One side's simulated data plane: what is installed, and where policies point.
#[derive(Debug, Default)]
pub struct DataPlane {
    pub children: BTreeMap<u64, ChildInstall>,
    /// (local prefix, remote prefix) → cookie of the pair carrying it.
    pub routes: BTreeMap<(String, String), u64>,
    pub removed: Vec<u64>,
    pub peer_updates: Vec<(u64, SocketAddr)>,
}

impl DataPlane {
    fn apply(&mut self, o: &Output) {
        match o {
            Output::Install(i) => {
                if i.route {
                    for (l, r) in &i.policies {
                        self.routes.insert((l.to_string(), r.to_string()), i.cookie);
                    }
                }
                self.children.insert(i.cookie, (**i).clone());
            }
            Output::Route { cookie, policies, .. } => {
                for (l, r) in policies {
                    self.routes.insert((l.to_string(), r.to_string()), *cookie);
                }
            }
            Output::Remove { cookie, unroute, .. } => {
                self.children.remove(cookie);
                for (l, r) in unroute {
                    let k = (l.to_string(), r.to_string());
                    if self.routes.get(&k) == Some(cookie) {
                        self.routes.remove(&k);
                    }
                }
                self.removed.push(*cookie);
            }
            Output::UpdatePeer { cookie, remote, .. } => {
                if let Some(c) = self.children.get_mut(cookie) {
                    c.remote = *remote;
                }
                self.peer_updates.push((*cookie, *remote));
            }
            Output::Send(_) | Output::Event(_) | Output::Decrypted { .. } => {}
        }
    }

    /// Every route points at an installed pair (no black hole).
    pub fn routes_valid(&self) -> bool {
        self.routes.values().all(|c| self.children.contains_key(c))
    }
}

/// A datagram on its way.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub to_responder: bool,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// The two endpoints and the network between them.
pub struct Pair {
    pub now: Instant,
    pub init: Endpoint,
    pub resp: Endpoint,
    pub init_dp: DataPlane,
    pub resp_dp: DataPlane,
    pub init_events: Vec<Event>,
    pub resp_events: Vec<Event>,
    pub net: VecDeque<InFlight>,
    /// The NAT's current public port for the client's port 500 and 4500 flows.
    pub nat_ports: (u16, u16),
    /// Drop what `drop` says (called with each datagram before delivery).
    pub drop: Box<dyn FnMut(&InFlight) -> bool>,
    pub delivered: Vec<InFlight>,
    /// The responder's messages in the clear while it traces (inbound?, datagram).
    pub resp_decrypted: Vec<(bool, esprit_ikev2::Datagram)>,
}

pub fn ike_props(s: &str) -> Vec<IkeProposal> {
    IkeProposal::parse(s).unwrap()
}

pub fn esp_props(s: &[&str]) -> Vec<EspProposal> {
    s.iter().map(|x| EspProposal::parse(x).unwrap()).collect()
}

pub fn psk(s: &str) -> Arc<Zeroizing<Vec<u8>>> {
    Arc::new(Zeroizing::new(s.as_bytes().to_vec()))
}

/// The gateway's road-warrior connection (PSK, a pool, the protected network).
pub fn responder_conn() -> Connection {
    Connection {
        local_ts: vec![ts::from_cidr("10.1.0.0/16".parse().unwrap())],
        pools: vec![0],
        dns: vec!["10.1.0.53".parse().unwrap()],
        dpd_delay: Duration::from_secs(30),
        ..Connection::psk(
            "rw",
            parse_identity("vpn.example.com").unwrap(),
            IdentityPattern::parse("*@example.com").unwrap(),
            psk("sesame open"),
            ike_props("aes128gcm16-prfsha256-x25519-ecp256"),
            esp_props(&["aes128gcm16", "aes128-sha1"]),
        )
    }
}

/// The road warrior's connection to the gateway.
pub fn initiator_conn() -> Connection {
    Connection::psk(
        "home",
        parse_identity("alice@example.com").unwrap(),
        IdentityPattern::parse("vpn.example.com").unwrap(),
        psk("sesame open"),
        ike_props("aes128gcm16-prfsha256-x25519"),
        esp_props(&["aes128gcm16"]),
    )
}

pub fn config(c: Connection, pools: &[(&str, &str)]) -> IkeConfig {
    IkeConfig {
        connections: vec![c],
        pools: pools.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        retransmit: Retransmit { timeout: Duration::from_secs(2), base: 1.5, tries: 3 },
        ..IkeConfig::default()
    }
}

pub fn vip_options() -> InitiatorOptions {
    InitiatorOptions {
        request_vip: true,
        local_ts: vec![],
        remote_ts: vec![ts::from_cidr("10.1.0.0/16".parse().unwrap())],
        initial_contact: true,
    }
}

impl Pair {
    pub fn new(init_cfg: IkeConfig, resp_cfg: IkeConfig) -> Pair {
        Pair::with_provider(init_cfg, resp_cfg, default_provider())
    }

    /// Like [`Pair::new`], with both endpoints' crypto and randomness from `p` (a seeded
    /// generator makes SPIs and nonces, hence rekey-collision winners, replayable).
    pub fn with_provider(init_cfg: IkeConfig, resp_cfg: IkeConfig, p: &'static dyn CryptoProvider) -> Pair {
        let now = Instant::now();
        let unix = 1_900_000_000; // 2030: inside the test certificates' validity
        Pair {
            now,
            init: Endpoint::new(Arc::new(init_cfg), p, now, unix).unwrap(),
            resp: Endpoint::new(Arc::new(resp_cfg), p, now, unix).unwrap(),
            init_dp: DataPlane::default(),
            resp_dp: DataPlane::default(),
            init_events: vec![],
            resp_events: vec![],
            net: VecDeque::new(),
            nat_ports: (1024, 1025),
            drop: Box::new(|_| false),
            delivered: vec![],
            resp_decrypted: vec![],
        }
    }

    pub fn standard() -> Pair {
        Pair::new(config(initiator_conn(), &[]), config(responder_conn(), &[("rw", "10.9.0.0/24")]))
    }

    /// The NAT: the client's private source becomes the public address and port.
    fn nat_out(&self, from: SocketAddr) -> SocketAddr {
        let port = if from.port() == 500 { self.nat_ports.0 } else { self.nat_ports.1 };
        SocketAddr::new(NAT_PUBLIC_IP.parse().unwrap(), port)
    }

    fn nat_in(&self, to: SocketAddr) -> Option<SocketAddr> {
        let private: IpAddr = sock(CLIENT_PRIVATE).ip();
        if to.port() == self.nat_ports.0 {
            Some(SocketAddr::new(private, 500))
        } else if to.port() == self.nat_ports.1 {
            Some(SocketAddr::new(private, 4500))
        } else {
            None
        }
    }

    pub fn start(&mut self, opts: InitiatorOptions) -> u64 {
        let spi = self.init.initiate(self.now, 0, sock(CLIENT_PRIVATE), sock(GATEWAY), opts).unwrap();
        self.collect();
        spi
    }

    /// Moves everything the endpoints produced into the network and the data planes.
    pub fn collect(&mut self) {
        while let Some(o) = self.init.poll_output() {
            self.init_dp.apply(&o);
            match o {
                Output::Send(d) => {
                    let from = self.nat_out(d.local);
                    self.net.push_back(InFlight { to_responder: true, from, to: d.remote, data: d.data });
                }
                Output::Event(e) => self.init_events.push(e),
                _ => {}
            }
        }
        while let Some(o) = self.resp.poll_output() {
            self.resp_dp.apply(&o);
            match o {
                Output::Send(d) => {
                    self.net.push_back(InFlight { to_responder: false, from: d.local, to: d.remote, data: d.data })
                }
                Output::Event(e) => self.resp_events.push(e),
                Output::Decrypted { inbound, datagram } => self.resp_decrypted.push((inbound, datagram)),
                _ => {}
            }
        }
    }

    /// Applies a responder output to its simulated data plane (for tests that drive a third
    /// endpoint by hand).
    pub fn resp_dp_apply(&mut self, o: &Output) {
        self.resp_dp.apply(o);
    }

    /// Delivers one datagram; false if the network is empty.
    pub fn step(&mut self) -> bool {
        let Some(m) = self.net.pop_front() else { return false };
        if (self.drop)(&m) {
            return true;
        }
        self.delivered.push(m.clone());
        if m.to_responder {
            self.resp.handle_datagram(self.now, m.to, m.from, &m.data);
        } else if let Some(to) = self.nat_in(m.to) {
            self.init.handle_datagram(self.now, to, m.from, &m.data);
        }
        self.collect();
        true
    }

    /// Delivers until the network is quiet (time does not move).
    pub fn settle(&mut self) {
        self.collect();
        let mut n = 0;
        while self.step() {
            n += 1;
            assert!(n < 10_000, "the endpoints talk forever");
        }
    }

    /// Moves time to the next timer of either endpoint (at most to `limit`), runs it.
    pub fn advance(&mut self, limit: Instant) -> bool {
        let next = [self.init.poll_timeout(), self.resp.poll_timeout()].into_iter().flatten().min();
        let Some(t) = next.filter(|t| *t <= limit) else {
            self.now = limit.max(self.now);
            return false;
        };
        self.now = t.max(self.now);
        self.init.handle_timeout(self.now);
        self.resp.handle_timeout(self.now);
        self.collect();
        true
    }

    /// Runs the world for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.settle();
            if !self.advance(end) {
                break;
            }
        }
        self.settle();
    }

    /// Messages of an exchange type seen on the wire, by direction.
    pub fn exchanges(&self) -> Vec<(bool, u8, bool)> {
        self.delivered
            .iter()
            .filter_map(|m| {
                let h = message::decode(&m.data).ok()?.header;
                Some((m.to_responder, h.exchange.0, h.response))
            })
            .collect()
    }

    /// How many SKF fragments were delivered.
    pub fn fragments(&self) -> usize {
        self.delivered
            .iter()
            .filter(|m| message::decode(&m.data).is_ok_and(|d| d.header.next_payload == PayloadType::SKF))
            .count()
    }
}

/// The ESP engine's SA for one direction of an installed pair.
fn esp_params(c: &ChildInstall, outbound: bool) -> SaParams {
    let keys = if outbound { &c.keys_out } else { &c.keys_in };
    let local = c.local.ip();
    let remote = c.remote.ip();
    SaParams {
        spi: if outbound { c.spi_out } else { c.spi_in },
        transform: c.transform,
        keys: esprit_esp::crypto::SaKeys::new(c.transform, &keys.enc, &keys.int).unwrap(),
        local,
        remote,
        encap: c.encap.then(|| UdpEncap { local_port: c.local.port(), remote_port: c.remote.port() }),
        esn: c.esn,
        replay_window: 64,
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
        df: Default::default(),
        lifetime: Default::default(),
    }
}

/// An inner IPv4/UDP packet.
pub fn inner(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0u8; 28 + payload.len()];
    esprit_wire::ipv4::Repr {
        src: s,
        dst: d,
        protocol: 17,
        payload_len: 8 + payload.len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    esprit_wire::udp::Repr { src_port: 1000, dst_port: 2000, payload_len: payload.len() }.emit(&mut p[20..]);
    p[28..].copy_from_slice(payload);
    p
}

/// Seals `pkt` with `from`'s outbound SA and opens it with `to`'s inbound SA of the same
/// pair: the two sides derived the same keys and SPIs, and the selectors admit the packet.
pub fn esp_round_trip(from: &ChildInstall, to: &ChildInstall, pkt: &[u8]) -> Result<Vec<u8>, DropReason> {
    let p = esprit_esp::crypto::default_provider(from.transform);
    let tx = OutboundSa::new(esp_params(from, true), p).unwrap();
    let rx = InboundSa::new(esp_params(to, false), p).unwrap();
    let mut b = [HeapBuf::from_slice(pkt)];
    let mut r = [Ok(())];
    tx.encap_burst(&mut b, &mut r, 1);
    r[0]?;
    let hdr = if from.remote.is_ipv4() { 20 } else { 40 } + if from.encap { 8 } else { 0 };
    let meta = InboundMeta {
        esp_offset: hdr,
        src: EspEndpoint { addr: from.local.ip(), port: from.local.port() },
        udp: from.encap,
    };
    let mut out = [Err(DropReason::NoBuffer)];
    rx.decap_burst(&mut b, &[meta], &mut out, 1);
    out[0].map(|_| b[0].data().to_vec())
}

/// The pair of `a` whose inbound SPI is `b`'s outbound one.
pub fn peer_of<'a>(a: &'a DataPlane, b: &ChildInstall) -> Option<&'a ChildInstall> {
    a.children.values().find(|c| c.spi_in == b.spi_out && c.spi_out == b.spi_in)
}
