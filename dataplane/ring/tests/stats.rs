//! The stats segment within one process.

// Under `--cfg loom` only the ring protocol is built (the shared mapping is not modelled).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use esprit_ring::stats::*;

fn layout(lcores: usize) -> StatsLayout {
    StatsLayout {
        lcores,
        counters: vec!["rx_packets".into(), "tx_packets".into(), "drop.replay".into()],
        sa_counters: vec!["packets".into(), "bytes".into()],
        max_sa: 1000,
    }
}

#[test]
fn writers_per_lcore_reader_concurrent() {
    let f = ShmFile::new("stats-mt");
    let mut w = StatsWriter::create(f.path(), &layout(4)).unwrap();
    let rx = w.counter("rx_packets").unwrap();
    let bytes = w.sa_counter("bytes").unwrap();
    assert!(w.counter("nope").is_none());
    let lcores: Vec<LcoreStats> = (0..4).map(|i| w.take_lcore(i).unwrap()).collect();
    assert!(w.take_lcore(0).is_none(), "one writer per lcore");
    assert!(w.take_lcore(4).is_none());

    let r = StatsReader::open(f.path()).unwrap();
    assert_eq!(r.counter_names(), &["rx_packets", "tx_packets", "drop.replay"]);
    assert_eq!(r.sa_counter_names(), &["packets", "bytes"]);
    assert_eq!((r.lcores(), r.max_sa(), r.epoch()), (4, 1000, 1));
    let (rrx, rbytes) = (r.counter("rx_packets").unwrap(), r.sa_counter("bytes").unwrap());

    const N: u64 = 1_000_000;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let path = f.path().to_owned();
        std::thread::spawn(move || {
            let r = StatsReader::open(&path).unwrap();
            let mut last = [0; 4];
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                for (l, last) in last.iter_mut().enumerate() {
                    let v = r.get(l, rrx);
                    assert!(v >= *last, "counter went backwards");
                    *last = v;
                }
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = lcores
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            std::thread::spawn(move || {
                for _ in 0..N {
                    l.inc(rx);
                    l.sa_add(i as u32 * 7, bytes, 100);
                }
                l.sa_add(1000, bytes, 1); // out of range: ignored
                l.add(CounterId(99), 1); // another layout's id: ignored
                l
            })
        })
        .collect();
    let lcores: Vec<LcoreStats> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(r.total(rrx), 4 * N);
    for l in 0..4 {
        assert_eq!(r.get(l, rrx), N);
        assert_eq!(r.sa_get(l, l as u32 * 7, rbytes), 100 * N);
    }
    assert_eq!(r.sa_total(7, rbytes), 100 * N);
    assert_eq!(r.get(9, rrx), 0);
    assert_eq!(r.sa_get(0, 1000, rbytes), 0);
    lcores[1].sa_clear(7);
    assert_eq!(r.sa_total(7, rbytes), 0);
    let snap = r.snapshot();
    assert_eq!(snap.epoch, 1);
    assert_eq!(
        snap.counters,
        vec![("rx_packets".to_string(), 4 * N), ("tx_packets".to_string(), 0), ("drop.replay".to_string(), 0)]
    );
    assert!(r.writer_alive());
}

#[test]
fn layouts_are_validated() {
    let f = ShmFile::new("stats-bad");
    let mut l = layout(1);
    l.counters.push("Rx".into());
    assert!(matches!(StatsWriter::create(f.path(), &l), Err(StatsError::BadName { .. })));
    let mut l = layout(1);
    l.counters.push("rx_packets".into());
    let e = StatsWriter::create(f.path(), &l).unwrap_err();
    assert!(e.to_string().contains("rx_packets"), "{e}");
    let mut l = layout(0);
    assert!(matches!(StatsWriter::create(f.path(), &l), Err(StatsError::TooLarge { .. })));
    l.lcores = 1024;
    l.max_sa = 1 << 24;
    l.sa_counters = (0..64).map(|i| format!("c{i}")).collect();
    assert!(matches!(StatsWriter::create(f.path(), &l), Err(StatsError::TooLarge { .. })));
    assert!(!f.path().exists());
}

#[test]
fn restart_supersedes() {
    let f = ShmFile::new("stats-restart");
    let mut w = StatsWriter::create(f.path(), &layout(1)).unwrap();
    let l = w.take_lcore(0).unwrap();
    l.add(w.counter("tx_packets").unwrap(), 5);
    let r = StatsReader::open(f.path()).unwrap();
    assert!(matches!(StatsWriter::create(f.path(), &layout(1)), Err(StatsError::WriterBusy { .. })));
    assert_eq!(r.status(), ReaderStatus::Live);
    drop(l);
    drop(w);
    let w2 = StatsWriter::create(f.path(), &layout(2)).unwrap();
    assert_eq!(w2.epoch(), 2);
    assert_eq!(r.status(), ReaderStatus::Superseded);
    // The old mapping still reads the last values.
    assert_eq!(r.total(r.counter("tx_packets").unwrap()), 5);
    let r2 = StatsReader::open(f.path()).unwrap();
    assert_eq!((r2.epoch(), r2.lcores()), (2, 2));
    assert_eq!(r2.total(r2.counter("tx_packets").unwrap()), 0);
    // Removed by hand: also seen.
    std::fs::remove_file(f.path()).unwrap();
    assert_eq!(r2.status(), ReaderStatus::Superseded);
}

#[test]
fn damaged_segments_are_refused() {
    let f = ShmFile::new("stats-damaged");
    std::fs::write(f.path(), [0u8; 10]).unwrap();
    assert!(matches!(StatsReader::open(f.path()), Err(StatsError::Corrupt { .. })));
    std::fs::write(f.path(), [0x55u8; 8192]).unwrap();
    assert!(matches!(StatsReader::open(f.path()), Err(StatsError::NotStats { .. })));
    std::fs::remove_file(f.path()).unwrap();
    drop(StatsWriter::create(f.path(), &layout(1)).unwrap());
    let poke = |off: u64, v: &[u8]| {
        let file = OpenOptions::new().write(true).open(f.path()).unwrap();
        file.write_all_at(v, off).unwrap();
    };
    let good = std::fs::read(f.path()).unwrap();
    // Every 8-byte header field, and the names, set to garbage: refused or read safely.
    let mut rng = Rng(1);
    for off in (0..256 + 64).step_by(8) {
        for v in [u64::MAX, 0, 1 << 40, rng.next()] {
            std::fs::write(f.path(), &good).unwrap();
            poke(off, &v.to_le_bytes());
            if let Ok(r) = StatsReader::open(f.path()) {
                let _ = r.snapshot();
                let _ = r.sa_total(0, SaCounterId(0));
            }
        }
    }
    std::fs::write(f.path(), &good).unwrap();
    poke(8, &2u64.to_le_bytes());
    let e = StatsReader::open(f.path()).unwrap_err();
    assert!(matches!(e, StatsError::Version { theirs: 2, .. }), "{e}");
}
