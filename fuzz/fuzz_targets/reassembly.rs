//! The reassembler fed arbitrary fragment sequences: never panics, memory stays bounded,
//! and anything it completes is a well-formed IP packet.
#![no_main]

use std::sync::Mutex;

use esprit_esp::reasm::{ReasmConfig, Reassembler};
use libfuzzer_sys::fuzz_target;

static R: Mutex<Option<Reassembler>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut g = R.lock().unwrap();
    let r = g.get_or_insert_with(|| Reassembler::new(ReasmConfig { slots: 8, max_datagram: 4096, timeout_ns: 1000 }));
    // Input: a sequence of (2-byte length, packet) records; the clock ticks per record.
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 2 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let pkt = &rest[2..2 + n];
        rest = &rest[2 + n..];
        now += 100;
        if let Ok(Some(whole)) = r.push(pkt, now) {
            match whole[0] >> 4 {
                4 => assert!(esprit_wire::ipv4::Packet::new_checked(whole).is_ok()),
                6 => assert!(esprit_wire::ipv6::Packet::new_checked(whole).is_ok()),
                v => panic!("version {v}"),
            }
        }
        assert!(r.in_progress() <= 8);
    }
    r.expire(u64::MAX);
});
