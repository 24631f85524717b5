//! IKE_SA_INIT (RFC 7296 §1.2): proposals, Diffie-Hellman, nonces, NAT detection (§2.23),
//! cookies (§2.6), INVALID_KE_PAYLOAD (§1.2), and the fragmentation and signature-hash
//! announcements (RFC 7383 §2.3, RFC 7427 §4).
//!
//! ```text
//! Initiator                         Responder
//! HDR, SAi1, KEi, Ni,
//!   N(NAT_DETECTION_*), N(FRAG)  -->
//!                              <--  HDR, SAr1, KEr, Nr, [CERTREQ],
//!                                     N(NAT_DETECTION_*), N(FRAG)
//! ```

use core::net::SocketAddr;
use std::collections::VecDeque;

use crate::config::RemoteAuth;
use crate::cookie::CookieJar;
use crate::crypto::DhGroup;
use crate::exchange::{ke_of, nonce_of, sa_of};
use crate::keys::{self, IkeSuite};
use crate::message::{
    self, CertEncoding, Decoded, ExchangeType, Header, NotifyType, Payload, PayloadType, IKEV2_VERSION,
};
use crate::nat;
use crate::proposal::{self, IkeProposal};
use crate::sa::{has_notify, notifies, notify, Ctx, Event, IkeSa, SaState, Task};

/// What to do with an IKE_SA_INIT request.
#[derive(Debug)]
pub(crate) enum InitOutcome {
    /// A new half-open IKE SA (its response already sent).
    Sa(Box<IkeSa>),
    /// An unencrypted answer carrying one notify (cookie, INVALID_KE_PAYLOAD, errors).
    Reply(Vec<u8>),
    /// Malformed: nothing to answer.
    Drop,
}

fn plain_reply(req: &Header, kind: NotifyType, data: Vec<u8>) -> InitOutcome {
    let h = Header {
        spi_i: req.spi_i,
        spi_r: 0,
        next_payload: PayloadType::NONE,
        version: IKEV2_VERSION,
        exchange: req.exchange,
        initiator: false,
        response: true,
        message_id: req.message_id,
        length: 0,
    };
    match message::encode(&h, &[notify(kind, data)]) {
        Ok(b) => InitOutcome::Reply(b),
        Err(_) => InitOutcome::Drop,
    }
}

/// The PRF's preferred key length, in bytes (nonces must be at least half of it).
fn prf_len(p: crate::crypto::PrfAlg) -> usize {
    use crate::crypto::PrfAlg::*;
    match p {
        HmacSha1 => 20,
        HmacSha256 => 32,
        HmacSha384 => 48,
        HmacSha512 => 64,
    }
}

/// Our nonce length: 32 bytes covers every PRF's half key length.
const NONCE_LEN: usize = 32;

/// Responder: a new IKE_SA_INIT request from `remote`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn respond(
    ctx: &mut Ctx<'_>,
    candidates: Vec<usize>,
    local: SocketAddr,
    remote: SocketAddr,
    raw: &[u8],
    d: &Decoded<'_>,
    jar: &mut CookieJar,
    cookie_required: bool,
    our_spi: u64,
) -> InitOutcome {
    let h = &d.header;
    let pl = &d.payloads;
    if let Some(t) = message::unsupported_critical(pl) {
        return plain_reply(h, NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t.0]);
    }
    let (Some(props), Some((group, kei)), Some(ni)) = (sa_of(pl), ke_of(pl), nonce_of(pl)) else {
        return plain_reply(h, NotifyType::INVALID_SYNTAX, vec![]);
    };
    if cookie_required {
        let theirs = notifies(pl, NotifyType::COOKIE).next().map(|n| n.data.as_slice());
        if !theirs.is_some_and(|c| jar.check(c, ni, remote, h.spi_i)) {
            ctx.stats.cookies_sent += 1;
            let c = jar.make(ctx.p, ctx.now, ni, remote, h.spi_i);
            return plain_reply(h, NotifyType::COOKIE, c);
        }
    }
    let ours: Vec<IkeProposal> =
        candidates.iter().flat_map(|i| ctx.cfg.connections[*i].ike_proposals.iter().cloned()).collect();
    let Some((suite, number)) = proposal::select_ike(&ours, props) else {
        ctx.event(Event::Refused {
            peer: remote,
            exchange: ExchangeType::IKE_SA_INIT,
            notify: NotifyType::NO_PROPOSAL_CHOSEN.0,
            reason: "no IKE proposal in common".into(),
        });
        return plain_reply(h, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
    };
    if group != proposal::dh_id(suite.dh) {
        // §1.2: tell the initiator which group we want; it retries.
        return plain_reply(h, NotifyType::INVALID_KE_PAYLOAD, proposal::dh_id(suite.dh).to_be_bytes().to_vec());
    }
    if ni.len() < prf_len(suite.prf) / 2 {
        return plain_reply(h, NotifyType::INVALID_SYNTAX, vec![]);
    }
    // Only connections that allow the chosen suite remain candidates.
    let candidates: Vec<usize> = candidates
        .into_iter()
        .filter(|i| {
            proposal::select_ike(&ctx.cfg.connections[*i].ike_proposals, &[proposal::ike_reply(1, &[], &suite)])
                .is_some()
        })
        .collect();
    let dh = match ctx.p.dh_generate(suite.dh) {
        Ok(d) => d,
        Err(_) => return InitOutcome::Drop,
    };
    let Ok(g_ir) = dh.agree(kei) else {
        // RFC 6989: an invalid public value.
        return plain_reply(h, NotifyType::INVALID_SYNTAX, vec![]);
    };
    let nr = ctx.random(NONCE_LEN);
    let skeyseed = keys::skeyseed(ctx.p, suite.prf, ni, &nr, &g_ir);
    let Ok(k) = keys::derive_ike_keys(ctx.p, &suite, &skeyseed, ni, &nr, h.spi_i, our_spi) else {
        return InitOutcome::Drop;
    };
    let detected = nat::detect(pl, h.spi_i, 0, local, remote);
    let frag_offered = has_notify(pl, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED);
    let frag_ok = frag_offered && candidates.iter().any(|i| ctx.cfg.connections[*i].fragmentation);
    let peer_hashes: Vec<u16> = notifies(pl, NotifyType::SIGNATURE_HASH_ALGORITHMS)
        .flat_map(|n| n.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
        .collect();

    let mut reply = vec![
        Payload::Sa(vec![proposal::ike_reply(number, &[], &suite)]),
        Payload::Ke { group, data: dh.public().to_vec() },
        Payload::Nonce(nr.clone()),
    ];
    if detected.supported {
        reply.extend(nat::notifies(h.spi_i, our_spi, local, remote));
    }
    // CERTREQ with the CAs we trust, when a candidate authenticates peers by certificate.
    let mut certreq = Vec::new();
    for i in &candidates {
        if let RemoteAuth::Pubkey(trust) = &ctx.cfg.connections[*i].remote_auth {
            certreq.extend(trust.certreq_data());
        }
    }
    if !certreq.is_empty() {
        reply.push(Payload::CertReq { encoding: CertEncoding::X509_SIGNATURE, data: certreq });
    }
    if frag_ok {
        reply.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![]));
    }
    if !peer_hashes.is_empty() {
        reply.push(notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, crate::auth::hash_algorithms_notify_data()));
    }
    let rh = Header {
        spi_i: h.spi_i,
        spi_r: our_spi,
        next_payload: PayloadType::NONE,
        version: IKEV2_VERSION,
        exchange: ExchangeType::IKE_SA_INIT,
        initiator: false,
        response: true,
        message_id: 0,
        length: 0,
    };
    let Ok(resp) = message::encode(&rh, &reply) else { return InitOutcome::Drop };
    let mut sa = Box::new(IkeSa {
        spi: our_spi,
        initiator: false,
        spi_i: h.spi_i,
        spi_r: our_spi,
        local,
        remote,
        nat: detected.local_behind || detected.remote_behind,
        candidates,
        conn: None,
        suite,
        keys: k,
        iv_out: 0,
        state: SaState::AwaitingAuth,
        my_next_id: 0,
        pending: None,
        queue: VecDeque::new(),
        peer_next_id: 1,
        last_reply: None,
        reasm: None,
        frag_ok,
        peer_hashes,
        ni: ni.clone(),
        nr,
        init_req: raw.to_vec(),
        init_resp: resp.clone(),
        peer: None,
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
    sa.send_plain_response(ctx, 0, resp);
    InitOutcome::Sa(sa)
}

/// Initiator: a new IKE SA toward `remote` for connection `conn` (its SA_INIT sent).
pub(crate) fn start(
    ctx: &mut Ctx<'_>,
    conn: usize,
    local: SocketAddr,
    remote: SocketAddr,
    opts: crate::exchange::auth::InitiatorOptions,
) -> Option<Box<IkeSa>> {
    let c = ctx.cfg.connections.get(conn)?;
    let group = *c.ike_proposals.first()?.dh.first()?;
    let spi = loop {
        let s = ctx.random_u64();
        if s != 0 {
            break s;
        }
    };
    let dh = ctx.p.dh_generate(group).ok()?;
    let ni = ctx.random(NONCE_LEN);
    let placeholder = IkeSuite {
        encr: crate::crypto::EncrAlg::AesGcm16 { key_bits: 128 },
        prf: crate::crypto::PrfAlg::HmacSha256,
        integ: None,
        dh: group,
    };
    let mut sa = Box::new(IkeSa {
        spi,
        initiator: true,
        spi_i: spi,
        spi_r: 0,
        local,
        remote,
        nat: false,
        candidates: vec![conn],
        conn: Some(conn),
        suite: placeholder,
        keys: keys::IkeKeys {
            sk_d: Default::default(),
            sk_ai: Default::default(),
            sk_ar: Default::default(),
            sk_ei: Default::default(),
            sk_er: Default::default(),
            sk_pi: Default::default(),
            sk_pr: Default::default(),
        },
        iv_out: 0,
        state: SaState::InitSent { dh, ni: ni.clone(), cookie: None },
        my_next_id: 0,
        pending: None,
        queue: VecDeque::new(),
        peer_next_id: 0,
        last_reply: None,
        reasm: None,
        frag_ok: false,
        peer_hashes: Vec::new(),
        ni,
        nr: Vec::new(),
        init_req: Vec::new(),
        init_resp: Vec::new(),
        peer: None,
        vips: Vec::new(),
        children: Vec::new(),
        created: ctx.now,
        rekey_at: None,
        expire_at: None,
        last_rx: ctx.now,
        scheduled: None,
        init_opts: Some(Box::new(opts)),
        rekey_collision: None,
    });
    send_init(&mut sa, ctx);
    Some(sa)
}

/// (Re)sends our IKE_SA_INIT request from the state `InitSent`.
fn send_init(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let SaState::InitSent { dh, ni, cookie } = &sa.state else { return };
    let Some(c) = sa.connection(ctx.cfg) else { return };
    let mut pl = Vec::new();
    if let Some(ck) = cookie {
        pl.push(notify(NotifyType::COOKIE, ck.clone()));
    }
    let props: Vec<message::Proposal> =
        c.ike_proposals.iter().enumerate().map(|(i, p)| p.to_wire(i as u8 + 1, &[])).collect();
    pl.push(Payload::Sa(props));
    pl.push(Payload::Ke { group: proposal::dh_id(dh.group()), data: dh.public().to_vec() });
    pl.push(Payload::Nonce(ni.clone()));
    pl.extend(nat::notifies(sa.spi_i, 0, sa.local, sa.remote));
    if c.fragmentation {
        pl.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![]));
    }
    pl.push(notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, crate::auth::hash_algorithms_notify_data()));
    let h = Header {
        spi_i: sa.spi_i,
        spi_r: 0,
        next_payload: PayloadType::NONE,
        version: IKEV2_VERSION,
        exchange: ExchangeType::IKE_SA_INIT,
        initiator: true,
        response: false,
        message_id: 0,
        length: 0,
    };
    let Ok(bytes) = message::encode(&h, &pl) else { return };
    sa.init_req = bytes.clone();
    sa.my_next_id = 0;
    sa.send_plain_request(ctx, bytes, Task::Init);
}

/// Initiator: the IKE_SA_INIT response. False: the SA failed.
pub(crate) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, raw: &[u8], d: &Decoded<'_>) -> bool {
    let pl = &d.payloads;
    let SaState::InitSent { dh, ni, .. } = &sa.state else { return true };
    let (current_group, ni) = (dh.group(), ni.clone());
    if let Some(n) = notifies(pl, NotifyType::COOKIE).next() {
        let ck = n.data.clone();
        if let SaState::InitSent { cookie, .. } = &mut sa.state {
            *cookie = Some(ck);
        }
        sa.pending = None;
        send_init(sa, ctx);
        return true;
    }
    if let Some(n) = notifies(pl, NotifyType::INVALID_KE_PAYLOAD).next() {
        let want = n.data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let offered: Vec<DhGroup> = sa
            .connection(ctx.cfg)
            .map(|c| c.ike_proposals.iter().flat_map(|p| p.dh.iter().copied()).collect())
            .unwrap_or_default();
        let Some(g) = want.and_then(proposal::dh_from_id).filter(|g| offered.contains(g) && *g != current_group) else {
            return false;
        };
        let Ok(new) = ctx.p.dh_generate(g) else { return false };
        if let SaState::InitSent { dh, .. } = &mut sa.state {
            *dh = new;
        }
        sa.pending = None;
        send_init(sa, ctx);
        return true;
    }
    if crate::sa::error_notify(pl).is_some() {
        return false;
    }
    let (Some(props), Some((group, ker)), Some(nr)) = (sa_of(pl), ke_of(pl), nonce_of(pl)) else { return false };
    let ours = sa.connection(ctx.cfg).map(|c| c.ike_proposals.clone()).unwrap_or_default();
    let Some(suite) = proposal::accept_ike(&ours, props) else { return false };
    let SaState::InitSent { dh, .. } = &sa.state else { return false };
    if proposal::dh_id(suite.dh) != group || dh.group() != suite.dh {
        return false;
    }
    let Ok(g_ir) = dh.agree(ker) else { return false };
    sa.spi_r = d.header.spi_r;
    let skeyseed = keys::skeyseed(ctx.p, suite.prf, &ni, nr, &g_ir);
    let Ok(k) = keys::derive_ike_keys(ctx.p, &suite, &skeyseed, &ni, nr, sa.spi_i, sa.spi_r) else { return false };
    let detected = nat::detect(pl, sa.spi_i, sa.spi_r, sa.local, sa.remote);
    sa.suite = suite;
    sa.keys = k;
    sa.nr = nr.clone();
    sa.init_resp = raw.to_vec();
    sa.frag_ok = has_notify(pl, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
        && sa.connection(ctx.cfg).is_some_and(|c| c.fragmentation);
    sa.peer_hashes = notifies(pl, NotifyType::SIGNATURE_HASH_ALGORITHMS)
        .flat_map(|n| n.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
        .collect();
    sa.nat = detected.local_behind || detected.remote_behind;
    if sa.nat {
        // §2.23: after a NAT is detected, the initiator moves to port 4500.
        sa.local.set_port(4500);
        sa.remote.set_port(4500);
    }
    sa.pending = None;
    crate::exchange::auth::send_request(sa, ctx);
    true
}
