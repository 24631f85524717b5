//! One IKE SA: its keys, its two message-ID windows (RFC 7296 §2.3: one outstanding request
//! each way), retransmission of our requests (§2.1) and of our last response, RFC 7383
//! fragments, and its CHILD SAs. The exchanges themselves are in [`crate::exchange`].

use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_esp::Transform as EspTransform;
use esprit_wire::IpCidr;
use zeroize::Zeroizing;

use crate::config::{Connection, IkeConfig};
use crate::crypto::{CryptoProvider, DhSecret};
use crate::keys::{IkeKeys, IkeSuite};
use crate::message::{self, Decoded, ExchangeType, Header, Identification, Payload};
use crate::pool::Pool;
use crate::sk::{self, Reassembly, SkKeys};
use crate::ts::{self, TrafficSelector};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Prefix the non-ESP marker (RFC 3948 §2.2): we are on the NAT-T port.
    pub marker: bool,
    pub data: Vec<u8>,
}

/// Key material of one CHILD SA direction.
#[derive(Clone, PartialEq, Eq)]
pub struct ChildKeys {
    pub enc: Zeroizing<Vec<u8>>,
    pub int: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}+{} key bytes>", self.enc.len(), self.int.len())
    }
}

/// A CHILD SA pair for the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInstall {
    /// Ours, unique: names the pair in every later output and in data-plane events.
    pub cookie: u64,
    /// Our SPI of the IKE SA it belongs to.
    pub ike_spi: u64,
    pub connection: String,
    pub transform: EspTransform,
    pub esn: bool,
    pub spi_in: u32,
    pub spi_out: u32,
    pub keys_in: ChildKeys,
    pub keys_out: ChildKeys,
    /// Tunnel endpoints; with UDP encapsulation, the ports too.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub encap: bool,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// (our side, their side) prefixes whose traffic goes out on this pair.
    pub policies: Vec<(IpCidr, IpCidr)>,
    /// Point the policies at this pair now (else: later, with [`Output::Route`]).
    pub route: bool,
    pub replay_window: u32,
    /// Ask for a rekey after this many seconds (0: never).
    pub soft_secs: u32,
    /// Stop the pair after this many seconds (0: never).
    pub hard_secs: u32,
    /// Report the inbound SA idle after this many seconds (dead peer detection; 0: never).
    pub idle_secs: u32,
}

/// What the state machine asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Datagram),
    /// Install a CHILD SA pair.
    Install(Box<ChildInstall>),
    /// Point these policies at the pair `cookie` (a rekeyed pair takes over).
    Route {
        cookie: u64,
        spi_out: u32,
        policies: Vec<(IpCidr, IpCidr)>,
    },
    /// Remove a CHILD SA pair, and the policies listed (those no other pair took over).
    Remove {
        cookie: u64,
        spi_in: u32,
        spi_out: u32,
        unroute: Vec<(IpCidr, IpCidr)>,
    },
    /// The peer moved (RFC 7296 §2.23): send the pair's traffic to `remote`.
    UpdatePeer {
        cookie: u64,
        spi_in: u32,
        spi_out: u32,
        remote: SocketAddr,
    },
    /// Something an operator wants to know.
    Event(Event),
    /// While a trace is on ([`Endpoint::set_trace`](crate::Endpoint::set_trace)): an
    /// encrypted message as it is before encryption or after decryption (and reassembly) —
    /// the IKE header with the inner payloads in the clear, as a capture shows them.
    Decrypted {
        inbound: bool,
        datagram: Datagram,
    },
}

/// Whose IKE messages a trace shows in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceScope {
    #[default]
    Off,
    All,
    /// Only the peer at this address.
    Peer(IpAddr),
}

impl TraceScope {
    pub fn matches(self, a: IpAddr) -> bool {
        match self {
            TraceScope::Off => false,
            TraceScope::All => true,
            TraceScope::Peer(p) => p == a,
        }
    }
}

/// An IKE SA's keys, for a packet analyser's decryption table (a trace).
pub struct IkeSaKeys {
    pub spi_i: u64,
    pub spi_r: u64,
    pub encr: crate::crypto::EncrAlg,
    pub integ: Option<crate::crypto::IntegAlg>,
    pub sk_ei: Zeroizing<Vec<u8>>,
    pub sk_er: Zeroizing<Vec<u8>>,
    pub sk_ai: Zeroizing<Vec<u8>>,
    pub sk_ar: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never key bytes.
        f.debug_struct("IkeSaKeys").field("spi_i", &self.spi_i).field("spi_r", &self.spi_r).finish()
    }
}

/// Notable happenings, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `took`: from the first IKE_SA_INIT to the end of IKE_AUTH.
    IkeEstablished {
        spi: u64,
        connection: String,
        peer: SocketAddr,
        id: String,
        vips: Vec<IpAddr>,
        took: Duration,
    },
    IkeRekeyed {
        old: u64,
        new: u64,
    },
    IkeClosed {
        spi: u64,
        reason: CloseReason,
    },
    ChildEstablished {
        ike_spi: u64,
        cookie: u64,
        spi_in: u32,
        spi_out: u32,
        rekey_of: Option<u64>,
    },
    ChildClosed {
        ike_spi: u64,
        cookie: u64,
        reason: CloseReason,
    },
    AuthFailed {
        peer: SocketAddr,
        reason: String,
    },
    /// `failures` failed authentications from `addr` within the window: its IKE_SA_INIT
    /// requests are ignored for `secs` seconds.
    AddressBlocked {
        addr: core::net::IpAddr,
        failures: u32,
        secs: u64,
    },
    Refused {
        peer: SocketAddr,
        exchange: ExchangeType,
        notify: u16,
        reason: String,
    },
    NatMappingChanged {
        spi: u64,
        old: SocketAddr,
        new: SocketAddr,
    },
}

/// Why an SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer sent a Delete.
    PeerDeleted,
    /// We deleted it (operator, expiry, replaced).
    Deleted,
    /// A rekeyed SA replaced it.
    Rekeyed,
    /// The peer stopped answering (retransmissions exhausted: dead peer detection).
    PeerDead,
    /// The hard lifetime passed.
    Expired,
    /// A new IKE SA with INITIAL_CONTACT from the same identity replaced it.
    Replaced,
    /// The handshake did not complete in time.
    HalfOpenTimeout,
    /// Authentication or negotiation failed.
    Failed,
}

/// Counters of the state machine.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub rx_datagrams: u64,
    pub rx_dropped: u64,
    pub rx_undecodable: u64,
    pub rx_integrity_failed: u64,
    pub rx_unknown_spi: u64,
    pub rx_retransmits: u64,
    pub tx_datagrams: u64,
    pub tx_retransmits: u64,
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests ignored: their address failed authentication too often.
    pub rx_blocked: u64,
    pub ike_established: u64,
    pub ike_failed: u64,
    pub auth_failed: u64,
    pub children_installed: u64,
    pub child_rekeys: u64,
    pub ike_rekeys: u64,
    pub dpd_sent: u64,
    pub peers_dead: u64,
    pub fragments_rx: u64,
}

/// What every SA needs from its endpoint while it works.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a Arc<IkeConfig>,
    pub p: &'static dyn CryptoProvider,
    pub out: &'a mut VecDeque<Output>,
    pub pools: &'a mut Vec<Pool>,
    pub next_cookie: &'a mut u64,
    pub stats: &'a mut Stats,
    pub now: Instant,
    /// Wall-clock seconds (certificate validity).
    pub unix: i64,
    pub trace: TraceScope,
}

impl Ctx<'_> {
    pub fn random(&self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.p.fill_random(&mut v);
        v
    }
    pub fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.p.fill_random(&mut b);
        u64::from_be_bytes(b)
    }
    pub fn cookie(&mut self) -> u64 {
        *self.next_cookie += 1;
        *self.next_cookie
    }
    pub fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }
}

/// Where an IKE SA is in its life.
#[derive(Debug)]
pub(crate) enum SaState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent {
        dh: Box<dyn DhSecret>,
        ni: Vec<u8>,
        cookie: Option<Vec<u8>>,
    },
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    AwaitingAuth,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    Established,
    /// Replaced by a rekeyed IKE SA; waiting for (or sending) the Delete.
    Rekeyed,
    /// Being deleted: no new exchanges.
    Deleting,
}

/// Proof that the peer authenticated: only [`crate::exchange::auth`] makes one, and CHILD
/// SAs are only installed with it (rustls' proof-token habit).
#[derive(Debug, Clone)]
pub(crate) struct PeerAuthenticated {
    pub id: Identification,
    _private: (),
}

impl PeerAuthenticated {
    pub(crate) fn new_after_verification(id: Identification) -> PeerAuthenticated {
        PeerAuthenticated { id, _private: () }
    }
}

/// Where a CHILD SA is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Installed,
    /// We sent a rekey request for it.
    Rekeying,
    /// A new pair replaced it; the old one stays until deleted (make-before-break).
    Rekeyed {
        by: u64,
    },
    /// A Delete for it is under way.
    Deleting,
}

/// A CHILD SA (a pair of ESP SAs).
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub cookie: u64,
    pub spi_in: u32,
    pub spi_out: u32,
    pub transform: EspTransform,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub policies: Vec<(IpCidr, IpCidr)>,
    /// The policies point at this pair.
    pub routed: bool,
    pub state: ChildState,
    /// The data plane says no packet came in for a while.
    pub idle: bool,
    /// Nonces of the exchange that created it (rekey collisions, RFC 7296 §2.8.1).
    pub nonces: (Vec<u8>, Vec<u8>),
    /// When it was replaced, the old pair is removed at this time at the latest.
    pub remove_at: Option<Instant>,
    /// The peer rekeyed it while our own rekey was under way: its new pair (§2.8.1).
    pub collision: Option<u64>,
    /// Try rekeying again at this time (the peer answered TEMPORARY_FAILURE).
    pub rekey_retry: Option<Instant>,
    /// What was installed (to refill a restarted data plane).
    pub install: Box<ChildInstall>,
}

impl Child {
    /// A pair as installed: its SPIs, transform, selectors, policies and routing from
    /// `install`; no rekey, collision or removal under way.
    pub(crate) fn new(install: Box<ChildInstall>, nonces: (Vec<u8>, Vec<u8>)) -> Child {
        Child {
            cookie: install.cookie,
            spi_in: install.spi_in,
            spi_out: install.spi_out,
            transform: install.transform,
            local_ts: install.local_ts.clone(),
            remote_ts: install.remote_ts.clone(),
            policies: install.policies.clone(),
            routed: install.route,
            state: ChildState::Installed,
            idle: false,
            nonces,
            remove_at: None,
            collision: None,
            rekey_retry: None,
            install,
        }
    }
}

/// A request of ours that waits for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: u32,
    pub exchange: ExchangeType,
    pub datagrams: Vec<Vec<u8>>,
    pub sends: u32,
    pub next: Instant,
    pub task: Task,
}

/// What a request of ours is for (and what its response completes).
#[derive(Debug)]
pub(crate) enum Task {
    /// Initiator: IKE_SA_INIT.
    Init,
    /// Initiator: IKE_AUTH.
    Auth(Box<crate::exchange::auth::AuthSent>),
    /// Rekey the CHILD SA `old`.
    RekeyChild(Box<crate::exchange::child::RekeyChildSent>),
    /// Rekey this IKE SA.
    RekeyIke(Box<crate::exchange::child::RekeyIkeSent>),
    /// Delete CHILD SAs (by cookie).
    DeleteChildren(Vec<u64>),
    /// Delete this IKE SA.
    DeleteIke,
    /// A liveness check (an empty INFORMATIONAL).
    Dpd,
}

/// Things waiting for the request window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    RekeyChild(u64),
    RekeyIke,
    DeleteChild(u64),
    DeleteIke,
    Dpd,
}

/// What an SA asks its endpoint to do (things beyond the SA itself).
#[derive(Debug)]
pub(crate) enum Effect {
    /// Delete, silently, every other IKE SA of this peer identity on this connection
    /// (INITIAL_CONTACT, RFC 7296 §2.4).
    InitialContact { id: Identification, connection: usize, keep: u64 },
    /// A rekeyed IKE SA to add.
    NewSa(Box<IkeSa>),
    /// Move this SA's children and leases to the IKE SA with our SPI `.0` (the peer's rekey
    /// won a collision).
    MoveTo(u64),
    /// Forget this SA (its children are already removed).
    Gone(u64),
    /// The IKE SA with our SPI `spi` must be gone by `at` (a redundant SA of a rekey
    /// collision its creator should delete, in case it never does): deleted then.
    Deadline { spi: u64, at: Instant },
}

/// One IKE SA.
#[derive(Debug)]
pub(crate) struct IkeSa {
    /// Our SPI (the key of the endpoint's table).
    pub spi: u64,
    /// We are the original initiator.
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// NAT detected on the way (either side): use UDP encapsulation and port 4500.
    pub nat: bool,
    /// Candidate connections (before IKE_AUTH decides), then the one chosen.
    pub candidates: Vec<usize>,
    pub conn: Option<usize>,
    pub suite: IkeSuite,
    pub keys: IkeKeys,
    pub iv_out: u64,
    pub state: SaState,
    pub my_next_id: u32,
    pub pending: Option<Pending>,
    pub queue: VecDeque<Queued>,
    pub peer_next_id: u32,
    pub last_reply: Option<(u32, Vec<Vec<u8>>)>,
    pub reasm: Option<Reassembly>,
    pub frag_ok: bool,
    pub peer_hashes: Vec<u16>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub init_req: Vec<u8>,
    pub init_resp: Vec<u8>,
    pub peer: Option<PeerAuthenticated>,
    pub vips: Vec<IpAddr>,
    pub children: Vec<Child>,
    pub created: Instant,
    pub rekey_at: Option<Instant>,
    pub expire_at: Option<Instant>,
    pub last_rx: Instant,
    /// When the current timer entry of the endpoint's heap is due (avoids duplicates).
    pub scheduled: Option<Instant>,
    /// Initiator only: what to ask for.
    pub init_opts: Option<Box<crate::exchange::auth::InitiatorOptions>>,
    /// The peer rekeyed this IKE SA while our own rekey was under way (§2.8.2).
    pub rekey_collision: Option<crate::exchange::child::IkeRekeyCollision>,
}

/// IP + UDP header (+ non-ESP marker) bytes in front of an IKE message.
fn datagram_overhead(remote: SocketAddr, marker: bool) -> usize {
    let ip = if remote.is_ipv4() { 20 } else { 40 };
    ip + 8 + if marker { 4 } else { 0 }
}

impl IkeSa {
    pub fn connection<'c>(&self, cfg: &'c IkeConfig) -> Option<&'c Connection> {
        self.conn.and_then(|i| cfg.connections.get(i))
    }

    pub fn marker(&self) -> bool {
        self.local.port() != 500
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, SaState::Established)
    }

    fn out_keys(&self) -> SkKeys<'_> {
        let (ke, ka) =
            if self.initiator { (&self.keys.sk_ei, &self.keys.sk_ai) } else { (&self.keys.sk_er, &self.keys.sk_ar) };
        SkKeys { encr: self.suite.encr, integ: self.suite.integ, ke, ka }
    }

    fn in_keys(&self) -> SkKeys<'_> {
        let (ke, ka) =
            if self.initiator { (&self.keys.sk_er, &self.keys.sk_ar) } else { (&self.keys.sk_ei, &self.keys.sk_ai) };
        SkKeys { encr: self.suite.encr, integ: self.suite.integ, ke, ka }
    }

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: message::PayloadType::NONE,
            version: message::IKEV2_VERSION,
            exchange,
            initiator: self.initiator,
            response,
            message_id,
            length: 0,
        }
    }

    /// Encrypts `payloads` into datagrams (fragments where agreed and needed).
    pub fn seal(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        response: bool,
        id: u32,
        payloads: &[Payload],
    ) -> Vec<Vec<u8>> {
        let h = self.header(exchange, response, id);
        if ctx.trace.matches(self.remote.ip()) {
            if let Ok(data) = message::encode(&h, payloads) {
                let datagram = Datagram { local: self.local, remote: self.remote, marker: self.marker(), data };
                ctx.out.push_back(Output::Decrypted { inbound: false, datagram });
            }
        }
        let max = self.frag_ok.then(|| ctx.cfg.fragment_size - datagram_overhead(self.remote, self.marker()));
        let mut iv = self.iv_out;
        let keys = self.out_keys();
        let r = sk::seal(ctx.p, keys, &mut iv, &h, payloads, max);
        self.iv_out = iv;
        match r {
            Ok(d) => d,
            Err(e) => {
                // Only a configuration mistake (a fragment size below any message) or an
                // oversized payload we built gets here: say so, send nothing.
                ctx_log_error(&e);
                Vec::new()
            }
        }
    }

    fn emit(&self, ctx: &mut Ctx<'_>, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            ctx.stats.tx_datagrams += 1;
            ctx.out.push_back(Output::Send(Datagram {
                local: self.local,
                remote: self.remote,
                marker: self.marker(),
                data: d.clone(),
            }));
        }
    }

    /// Sends a request and keeps it for retransmission.
    pub fn send_request(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, payloads: &[Payload], task: Task) {
        let id = self.my_next_id;
        self.my_next_id = self.my_next_id.wrapping_add(1);
        let datagrams = self.seal(ctx, exchange, false, id, payloads);
        self.emit(ctx, &datagrams);
        let next = ctx.now + ctx.cfg.retransmit.wait(0);
        self.pending = Some(Pending { id, exchange, datagrams, sends: 1, next, task });
    }

    /// Sends an unencrypted request (IKE_SA_INIT) and keeps it for retransmission.
    pub fn send_plain_request(&mut self, ctx: &mut Ctx<'_>, bytes: Vec<u8>, task: Task) {
        let id = self.my_next_id;
        self.my_next_id = self.my_next_id.wrapping_add(1);
        let datagrams = vec![bytes];
        self.emit(ctx, &datagrams);
        let next = ctx.now + ctx.cfg.retransmit.wait(0);
        self.pending = Some(Pending { id, exchange: ExchangeType::IKE_SA_INIT, datagrams, sends: 1, next, task });
    }

    /// Sends the response to the peer's request `id`, and keeps it for its retransmissions.
    pub fn send_response(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, id: u32, payloads: &[Payload]) {
        let datagrams = self.seal(ctx, exchange, true, id, payloads);
        self.emit(ctx, &datagrams);
        self.last_reply = Some((id, datagrams));
    }

    /// Sends an unencrypted response (IKE_SA_INIT) and keeps it.
    pub fn send_plain_response(&mut self, ctx: &mut Ctx<'_>, id: u32, bytes: Vec<u8>) {
        let datagrams = vec![bytes];
        self.emit(ctx, &datagrams);
        self.last_reply = Some((id, datagrams));
    }

    /// Retransmits the last response (the peer retransmitted its request).
    pub fn resend_reply(&mut self, ctx: &mut Ctx<'_>) {
        if let Some((_, d)) = self.last_reply.clone() {
            ctx.stats.rx_retransmits += 1;
            self.emit(ctx, &d);
        }
    }

    /// Opens an encrypted message addressed to this SA: the payloads, once complete (a
    /// fragment waits for the others). `None`: dropped (counted).
    pub fn open(&mut self, ctx: &mut Ctx<'_>, d: &Decoded<'_>) -> Option<Vec<Payload>> {
        let e = d.encrypted.as_ref()?;
        let plain = match sk::open(ctx.p, self.in_keys(), e) {
            Ok(p) => p,
            Err(_) => {
                ctx.stats.rx_integrity_failed += 1;
                return None;
            }
        };
        let (first, chain) = match e.fragment {
            None => (e.inner_first, plain.to_vec()),
            Some((number, total)) => {
                ctx.stats.fragments_rx += 1;
                let id = d.header.message_id;
                if self.reasm.as_ref().is_none_or(|r| r.message_id != id) {
                    self.reasm = Some(Reassembly::new(id));
                }
                let r = self.reasm.as_mut()?;
                match r.add(number, total, e.inner_first, plain) {
                    Ok(Some(done)) => {
                        self.reasm = None;
                        done
                    }
                    Ok(None) => return None,
                    Err(_) => {
                        ctx.stats.rx_dropped += 1;
                        return None;
                    }
                }
            }
        };
        match message::decode_chain(first, &chain) {
            Ok(p) => {
                if ctx.trace.matches(self.remote.ip()) {
                    let length = (message::HEADER_LEN + chain.len()) as u32;
                    let mut data = Header { next_payload: first, length, ..d.header }.to_bytes().to_vec();
                    data.extend_from_slice(&chain);
                    let datagram = Datagram { local: self.local, remote: self.remote, marker: self.marker(), data };
                    ctx.out.push_back(Output::Decrypted { inbound: true, datagram });
                }
                Some(p)
            }
            Err(_) => {
                ctx.stats.rx_undecodable += 1;
                None
            }
        }
    }

    /// The next time this SA needs [`on_timer`](Self::on_timer).
    pub fn next_timer(&self, cfg: &IkeConfig) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(p) = &self.pending {
            at(p.next);
        }
        match self.state {
            SaState::AwaitingAuth | SaState::InitSent { .. } | SaState::AuthSent => {
                at(self.created + cfg.half_open_timeout)
            }
            _ => {}
        }
        if let Some(r) = self.rekey_at {
            at(r);
        }
        if let Some(x) = self.expire_at {
            at(x);
        }
        for c in &self.children {
            if let Some(r) = c.remove_at {
                at(r);
            }
        }
        if let Some(d) = self.dpd_due(cfg) {
            at(d);
        }
        t
    }

    /// When a liveness check is due: the connection asks for them, every inbound SA is
    /// idle (or there is none), and nothing came from the peer for the DPD delay.
    pub fn dpd_due(&self, cfg: &IkeConfig) -> Option<Instant> {
        if !self.is_established() {
            return None;
        }
        let delay = self.connection(cfg)?.dpd_delay;
        // A request in flight is a liveness check already: its retransmissions find a dead
        // peer, its answer moves `last_rx`.
        if delay.is_zero() || self.pending.is_some() || self.queue.contains(&Queued::Dpd) {
            return None;
        }
        if self.children.iter().any(|c| !c.idle) {
            return None;
        }
        Some(self.last_rx + delay)
    }

    /// Retransmits our pending request if its time has come; false when the peer is dead
    /// (retransmissions exhausted).
    pub fn retransmit(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let Some(p) = self.pending.as_mut() else { return true };
        if ctx.now < p.next {
            return true;
        }
        if p.sends > ctx.cfg.retransmit.tries {
            return false;
        }
        let wait = ctx.cfg.retransmit.wait(p.sends);
        p.sends += 1;
        p.next = ctx.now + wait;
        let d = p.datagrams.clone();
        ctx.stats.tx_retransmits += d.len() as u64;
        self.emit(ctx, &d);
        true
    }

    // ---- children

    pub fn child(&self, cookie: u64) -> Option<&Child> {
        self.children.iter().find(|c| c.cookie == cookie)
    }
    pub fn child_mut(&mut self, cookie: u64) -> Option<&mut Child> {
        self.children.iter_mut().find(|c| c.cookie == cookie)
    }

    /// Removes a child from the data plane and from this SA: its policies are unrouted
    /// unless another pair of this SA carries them.
    pub fn remove_child(&mut self, ctx: &mut Ctx<'_>, cookie: u64, reason: CloseReason) {
        let Some(i) = self.children.iter().position(|c| c.cookie == cookie) else { return };
        let c = self.children.remove(i);
        let unroute = if c.routed { c.policies.clone() } else { Vec::new() };
        ctx.out.push_back(Output::Remove { cookie, spi_in: c.spi_in, spi_out: c.spi_out, unroute });
        ctx.event(Event::ChildClosed { ike_spi: self.spi, cookie, reason });
    }

    /// Removes every child and gives back the virtual IPs: the SA is going away.
    pub fn teardown(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        let cookies: Vec<u64> = self.children.iter().map(|c| c.cookie).collect();
        for c in cookies {
            self.remove_child(ctx, c, reason);
        }
        for p in ctx.pools.iter_mut() {
            p.release(self.spi);
        }
        self.vips.clear();
        ctx.event(Event::IkeClosed { spi: self.spi, reason });
    }

    /// Installs a new CHILD SA pair. `proof` shows the peer authenticated.
    #[allow(clippy::too_many_arguments)]
    pub fn install_child(
        &mut self,
        ctx: &mut Ctx<'_>,
        _proof: &PeerAuthenticated,
        we_initiated: bool,
        transform: EspTransform,
        esn: bool,
        spi_in: u32,
        spi_out: u32,
        keymat: &crate::keys::ChildKeys,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        nonces: (Vec<u8>, Vec<u8>),
        route: bool,
        rekey_of: Option<u64>,
    ) -> u64 {
        let Some(conn) = self.connection(ctx.cfg).cloned() else { return 0 };
        let cookie = ctx.cookie();
        // KEYMAT gives initiator→responder keys first (RFC 7296 §2.17).
        let i_to_r = ChildKeys { enc: keymat.encr_i.clone(), int: keymat.integ_i.clone() };
        let r_to_i = ChildKeys { enc: keymat.encr_r.clone(), int: keymat.integ_r.clone() };
        let (keys_out, keys_in) = if we_initiated { (i_to_r, r_to_i) } else { (r_to_i, i_to_r) };
        let policies: Vec<(IpCidr, IpCidr)> = local_ts
            .iter()
            .flat_map(ts::to_cidrs)
            .flat_map(|l| remote_ts.iter().flat_map(ts::to_cidrs).map(move |r| (l, r)))
            .filter(|(l, r)| l.is_ipv4() == r.is_ipv4())
            .collect();
        let lt = conn.child_lifetime;
        let jitter = if lt.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(ctx.random_u64() % lt.jitter.as_millis().max(1) as u64)
        };
        let soft = lt.rekey.saturating_sub(jitter);
        let install = ChildInstall {
            cookie,
            ike_spi: self.spi,
            connection: conn.name.clone(),
            transform,
            esn,
            spi_in,
            spi_out,
            keys_in,
            keys_out,
            local: self.local,
            remote: self.remote,
            encap: self.nat,
            local_ts,
            remote_ts,
            policies,
            route,
            replay_window: conn.replay_window,
            soft_secs: secs(soft),
            hard_secs: secs(lt.hard),
            idle_secs: secs(conn.dpd_delay),
        };
        let install = Box::new(install);
        ctx.out.push_back(Output::Install(install.clone()));
        ctx.stats.children_installed += 1;
        ctx.event(Event::ChildEstablished { ike_spi: self.spi, cookie, spi_in, spi_out, rekey_of });
        self.children.push(Child::new(install, nonces));
        cookie
    }

    /// Points the policies at `cookie`'s pair (taking them from the pair it replaces).
    pub fn route_child(&mut self, ctx: &mut Ctx<'_>, cookie: u64) {
        let Some(c) = self.child(cookie) else { return };
        let (spi_out, policies) = (c.spi_out, c.policies.clone());
        ctx.out.push_back(Output::Route { cookie, spi_out, policies: policies.clone() });
        for c in self.children.iter_mut() {
            if c.cookie == cookie {
                c.routed = true;
                c.install.route = true;
            } else if c.policies.iter().any(|p| policies.contains(p)) {
                // Those policies now belong to the new pair: removing the old one must not
                // unroute them.
                c.routed = false;
                c.install.route = false;
            }
        }
    }

    /// An SPI for a new inbound SA: random, outside the reserved 1–255, not one of ours.
    pub fn new_spi_in(&self, ctx: &Ctx<'_>, taken: impl Fn(u32) -> bool) -> u32 {
        loop {
            let mut b = [0u8; 4];
            ctx.p.fill_random(&mut b);
            let s = u32::from_be_bytes(b);
            if s > 255 && !taken(s) && self.children.iter().all(|c| c.spi_in != s) {
                return s;
            }
        }
    }

    /// The peer's messages come from a new address (authenticated: RFC 7296 §2.23).
    pub fn follow_peer(&mut self, ctx: &mut Ctx<'_>, remote: SocketAddr) {
        if remote == self.remote || !self.nat {
            return;
        }
        let old = self.remote;
        self.remote = remote;
        ctx.event(Event::NatMappingChanged { spi: self.spi, old, new: remote });
        for c in &mut self.children {
            c.install.remote = remote;
            ctx.out.push_back(Output::UpdatePeer { cookie: c.cookie, spi_in: c.spi_in, spi_out: c.spi_out, remote });
        }
    }

    /// Adds `q` to the queue of requests to make (once).
    pub fn enqueue(&mut self, q: Queued) {
        if !self.queue.contains(&q) {
            self.queue.push_back(q);
        }
    }
}

fn secs(d: Duration) -> u32 {
    d.as_secs().min(u32::MAX as u64) as u32
}

fn ctx_log_error(e: &sk::SkError) {
    // The daemon's log sees this through stderr; the state machine has no logger.
    eprintln!("esprit-ikev2: cannot protect a message: {e}");
}

/// The payloads of one type in a message.
pub(crate) fn notifies<'a>(
    payloads: &'a [Payload],
    kind: message::NotifyType,
) -> impl Iterator<Item = &'a message::Notify> + 'a {
    payloads.iter().filter_map(move |p| match p {
        Payload::Notify(n) if n.kind == kind => Some(n),
        _ => None,
    })
}

pub(crate) fn has_notify(payloads: &[Payload], kind: message::NotifyType) -> bool {
    notifies(payloads, kind).next().is_some()
}

/// The first error notify of a response, if any.
pub(crate) fn error_notify(payloads: &[Payload]) -> Option<message::NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    })
}

/// A notify payload without SPI.
pub(crate) fn notify(kind: message::NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(message::Notify { protocol: message::ProtocolId(0), spi: vec![], kind, data })
}
