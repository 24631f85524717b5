//! The exchanges of RFC 7296 between our initiator and our responder, in memory, with
//! simulated time and network: each test is a message diagram, and asserts which SAs end up
//! installed on each side — and that ESP sealed by one side's data plane opens on the other's.
#![allow(clippy::unwrap_used)]

mod pair;

use std::time::Duration;

use esprit_ikev2::message::ExchangeType;
use esprit_ikev2::Event;
use pair::*;

const SA_INIT: u8 = 34;
const AUTH: u8 = 35;
const CREATE_CHILD: u8 = 36;
const INFO: u8 = 37;

/// Both sides have exactly one pair, the mirror image of each other, and ESP flows both ways.
fn assert_one_working_pair(p: &Pair) -> (u64, u64) {
    assert_eq!(p.init_dp.children.len(), 1, "initiator: {:?}", p.init_dp.children.keys());
    assert_eq!(p.resp_dp.children.len(), 1, "responder: {:?}", p.resp_dp.children.keys());
    let i = p.init_dp.children.values().next().unwrap();
    let r = peer_of(&p.resp_dp, i).expect("the responder's pair mirrors the initiator's");
    let vip = match i.local_ts[0].start {
        std::net::IpAddr::V4(a) => a.to_string(),
        _ => panic!("an IPv4 virtual IP"),
    };
    let up = inner(&vip, "10.1.0.5", b"hello gateway");
    assert_eq!(esp_round_trip(i, r, &up).unwrap(), up, "client -> gateway");
    let down = inner("10.1.0.5", &vip, b"hello client");
    assert_eq!(esp_round_trip(r, i, &down).unwrap(), down, "gateway -> client");
    assert!(p.init_dp.routes_valid() && p.resp_dp.routes_valid(), "no policy points at a missing pair");
    assert!(!p.resp_dp.routes.is_empty() && p.resp_dp.routes.values().all(|c| *c == r.cookie));
    assert!(!p.init_dp.routes.is_empty() && p.init_dp.routes.values().all(|c| *c == i.cookie));
    (i.cookie, r.cookie)
}

/// ```text
/// Initiator (behind a NAT)                        Responder
/// HDR(0), SAi1, KEi, Ni, N(NAT_D)x2, N(FRAG)  -->
///                                             <-- HDR(0), SAr1, KEr, Nr, N(NAT_D)x2, N(FRAG)
/// HDR(1) @4500, SK{IDi, AUTH, CP(REQ), SAi2, TSi, TSr}  -->
///                                             <-- HDR(1), SK{IDr, AUTH, CP(REPLY), SAr2, TSi, TSr}
/// ```
#[test]
fn psk_road_warrior_gets_a_virtual_ip_and_a_pair() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    assert_eq!(
        p.exchanges(),
        [(true, SA_INIT, false), (false, SA_INIT, true), (true, AUTH, false), (false, AUTH, true)]
    );
    // The initiator floated to 4500 (a NAT was detected); the responder answers there.
    let auth = &p.delivered[2];
    assert_eq!((auth.from.port(), auth.to.port()), (p.nat_ports.1, 4500));
    let (ic, rc) = assert_one_working_pair(&p);
    let i = &p.init_dp.children[&ic];
    let r = &p.resp_dp.children[&rc];
    assert!(i.encap && r.encap, "UDP encapsulation behind a NAT");
    assert_eq!(r.remote, sock(&format!("{NAT_PUBLIC_IP}:{}", p.nat_ports.1)), "to the NAT mapping");
    assert_eq!(i.local_ts, vec![esprit_ikev2::ts::host("10.9.0.1".parse().unwrap())], "narrowed to the virtual IP");
    assert_eq!(r.local_ts, vec![esprit_ikev2::ts::from_cidr("10.1.0.0/16".parse().unwrap())]);
    assert_eq!(r.policies.len(), 1);
    assert_eq!(r.policies[0].1.to_string(), "10.9.0.1/32");
    let established: Vec<_> = p.resp_events.iter().filter(|e| matches!(e, Event::IkeEstablished { .. })).collect();
    assert_eq!(established.len(), 1);
    if let Event::IkeEstablished { id, vips, .. } = established[0] {
        assert_eq!(id, "alice@example.com");
        assert_eq!(vips, &vec!["10.9.0.1".parse::<std::net::IpAddr>().unwrap()]);
    }
}

#[test]
fn wrong_psk_installs_nothing() {
    let mut ic = initiator_conn();
    ic.local_auth = esprit_ikev2::config::LocalAuth::Psk(psk("wrong"));
    let mut p = Pair::new(config(ic, &[]), config(responder_conn(), &[("rw", "10.9.0.0/24")]));
    p.start(vip_options());
    p.settle();
    assert!(p.resp_dp.children.is_empty() && p.init_dp.children.is_empty());
    assert!(p.resp_events.iter().any(|e| matches!(e, Event::AuthFailed { .. })));
    assert_eq!(p.resp.ike_sa_count(), 0, "the failed SA is gone");
    assert_eq!(p.resp.pool_usage()[0].1, 0, "no address leased");
}

/// An address whose authentications keep failing is blocked for the rest of the window:
/// its IKE_SA_INIT requests are ignored (counted, not answered), the operator is told once,
/// and once the window has passed it may try again.
#[test]
fn repeated_authentication_failures_block_the_address() {
    let mut ic = initiator_conn();
    ic.local_auth = esprit_ikev2::config::LocalAuth::Psk(psk("wrong"));
    let mut rc = config(responder_conn(), &[("rw", "10.9.0.0/24")]);
    rc.auth_failure_limit = 3;
    rc.auth_failure_window = Duration::from_secs(60);
    let mut p = Pair::new(config(ic, &[]), rc);
    for _ in 0..3 {
        p.start(vip_options());
        p.settle();
    }
    assert_eq!(p.resp.stats.auth_failed, 3);
    let blocked: Vec<_> = p.resp_events.iter().filter(|e| matches!(e, Event::AddressBlocked { .. })).collect();
    assert!(
        matches!(blocked[..], [Event::AddressBlocked { failures: 3, secs, .. }] if *secs > 0 && *secs <= 60),
        "{blocked:?}"
    );
    let answered = p.delivered.iter().filter(|m| !m.to_responder).count();
    p.start(vip_options());
    p.run_for(Duration::from_secs(2));
    assert!(p.resp.stats.rx_blocked >= 1, "{:?}", p.resp.stats);
    assert_eq!(p.delivered.iter().filter(|m| !m.to_responder).count(), answered, "a blocked address gets no answer");
    assert_eq!(p.resp.stats.auth_failed, 3);
    // The window passes: the address may try again (and fails, counted again).
    p.run_for(Duration::from_secs(70));
    p.start(vip_options());
    p.settle();
    assert_eq!(p.resp.stats.auth_failed, 4);
    assert_eq!(p.resp.ike_sa_count(), 0);
}

/// Clients connecting and leaving, with no timer ever coming due: the timer entries of the
/// SAs that are gone do not pile up (they used to stay until their rekey time, hours later:
/// the soak's resident memory grew by 300 KiB per 1000 clients' cycle).
#[test]
fn timer_entries_of_gone_sas_do_not_pile_up() {
    let mut p = Pair::standard();
    let mut most = 0;
    for _ in 0..600 {
        let spi = p.start(vip_options());
        p.settle();
        assert_eq!(p.resp.ike_sa_count(), 1);
        p.init.terminate(p.now, spi);
        p.settle();
        assert_eq!(p.resp.ike_sa_count(), 0);
        most = most.max(p.resp.timer_entries());
    }
    assert!(most <= 1024 + 4, "{most} timer entries for at most one IKE SA");
}

/// The IKE_AUTH response is lost: the initiator retransmits, the responder answers from its
/// cache (not a second pair, not a second address).
#[test]
fn lost_response_is_retransmitted_from_cache() {
    let mut p = Pair::standard();
    let mut dropped = 0;
    p.drop = Box::new(move |m| {
        let auth_resp = !m.to_responder
            && esprit_ikev2::message::decode(&m.data).is_ok_and(|d| d.header.exchange == ExchangeType::IKE_AUTH);
        if auth_resp && dropped == 0 {
            dropped += 1;
            return true;
        }
        false
    });
    p.start(vip_options());
    p.run_for(Duration::from_secs(5));
    assert_one_working_pair(&p);
    assert_eq!(p.resp.stats.rx_retransmits, 1);
    assert_eq!(p.init.stats.tx_retransmits, 1);
    assert_eq!(p.resp.pool_usage()[0].1, 1);
}

/// Under load the responder wants a cookie (RFC 7296 §2.6):
/// ```text
/// HDR(0), SAi1, KEi, Ni  -->
///                        <-- HDR(0), N(COOKIE)
/// HDR(0), N(COOKIE), SAi1, KEi, Ni  -->
///                        <-- HDR(0), SAr1, KEr, Nr
/// ```
#[test]
fn cookie_round_trip() {
    let mut rc = config(responder_conn(), &[("rw", "10.9.0.0/24")]);
    rc.cookie_threshold = 0;
    let mut p = Pair::new(config(initiator_conn(), &[]), rc);
    p.start(vip_options());
    p.settle();
    assert_eq!(p.resp.stats.cookies_sent, 1);
    assert_eq!(
        p.exchanges()[..4],
        [(true, SA_INIT, false), (false, SA_INIT, true), (true, SA_INIT, false), (false, SA_INIT, true)]
    );
    assert_one_working_pair(&p);
}

/// The initiator guesses x25519; the responder only does ecp256 (RFC 7296 §1.2):
/// ```text
/// HDR(0), SAi1, KEi(31), Ni  -->
///                            <-- HDR(0), N(INVALID_KE_PAYLOAD, 19)
/// HDR(0), SAi1, KEi(19), Ni  -->
/// ```
#[test]
fn invalid_ke_payload_retry() {
    let mut ic = initiator_conn();
    ic.ike_proposals = ike_props("aes128gcm16-prfsha256-x25519-ecp256");
    let mut rcn = responder_conn();
    rcn.ike_proposals = ike_props("aes128gcm16-prfsha256-ecp256");
    let mut p = Pair::new(config(ic, &[]), config(rcn, &[("rw", "10.9.0.0/24")]));
    p.start(vip_options());
    p.settle();
    assert_eq!(p.exchanges().iter().filter(|e| e.1 == SA_INIT).count(), 4);
    assert_one_working_pair(&p);
}

/// Two clients behind one NAT, with the same identity: each its own address and pair.
#[test]
fn two_clients_behind_one_nat_get_distinct_addresses() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    // A second client: another source port on the NAT's public address.
    let second = sock("192.168.1.11:500");
    let mut second_init = esprit_ikev2::Endpoint::new(
        std::sync::Arc::new(config(initiator_conn(), &[])),
        esprit_ikev2::crypto::default_provider(),
        p.now,
        1_900_000_000,
    )
    .unwrap();
    let mut opts = vip_options();
    opts.initial_contact = false;
    second_init.initiate(p.now, 0, second, sock(GATEWAY), opts).unwrap();
    // Route its datagrams by hand through "NAT ports" 2024/2025.
    for _ in 0..20 {
        while let Some(o) = second_init.poll_output() {
            if let esprit_ikev2::Output::Send(d) = o {
                let port = if d.local.port() == 500 { 2024 } else { 2025 };
                p.resp.handle_datagram(p.now, d.remote, sock(&format!("{NAT_PUBLIC_IP}:{port}")), &d.data);
            }
        }
        while let Some(o) = p.resp.poll_output() {
            p.resp_dp_apply(&o);
            if let esprit_ikev2::Output::Send(d) = o {
                let to = if d.remote.port() == 2024 {
                    sock("192.168.1.11:500")
                } else if d.remote.port() == 2025 {
                    sock("192.168.1.11:4500")
                } else {
                    continue;
                };
                second_init.handle_datagram(p.now, to, d.local, &d.data);
            }
        }
    }
    assert_eq!(p.resp_dp.children.len(), 2);
    let vips: std::collections::BTreeSet<String> =
        p.resp_dp.children.values().map(|c| c.policies[0].1.to_string()).collect();
    assert_eq!(vips.len(), 2, "distinct virtual IPs: {vips:?}");
    assert_eq!(p.resp.pool_usage()[0].1, 2);
}

/// CHILD SA rekey (RFC 7296 §1.3.3), make-before-break:
/// ```text
/// HDR(2), SK{N(REKEY_SA), SA, Ni, TSi, TSr}  -->
///                                            <-- HDR(2), SK{SA, Nr, TSi, TSr}
/// HDR(3), SK{D(ESP, old)}                    -->
///                                            <-- HDR(3), SK{D(ESP, old)}
/// ```
#[test]
fn child_rekey_replaces_the_pair() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    let (old_i, old_r) = assert_one_working_pair(&p);
    assert!(p.init.rekey_child(p.now, old_i));
    p.settle();
    let (new_i, new_r) = assert_one_working_pair(&p);
    assert_ne!((new_i, new_r), (old_i, old_r));
    let tail: Vec<_> = p.exchanges()[4..].to_vec();
    assert_eq!(
        tail,
        [(true, CREATE_CHILD, false), (false, CREATE_CHILD, true), (true, INFO, false), (false, INFO, true)]
    );
    assert!(p.resp_dp.removed.contains(&old_r) && p.init_dp.removed.contains(&old_i));
}

/// Both sides rekey the same CHILD SA at once (RFC 7296 §2.8.1): both exchanges complete,
/// the pair made with the lowest nonce is deleted by its maker, the old pair by the other.
/// Whoever wins, one working pair remains on each side and no policy is left dangling.
#[test]
fn simultaneous_child_rekey() {
    for round in 0..8 {
        let mut p = Pair::standard();
        p.start(vip_options());
        p.settle();
        let (ci, cr) = assert_one_working_pair(&p);
        // Both requests leave before either arrives.
        assert!(p.init.rekey_child(p.now, ci));
        assert!(p.resp.rekey_child(p.now, cr));
        p.collect();
        p.run_for(Duration::from_secs(10));
        assert_one_working_pair(&p);
        let _ = round;
    }
}

/// IKE SA rekey (RFC 7296 §1.3.2): the children move to the new IKE SA, the old one is
/// deleted; traffic and later exchanges use the new SA.
#[test]
fn ike_rekey_keeps_the_children() {
    let mut p = Pair::standard();
    let spi = p.start(vip_options());
    p.settle();
    let before = assert_one_working_pair(&p);
    assert!(p.init.rekey_ike(p.now, spi));
    p.run_for(Duration::from_secs(1));
    assert_eq!(assert_one_working_pair(&p), before, "the same pairs, under the new IKE SA");
    assert_eq!(p.init.ike_sa_count(), 1);
    assert_eq!(p.resp.ike_sa_count(), 1);
    let new = p.init.list()[0].clone();
    assert_ne!(new.spi_i, spi);
    assert_eq!(p.resp.list()[0].spi_i, new.spi_i);
    assert_eq!(p.resp.pool_usage()[0].1, 1, "the lease moved with the children");
    // The new IKE SA works: rekey the child through it.
    let (ci, _) = before;
    assert!(p.init.rekey_child(p.now, ci));
    p.settle();
    assert_one_working_pair(&p);
}

/// Both sides rekey the IKE SA at once (RFC 7296 §2.8.2): one new IKE SA survives on both
/// sides, with the children.
#[test]
fn simultaneous_ike_rekey() {
    for _ in 0..8 {
        let mut p = Pair::standard();
        let spi = p.start(vip_options());
        p.settle();
        let before = assert_one_working_pair(&p);
        let rspi = p.resp.list()[0].spi_r;
        assert!(p.init.rekey_ike(p.now, spi));
        assert!(p.resp.rekey_ike(p.now, rspi));
        p.collect();
        p.run_for(Duration::from_secs(90));
        assert_eq!(assert_one_working_pair(&p), before);
        let (i, r) = (p.init.list(), p.resp.list());
        assert_eq!((i.len(), r.len()), (1, 1), "one IKE SA each: {i:?} {r:?}");
        assert_eq!((i[0].spi_i, i[0].spi_r), (r[0].spi_i, r[0].spi_r));
        assert_eq!(i[0].children.len(), 1);
        assert_eq!(r[0].children.len(), 1);
    }
}

/// The client vanishes: its inbound pair goes idle, a liveness check goes unanswered, and
/// the responder removes the IKE SA, the pair and the lease.
#[test]
fn dead_peer_is_removed() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    let (_, rc) = assert_one_working_pair(&p);
    p.drop = Box::new(|_| true);
    p.now += Duration::from_secs(31);
    p.resp.handle_child_event(p.now, rc, esprit_ikev2::ChildEvent::Idle(31));
    p.collect();
    p.run_for(Duration::from_secs(60));
    assert!(p.resp_dp.children.is_empty(), "the pair is removed");
    assert_eq!(p.resp.ike_sa_count(), 0);
    assert_eq!(p.resp.pool_usage()[0].1, 0);
    assert!(p.resp.stats.dpd_sent >= 1 && p.resp.stats.peers_dead == 1);
}

/// A liveness check that is answered keeps everything.
#[test]
fn live_peer_answers_dpd() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    let (_, rc) = assert_one_working_pair(&p);
    p.now += Duration::from_secs(31);
    p.resp.handle_child_event(p.now, rc, esprit_ikev2::ChildEvent::Idle(31));
    p.collect();
    p.run_for(Duration::from_secs(5));
    assert_one_working_pair(&p);
    assert_eq!(p.resp.stats.dpd_sent, 1);
    let tail: Vec<_> = p.exchanges()[4..].to_vec();
    assert_eq!(tail, [(false, INFO, false), (true, INFO, true)]);
}

/// The NAT rebinds: the data plane sees authenticated ESP from a new port; the IKE SA follows
/// it, so the next exchange goes to the new mapping.
#[test]
fn nat_rebinding_is_followed() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    let (_, rc) = assert_one_working_pair(&p);
    p.nat_ports = (3000, 3001);
    let new = sock(&format!("{NAT_PUBLIC_IP}:3001"));
    p.resp.handle_child_event(p.now, rc, esprit_ikev2::ChildEvent::NatMappingChanged(new));
    p.collect();
    assert_eq!(p.resp_dp.peer_updates.last(), Some(&(rc, new)));
    assert_eq!(p.resp.list()[0].remote, new);
    // A liveness check reaches the client at its new mapping.
    p.now += Duration::from_secs(31);
    p.resp.handle_child_event(p.now, rc, esprit_ikev2::ChildEvent::Idle(31));
    p.collect();
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.delivered.last().map(|m| m.to_responder), Some(true), "the client answered");
    assert_eq!(p.resp.stats.peers_dead, 0);
}

/// The client deletes its IKE SA: everything goes on both sides.
#[test]
fn delete_ike_sa() {
    let mut p = Pair::standard();
    let spi = p.start(vip_options());
    p.settle();
    assert_one_working_pair(&p);
    assert!(p.init.terminate(p.now, spi));
    p.settle();
    assert!(p.init_dp.children.is_empty() && p.resp_dp.children.is_empty());
    assert_eq!((p.init.ike_sa_count(), p.resp.ike_sa_count()), (0, 0));
    assert!(p.resp_dp.routes.is_empty());
}

/// A reconnecting client with INITIAL_CONTACT replaces its old IKE SA (RFC 7296 §2.4) and
/// keeps its address.
#[test]
fn initial_contact_replaces_old_sas() {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    assert_one_working_pair(&p);
    // The client restarts: a new initiator, same identity, INITIAL_CONTACT.
    p.init = esprit_ikev2::Endpoint::new(
        std::sync::Arc::new(config(initiator_conn(), &[])),
        esprit_ikev2::crypto::default_provider(),
        p.now,
        1_900_000_000,
    )
    .unwrap();
    p.init_dp = DataPlane::default();
    p.nat_ports = (4000, 4001);
    p.start(vip_options());
    p.settle();
    assert_eq!(p.resp.ike_sa_count(), 1);
    let (_, rc) = assert_one_working_pair(&p);
    assert_eq!(p.resp_dp.children[&rc].policies[0].1.to_string(), "10.9.0.1/32", "the same address again");
}

/// While the responder traces a peer, each encrypted message it receives or sends is also
/// output in the clear: the same header (SPIs, exchange, message ID), the inner payloads in
/// place of SK; and `trace_keys` gives the keys that decrypt the wire messages. A peer out of
/// scope is not shown.
#[test]
fn a_trace_shows_encrypted_messages_in_the_clear() {
    use esprit_ikev2::message::{self, Payload, PayloadType};
    use esprit_ikev2::TraceScope;

    let mut p = Pair::standard();
    p.resp.set_trace(TraceScope::Peer("192.0.2.99".parse().unwrap()));
    p.start(vip_options());
    p.settle();
    assert!(p.resp_decrypted.is_empty(), "another peer is out of scope");

    let mut p = Pair::standard();
    p.resp.set_trace(TraceScope::Peer(NAT_PUBLIC_IP.parse().unwrap()));
    p.start(vip_options());
    p.settle();
    assert_one_working_pair(&p);
    let clear: Vec<_> = p.resp_decrypted.iter().map(|(i, d)| (*i, message::decode(&d.data).unwrap())).collect();
    assert_eq!(clear.len(), 2, "IKE_AUTH request and response");
    let (inbound, req) = &clear[0];
    assert!(*inbound && req.encrypted.is_none());
    assert_eq!((req.header.exchange.0, req.header.response), (AUTH, false));
    assert!(req.payloads.iter().any(|x| matches!(x, Payload::IdI(_))));
    assert!(req.payloads.iter().any(|x| matches!(x, Payload::Auth { .. })));
    let (inbound, resp) = &clear[1];
    assert!(!*inbound && resp.payloads.iter().any(|x| matches!(x, Payload::Cp(_))));
    assert_eq!(resp.header.next_payload, PayloadType::IDR);

    // The same messages on the wire: same header but SK, and the keys to open them.
    let wire = p.delivered.iter().find(|m| m.to_responder && message::decode(&m.data).unwrap().encrypted.is_some());
    let wire = message::decode(&wire.unwrap().data).unwrap();
    assert_eq!((wire.header.spi_i, wire.header.spi_r, wire.header.message_id), (req.header.spi_i, req.header.spi_r, 1));
    let k = p.resp.trace_keys(req.header.spi_i, req.header.spi_r).expect("keys of the traced SA");
    assert_eq!((k.sk_ei.len(), k.sk_ai.len()), (k.sk_er.len(), k.sk_ar.len()));
    assert!(!k.sk_ei.is_empty());
    assert!(p.resp.trace_keys(req.header.spi_r, req.header.spi_i).is_none(), "SPIs in their order only");
}
