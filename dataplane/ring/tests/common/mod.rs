//! Helpers shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use esprit_ring::message::*;

/// A unique file under /dev/shm, removed on drop.
pub struct ShmFile(pub PathBuf);

impl ShmFile {
    pub fn new(what: &str) -> ShmFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = PathBuf::from(format!("/dev/shm/esprit-test-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        ShmFile(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// SplitMix64: a small deterministic generator for sizes and contents.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Payload size for message `seq`: mostly small, sometimes a few KiB, rarely a full
/// 64 KiB datagram.
pub fn size_for(seq: u64) -> usize {
    let r = Rng(seq).next();
    match r % 1000 {
        0 => 60_000 + (r >> 20) as usize % 5536,
        1..=50 => 1000 + (r >> 20) as usize % 8000,
        _ => 8 + (r >> 20) as usize % 600,
    }
}

/// A Transmit whose payload encodes `seq` and a pattern derived from it.
pub fn numbered(seq: u64) -> Message {
    let n = size_for(seq).max(8);
    let mut payload = Vec::with_capacity(n);
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend((8..n).map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8)));
    Message::Transmit(Transmit {
        src: Endpoint { addr: "192.0.2.1".parse().unwrap(), port: 4500 },
        dst: Endpoint { addr: "198.51.100.7".parse().unwrap(), port: (seq % 65_536) as u16 },
        non_esp_marker: seq % 2 == 0,
        payload,
    })
}

/// The sequence number of a message made by [`numbered`], after checking all of it.
pub fn check_numbered(m: &Message) -> u64 {
    let Message::Transmit(t) = m else { panic!("not a numbered message: {m:?}") };
    let seq = u64::from_le_bytes(t.payload[..8].try_into().unwrap());
    assert_eq!(m, &numbered(seq), "message {seq} damaged");
    seq
}

/// A punt (data → control) numbered the same way.
pub fn numbered_punt(seq: u64) -> Message {
    let Message::Transmit(t) = numbered(seq) else { unreachable!() };
    Message::Punt(Punt {
        src: t.dst,
        dst: t.src,
        interface: IfName::new("outside").unwrap(),
        had_marker: t.non_esp_marker,
        payload: t.payload,
    })
}
