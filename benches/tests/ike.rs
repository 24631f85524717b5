//! The IKE setup harness both ways — datagrams handed over in memory, and over UDP on
//! loopback — completes every setup it starts, and counts cycles for both sides.
#![allow(clippy::unwrap_used)]

use esprit_benches::ike;

#[test]
fn in_memory_setups_all_complete() {
    let s = ike::run(150, 40).unwrap();
    assert_eq!(s.completed, 150);
    assert!(s.responder_cycles > 0 && s.initiator_cycles > 0, "{s:?}");
}

#[test]
fn loopback_setups_all_complete() {
    let s = ike::run_loopback(150, 16).unwrap();
    assert_eq!(s.completed, 150);
    assert!(s.responder_cycles > 0 && s.initiator_cycles > 0, "{s:?}");
    assert!(s.wall.as_nanos() > 0);
}
