#![allow(clippy::unwrap_used)]
//! IKEv2 key derivation against NIST's answers, for every provider in `providers()`.
//!
//! * `tests/data/acvp/kdf-components-ikev2-1.0.json`: ACVP `kdf-components` / `ikev2` cases
//!   (SHA-1 and SHA2-384; see the README there for why only the byte-aligned groups).
//! * `tests/data/acvp/ikev2-cavs-17.3.fax`: the CAVS 17.3 IKEv2 vectors for SHA-1, SHA-256,
//!   SHA-384 and SHA-512.
//!
//! Both give, per case: SKEYSEED = prf(Ni | Nr, g^ir); DKM = prf+(SKEYSEED, Ni | Nr | SPIi |
//! SPIr); with SK_d the first PRF-output-length bytes of DKM, child DKM = prf+(SK_d, Ni | Nr)
//! and prf+(SK_d, g^ir (new) | Ni | Nr); and SKEYSEED(rekey) = prf(SK_d, g^ir (new) | Ni | Nr).
//! Each case also checks that `derive_ike_keys` cuts DKM in the order of RFC 7296 §2.14.

use esprit_esp::Transform;
use esprit_ikev2::crypto::{providers, CryptoProvider, DhGroup, EncrAlg, IntegAlg, PrfAlg};
use esprit_ikev2::keys::{
    child_keymat, child_keymat_len, derive_ike_keys, prf_plus, skeyseed, skeyseed_rekey, split_child_keymat,
    try_split_child_keymat, IkeSuite, KeyError, PRF_PLUS_MAX_BLOCKS,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/acvp/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// One KDF case, whatever file it came from.
struct Case {
    origin: String,
    prf: PrfAlg,
    ni: Vec<u8>,
    nr: Vec<u8>,
    g_ir: Vec<u8>,
    g_ir_new: Vec<u8>,
    spi_i: u64,
    spi_r: u64,
    skeyseed: Vec<u8>,
    dkm: Vec<u8>,
    dkm_child: Vec<u8>,
    dkm_child_dh: Vec<u8>,
    skeyseed_rekey: Vec<u8>,
}

fn spi(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap())
}

fn acvp_cases() -> Vec<Case> {
    let doc: serde_json::Value = serde_json::from_str(&data("kdf-components-ikev2-1.0.json")).unwrap();
    assert_eq!((doc["algorithm"].as_str(), doc["mode"].as_str()), (Some("kdf-components"), Some("ikev2")));
    let mut cases = Vec::new();
    for g in doc["testGroups"].as_array().unwrap() {
        let prf = match g["hashAlg"].as_str().unwrap() {
            "SHA-1" => PrfAlg::HmacSha1,
            "SHA2-256" => PrfAlg::HmacSha256,
            "SHA2-384" => PrfAlg::HmacSha384,
            "SHA2-512" => PrfAlg::HmacSha512,
            other => panic!("hash {other}: IKEv2 defines no PRF for it"),
        };
        let bits = |k: &str| g[k].as_u64().unwrap() as usize;
        // Only whole bytes: IKE has no bit strings.
        for k in [
            "dhLength",
            "nInitLength",
            "nRespLength",
            "derivedKeyingMaterialLength",
            "derivedKeyingMaterialChildLength",
        ] {
            assert_eq!(bits(k) % 8, 0, "group {}: {k}", g["tgId"]);
        }
        for t in g["tests"].as_array().unwrap() {
            let f = |k: &str| h(t[k].as_str().unwrap_or_else(|| panic!("tcId {}: no {k}", t["tcId"])));
            let c = Case {
                origin: format!("ACVP tcId {}", t["tcId"]),
                prf,
                ni: f("nInit"),
                nr: f("nResp"),
                g_ir: f("gir"),
                g_ir_new: f("girNew"),
                spi_i: spi(&f("spiInit")),
                spi_r: spi(&f("spiResp")),
                skeyseed: f("sKeySeed"),
                dkm: f("derivedKeyingMaterial"),
                dkm_child: f("derivedKeyingMaterialChild"),
                dkm_child_dh: f("derivedKeyingMaterialDh"),
                skeyseed_rekey: f("sKeySeedReKey"),
            };
            assert_eq!(c.ni.len() * 8, bits("nInitLength"));
            assert_eq!(c.nr.len() * 8, bits("nRespLength"));
            assert_eq!(c.g_ir.len() * 8, bits("dhLength"));
            assert_eq!(c.dkm.len() * 8, bits("derivedKeyingMaterialLength"));
            assert_eq!(c.dkm_child.len() * 8, bits("derivedKeyingMaterialChildLength"));
            cases.push(c);
        }
    }
    cases
}

/// Parses the CAVS `.fax` format: `[SHA-1]`-style section headers, then `name = value` lines,
/// a case ending with `SKEYSEED(Rekey)`.
fn cavs_cases() -> Vec<Case> {
    let text = data("ikev2-cavs-17.3.fax");
    let mut cases = Vec::new();
    let mut prf = None;
    let mut section = String::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            match tag {
                "SHA-1" => prf = Some(PrfAlg::HmacSha1),
                "SHA-256" => prf = Some(PrfAlg::HmacSha256),
                "SHA-384" => prf = Some(PrfAlg::HmacSha384),
                "SHA-512" => prf = Some(PrfAlg::HmacSha512),
                _ => {}
            }
            if tag.starts_with("g^ir length") {
                section.clear();
            }
            section.push_str(tag);
            section.push(' ');
            continue;
        }
        let (k, v) = line.split_once(" = ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
        fields.push((k.to_string(), v.to_string()));
        if k != "SKEYSEED(Rekey)" {
            continue;
        }
        let f = |name: &str| {
            let v = fields.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("{section}: no {name}"));
            h(&v.1)
        };
        let count = fields.iter().find(|(k, _)| k == "COUNT").unwrap().1.clone();
        cases.push(Case {
            origin: format!("CAVS {section}COUNT {count}"),
            prf: prf.expect("a hash section before the first case"),
            ni: f("Ni"),
            nr: f("Nr"),
            g_ir: f("g^ir"),
            g_ir_new: f("g^ir (new)"),
            spi_i: spi(&f("SPIi")),
            spi_r: spi(&f("SPIr")),
            skeyseed: f("SKEYSEED"),
            dkm: f("DKM"),
            dkm_child: f("DKM(Child SA)"),
            dkm_child_dh: f("DKM(Child SA D-H)"),
            skeyseed_rekey: f("SKEYSEED(Rekey)"),
        });
        fields.clear();
    }
    cases
}

/// Suites whose seven keys fit in `dkm_len` bytes of prf+ output with `prf`.
fn suites_within(prf: PrfAlg, dkm_len: usize) -> Vec<IkeSuite> {
    let dh = DhGroup::Curve25519;
    [
        IkeSuite { encr: EncrAlg::AesGcm16 { key_bits: 128 }, prf, integ: None, dh },
        IkeSuite { encr: EncrAlg::ChaCha20Poly1305, prf, integ: None, dh },
        IkeSuite { encr: EncrAlg::AesCbc { key_bits: 128 }, prf, integ: Some(IntegAlg::HmacSha1_96), dh },
        IkeSuite { encr: EncrAlg::AesCbc { key_bits: 256 }, prf, integ: Some(IntegAlg::HmacSha256_128), dh },
        IkeSuite { encr: EncrAlg::AesCbc { key_bits: 256 }, prf, integ: Some(IntegAlg::HmacSha512_256), dh },
    ]
    .into_iter()
    .filter(|s| s.keymat_len() <= dkm_len)
    .collect()
}

fn run(p: &dyn CryptoProvider, c: &Case) -> usize {
    let who = format!("{}: {}", p.name(), c.origin);
    let seed = skeyseed(p, c.prf, &c.ni, &c.nr, &c.g_ir);
    assert_eq!(hex::encode(&*seed), hex::encode(&c.skeyseed), "{who}: SKEYSEED");

    let spis = [c.spi_i.to_be_bytes(), c.spi_r.to_be_bytes()].concat();
    let prf_seed = [&c.ni[..], &c.nr, &spis].concat();
    let dkm = prf_plus(p, c.prf, &seed, &prf_seed, c.dkm.len()).unwrap();
    assert_eq!(hex::encode(&*dkm), hex::encode(&c.dkm), "{who}: DKM");

    let sk_d = &c.dkm[..c.prf.key_len()];
    let child = child_keymat(p, c.prf, sk_d, None, &c.ni, &c.nr, c.dkm_child.len()).unwrap();
    assert_eq!(hex::encode(&*child), hex::encode(&c.dkm_child), "{who}: DKM(Child SA)");
    let child_dh = child_keymat(p, c.prf, sk_d, Some(&c.g_ir_new), &c.ni, &c.nr, c.dkm_child_dh.len()).unwrap();
    assert_eq!(hex::encode(&*child_dh), hex::encode(&c.dkm_child_dh), "{who}: DKM(Child SA D-H)");

    let rekey = skeyseed_rekey(p, c.prf, sk_d, &c.g_ir_new, &c.ni, &c.nr);
    assert_eq!(hex::encode(&*rekey), hex::encode(&c.skeyseed_rekey), "{who}: SKEYSEED(Rekey)");

    // derive_ike_keys takes SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr from the front
    // of the same prf+ stream.
    let suites = suites_within(c.prf, c.dkm.len());
    for suite in &suites {
        let k = derive_ike_keys(p, suite, &c.skeyseed, &c.ni, &c.nr, c.spi_i, c.spi_r).unwrap();
        let cut = [&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr]
            .iter()
            .flat_map(|k| k.iter().copied())
            .collect::<Vec<u8>>();
        assert_eq!(hex::encode(&cut), hex::encode(&c.dkm[..suite.keymat_len()]), "{who}: {suite:?}");
        assert_eq!(&k.sk_d[..], sk_d, "{who}: SK_d");
    }
    suites.len()
}

#[test]
fn acvp_kdf_components_ikev2() {
    let cases = acvp_cases();
    assert_eq!(cases.len(), 11);
    assert!(cases.iter().any(|c| c.prf == PrfAlg::HmacSha1) && cases.iter().any(|c| c.prf == PrfAlg::HmacSha384));
    for p in providers() {
        let checked: usize = cases.iter().map(|c| run(p, c)).sum();
        assert!(checked > 0, "derive_ike_keys was checked against no case");
    }
}

#[test]
fn cavs_ikev2_kdf() {
    let cases = cavs_cases();
    assert_eq!(cases.len(), 90);
    for prf in [PrfAlg::HmacSha1, PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512] {
        assert!(cases.iter().filter(|c| c.prf == prf).count() >= 20, "{prf:?}");
    }
    for p in providers() {
        let checked: usize = cases.iter().map(|c| run(p, c)).sum();
        assert!(checked >= cases.len(), "derive_ike_keys was checked against too few cases");
    }
}

#[test]
fn prf_plus_edges() {
    for p in providers() {
        for prf in [PrfAlg::HmacSha1, PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512] {
            let (key, seed, block) = (b"key".as_slice(), b"seed".as_slice(), prf.output_len());
            assert!(prf_plus(p, prf, key, seed, 0).unwrap().is_empty());
            // Exactly one block: T1 = prf(K, S | 0x01).
            let t1 = p.prf(prf, key, &[seed, &[1]]);
            assert_eq!(*prf_plus(p, prf, key, seed, block).unwrap(), t1, "{prf:?}");
            // One byte more starts T2 = prf(K, T1 | S | 0x02).
            let t2 = p.prf(prf, key, &[&t1, seed, &[2]]);
            assert_eq!(prf_plus(p, prf, key, seed, block + 1).unwrap()[block], t2[0], "{prf:?}");
            // 255 blocks is the most; the last is T255 = prf(K, T254 | S | 0xff), and shorter
            // outputs are prefixes.
            let max = PRF_PLUS_MAX_BLOCKS * block;
            let all = prf_plus(p, prf, key, seed, max).unwrap();
            assert_eq!(all.len(), max);
            let t254 = &all[253 * block..254 * block];
            assert_eq!(all[254 * block..], p.prf(prf, key, &[t254, seed, &[0xff]])[..], "{prf:?}: T255");
            assert_eq!(*prf_plus(p, prf, key, seed, 100).unwrap(), all[..100]);
            // 256 blocks, or one byte past 255, are refused with the numbers.
            for len in [max + 1, 256 * block] {
                assert_eq!(
                    prf_plus(p, prf, key, seed, len),
                    Err(KeyError::PrfPlusTooLong { prf, requested: len, max, block }),
                    "{prf:?}"
                );
            }
            let msg = prf_plus(p, prf, key, seed, max + 1).unwrap_err().to_string();
            assert!(msg.contains(&max.to_string()) && msg.contains("255"), "{msg}");
        }
    }
}

#[test]
fn ike_key_lengths() {
    let p = providers()[0];
    let gcm = IkeSuite {
        encr: EncrAlg::AesGcm16 { key_bits: 256 },
        prf: PrfAlg::HmacSha384,
        integ: None,
        dh: DhGroup::Ecp384,
    };
    let k = derive_ike_keys(p, &gcm, &[1; 48], &[2; 32], &[3; 32], 1, 2).unwrap();
    // RFC 5282 §7.1: AEAD keys carry the 4-byte salt; no SK_a. SK_d/pi/pr: the PRF's length.
    assert_eq!(
        [k.sk_d.len(), k.sk_ai.len(), k.sk_ar.len(), k.sk_ei.len(), k.sk_er.len(), k.sk_pi.len(), k.sk_pr.len()],
        [48, 0, 0, 36, 36, 48, 48]
    );
    let cbc = IkeSuite {
        encr: EncrAlg::AesCbc { key_bits: 128 },
        prf: PrfAlg::HmacSha256,
        integ: Some(IntegAlg::HmacSha256_128),
        dh: DhGroup::Modp2048,
    };
    let k = derive_ike_keys(p, &cbc, &[1; 32], &[2; 32], &[3; 32], 1, 2).unwrap();
    assert_eq!(
        [k.sk_d.len(), k.sk_ai.len(), k.sk_ar.len(), k.sk_ei.len(), k.sk_er.len(), k.sk_pi.len(), k.sk_pr.len()],
        [32, 32, 32, 16, 16, 32, 32]
    );
    assert_ne!(k.sk_ai, k.sk_ar);
    // The SPIs are part of the seed, in network order: swapping them changes every key.
    let swapped = derive_ike_keys(p, &cbc, &[1; 32], &[2; 32], &[3; 32], 2, 1).unwrap();
    assert_ne!(k.sk_d, swapped.sk_d);
    // Debug prints lengths, never key bytes.
    let dbg = format!("{k:?}");
    assert!(dbg.contains("sk_d_len: 32"), "{dbg}");
    assert!(!dbg.contains(&format!("{:?}", &k.sk_d[..4])) && !dbg.contains(&hex::encode(&k.sk_d[..4])), "{dbg}");

    for (suite, why) in [
        (IkeSuite { integ: Some(IntegAlg::HmacSha256_128), ..gcm }, "AEAD"),
        (IkeSuite { integ: None, ..cbc }, "needs an integrity"),
    ] {
        let e = derive_ike_keys(p, &suite, &[1; 32], &[2; 32], &[3; 32], 1, 2).unwrap_err();
        assert!(matches!(e, KeyError::InconsistentSuite { .. }), "{e}");
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn rekey_uses_the_old_prf() {
    // RFC 7296 §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the old SA's PRF,
    // whatever the new SA negotiated.
    let p = providers()[0];
    let (sk_d, g, ni, nr) = ([5u8; 20], [6u8; 32], [7u8; 16], [8u8; 16]);
    let s = skeyseed_rekey(p, PrfAlg::HmacSha1, &sk_d, &g, &ni, &nr);
    assert_eq!(*s, p.prf(PrfAlg::HmacSha1, &sk_d, &[&g, &ni, &nr]));
    assert_eq!(s.len(), 20);
}

#[test]
fn child_keymat_split_order() {
    for t in Transform::ALL {
        let len = child_keymat_len(t);
        assert_eq!(len, 2 * (t.enc_key_len() + t.int_key_len()), "{t}");
        let keymat: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let k = split_child_keymat(t, &keymat);
        let (e, i) = (t.enc_key_len(), t.int_key_len());
        // RFC 7296 §2.17: initiator-to-responder first, encryption key before integrity key.
        assert_eq!(*k.encr_i, keymat[..e], "{t}");
        assert_eq!(*k.integ_i, keymat[e..e + i], "{t}");
        assert_eq!(*k.encr_r, keymat[e + i..2 * e + i], "{t}");
        assert_eq!(*k.integ_r, keymat[2 * e + i..], "{t}");
        if t.is_aead() {
            assert!(k.integ_i.is_empty() && k.integ_r.is_empty(), "{t}");
        }
        // The pieces are what the data plane takes.
        esprit_esp::crypto::SaKeys::new(t, &k.encr_i, &k.integ_i).unwrap();
        esprit_esp::crypto::SaKeys::new(t, &k.encr_r, &k.integ_r).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("encr_i_len"), "{dbg}");
        assert!(matches!(try_split_child_keymat(t, &keymat[1..]), Err(KeyError::KeymatLength { .. })));
    }
    // AES-128-GCM: 20 bytes each way (16-byte key, 4-byte salt).
    assert_eq!(child_keymat_len(Transform::Aes128Gcm16), 40);
    assert_eq!(child_keymat_len(Transform::Aes256Sha256), 2 * (32 + 32));
}

#[test]
#[should_panic(expected = "expected 40")]
fn split_child_keymat_refuses_short_keymat() {
    split_child_keymat(Transform::Aes128Gcm16, &[0; 39]);
}

#[test]
fn child_keymat_with_and_without_dh() {
    let p = providers()[0];
    let (sk_d, ni, nr, g) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
    let t = Transform::Aes256Gcm16;
    let plain = child_keymat(p, PrfAlg::HmacSha256, &sk_d, None, &ni, &nr, child_keymat_len(t)).unwrap();
    let with_dh = child_keymat(p, PrfAlg::HmacSha256, &sk_d, Some(&g), &ni, &nr, child_keymat_len(t)).unwrap();
    assert_eq!(*plain, *prf_plus(p, PrfAlg::HmacSha256, &sk_d, &[ni, nr].concat(), 72).unwrap());
    assert_eq!(*with_dh, *prf_plus(p, PrfAlg::HmacSha256, &sk_d, &[g, ni, nr].concat(), 72).unwrap());
    assert_ne!(*plain, *with_dh);
}
