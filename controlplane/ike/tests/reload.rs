//! A new configuration applied to a responder with established SAs.
#![allow(clippy::unwrap_used)]

mod pair;

use std::sync::Arc;

use pair::*;

fn established() -> Pair {
    let mut p = Pair::standard();
    p.start(vip_options());
    p.settle();
    assert_eq!(p.resp.ike_sa_count(), 1);
    p
}

#[test]
fn established_sas_survive_a_reload_that_keeps_their_connection() {
    let mut p = established();
    let mut cfg = config(responder_conn(), &[("other", "10.8.0.0/24"), ("rw", "10.9.0.0/24")]);
    cfg.connections[0].pools = vec![1];
    let mut extra = responder_conn();
    extra.name = "site".into();
    cfg.connections.insert(0, extra);
    assert_eq!(p.resp.set_config(p.now, Arc::new(cfg)), Ok(0));
    assert_eq!(p.resp.ike_sa_count(), 1);
    assert_eq!(p.resp.list()[0].connection.as_deref(), Some("rw"), "matched by name, not position");
    assert_eq!(p.resp.pool_usage()[1], ("rw".to_string(), 1, 254), "the lease carried over");
    // The SA still works under the new configuration: a CHILD rekey.
    let c = *p.init_dp.children.keys().next().unwrap();
    assert!(p.init.rekey_child(p.now, c));
    p.settle();
    assert_eq!(p.resp_dp.children.len(), 1);
    assert!(!p.resp_dp.children.contains_key(&1), "rekeyed");
}

#[test]
fn a_removed_connection_takes_its_sas_with_it() {
    let mut p = established();
    let mut conn = responder_conn();
    conn.name = "renamed".into();
    let cfg = config(conn, &[("rw", "10.9.0.0/24")]);
    assert_eq!(p.resp.set_config(p.now, Arc::new(cfg)), Ok(1));
    p.settle();
    assert_eq!((p.resp.ike_sa_count(), p.init.ike_sa_count()), (0, 0), "deleted, and the peer was told");
    assert!(p.resp_dp.children.is_empty());
}

#[test]
fn a_pool_with_leases_cannot_change_under_them() {
    let mut p = established();
    let before = p.resp.config().clone();
    let cfg = config(responder_conn(), &[("rw", "10.7.0.0/24")]);
    let e = p.resp.set_config(p.now, Arc::new(cfg)).unwrap_err();
    assert!(e.contains("pool 'rw' (10.9.0.0/24) changed or went away while 1 of its addresses are leased"), "{e}");
    assert!(Arc::ptr_eq(p.resp.config(), &before), "the old configuration stays");
    assert_eq!(p.resp.pool_usage(), [("rw".to_string(), 1, 254)]);
    assert_eq!(p.resp.ike_sa_count(), 1);
}
