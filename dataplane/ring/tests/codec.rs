//! The message ABI: every message round-trips; malformed input is refused, never a panic.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::IpAddr;

use esprit_ring::codec::{transform_from_ids, transform_ids, MAX_SELECTORS};
use esprit_ring::message::*;
use esprit_ring::{decode, DecodeError, EncodeError};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(s: &str, port: u16) -> Endpoint {
    Endpoint { addr: ip(s), port }
}

fn ifn(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

fn add_sa(t: Transform) -> AddSa {
    AddSa {
        cookie: 0x0123_4567_89ab_cdef,
        direction: SaDirection::In,
        spi: 0xc0ff_ee01,
        transform: t,
        enc_key: KeyBytes::new(&vec![0x5a; t.enc_key_len()]),
        int_key: KeyBytes::new(&vec![0xa5; t.int_key_len()]),
        local: ip("192.0.2.1"),
        remote: ip("198.51.100.7"),
        encap: Some(UdpEncap { local_port: 4500, remote_port: 61_234 }),
        esn: true,
        replay_window: 1024,
        local_ts: vec![TrafficSelector::from_cidr("10.0.0.0/8".parse().unwrap())],
        remote_ts: vec![TrafficSelector {
            start: ip("10.99.0.5"),
            end: ip("10.99.0.5"),
            protocol: 17,
            start_port: 53,
            end_port: 53,
        }],
        df: DfMode::Set,
        lifetime: Lifetime {
            soft_bytes: 1 << 30,
            hard_bytes: 1 << 31,
            soft_packets: 1_000_000,
            hard_packets: 2_000_000,
            soft_secs: 3300,
            hard_secs: 3600,
            idle_secs: 300,
        },
        initial_seq: 77,
    }
}

/// At least one of every message kind, with variants.
fn samples() -> Vec<Message> {
    let mut v: Vec<Message> = Transform::ALL.into_iter().map(|t| Message::AddSa(Box::new(add_sa(t)))).collect();
    let mut v6 = add_sa(Transform::Aes256Gcm16);
    v6.direction = SaDirection::Out;
    v6.local = ip("2001:db8::1");
    v6.remote = ip("2001:db8:ffff::2");
    v6.encap = None;
    v6.esn = false;
    v6.local_ts = vec![TrafficSelector::from_cidr("::/0".parse().unwrap())];
    v6.remote_ts = vec![];
    v6.df = DfMode::Clear;
    v6.lifetime = Lifetime::default();
    v.push(Message::AddSa(Box::new(v6)));
    let subject = Subject { kind: MessageKind::AddSa, spi: 0xc0ff_ee01, cookie: 42 };
    v.extend([
        Message::DeleteSa(DeleteSa { direction: SaDirection::Out, spi: 0x1000 }),
        Message::SetPeer(SetPeer { spi_in: 1000, spi_out: 2000, endpoint: ep("203.0.113.9", 1025) }),
        Message::AddPolicy(Policy {
            src: "0.0.0.0/0".parse().unwrap(),
            dst: "10.99.0.5/32".parse().unwrap(),
            spi_out: 2000,
        }),
        Message::DeletePolicy(Policy {
            src: "2001:db8::/32".parse().unwrap(),
            dst: "fd00::/8".parse().unwrap(),
            spi_out: 2001,
        }),
        Message::AddRoute(Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(ip("192.0.2.254")),
            interface: ifn("outside"),
        }),
        Message::DeleteRoute(Route {
            prefix: "fd00:1::/64".parse().unwrap(),
            gateway: None,
            interface: ifn("inside0"),
        }),
        Message::SetAddress(IfAddress { interface: ifn("outside"), addr: ip("192.0.2.1"), prefix_len: 24 }),
        Message::RemoveAddress(IfAddress { interface: ifn("inside"), addr: ip("2001:db8::1"), prefix_len: 128 }),
        Message::SetKeepalive { interval_secs: 20 },
        Message::Transmit(Transmit {
            src: ep("192.0.2.1", 4500),
            dst: ep("198.51.100.7", 61_234),
            non_esp_marker: true,
            payload: (0..=255u8).cycle().take(1200).collect(),
        }),
        Message::Transmit(Transmit {
            src: ep("2001:db8::1", 500),
            dst: ep("2001:db8::2", 500),
            non_esp_marker: false,
            payload: vec![0xab; MAX_DATAGRAM],
        }),
        Message::Flush,
        Message::SyncDone,
        Message::Trace(TraceRequest {
            id: 7,
            peer: Some("198.51.100.7".parse().unwrap()),
            dir: "/var/lib/esprit/trace-1".into(),
            max_packets: 100_000,
        }),
        Message::Trace(TraceRequest { id: 7, peer: None, dir: String::new(), max_packets: 0 }),
        Message::Hello(Hello { generation: 3, start_unix_ns: 1_700_000_000_000_000_000 }),
        Message::Punt(Punt {
            src: ep("198.51.100.7", 61_234),
            dst: ep("192.0.2.1", 4500),
            interface: ifn("outside"),
            had_marker: true,
            payload: vec![0; 28],
        }),
        Message::Punt(Punt {
            src: ep("2001:db8::2", 500),
            dst: ep("2001:db8::1", 500),
            interface: ifn("outside"),
            had_marker: false,
            payload: vec![],
        }),
        Message::Ack(subject),
    ]);
    for kind in [
        SaEventKind::SoftLifetime,
        SaEventKind::HardLifetime,
        SaEventKind::SeqNearExhaustion,
        SaEventKind::NatMappingChanged { endpoint: ep("203.0.113.9", 1026) },
        SaEventKind::Idle { seconds: 300 },
    ] {
        v.push(Message::SaEvent(SaEvent { cookie: 42, spi: 0xc0ff_ee01, direction: SaDirection::In, kind }));
    }
    for code in
        [ErrorCode::Invalid, ErrorCode::Exists, ErrorCode::NotFound, ErrorCode::NoResources, ErrorCode::Unsupported]
    {
        v.push(Message::Error(ApplyError {
            about: subject,
            code,
            reason: "SPI 0xc0ffee01 already installed — ünïcödé".into(),
        }));
    }
    v
}

/// Also writes the fuzzer's seeds when asked:
/// `ESPRIT_RING_CORPUS=$PWD/fuzz/corpus/ring_decode cargo test -p esprit-ring --test codec`.
#[test]
fn every_kind_round_trips() {
    let mut seen = HashSet::new();
    let corpus = std::env::var_os("ESPRIT_RING_CORPUS").map(std::path::PathBuf::from);
    for (i, m) in samples().into_iter().enumerate() {
        let b = m.encode().unwrap();
        if let Some(dir) = &corpus {
            std::fs::write(dir.join(format!("{}-{i}", m.kind())), &b).unwrap();
        }
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), m.kind().tag());
        assert_eq!(decode(&b).unwrap(), m, "{:?}", m.kind());
        seen.insert(m.kind());
    }
    for k in MessageKind::ALL {
        assert!(seen.contains(k), "no sample of {k}");
        assert_eq!(MessageKind::from_tag(k.tag()), Some(*k));
    }
}

#[test]
fn known_encoding() {
    // Independent of the encoder: the bytes as the ABI documents them.
    let m = Message::DeleteSa(DeleteSa { direction: SaDirection::Out, spi: 0x0102_0304 });
    assert_eq!(m.encode().unwrap(), [0x02, 0x00, 1, 0x04, 0x03, 0x02, 0x01]);
    let m = Message::SetPeer(SetPeer { spi_in: 1, spi_out: 2, endpoint: ep("203.0.113.9", 4500) });
    assert_eq!(m.encode().unwrap(), [3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, 203, 0, 113, 9, 0x94, 0x11]);
    assert_eq!(Message::Flush.encode().unwrap(), [0x0c, 0x00]);
    assert_eq!(
        Message::Hello(Hello { generation: 2, start_unix_ns: 1 }).encode().unwrap(),
        [1, 0x80, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn transform_ids_are_iana() {
    // RFC 7296 §3.3.2 / IANA: ENCR_AES_CBC 12, ENCR_AES_GCM_16 20, ENCR_CHACHA20_POLY1305 28;
    // AUTH_HMAC_SHA1_96 2, AUTH_HMAC_SHA2_256_128 12.
    assert_eq!(transform_ids(Transform::Aes128Gcm16), (20, 128, 0));
    assert_eq!(transform_ids(Transform::Aes256Sha256), (12, 256, 12));
    assert_eq!(transform_ids(Transform::Aes128Sha1), (12, 128, 2));
    assert_eq!(transform_ids(Transform::Chacha20Poly1305), (28, 0, 0));
    for t in Transform::ALL {
        let (e, k, i) = transform_ids(t);
        assert_eq!(transform_from_ids(e, k, i), Some(t));
    }
    assert_eq!(transform_from_ids(20, 192, 0), None);
}

#[test]
fn every_truncation_is_an_error() {
    for m in samples() {
        let b = m.encode().unwrap();
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "{:?} truncated to {n} bytes decoded", m.kind());
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for m in samples() {
        let mut b = m.encode().unwrap();
        b.push(0);
        assert!(matches!(decode(&b), Err(DecodeError::TrailingBytes { extra: 1, .. })), "{:?}", m.kind());
    }
}

#[test]
fn bad_values_are_refused() {
    assert_eq!(decode(&[0x0f, 0x00]), Err(DecodeError::UnknownTag(0x000f)));
    assert_eq!(decode(&[0xff, 0xff]), Err(DecodeError::UnknownTag(0xffff)));
    // Direction 2.
    assert!(matches!(decode(&[2, 0, 2, 1, 0, 0, 0]), Err(DecodeError::BadValue { field: "direction", value: 2 })));
    // Address family 5.
    assert!(matches!(
        decode(&[3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 5, 1, 2, 3, 4, 0, 0]),
        Err(DecodeError::BadValue { value: 5, .. })
    ));
    // A bool that is 2.
    let mut b = Message::Transmit(Transmit {
        src: ep("192.0.2.1", 500),
        dst: ep("192.0.2.2", 500),
        non_esp_marker: false,
        payload: vec![],
    })
    .encode()
    .unwrap();
    b[2 + 7 + 7] = 2;
    assert!(matches!(decode(&b), Err(DecodeError::BadValue { field: "non_esp_marker", .. })));
    // A datagram length beyond 64 KiB is refused before anything is read.
    let mut b = b.clone();
    b[2 + 7 + 7] = 0;
    b[17..21].copy_from_slice(&70_000u32.to_le_bytes());
    assert!(matches!(decode(&b), Err(DecodeError::TooLong { field: "payload", .. })));
    // A prefix with host bits.
    let mut b = Message::AddPolicy(Policy {
        src: "10.0.0.0/8".parse().unwrap(),
        dst: "10.1.0.0/16".parse().unwrap(),
        spi_out: 1,
    })
    .encode()
    .unwrap();
    b[4] = 1; // 10.1.0.0/8
    assert!(matches!(decode(&b), Err(DecodeError::Invalid { .. })));
    b[4] = 0;
    b[7] = 33; // /33
    assert!(matches!(decode(&b), Err(DecodeError::BadValue { value: 33, .. })));
}

#[test]
fn key_lengths_are_checked() {
    let mut a = add_sa(Transform::Aes128Gcm16);
    a.enc_key = KeyBytes::new(&[1; 16]); // the salt is missing
    let m = Message::AddSa(Box::new(a.clone()));
    assert!(matches!(m.encode(), Err(EncodeError::KeyLength { want: 20, got: 16, .. })));
    // The same mistake made by a peer that does not check.
    a.enc_key = KeyBytes::new(&[1; 20]);
    let mut b = Message::AddSa(Box::new(a)).encode().unwrap();
    let at = 2 + 8 + 1 + 4 + 6;
    assert_eq!(&b[at..at + 2], &20u16.to_le_bytes());
    b[at] = 16;
    b.drain(at + 2..at + 6);
    assert!(matches!(decode(&b), Err(DecodeError::KeyLength { want: 20, got: 16, .. })));
    // An unknown transform.
    let mut b = Message::AddSa(Box::new(add_sa(Transform::Aes128Gcm16))).encode().unwrap();
    b[2 + 8 + 1 + 4] = 3; // ENCR_3DES
    assert!(matches!(decode(&b), Err(DecodeError::UnknownTransform { encr: 3, .. })));
}

#[test]
fn limits_are_checked_when_encoding() {
    let big = Message::Transmit(Transmit {
        src: ep("192.0.2.1", 500),
        dst: ep("192.0.2.2", 500),
        non_esp_marker: false,
        payload: vec![0; MAX_DATAGRAM + 1],
    });
    assert!(matches!(big.encode(), Err(EncodeError::TooLong { .. })));
    let mut a = add_sa(Transform::Aes128Gcm16);
    a.local_ts = vec![a.local_ts[0]; MAX_SELECTORS + 1];
    assert!(matches!(Message::AddSa(Box::new(a)).encode(), Err(EncodeError::TooLong { .. })));
    let mut a = add_sa(Transform::Aes128Gcm16);
    a.remote_ts[0].start = ip("::1");
    assert!(matches!(Message::AddSa(Box::new(a)).encode(), Err(EncodeError::Invalid { .. })));
    let bad_reply = Message::Ack(Subject { kind: MessageKind::Punt, spi: 0, cookie: 0 });
    assert!(bad_reply.encode().is_err());
    let addr = Message::SetAddress(IfAddress { interface: ifn("x"), addr: ip("192.0.2.1"), prefix_len: 33 });
    assert!(addr.encode().is_err());
    assert!(IfName::new("").is_err());
    assert!(IfName::new("has space").is_err());
    assert!(IfName::new(&"x".repeat(33)).is_err());
}

#[test]
fn keys_are_never_printed() {
    let mut a = add_sa(Transform::Aes128Sha256);
    a.enc_key = KeyBytes::new(&[0x42; 16]);
    a.int_key = KeyBytes::new(&[0x37; 32]);
    let s = format!("{:?} {:#?}", a, Message::AddSa(Box::new(a.clone())));
    assert!(s.contains("redacted"), "{s}");
    for needle in ["66, 66", "0x42", "55, 55", "0x37"] {
        assert!(!s.contains(needle), "{needle} in {s}");
    }
}

#[test]
fn directions() {
    for m in samples() {
        let to_data = m.kind().tag() & 0x8000 == 0;
        assert_eq!(m.heading() == Heading::ToData, to_data);
    }
}

// ---- properties

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from),]
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    (arb_addr(), any::<u16>()).prop_map(|(addr, port)| Endpoint { addr, port })
}

fn arb_cidr() -> impl Strategy<Value = IpCidr> {
    (arb_addr(), any::<u8>()).prop_map(|(a, l)| {
        let max = if a.is_ipv4() { 33 } else { 129 };
        IpCidr::new(a, l % max).unwrap()
    })
}

fn arb_ifname() -> impl Strategy<Value = IfName> {
    "[!-~]{1,32}".prop_map(|s| IfName::new(&s).unwrap())
}

fn arb_ts() -> impl Strategy<Value = TrafficSelector> {
    (
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| (
                IpAddr::from(std::net::Ipv4Addr::from(a.min(b))),
                IpAddr::from(std::net::Ipv4Addr::from(a.max(b)))
            )),
            (any::<u128>(), any::<u128>()).prop_map(|(a, b)| (
                IpAddr::from(std::net::Ipv6Addr::from(a.min(b))),
                IpAddr::from(std::net::Ipv6Addr::from(a.max(b)))
            )),
        ],
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|((start, end), protocol, p, q)| TrafficSelector {
            start,
            end,
            protocol,
            start_port: p.min(q),
            end_port: p.max(q),
        })
}

fn arb_dir() -> impl Strategy<Value = SaDirection> {
    prop_oneof![Just(SaDirection::In), Just(SaDirection::Out)]
}

fn arb_add_sa() -> impl Strategy<Value = AddSa> {
    (
        (any::<u64>(), arb_dir(), any::<u32>(), 0..Transform::ALL.len()),
        (arb_addr(), arb_addr(), proptest::option::of(any::<(u16, u16)>())),
        (any::<bool>(), any::<u32>(), any::<u64>(), any::<[u64; 4]>(), any::<[u32; 3]>()),
        (proptest::collection::vec(arb_ts(), 0..4), proptest::collection::vec(arb_ts(), 0..4), 0..3u8, any::<u8>()),
    )
        .prop_map(
            |((cookie, direction, spi, t), (local, remote, encap), (esn, rw, seq, l, t3), (lt, rt, df, k))| {
                let t = Transform::ALL[t];
                AddSa {
                    cookie,
                    direction,
                    spi,
                    transform: t,
                    enc_key: KeyBytes::new(&vec![k; t.enc_key_len()]),
                    int_key: KeyBytes::new(&vec![!k; t.int_key_len()]),
                    local,
                    remote,
                    encap: encap.map(|(a, b)| UdpEncap { local_port: a, remote_port: b }),
                    esn,
                    replay_window: rw,
                    local_ts: lt,
                    remote_ts: rt,
                    df: [DfMode::Copy, DfMode::Set, DfMode::Clear][df as usize],
                    lifetime: Lifetime {
                        soft_bytes: l[0],
                        hard_bytes: l[1],
                        soft_packets: l[2],
                        hard_packets: l[3],
                        soft_secs: t3[0],
                        hard_secs: t3[1],
                        idle_secs: t3[2],
                    },
                    initial_seq: seq,
                }
            },
        )
}

fn arb_subject() -> impl Strategy<Value = Subject> {
    (0..13usize, any::<u32>(), any::<u64>()).prop_map(|(k, spi, cookie)| Subject {
        kind: MessageKind::ALL[k],
        spi,
        cookie,
    })
}

fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => proptest::collection::vec(any::<u8>(), 0..1500),
        1 => (0..=MAX_DATAGRAM).prop_map(|n| vec![0x5c; n]),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_add_sa().prop_map(|a| Message::AddSa(Box::new(a))),
        (arb_dir(), any::<u32>()).prop_map(|(direction, spi)| Message::DeleteSa(DeleteSa { direction, spi })),
        (any::<u32>(), any::<u32>(), arb_endpoint()).prop_map(|(a, b, e)| Message::SetPeer(SetPeer {
            spi_in: a,
            spi_out: b,
            endpoint: e
        })),
        (arb_cidr(), arb_cidr(), any::<u32>(), any::<bool>()).prop_map(|(src, dst, spi_out, add)| {
            let p = Policy { src, dst, spi_out };
            if add {
                Message::AddPolicy(p)
            } else {
                Message::DeletePolicy(p)
            }
        }),
        (arb_cidr(), proptest::option::of(arb_addr()), arb_ifname(), any::<bool>()).prop_map(
            |(prefix, gateway, interface, add)| {
                let r = Route { prefix, gateway, interface };
                if add {
                    Message::AddRoute(r)
                } else {
                    Message::DeleteRoute(r)
                }
            }
        ),
        (arb_ifname(), arb_addr(), any::<u8>(), any::<bool>()).prop_map(|(interface, addr, l, set)| {
            let a = IfAddress { interface, prefix_len: l % if addr.is_ipv4() { 33 } else { 129 }, addr };
            if set {
                Message::SetAddress(a)
            } else {
                Message::RemoveAddress(a)
            }
        }),
        any::<u32>().prop_map(|interval_secs| Message::SetKeepalive { interval_secs }),
        (arb_endpoint(), arb_endpoint(), any::<bool>(), arb_payload()).prop_map(
            |(src, dst, non_esp_marker, payload)| Message::Transmit(Transmit { src, dst, non_esp_marker, payload })
        ),
        Just(Message::Flush),
        Just(Message::SyncDone),
        (any::<u32>(), proptest::option::of(arb_addr()), "[ -~]{0,64}", any::<u32>())
            .prop_map(|(id, peer, dir, max_packets)| { Message::Trace(TraceRequest { id, peer, dir, max_packets }) }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(generation, start_unix_ns)| Message::Hello(Hello { generation, start_unix_ns })),
        (arb_endpoint(), arb_endpoint(), arb_ifname(), any::<bool>(), arb_payload()).prop_map(
            |(src, dst, interface, had_marker, payload)| Message::Punt(Punt {
                src,
                dst,
                interface,
                had_marker,
                payload
            })
        ),
        (
            any::<u64>(),
            any::<u32>(),
            arb_dir(),
            prop_oneof![
                Just(SaEventKind::SoftLifetime),
                Just(SaEventKind::HardLifetime),
                Just(SaEventKind::SeqNearExhaustion),
                arb_endpoint().prop_map(|endpoint| SaEventKind::NatMappingChanged { endpoint }),
                any::<u32>().prop_map(|seconds| SaEventKind::Idle { seconds }),
            ]
        )
            .prop_map(|(cookie, spi, direction, kind)| Message::SaEvent(SaEvent {
                cookie,
                spi,
                direction,
                kind
            })),
        arb_subject().prop_map(Message::Ack),
        (arb_subject(), 0..5usize, "\\PC{0,40}").prop_map(|(about, c, reason)| {
            Message::Error(ApplyError {
                about,
                code: [
                    ErrorCode::Invalid,
                    ErrorCode::Exists,
                    ErrorCode::NotFound,
                    ErrorCode::NoResources,
                    ErrorCode::Unsupported,
                ][c],
                reason,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_of_encode_is_identity(m in arb_message()) {
        let b = m.encode().unwrap();
        prop_assert_eq!(decode(&b).unwrap(), m);
    }

    #[test]
    fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&b);
    }

    #[test]
    fn decode_of_known_tag_then_noise_never_panics(
        k in 0..MessageKind::ALL.len(),
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut b = MessageKind::ALL[k].tag().to_le_bytes().to_vec();
        b.extend(rest);
        let _ = decode(&b);
    }

    #[test]
    fn mutated_encodings_never_panic(
        m in arb_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = m.encode().unwrap();
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] ^= v;
        }
        let _ = decode(&b);
        let n = cut.index(b.len() + 1);
        let _ = decode(&b[..n]);
        if let Ok(m2) = decode(&b) {
            // Whatever decodes re-encodes to the same bytes: no two encodings of one message.
            prop_assert_eq!(m2.encode().unwrap(), b);
        }
    }
}
