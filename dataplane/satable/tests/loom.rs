//! Model check of the publish / retire protocol with loom: a reader racing an insert, a
//! replace and a remove sees the old value, the new value or nothing — never freed memory.
//! Run: RUSTFLAGS="--cfg crossbeam_loom" cargo test -p esprit-satable --features loom --release --test loom
#![cfg(crossbeam_loom)]
#![allow(clippy::unwrap_used)]

use esprit_satable::HashTable;
use loom::sync::Arc;

#[test]
fn reader_races_writer() {
    loom::model(|| {
        let collector = crossbeam_epoch::Collector::new();
        let (t, mut w) = HashTable::<u32, Box<u64>>::new(4);
        let c2 = collector.clone();
        let t2 = t.clone();
        let reader = loom::thread::spawn(move || {
            let h = c2.register();
            let g = h.pin();
            if let Some(v) = t2.get(&7, &g) {
                assert!(**v == 1 || **v == 2);
            }
        });
        let h = collector.register();
        {
            let g = h.pin();
            w.insert(7, Box::new(1), &g).unwrap();
        }
        {
            let g = h.pin();
            w.insert(7, Box::new(2), &g).unwrap();
        }
        {
            let g = h.pin();
            w.remove(&7, &g);
        }
        reader.join().unwrap();
        drop(w);
        let _ = Arc::new(());
    });
}
