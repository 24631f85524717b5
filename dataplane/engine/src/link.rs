//! The data plane's end of the shared-memory rings to esprit-ike: control messages applied
//! by the control thread (the tables' single writer), punted IKE and SA events sent back.
//!
//! On attach the data plane says [`Hello`](esprit_ring::message::Hello) with its generation:
//! a restarted data plane is refilled by the control plane. While no control plane is
//! attached the data plane keeps forwarding the SAs it has; what it would send waits in the
//! ring (up to its capacity, then it is dropped and counted).
//!
//! What the control plane must not miss (SA events, errors, acks) waits in a backlog while
//! the ring is full and goes first when there is room again; punted IKE yields to it (IKE
//! retransmits), so a flood of IKE_SA_INIT requests cannot crowd out a lifetime event.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use esprit_esp::sa::{Endpoint, SaParams};
use esprit_ring::message::{
    ApplyError, ErrorCode, Hello, IfName, Message, MessageKind, Punt, SaDirection, SaEvent, SaEventKind, Subject,
};
use esprit_ring::region::{Channel, RegionOptions, Side};
use esprit_ring::{Receiver, Sender};
use esprit_satable::epoch;
use esprit_satable::Policy;

use crate::config::Direction;
use crate::shared::{Control, EngineError, Event};
use crate::tables::Route;

/// An IKE datagram a worker received, for the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuntedIke {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub ifidx: usize,
    pub had_marker: bool,
    pub payload: Vec<u8>,
}

/// An IKE datagram the control plane asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// Counters of the link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    pub applied: u64,
    pub rejected: u64,
    pub punts_sent: u64,
    pub punts_dropped: u64,
    pub events_sent: u64,
    /// Events, errors and acks dropped: the backlog was full too.
    pub events_dropped: u64,
    /// Events, errors and acks that had to wait for room in the ring.
    pub events_delayed: u64,
    pub bad_messages: u64,
}

/// The most messages waiting for room in the ring (a control plane that is gone for good
/// does not make the data plane grow without bound).
const MAX_BACKLOG: usize = 65_536;

/// The data plane's side of the rings.
pub struct Link {
    tx: Sender,
    rx: Receiver,
    /// Cookies of installed SAs, echoed in events.
    cookies: HashMap<(Direction, u32), u64>,
    ifnames: Vec<IfName>,
    /// Messages the control plane must get, waiting for room in the ring, oldest first.
    backlog: VecDeque<Message>,
    pub stats: LinkStats,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("stats", &self.stats).finish()
    }
}

fn dir(d: SaDirection) -> Direction {
    match d {
        SaDirection::In => Direction::In,
        SaDirection::Out => Direction::Out,
    }
}

/// The ring's name for an SA direction.
pub fn ring_dir(d: Direction) -> SaDirection {
    match d {
        Direction::In => SaDirection::In,
        Direction::Out => SaDirection::Out,
    }
}

impl Link {
    /// Attaches to the region at `path` as the data plane and says hello.
    pub fn attach(path: &Path, ifnames: Vec<String>) -> Result<Link, String> {
        let ifnames = ifnames
            .iter()
            .map(|n| IfName::new(n).map_err(|e| format!("interface name {n} cannot cross the ring: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let ch = Channel::attach(path, Side::Data, &RegionOptions::default()).map_err(|e| e.to_string())?;
        let generation = ch.region().generation();
        let (mut tx, rx) = ch.split();
        let start_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        tx.send_timeout(&Message::Hello(Hello { generation, start_unix_ns }), Duration::from_secs(1))
            .map_err(|e| format!("cannot say hello to the control plane: {e}"))?;
        Ok(Link { tx, rx, cookies: HashMap::new(), ifnames, backlog: VecDeque::new(), stats: LinkStats::default() })
    }

    /// Applies up to `max` control messages; `transmit` gets the datagrams to send.
    pub fn poll(&mut self, control: &mut Control, max: usize, mut transmit: impl FnMut(Outgoing)) -> usize {
        self.flush_backlog();
        let mut n = 0;
        while n < max {
            let m = match self.rx.try_recv() {
                Ok(Some(r)) => r.message,
                Ok(None) => break,
                Err(_) => {
                    // Corrupt or undecodable: counted and skipped by the ring.
                    self.stats.bad_messages += 1;
                    continue;
                }
            };
            n += 1;
            if let Message::Transmit(t) = m {
                transmit(Outgoing { src: t.src, dst: t.dst, marker: t.non_esp_marker, payload: t.payload });
                continue;
            }
            let kind = m.kind();
            let trace_id = if let Message::Trace(t) = &m { Some(t.id) } else { None };
            if let Err((about, code, reason)) = self.apply(control, m) {
                self.stats.rejected += 1;
                let e = Message::Error(ApplyError { about, code, reason: reason.chars().take(1000).collect() });
                self.send_reliably(e);
            } else {
                self.stats.applied += 1;
                if kind == MessageKind::SyncDone {
                    self.send_reliably(Message::Ack(Subject { kind, spi: 0, cookie: 0 }));
                }
                if let Some(id) = trace_id {
                    self.send_reliably(Message::Ack(Subject { kind, spi: id, cookie: 0 }));
                }
            }
        }
        n
    }

    fn apply(&mut self, c: &mut Control, m: Message) -> Result<(), (Subject, ErrorCode, String)> {
        let g = epoch::pin();
        let subject = |kind, spi, cookie| Subject { kind, spi, cookie };
        match m {
            Message::AddSa(a) => {
                let s = subject(MessageKind::AddSa, a.spi, a.cookie);
                let d = dir(a.direction);
                // Never replace a live SA: its sequence numbers (outbound) or replay window
                // (inbound) would start again under the same keys. A restarted esprit-ike
                // re-adds what it journalled and is told which ones are here already.
                let present = match d {
                    Direction::In => c.shared().sa_in.get(&a.spi, &g).is_some(),
                    Direction::Out => c.shared().sa_out.get(&a.spi, &g).is_some(),
                };
                if present {
                    return Err((
                        s,
                        ErrorCode::Exists,
                        format!("{:?} SA {:#x} is installed already; kept", a.direction, a.spi),
                    ));
                }
                let params = SaParams {
                    spi: a.spi,
                    transform: a.transform,
                    keys: esprit_esp::crypto::SaKeys::new(a.transform, a.enc_key.as_bytes(), a.int_key.as_bytes())
                        .map_err(|e| (s, ErrorCode::Invalid, e.to_string()))?,
                    local: a.local,
                    remote: a.remote,
                    encap: a.encap,
                    esn: a.esn,
                    replay_window: a.replay_window,
                    local_ts: a.local_ts.clone(),
                    remote_ts: a.remote_ts.clone(),
                    df: a.df,
                    lifetime: a.lifetime,
                };
                c.add_sa(d, params, &g).map_err(|e| {
                    let code = match e {
                        EngineError::Full { .. } => ErrorCode::NoResources,
                        EngineError::Provider(..) => ErrorCode::Unsupported,
                        _ => ErrorCode::Invalid,
                    };
                    (s, code, e.to_string())
                })?;
                // Resynchronisation: never reuse a sequence number, never accept an old one.
                if a.initial_seq != 0 {
                    let sh = c.shared().clone();
                    match d {
                        Direction::Out => {
                            if let Some(sa) = sh.sa_out.get(&a.spi, &g) {
                                sa.set_seq(a.initial_seq);
                            }
                        }
                        Direction::In => {
                            if let Some(sa) = sh.sa_in.get(&a.spi, &g) {
                                let _ = sa.replay.commit(a.initial_seq);
                            }
                        }
                    }
                }
                self.cookies.insert((d, a.spi), a.cookie);
                Ok(())
            }
            Message::DeleteSa(d) => {
                let s = subject(MessageKind::DeleteSa, d.spi, 0);
                self.cookies.remove(&(dir(d.direction), d.spi));
                if c.delete_sa(dir(d.direction), d.spi, &g) {
                    Ok(())
                } else {
                    Err((s, ErrorCode::NotFound, format!("no {:?} SA with SPI {:#x}", d.direction, d.spi)))
                }
            }
            Message::SetPeer(p) => c
                .set_peer(p.spi_in, p.spi_out, p.endpoint, &g)
                .map_err(|r| (subject(MessageKind::SetPeer, p.spi_in, 0), ErrorCode::NotFound, r.to_string())),
            Message::AddPolicy(p) => c
                .add_policy(Policy { src: p.src, dst: p.dst, spi: p.spi_out }, &g)
                .map_err(|e| (subject(MessageKind::AddPolicy, p.spi_out, 0), ErrorCode::NoResources, e.to_string())),
            Message::DeletePolicy(p) => {
                if c.delete_policy(p.src, p.dst, &g) {
                    Ok(())
                } else {
                    let what = format!("no policy {} -> {}", p.src, p.dst);
                    Err((subject(MessageKind::DeletePolicy, p.spi_out, 0), ErrorCode::NotFound, what))
                }
            }
            Message::AddRoute(r) => {
                let ifidx = self.ifindex(&r.interface).ok_or_else(|| {
                    (subject(MessageKind::AddRoute, 0, 0), ErrorCode::NotFound, self.no_interface(&r.interface))
                })?;
                c.add_route(Route { dst: r.prefix, via: r.gateway, ifidx }, &g);
                Ok(())
            }
            Message::DeleteRoute(r) => {
                if c.delete_route(r.prefix, r.gateway, &g) {
                    Ok(())
                } else {
                    Err((
                        subject(MessageKind::DeleteRoute, 0, 0),
                        ErrorCode::NotFound,
                        format!("no route to {}", r.prefix),
                    ))
                }
            }
            Message::SetAddress(a) => {
                let s = subject(MessageKind::SetAddress, 0, 0);
                let ifidx = self
                    .ifindex(&a.interface)
                    .ok_or_else(|| (s, ErrorCode::NotFound, self.no_interface(&a.interface)))?;
                c.add_address(ifidx, a.addr, a.prefix_len, &g).map(|_| ()).map_err(|e| (s, ErrorCode::Invalid, e))
            }
            Message::RemoveAddress(a) => {
                let s = subject(MessageKind::RemoveAddress, 0, 0);
                let ifidx = self
                    .ifindex(&a.interface)
                    .ok_or_else(|| (s, ErrorCode::NotFound, self.no_interface(&a.interface)))?;
                if c.remove_address(ifidx, a.addr, &g) {
                    Ok(())
                } else {
                    Err((s, ErrorCode::NotFound, format!("{} has no address {}", a.interface, a.addr)))
                }
            }
            Message::SetKeepalive { interval_secs } => {
                c.shared().keepalive_secs.store(interval_secs as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Message::Flush => {
                c.flush(&g);
                c.end_trace();
                self.cookies.clear();
                Ok(())
            }
            Message::SyncDone => Ok(()),
            Message::Trace(t) => c
                .trace(t.id, t.peer, &t.dir, t.max_packets)
                .map_err(|e| (subject(MessageKind::Trace, t.id, 0), ErrorCode::Invalid, e)),
            // Handled in `poll`, or travelling the other way (the ring refuses those).
            Message::Transmit(_)
            | Message::Hello(_)
            | Message::Punt(_)
            | Message::SaEvent(_)
            | Message::Ack(_)
            | Message::Error(_) => Ok(()),
        }
    }

    fn ifindex(&self, name: &IfName) -> Option<usize> {
        self.ifnames.iter().position(|n| n == name)
    }

    fn no_interface(&self, name: &IfName) -> String {
        let names: Vec<&str> = self.ifnames.iter().map(IfName::as_str).collect();
        format!("no interface named {name}; the data plane has {}", names.join(", "))
    }

    /// Sends a punted IKE datagram; counted and dropped if the ring is full.
    pub fn punt(&mut self, p: PuntedIke) {
        let Some(interface) = self.ifnames.get(p.ifidx).cloned() else {
            self.stats.punts_dropped += 1;
            return;
        };
        if !self.flush_backlog() {
            // Events first; the peer retransmits its IKE datagram.
            self.stats.punts_dropped += 1;
            return;
        }
        let m = Message::Punt(Punt { src: p.src, dst: p.dst, interface, had_marker: p.had_marker, payload: p.payload });
        match self.tx.try_send(&m) {
            Ok(()) => self.stats.punts_sent += 1,
            Err(_) => self.stats.punts_dropped += 1,
        }
    }

    /// Sends an SA event.
    pub fn event(&mut self, e: &Event) {
        let (spi, d, kind) = match *e {
            Event::NatMappingChanged { spi_in, new, .. } => {
                (spi_in, Direction::In, SaEventKind::NatMappingChanged { endpoint: new })
            }
            Event::SoftLifetime { spi, direction } => (spi, direction, SaEventKind::SoftLifetime),
            Event::HardLifetime { spi, direction } => (spi, direction, SaEventKind::HardLifetime),
            Event::Idle { spi, direction, seconds } => (spi, direction, SaEventKind::Idle { seconds }),
            Event::SeqNearExhaustion { spi } => (spi, Direction::Out, SaEventKind::SeqNearExhaustion),
            // Path MTUs are the data plane's own business.
            Event::PmtuLearned { .. } => return,
        };
        let cookie = self.cookies.get(&(d, spi)).copied().unwrap_or(0);
        self.send_reliably(Message::SaEvent(SaEvent { cookie, spi, direction: ring_dir(d), kind }));
    }

    /// Sends `m` now if the ring has room and nothing waits before it, else keeps it (in
    /// order) for [`flush_backlog`](Self::flush_backlog).
    fn send_reliably(&mut self, m: Message) {
        if !self.flush_backlog() && self.backlog.len() >= MAX_BACKLOG {
            self.stats.events_dropped += 1;
            return;
        }
        // Behind whatever waits (nothing, if the flush emptied the backlog): still there
        // after the flush means it had to wait.
        self.backlog.push_back(m);
        if !self.flush_backlog() {
            self.stats.events_delayed += 1;
        }
    }

    /// Sends what waits, oldest first, while the ring has room; true if nothing waits now.
    pub fn flush_backlog(&mut self) -> bool {
        while let Some(m) = self.backlog.front() {
            match self.tx.try_send(m) {
                Ok(()) => {
                    self.stats.events_sent += u64::from(matches!(m, Message::SaEvent(_)));
                    self.backlog.pop_front();
                }
                Err(esprit_ring::SendError::Full | esprit_ring::SendError::Timeout(_)) => return false,
                Err(_) => {
                    // Cannot be encoded: waiting would not help.
                    self.stats.events_dropped += 1;
                    self.backlog.pop_front();
                }
            }
        }
        true
    }

    /// Messages waiting for room in the ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }
}
