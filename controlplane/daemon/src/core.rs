//! The daemon's core: one thread owns the IKE endpoint and the data plane's ring, and runs
//! datagrams, data-plane events, timers and espritctl requests through it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use esprit_ikev2::{Endpoint, Event, IkeSaInfo, Output};
use esprit_ring::message::{Message, SaDirection};
use esprit_ring::region::{Channel, RegionOptions, Side};
use esprit_ring::{Receiver, Sender, StatsReader};
use serde_json::{json, Value};

use crate::bridge::{self, Mirror};
use crate::config::Config;
use crate::ctl::Request;
use crate::journal::{self, Journal};
use crate::metrics::{self, Metrics};
use crate::trace::{self, Trace};

/// Messages that could not be sent yet (ring full) wait here: no SA update is ever lost.
/// IKE datagrams beyond this many are dropped (IKE retransmits).
const MAX_WAITING_TRANSMITS: usize = 4096;

/// The daemon's own counters.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub punts: u64,
    pub sa_events: u64,
    pub ring_errors: u64,
    pub apply_errors: u64,
    pub hellos: u64,
    pub transmits_dropped: u64,
    /// Journal writes that failed (the state since is not crash-safe).
    pub journal_errors: u64,
    /// AddSa refused as `Exists` while reconciling after a restart: the data plane kept them.
    pub resync_kept: u64,
}

pub struct Core {
    cfg: Config,
    cfg_path: std::path::PathBuf,
    ep: Endpoint,
    mirror: Mirror,
    tx: Sender,
    rx: Receiver,
    waiting: VecDeque<Message>,
    ctl: mpsc::Receiver<Request>,
    stats_path: std::path::PathBuf,
    stats: Option<StatsReader>,
    pub counters: Counters,
    metrics: Metrics,
    started: Instant,
    /// `espritctl trace` under way.
    trace: Option<Trace>,
    next_trace_id: u32,
    log_budget: LogBudget,
    /// Where the state survives a crash (none: it could not be written).
    journal: Option<Journal>,
    /// Pairs removed this turn (tombstones) and pairs retired (data plane restarted).
    removed: Vec<(u32, u32)>,
    retired: Vec<u64>,
    pairs_added: Vec<(u64, u32, u32)>,
    pairs_removed: Vec<u64>,
    /// Reconciling with the data plane after a restart, until its SyncDone is acknowledged.
    resyncing: bool,
    /// A DeleteSa still waited for room in the ring after the last send.
    deletes_waiting: bool,
}

/// Failed authentications and refused requests are logged at most this many times a second
/// (an address that fails too often is blocked by the endpoint; many addresses could still
/// flood the log). What was left out is counted in the next line logged.
const FAILURE_LINES_PER_SECOND: u32 = 20;

/// The per-second budget of failure log lines.
#[derive(Debug)]
struct LogBudget {
    second: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new(now: Instant) -> LogBudget {
        LogBudget { second: now, used: 0, suppressed: 0 }
    }

    /// Whether to log `e` now.
    fn allow(&mut self, e: &Event, now: Instant) -> bool {
        if !matches!(e, Event::AuthFailed { .. } | Event::Refused { .. }) {
            return true;
        }
        if now.saturating_duration_since(self.second) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "failed authentications and refused requests not logged (more than {FAILURE_LINES_PER_SECOND} a second); \
                     esprit_ike_handshake_failures_total counts them all"
                );
            }
            *self = LogBudget::new(now);
        }
        if self.used < FAILURE_LINES_PER_SECOND {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Where traces go unless espritctl names a directory.
const DEFAULT_TRACE_PARENT: &str = "/var/lib/esprit/traces";
/// The longest trace.
const MAX_TRACE_SECONDS: f64 = 3600.0;
/// How long a stopped trace waits for the data plane to close its files.
const TRACE_STOP_PATIENCE: Duration = Duration::from_secs(3);

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Attaches to the data plane's control ring (waiting up to `wait` for it to appear).
pub fn attach(ring: &str, wait: Duration) -> Result<Channel, String> {
    let path = esprit_ring::shm_path(ring).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + wait;
    loop {
        match Channel::attach(&path, Side::Control, &RegionOptions::default()) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("cannot attach to the data plane's ring {}: {e}", path.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl Core {
    pub fn new(
        cfg: Config,
        cfg_path: std::path::PathBuf,
        ch: Channel,
        ctl: mpsc::Receiver<Request>,
    ) -> Result<Core, String> {
        let now = Instant::now();
        let new_endpoint = || {
            Endpoint::new(cfg.ike.clone(), esprit_ikev2::crypto::default_provider(), now, unix_now())
                .map_err(|e| e.to_string())
        };
        let mut ep = new_endpoint()?;
        let (tx, rx) = ch.split();
        let ring = esprit_ring::shm_path(&cfg.daemon.ring).map_err(|e| e.to_string())?;
        let stats_path = std::path::PathBuf::from(format!("{}-stats", ring.display()));
        let state_path = std::path::PathBuf::from(format!("{}-ike-state", ring.display()));
        let set_aside = |why: &str| {
            let bad = state_path.with_extension("bad");
            let _ = std::fs::rename(&state_path, &bad);
            tracing::error!(journal = %state_path.display(), set_aside = %bad.display(), reason = why,
                "cannot restore the IKE state: starting empty (the data plane is flushed; clients reconnect)");
        };
        let restored = match journal::load(&state_path) {
            Ok(Some(st)) => {
                let cps: Vec<&[u8]> = st.sas.values().map(|c| c.as_slice()).collect();
                match ep.restore(now, &cps, st.last_cookie) {
                    Ok(r) => {
                        tracing::info!(
                            journal = %state_path.display(),
                            ike_sas = r.ike_sas,
                            child_sas = r.child_sas,
                            deleted = r.deleted,
                            "IKE state restored: carrying on with the SAs of the previous esprit-ike"
                        );
                        for (spi, a) in &r.lost_leases {
                            tracing::warn!(ike_spi = format_args!("{spi:016x}"), addr = %a,
                                "restored IKE SA's virtual IP is no longer in its pools");
                        }
                        Some(st)
                    }
                    Err(e) => {
                        set_aside(&e.to_string());
                        ep = new_endpoint()?;
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                set_aside(&e);
                None
            }
        };
        let mut core = Core {
            cfg,
            cfg_path,
            ep,
            mirror: Mirror::default(),
            tx,
            rx,
            waiting: VecDeque::new(),
            ctl,
            stats_path,
            stats: None,
            counters: Counters::default(),
            metrics: Metrics::new(),
            started: now,
            trace: None,
            next_trace_id: 1,
            log_budget: LogBudget::new(now),
            journal: None,
            removed: Vec::new(),
            retired: Vec::new(),
            pairs_added: Vec::new(),
            pairs_removed: Vec::new(),
            resyncing: false,
            deletes_waiting: false,
        };
        let tombstones = match &restored {
            Some(st) => {
                // The data plane kept running: bring it in line, no flush.
                core.mirror = Mirror::rebuild(core.ep.installed(), &st.retired);
                // What the data plane may hold and no restored SA has (an IKE SA being deleted
                // at the crash is not kept): deleted with the tombstones.
                let mut doomed = st.tombstones.clone();
                doomed.extend(st.pairs.iter().filter(|(c, _)| !core.mirror.pairs.contains_key(c)).map(|(_, p)| *p));
                let msgs = core.mirror.reconcile(core.cfg.daemon.keepalive, &doomed);
                core.waiting.extend(msgs);
                core.resyncing = true;
                doomed
            }
            None => {
                // No IKE SA: whatever a previous esprit-ike left in the data plane has no
                // keys to rekey it or peers to answer; clear it.
                let (msgs, _) = core.mirror.refill(core.cfg.daemon.keepalive);
                core.waiting.extend(msgs);
                Vec::new()
            }
        };
        let st = core.journal_state(now, tombstones);
        core.deletes_waiting = core.waiting.iter().any(|m| matches!(m, Message::DeleteSa(_)));
        match Journal::create(&state_path, &st) {
            Ok(j) => {
                // Changes are tracked only when they can be written.
                core.ep.enable_checkpoints();
                core.journal = Some(j);
            }
            Err(e) => {
                core.counters.journal_errors += 1;
                tracing::error!(error = %e, "no journal: a crash of esprit-ike would lose every SA");
            }
        }
        Ok(core)
    }

    /// Runs until `stop` is set, then deletes every IKE SA (telling the peers) and returns.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Duration::from_millis(5));
        }
        let now = Instant::now();
        let spis: Vec<u64> = self.ep.list().iter().filter(|s| s.state == "established").map(our_spi).collect();
        for s in &spis {
            self.ep.terminate(now, *s);
        }
        // A moment for the Deletes to leave and be answered.
        let end = Instant::now() + Duration::from_millis(if spis.is_empty() { 0 } else { 500 });
        while Instant::now() < end {
            self.turn(Duration::from_millis(5));
        }
        self.flush_outputs();
        self.journal_turn(Instant::now());
        self.send_waiting(Duration::from_millis(200));
        tracing::info!(ike_sas = spis.len(), "esprit-ike stopped");
    }

    /// One turn: input (waiting at most `max_wait`), timers, requests, output.
    pub fn turn(&mut self, max_wait: Duration) {
        let now = Instant::now();
        let mut wait = self.ep.poll_timeout().map_or(max_wait, |t| t.saturating_duration_since(now).min(max_wait));
        if !self.waiting.is_empty() {
            // The ring to the data plane was full: look again soon, without spinning.
            wait = wait.min(Duration::from_millis(1));
        }
        let mut next = self.rx.recv_timeout(wait);
        let mut n = 0;
        loop {
            match next {
                Ok(Some(r)) => self.on_message(r.message),
                Ok(None) => break,
                Err(e) => {
                    self.counters.ring_errors += 1;
                    tracing::warn!(error = %e, "undecodable message from the data plane, skipped");
                }
            }
            n += 1;
            if n >= 256 {
                break;
            }
            next = self.rx.try_recv();
        }
        self.ep.handle_timeout(Instant::now());
        while let Ok(req) = self.ctl.try_recv() {
            if req.body.get("cmd").and_then(Value::as_str) == Some("trace") {
                // Answered when the trace ends.
                self.start_trace(req);
                continue;
            }
            let answer = self.request(&req.body);
            let _ = req.reply.send(answer);
        }
        self.trace_timers();
        self.flush_outputs();
        self.journal_turn(Instant::now());
        self.send_waiting(Duration::ZERO);
    }

    /// Everything live, as a journal holds it (to start one, or compact it).
    fn journal_state(&self, now: Instant, tombstones: Vec<(u32, u32)>) -> journal::State {
        journal::State {
            sas: self.ep.checkpoint_all(now).into_iter().collect(),
            last_cookie: self.ep.last_cookie(),
            tombstones,
            retired: self.mirror.retired.clone(),
            pairs: self.mirror.pairs.values().map(|p| (p.cookie, (p.spi_in, p.spi_out))).collect(),
        }
    }

    /// Journals what this turn changed, before any of it is sent (see [`crate::journal`]).
    fn journal_turn(&mut self, now: Instant) {
        let Some(j) = self.journal.as_mut() else { return };
        let t = journal::Turn {
            checkpoints: self.ep.take_checkpoints(now),
            last_cookie: self.ep.last_cookie(),
            tombstones: std::mem::take(&mut self.removed),
            retired: std::mem::take(&mut self.retired),
            pairs_added: std::mem::take(&mut self.pairs_added),
            pairs_removed: std::mem::take(&mut self.pairs_removed),
            deletions_sent: !self.deletes_waiting,
        };
        let mut r = j.commit(t);
        if r.is_ok() && j.wants_compaction() {
            let st = self.journal_state(now, Vec::new());
            r = self.journal.as_mut().map_or(Ok(()), |j| j.compact(st));
        }
        if let Err(e) = r {
            self.counters.journal_errors += 1;
            if self.counters.journal_errors == 1 || self.counters.journal_errors.is_power_of_two() {
                tracing::error!(error = %e, failures = self.counters.journal_errors,
                    "cannot journal the IKE state: a crash of esprit-ike now would lose SAs");
            }
        }
    }

    fn on_message(&mut self, m: Message) {
        let now = Instant::now();
        match m {
            Message::Punt(p) => {
                self.counters.punts += 1;
                if let Some(t) = self.trace.as_mut() {
                    t.ike(true, bridge::socket(p.dst), bridge::socket(p.src), p.had_marker, &p.payload);
                }
                self.ep.handle_datagram(now, bridge::socket(p.dst), bridge::socket(p.src), &p.payload);
            }
            Message::SaEvent(e) => {
                self.counters.sa_events += 1;
                tracing::debug!(cookie = e.cookie, spi = format_args!("{:08x}", e.spi), kind = ?e.kind, "data-plane SA event");
                self.ep.handle_child_event(now, e.cookie, bridge::child_event(e.kind));
            }
            Message::Hello(h) => {
                self.counters.hellos += 1;
                let (msgs, cookies) = self.mirror.refill(self.cfg.daemon.keepalive);
                tracing::info!(
                    generation = h.generation,
                    pairs = cookies.len(),
                    "data plane (re)started: refilled with inbound SAs and policies, rekeying every CHILD SA"
                );
                // What waited was for the previous data plane; the refill supersedes it.
                self.waiting.retain(|m| matches!(m, Message::Transmit(_)));
                self.waiting.extend(msgs);
                self.retired.extend(cookies.iter().copied());
                self.resyncing = false;
                for c in cookies {
                    self.ep.rekey_child(now, c);
                }
            }
            Message::Error(e) if e.about.kind == esprit_ring::MessageKind::Trace => {
                tracing::warn!(reason = %e.reason, "the data plane refused the trace");
                if let Some(t) = self.trace.as_mut().filter(|t| t.id == e.about.spi) {
                    t.dataplane_answer(Err(e.reason));
                }
            }
            Message::Ack(a) if a.kind == esprit_ring::MessageKind::Trace => {
                if let Some(t) = self.trace.as_mut().filter(|t| t.id == a.spi) {
                    t.dataplane_answer(Ok(()));
                }
            }
            Message::Ack(a) if a.kind == esprit_ring::MessageKind::SyncDone => {
                if std::mem::take(&mut self.resyncing) {
                    tracing::info!(
                        kept = self.counters.resync_kept,
                        "data plane reconciled with the restored IKE state"
                    );
                }
            }
            Message::Error(e)
                if self.resyncing
                    && e.about.kind == esprit_ring::MessageKind::AddSa
                    && e.code == esprit_ring::message::ErrorCode::Exists =>
            {
                self.counters.resync_kept += 1;
            }
            Message::Error(e) => {
                self.counters.apply_errors += 1;
                // A pair deleted after a data-plane restart has no outbound SA: expected.
                let expected = e.about.kind == esprit_ring::MessageKind::DeleteSa
                    && e.code == esprit_ring::message::ErrorCode::NotFound;
                if expected {
                    tracing::debug!(about = ?e.about, reason = %e.reason, "data plane: nothing to delete");
                } else {
                    tracing::warn!(about = ?e.about, code = ?e.code, reason = %e.reason, "data plane refused a control message");
                }
            }
            Message::Ack(_) => {}
            other => {
                self.counters.ring_errors += 1;
                tracing::warn!(kind = %other.kind(), "unexpected message from the data plane");
            }
        }
    }

    fn flush_outputs(&mut self) {
        while let Some(o) = self.ep.poll_output() {
            if let Output::Event(e) = &o {
                if self.log_budget.allow(e, Instant::now()) {
                    log_event(e);
                }
                self.metrics.event(e);
            }
            if let Some(t) = self.trace.as_mut() {
                match &o {
                    Output::Send(d) => t.ike(false, d.local, d.remote, d.marker, &d.data),
                    Output::Install(c) => t.child(c),
                    Output::Decrypted { inbound, datagram } => {
                        t.decrypted(*inbound, datagram);
                        let spi = |r: std::ops::Range<usize>| {
                            datagram.data.get(r).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
                        };
                        if let (Some(i), Some(r)) = (spi(0..8), spi(8..16)) {
                            if !t.knows(i, r) {
                                if let Some(k) = self.ep.trace_keys(i, r) {
                                    t.ike_keys(&k);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            match &o {
                Output::Remove { cookie, spi_in, spi_out, .. } => {
                    self.removed.push((*spi_in, *spi_out));
                    self.pairs_removed.push(*cookie);
                }
                Output::Install(c) => self.pairs_added.push((c.cookie, c.spi_in, c.spi_out)),
                _ => {}
            }
            let msgs = self.mirror.translate(&o);
            self.waiting.extend(msgs);
        }
    }

    fn send_waiting(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        while let Some(m) = self.waiting.front() {
            let r = if patience.is_zero() {
                self.tx.try_send(m)
            } else {
                self.tx.send_timeout(m, deadline.saturating_duration_since(Instant::now()))
            };
            match r {
                Ok(()) => {
                    self.waiting.pop_front();
                }
                Err(esprit_ring::SendError::Full | esprit_ring::SendError::Timeout(_)) => break,
                Err(e) => {
                    tracing::error!(error = %e, kind = %m.kind(), "cannot encode a control message; dropped");
                    self.waiting.pop_front();
                }
            }
        }
        self.deletes_waiting = self.waiting.iter().any(|m| matches!(m, Message::DeleteSa(_)));
        let transmits = self.waiting.iter().filter(|m| matches!(m, Message::Transmit(_))).count();
        if transmits > MAX_WAITING_TRANSMITS {
            let mut extra = transmits - MAX_WAITING_TRANSMITS;
            self.waiting.retain(|m| {
                if extra > 0 && matches!(m, Message::Transmit(_)) {
                    extra -= 1;
                    false
                } else {
                    true
                }
            });
            self.counters.transmits_dropped += (transmits - MAX_WAITING_TRANSMITS) as u64;
        }
    }

    /// Starts `espritctl trace` (`{"cmd":"trace","peer":ADDR?,"seconds":N?,"dir":PATH?,
    /// "max_packets":N?}`); the answer waits for its end.
    fn start_trace(&mut self, req: crate::ctl::Request) {
        let b = &req.body;
        let fail = |reply: tokio::sync::oneshot::Sender<Value>, e: String| {
            let _ = reply.send(json!({ "error": e }));
        };
        if let Some(t) = &self.trace {
            let e = format!("a trace into {} is under way; one at a time", t.dir.display());
            return fail(req.reply, e);
        }
        let scope = match trace::scope(b.get("peer").and_then(Value::as_str)) {
            Ok(s) => s,
            Err(e) => return fail(req.reply, e),
        };
        let seconds = b.get("seconds").and_then(Value::as_f64).unwrap_or(30.0);
        if !(seconds > 0.0 && seconds <= MAX_TRACE_SECONDS) {
            return fail(req.reply, format!("seconds must be in (0, {MAX_TRACE_SECONDS}], not {seconds}"));
        }
        let dir = match b.get("dir").and_then(Value::as_str) {
            Some(d) => std::path::PathBuf::from(d),
            None => {
                // Both units' StateDirectory: the data plane writes there too.
                let parent = std::path::Path::new(DEFAULT_TRACE_PARENT);
                use std::os::unix::fs::DirBuilderExt;
                if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent) {
                    return fail(req.reply, format!("cannot create {}: {e}", parent.display()));
                }
                parent.join(format!("trace-{}", unix_now()))
            }
        };
        let max_packets = b.get("max_packets").and_then(Value::as_u64).unwrap_or(1_000_000).min(u32::MAX as u64) as u32;
        let id = self.next_trace_id;
        self.next_trace_id = self.next_trace_id.wrapping_add(1).max(1);
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut t = match Trace::start(id, scope, dir, until, req.reply) {
            Ok(t) => t,
            Err((e, reply)) => return fail(reply, e),
        };
        for c in self.mirror.pairs.values() {
            t.child(c);
        }
        let peer = match scope {
            esprit_ikev2::TraceScope::Peer(a) => Some(a),
            _ => None,
        };
        self.waiting.push_back(Message::Trace(esprit_ring::message::TraceRequest {
            id,
            peer,
            dir: t.dir.display().to_string(),
            max_packets,
        }));
        self.ep.set_trace(scope);
        tracing::info!(dir = %t.dir.display(), ?scope, seconds, "trace started");
        self.trace = Some(t);
    }

    /// Ends the trace when its time is up: the data plane closes its files, then the key
    /// tables are written and espritctl answered.
    fn trace_timers(&mut self) {
        let now = Instant::now();
        let Some(t) = self.trace.as_mut() else { return };
        match t.stopping {
            None if now >= t.until => {
                self.ep.set_trace(esprit_ikev2::TraceScope::Off);
                t.stopping = Some(now + TRACE_STOP_PATIENCE);
                let stop =
                    esprit_ring::message::TraceRequest { id: t.id, peer: None, dir: String::new(), max_packets: 0 };
                self.waiting.push_back(Message::Trace(stop));
            }
            Some(deadline) if t.dataplane_done() || now >= deadline => {
                if let Some(t) = self.trace.take() {
                    t.finish();
                }
            }
            _ => {}
        }
    }

    fn stats_reader(&mut self) -> Option<&StatsReader> {
        if self.stats.as_ref().is_none_or(|s| !s.writer_alive()) {
            self.stats = StatsReader::open(&self.stats_path).ok();
        }
        self.stats.as_ref()
    }

    /// The Prometheus exposition.
    fn metrics_text(&mut self) -> String {
        let mut st = metrics::State::default();
        for s in self.ep.list() {
            *st.ike_states.entry(s.state).or_default() += 1;
        }
        st.child_sas = self.mirror.pairs.len();
        st.pools = self.ep.pool_usage();
        let e = &self.ep.stats;
        st.datagrams = vec![
            ("rx", "accepted", e.rx_datagrams.saturating_sub(e.rx_dropped)),
            ("rx", "dropped", e.rx_dropped),
            ("rx", "undecodable", e.rx_undecodable),
            ("rx", "integrity_failed", e.rx_integrity_failed),
            ("rx", "unknown_spi", e.rx_unknown_spi),
            ("rx", "retransmitted", e.rx_retransmits),
            ("tx", "sent", e.tx_datagrams),
            ("tx", "retransmitted", e.tx_retransmits),
            ("rx", "blocked", e.rx_blocked),
            ("tx", "cookie", e.cookies_sent),
        ];
        st.dataplane_alive = self.rx.region().peer().alive;
        let limit = self.cfg.daemon.metrics_sa_limit;
        self.stats_reader();
        self.metrics.render(&st, self.stats.as_ref(), limit)
    }

    /// Re-reads the configuration file; a file with errors is refused and the running
    /// configuration kept. Established SAs stay (see `Endpoint::set_config`).
    fn reload(&mut self) -> Value {
        let new = match crate::config::load(&self.cfg_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(file = %self.cfg_path.display(), errors = e.0.len(), "reload refused: the running configuration is kept");
                return json!({ "error": format!("{e}\nreload refused: the running configuration is kept") });
            }
        };
        let d = &self.cfg.daemon;
        let fixed: Vec<&str> = [
            ("ring", new.daemon.ring != d.ring),
            ("ctl_socket", new.daemon.ctl_socket != d.ctl_socket),
            ("metrics", new.daemon.metrics != d.metrics),
        ]
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(n, _)| *n)
        .collect();
        let deleted = match self.ep.set_config(Instant::now(), new.ike.clone()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(reason = %e, "reload refused: the running configuration is kept");
                return json!({ "error": format!("{e}; reload refused: the running configuration is kept") });
            }
        };
        if new.daemon.keepalive != d.keepalive {
            if let Some(k) = new.daemon.keepalive {
                self.waiting.push_back(Message::SetKeepalive { interval_secs: k });
            }
        }
        let keep = (d.ring.clone(), d.ctl_socket.clone(), d.metrics, d.metrics_sa_limit);
        self.cfg = new;
        // These need a restart; the running values stay.
        (self.cfg.daemon.ring, self.cfg.daemon.ctl_socket, self.cfg.daemon.metrics) = (keep.0, keep.1, keep.2);
        tracing::info!(
            connections = self.cfg.ike.connections.len(),
            deleted_ike_sas = deleted,
            "configuration reloaded"
        );
        json!({ "ok": {
            "connections": self.cfg.ike.connections.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "deleted_ike_sas": deleted,
            "needs_restart": fixed,
        }})
    }

    /// Per-SA counters from the data plane's stats segment: (direction, SPI) → (packets, bytes).
    fn sa_counters(&mut self) -> HashMap<(SaDirection, u32), (u64, u64)> {
        let Some(rows) = self.stats_reader().and_then(|r| r.sa_rows(&["spi", "direction", "packets", "bytes"])) else {
            return HashMap::new();
        };
        rows.map(|v| {
            let dir = if v[1] == 0 { SaDirection::In } else { SaDirection::Out };
            ((dir, v[0] as u32), (v[2], v[3]))
        })
        .collect()
    }

    fn request(&mut self, body: &Value) -> Value {
        let now = Instant::now();
        match body.get("cmd").and_then(Value::as_str) {
            Some("list-sas") => {
                let counters = self.sa_counters();
                let sas: Vec<Value> = self.ep.list().iter().map(|s| sa_json(s, &self.mirror, &counters, now)).collect();
                json!({ "ok": sas })
            }
            Some("list-conns") => {
                let conns: Vec<Value> = self
                    .cfg
                    .ike
                    .connections
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "local_addrs": c.local_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "local_id": esprit_ikev2::identity::display_identity(&c.local_id),
                            "remote_id": c.remote_id.to_string(),
                            "ike_proposals": c.ike_proposals.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                            "esp_proposals": c.esp_proposals.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
                            "local_ts": c.local_ts.iter().map(ts_str).collect::<Vec<_>>(),
                            "pools": c.pools.iter().filter_map(|i| self.cfg.ike.pools.get(*i)).map(|p| json!({"name": p.0, "addrs": p.1})).collect::<Vec<_>>(),
                            "dpd_delay": c.dpd_delay.as_secs_f64(),
                            "ike_rekey": c.ike_lifetime.rekey.as_secs_f64(),
                            "child_rekey": c.child_lifetime.rekey.as_secs_f64(),
                        })
                    })
                    .collect();
                json!({ "ok": conns })
            }
            Some("metrics") => json!({ "ok": self.metrics_text() }),
            Some("reload") => self.reload(),
            Some("stats") => {
                let s = &self.ep.stats;
                json!({ "ok": {
                    "uptime_seconds": now.duration_since(self.started).as_secs_f64(),
                    "ike_sas": self.ep.ike_sa_count(),
                    "half_open": self.ep.half_open_count(),
                    "child_sas": self.mirror.pairs.len(),
                    "policies": self.mirror.policies.len(),
                    "pools": self.ep.pool_usage().iter().map(|(n, used, size)| json!({"name": n, "in_use": used, "size": size.to_string()})).collect::<Vec<_>>(),
                    "endpoint": format!("{s:?}"),
                    "daemon": format!("{:?}", self.counters),
                    "waiting_for_ring": self.waiting.len(),
                    "journal": self.journal.as_ref().map(|j| json!({
                        "path": j.path().display().to_string(),
                        "bytes": j.bytes(),
                        "frames": j.frames,
                        "compactions": j.compactions,
                    })),
                    "dataplane_alive": self.rx.region().peer().alive,
                }})
            }
            Some("terminate") => {
                let wanted_spi = body
                    .get("ike")
                    .and_then(Value::as_str)
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
                let wanted_peer = body.get("peer").and_then(Value::as_str);
                if wanted_spi.is_none() && wanted_peer.is_none() {
                    return json!({ "error": "terminate needs \"ike\" (an IKE SA's initiator SPI in hex) or \"peer\" (an identity)" });
                }
                let doomed: Vec<u64> = self
                    .ep
                    .list()
                    .iter()
                    .filter(|s| {
                        wanted_spi.is_some_and(|w| w == s.spi_i || w == s.spi_r)
                            || (wanted_peer.is_some() && s.peer_id.as_deref() == wanted_peer)
                    })
                    .map(our_spi)
                    .collect();
                for s in &doomed {
                    self.ep.terminate(now, *s);
                }
                json!({ "ok": { "terminated": doomed.len() } })
            }
            Some(other) => {
                json!({ "error": format!("unknown command '{other}'; known: list-sas, list-conns, stats, terminate, reload, metrics, trace") })
            }
            None => json!({ "error": "a request is an object with \"cmd\"" }),
        }
    }
}

fn our_spi(s: &IkeSaInfo) -> u64 {
    if s.initiator {
        s.spi_i
    } else {
        s.spi_r
    }
}

fn ts_str(t: &esprit_ikev2::ts::TrafficSelector) -> String {
    esprit_ikev2::ts::to_cidrs(t).iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

fn sa_json(s: &IkeSaInfo, mirror: &Mirror, counters: &HashMap<(SaDirection, u32), (u64, u64)>, _now: Instant) -> Value {
    let children: Vec<Value> = s
        .children
        .iter()
        .map(|c| {
            let (pin, bin) = counters.get(&(SaDirection::In, c.spi_in)).copied().unwrap_or_default();
            let (pout, bout) = counters.get(&(SaDirection::Out, c.spi_out)).copied().unwrap_or_default();
            let encap = mirror.pairs.get(&c.cookie).map(|p| p.encap);
            json!({
                "cookie": c.cookie,
                "state": c.state,
                "proposal": c.transform,
                "spi_in": format!("{:08x}", c.spi_in),
                "spi_out": format!("{:08x}", c.spi_out),
                "encap": encap,
                "local_ts": c.local_ts.iter().map(ts_str).collect::<Vec<_>>(),
                "remote_ts": c.remote_ts.iter().map(ts_str).collect::<Vec<_>>(),
                "packets_in": pin, "bytes_in": bin, "packets_out": pout, "bytes_out": bout,
            })
        })
        .collect();
    json!({
        "spi_i": format!("{:016x}", s.spi_i),
        "spi_r": format!("{:016x}", s.spi_r),
        "initiator": s.initiator,
        "state": s.state,
        "connection": s.connection,
        "local": s.local.to_string(),
        "remote": s.remote.to_string(),
        "nat": s.nat,
        "peer_id": s.peer_id,
        "vips": s.vips.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "children": children,
    })
}

/// One log line per event an operator greps for.
fn log_event(e: &Event) {
    match e {
        Event::IkeEstablished { spi, connection, peer, id, vips, .. } => {
            let vips: Vec<String> = vips.iter().map(|a| a.to_string()).collect();
            tracing::info!(ike_spi = format_args!("{spi:016x}"), %connection, %peer, peer_id = %id, vips = %vips.join(","), "client connected")
        }
        Event::IkeRekeyed { old, new } => {
            tracing::info!(old = format_args!("{old:016x}"), new = format_args!("{new:016x}"), "IKE SA rekeyed")
        }
        Event::IkeClosed { spi, reason } => {
            let reason = format!("{reason:?}");
            if reason == "PeerDead" {
                tracing::warn!(
                    ike_spi = format_args!("{spi:016x}"),
                    "DPD timeout: peer dead, IKE SA and its CHILD SAs deleted"
                );
            } else {
                tracing::info!(ike_spi = format_args!("{spi:016x}"), %reason, "IKE SA deleted");
            }
        }
        Event::ChildEstablished { ike_spi, cookie, spi_in, spi_out, rekey_of } => tracing::info!(
            ike_spi = format_args!("{ike_spi:016x}"),
            cookie,
            spi_in = format_args!("{spi_in:08x}"),
            spi_out = format_args!("{spi_out:08x}"),
            rekey_of = ?rekey_of,
            "CHILD SA installed"
        ),
        Event::ChildClosed { ike_spi, cookie, reason } => {
            tracing::info!(ike_spi = format_args!("{ike_spi:016x}"), cookie, reason = ?reason, "CHILD SA deleted")
        }
        Event::AuthFailed { peer, reason } => tracing::warn!(%peer, %reason, "authentication failed"),
        Event::AddressBlocked { addr, failures, secs } => tracing::warn!(
            %addr,
            failures,
            seconds = secs,
            "too many failed authentications: IKE_SA_INIT requests from this address ignored"
        ),
        Event::Refused { peer, exchange, notify, reason } => {
            tracing::info!(%peer, exchange = ?exchange, notify, %reason, "request refused")
        }
        Event::NatMappingChanged { spi, old, new } => {
            tracing::info!(ike_spi = format_args!("{spi:016x}"), %old, %new, "NAT mapping changed: following the peer")
        }
    }
}
