//! The sans-IO endpoint (quinn's shape): datagrams, timers and data-plane events go in with
//! [`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`] and
//! [`Endpoint::handle_child_event`]; what to send and install comes out of
//! [`Endpoint::poll_output`]; [`Endpoint::poll_timeout`] says when to call again. The time
//! is passed in; randomness and crypto come from the provider.

use core::net::{IpAddr, SocketAddr};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::config::IkeConfig;
use crate::cookie::CookieJar;
use crate::crypto::CryptoProvider;
use crate::exchange::auth::InitiatorOptions;
use crate::exchange::{self, init, ChildEvent};
use crate::identity;
use crate::message::{self, ExchangeType};
use crate::persist::Checkpoint;
use crate::pool::{Pool, PoolError};
use crate::sa::{ChildInstall, CloseReason, Ctx, Effect, IkeSa, IkeSaKeys, Output, Queued, SaState, Stats, TraceScope};

/// A summary of one IKE SA, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub state: &'static str,
    pub connection: Option<String>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat: bool,
    pub peer_id: Option<String>,
    pub vips: Vec<core::net::IpAddr>,
    pub children: Vec<ChildInfo>,
}

/// A summary of one CHILD SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pub cookie: u64,
    pub spi_in: u32,
    pub spi_out: u32,
    pub state: &'static str,
    pub transform: &'static str,
    pub local_ts: Vec<crate::ts::TrafficSelector>,
    pub remote_ts: Vec<crate::ts::TrafficSelector>,
}

/// The most peer addresses whose failed authentications are counted at once (beyond, and
/// with none of them expired, a new address is not tracked: memory stays bounded).
const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// The IKEv2 endpoint: every IKE SA of this gateway.
pub struct Endpoint {
    cfg: Arc<IkeConfig>,
    p: &'static dyn CryptoProvider,
    sas: HashMap<u64, Box<IkeSa>>,
    /// The IKE SAs with no timer scheduled (`scheduled` is `None`), reconsidered after every
    /// change: kept as a set so that a change costs what it touches, not a walk of every SA
    /// (the walk was O(SAs) per message: 338 µs per setup at 3000 SAs against 274 at 2000).
    unscheduled: HashSet<u64>,
    /// Half-open SAs by (peer, initiator SPI), to answer retransmitted IKE_SA_INIT requests.
    half_open: HashMap<(SocketAddr, u64), u64>,
    /// The key each half-open SA was indexed under (its peer may float to 4500 since).
    half_open_key: HashMap<u64, (SocketAddr, u64)>,
    /// Which IKE SA replaced which (rekeys), to find where children belong when the SA
    /// they were to move to was rekeyed itself meanwhile.
    successor: HashMap<u64, u64>,
    /// Which IKE SA each CHILD SA (cookie) belongs to.
    children: HashMap<u64, u64>,
    pools: Vec<Pool>,
    cookies: CookieJar,
    /// Failed authentications per peer address: (count, start of the window).
    auth_failures: HashMap<IpAddr, (u32, Instant)>,
    out: VecDeque<Output>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    next_cookie: u64,
    start: Instant,
    start_unix: i64,
    trace: TraceScope,
    /// IKE SAs changed since [`take_checkpoints`](Self::take_checkpoints) (when on).
    dirty: Option<HashSet<u64>>,
    pub stats: Stats,
}

/// What [`Endpoint::restore`] brought back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub ike_sas: usize,
    pub child_sas: usize,
    /// IKE SAs whose connection the configuration no longer has: deleted (peers told).
    pub deleted: usize,
    /// Virtual IPs that could not be leased again (their pool changed): (IKE SA, address).
    pub lost_leases: Vec<(u64, IpAddr)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("ike_sas", &self.sas.len()).field("stats", &self.stats).finish()
    }
}

/// Why an endpoint could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    #[error(transparent)]
    Pool(#[from] PoolError),
}

fn state_name(s: &SaState) -> &'static str {
    match s {
        SaState::InitSent { .. } => "connecting",
        SaState::AwaitingAuth => "half-open",
        SaState::AuthSent => "authenticating",
        SaState::Established => "established",
        SaState::Rekeyed => "rekeyed",
        SaState::Deleting => "deleting",
    }
}

impl Endpoint {
    /// An endpoint at time `now`, whose wall clock reads `unix_now` seconds then.
    pub fn new(
        cfg: Arc<IkeConfig>,
        p: &'static dyn CryptoProvider,
        now: Instant,
        unix_now: i64,
    ) -> Result<Endpoint, EndpointError> {
        let pools = cfg.pools.iter().map(|(n, s)| Pool::new(n, s)).collect::<Result<Vec<_>, _>>()?;
        Ok(Endpoint {
            cookies: CookieJar::new(p, now),
            cfg,
            p,
            sas: HashMap::new(),
            unscheduled: HashSet::new(),
            half_open: HashMap::new(),
            half_open_key: HashMap::new(),
            successor: HashMap::new(),
            children: HashMap::new(),
            pools,
            auth_failures: HashMap::new(),
            out: VecDeque::new(),
            timers: BinaryHeap::new(),
            next_cookie: 0,
            start: now,
            start_unix: unix_now,
            trace: TraceScope::Off,
            dirty: None,
            stats: Stats::default(),
        })
    }

    /// Starts keeping track of the IKE SAs that change, for
    /// [`take_checkpoints`](Self::take_checkpoints).
    pub fn enable_checkpoints(&mut self) {
        self.dirty.get_or_insert_with(HashSet::new);
    }

    fn touch(&mut self, spi: u64) {
        if let Some(d) = self.dirty.as_mut() {
            d.insert(spi);
        }
    }

    fn clock(&self, now: Instant) -> crate::persist::Clock {
        let since = now.saturating_duration_since(self.start).as_millis() as i64;
        crate::persist::Clock { now, unix_ms: self.start_unix.saturating_mul(1000).saturating_add(since) }
    }

    /// The checkpoint of every IKE SA changed since the last call (see [`crate::persist`]):
    /// `(our SPI, Some(bytes))` for one to keep, `(our SPI, None)` for one that is gone or no
    /// longer kept. Write them before sending what [`poll_output`](Self::poll_output) gave.
    pub fn take_checkpoints(&mut self, now: Instant) -> Vec<(u64, Option<Checkpoint>)> {
        let Some(d) = self.dirty.as_mut() else { return Vec::new() };
        let spis: Vec<u64> = d.drain().collect();
        let c = self.clock(now);
        spis.into_iter()
            .map(|s| (s, self.sas.get(&s).and_then(|sa| crate::persist::checkpoint(sa, &self.cfg, c))))
            .collect()
    }

    /// The checkpoint of every IKE SA that is kept (to compact a journal).
    pub fn checkpoint_all(&self, now: Instant) -> Vec<(u64, Checkpoint)> {
        let c = self.clock(now);
        self.sas.iter().filter_map(|(s, sa)| Some((*s, crate::persist::checkpoint(sa, &self.cfg, c)?))).collect()
    }

    /// The cookie the next CHILD SA gets, less one (kept with the checkpoints: a cookie is
    /// never given twice, not even across a restart).
    pub fn last_cookie(&self) -> u64 {
        self.next_cookie
    }

    /// Brings back the IKE SAs of `checkpoints` into an endpoint that has none yet, with
    /// their leases; CHILD SA cookies continue after `last_cookie`. Nothing is output for
    /// what comes back (the data plane still has it, or is given it by the caller, from
    /// [`installed`](Self::installed)); SAs whose connection is gone are deleted with the
    /// peer told. A checkpoint that does not read is an error, and nothing is restored.
    pub fn restore(
        &mut self,
        now: Instant,
        checkpoints: &[impl AsRef<[u8]>],
        last_cookie: u64,
    ) -> Result<Restored, crate::persist::RestoreError> {
        let c = self.clock(now);
        let sas = checkpoints
            .iter()
            .map(|b| crate::persist::restore(b.as_ref(), &self.cfg, self.p, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut r = Restored::default();
        let mut orphans = Vec::new();
        let mut top = last_cookie;
        for (sa, gone_conn) in sas {
            let spi = sa.spi;
            if self.sas.contains_key(&spi) {
                return Err(crate::persist::RestoreError(format!("two checkpoints of IKE SA {spi:016x}")));
            }
            r.ike_sas += 1;
            r.child_sas += sa.children.len();
            top = sa.children.iter().map(|c| c.cookie).fold(top, u64::max);
            let who = sa.peer.as_ref().map(|p| identity::display_identity(&p.id)).unwrap_or_default();
            let pools: Vec<usize> = sa.connection(&self.cfg).map(|c| c.pools.clone()).unwrap_or_default();
            for &a in &sa.vips {
                let mut leased = false;
                for &i in &pools {
                    if let Some(p) = self.pools.get_mut(i) {
                        if p.acquire_exactly(spi, &who, a) {
                            leased = true;
                            break;
                        }
                    }
                }
                if !leased {
                    r.lost_leases.push((spi, a));
                }
            }
            if gone_conn.is_some() {
                orphans.push(spi);
            }
            self.insert(now, sa);
        }
        self.next_cookie = top;
        for spi in orphans {
            // As a reload does: the peer is told.
            r.deleted += 1;
            self.terminate(now, spi);
        }
        Ok(r)
    }

    pub fn config(&self) -> &Arc<IkeConfig> {
        &self.cfg
    }

    /// Applies a new configuration without dropping established SAs: each IKE SA keeps its
    /// connection (matched by name) and its leases; SAs of connections that are gone are
    /// deleted (their peers are told). Refused, with nothing changed, if a pool that still
    /// has leases changed its addresses or went away. Returns how many IKE SAs were deleted.
    pub fn set_config(&mut self, now: Instant, cfg: Arc<IkeConfig>) -> Result<usize, String> {
        let kept = |n: &str, s: &str| self.cfg.pools.iter().position(|(a, b)| a == n && b == s);
        // Check everything first: a refused reload changes nothing.
        for (name, spec) in &cfg.pools {
            if kept(name, spec).is_none() {
                Pool::new(name, spec).map_err(|e| e.to_string())?;
            }
        }
        for (i, (name, spec)) in self.cfg.pools.iter().enumerate() {
            let used = self.pools[i].in_use();
            if used > 0 && !cfg.pools.iter().any(|(a, b)| a == name && b == spec) {
                return Err(format!(
                    "pool '{name}' ({spec}) changed or went away while {used} of its addresses are leased"
                ));
            }
        }
        let mut old: Vec<Option<Pool>> = self.pools.drain(..).map(Some).collect();
        let mut pools = Vec::with_capacity(cfg.pools.len());
        for (name, spec) in &cfg.pools {
            match kept(name, spec).and_then(|i| old[i].take()) {
                Some(p) => pools.push(p),
                None => pools.push(Pool::new(name, spec).map_err(|e| e.to_string())?),
            }
        }
        let old_cfg = std::mem::replace(&mut self.cfg, cfg);
        // Checkpoints name the connection: write them all again.
        let all: Vec<u64> = self.sas.keys().copied().collect();
        for s in all {
            self.touch(s);
        }
        self.pools = pools;
        let mut doomed = Vec::new();
        for sa in self.sas.values_mut() {
            let name = sa.conn.and_then(|i| old_cfg.connections.get(i)).map(|c| c.name.clone());
            let Some(name) = name else { continue };
            sa.conn = self.cfg.connections.iter().position(|c| c.name == name);
            if sa.conn.is_none() {
                doomed.push(sa.spi);
            }
        }
        for spi in &doomed {
            self.terminate(now, *spi);
        }
        Ok(doomed.len())
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, spi))) = self.timers.peek().copied() {
            if self.sas.get(&spi).is_some_and(|sa| sa.scheduled == Some(t)) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// The context the exchanges run in at `now`, beside the tables it does not cover.
    fn split(&mut self, now: Instant) -> (Ctx<'_>, &mut HashMap<u64, Box<IkeSa>>, &mut CookieJar) {
        let unix = self.start_unix + now.saturating_duration_since(self.start).as_secs() as i64;
        let ctx = Ctx {
            cfg: &self.cfg,
            p: self.p,
            out: &mut self.out,
            pools: &mut self.pools,
            next_cookie: &mut self.next_cookie,
            stats: &mut self.stats,
            now,
            unix,
            trace: self.trace,
        };
        (ctx, &mut self.sas, &mut self.cookies)
    }

    fn with_sa<R>(&mut self, spi: u64, now: Instant, f: impl FnOnce(&mut IkeSa, &mut Ctx<'_>) -> R) -> Option<R> {
        self.touch(spi);
        let (mut ctx, sas, _) = self.split(now);
        let sa = sas.get_mut(&spi)?;
        Some(f(sa, &mut ctx))
    }

    fn ctx_new_sa<R>(&mut self, now: Instant, f: impl FnOnce(&mut Ctx<'_>, &mut CookieJar) -> R) -> R {
        let (mut ctx, _, cookies) = self.split(now);
        f(&mut ctx, cookies)
    }

    /// A datagram addressed to us (`data` without the non-ESP marker).
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.stats.rx_datagrams += 1;
        let d = match message::decode(data) {
            Ok(d) => d,
            Err(_) => {
                self.stats.rx_undecodable += 1;
                return;
            }
        };
        let h = d.header;
        let ours = if h.initiator { h.spi_r } else { h.spi_i };
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.response && h.spi_r == 0 && h.message_id == 0 {
            self.new_responder_sa(now, local, remote, data, &d);
            return;
        }
        if !self.sas.contains_key(&ours) {
            self.stats.rx_unknown_spi += 1;
            return;
        }
        let failed = self.stats.auth_failed;
        let effects = self
            .with_sa(ours, now, |sa, ctx| exchange::on_message(sa, ctx, local, remote, data, &d))
            .unwrap_or_default();
        if self.stats.auth_failed != failed {
            self.auth_failed(now, remote.ip());
        }
        self.apply(now, ours, effects);
    }

    /// Counts a failed authentication of a peer at `addr`; at the limit, the address is
    /// blocked for the rest of the window (and the operator told once).
    fn auth_failed(&mut self, now: Instant, addr: IpAddr) {
        let (limit, window) = (self.cfg.auth_failure_limit, self.cfg.auth_failure_window);
        if limit == 0 {
            return;
        }
        if self.auth_failures.len() >= MAX_TRACKED_ADDRESSES && !self.auth_failures.contains_key(&addr) {
            self.auth_failures.retain(|_, (_, since)| now.saturating_duration_since(*since) < window);
            if self.auth_failures.len() >= MAX_TRACKED_ADDRESSES {
                return;
            }
        }
        let e = self.auth_failures.entry(addr).or_insert((0, now));
        if now.saturating_duration_since(e.1) >= window {
            *e = (0, now);
        }
        e.0 += 1;
        if e.0 == limit {
            let secs = window.saturating_sub(now.saturating_duration_since(e.1)).as_secs().max(1);
            self.out.push_back(Output::Event(crate::sa::Event::AddressBlocked { addr, failures: limit, secs }));
        }
    }

    /// The address failed authentication too often within the window.
    fn blocked(&self, now: Instant, addr: IpAddr) -> bool {
        let limit = self.cfg.auth_failure_limit;
        limit > 0
            && self.auth_failures.get(&addr).is_some_and(|(n, since)| {
                *n >= limit && now.saturating_duration_since(*since) < self.cfg.auth_failure_window
            })
    }

    fn new_responder_sa(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        raw: &[u8],
        d: &message::Decoded<'_>,
    ) {
        let h = d.header;
        if let Some(spi) = self.half_open.get(&(remote, h.spi_i)).copied() {
            // A retransmitted request: the same answer (§2.1).
            let same = self.sas.get(&spi).is_some_and(|sa| sa.init_req == raw);
            if same {
                self.with_sa(spi, now, |sa, ctx| sa.resend_reply(ctx));
            }
            return;
        }
        if self.blocked(now, remote.ip()) {
            self.stats.rx_blocked += 1;
            return;
        }
        let candidates: Vec<usize> = self
            .cfg
            .connections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.local_addrs.is_empty() || c.local_addrs.contains(&local.ip()))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() || self.sas.len() >= self.cfg.max_ike_sas {
            self.stats.rx_dropped += 1;
            return;
        }
        let cookie_required = self.half_open.len() >= self.cfg.cookie_threshold;
        let spi = loop {
            let mut b = [0u8; 8];
            self.p.fill_random(&mut b);
            let s = u64::from_be_bytes(b);
            if s != 0 && !self.sas.contains_key(&s) {
                break s;
            }
        };
        let outcome = self.ctx_new_sa(now, |ctx, jar| {
            init::respond(ctx, candidates, local, remote, raw, d, jar, cookie_required, spi)
        });
        match outcome {
            init::InitOutcome::Sa(sa) => {
                self.half_open.insert((remote, h.spi_i), spi);
                self.half_open_key.insert(spi, (remote, h.spi_i));
                self.insert(now, sa);
            }
            init::InitOutcome::Reply(bytes) => {
                self.stats.tx_datagrams += 1;
                self.out.push_back(Output::Send(crate::sa::Datagram {
                    local,
                    remote,
                    marker: local.port() != 500,
                    data: bytes,
                }));
            }
            init::InitOutcome::Drop => self.stats.rx_dropped += 1,
        }
    }

    fn insert(&mut self, now: Instant, sa: Box<IkeSa>) {
        let spi = sa.spi;
        self.touch(spi);
        for c in &sa.children {
            self.children.insert(c.cookie, spi);
        }
        self.sas.insert(spi, sa);
        self.index_outputs();
        self.reschedule(now, spi);
    }

    /// Keeps the cookie → IKE SA index in step with what was installed and removed.
    fn index_outputs(&mut self) {
        for o in &self.out {
            match o {
                Output::Install(i) => {
                    self.children.insert(i.cookie, i.ike_spi);
                }
                Output::Remove { cookie, .. } => {
                    self.children.remove(cookie);
                }
                Output::Event(crate::sa::Event::IkeRekeyed { old, new }) => {
                    self.successor.insert(*old, *new);
                }
                _ => {}
            }
        }
        if self.successor.len() > 2 * self.sas.len() + 1024 {
            let sas = &self.sas;
            self.successor.retain(|o, n| sas.contains_key(o) || sas.contains_key(n));
        }
    }

    /// `spi`, or the live IKE SA that replaced it through rekeys.
    fn live_successor(&self, mut spi: u64) -> Option<u64> {
        for _ in 0..16 {
            if self.sas.contains_key(&spi) {
                return Some(spi);
            }
            spi = *self.successor.get(&spi)?;
        }
        None
    }

    fn reschedule(&mut self, now: Instant, spi: u64) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            self.unscheduled.remove(&spi);
            return;
        };
        let next = sa.next_timer(&self.cfg).map(|t| t.max(now));
        if next.is_none() {
            self.unscheduled.insert(spi);
        } else {
            self.unscheduled.remove(&spi);
        }
        if next != sa.scheduled {
            sa.scheduled = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, spi)));
            }
        }
        // Entries of SAs that are gone, or rescheduled since, leave the heap only when they
        // come due (hours, for a rekey time): compact it before they pile up.
        if self.timers.len() > 2 * self.sas.len() + 1024 {
            let sas = &self.sas;
            self.timers.retain(|Reverse((t, s))| sas.get(s).is_some_and(|sa| sa.scheduled == Some(*t)));
        }
    }

    fn forget_half_open(&mut self, spi: u64) {
        if let Some(k) = self.half_open_key.remove(&spi) {
            if self.half_open.get(&k) == Some(&spi) {
                self.half_open.remove(&k);
            }
        }
    }

    fn apply(&mut self, now: Instant, spi: u64, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Gone(s) => {
                    self.touch(s);
                    self.unscheduled.remove(&s);
                    if let Some(sa) = self.sas.remove(&s) {
                        self.forget_half_open(sa.spi);
                        for c in &sa.children {
                            self.children.remove(&c.cookie);
                        }
                    }
                }
                Effect::NewSa(sa) => {
                    let new = sa.spi;
                    let queued = !sa.queue.is_empty();
                    self.insert(now, sa);
                    if queued {
                        // A new SA born with work to do (the loser of a rekey collision
                        // deletes itself).
                        let more = self.with_sa(new, now, exchange::drive).unwrap_or_default();
                        self.apply(now, new, more);
                    }
                    self.reschedule(now, new);
                }
                Effect::Deadline { spi: s, at } => {
                    self.touch(s);
                    if let Some(sa) = self.sas.get_mut(&s) {
                        sa.expire_at = Some(sa.expire_at.map_or(at, |t| t.min(at)));
                        sa.rekey_at = None;
                    }
                    self.reschedule(now, s);
                }
                Effect::MoveTo(to) => {
                    self.index_outputs();
                    let to = self.live_successor(to).unwrap_or(to);
                    if !self.sas.contains_key(&to) {
                        // The SA that was to take the children is gone already: they go
                        // too, each with its Remove, and the leases with them.
                        self.with_sa(spi, now, |sa, ctx| {
                            let cookies: Vec<u64> = sa.children.iter().map(|c| c.cookie).collect();
                            for c in cookies {
                                sa.remove_child(ctx, c, CloseReason::Deleted);
                            }
                            for p in ctx.pools.iter_mut() {
                                p.release(sa.spi);
                            }
                            sa.vips.clear();
                        });
                        continue;
                    }
                    self.touch(spi);
                    self.touch(to);
                    let moved = self
                        .sas
                        .get_mut(&spi)
                        .map(|old| (std::mem::take(&mut old.children), std::mem::take(&mut old.vips)));
                    if let (Some((children, vips)), Some(new)) = (moved, self.sas.get_mut(&to)) {
                        for c in &children {
                            self.children.insert(c.cookie, to);
                        }
                        new.children.extend(children);
                        new.vips.extend(vips);
                        for p in &mut self.pools {
                            p.transfer(spi, to);
                        }
                    }
                }
                Effect::InitialContact { id, connection, keep } => {
                    let doomed: Vec<u64> = self
                        .sas
                        .values()
                        .filter(|sa| {
                            sa.spi != keep
                                && sa.conn == Some(connection)
                                && sa.peer.as_ref().is_some_and(|p| identity::same_identity(&p.id, &id))
                        })
                        .map(|sa| sa.spi)
                        .collect();
                    for d in doomed {
                        self.with_sa(d, now, |sa, ctx| sa.teardown(ctx, CloseReason::Replaced));
                        self.apply(now, d, vec![Effect::Gone(d)]);
                    }
                }
            }
        }
        if self.sas.get(&spi).is_some_and(|sa| !matches!(sa.state, SaState::AwaitingAuth)) {
            self.forget_half_open(spi);
        }
        self.index_outputs();
        let spis: Vec<u64> = self.unscheduled.iter().copied().filter(|s| *s != spi).chain([spi]).collect();
        for s in spis {
            self.reschedule(now, s);
        }
        self.reschedule(now, spi);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, spi))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let due = self.sas.get(&spi).is_some_and(|sa| sa.scheduled == Some(t));
            if !due {
                continue;
            }
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.scheduled = None;
                self.unscheduled.insert(spi);
            }
            let effects = self.with_sa(spi, now, exchange::on_timer).unwrap_or_default();
            self.apply(now, spi, effects);
        }
    }

    /// A data-plane event about the CHILD SA `cookie`.
    pub fn handle_child_event(&mut self, now: Instant, cookie: u64, ev: ChildEvent) {
        let Some(spi) = self.children.get(&cookie).copied() else { return };
        let effects =
            self.with_sa(spi, now, |sa, ctx| exchange::on_child_event(sa, ctx, cookie, ev)).unwrap_or_default();
        self.apply(now, spi, effects);
    }

    /// Initiates an IKE SA for connection `conn` (by index) from `local` to `remote`.
    pub fn initiate(
        &mut self,
        now: Instant,
        conn: usize,
        local: SocketAddr,
        remote: SocketAddr,
        opts: InitiatorOptions,
    ) -> Option<u64> {
        let sa = self.ctx_new_sa(now, |ctx, _| init::start(ctx, conn, local, remote, opts))?;
        let spi = sa.spi;
        self.insert(now, sa);
        Some(spi)
    }

    /// Closes an IKE SA with a Delete (operator's `terminate`).
    pub fn terminate(&mut self, now: Instant, spi: u64) -> bool {
        let found = self
            .with_sa(spi, now, |sa, ctx| {
                sa.queue.clear();
                sa.enqueue(Queued::DeleteIke);
                exchange::drive(sa, ctx)
            })
            .map(|e| {
                self.apply(now, spi, e);
            });
        found.is_some()
    }

    /// Starts rekeying an IKE SA now (operators, tests).
    pub fn rekey_ike(&mut self, now: Instant, spi: u64) -> bool {
        let r = self.with_sa(spi, now, |sa, ctx| {
            sa.enqueue(Queued::RekeyIke);
            exchange::drive(sa, ctx)
        });
        r.map(|e| self.apply(now, spi, e)).is_some()
    }

    /// Starts rekeying a CHILD SA now (operators, tests).
    pub fn rekey_child(&mut self, now: Instant, cookie: u64) -> bool {
        self.handle_child_event(now, cookie, ChildEvent::SoftLifetime);
        self.children.contains_key(&cookie)
    }

    /// Shows the encrypted messages of the peers in `scope` in the clear, as
    /// [`Output::Decrypted`], from now on (`TraceScope::Off`: no more).
    pub fn set_trace(&mut self, scope: TraceScope) {
        self.trace = scope;
    }

    /// The keys of the IKE SA with these SPIs (once IKE_SA_INIT has given it keys), for a
    /// packet analyser's decryption table.
    pub fn trace_keys(&self, spi_i: u64, spi_r: u64) -> Option<IkeSaKeys> {
        let sa = [spi_r, spi_i]
            .iter()
            .filter_map(|s| self.sas.get(s))
            .find(|sa| sa.spi_i == spi_i && sa.spi_r == spi_r && !sa.keys.sk_ei.is_empty())?;
        Some(IkeSaKeys {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            encr: sa.suite.encr,
            integ: sa.suite.integ,
            sk_ei: sa.keys.sk_ei.clone(),
            sk_er: sa.keys.sk_er.clone(),
            sk_ai: sa.keys.sk_ai.clone(),
            sk_ar: sa.keys.sk_ar.clone(),
        })
    }

    /// Every IKE SA, for listings.
    pub fn list(&self) -> Vec<IkeSaInfo> {
        let mut v: Vec<IkeSaInfo> = self
            .sas
            .values()
            .map(|sa| IkeSaInfo {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                initiator: sa.initiator,
                state: state_name(&sa.state),
                connection: sa.connection(&self.cfg).map(|c| c.name.clone()),
                local: sa.local,
                remote: sa.remote,
                nat: sa.nat,
                peer_id: sa.peer.as_ref().map(|p| identity::display_identity(&p.id)),
                vips: sa.vips.clone(),
                children: sa
                    .children
                    .iter()
                    .map(|c| {
                        let st = match c.state {
                            crate::sa::ChildState::Installed => "installed",
                            crate::sa::ChildState::Rekeying => "rekeying",
                            crate::sa::ChildState::Rekeyed { .. } => "rekeyed",
                            crate::sa::ChildState::Deleting => "deleting",
                        };
                        ChildInfo {
                            cookie: c.cookie,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                            state: st,
                            transform: c.transform.name(),
                            local_ts: c.local_ts.clone(),
                            remote_ts: c.remote_ts.clone(),
                        }
                    })
                    .collect(),
            })
            .collect();
        v.sort_by_key(|i| (i.spi_i, i.spi_r));
        v
    }

    /// Every CHILD SA as installed (to refill a restarted data plane), routed or not.
    pub fn installed(&self) -> Vec<ChildInstall> {
        self.sas.values().flat_map(|sa| sa.children.iter().map(|c| (*c.install).clone())).collect()
    }

    /// Entries in the timer heap (stale ones included): stays in proportion to the SAs.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// IKE SAs, half-open included.
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Half-open IKE SAs.
    pub fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    /// (pool name, in use, size) of each pool.
    pub fn pool_usage(&self) -> Vec<(String, usize, u128)> {
        self.pools.iter().map(|p| (p.name().to_string(), p.in_use(), p.size())).collect()
    }
}
