//! Hostile ESP mixed into valid traffic (`esprit-pktgen junk`): every valid packet comes
//! out, and every junk packet is counted under its own drop reason — nothing else dropped.
#![allow(clippy::unwrap_used)]

use esprit_benches::junk::{self, Junk};
use esprit_benches::measure::Traffic;
use esprit_benches::scenario;
use esprit_esp::Transform;

#[test]
fn junk_is_counted_by_kind_and_valid_traffic_all_comes_out() {
    for t in [Transform::Aes128Gcm16, Transform::Aes128Sha1] {
        let n = 5;
        let (_control, sh) = junk::gateway(t, n).unwrap();
        let sizes = scenario::sizes("imix", t).unwrap();
        let valid = Traffic::new(t, n, &sizes, true);
        let clean = junk::run(&sh, &valid, &[], 0, 0.02).unwrap();
        assert!(clean.valid > 0 && clean.junk == 0 && clean.drops.is_empty(), "{clean:?}");
        for kind in Junk::ALL {
            let frames = junk::frames(kind, t, n, &valid, 256);
            if kind == Junk::Replayed {
                // Not junk yet: the SA accepts each of them once (prime fails otherwise).
                junk::prime(&sh, &frames).unwrap();
                assert!(junk::prime(&sh, &frames[..32]).is_err(), "the second time they are replays");
            }
            let m = junk::run(&sh, &valid, &frames, 16, 0.02).unwrap();
            assert!(m.valid > 0 && m.junk > 0 && m.junk_total >= m.junk, "{m:?}");
            assert_eq!(m.drops, [(kind.reason(), m.junk_total)], "{t:?} {}", kind.name());
        }
    }
}
