//! A responder killed and started again from its checkpoints (what esprit-ike does after a
//! kill -9): the client notices nothing — the same IKE SA, the same pairs, message IDs in
//! step — including exchanges that were under way when it died.
#![allow(clippy::unwrap_used)]

mod pair;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use esprit_ikev2::config::IkeConfig;
use esprit_ikev2::crypto::default_provider;
use esprit_ikev2::message::ExchangeType;
use esprit_ikev2::{ChildInstall, Endpoint};
use pair::*;

const UNIX0: i64 = 1_900_000_000;

/// What a journal holds: the last checkpoint of each kept IKE SA.
#[derive(Default)]
struct Journal(BTreeMap<u64, Vec<u8>>);

impl Journal {
    fn write(&mut self, ep: &mut Endpoint, now: Instant) {
        for (spi, c) in ep.take_checkpoints(now) {
            match c {
                Some(b) => self.0.insert(spi, b.to_vec()),
                None => self.0.remove(&spi),
            };
        }
    }
}

/// Both sides have exactly one pair, mirror images, and ESP passes both ways.
fn assert_one_working_pair(p: &Pair) -> (u64, u64) {
    assert_eq!(p.init_dp.children.len(), 1, "initiator: {:?}", p.init_dp.children.keys());
    assert_eq!(p.resp_dp.children.len(), 1, "responder: {:?}", p.resp_dp.children.keys());
    let i = p.init_dp.children.values().next().unwrap();
    let r = peer_of(&p.resp_dp, i).expect("the responder's pair mirrors the initiator's");
    let vip = i.local_ts[0].start.to_string();
    let up = inner(&vip, "10.1.0.5", b"up");
    assert_eq!(esp_round_trip(i, r, &up).unwrap(), up);
    let down = inner("10.1.0.5", &vip, b"down");
    assert_eq!(esp_round_trip(r, i, &down).unwrap(), down);
    assert!(p.resp_dp.routes_valid() && p.init_dp.routes_valid());
    (i.cookie, r.cookie)
}

fn pair(esp: &[&str]) -> (Pair, Instant) {
    let mut r = responder_conn();
    r.esp_proposals = esp_props(esp);
    let mut i = initiator_conn();
    i.esp_proposals = esp_props(esp);
    let mut p = Pair::new(config(i, &[]), config(r, &[("rw", "10.9.0.0/24")]));
    p.resp.enable_checkpoints();
    let t0 = p.now;
    (p, t0)
}

/// Kills the responder (its outputs not collected yet are lost with it) and starts a new
/// one with `cfg` from the journal, as esprit-ike does.
fn restart(p: &mut Pair, t0: Instant, journal: &mut Journal, cfg: Arc<IkeConfig>) -> esprit_ikev2::endpoint::Restored {
    journal.write(&mut p.resp, p.now);
    let unix = UNIX0 + p.now.duration_since(t0).as_secs() as i64;
    let mut ep = Endpoint::new(cfg, default_provider(), p.now, unix).unwrap();
    ep.enable_checkpoints();
    let cps: Vec<Vec<u8>> = journal.0.values().cloned().collect();
    let r = ep.restore(p.now, &cps, p.resp.last_cookie()).unwrap();
    p.resp = ep;
    r
}

fn installed(ep: &Endpoint) -> BTreeMap<u64, ChildInstall> {
    ep.installed().into_iter().map(|c| (c.cookie, c)).collect()
}

/// Established, restarted: the same IKE SA and pairs as the data plane holds; then the
/// client rekeys its CHILD SA and the IKE SA through the restarted responder, and the
/// responder rekeys the new pair itself.
#[test]
fn a_restarted_responder_carries_on_with_the_same_sas() {
    let (mut p, t0) = pair(&["aes128gcm16"]);
    let spi = p.start(vip_options());
    p.settle();
    let before = assert_one_working_pair(&p);
    let mut j = Journal::default();
    p.run_for(Duration::from_secs(5));
    let listed = p.resp.list();
    let cfg = p.resp.config().clone();
    let r = restart(&mut p, t0, &mut j, cfg);
    assert_eq!((r.ike_sas, r.child_sas, r.deleted), (1, 1, 0));
    assert!(r.lost_leases.is_empty());
    assert_eq!(p.resp.list(), listed, "the same IKE SA, children and virtual IP");
    assert_eq!(installed(&p.resp), p.resp_dp.children, "what the data plane holds, keys included");
    assert_eq!(p.resp.pool_usage()[0].1, 1, "the lease came back");
    assert_eq!(assert_one_working_pair(&p), before);

    assert!(p.init.rekey_child(p.now, before.0));
    p.settle();
    let (ci, cr) = assert_one_working_pair(&p);
    assert_ne!(ci, before.0);
    assert!(cr > before.1, "cookies continue after the restored ones");
    assert!(p.resp.rekey_child(p.now, cr));
    p.settle();
    let (ci, cr) = assert_one_working_pair(&p);
    assert!(p.init.rekey_ike(p.now, spi));
    p.run_for(Duration::from_secs(1));
    assert_eq!(assert_one_working_pair(&p), (ci, cr));
    assert_eq!((p.init.ike_sa_count(), p.resp.ike_sa_count()), (1, 1));
    // The journal follows: what it holds restores to the same state again.
    let listed = p.resp.list();
    let cfg = p.resp.config().clone();
    restart(&mut p, t0, &mut j, cfg);
    assert_eq!(p.resp.list(), listed);
    assert_eq!(p.resp.pool_usage()[0].1, 1);
}

/// The responder had asked to rekey a pair, or the IKE SA, when it died: its request
/// (nonce, DH value) is in the checkpoint, so the restarted responder completes the
/// exchange when the answer comes — with and without PFS.
#[test]
fn a_rekey_under_way_at_the_crash_completes_after_the_restart() {
    for esp in ["aes128gcm16", "aes128gcm16-x25519"] {
        let (mut p, t0) = pair(&[esp]);
        p.start(vip_options());
        p.settle();
        let (ci, cr) = assert_one_working_pair(&p);
        let mut j = Journal::default();
        assert!(p.resp.rekey_child(p.now, cr));
        p.collect(); // the request leaves...
        let cfg = p.resp.config().clone();
        restart(&mut p, t0, &mut j, cfg); // ... and the responder dies
        p.settle();
        let (ni, nr) = assert_one_working_pair(&p);
        assert!(ni != ci && nr != cr, "{esp}: the rekey completed");
        assert!(p.resp_dp.removed.contains(&cr), "{esp}: the old pair is gone");

        let rspi = p.resp.list()[0].spi_r;
        assert!(p.resp.rekey_ike(p.now, rspi));
        p.collect();
        let cfg = p.resp.config().clone();
        restart(&mut p, t0, &mut j, cfg);
        p.run_for(Duration::from_secs(1));
        assert_eq!(assert_one_working_pair(&p), (ni, nr), "{esp}: the pairs moved to the new IKE SA");
        let (i, r) = (p.init.list(), p.resp.list());
        assert_eq!((i.len(), r.len()), (1, 1), "{esp}: {i:?} {r:?}");
        assert_eq!((i[0].spi_i, i[0].spi_r), (r[0].spi_i, r[0].spi_r));
        assert_ne!(r[0].spi_r, rspi, "{esp}: the rekeyed IKE SA");
    }
}

/// The responder answered the client's CHILD rekey and died before the answer left: the
/// checkpoint holds the answer and the new pair; the client's retransmission gets the same
/// answer (not a second pair), and the data plane is given the pair it never got.
#[test]
fn an_answer_lost_in_the_crash_is_sent_again() {
    let (mut p, t0) = pair(&["aes128gcm16"]);
    p.start(vip_options());
    p.settle();
    let (ci, _) = assert_one_working_pair(&p);
    let mut j = Journal::default();
    assert!(p.init.rekey_child(p.now, ci));
    p.collect();
    let req = p.net.pop_front().unwrap();
    p.resp.handle_datagram(p.now, req.to, req.from, &req.data);
    // Journalled, then killed before anything left: the answer and the Install are lost.
    journal_then_lose_outputs(&mut p, &mut j);
    let cfg = p.resp.config().clone();
    restart(&mut p, t0, &mut j, cfg);
    // The restarted daemon gives the data plane what it does not have (here: by hand).
    for c in p.resp.installed() {
        if !p.resp_dp.children.contains_key(&c.cookie) {
            p.resp_dp_apply(&esprit_ikev2::Output::Install(Box::new(c)));
        }
    }
    p.run_for(Duration::from_secs(10));
    assert_one_working_pair(&p);
    assert_eq!(p.resp.stats.rx_retransmits, 1, "answered from the checkpoint's last response");
    let creates = p.exchanges().iter().filter(|e| e.1 == ExchangeType::CREATE_CHILD_SA.0).count();
    assert_eq!(creates, 2, "one request (seen twice: the original was taken off the wire) and one answer");
}

fn journal_then_lose_outputs(p: &mut Pair, j: &mut Journal) {
    j.write(&mut p.resp, p.now);
    while p.resp.poll_output().is_some() {}
}

/// The restarted responder's configuration no longer has the connection: the IKE SA is
/// deleted with the client told, as a reload would.
#[test]
fn an_sa_whose_connection_is_gone_is_deleted_with_the_peer_told() {
    let (mut p, t0) = pair(&["aes128gcm16"]);
    p.start(vip_options());
    p.settle();
    assert_one_working_pair(&p);
    let mut j = Journal::default();
    let mut conn = responder_conn();
    conn.name = "other".into();
    let r = restart(&mut p, t0, &mut j, Arc::new(config(conn, &[("rw", "10.9.0.0/24")])));
    assert_eq!(r.deleted, 1);
    p.run_for(Duration::from_secs(5));
    assert_eq!((p.init.ike_sa_count(), p.resp.ike_sa_count()), (0, 0));
    assert!(p.resp_dp.children.is_empty() && p.init_dp.children.is_empty());
}

/// A damaged checkpoint is an error naming what was wrong, at every length, never a panic;
/// nothing is restored then.
#[test]
fn a_damaged_checkpoint_is_refused() {
    let (mut p, _) = pair(&["aes128gcm16"]);
    p.start(vip_options());
    p.settle();
    let mut j = Journal::default();
    j.write(&mut p.resp, p.now);
    let good = j.0.values().next().unwrap().clone();
    let cfg = p.resp.config().clone();
    let fresh = || Endpoint::new(cfg.clone(), default_provider(), p.now, UNIX0).unwrap();
    for n in 0..good.len() {
        let mut ep = fresh();
        let e = ep.restore(p.now, &[good[..n].to_vec()], 0).unwrap_err();
        assert!(e.to_string().starts_with("IKE SA checkpoint: "), "{e}");
        assert_eq!(ep.ike_sa_count(), 0);
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(fresh().restore(p.now, &[longer], 0).unwrap_err().to_string().contains("after the end"));
    let mut v2 = good.clone();
    v2[4] = 2;
    assert!(fresh().restore(p.now, &[v2], 0).unwrap_err().to_string().contains("version 2"));
    assert!(fresh().restore(p.now, &[good.clone(), good], 0).unwrap_err().to_string().contains("two checkpoints"));
}

/// A Diffie-Hellman private value exported into a checkpoint comes back as the same secret:
/// the same public value, the same shared secret with a peer — every group.
#[test]
fn a_dh_value_survives_its_checkpoint() {
    use esprit_ikev2::crypto::DhGroup;
    let p = default_provider();
    for g in DhGroup::ALL {
        let (ours, peer) = (p.dh_generate(g).unwrap(), p.dh_generate(g).unwrap());
        let back = p.dh_restore(g, &ours.private().unwrap()).unwrap();
        assert_eq!(back.public(), ours.public(), "{g:?}");
        assert_eq!(*back.agree(peer.public()).unwrap(), *peer.agree(ours.public()).unwrap(), "{g:?}");
    }
}
