//! Encapsulation and decapsulation end to end, over every transform, IPv4 and IPv6 inside
//! and outside, with and without UDP encapsulation.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use esprit_esp::crypto::{CryptoOp, OpStatus};
use esprit_esp::sa::{Decapped, Endpoint, Lifetime, OutboundSa};
use esprit_esp::{DropReason, HeapBuf, PacketBuf, Transform};
use esprit_wire::{ipv4, ipv6, udp};

/// Seals `inner` with `out` and returns the outer packet.
fn seal(out: &OutboundSa, inner: &[u8]) -> Vec<u8> {
    let mut b = [HeapBuf::from_slice(inner)];
    let mut r = [Err(DropReason::NoBuffer)];
    out.encap_burst(&mut b, &mut r, 1);
    r[0].unwrap();
    b[0].data().to_vec()
}

fn open(sa: &esprit_esp::sa::InboundSa, outer: &[u8]) -> (Result<Decapped, DropReason>, Vec<u8>) {
    let m = meta_of(outer);
    let mut b = [HeapBuf::from_slice(outer)];
    let mut r = [Err(DropReason::NoBuffer)];
    sa.decap_burst(&mut b, &[m], &mut r, 1);
    (r[0], b[0].data().to_vec())
}

#[test]
fn round_trip_every_combination() {
    for t in Transform::ALL {
        for v6_outer in [false, true] {
            for udp in [false, true] {
                let p = params(t, v6_outer, udp, 0x1000_0001);
                let (tx, rx) = (client_out(&p), gw_in(&p));
                for v6_inner in [false, true] {
                    for len in [48usize, 49, 63, 64, 65, 500, 1280, 1400] {
                        let pkt = inner(v6_inner, len, len as u8);
                        let outer = seal(&tx, &pkt);
                        // The outer header is well formed and sized exactly.
                        assert_eq!(outer.len() - pkt.len(), tx.overhead(pkt.len()), "{t} overhead");
                        if v6_outer {
                            let o = ipv6::Packet::new_checked(&outer[..]).unwrap();
                            assert_eq!(o.total_len(), outer.len());
                            assert_eq!(o.next_header(), if udp { 17 } else { 50 });
                            assert_eq!(o.traffic_class(), 0x28, "DSCP/ECN copied");
                            if udp {
                                let u = udp::Packet::new_checked(o.payload()).unwrap();
                                assert!(
                                    u.verify_checksum(o.src_addr().into(), o.dst_addr().into()),
                                    "IPv6 UDP checksum"
                                );
                                assert_eq!((u.src_port(), u.dst_port()), (34567, 4500));
                            }
                        } else {
                            let o = ipv4::Packet::new_checked(&outer[..]).unwrap();
                            assert!(o.verify_checksum());
                            assert_eq!(o.total_len() as usize, outer.len());
                            assert_eq!(o.protocol(), if udp { 17 } else { 50 });
                            assert_eq!(o.tos(), 0x28);
                            assert!(o.dont_frag(), "DF copied from the inner IPv4 packet, set for IPv6");
                            if udp {
                                assert_eq!(
                                    udp::Packet::new_checked(o.payload()).unwrap().checksum(),
                                    0,
                                    "RFC 3948: zero"
                                );
                            }
                        }
                        let (r, got) = open(&rx, &outer);
                        let d =
                            r.unwrap_or_else(|e| panic!("{t} v6o={v6_outer} udp={udp} v6i={v6_inner} len={len}: {e}"));
                        assert!(!d.peer_changed);
                        assert_eq!(got, pkt, "{t} inner differs");
                    }
                }
            }
        }
    }
}

#[test]
fn any_corruption_of_esp_is_rejected() {
    for t in Transform::ALL {
        let p = params(t, false, true, 0x2000_0001);
        let tx = client_out(&p);
        let pkt = inner(false, 200, 1);
        let outer = seal(&tx, &pkt);
        let esp_at = meta_of(&outer).esp_offset;
        // Every byte of the ESP packet, one bit each; a fresh SA each time so the replay
        // window never masks an authentication failure.
        for at in esp_at..outer.len() {
            let rx = gw_in(&p);
            let mut bad = outer.clone();
            bad[at] ^= 1 << (at % 8);
            let (r, _) = open(&rx, &bad);
            assert!(r.is_err(), "{t}: flipping byte {at} was accepted");
            if at >= esp_at + 8 {
                assert_eq!(r.unwrap_err(), DropReason::AuthFailed, "{t} byte {at}");
            }
            assert_eq!(rx.replay.top(), 0, "a forged packet moved the window");
        }
    }
}

#[test]
fn replays_are_dropped_and_counted() {
    let p = params(Transform::Aes128Gcm16, false, true, 0x3000_0001);
    let (tx, rx) = (client_out(&p), gw_in(&p));
    let a = seal(&tx, &inner(false, 100, 1));
    let b = seal(&tx, &inner(false, 100, 2));
    assert!(open(&rx, &b).0.is_ok());
    assert!(open(&rx, &a).0.is_ok(), "out of order within the window");
    assert_eq!(open(&rx, &a).0.unwrap_err(), DropReason::Replay);
    assert_eq!(rx.stats.replay.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A duplicate within one burst: both pass the pre-check, only one commits.
    let c = seal(&tx, &inner(false, 100, 3));
    let m = meta_of(&c);
    let mut bufs = [HeapBuf::from_slice(&c), HeapBuf::from_slice(&c)];
    let mut r = [Err(DropReason::NoBuffer); 2];
    rx.decap_burst(&mut bufs, &[m, m], &mut r, 1);
    assert!(r[0].is_ok());
    assert_eq!(r[1].unwrap_err(), DropReason::Replay);
}

#[test]
fn sequence_numbers_never_cycle() {
    let p = params(Transform::Aes128Gcm16, false, true, 0x4000_0001);
    let tx = client_out(&p);
    tx.set_seq(u32::MAX as u64 - 2);
    let mut bufs: Vec<HeapBuf> = (0..4).map(|i| HeapBuf::from_slice(&inner(false, 60, i))).collect();
    let mut r = [Ok(()); 4];
    tx.encap_burst(&mut bufs, &mut r, 1);
    assert!(r[0].is_ok() && r[1].is_ok());
    assert_eq!(r[2], Err(DropReason::SeqExhausted));
    assert_eq!(r[3], Err(DropReason::SeqExhausted));
    assert_eq!(tx.seq_remaining(), 0);
    // The refused packets are untouched inner packets.
    assert_eq!(bufs[2].data(), &inner(false, 60, 2)[..]);
}

#[test]
fn extended_sequence_numbers_cross_the_wrap() {
    for t in [Transform::Aes128Gcm16, Transform::Aes128Sha1, Transform::Chacha20Poly1305] {
        let mut p = params(t, false, true, 0x5000_0001);
        p.esn = true;
        let (tx, rx) = (client_out(&p), gw_in(&p));
        tx.set_seq((1 << 32) - 4); // the next packet gets 2^32 - 3
        rx.replay.commit((1 << 32) - 5).unwrap();
        for i in 0..6u8 {
            let outer = seal(&tx, &inner(false, 90, i));
            let (r, got) = open(&rx, &outer);
            let d = r.unwrap_or_else(|e| panic!("{t} packet {i}: {e}"));
            assert_eq!(d.seq, (1 << 32) - 3 + i as u64);
            assert_eq!(got, inner(false, 90, i));
        }
        // Only the low 32 bits travel.
        let outer = seal(&tx, &inner(false, 90, 9));
        let m = meta_of(&outer);
        assert_eq!(&outer[m.esp_offset + 4..m.esp_offset + 8], &(((1u64 << 32) + 3) as u32).to_be_bytes());
    }
}

#[test]
fn traffic_selectors_enforced() {
    let p = params(Transform::Aes128Gcm16, false, true, 0x6000_0001);
    let tx = client_out(&p);
    let rx = gw_in(&p);
    // From 10.9.0.3, not the client's 10.9.0.2.
    let spoofed = udp4(v4("10.9.0.3"), v4("10.1.0.5"), 1, 2, b"hello", false);
    assert_eq!(open(&rx, &seal(&tx, &spoofed)).0.unwrap_err(), DropReason::TsMismatch);
    // To 10.2.0.1, outside the protected 10.1.0.0/16.
    let elsewhere = udp4(v4("10.9.0.2"), v4("10.2.0.1"), 1, 2, b"hello", false);
    assert_eq!(open(&rx, &seal(&tx, &elsewhere)).0.unwrap_err(), DropReason::TsMismatch);
}

/// Seals a hand-made plaintext body (payload ‖ padding ‖ pad len ‖ next header) with the
/// client's cipher, as a peer that misbehaves after authentication would.
fn craft(tx: &OutboundSa, p: &esprit_esp::sa::SaParams, seq: u64, body: &[u8]) -> Vec<u8> {
    let l = p.transform.layout();
    let mut esp = Vec::new();
    esp.extend_from_slice(&p.spi.to_be_bytes());
    esp.extend_from_slice(&(seq as u32).to_be_bytes());
    esp.resize(8 + l.iv_len, 0);
    esp.extend_from_slice(body);
    esp.resize(esp.len() + l.icv_len, 0);
    let mut ops = [CryptoOp::new(&mut esp, seq)];
    tx.cipher().seal(&mut ops);
    assert_eq!(ops[0].status, OpStatus::Ok);
    let mut outer = udp4(v4("203.0.113.7"), v4("198.51.100.1"), 34567, 4500, &esp, false);
    udp::Packet::new_unchecked(&mut outer[20..]).set_checksum(0);
    outer
}

#[test]
fn dummy_padding_next_header_and_tfc() {
    for t in [Transform::Aes128Gcm16, Transform::Aes256Sha256] {
        let p = params(t, false, true, 0x7000_0001);
        let (tx, rx) = (client_out(&p), gw_in(&p));
        let a = t.layout().align;
        let body = |payload: &[u8], nh: u8, bad_pad: bool| {
            let pad = t.layout().pad_len(payload.len());
            let mut v = payload.to_vec();
            v.extend((1..=pad as u8).map(|x| if bad_pad && x == 1 { 9 } else { x }));
            v.extend_from_slice(&[pad as u8, nh]);
            assert_eq!(v.len() % a, 0);
            v
        };
        let pkt = inner(false, 77, 1);
        // Dummy packet (next header 59): dropped silently, under its own name.
        let (r, _) = open(&rx, &craft(&tx, &p, 1, &body(&[0xaa; 30], 59, false)));
        assert_eq!(r.unwrap_err(), DropReason::DummyPacket);
        // Padding bytes not 1, 2, 3, ...: bad padding (pick a length that needs padding).
        let odd = inner(false, 77, 2);
        assert!(t.layout().pad_len(odd.len()) > 0);
        assert_eq!(open(&rx, &craft(&tx, &p, 2, &body(&odd, 4, true))).0.unwrap_err(), DropReason::BadPadding);
        // Next header 6 (TCP) in tunnel mode.
        assert_eq!(open(&rx, &craft(&tx, &p, 3, &body(&pkt, 6, false))).0.unwrap_err(), DropReason::BadNextHeader);
        // Next header says IPv6 but the payload is IPv4.
        assert_eq!(open(&rx, &craft(&tx, &p, 4, &body(&pkt, 41, false))).0.unwrap_err(), DropReason::InnerMalformed);
        // TFC padding after the inner packet (RFC 4303 §2.7) is stripped.
        let mut tfc = pkt.clone();
        tfc.extend_from_slice(&[0u8; 40]);
        let (r, got) = open(&rx, &craft(&tx, &p, 5, &body(&tfc, 4, false)));
        r.unwrap();
        assert_eq!(got, pkt);
        // An inner length field longer than what was sent.
        let mut short = pkt.clone();
        short.truncate(60);
        assert_eq!(open(&rx, &craft(&tx, &p, 6, &body(&short, 4, false))).0.unwrap_err(), DropReason::InnerMalformed);
    }
}

#[test]
fn encapsulation_mismatch_and_truncation() {
    let p = params(Transform::Aes128Gcm16, false, true, 0x8000_0001);
    let (tx, rx) = (client_out(&p), gw_in(&p));
    let outer = seal(&tx, &inner(false, 100, 1));
    let mut m = meta_of(&outer);
    m.udp = false;
    let mut b = [HeapBuf::from_slice(&outer)];
    let mut r = [Err(DropReason::NoBuffer)];
    rx.decap_burst(&mut b, &[m], &mut r, 1);
    assert_eq!(r[0].unwrap_err(), DropReason::EspEncapMismatch);
    let m = meta_of(&outer);
    for cut in [m.esp_offset + 8, m.esp_offset + 8 + 8 + 2 + 15] {
        let mut b = [HeapBuf::from_slice(&outer[..cut])];
        rx.decap_burst(&mut b, &[m], &mut r, 1);
        assert_eq!(r[0].unwrap_err(), DropReason::EspTruncated, "cut at {cut}");
    }
    // CBC: a body that is not whole blocks never reaches the cipher.
    let p = params(Transform::Aes128Sha1, false, true, 0x8000_0002);
    let (tx, rx) = (client_out(&p), gw_in(&p));
    let outer = seal(&tx, &inner(false, 100, 1));
    let m = meta_of(&outer);
    let mut b = [HeapBuf::from_slice(&outer[..outer.len() - 1])];
    rx.decap_burst(&mut b, &[m], &mut r, 1);
    assert_eq!(r[0].unwrap_err(), DropReason::EspBadLength);
}

#[test]
fn nat_mapping_change_is_reported_only_for_authentic_packets() {
    let p = params(Transform::Aes128Gcm16, false, true, 0x9000_0001);
    let (tx, rx) = (client_out(&p), gw_in(&p));
    let outer = seal(&tx, &inner(false, 100, 1));
    let mut m = meta_of(&outer);
    assert!(!open(&rx, &outer).0.unwrap().peer_changed);
    m.src.port = 40000;
    let next = seal(&tx, &inner(false, 100, 2));
    let mut b = [HeapBuf::from_slice(&next)];
    let mut r = [Err(DropReason::NoBuffer)];
    rx.decap_burst(&mut b, &[m], &mut r, 1);
    assert!(r[0].unwrap().peer_changed, "authentic packet from a new port");
    // A forged packet from a new port is an authentication failure, not a move.
    let mut forged = seal(&tx, &inner(false, 100, 3));
    let n = forged.len();
    forged[n - 1] ^= 1;
    let mut b = [HeapBuf::from_slice(&forged)];
    rx.decap_burst(&mut b, &[m], &mut r, 1);
    assert_eq!(r[0].unwrap_err(), DropReason::AuthFailed);
    // Once followed, the new mapping is the peer.
    rx.set_peer(m.src);
    tx.set_peer(Endpoint { addr: ip("198.51.100.1"), port: 4500 }).unwrap();
    let mut b = [HeapBuf::from_slice(&seal(&tx, &inner(false, 100, 4)))];
    rx.decap_burst(&mut b, &[m], &mut r, 1);
    assert!(!r[0].unwrap().peer_changed);
}

#[test]
fn outbound_follows_the_peer() {
    let p = params(Transform::Aes128Gcm16, false, true, 0xa000_0001);
    let gw_out = esprit_esp::sa::OutboundSa::new(p.clone(), esprit_esp::crypto::default_provider(p.transform)).unwrap();
    let moved = Endpoint { addr: ip("203.0.113.99"), port: 61000 };
    gw_out.set_peer(moved).unwrap();
    let outer = seal(&gw_out, &inner(false, 100, 1));
    let o = ipv4::Packet::new_checked(&outer[..]).unwrap();
    assert_eq!(o.dst_addr(), v4("203.0.113.99"));
    assert_eq!(udp::Packet::new_checked(o.payload()).unwrap().dst_port(), 61000);
    assert!(gw_out.set_peer(Endpoint { addr: ip("::1"), port: 1 }).is_err(), "family change refused");
}

/// Sends `n` single-packet bursts through an SA with lifetime `life`: the bursts that
/// reported the soft and the hard limit, and each packet's result.
fn lifetime_reports(life: Lifetime, spi: u32, n: u8) -> (Vec<u8>, Vec<u8>, Vec<Result<(), DropReason>>) {
    let mut p = params(Transform::Aes128Gcm16, false, true, spi);
    p.lifetime = life;
    let tx = OutboundSa::new(p.clone(), esprit_esp::crypto::default_provider(p.transform)).unwrap();
    let (mut soft_seen, mut hard_seen, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let mut b = [HeapBuf::from_slice(&inner(false, 60, i))];
        let mut r = [Err(DropReason::NoBuffer)];
        let s = tx.encap_burst(&mut b, &mut r, 1);
        if s.soft_expired {
            soft_seen.push(i);
        }
        if s.hard_expired {
            hard_seen.push(i);
        }
        results.push(r[0]);
    }
    (soft_seen, hard_seen, results)
}

#[test]
fn volume_lifetimes() {
    let life = Lifetime { soft_packets: 3, hard_packets: 5, ..Lifetime::default() };
    let (soft_seen, hard_seen, results) = lifetime_reports(life, 0xb000_0001, 7);
    assert_eq!(soft_seen, [2], "the soft limit is reported once, by the burst that crossed it");
    assert_eq!(hard_seen, [4], "so is the hard limit");
    assert!(results[..5].iter().all(|r| r.is_ok()));
    assert_eq!(results[5], Err(DropReason::SaExpired));
}

#[test]
fn byte_lifetimes_and_a_hard_limit_below_the_soft_one() {
    // Which limit is lowest must not matter to when each is reported.
    for (life, soft, hard) in [
        (Lifetime { soft_bytes: 1, ..Lifetime::default() }, vec![0u8], vec![]),
        (Lifetime { soft_bytes: 1, hard_bytes: 1, ..Lifetime::default() }, vec![0], vec![0]),
        (Lifetime { soft_packets: 4, hard_packets: 2, ..Lifetime::default() }, vec![], vec![1]),
    ] {
        let (soft_seen, hard_seen, _) = lifetime_reports(life, 0xb000_0003, 5);
        assert_eq!((soft_seen, hard_seen), (soft, hard), "{life:?}");
    }
}

#[test]
fn expired_by_time_passes_nothing() {
    let p = params(Transform::Aes128Gcm16, false, true, 0xb000_0002);
    let tx = OutboundSa::new(p.clone(), esprit_esp::crypto::default_provider(p.transform)).unwrap();
    let mut b = [HeapBuf::from_slice(&inner(false, 60, 0))];
    let mut r = [Err(DropReason::NoBuffer)];
    tx.encap_burst(&mut b, &mut r, 1);
    assert!(r[0].is_ok());
    tx.stats.expire();
    let mut b = [HeapBuf::from_slice(&inner(false, 60, 1))];
    tx.encap_burst(&mut b, &mut r, 2);
    assert_eq!(r[0], Err(DropReason::SaExpired));
    assert_eq!(tx.seq_used(), 1, "no sequence number is spent on a refused packet");
}

#[test]
fn inner_mtu_and_learned_pmtu() {
    let p = params(Transform::Aes128Sha1, false, true, 0xc000_0001);
    let tx = client_out(&p);
    assert_eq!(tx.inner_mtu(1500, 0), 1422);
    // A router reports 1000: the SA's inner MTU drops to 942 + (3DES would be 942; CBC-SHA1: 934).
    tx.pmtu.learn(1000, esprit_esp::sa::MIN_PMTU_V4, 10, 600_000_000_000).unwrap();
    assert_eq!(tx.inner_mtu(1500, 11), esprit_esp::mtu::max_inner(1000, false, true, Transform::Aes128Sha1.layout()));
    // Bounded below, only lowered, aged out.
    assert!(tx.pmtu.learn(1200, 576, 12, 1000).is_none());
    assert_eq!(tx.pmtu.learn(100, 576, 13, 1000), Some(576));
    assert_eq!(tx.inner_mtu(1500, 13 + 1000), 1422, "aged out");
}

#[test]
fn concurrent_senders_never_share_a_sequence_number() {
    let p = params(Transform::Aes128Gcm16, false, true, 0xd000_0001);
    let tx = std::sync::Arc::new(client_out(&p));
    let seqs: Vec<u32> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..500u32 {
                        let mut b: Vec<HeapBuf> =
                            (0..8).map(|j| HeapBuf::from_slice(&inner(false, 64, (i + j + t) as u8))).collect();
                        let mut r = [Ok(()); 8];
                        tx.encap_burst(&mut b, &mut r, 1);
                        for x in &b {
                            let m = meta_of(x.data());
                            seen.push(u32::from_be_bytes(
                                x.data()[m.esp_offset + 4..m.esp_offset + 8].try_into().unwrap(),
                            ));
                        }
                    }
                    seen
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 8000);
    assert_eq!((sorted[0], sorted[7999]), (1, 8000));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Encapsulation then decapsulation is the identity, for any transform, family,
    /// encapsulation and payload; flipping any one bit of the ESP packet is rejected.
    #[test]
    fn encap_decap_identity_and_any_flip_rejected(
        t in 0usize..7,
        v6_outer: bool,
        udp: bool,
        v6_inner: bool,
        len in 48usize..1300,
        seed: u8,
        flip in proptest::num::usize::ANY,
    ) {
        let t = Transform::ALL[t];
        let p = params(t, v6_outer, udp, 0x0e00_0001);
        let (tx, rx) = (client_out(&p), gw_in(&p));
        let pkt = inner(v6_inner, len, seed);
        let outer = seal(&tx, &pkt);
        let (r, got) = open(&rx, &outer);
        proptest::prop_assert!(r.is_ok(), "{t}: {r:?}");
        proptest::prop_assert_eq!(&got, &pkt);
        let esp_at = meta_of(&outer).esp_offset;
        let at = esp_at + flip % (outer.len() - esp_at);
        let mut bad = seal(&tx, &pkt);
        bad[at] ^= 1 << (flip % 8);
        let rx2 = gw_in(&p);
        proptest::prop_assert!(open(&rx2, &bad).0.is_err(), "{t}: flip at {at} accepted");
    }
}

#[test]
fn time_lifetimes_and_idle_are_swept_once() {
    const S: u64 = 1_000_000_000;
    let mut p = params(Transform::Aes128Gcm16, false, true, 0xb000_0003);
    p.lifetime = Lifetime { soft_secs: 10, hard_secs: 20, idle_secs: 5, ..Lifetime::default() };
    let tx = OutboundSa::new(p.clone(), esprit_esp::crypto::default_provider(p.transform)).unwrap();
    tx.clock.start(100 * S);
    assert_eq!(tx.sweep(101 * S), esprit_esp::sa::Sweep::default());
    // Traffic at 103 s: idle from then on.
    let mut r = [Err(DropReason::NoBuffer)];
    tx.encap_burst(&mut [HeapBuf::from_slice(&inner(false, 60, 0))], &mut r, 103 * S);
    assert!(r[0].is_ok());
    assert_eq!(tx.sweep(107 * S).idle_secs, None);
    assert_eq!(tx.sweep(108 * S).idle_secs, Some(5));
    assert_eq!(tx.sweep(109 * S).idle_secs, None, "idle is reported once per quiet spell");
    let s = tx.sweep(110 * S);
    assert!(s.soft_expired && !s.hard_expired);
    assert!(!tx.sweep(111 * S).soft_expired, "soft is reported once");
    assert!(!tx.is_expired());
    let s = tx.sweep(120 * S);
    assert!(s.hard_expired && !s.soft_expired);
    assert!(tx.is_expired());
    assert!(!tx.sweep(121 * S).hard_expired, "hard is reported once");
    tx.encap_burst(&mut [HeapBuf::from_slice(&inner(false, 60, 1))], &mut r, 121 * S);
    assert_eq!(r[0], Err(DropReason::SaExpired));
}
