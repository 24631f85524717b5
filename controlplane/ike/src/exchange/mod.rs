//! The exchanges, split by kind (RFC 7296 §1.2–§1.4), and the dispatch of messages, timers
//! and data-plane events to them.

pub(crate) mod auth;
pub(crate) mod child;
pub(crate) mod info;
pub(crate) mod init;

use core::net::SocketAddr;

use crate::message::{self, Decoded, ExchangeType, NotifyType, Payload, Proposal};
use crate::sa::{notify, ChildState, CloseReason, Ctx, Effect, IkeSa, Queued, SaState, Task};
use crate::ts::TrafficSelector;

/// What the data plane reports about a CHILD SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEvent {
    /// A soft lifetime ran out: rekey.
    SoftLifetime,
    /// A hard lifetime ran out: the pair passes nothing any more.
    HardLifetime,
    /// The outbound sequence numbers are nearly used up: rekey.
    SeqNearExhaustion,
    /// Authenticated ESP came from a new address or port (the data plane follows it).
    NatMappingChanged(SocketAddr),
    /// No inbound packet for this many seconds.
    Idle(u32),
    /// Packets come in again after an idle spell.
    Resumed,
}

/// The first payload of each kind in a message.
pub(crate) fn nonce_of(pl: &[Payload]) -> Option<&Vec<u8>> {
    pl.iter().find_map(|p| if let Payload::Nonce(n) = p { Some(n) } else { None })
}

pub(crate) fn ke_of(pl: &[Payload]) -> Option<(u16, &Vec<u8>)> {
    pl.iter().find_map(|p| if let Payload::Ke { group, data } = p { Some((*group, data)) } else { None })
}

pub(crate) fn sa_of(pl: &[Payload]) -> Option<&Vec<Proposal>> {
    pl.iter().find_map(|p| if let Payload::Sa(s) = p { Some(s) } else { None })
}

pub(crate) fn ts_of(pl: &[Payload]) -> (Option<&Vec<TrafficSelector>>, Option<&Vec<TrafficSelector>>) {
    let i = pl.iter().find_map(|p| if let Payload::TsI(t) = p { Some(t) } else { None });
    let r = pl.iter().find_map(|p| if let Payload::TsR(t) = p { Some(t) } else { None });
    (i, r)
}

fn fail(sa: &mut IkeSa, ctx: &mut Ctx<'_>, reason: CloseReason) -> Vec<Effect> {
    ctx.stats.ike_failed += u64::from(reason == CloseReason::Failed);
    sa.teardown(ctx, reason);
    vec![Effect::Gone(sa.spi)]
}

/// A datagram for an existing SA (`raw`: the message as received, without the marker).
pub(crate) fn on_message(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    raw: &[u8],
    d: &Decoded<'_>,
) -> Vec<Effect> {
    let h = &d.header;
    if h.initiator == sa.initiator {
        // Both claim the same role: not for this SA.
        ctx.stats.rx_dropped += 1;
        return Vec::new();
    }
    let mut effects =
        if h.response { on_response(sa, ctx, remote, raw, d) } else { on_request(sa, ctx, local, remote, d) };
    if !effects.iter().any(|e| matches!(e, Effect::Gone(_))) {
        effects.extend(drive(sa, ctx));
    }
    effects
}

fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, remote: SocketAddr, raw: &[u8], d: &Decoded<'_>) -> Vec<Effect> {
    let h = &d.header;
    let ok = sa.pending.as_ref().is_some_and(|p| p.id == h.message_id && p.exchange == h.exchange);
    if !ok {
        ctx.stats.rx_dropped += 1;
        return Vec::new();
    }
    if h.exchange == ExchangeType::IKE_SA_INIT {
        sa.last_rx = ctx.now;
        if !init::on_response(sa, ctx, raw, d) {
            return fail(sa, ctx, CloseReason::Failed);
        }
        return Vec::new();
    }
    let Some(pl) = sa.open(ctx, d) else { return Vec::new() };
    sa.last_rx = ctx.now;
    sa.follow_peer(ctx, remote);
    let Some(p) = sa.pending.take() else { return Vec::new() };
    match p.task {
        Task::Init => Vec::new(),
        Task::Auth(s) => {
            if auth::on_response(sa, ctx, *s, &pl) {
                Vec::new()
            } else {
                fail(sa, ctx, CloseReason::Failed)
            }
        }
        Task::RekeyChild(s) => {
            child::on_rekey_child_response(sa, ctx, *s, &pl);
            Vec::new()
        }
        Task::RekeyIke(s) => child::on_rekey_ike_response(sa, ctx, *s, &pl),
        Task::DeleteChildren(c) => {
            info::on_delete_children_response(sa, ctx, c);
            Vec::new()
        }
        Task::DeleteIke => {
            if matches!(sa.state, SaState::Rekeyed) {
                ctx.event(crate::sa::Event::IkeClosed { spi: sa.spi, reason: CloseReason::Rekeyed });
            } else {
                sa.teardown(ctx, CloseReason::Deleted);
            }
            vec![Effect::Gone(sa.spi)]
        }
        Task::Dpd => Vec::new(),
    }
}

fn on_request(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    local: SocketAddr,
    remote: SocketAddr,
    d: &Decoded<'_>,
) -> Vec<Effect> {
    let h = &d.header;
    if h.exchange == ExchangeType::IKE_SA_INIT {
        // A retransmitted IKE_SA_INIT of a half-open SA: the endpoint routes those itself.
        return Vec::new();
    }
    if h.message_id.wrapping_add(1) == sa.peer_next_id {
        // A retransmission (§2.1): answer again, once per retransmitted message (for a
        // fragmented one, on its first fragment, RFC 7383 §2.6.1).
        let first = d.encrypted.as_ref().is_none_or(|e| e.fragment.is_none_or(|(n, _)| n == 1));
        if first {
            sa.resend_reply(ctx);
        }
        return Vec::new();
    }
    if h.message_id != sa.peer_next_id {
        ctx.stats.rx_dropped += 1;
        return Vec::new();
    }
    let Some(pl) = sa.open(ctx, d) else { return Vec::new() };
    sa.peer_next_id = sa.peer_next_id.wrapping_add(1);
    sa.last_rx = ctx.now;
    if let Some(t) = message::unsupported_critical(&pl) {
        sa.send_response(ctx, h.exchange, h.message_id, &[notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t.0])]);
        return Vec::new();
    }
    match (h.exchange, &sa.state) {
        (ExchangeType::IKE_AUTH, SaState::AwaitingAuth) => {
            // The first encrypted request: wherever it came from (the initiator moved to
            // port 4500, §2.23) is where we answer.
            sa.local = local;
            sa.remote = remote;
            auth::on_request(sa, ctx, h.message_id, &pl)
        }
        (ExchangeType::CREATE_CHILD_SA, _) => {
            sa.follow_peer(ctx, remote);
            child::on_request(sa, ctx, h.message_id, &pl)
        }
        (ExchangeType::INFORMATIONAL, _) => {
            sa.follow_peer(ctx, remote);
            info::on_request(sa, ctx, h.message_id, &pl)
        }
        _ => {
            ctx.stats.rx_dropped += 1;
            Vec::new()
        }
    }
}

/// Starts queued requests while the window is free.
pub(crate) fn drive(sa: &mut IkeSa, ctx: &mut Ctx<'_>) -> Vec<Effect> {
    let mut effects = Vec::new();
    while sa.pending.is_none() {
        let Some(q) = sa.queue.pop_front() else { break };
        let allowed = match sa.state {
            SaState::Established => true,
            SaState::Rekeyed | SaState::Deleting => matches!(q, Queued::DeleteIke | Queued::DeleteChild(_)),
            _ => false,
        };
        if !allowed {
            continue;
        }
        match q {
            Queued::RekeyChild(c) => child::start_rekey_child(sa, ctx, c),
            Queued::RekeyIke => child::start_rekey_ike(sa, ctx),
            Queued::DeleteChild(c) => {
                // Every queued child deletion in one request.
                let mut all = vec![c];
                sa.queue.retain(|x| match x {
                    Queued::DeleteChild(o) => {
                        all.push(*o);
                        false
                    }
                    _ => true,
                });
                info::start_delete_children(sa, ctx, all);
            }
            Queued::DeleteIke => info::start_delete_ike(sa, ctx),
            Queued::Dpd => info::start_dpd(sa, ctx),
        }
    }
    effects.append(&mut Vec::new());
    effects
}

/// Runs what is due at `ctx.now`.
pub(crate) fn on_timer(sa: &mut IkeSa, ctx: &mut Ctx<'_>) -> Vec<Effect> {
    if !sa.retransmit(ctx) {
        ctx.stats.peers_dead += 1;
        if matches!(sa.state, SaState::Deleting | SaState::Rekeyed) {
            return fail(sa, ctx, CloseReason::Deleted);
        }
        let reason = if sa.is_established() { CloseReason::PeerDead } else { CloseReason::Failed };
        return fail(sa, ctx, reason);
    }
    let now = ctx.now;
    if matches!(sa.state, SaState::AwaitingAuth | SaState::InitSent { .. } | SaState::AuthSent)
        && now >= sa.created + ctx.cfg.half_open_timeout
    {
        return fail(sa, ctx, CloseReason::HalfOpenTimeout);
    }
    if sa.rekey_at.is_some_and(|t| now >= t) {
        sa.rekey_at = None;
        sa.enqueue(Queued::RekeyIke);
    }
    if sa.expire_at.is_some_and(|t| now >= t) {
        if matches!(sa.state, SaState::Rekeyed) {
            ctx.event(crate::sa::Event::IkeClosed { spi: sa.spi, reason: CloseReason::Rekeyed });
            sa.teardown(ctx, CloseReason::Rekeyed);
            return vec![Effect::Gone(sa.spi)];
        }
        // The hard lifetime: tell the peer (without waiting for its answer) and go.
        let pl = [crate::message::Payload::Delete(crate::message::Delete {
            protocol: crate::message::ProtocolId::IKE,
            spis: vec![],
        })];
        let id = sa.my_next_id;
        let d = sa.seal(ctx, ExchangeType::INFORMATIONAL, false, id, &pl);
        for x in d {
            ctx.out.push_back(crate::sa::Output::Send(crate::sa::Datagram {
                local: sa.local,
                remote: sa.remote,
                marker: sa.marker(),
                data: x,
            }));
        }
        return fail(sa, ctx, CloseReason::Expired);
    }
    let mut expired = Vec::new();
    for c in &mut sa.children {
        if c.remove_at.is_some_and(|t| now >= t) {
            c.remove_at = None;
            expired.push((c.cookie, c.state));
        }
        if c.rekey_retry.is_some_and(|t| now >= t) {
            c.rekey_retry = None;
            if c.state == ChildState::Installed {
                sa.queue.push_back(Queued::RekeyChild(c.cookie));
            }
        }
    }
    for (cookie, state) in expired {
        if let ChildState::Rekeyed { by } = state {
            sa.route_child(ctx, by);
        }
        sa.remove_child(ctx, cookie, CloseReason::Rekeyed);
    }
    if sa.dpd_due(ctx.cfg).is_some_and(|t| now >= t) && !sa.queue.contains(&Queued::Dpd) {
        sa.enqueue(Queued::Dpd);
    }
    drive(sa, ctx)
}

/// A data-plane event about CHILD SA `cookie` of this IKE SA.
pub(crate) fn on_child_event(sa: &mut IkeSa, ctx: &mut Ctx<'_>, cookie: u64, ev: ChildEvent) -> Vec<Effect> {
    let Some(c) = sa.child_mut(cookie) else { return Vec::new() };
    match ev {
        ChildEvent::SoftLifetime | ChildEvent::SeqNearExhaustion => {
            if c.state == ChildState::Installed {
                sa.enqueue(Queued::RekeyChild(cookie));
            }
        }
        ChildEvent::HardLifetime => {
            if let ChildState::Rekeyed { by } = c.state {
                sa.route_child(ctx, by);
                sa.remove_child(ctx, cookie, CloseReason::Expired);
            } else if matches!(c.state, ChildState::Installed | ChildState::Rekeying) {
                // Expired without a successor: tell the peer (its half would linger).
                sa.enqueue(Queued::DeleteChild(cookie));
            }
        }
        ChildEvent::Idle(_) => c.idle = true,
        ChildEvent::Resumed => c.idle = false,
        ChildEvent::NatMappingChanged(to) => sa.follow_peer(ctx, to),
    }
    drive(sa, ctx)
}
