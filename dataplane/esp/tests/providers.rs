#![allow(clippy::unwrap_used)]
//! The same known-answer and property tests against every crypto provider compiled in.
//!
//! Known answers: the AES-GCM ESP packets of draft-mcgrew-gcm-test-01 (with the corrected
//! checksums DPDK's test suite uses), the AES-CBC ESP packet of RFC 3602 §4 case 5 (with an
//! ICV added, computed by the independent `hmac` crate), an AES-128-CBC + HMAC-SHA-256-128
//! ESP packet from DPDK's IPsec test vectors, and an AES-256-GCM ESP packet in IPv6.
//! Providers are also checked against each other: whatever one seals, every other opens.

use esprit_esp::crypto::{providers, CryptoOp, CryptoProvider, OpStatus, SaKeys};
use esprit_esp::Transform;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

struct Kat {
    name: &'static str,
    t: Transform,
    enc: Vec<u8>,
    int: Vec<u8>,
    seq: u64,
    /// ESP header through ICV.
    esp: Vec<u8>,
    /// Expected plaintext of the body: inner packet, padding, pad length, next header.
    plain: Vec<u8>,
}

fn kats() -> Vec<Kat> {
    let mut v = vec![
        Kat {
            name: "draft-mcgrew-gcm-test-01 AES-128-GCM (IPv4/UDP)",
            t: Transform::Aes128Gcm16,
            enc: h("feffe9928665731c6d6a8f9467308308 cafebabe"),
            int: vec![],
            seq: 1,
            esp: h("0000a5f8 00000001 facedbaddecaf888
                    deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c
                    3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd4
                    29c737579ff19e58cffc607a3bce8994"),
            plain: h("4500003e698f000080114dccc0a80102c0a80101
                      0a980035002a2343b2d001000001000000000000037369700963796265726369747902646b0000010001
                      0004"),
        },
        Kat {
            name: "draft-mcgrew-gcm-test-01 AES-256-GCM (IPv4/TCP)",
            t: Transform::Aes256Gcm16,
            enc: h("abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344"),
            int: vec![],
            seq: 1,
            esp: h("4a2cbfe3 00000001 0102030405060708
                    ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763
                    748a637985771d347f0545659f14e99def842d8b00144a1fec6adf0c9a927fee
                    a6c51160"),
            plain: h("4500003069a6400080062690c0a80102 9389155e
                      0a9e008b2dc57ee000000000700240 0020bf0000020405b401010402
                      01020204"),
        },
        Kat {
            name: "AES-256-GCM, IPv6 inner (DPDK vector)",
            t: Transform::Aes256Gcm16,
            enc: h("de12be56deadbeefdeadbeefdeadbeef1278be3401020307aabbccf108070605 11223344"),
            int: vec![],
            seq: 1,
            esp: h("00000034 00000001 45adfe2378561200
                    e7dfc47e21bdec1b745ae47e2e94210a9b0e59be062adab86b487f0b883aa9fd
                    3cfe9fb18c67d2f8afb5ad16dbff8d50d348f56c3c0c27342b65c8ffeb5fb8ff
                    12001c9fb785dd7d4019cb18eb15c488e1c291c7b165c32716068ff2"),
            plain: h("6000000000200638 2607f8b0400c0c03000000000000001a 20010470e5bfdead49572174e82c4887
                      0019f9c79563979c03a08831 8012a7d625830000020405 6a0101040201030307
                      01020229"),
        },
        Kat {
            name: "AES-128-CBC + HMAC-SHA-256-128 (DPDK vector)",
            t: Transform::Aes128Sha256,
            enc: h("00040501230000000000 0a0b0c0f0000"),
            int: h("de34560000007800001000000000000210304000010203040a0b0c0d05060708"),
            seq: 1,
            esp: h("00000034 00000001 34126745ffff000020bfe83900000000
                    67b5466e7817d35aac626262b0579b09194f0659c8b030651f455741721728e9
                    ad50be441d2d9ad048750d1c8d24a86f6b24b65d431e55f0f7141ff261d4e030
                    16be1b5cccb7661c47ad076cd5cbce6c"),
            plain: h("45000032000100001f11178bc0a8016fc0a80170
                      00090009001e0000be9be95500000021000000000000000000000000 0000
                      0102030405060708090a0b0c 0c04"),
        },
    ];
    // RFC 3602 §4 case 5: AES-128-CBC ESP (ICMP echo). The RFC has no integrity; append an
    // HMAC-SHA1-96 ICV computed with the `hmac` crate so every provider can open it.
    let mut esp = h("00008765 00000002 f4e765244f6407adf13dc1380f673f37
                     773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8
                     e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5
                     c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d");
    let int = vec![0x11u8; 20];
    {
        use hmac::{Hmac, KeyInit, Mac};
        let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&int).unwrap();
        m.update(&esp);
        esp.extend_from_slice(&m.finalize().into_bytes()[..12]);
    }
    v.push(Kat {
        name: "RFC 3602 case 5 AES-128-CBC (+HMAC-SHA1-96)",
        t: Transform::Aes128Sha1,
        enc: h("0123456789abcdef0123456789abcdef"),
        int,
        seq: 2,
        esp,
        plain: h("450000540904000040 01f988c0a87b03c0a87bc8
                  08009f76a90a0100b49c083d02a204000809 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
                  202122232425262728292a2b2c2d2e2f3031323334353637
                  0102030405060708090a 0a04"),
    });
    v
}

fn cipher(
    p: &dyn CryptoProvider,
    t: Transform,
    enc: &[u8],
    int: &[u8],
    esn: bool,
) -> Box<dyn esprit_esp::crypto::EspCipher> {
    p.new_cipher(t, &SaKeys::new(t, enc, int).unwrap(), esn).unwrap()
}

fn open(c: &dyn esprit_esp::crypto::EspCipher, esp: &mut [u8], seq: u64) -> OpStatus {
    let mut ops = [CryptoOp::new(esp, seq)];
    c.open(&mut ops);
    ops[0].status
}

fn seal(c: &dyn esprit_esp::crypto::EspCipher, esp: &mut [u8], seq: u64) -> OpStatus {
    let mut ops = [CryptoOp::new(esp, seq)];
    c.seal(&mut ops);
    ops[0].status
}

#[test]
fn at_least_two_providers() {
    let names: Vec<_> = providers().iter().map(|p| p.name()).collect();
    assert!(names.contains(&"rustcrypto"), "{names:?}");
    assert!(names.len() >= 2, "a fast provider must be compiled in: {names:?}");
}

#[test]
fn known_answers_open() {
    for p in providers() {
        for k in kats() {
            let c = cipher(p, k.t, &k.enc, &k.int, false);
            let mut esp = k.esp.clone();
            assert_eq!(open(&*c, &mut esp, k.seq), OpStatus::Ok, "{} / {}", p.name(), k.name);
            let l = k.t.layout();
            let body = &esp[8 + l.iv_len..esp.len() - l.icv_len];
            assert_eq!(hex::encode(body), hex::encode(&k.plain), "{} / {}", p.name(), k.name);
        }
    }
}

#[test]
fn known_answers_reject_any_change() {
    for p in providers() {
        for k in kats() {
            let c = cipher(p, k.t, &k.enc, &k.int, false);
            // Flip one bit in the SPI, the sequence number, the IV, the ciphertext and the ICV.
            for at in [0, 5, 9, k.esp.len() / 2, k.esp.len() - 1] {
                let mut esp = k.esp.clone();
                esp[at] ^= 0x10;
                assert_eq!(open(&*c, &mut esp, k.seq), OpStatus::AuthFailed, "{} / {} byte {at}", p.name(), k.name);
                // Unauthenticated plaintext never appears: the body is as received or zeroed.
                let l = k.t.layout();
                let body = 8 + l.iv_len..esp.len() - l.icv_len;
                let (orig, now) = (&k.esp[body.clone()], &esp[body.clone()]);
                let changed = orig.iter().zip(now).filter(|(a, b)| a != b).count();
                let flipped_in_body = usize::from(body.contains(&at));
                assert!(
                    changed == flipped_in_body || now.iter().all(|&b| b == 0),
                    "{} / {} byte {at}: body altered after failed authentication",
                    p.name(),
                    k.name
                );
            }
            // The same packet claimed with a different high half of an ESN.
            let c = cipher(p, k.t, &k.enc, &k.int, true);
            let mut esp = k.esp.clone();
            assert_eq!(open(&*c, &mut esp, k.seq | (1 << 32)), OpStatus::AuthFailed, "{} / {} esn", p.name(), k.name);
        }
    }
}

fn keys_for(t: Transform, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let enc = (0..t.enc_key_len()).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)).collect();
    let int = (0..t.int_key_len()).map(|i| seed.wrapping_add(7).wrapping_mul(i as u8 | 1)).collect();
    (enc, int)
}

/// An ESP packet with `payload` and default padding, ready to seal.
fn plain_packet(t: Transform, spi: u32, seq: u64, payload: &[u8]) -> Vec<u8> {
    let l = t.layout();
    let pad = l.pad_len(payload.len());
    let mut v = Vec::with_capacity(l.esp_len(payload.len()));
    v.extend_from_slice(&spi.to_be_bytes());
    v.extend_from_slice(&(seq as u32).to_be_bytes());
    v.resize(8 + l.iv_len, 0);
    v.extend_from_slice(payload);
    v.extend((1..=pad as u8).collect::<Vec<_>>());
    v.extend_from_slice(&[pad as u8, 4]);
    v.resize(v.len() + l.icv_len, 0);
    assert_eq!(v.len(), l.esp_len(payload.len()));
    v
}

#[test]
fn every_provider_opens_what_every_other_seals() {
    let all = providers();
    for t in Transform::ALL {
        for esn in [false, true] {
            let (enc, int) = keys_for(t, 3);
            for sealer in &all {
                let s = cipher(*sealer, t, &enc, &int, esn);
                for len in [0usize, 1, 13, 14, 15, 16, 17, 64, 255, 256, 1000, 1418] {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                    let seq = 0x1_0000_0005u64 + len as u64;
                    let mut esp = plain_packet(t, 0x1234_5678, seq, &payload);
                    let before = esp.clone();
                    assert_eq!(seal(&*s, &mut esp, seq), OpStatus::Ok, "{} {t} len {len}", sealer.name());
                    assert_ne!(esp[8..], before[8..], "sealing changed nothing");
                    for opener in &all {
                        let o = cipher(*opener, t, &enc, &int, esn);
                        let mut copy = esp.clone();
                        assert_eq!(
                            open(&*o, &mut copy, seq),
                            OpStatus::Ok,
                            "{}→{} {t} esn {esn} len {len}",
                            sealer.name(),
                            opener.name()
                        );
                        let l = t.layout();
                        assert_eq!(
                            copy[8 + l.iv_len..copy.len() - l.icv_len],
                            before[8 + l.iv_len..before.len() - l.icv_len]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn ivs_never_repeat_and_gcm_iv_is_the_sequence_number() {
    for p in providers() {
        for t in Transform::ALL {
            let (enc, int) = keys_for(t, 9);
            let c = cipher(p, t, &enc, &int, false);
            let l = t.layout();
            let mut seen = std::collections::HashSet::new();
            for seq in 1..200u64 {
                let mut esp = plain_packet(t, 0x1000, seq, b"same payload every time");
                assert_eq!(seal(&*c, &mut esp, seq), OpStatus::Ok);
                let iv = esp[8..8 + l.iv_len].to_vec();
                if t.is_aead() {
                    assert_eq!(iv, seq.to_be_bytes(), "{} {t}", p.name());
                }
                assert!(seen.insert(iv), "{} {t}: IV repeated at seq {seq}", p.name());
            }
        }
    }
}

#[test]
fn bursts_mix_good_and_bad() {
    for p in providers() {
        for t in Transform::ALL {
            let (enc, int) = keys_for(t, 1);
            let c = cipher(p, t, &enc, &int, false);
            let mut pkts: Vec<Vec<u8>> =
                (1..=40u64).map(|s| plain_packet(t, 0x4242, s, &vec![s as u8; 40 + s as usize])).collect();
            {
                let mut ops: Vec<CryptoOp> =
                    pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, i as u64 + 1)).collect();
                c.seal(&mut ops);
                assert!(ops.iter().all(|o| o.status == OpStatus::Ok));
            }
            // Corrupt every third packet, truncate one to below the minimum.
            for (i, e) in pkts.iter_mut().enumerate() {
                if i % 3 == 0 {
                    let n = e.len();
                    e[n - 3] ^= 1;
                }
            }
            pkts[10].truncate(10);
            let mut ops: Vec<CryptoOp> =
                pkts.iter_mut().enumerate().map(|(i, e)| CryptoOp::new(e, i as u64 + 1)).collect();
            c.open(&mut ops);
            for (i, o) in ops.iter().enumerate() {
                let want = if i == 10 {
                    OpStatus::BadLength
                } else if i % 3 == 0 {
                    OpStatus::AuthFailed
                } else {
                    OpStatus::Ok
                };
                assert_eq!(o.status, want, "{} {t} packet {i}", p.name());
            }
        }
    }
}

#[test]
fn cbc_rejects_partial_blocks() {
    for p in providers() {
        let t = Transform::Aes128Sha1;
        let (enc, int) = keys_for(t, 2);
        let c = cipher(p, t, &enc, &int, false);
        let mut esp = plain_packet(t, 0x5555, 1, &[0u8; 30]);
        esp.insert(30, 0); // body no longer a multiple of 16
        assert_eq!(seal(&*c, &mut esp, 1), OpStatus::BadLength, "{}", p.name());
        assert_eq!(open(&*c, &mut esp, 1), OpStatus::BadLength, "{}", p.name());
    }
}

#[test]
fn wrong_key_lengths_are_clear_errors() {
    let e = SaKeys::new(Transform::Aes128Gcm16, &[0u8; 16], &[]).unwrap_err().to_string();
    assert!(e.contains("20-byte encryption key") && e.contains("aes128gcm16"), "{e}");
    let e = SaKeys::new(Transform::Aes128Sha1, &[0u8; 16], &[0u8; 32]).unwrap_err().to_string();
    assert!(e.contains("20-byte integrity key"), "{e}");
}

/// RFC 2202 §3 (HMAC-SHA1) and RFC 4231 §4 (HMAC-SHA-256) vectors against the HMAC
/// implementations the providers use.
#[test]
fn hmac_vectors() {
    use hmac::{Hmac, KeyInit, Mac};
    let sha1_cases = [
        ("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", b"Hi There".to_vec(), "b617318655057264e28bc0b6fb378c8ef146be00"),
        ("4a656665", b"what do ya want for nothing?".to_vec(), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", vec![0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
    ];
    for (k, m, want) in sha1_cases {
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&h(k)).unwrap();
        mac.update(&m);
        assert_eq!(hex::encode(mac.finalize().into_bytes()), want);
        #[cfg(feature = "aws-lc")]
        {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &h(k));
            assert_eq!(hex::encode(aws_lc_rs::hmac::sign(&key, &m)), want);
        }
    }
    let sha256_cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            "4a656665",
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
    ];
    for (k, m, want) in sha256_cases {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&h(k)).unwrap();
        mac.update(&m);
        assert_eq!(hex::encode(mac.finalize().into_bytes()), want);
        #[cfg(feature = "aws-lc")]
        {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &h(k));
            assert_eq!(hex::encode(aws_lc_rs::hmac::sign(&key, &m)), want);
        }
    }
}
