//! Readers on other threads while the writer inserts, replaces and removes: a reader sees an
//! entry whole or not at all, never a freed one (run under Miri or ASan to see the latter
//! checked by the tools as well).
#![cfg(not(crossbeam_loom))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use esprit_satable::{epoch, HashTable};

/// A value whose two halves must always agree.
struct Pair(u64, u64);

#[test]
fn readers_never_see_torn_or_freed_values() {
    let (t, mut w) = HashTable::<u32, Pair>::new(1024);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let t = &t;
            let stop = &stop;
            s.spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = epoch::pin();
                    for k in 0..1024u32 {
                        if let Some(p) = t.get(&k, &g) {
                            assert_eq!(p.0, p.1 ^ 0xdead_beef, "torn value");
                            assert_eq!(p.0 >> 32, k as u64, "value of another key");
                            seen += 1;
                        }
                    }
                }
                assert!(seen > 0);
            });
        }
        for round in 0..200u64 {
            let g = epoch::pin();
            for k in 0..1024u32 {
                let v = (k as u64) << 32 | round;
                match (k as u64 + round) % 3 {
                    0 => {
                        w.remove(&k, &g);
                    }
                    _ => w.insert(k, Pair(v, v ^ 0xdead_beef), &g).unwrap(),
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}
