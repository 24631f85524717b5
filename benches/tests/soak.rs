//! A short soak (`esprit-pktgen soak` runs the long one): clients connect, pass traffic both
//! ways through the data plane, rekey their CHILD and IKE SAs, pass traffic again and
//! disconnect, cycle after cycle; nothing is left behind and every packet is accounted for.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use esprit_benches::soak;

#[test]
fn clients_connect_rekey_and_disconnect_cycle_after_cycle() {
    let s = soak::run(20, Duration::ZERO, 3).unwrap();
    assert_eq!(s.cycles, 1);
    let s = soak::run(20, Duration::from_millis(1500), 3).unwrap();
    let c = u64::from(s.cycles);
    assert!(c >= 2, "{s:?}");
    assert_eq!((s.setups, s.child_rekeys, s.ike_rekeys, s.disconnects), (20 * c, 20 * c, 20 * c, 20 * c), "{s:?}");
    // 3 packets each way per client, before and after the rekeys.
    assert_eq!(s.offered, 20 * c * 3 * 2 * 2);
    assert_eq!((s.forwarded, s.dropped, s.opened), (s.offered, 0, s.offered / 2));
    assert_eq!(s.rss_kib.len(), s.cycles as usize);
}
