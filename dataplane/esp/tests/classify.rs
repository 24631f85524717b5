//! NAT-T classification and outer reassembly, case by case.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use core::net::IpAddr;
use esprit_esp::classify::{classify, peek_spi, Class};
use esprit_esp::frag::FragmentsV4;
use esprit_esp::reasm::{ReasmConfig, Reassembler};
use esprit_esp::sa::Endpoint;
use esprit_esp::{DropReason, HeapBuf, PacketBuf};
use esprit_wire::{icmpv4, icmpv6, ike, ipv4, ipv6, udp};

const GW: &str = "198.51.100.1";
const CLIENT: &str = "203.0.113.7";
const GW6: &str = "2001:db8:ff::1";
const CLIENT6: &str = "2001:db8:aa::2";

fn ours(a: IpAddr) -> bool {
    a == ip(GW) || a == ip(GW6)
}

fn natt(payload: &[u8]) -> Vec<u8> {
    let mut p = udp4(v4(CLIENT), v4(GW), 34567, 4500, payload, false);
    udp::Packet::new_unchecked(&mut p[20..]).fill_checksum(ip(CLIENT), ip(GW));
    p
}

fn ike_msg(len_field: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    ike::Repr {
        initiator_spi: 0x1122334455667788,
        responder_spi: 0,
        next_payload: 33,
        exchange_type: ike::exchange::IKE_SA_INIT,
        flags: ike::flags::INITIATOR,
        message_id: 0,
        length: len_field,
    }
    .emit(&mut m);
    m
}

fn raw_ip4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    ipv4::Repr {
        src: v4(CLIENT),
        dst: v4(GW),
        protocol: proto,
        payload_len: payload.len(),
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    p[20..].copy_from_slice(payload);
    p
}

fn drop_of(pkt: &[u8]) -> DropReason {
    match classify(pkt, ours) {
        Class::Drop(r) => r,
        c => panic!("expected a drop, got {c:?}"),
    }
}

#[test]
fn natt_port_4500_cases() {
    let src = Endpoint { addr: ip(CLIENT), port: 34567 };
    assert_eq!(classify(&natt(&[0xff]), ours), Class::Keepalive { src });
    assert_eq!(drop_of(&natt(&[0x00])), DropReason::NattRunt);
    assert_eq!(drop_of(&natt(&[1, 2, 3])), DropReason::NattRunt);
    assert_eq!(drop_of(&natt(&[0, 0, 1, 0, 0, 0, 0])), DropReason::NattRunt, "7 bytes: too short for ESP");
    // Non-ESP marker + IKE.
    let mut m = vec![0, 0, 0, 0];
    m.extend(ike_msg(28, 28));
    match classify(&natt(&m), ours) {
        Class::Ike { src: s, dst, ike_offset } => {
            assert_eq!(s, src);
            assert_eq!(dst, Endpoint { addr: ip(GW), port: 4500 });
            assert_eq!(ike_offset, 20 + 8 + 4);
        }
        c => panic!("{c:?}"),
    }
    // Marker with a truncated or inconsistent IKE header: never ESP, never punted.
    assert_eq!(drop_of(&natt(&[0, 0, 0, 0, 1, 2, 3])), DropReason::IkeTruncated);
    let mut bad = vec![0, 0, 0, 0];
    bad.extend(ike_msg(64, 28));
    assert_eq!(drop_of(&natt(&bad)), DropReason::IkeBadLength);
    // The same IKE with a broken UDP checksum.
    let mut p = natt(&m);
    let n = p.len();
    p[n - 1] ^= 0x55;
    assert_eq!(drop_of(&p), DropReason::UdpBadChecksum);
    // ESP.
    let esp = [0x00, 0x00, 0x10, 0x01, 0, 0, 0, 1, 0xaa, 0xbb];
    assert_eq!(classify(&natt(&esp), ours), Class::Esp { spi: 0x1001, esp_offset: 28, src, dst: ip(GW), udp: true });
    assert_eq!(drop_of(&natt(&[0, 0, 0, 0x05, 0, 0, 0, 1])), DropReason::EspReservedSpi);
}

#[test]
fn ike_port_500_and_raw_esp() {
    let mut p = udp4(v4(CLIENT), v4(GW), 500, 500, &ike_msg(36, 36), false);
    assert!(matches!(classify(&p, ours), Class::Ike { ike_offset: 28, .. }));
    let n = p.len();
    p[n - 1] ^= 1;
    assert_eq!(drop_of(&p), DropReason::UdpBadChecksum);
    assert_eq!(drop_of(&udp4(v4(CLIENT), v4(GW), 500, 500, &[0u8; 10], false)), DropReason::IkeTruncated);

    let esp = raw_ip4(50, &[0, 0, 0x20, 0, 0, 0, 0, 9, 1, 2, 3, 4]);
    assert_eq!(
        classify(&esp, ours),
        Class::Esp {
            spi: 0x2000,
            esp_offset: 20,
            src: Endpoint { addr: ip(CLIENT), port: 0 },
            dst: ip(GW),
            udp: false
        }
    );
    assert_eq!(drop_of(&raw_ip4(50, &[0, 0, 0x20, 0, 0])), DropReason::EspTruncated);
    assert_eq!(drop_of(&raw_ip4(50, &[0, 0, 0, 0, 0, 0, 0, 1])), DropReason::EspReservedSpi);
}

#[test]
fn everything_else_has_a_name() {
    assert_eq!(drop_of(&udp4(v4(CLIENT), v4(GW), 1, 53, b"x", false)), DropReason::UdpPortUnhandled);
    assert_eq!(drop_of(&raw_ip4(6, &[0u8; 20])), DropReason::ProtoUnhandled);
    assert_eq!(drop_of(&udp4(v4(CLIENT), v4("192.0.2.99"), 1, 4500, &[0xff], false)), DropReason::IpNotForUs);
    let mut p = natt(&[0xff]);
    p[10] ^= 1;
    assert_eq!(drop_of(&p), DropReason::Ipv4BadChecksum);
    assert_eq!(drop_of(&p[..15]), DropReason::Ipv4Malformed);
    assert_eq!(drop_of(&[0x55, 0, 0, 0]), DropReason::IpBadVersion);
    assert_eq!(drop_of(&[]), DropReason::Ipv4Malformed);
    let mut p = natt(&[0xff]);
    p[24..26].copy_from_slice(&3u16.to_be_bytes()); // UDP length < 8
    assert_eq!(drop_of(&p), DropReason::UdpMalformed);
    // Fragments: ESP/UDP to the reassembler, anything else dropped by name.
    let mut f = natt(&[1u8; 100]);
    {
        let mut x = ipv4::Packet::new_unchecked(&mut f[..]);
        x.set_frag(false, true, 0);
        x.fill_checksum();
    }
    assert_eq!(classify(&f, ours), Class::Fragment);
    let mut t = raw_ip4(6, &[0u8; 40]);
    {
        let mut x = ipv4::Packet::new_unchecked(&mut t[..]);
        x.set_frag(false, true, 0);
        x.fill_checksum();
    }
    assert_eq!(drop_of(&t), DropReason::FragNotEsp);
}

#[test]
fn ipv6_cases() {
    let p = udp6(v6(CLIENT6), v6(GW6), 4500, 4500, &[0xff]);
    assert!(matches!(classify(&p, ours), Class::Keepalive { .. }));
    let esp = udp6(v6(CLIENT6), v6(GW6), 4500, 4500, &[0, 0, 0x30, 0, 0, 0, 0, 1, 9, 9]);
    assert!(matches!(classify(&esp, ours), Class::Esp { spi: 0x3000, esp_offset: 48, udp: true, .. }));
    let mut bad = p.clone();
    bad[6] = 0; // hop-by-hop with no room for it
    assert_eq!(drop_of(&bad), DropReason::Ipv6BadExtHeaders);
    assert_eq!(drop_of(&p[..30]), DropReason::Ipv6Malformed);
}

/// The prefetch hint agrees with the classifier on ESP, and names no SPI for the rest.
#[test]
fn peek_spi_hints_the_classifiers_spi() {
    let esp_udp = natt(&[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 9, 9, 9, 9]);
    let esp_raw = raw_ip4(50, &[0, 0, 0x10, 0x01, 0, 0, 0, 1, 9, 9, 9, 9]);
    let esp6 = udp6(v6(CLIENT6), v6(GW6), 4500, 4500, &[0, 0, 0x30, 0, 0, 0, 0, 1, 9, 9]);
    for (p, spi) in [(&esp_udp, 0x1234_5678), (&esp_raw, 0x1001), (&esp6, 0x3000)] {
        assert!(matches!(classify(p, ours), Class::Esp { spi: s, .. } if s == spi));
        assert_eq!(peek_spi(p), Some(spi));
    }
    let ike = natt(&[&[0u8; 4][..], &ike_msg(28 + 4, 28)].concat());
    let keepalive = natt(&[0xff]);
    let ike500 = udp4(v4(CLIENT), v4(GW), 500, 500, &ike_msg(28, 28), false);
    for p in [&ike, &keepalive, &ike500, &raw_ip4(6, &[0; 20])] {
        assert!(!matches!(classify(p, ours), Class::Esp { .. }));
        assert_eq!(peek_spi(p), None);
    }
    // Truncated or not IP at all: no hint, no panic.
    for n in 0..esp_udp.len() {
        let _ = peek_spi(&esp_udp[..n]);
    }
    assert_eq!(peek_spi(&esp_udp[..30]), None);
    assert_eq!(peek_spi(&[0x75; 64]), None);
}

/// One of our ESP-in-UDP packets as it left the gateway, `len` bytes long.
fn our_esp4(len: usize, spi: u32) -> Vec<u8> {
    let mut payload = vec![0u8; len - 28];
    payload[..4].copy_from_slice(&spi.to_be_bytes());
    udp4(v4(GW), v4(CLIENT), 4500, 34567, &payload, true)
}

fn frag_needed(quoted: &[u8], mtu: u16, from: &str) -> Vec<u8> {
    let icmp = icmpv4::Repr::DstUnreachable { code: 4, next_hop_mtu: mtu, quoted };
    let mut p = vec![0u8; 20 + icmp.buffer_len()];
    ipv4::Repr {
        src: v4(from),
        dst: v4(GW),
        protocol: 1,
        payload_len: icmp.buffer_len(),
        ttl: 64,
        tos: 0,
        ident: 3,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    icmp.emit(&mut p[20..]);
    p
}

#[test]
fn icmp_frag_needed_about_our_esp() {
    let orig = our_esp4(1296, 0xc0ffee01);
    let peer = Endpoint { addr: ip(CLIENT), port: 34567 };
    // A Linux router quotes plenty: the SPI is there.
    match classify(&frag_needed(&orig[..576 - 28], 1000, "192.0.2.1"), ours) {
        Class::Pmtu(i) => {
            assert_eq!((i.mtu, i.local, i.peer, i.spi), (1000, ip(GW), peer, Some(0xc0ffee01)));
        }
        c => panic!("{c:?}"),
    }
    // RFC 792's minimum: IP header + 8 bytes, so no SPI; the peer still identifies the SAs.
    match classify(&frag_needed(&orig[..28], 1000, "192.0.2.1"), ours) {
        Class::Pmtu(i) => assert_eq!((i.peer, i.spi), (peer, None)),
        c => panic!("{c:?}"),
    }
    // A pre-RFC 1191 router reports MTU 0: estimate from the plateau table below 1296.
    match classify(&frag_needed(&orig[..28], 0, "192.0.2.1"), ours) {
        Class::Pmtu(i) => assert_eq!(i.mtu, 1006),
        c => panic!("{c:?}"),
    }
    // Quoting somebody else's packet, or not ESP/NAT-T: ignored.
    let other = udp4(v4("192.0.2.50"), v4(CLIENT), 4500, 34567, &[0u8; 100], true);
    assert_eq!(drop_of(&frag_needed(&other[..48], 1000, "192.0.2.1")), DropReason::IcmpIgnored);
    let dns = udp4(v4(GW), v4(CLIENT), 53, 53, &[0u8; 100], true);
    assert_eq!(drop_of(&frag_needed(&dns[..48], 1000, "192.0.2.1")), DropReason::IcmpIgnored);
    // Broken ICMP checksum.
    let mut p = frag_needed(&orig[..48], 1000, "192.0.2.1");
    p[22] ^= 1;
    assert_eq!(drop_of(&p), DropReason::IcmpIgnored);
}

#[test]
fn icmpv6_packet_too_big_and_echo() {
    let mut payload = vec![0u8; 1300];
    payload[..4].copy_from_slice(&0xabcd0001u32.to_be_bytes());
    let orig = udp6(v6(GW6), v6(CLIENT6), 4500, 4500, &payload);
    let icmp = icmpv6::Repr::PacketTooBig { mtu: 1280, quoted: &orig[..1280 - 48] };
    let (s, d) = (v6("2001:db8:ee::1"), v6(GW6));
    let mut p = vec![0u8; 40 + icmp.buffer_len()];
    ipv6::Repr {
        src: s,
        dst: d,
        next_header: 58,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut p);
    icmp.emit(&mut p[40..], s, d);
    match classify(&p, ours) {
        Class::Pmtu(i) => assert_eq!((i.mtu, i.spi, i.peer.port), (1280, Some(0xabcd0001), 4500)),
        c => panic!("{c:?}"),
    }
    let echo = icmpv6::Repr::EchoRequest { ident: 1, seq_no: 1, data: b"hi" };
    let mut p = vec![0u8; 40 + echo.buffer_len()];
    ipv6::Repr {
        src: s,
        dst: d,
        next_header: 58,
        payload_len: echo.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut p);
    echo.emit(&mut p[40..], s, d);
    assert_eq!(classify(&p, ours), Class::IcmpLocal);
}

// ---- reassembly

fn fragments(pkt: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let mut f = FragmentsV4::new(pkt, mtu).unwrap();
    let mut v = Vec::new();
    let mut b = HeapBuf::default();
    while let Some(r) = f.next_into(&mut b) {
        r.unwrap();
        v.push(b.data().to_vec());
    }
    v
}

fn natt_big(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len - 28).map(|i| (i * 13) as u8).collect();
    let mut p = udp4(v4(CLIENT), v4(GW), 34567, 4500, &payload, false);
    p[28..32].copy_from_slice(&0x1001u32.to_be_bytes());
    p
}

#[test]
fn reassembles_ipv4_in_any_order() {
    let orig = natt_big(3000);
    let frags = fragments(&orig, 1000);
    assert_eq!(frags.len(), 4);
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
        let mut r = Reassembler::new(ReasmConfig::default());
        let mut done = None;
        for (n, &i) in order.iter().enumerate() {
            assert_eq!(classify(&frags[i], ours), Class::Fragment);
            let out = r.push(&frags[i], 1).unwrap();
            assert_eq!(out.is_some(), n == 3);
            if let Some(p) = out {
                done = Some(p.to_vec());
            }
        }
        let p = done.unwrap();
        assert_eq!(p, orig, "order {order:?}");
        assert!(ipv4::Packet::new_checked(&p[..]).unwrap().verify_checksum());
        assert!(matches!(classify(&p, ours), Class::Esp { spi: 0x1001, .. }));
        assert_eq!(r.in_progress(), 0);
    }
}

#[test]
fn duplicates_overlaps_limits_and_timeouts() {
    let orig = natt_big(3000);
    let frags = fragments(&orig, 1000);
    let mut r = Reassembler::new(ReasmConfig { slots: 2, max_datagram: 2500, timeout_ns: 1000 });
    // Too big for the configured maximum.
    assert_eq!(r.push(&frags[3], 1).unwrap_err(), DropReason::FragTooBig);
    let mut r = Reassembler::new(ReasmConfig { slots: 2, max_datagram: 65535, timeout_ns: 1000 });
    assert!(r.push(&frags[0], 1).unwrap().is_none());
    assert!(r.push(&frags[0], 1).unwrap().is_none(), "exact duplicate ignored");
    assert_eq!(r.stats.duplicates, 1);
    // An overlapping fragment poisons the datagram.
    let mut overlap = frags[1].clone();
    {
        let mut x = ipv4::Packet::new_unchecked(&mut overlap[..]);
        let off = x.frag_offset();
        x.set_frag(false, true, off - 8);
        x.fill_checksum();
    }
    assert_eq!(r.push(&overlap, 1).unwrap_err(), DropReason::FragOverlap);
    assert_eq!(r.in_progress(), 0, "the whole datagram is discarded");
    // Non-last fragment whose length is not a multiple of 8.
    let mut odd = frags[1].clone();
    odd.truncate(odd.len() - 3);
    {
        let mut x = ipv4::Packet::new_unchecked(&mut odd[..]);
        let l = x.total_len();
        x.set_total_len(l - 3);
        x.fill_checksum();
    }
    assert_eq!(r.push(&odd, 1).unwrap_err(), DropReason::FragMalformed);
    // The table holds two datagrams; a third is refused until one times out.
    let other = |ident: u16| {
        let mut f = frags[0].clone();
        let mut x = ipv4::Packet::new_unchecked(&mut f[..]);
        x.set_ident(ident);
        x.fill_checksum();
        f
    };
    r.push(&other(1), 10).unwrap();
    r.push(&other(2), 10).unwrap();
    assert_eq!(r.push(&other(3), 20).unwrap_err(), DropReason::FragTableFull);
    assert!(r.push(&other(3), 2000).unwrap().is_none(), "expired slots are reused");
    assert_eq!(r.stats.timeouts, 2);
    assert_eq!(r.expire(5000), 1);
}

#[test]
fn reassembles_ipv6_with_extension_headers() {
    // Fixed header, hop-by-hop (8 bytes), fragment header, then a UDP 4500 datagram.
    let dgram = {
        let full = udp6(v6(CLIENT6), v6(GW6), 4500, 4500, &(0..2000).map(|i| i as u8).collect::<Vec<_>>());
        full[40..].to_vec() // UDP header + payload
    };
    let make = |off: usize, end: usize, more: bool| {
        let chunk = &dgram[off..end];
        let mut p = vec![0u8; 40 + 8 + 8 + chunk.len()];
        ipv6::Repr {
            src: v6(CLIENT6),
            dst: v6(GW6),
            next_header: 0,
            payload_len: 16 + chunk.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut p);
        p[40..48].copy_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // HBH -> fragment, PadN
        ipv6::emit_frag_header(&mut p[48..56], 17, off as u16, more, 0xfeed);
        p[56..].copy_from_slice(chunk);
        p
    };
    let f = [make(0, 1232, true), make(1232, dgram.len(), false)];
    assert_eq!(classify(&f[0], ours), Class::Fragment);
    let mut r = Reassembler::new(ReasmConfig::default());
    assert!(r.push(&f[1], 1).unwrap().is_none());
    let p = r.push(&f[0], 1).unwrap().unwrap().to_vec();
    let x = ipv6::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(x.total_len(), p.len());
    assert_eq!(x.next_header(), 0);
    let u = x.upper_layer().unwrap();
    assert_eq!((u.protocol, u.offset, u.frag), (17, 8, None));
    assert_eq!(&p[48..], &dgram[..]);
    assert!(matches!(classify(&p, ours), Class::Esp { udp: true, .. }));
}

proptest::proptest! {
    #[test]
    fn reassembly_is_order_and_duplicate_proof(len in 100usize..6000, mtu in 200usize..1500, seed: u64) {
        let orig = natt_big(len);
        let mut frags = fragments(&orig, mtu);
        // A packet small enough for one "fragment" is not a fragment at all.
        proptest::prop_assume!(frags.len() > 1);
        // Shuffle deterministically and duplicate some.
        let mut s = seed | 1;
        for i in (1..frags.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            frags.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let dups: Vec<Vec<u8>> = frags.iter().step_by(3).cloned().collect();
        frags.extend(dups);
        let mut r = Reassembler::new(ReasmConfig::default());
        let mut got = None;
        for f in &frags {
            if let Some(p) = r.push(f, 1).unwrap() {
                proptest::prop_assert!(got.is_none(), "completed twice");
                got = Some(p.to_vec());
            }
        }
        proptest::prop_assert_eq!(got.unwrap_or_default(), orig);
    }
}
