//! The harness behind `esprit-pktgen table` and `install` works end to end (the figures
//! themselves are for benches/README.md, not asserted): every frame is forwarded, the raw
//! cipher opens what the client sealed, and every SA sent through the rings is applied.
#![allow(clippy::unwrap_used)]

use esprit_benches::measure::{self, Traffic};
use esprit_benches::{install, scenario};
use esprit_esp::crypto::default_provider;
use esprit_esp::Transform;

#[test]
fn pipeline_and_raw_crypto_measure_both_directions() {
    for t in [Transform::Aes128Gcm16, Transform::Aes128Sha1] {
        let (_control, sh) = measure::gateway(t, 3).unwrap();
        let sizes = scenario::sizes("imix", t).unwrap();
        for inbound in [true, false] {
            let tr = Traffic::new(t, 3, &sizes, inbound);
            let per = measure::pipeline_threads(&sh, &tr, 0.02, 2).unwrap();
            assert_eq!(per.len(), 2);
            assert!(per.iter().all(|f| f.packets > 0 && f.cycles > 0 && f.inner_bytes > 0), "{per:?}");
            let raw = measure::raw(t, default_provider(t), &sizes, inbound, 0.02).unwrap();
            assert!(raw.packets > 0 && raw.cycles > 0, "{raw:?}");
        }
    }
}

#[test]
fn every_sa_sent_through_the_rings_is_applied() {
    let r = install::run(Transform::Aes128Gcm16, 1000).unwrap();
    assert_eq!((r.sas, r.refused), (2000, 0));
    assert!(r.per_second() > 0.0);
}
