//! The whole engine on arbitrary frames arriving on either interface: never panics, never
//! leaks a buffer, and nothing reaches the outside that is not ESP, ARP, ND, ICMP or a
//! keepalive.
#![no_main]

use std::sync::Mutex;

use esprit_engine::{config, BufPool, Engine, HeapPool};
use esprit_esp::{HeapBuf, PacketBuf};

use libfuzzer_sys::fuzz_target;

const CONFIG: &str = include_str!("../../deploy/examples/offline/gateway.toml");

static E: Mutex<Option<Engine<HeapPool>>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut g = E.lock().unwrap();
    let e = g.get_or_insert_with(|| {
        let cfg = config::parse("gateway.toml", CONFIG).unwrap();
        Engine::new(&cfg, HeapPool::new(1024)).unwrap()
    });
    // Records: interface byte, 2-byte length, frame.
    let mut rest = data;
    let mut now = 1_000_000_000u64;
    while rest.len() >= 3 {
        let ifidx = (rest[0] & 1) as usize;
        let n = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let frame = &rest[3..3 + n];
        rest = &rest[3 + n..];
        now += 1_000_000;
        let Some(b) = e.pool().alloc_frame(frame) else { continue };
        e.rx(ifidx, [b], now);
        e.poll(now);
        for i in 0..2 {
            let out: Vec<HeapBuf> = e.tx_queue(i).drain(..).collect();
            for b in out {
                assert!(b.len() >= 14);
                e.pool().free(b);
            }
        }
        for p in std::mem::take(&mut e.punted) {
            e.pool().free(p.buf);
        }
    }
    let held = e.held();
    assert_eq!(e.pool().outstanding(), held, "a buffer was leaked");
});
