//! IKE_AUTH (RFC 7296 §1.2, §2.15): identities, PSK or certificate authentication (RFC 7427
//! signatures), the configuration payload with virtual IPs (§2.19, §3.15), the first CHILD
//! SA with traffic-selector narrowing (§2.9), and INITIAL_CONTACT (§2.4).
//!
//! ```text
//! Initiator                                   Responder
//! HDR, SK{IDi, [CERT,] [CERTREQ,] [IDr,] AUTH,
//!         [CP(CFG_REQUEST),] SAi2, TSi, TSr,
//!         [N(INITIAL_CONTACT)]}            -->
//!                                          <--  HDR, SK{IDr, [CERT,] AUTH,
//!                                                   [CP(CFG_REPLY),] SAr2, TSi, TSr}
//! ```

use core::net::IpAddr;
use std::time::Duration;

use crate::auth;
use crate::config::{Connection, LocalAuth, RemoteAuth};
use crate::identity;
use crate::keys;
use crate::message::{
    AuthMethod, CertEncoding, ConfigAttribute, ConfigAttributeType, ConfigPayload, ConfigType, ExchangeType,
    Identification, NotifyType, Payload,
};
use crate::pki::Certificate;
use crate::proposal::{self, EspChoice};
use crate::sa::{has_notify, notify, CloseReason, Ctx, Effect, Event, IkeSa, PeerAuthenticated, SaState, Task};
use crate::ts::{self, TrafficSelector};

/// What an initiator asks for (tests, site-to-site).
#[derive(Debug, Clone, Default)]
pub struct InitiatorOptions {
    /// Ask for a virtual IPv4 address (and DNS servers).
    pub request_vip: bool,
    /// Our side's selectors (ignored when a virtual IP is requested: 0.0.0.0/0 is proposed).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side we want.
    pub remote_ts: Vec<TrafficSelector>,
    pub initial_contact: bool,
}

/// Our IKE_AUTH request, while it waits for the response.
#[derive(Debug)]
pub(crate) struct AuthSent {
    spi_in: u32,
    proposed_tsi: Vec<TrafficSelector>,
    proposed_tsr: Vec<TrafficSelector>,
}

struct Parsed<'a> {
    idi: Option<&'a Identification>,
    idr: Option<&'a Identification>,
    certs: Vec<&'a [u8]>,
    auth: Option<(AuthMethod, &'a [u8])>,
    cp: Option<&'a ConfigPayload>,
    sa: Option<&'a Vec<crate::message::Proposal>>,
    tsi: Option<&'a Vec<TrafficSelector>>,
    tsr: Option<&'a Vec<TrafficSelector>>,
}

fn parse(pl: &[Payload]) -> Parsed<'_> {
    let mut p = Parsed { idi: None, idr: None, certs: vec![], auth: None, cp: None, sa: None, tsi: None, tsr: None };
    for x in pl {
        match x {
            Payload::IdI(i) => p.idi = Some(i),
            Payload::IdR(i) => p.idr = Some(i),
            Payload::Cert { encoding, data } if *encoding == CertEncoding::X509_SIGNATURE => p.certs.push(data),
            Payload::Auth { method, data } => p.auth = Some((*method, data)),
            Payload::Cp(c) => p.cp = Some(c),
            Payload::Sa(s) => p.sa = Some(s),
            Payload::TsI(t) => p.tsi = Some(t),
            Payload::TsR(t) => p.tsr = Some(t),
            _ => {}
        }
    }
    p
}

/// Checks the peer's AUTH payload against the connection's `remote_auth`.
#[allow(clippy::too_many_arguments)]
fn verify_peer(
    sa: &IkeSa,
    ctx: &Ctx<'_>,
    conn: &Connection,
    id: &Identification,
    certs: &[&[u8]],
    method: AuthMethod,
    data: &[u8],
    peer_message: &[u8],
    our_nonce: &[u8],
) -> Result<(), String> {
    // The peer signs its first message, our nonce and prf(SK_p, its ID) (§2.15).
    let sk_p = if sa.initiator { &sa.keys.sk_pr } else { &sa.keys.sk_pi };
    let octets = auth::signed_octets(peer_message, our_nonce, ctx.p, sa.suite.prf, sk_p, id);
    match &conn.remote_auth {
        RemoteAuth::Psk(psk) => {
            if method != AuthMethod::SHARED_KEY {
                return Err(format!("the peer used auth method {}, the connection wants a PSK", method.0));
            }
            auth::verify_psk(ctx.p, sa.suite.prf, psk, &octets, data).map_err(|e| e.to_string())
        }
        RemoteAuth::Pubkey(trust) => {
            if method == AuthMethod::SHARED_KEY {
                return Err("the peer used a PSK, the connection wants a certificate".into());
            }
            let chain: Vec<Certificate> = certs
                .iter()
                .map(|c| Certificate::from_der(c).map_err(|e| format!("peer certificate: {e}")))
                .collect::<Result<_, _>>()?;
            let (ee, rest) = chain.split_first().ok_or("the peer sent no certificate")?;
            let peer = trust.verify(ee, rest, ctx.unix).map_err(|e| format!("certificate: {e}"))?;
            if !peer.matches(id) {
                return Err(format!(
                    "the certificate of '{}' does not vouch for the identity '{}'",
                    ee.subject_display(),
                    identity::display_identity(id)
                ));
            }
            auth::verify_auth(peer.public_key(), method, data, &octets).map_err(|e| e.to_string())
        }
    }
}

/// Our IDx, [CERT…] and AUTH payloads.
fn our_auth(
    sa: &IkeSa,
    ctx: &Ctx<'_>,
    conn: &Connection,
    our_message: &[u8],
    peer_nonce: &[u8],
) -> Result<Vec<Payload>, String> {
    let sk_p = if sa.initiator { &sa.keys.sk_pi } else { &sa.keys.sk_pr };
    let octets = auth::signed_octets(our_message, peer_nonce, ctx.p, sa.suite.prf, sk_p, &conn.local_id);
    let id = if sa.initiator { Payload::IdI(conn.local_id.clone()) } else { Payload::IdR(conn.local_id.clone()) };
    let mut v = vec![id];
    match &conn.local_auth {
        LocalAuth::Psk(psk) => {
            v.push(Payload::Auth {
                method: AuthMethod::SHARED_KEY,
                data: auth::psk_auth(ctx.p, sa.suite.prf, psk, &octets),
            });
        }
        LocalAuth::Pubkey { key, certs } => {
            for c in certs {
                v.push(Payload::Cert { encoding: CertEncoding::X509_SIGNATURE, data: c.der().to_vec() });
            }
            let (method, data) = auth::sign_auth(key, &sa.peer_hashes, &octets).map_err(|e| e.to_string())?;
            v.push(Payload::Auth { method, data });
        }
    }
    Ok(v)
}

fn method_fits(conn: &Connection, method: AuthMethod) -> bool {
    match conn.remote_auth {
        RemoteAuth::Psk(_) => method == AuthMethod::SHARED_KEY,
        RemoteAuth::Pubkey(_) => method != AuthMethod::SHARED_KEY,
    }
}

fn jittered(ctx: &Ctx<'_>, rekey: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return rekey;
    }
    rekey.saturating_sub(Duration::from_millis(ctx.random_u64() % jitter.as_millis().max(1) as u64))
}

/// Marks the SA established: timers, events.
pub(crate) fn established(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    sa.state = SaState::Established;
    sa.init_req.clear();
    sa.init_resp.clear();
    if let Some(c) = sa.connection(ctx.cfg) {
        let lt = c.ike_lifetime;
        sa.rekey_at = (!lt.rekey.is_zero()).then(|| ctx.now + jittered(ctx, lt.rekey, lt.jitter));
        sa.expire_at = (!lt.hard.is_zero()).then(|| ctx.now + lt.hard);
    }
    ctx.stats.ike_established += 1;
    let e = Event::IkeEstablished {
        spi: sa.spi,
        connection: sa.connection(ctx.cfg).map(|c| c.name.clone()).unwrap_or_default(),
        peer: sa.remote,
        id: sa.peer.as_ref().map(|p| identity::display_identity(&p.id)).unwrap_or_default(),
        vips: sa.vips.clone(),
        took: ctx.now.saturating_duration_since(sa.created),
    };
    ctx.event(e);
}

/// Virtual IPs and DNS for a CFG_REQUEST (RFC 7296 §3.15.1).
fn config_reply(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    conn: &Connection,
    req: &ConfigPayload,
    id: &str,
    initial_contact: bool,
) -> (Vec<ConfigAttribute>, bool) {
    let mut attrs = Vec::new();
    let mut failed = false;
    let wants = |k: ConfigAttributeType| req.attributes.iter().find(|a| a.kind == k);
    for (kind, v4) in
        [(ConfigAttributeType::INTERNAL_IP4_ADDRESS, true), (ConfigAttributeType::INTERNAL_IP6_ADDRESS, false)]
    {
        let Some(a) = wants(kind) else { continue };
        let requested: Option<IpAddr> = match (v4, a.value.len()) {
            (true, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(&a.value[..4]).unwrap_or_default())),
            (false, 17) => Some(IpAddr::from(<[u8; 16]>::try_from(&a.value[..16]).unwrap_or_default())),
            _ => None,
        };
        let mut got = None;
        for &pi in &conn.pools {
            let Some(pool) = ctx.pools.get_mut(pi) else { continue };
            if pool.is_ipv4() != v4 {
                continue;
            }
            if initial_contact {
                // The peer's old IKE SAs are about to go (RFC 7296 §2.4): its address with them.
                pool.reclaim(id);
            }
            if let Some(addr) = pool.acquire(sa.spi, id, requested) {
                got = Some(addr);
                break;
            }
        }
        match got {
            Some(IpAddr::V4(a)) => {
                attrs.push(ConfigAttribute { kind, value: a.octets().to_vec() });
                sa.vips.push(IpAddr::V4(a));
            }
            Some(IpAddr::V6(a)) => {
                let mut v = a.octets().to_vec();
                v.push(128);
                attrs.push(ConfigAttribute { kind, value: v });
                sa.vips.push(IpAddr::V6(a));
            }
            // Only an IPv4 failure is fatal when IPv6 was also asked for and given (and vice
            // versa): the peer gets what we have.
            None => failed = true,
        }
    }
    if !sa.vips.is_empty() {
        failed = false;
    }
    for d in &conn.dns {
        let (kind, ok) = match d {
            IpAddr::V4(_) => (ConfigAttributeType::INTERNAL_IP4_DNS, sa.vips.iter().any(IpAddr::is_ipv4)),
            IpAddr::V6(_) => (ConfigAttributeType::INTERNAL_IP6_DNS, sa.vips.iter().any(IpAddr::is_ipv6)),
        };
        if ok {
            let value = match d {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            attrs.push(ConfigAttribute { kind, value });
        }
    }
    (attrs, failed)
}

/// Responder: the IKE_AUTH request with message ID `id`.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, id: u32, pl: &[Payload]) -> Vec<Effect> {
    let fail = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, kind: NotifyType, reason: String| {
        ctx.stats.auth_failed += u64::from(kind == NotifyType::AUTHENTICATION_FAILED);
        ctx.stats.ike_failed += 1;
        ctx.event(Event::AuthFailed { peer: sa.remote, reason });
        sa.send_response(ctx, ExchangeType::IKE_AUTH, id, &[notify(kind, vec![])]);
        sa.teardown(ctx, CloseReason::Failed);
        vec![Effect::Gone(sa.spi)]
    };
    let p = parse(pl);
    let Some(idi) = p.idi else {
        return fail(sa, ctx, NotifyType::INVALID_SYNTAX, "IKE_AUTH without IDi".into());
    };
    let Some((method, auth_data)) = p.auth else {
        return fail(sa, ctx, NotifyType::AUTHENTICATION_FAILED, "EAP authentication is not supported".into());
    };
    // The first candidate connection the peer fits: its claimed identity, the identity it
    // wants us to have, and its authentication method.
    let chosen = sa.candidates.iter().copied().find(|&i| {
        let c = &ctx.cfg.connections[i];
        c.remote_id.matches(idi)
            && p.idr.is_none_or(|r| identity::same_identity(r, &c.local_id))
            && method_fits(c, method)
    });
    let Some(ci) = chosen else {
        let who = identity::display_identity(idi);
        return fail(
            sa,
            ctx,
            NotifyType::AUTHENTICATION_FAILED,
            format!("no connection admits '{who}' with auth method {}", method.0),
        );
    };
    let conn = ctx.cfg.connections[ci].clone();
    let (init_req, nr) = (sa.init_req.clone(), sa.nr.clone());
    if let Err(reason) = verify_peer(sa, ctx, &conn, idi, &p.certs, method, auth_data, &init_req, &nr) {
        let who = identity::display_identity(idi);
        return fail(sa, ctx, NotifyType::AUTHENTICATION_FAILED, format!("'{who}': {reason}"));
    }
    let proof = PeerAuthenticated::new_after_verification(idi.clone());
    sa.conn = Some(ci);
    let (init_resp, ni) = (sa.init_resp.clone(), sa.ni.clone());
    let mut reply = match our_auth(sa, ctx, &conn, &init_resp, &ni) {
        Ok(v) => v,
        Err(reason) => return fail(sa, ctx, NotifyType::AUTHENTICATION_FAILED, format!("signing our AUTH: {reason}")),
    };
    let who = identity::display_identity(idi);
    let mut child_ok = true;
    let initial_contact = has_notify(pl, NotifyType::INITIAL_CONTACT);
    if let Some(cp) = p.cp.filter(|c| c.kind == ConfigType::REQUEST) {
        let (attrs, failed) = config_reply(sa, ctx, &conn, cp, &who, initial_contact);
        if failed {
            reply.push(notify(NotifyType::INTERNAL_ADDRESS_FAILURE, vec![]));
            child_ok = false;
        } else if !attrs.is_empty() {
            reply.push(Payload::Cp(ConfigPayload { kind: ConfigType::REPLY, attributes: attrs }));
        }
    }
    sa.peer = Some(proof.clone());
    let mut effects = Vec::new();
    if initial_contact {
        effects.push(Effect::InitialContact { id: idi.clone(), connection: ci, keep: sa.spi });
    }
    if child_ok {
        if let (Some(props), Some(tsi), Some(tsr)) = (p.sa, p.tsi, p.tsr) {
            reply.extend(first_child(sa, ctx, &proof, &conn, props, tsi, tsr));
        }
    }
    sa.send_response(ctx, ExchangeType::IKE_AUTH, id, &reply);
    established(sa, ctx);
    effects
}

/// The traffic selectors the peer's side may have: its virtual IPs, else the connection's
/// remote selectors, else its own outer address.
pub(crate) fn remote_allowed(sa: &IkeSa, conn: &Connection) -> Vec<TrafficSelector> {
    if !sa.vips.is_empty() {
        return sa.vips.iter().map(|a| ts::host(*a)).collect();
    }
    if !conn.remote_ts.is_empty() {
        return conn.remote_ts.clone();
    }
    vec![ts::host(sa.remote.ip())]
}

/// Responder: the CHILD SA of IKE_AUTH; the payloads to answer with (SA, TSi, TSr, or an
/// error notify — the IKE SA stands either way).
fn first_child(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    proof: &PeerAuthenticated,
    conn: &Connection,
    props: &[crate::message::Proposal],
    tsi: &[TrafficSelector],
    tsr: &[TrafficSelector],
) -> Vec<Payload> {
    let Some(choice) = proposal::select_esp(&conn.esp_proposals, props, false) else {
        ctx.event(Event::Refused {
            peer: sa.remote,
            exchange: ExchangeType::IKE_AUTH,
            notify: NotifyType::NO_PROPOSAL_CHOSEN.0,
            reason: "no ESP proposal in common".into(),
        });
        return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, vec![])];
    };
    let tsi_n = ts::narrow(tsi, &remote_allowed(sa, conn));
    let tsr_n = ts::narrow(tsr, &conn.local_ts);
    if tsi_n.is_empty() || tsr_n.is_empty() {
        ctx.event(Event::Refused {
            peer: sa.remote,
            exchange: ExchangeType::IKE_AUTH,
            notify: NotifyType::TS_UNACCEPTABLE.0,
            reason: "traffic selectors outside the connection's".into(),
        });
        return vec![notify(NotifyType::TS_UNACCEPTABLE, vec![])];
    }
    let Some(spi_in) = new_child(sa, ctx, proof, &choice, None, tsr_n.clone(), tsi_n.clone(), false, None, true) else {
        return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, vec![])];
    };
    vec![Payload::Sa(vec![proposal::esp_reply(&choice, spi_in)]), Payload::TsI(tsi_n), Payload::TsR(tsr_n)]
}

/// Derives a CHILD SA's keys (RFC 7296 §2.17) and installs it; our inbound SPI.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_child(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    proof: &PeerAuthenticated,
    choice: &EspChoice,
    g_ir: Option<&[u8]>,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    we_initiated: bool,
    given_spi_in: Option<u32>,
    route: bool,
) -> Option<u32> {
    let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
    new_child_with_nonces(
        sa,
        ctx,
        proof,
        choice,
        g_ir,
        local_ts,
        remote_ts,
        we_initiated,
        given_spi_in,
        route,
        (ni, nr),
        None,
    )
}

/// As [`new_child`], with the exchange's own nonces (CREATE_CHILD_SA).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_child_with_nonces(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    proof: &PeerAuthenticated,
    choice: &EspChoice,
    g_ir: Option<&[u8]>,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    we_initiated: bool,
    given_spi_in: Option<u32>,
    route: bool,
    nonces: (Vec<u8>, Vec<u8>),
    rekey_of: Option<u64>,
) -> Option<u32> {
    let len = keys::child_keymat_len(choice.transform);
    let km = keys::child_keymat(ctx.p, sa.suite.prf, &sa.keys.sk_d, g_ir, &nonces.0, &nonces.1, len).ok()?;
    let ck = keys::try_split_child_keymat(choice.transform, &km).ok()?;
    let spi_in = given_spi_in.unwrap_or_else(|| sa.new_spi_in(ctx, |_| false));
    sa.install_child(
        ctx,
        proof,
        we_initiated,
        choice.transform,
        choice.esn,
        spi_in,
        choice.peer_spi,
        &ck,
        local_ts,
        remote_ts,
        nonces,
        route,
        rekey_of,
    );
    Some(spi_in)
}

/// Initiator: sends IKE_AUTH (after IKE_SA_INIT).
pub(crate) fn send_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return };
    let opts = sa.init_opts.as_deref().cloned().unwrap_or_default();
    let (init_req, nr) = (sa.init_req.clone(), sa.nr.clone());
    let Ok(mut pl) = our_auth(sa, ctx, &conn, &init_req, &nr) else { return };
    // IDr goes right after IDi (and CERTs) only if we know exactly whom we want.
    if opts.initial_contact {
        pl.push(notify(NotifyType::INITIAL_CONTACT, vec![]));
    }
    if opts.request_vip {
        pl.push(Payload::Cp(ConfigPayload {
            kind: ConfigType::REQUEST,
            attributes: vec![
                ConfigAttribute { kind: ConfigAttributeType::INTERNAL_IP4_ADDRESS, value: vec![] },
                ConfigAttribute { kind: ConfigAttributeType::INTERNAL_IP4_DNS, value: vec![] },
            ],
        }));
    }
    let spi_in = sa.new_spi_in(ctx, |_| false);
    pl.push(Payload::Sa(
        conn.esp_proposals.iter().enumerate().flat_map(|(i, e)| e.to_wire(i as u8 * 2 + 1, spi_in, false)).collect(),
    ));
    let tsi = if opts.request_vip {
        vec![ts::from_cidr(
            esprit_wire::IpCidr::new(IpAddr::from([0u8, 0, 0, 0]), 0)
                .unwrap_or_else(|_| esprit_wire::IpCidr::host(IpAddr::from([0u8, 0, 0, 0]))),
        )]
    } else {
        opts.local_ts.clone()
    };
    let tsr = opts.remote_ts.clone();
    pl.push(Payload::TsI(tsi.clone()));
    pl.push(Payload::TsR(tsr.clone()));
    sa.state = SaState::AuthSent;
    sa.send_request(
        ctx,
        ExchangeType::IKE_AUTH,
        &pl,
        Task::Auth(Box::new(AuthSent { spi_in, proposed_tsi: tsi, proposed_tsr: tsr })),
    );
}

/// Initiator: the IKE_AUTH response. False: the SA failed.
pub(crate) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, sent: AuthSent, pl: &[Payload]) -> bool {
    if let Some(e) = crate::sa::error_notify(pl).filter(|e| {
        matches!(
            *e,
            NotifyType::AUTHENTICATION_FAILED | NotifyType::INVALID_SYNTAX | NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD
        )
    }) {
        ctx.event(Event::AuthFailed { peer: sa.remote, reason: format!("the responder answered notify {}", e.0) });
        return false;
    }
    let p = parse(pl);
    let (Some(idr), Some((method, data))) = (p.idr, p.auth) else { return false };
    let Some(conn) = sa.connection(ctx.cfg).cloned() else { return false };
    if !conn.remote_id.matches(idr) {
        ctx.event(Event::AuthFailed {
            peer: sa.remote,
            reason: format!("responder identity '{}' not accepted", identity::display_identity(idr)),
        });
        return false;
    }
    let (init_resp, ni) = (sa.init_resp.clone(), sa.ni.clone());
    if let Err(reason) = verify_peer(sa, ctx, &conn, idr, &p.certs, method, data, &init_resp, &ni) {
        ctx.event(Event::AuthFailed { peer: sa.remote, reason });
        return false;
    }
    let proof = PeerAuthenticated::new_after_verification(idr.clone());
    sa.peer = Some(proof.clone());
    if let Some(cp) = p.cp.filter(|c| c.kind == ConfigType::REPLY) {
        for a in &cp.attributes {
            match (a.kind, a.value.len()) {
                (ConfigAttributeType::INTERNAL_IP4_ADDRESS, 4) => {
                    sa.vips.push(IpAddr::from(<[u8; 4]>::try_from(&a.value[..]).unwrap_or_default()))
                }
                (ConfigAttributeType::INTERNAL_IP6_ADDRESS, 17) => {
                    sa.vips.push(IpAddr::from(<[u8; 16]>::try_from(&a.value[..16]).unwrap_or_default()))
                }
                _ => {}
            }
        }
    }
    if let (Some(props), Some(tsi), Some(tsr)) = (p.sa, p.tsi, p.tsr) {
        let ok_ts = ts::within(tsr, &sent.proposed_tsr)
            && (sa.vips.is_empty()
                || tsi.iter().all(|t| sa.vips.iter().any(|v| t.contains_addr(*v)))
                || ts::within(tsi, &sent.proposed_tsi));
        if let (Some(choice), true) = (proposal::accept_esp(&conn.esp_proposals, props, false), ok_ts) {
            new_child(sa, ctx, &proof, &choice, None, tsi.clone(), tsr.clone(), true, Some(sent.spi_in), true);
        }
    }
    established(sa, ctx);
    true
}
