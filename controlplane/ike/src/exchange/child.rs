//! CREATE_CHILD_SA (RFC 7296 §1.3): rekeying a CHILD SA (§1.3.3, §2.8) make-before-break,
//! rekeying the IKE SA (§1.3.2, §2.18), a new CHILD SA, and simultaneous rekeys (§2.8.1,
//! §2.8.2): both exchanges complete, and the SA made with the lowest of the four nonces is
//! redundant; the peer that made it deletes it.
//!
//! ```text
//! Rekey a CHILD SA:
//! HDR, SK{N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}   -->
//!                                                  <--  HDR, SK{SA, Nr, [KEr,] TSi, TSr}
//! Rekey the IKE SA:
//! HDR, SK{SA, Ni, KEi}                             -->
//!                                                  <--  HDR, SK{SA, Nr, KEr}
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use crate::crypto::DhSecret;
use crate::exchange::auth::{new_child_with_nonces, remote_allowed};
use crate::exchange::{ke_of, nonce_of, sa_of, ts_of};
use crate::keys::{self, IkeSuite};
use crate::message::{ExchangeType, Notify, NotifyType, Payload, Proposal, ProtocolId};
use crate::proposal::{self, EspChoice};
use crate::sa::{error_notify, notifies, notify, ChildState, Ctx, Effect, Event, IkeSa, Queued, SaState, Task};
use crate::ts;

/// How long a replaced CHILD SA is kept at most when the peer does not delete it.
pub(crate) const REPLACED_GRACE: Duration = Duration::from_secs(60);
/// How long a rekeyed IKE SA waits for the peer's Delete before it goes silently.
pub(crate) const OLD_IKE_GRACE: Duration = Duration::from_secs(60);
/// When the peer answers TEMPORARY_FAILURE, try again after this long.
pub(crate) const RETRY_REKEY: Duration = Duration::from_secs(10);

/// Our CHILD SA rekey request, while it waits.
#[derive(Debug)]
pub(crate) struct RekeyChildSent {
    pub old: u64,
    pub spi_in: u32,
    pub ni: Vec<u8>,
    pub dh: Option<Box<dyn DhSecret>>,
}

/// Our IKE SA rekey request, while it waits.
#[derive(Debug)]
pub(crate) struct RekeyIkeSent {
    pub new_spi: u64,
    pub ni: Vec<u8>,
    pub dh: Box<dyn DhSecret>,
}

/// The peer rekeyed this IKE SA while our own rekey was under way (§2.8.2).
#[derive(Debug, Clone)]
pub(crate) struct IkeRekeyCollision {
    /// Our SPI of the IKE SA the peer's rekey made.
    pub theirs: u64,
    pub nonces: (Vec<u8>, Vec<u8>),
}

/// The lowest of the four nonces (§2.8.1): true if it belongs to `a`.
fn lowest_in(a: &(Vec<u8>, Vec<u8>), b: &(Vec<u8>, Vec<u8>)) -> bool {
    let min_a = a.0.as_slice().min(a.1.as_slice());
    let min_b = b.0.as_slice().min(b.1.as_slice());
    min_a < min_b
}

/// Responder: a CREATE_CHILD_SA request.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: u32, pl: &[Payload]) -> Vec<Effect> {
    let reply = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: NotifyType, data: Vec<u8>| {
        sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &[notify(kind, data)]);
        Vec::new()
    };
    if !sa.is_established() {
        // §2.25.2: we are closing (or replaced) this IKE SA.
        return reply(sa, ctx, NotifyType::TEMPORARY_FAILURE, vec![]);
    }
    let Some(props) = sa_of(pl) else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    if props.iter().any(|p| p.protocol == ProtocolId::IKE) {
        return rekey_ike_request(sa, ctx, id, pl, props);
    }
    child_request(sa, ctx, id, pl, props)
}

fn child_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: u32, pl: &[Payload], props: &[Proposal]) -> Vec<Effect> {
    let reply = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: NotifyType, data: Vec<u8>| {
        sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &[notify(kind, data)]);
        Vec::new()
    };
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return Vec::new() };
    let Some(proof) = sa.peer.clone() else { return Vec::new() };
    // §1.3.3: REKEY_SA names the old SA by the SPI the initiator receives on: our outbound.
    let rekeyed = notifies(pl, NotifyType::REKEY_SA)
        .find(|n| n.protocol == ProtocolId::ESP)
        .map(|n| n.spi.as_slice().try_into().map(u32::from_be_bytes));
    let old = match rekeyed {
        Some(Ok(spi)) => match sa.children.iter().find(|c| c.spi_out == spi) {
            None => {
                let n = Notify {
                    protocol: ProtocolId::ESP,
                    spi: spi.to_be_bytes().to_vec(),
                    kind: NotifyType::CHILD_SA_NOT_FOUND,
                    data: vec![],
                };
                sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &[Payload::Notify(n)]);
                return Vec::new();
            }
            // §2.25.1: we are deleting it, or it was replaced already.
            Some(c) if matches!(c.state, ChildState::Deleting | ChildState::Rekeyed { .. }) => {
                return reply(sa, ctx, NotifyType::TEMPORARY_FAILURE, vec![]);
            }
            Some(c) => Some(c.cookie),
        },
        Some(Err(_)) => return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]),
        None => None,
    };
    let Some(ni) = nonce_of(pl).cloned() else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    let Some(choice) = proposal::select_esp(&conn.esp_proposals, props, true) else {
        return reply(sa, ctx, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
    };
    let mut dh_pub = None;
    let g_ir = match (choice.dh, ke_of(pl)) {
        (None, _) => None,
        (Some(g), Some((group, data))) if group == proposal::dh_id(g) => {
            let Ok(dh) = ctx.p.dh_generate(g) else { return Vec::new() };
            let Ok(s) = dh.agree(data) else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
            dh_pub = Some((group, dh.public().to_vec()));
            Some(s)
        }
        (Some(g), _) => {
            return reply(sa, ctx, NotifyType::INVALID_KE_PAYLOAD, proposal::dh_id(g).to_be_bytes().to_vec());
        }
    };
    let (Some(tsi), Some(tsr)) = ts_of(pl) else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    // A rekey keeps what the old pair had (our own initiator has its virtual IP on its side,
    // not in the connection's selectors); a new pair gets what the connection allows.
    let (peer_allowed, our_allowed) = match old.and_then(|c| sa.child(c)) {
        Some(c) => (c.remote_ts.clone(), c.local_ts.clone()),
        None => (remote_allowed(sa, &conn), conn.local_ts.clone()),
    };
    let tsi_n = ts::narrow(tsi, &peer_allowed);
    let tsr_n = ts::narrow(tsr, &our_allowed);
    if tsi_n.is_empty() || tsr_n.is_empty() {
        return reply(sa, ctx, NotifyType::TS_UNACCEPTABLE, vec![]);
    }
    let nr = ctx.random(32);
    // Make-before-break: the new pair is installed now; its policies are routed when the
    // peer deletes the old pair (then it surely has the new one).
    let route = old.is_none();
    let Some(spi_in) = new_child_with_nonces(
        sa,
        ctx,
        &proof,
        &choice,
        g_ir.as_deref().map(|v| v.as_slice()),
        tsr_n.clone(),
        tsi_n.clone(),
        false,
        None,
        route,
        (ni.clone(), nr.clone()),
        old,
    ) else {
        return reply(sa, ctx, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
    };
    let new_cookie = sa.children.last().map_or(0, |c| c.cookie);
    if let Some(o) = old {
        ctx.stats.child_rekeys += 1;
        let now = ctx.now;
        if let Some(c) = sa.child_mut(o) {
            match c.state {
                // §2.8.1: we are rekeying it too: decide when our exchange completes.
                ChildState::Rekeying => c.collision = Some(new_cookie),
                _ => {
                    c.state = ChildState::Rekeyed { by: new_cookie };
                    c.remove_at = Some(now + REPLACED_GRACE);
                }
            }
        }
    }
    let mut out = vec![Payload::Sa(vec![proposal::esp_reply(&choice, spi_in)]), Payload::Nonce(nr)];
    if let Some((group, data)) = dh_pub {
        out.push(Payload::Ke { group, data });
    }
    out.push(Payload::TsI(tsi_n));
    out.push(Payload::TsR(tsr_n));
    sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &out);
    Vec::new()
}

fn rekey_ike_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: u32, pl: &[Payload], props: &[Proposal]) -> Vec<Effect> {
    let reply = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: NotifyType, data: Vec<u8>| {
        sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &[notify(kind, data)]);
        Vec::new()
    };
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return Vec::new() };
    let Some((suite, number)) = proposal::select_ike(&conn.ike_proposals, props) else {
        return reply(sa, ctx, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
    };
    let Some(chosen) = props.iter().find(|p| p.number == number && p.protocol == ProtocolId::IKE) else {
        return Vec::new();
    };
    let Ok(peer_spi) = <[u8; 8]>::try_from(chosen.spi.as_slice()).map(u64::from_be_bytes) else {
        return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]);
    };
    let Some(ni) = nonce_of(pl).cloned() else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    let Some((group, kei)) = ke_of(pl) else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    if group != proposal::dh_id(suite.dh) {
        return reply(sa, ctx, NotifyType::INVALID_KE_PAYLOAD, proposal::dh_id(suite.dh).to_be_bytes().to_vec());
    }
    let Ok(dh) = ctx.p.dh_generate(suite.dh) else { return Vec::new() };
    let Ok(g_ir) = dh.agree(kei) else { return reply(sa, ctx, NotifyType::INVALID_SYNTAX, vec![]) };
    let nr = ctx.random(32);
    let our_spi = loop {
        let s = ctx.random_u64();
        if s != 0 {
            break s;
        }
    };
    // The peer initiated this exchange: it is the new SA's original initiator (§2.18).
    let Some(new) = rekeyed_sa(sa, ctx, suite, &g_ir, &ni, &nr, peer_spi, our_spi, false, our_spi) else {
        return Vec::new();
    };
    let out = vec![
        Payload::Sa(vec![proposal::ike_reply(number, &our_spi.to_be_bytes(), &suite)]),
        Payload::Nonce(nr.clone()),
        Payload::Ke { group, data: dh.public().to_vec() },
    ];
    sa.send_response(ctx, ExchangeType::CREATE_CHILD_SA, id, &out);
    ctx.stats.ike_rekeys += 1;
    if matches!(&sa.pending, Some(p) if matches!(p.task, Task::RekeyIke(_))) {
        // §2.8.2: both sides rekey at once; decided when our exchange completes. The
        // children stay here until then.
        sa.rekey_collision = Some(IkeRekeyCollision { theirs: our_spi, nonces: (ni, nr) });
        return vec![Effect::NewSa(new)];
    }
    let mut new = new;
    move_children(sa, &mut new, ctx);
    sa.state = SaState::Rekeyed;
    sa.expire_at = Some(ctx.now + OLD_IKE_GRACE);
    sa.rekey_at = None;
    ctx.event(Event::IkeRekeyed { old: sa.spi, new: new.spi });
    vec![Effect::NewSa(new)]
}

/// Moves the children, the peer's identity and the address leases to the new IKE SA.
pub(crate) fn move_children(old: &mut IkeSa, new: &mut IkeSa, ctx: &mut Ctx<'_>) {
    new.children.append(&mut old.children);
    new.vips = std::mem::take(&mut old.vips);
    for p in ctx.pools.iter_mut() {
        p.transfer(old.spi, new.spi);
    }
}

/// The IKE SA a rekey makes (§2.18): new SPIs and nonces, SKEYSEED from the old SK_d.
#[allow(clippy::too_many_arguments)]
fn rekeyed_sa(
    old: &IkeSa,
    ctx: &mut Ctx<'_>,
    suite: IkeSuite,
    g_ir: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    we_initiated: bool,
    our_spi: u64,
) -> Option<Box<IkeSa>> {
    let skeyseed = keys::skeyseed_rekey(ctx.p, old.suite.prf, &old.keys.sk_d, g_ir, ni, nr);
    let k = keys::derive_ike_keys(ctx.p, &suite, &skeyseed, ni, nr, spi_i, spi_r).ok()?;
    let mut new = Box::new(IkeSa {
        spi: our_spi,
        initiator: we_initiated,
        spi_i,
        spi_r,
        local: old.local,
        remote: old.remote,
        nat: old.nat,
        candidates: old.candidates.clone(),
        conn: old.conn,
        suite,
        keys: k,
        iv_out: 0,
        state: SaState::Established,
        my_next_id: 0,
        pending: None,
        queue: VecDeque::new(),
        peer_next_id: 0,
        last_reply: None,
        reasm: None,
        frag_ok: old.frag_ok,
        peer_hashes: old.peer_hashes.clone(),
        ni: ni.to_vec(),
        nr: nr.to_vec(),
        init_req: Vec::new(),
        init_resp: Vec::new(),
        peer: old.peer.clone(),
        vips: Vec::new(),
        children: Vec::new(),
        created: ctx.now,
        rekey_at: None,
        expire_at: None,
        last_rx: ctx.now,
        scheduled: None,
        init_opts: None,
        rekey_collision: None,
    });
    if let Some(c) = old.connection(ctx.cfg) {
        let lt = c.ike_lifetime;
        let jitter = if lt.jitter.is_zero() { 0 } else { ctx.random_u64() % lt.jitter.as_millis().max(1) as u64 };
        new.rekey_at = (!lt.rekey.is_zero()).then(|| ctx.now + lt.rekey.saturating_sub(Duration::from_millis(jitter)));
        new.expire_at = (!lt.hard.is_zero()).then(|| ctx.now + lt.hard);
    }
    Some(new)
}

/// Initiator: starts rekeying CHILD SA `cookie` (the request window is free).
pub(crate) fn start_rekey_child(sa: &mut IkeSa, ctx: &mut Ctx<'_>, cookie: u64) {
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return };
    let Some(c) = sa.child(cookie) else { return };
    if c.state != ChildState::Installed {
        return;
    }
    let (old_spi_in, local_ts, remote_ts) = (c.spi_in, c.local_ts.clone(), c.remote_ts.clone());
    let spi_in = sa.new_spi_in(ctx, |_| false);
    let ni = ctx.random(32);
    let group = conn.esp_proposals.iter().find_map(|e| e.dh.first().copied());
    let dh = match group.map(|g| ctx.p.dh_generate(g)) {
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return,
        None => None,
    };
    let mut pl = vec![Payload::Notify(Notify {
        protocol: ProtocolId::ESP,
        spi: old_spi_in.to_be_bytes().to_vec(),
        kind: NotifyType::REKEY_SA,
        data: vec![],
    })];
    pl.push(Payload::Sa(
        conn.esp_proposals.iter().enumerate().flat_map(|(i, e)| e.to_wire(i as u8 * 2 + 1, spi_in, true)).collect(),
    ));
    pl.push(Payload::Nonce(ni.clone()));
    if let Some(d) = &dh {
        pl.push(Payload::Ke { group: proposal::dh_id(d.group()), data: d.public().to_vec() });
    }
    pl.push(Payload::TsI(local_ts));
    pl.push(Payload::TsR(remote_ts));
    if let Some(c) = sa.child_mut(cookie) {
        c.state = ChildState::Rekeying;
        c.rekey_retry = None;
    }
    sa.send_request(
        ctx,
        ExchangeType::CREATE_CHILD_SA,
        &pl,
        Task::RekeyChild(Box::new(RekeyChildSent { old: cookie, spi_in, ni, dh })),
    );
}

/// Initiator: the response to our CHILD SA rekey.
pub(crate) fn on_rekey_child_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, sent: RekeyChildSent, pl: &[Payload]) {
    let old = sent.old;
    let back_to_installed = |sa: &mut IkeSa, retry: bool, now| {
        if let Some(c) = sa.child_mut(old) {
            if c.state == ChildState::Rekeying {
                c.state = ChildState::Installed;
                c.rekey_retry = retry.then(|| now + RETRY_REKEY);
            }
            if let Some(theirs) = c.collision.take() {
                // The peer's rekey won anyway.
                c.state = ChildState::Rekeyed { by: theirs };
                c.remove_at = Some(now + REPLACED_GRACE);
            }
        }
    };
    if let Some(e) = error_notify(pl) {
        let retry = e == NotifyType::TEMPORARY_FAILURE || e == NotifyType::INVALID_KE_PAYLOAD;
        back_to_installed(sa, retry, ctx.now);
        return;
    }
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return };
    let Some(proof) = sa.peer.clone() else { return };
    let (Some(props), Some(nr)) = (sa_of(pl), nonce_of(pl).cloned()) else {
        back_to_installed(sa, true, ctx.now);
        return;
    };
    let Some(choice) = proposal::accept_esp(&conn.esp_proposals, props, true) else {
        back_to_installed(sa, false, ctx.now);
        return;
    };
    let g_ir = match (&sent.dh, choice.dh, ke_of(pl)) {
        (None, None, _) => None,
        (Some(d), Some(g), Some((group, data))) if d.group() == g && group == proposal::dh_id(g) => match d.agree(data)
        {
            Ok(s) => Some(s),
            Err(_) => {
                back_to_installed(sa, true, ctx.now);
                return;
            }
        },
        _ => {
            back_to_installed(sa, false, ctx.now);
            return;
        }
    };
    let Some(oldc) = sa.child(old).cloned() else { return };
    let (tsi, tsr) = ts_of(pl);
    let local_ts = tsi.cloned().filter(|t| ts::within(t, &oldc.local_ts)).unwrap_or(oldc.local_ts.clone());
    let remote_ts = tsr.cloned().filter(|t| ts::within(t, &oldc.remote_ts)).unwrap_or(oldc.remote_ts.clone());
    let nonces = (sent.ni.clone(), nr);
    // We initiated: the responder has the new pair already; send on it at once.
    let Some(_) = new_child_with_nonces(
        sa,
        ctx,
        &proof,
        &EspChoice { ..choice },
        g_ir.as_deref().map(|v| v.as_slice()),
        local_ts,
        remote_ts,
        true,
        Some(sent.spi_in),
        false,
        nonces.clone(),
        Some(old),
    ) else {
        back_to_installed(sa, false, ctx.now);
        return;
    };
    ctx.stats.child_rekeys += 1;
    let ours = sa.children.last().map_or(0, |c| c.cookie);
    let collision = sa.child_mut(old).and_then(|c| c.collision.take());
    match collision {
        Some(theirs) => {
            let their_nonces = sa.child(theirs).map(|c| c.nonces.clone()).unwrap_or_default();
            if lowest_in(&nonces, &their_nonces) {
                // Ours is redundant: we delete it; the peer deletes the old one.
                sa.route_child(ctx, theirs);
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed { by: theirs };
                    c.remove_at = Some(ctx.now + REPLACED_GRACE);
                }
                sa.enqueue(Queued::DeleteChild(ours));
            } else {
                // Theirs is redundant (the peer deletes it); we delete the old one.
                sa.route_child(ctx, ours);
                if let Some(c) = sa.child_mut(old) {
                    c.state = ChildState::Rekeyed { by: ours };
                }
                sa.enqueue(Queued::DeleteChild(old));
            }
        }
        None => {
            sa.route_child(ctx, ours);
            if let Some(c) = sa.child_mut(old) {
                c.state = ChildState::Rekeyed { by: ours };
            }
            sa.enqueue(Queued::DeleteChild(old));
        }
    }
}

/// Initiator: starts rekeying this IKE SA.
pub(crate) fn start_rekey_ike(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return };
    if !sa.is_established() {
        return;
    }
    let Some(group) = conn
        .ike_proposals
        .iter()
        .flat_map(|p| p.dh.iter())
        .copied()
        .find(|g| *g == sa.suite.dh)
        .or_else(|| conn.ike_proposals.first().and_then(|p| p.dh.first().copied()))
    else {
        return;
    };
    let Ok(dh) = ctx.p.dh_generate(group) else { return };
    let new_spi = loop {
        let s = ctx.random_u64();
        if s != 0 {
            break s;
        }
    };
    let ni = ctx.random(32);
    let props: Vec<Proposal> =
        conn.ike_proposals.iter().enumerate().map(|(i, p)| p.to_wire(i as u8 + 1, &new_spi.to_be_bytes())).collect();
    let pl = vec![
        Payload::Sa(props),
        Payload::Nonce(ni.clone()),
        Payload::Ke { group: proposal::dh_id(group), data: dh.public().to_vec() },
    ];
    sa.rekey_at = None;
    sa.send_request(
        ctx,
        ExchangeType::CREATE_CHILD_SA,
        &pl,
        Task::RekeyIke(Box::new(RekeyIkeSent { new_spi, ni, dh })),
    );
}

/// Initiator: the response to our IKE SA rekey.
pub(crate) fn on_rekey_ike_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    sent: RekeyIkeSent,
    pl: &[Payload],
) -> Vec<Effect> {
    let collision = sa.rekey_collision.take();
    let retry_later = |sa: &mut IkeSa, ctx: &mut Ctx<'_>| {
        sa.rekey_at = Some(ctx.now + RETRY_REKEY);
    };
    if error_notify(pl).is_some() {
        if collision.is_none() {
            retry_later(sa, ctx);
        } else if let Some(c) = collision {
            return peer_rekey_won(sa, ctx, c);
        }
        return Vec::new();
    }
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return Vec::new() };
    let (Some(props), Some(nr), Some((group, ker))) = (sa_of(pl), nonce_of(pl).cloned(), ke_of(pl)) else {
        return Vec::new();
    };
    let Some(suite) = proposal::accept_ike(&conn.ike_proposals, props) else { return Vec::new() };
    let Ok(peer_spi) = <[u8; 8]>::try_from(props[0].spi.as_slice()).map(u64::from_be_bytes) else { return Vec::new() };
    if group != proposal::dh_id(suite.dh) || sent.dh.group() != suite.dh {
        return Vec::new();
    }
    let Ok(g_ir) = sent.dh.agree(ker) else { return Vec::new() };
    let Some(mut new) = rekeyed_sa(sa, ctx, suite, &g_ir, &sent.ni, &nr, sent.new_spi, peer_spi, true, sent.new_spi)
    else {
        return Vec::new();
    };
    ctx.stats.ike_rekeys += 1;
    if let Some(c) = &collision {
        if lowest_in(&(sent.ni.clone(), nr.clone()), &c.nonces) {
            // Ours is redundant: delete it; the peer's new SA takes the children and the peer
            // deletes this old one.
            new.state = SaState::Deleting;
            new.queue.push_back(Queued::DeleteIke);
            let mut effects = peer_rekey_won(sa, ctx, c.clone());
            effects.push(Effect::NewSa(new));
            return effects;
        }
        // Theirs is redundant: the peer deletes it. Ours takes the children; we delete this
        // old SA.
    }
    move_children(sa, &mut new, ctx);
    ctx.event(Event::IkeRekeyed { old: sa.spi, new: new.spi });
    sa.state = SaState::Rekeyed;
    sa.queue.clear();
    sa.queue.push_back(Queued::DeleteIke);
    let mut effects = vec![Effect::NewSa(new)];
    if let Some(c) = collision {
        // If the peer never learns it lost (our answer to its rekey was lost), it cannot
        // delete its redundant SA: we do, after a grace period.
        effects.push(Effect::Deadline { spi: c.theirs, at: ctx.now + 2 * OLD_IKE_GRACE });
    }
    effects
}

/// The peer's IKE rekey won the collision: its new SA takes the children.
fn peer_rekey_won(sa: &mut IkeSa, ctx: &mut Ctx<'_>, c: IkeRekeyCollision) -> Vec<Effect> {
    sa.state = SaState::Rekeyed;
    sa.expire_at = Some(ctx.now + OLD_IKE_GRACE);
    ctx.event(Event::IkeRekeyed { old: sa.spi, new: c.theirs });
    vec![Effect::MoveTo(c.theirs)]
}
