//! Bursts that mix SAs (`encap_mixed`, `decap_mixed`): every packet sealed or opened as if
//! its SA had been processed alone, checked against an independent provider (RustCrypto)
//! working one packet at a time; bad packets fail alone; counters and summaries per SA.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use esprit_esp::crypto::rustcrypto::RustCrypto;
use esprit_esp::crypto::{default_provider, CryptoProvider};
use esprit_esp::sa::{
    decap_mixed, encap_mixed, BurstSummary, InboundMeta, InboundSa, OutboundSa, SaParams, UdpEncap, SEQ_LOW_WATER,
};
use esprit_esp::{DropReason, HeapBuf, PacketBuf, Transform};
use esprit_wire::{ipv6, udp};

/// The client's outbound SA for `p`, made by `provider`.
fn client_out_with(p: &SaParams, provider: &dyn CryptoProvider) -> OutboundSa {
    let mut c = p.clone();
    std::mem::swap(&mut c.local, &mut c.remote);
    c.encap = p.encap.map(|e| UdpEncap { local_port: e.remote_port, remote_port: e.local_port });
    std::mem::swap(&mut c.local_ts, &mut c.remote_ts);
    OutboundSa::new(c, provider).unwrap()
}

/// Five SAs of different transforms, families, encapsulations and ESN settings.
fn sa_params() -> Vec<SaParams> {
    let mut v = vec![
        params(Transform::Aes128Gcm16, false, true, 0x100),
        params(Transform::Aes128Sha1, false, true, 0x200),
        params(Transform::Aes256Sha256, true, true, 0x300),
        params(Transform::Aes128Sha1, false, false, 0x400),
        params(Transform::Chacha20Poly1305, true, false, 0x500),
    ];
    v[2].esn = true;
    v[3].esn = true;
    v
}

/// Which SA each packet of the burst belongs to: runs, singles and returns to earlier SAs.
const PATTERN: [usize; 40] = [
    0, 1, 1, 2, 3, 0, 4, 3, 3, 3, 1, 0, 0, 2, 4, 4, 1, 3, 2, 0, 1, 1, 1, 4, 0, 2, 2, 3, 0, 1, 4, 3, 2, 1, 0, 0, 0, 4,
    2, 1,
];

fn inners() -> Vec<Vec<u8>> {
    PATTERN.iter().enumerate().map(|(i, _)| inner(i % 3 == 0, 48 + (i * 131) % 1300, i as u8)).collect()
}

#[test]
fn a_mixed_burst_seals_what_each_sa_alone_opens() {
    let ps = sa_params();
    let tx: Vec<OutboundSa> = ps.iter().map(|p| client_out_with(p, default_provider(p.transform))).collect();
    let oracle: Vec<InboundSa> = ps.iter().map(|p| InboundSa::new(p.clone(), &RustCrypto).unwrap()).collect();
    let plain = inners();
    let mut bufs: Vec<HeapBuf> = plain.iter().map(|p| HeapBuf::from_slice(p)).collect();
    let sas: Vec<&OutboundSa> = PATTERN.iter().map(|&i| &tx[i]).collect();
    let mut out = vec![Err(DropReason::NoBuffer); PATTERN.len()];
    let mut runs: Vec<(u32, BurstSummary)> = Vec::new();
    encap_mixed(&sas, &mut bufs, &mut out, 1, |sa, s| runs.push((sa.spi(), s)));
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
    // One summary per run of consecutive packets of one SA, each counting its packets.
    let mut expected_runs = Vec::new();
    for (k, &i) in PATTERN.iter().enumerate() {
        if k == 0 || PATTERN[k - 1] != i {
            expected_runs.push((ps[i].spi, 0u32));
        }
        expected_runs.last_mut().unwrap().1 += 1;
    }
    assert_eq!(runs.iter().map(|(s, r)| (*s, r.ok)).collect::<Vec<_>>(), expected_runs);

    // Each SA's packets carry 1, 2, 3… in burst order; RustCrypto opens every one alone.
    let mut next = [1u64; 5];
    for ((&i, b), p) in PATTERN.iter().zip(&bufs).zip(&plain) {
        let outer = b.data().to_vec();
        let m = meta_of(&outer);
        if ps[i].encap.is_some() && ps[i].local.is_ipv6() {
            let o = ipv6::Packet::new_checked(&outer[..]).unwrap();
            let u = udp::Packet::new_checked(o.payload()).unwrap();
            assert!(u.verify_checksum(o.src_addr().into(), o.dst_addr().into()), "IPv6 UDP checksum");
        }
        let mut one = [HeapBuf::from_slice(&outer)];
        let mut r = [Err(DropReason::NoBuffer)];
        oracle[i].decap_burst(&mut one, &[m], &mut r, 1);
        assert_eq!(r[0].unwrap().seq, next[i], "SA {i}");
        next[i] += 1;
        assert_eq!(one[0].data(), &p[..]);
    }
    for (i, sa) in tx.iter().enumerate() {
        let n = PATTERN.iter().filter(|&&x| x == i).count() as u64;
        assert_eq!(sa.seq_used(), n);
        assert_eq!(sa.stats.packets.load(core::sync::atomic::Ordering::Relaxed), n);
    }
}

#[test]
fn a_mixed_burst_opens_what_each_sa_alone_sealed_and_bad_packets_fail_alone() {
    let ps = sa_params();
    let oracle: Vec<OutboundSa> = ps.iter().map(|p| client_out_with(p, &RustCrypto)).collect();
    let rx: Vec<InboundSa> =
        ps.iter().map(|p| InboundSa::new(p.clone(), default_provider(p.transform)).unwrap()).collect();
    let plain = inners();
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    for (&i, p) in PATTERN.iter().zip(&plain) {
        let mut one = [HeapBuf::from_slice(p)];
        let mut r = [Err(DropReason::NoBuffer)];
        oracle[i].encap_burst(&mut one, &mut r, 1);
        r[0].unwrap();
        sealed.push(one[0].data().to_vec());
    }
    // Forge a GCM and a CBC packet (one ciphertext bit each), and send packet 2 again as 3
    // (both SA 1: the second copy of a sequence number within one burst).
    let mut wire = sealed.clone();
    let forged = [5usize, 10];
    for &k in &forged {
        let n = wire[k].len();
        wire[k][n - 20] ^= 0x10;
    }
    assert_eq!((PATTERN[1], PATTERN[2]), (1, 1));
    wire[2] = wire[1].clone();
    let metas: Vec<InboundMeta> = wire.iter().map(|w| meta_of(w)).collect();
    let mut bufs: Vec<HeapBuf> = wire.iter().map(|w| HeapBuf::from_slice(w)).collect();
    let sas: Vec<&InboundSa> = PATTERN.iter().map(|&i| &rx[i]).collect();
    let mut out = vec![Err(DropReason::NoBuffer); PATTERN.len()];
    let mut ok_per_sa = [0u32; 5];
    decap_mixed(&sas, &mut bufs, &metas, &mut out, 1, |sa, s| {
        ok_per_sa[(sa.spi() / 0x100 - 1) as usize] += s.ok;
    });
    for (k, r) in out.iter().enumerate() {
        match k {
            5 | 10 => assert_eq!(*r, Err(DropReason::AuthFailed), "packet {k}"),
            2 => assert_eq!(*r, Err(DropReason::Replay), "packet {k}"),
            _ => {
                assert!(r.is_ok(), "packet {k}: {r:?}");
                assert_eq!(bufs[k].data(), &plain[k][..], "packet {k}");
            }
        }
    }
    for (i, &ok) in ok_per_sa.iter().enumerate() {
        let bad = [2usize, 5, 10].iter().filter(|&&k| PATTERN[k] == i).count() as u32;
        let all = PATTERN.iter().filter(|&&x| x == i).count() as u32;
        assert_eq!(ok, all - bad, "SA {i}");
    }
    let load = |a: &core::sync::atomic::AtomicU64| a.load(core::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&rx[0].stats.auth_failed), load(&rx[1].stats.auth_failed)), (1, 1));
    assert_eq!(load(&rx[1].stats.replay), 1);
    // The forged packets' bodies never hold unauthenticated plaintext.
    for &k in &forged {
        assert_ne!(bufs[k].data(), &plain[k][..]);
    }
}

#[test]
fn the_run_that_crosses_the_low_water_mark_says_so_once() {
    let ps = sa_params();
    let a = client_out_with(&ps[0], default_provider(ps[0].transform));
    let b = client_out_with(&ps[1], default_provider(ps[1].transform));
    // Non-ESN: 2^32 - 1 sequence numbers in all; three left above the mark.
    a.set_seq(u32::MAX as u64 - SEQ_LOW_WATER - 3);
    let plain = inners();
    let order = [&a, &b, &a, &a, &b, &a, &a];
    let mut bufs: Vec<HeapBuf> = order.iter().zip(&plain).map(|(_, p)| HeapBuf::from_slice(p)).collect();
    let mut out = vec![Err(DropReason::NoBuffer); order.len()];
    let mut lows = Vec::new();
    encap_mixed(&order, &mut bufs, &mut out, 1, |sa, s| lows.push((sa.spi(), s.seq_low)));
    assert!(out.iter().all(|r| r.is_ok()));
    // a has three above the mark: its runs of one and two packets bring it down to the mark,
    // its last run of two crosses it.
    assert_eq!(lows, vec![(0x100, false), (0x200, false), (0x100, false), (0x200, false), (0x100, true)]);
}
