#![allow(clippy::unwrap_used)]
//! Known answers for every provider in `providers()`.
//!
//! * PRF and integrity: RFC 2202 §3 (HMAC-SHA-1), RFC 4231 §4 (HMAC-SHA-256/384/512), RFC 4868
//!   §2.7.2 (HMAC-SHA-256/384/512 with keys of the hash's length, truncated ICVs).
//! * AES-CBC: RFC 3602 §4 cases 1–4. AES-GCM: the test cases with a 96-bit IV of "The
//!   Galois/Counter Mode of Operation (GCM)" (McGrew, Viega, revised 2005), their 12-byte IV
//!   split into salt ‖ IV as RFC 5282 §4 builds the nonce. ChaCha20-Poly1305: RFC 8439 §2.8.2,
//!   its nonce split likewise (RFC 7634 §2).
//! * Diffie-Hellman: RFC 7748 §5.2 and §6.1 (X25519), RFC 5903 §8 (ECP 256/384/521), the
//!   Wycheproof X25519 and P-256 ECDH sets (`tests/data/wycheproof/`), and the RFC 6989 §2.1
//!   range checks for the MODP groups. Fixed private values need a provider's test
//!   constructor: [`fixed_dh`] maps each provider to its own.

use esprit_ikev2::crypto::{
    providers, CryptoError, CryptoProvider, DhGroup, DhSecret, EncrAlg, IntegAlg, OpensslProvider, PrfAlg,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// A DH value from a fixed private one, through the provider's own test constructor.
fn fixed_dh(p: &dyn CryptoProvider, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
    match p.name() {
        "openssl" => OpensslProvider.dh_from_private_for_tests(group, private),
        other => panic!("provider {other} has no fixed-key constructor for the DH known-answer tests"),
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC: prf and integ.
// ---------------------------------------------------------------------------------------------

/// RFC 2202 §3: key, data, HMAC-SHA-1.
fn rfc2202() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
    vec![
        (vec![0x0b; 20], b"Hi There".to_vec(), "b617318655057264e28bc0b6fb378c8ef146be00"),
        (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (vec![0xaa; 20], vec![0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        ((1..=25).collect(), vec![0xcd; 50], "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
        (vec![0x0c; 20], b"Test With Truncation".to_vec(), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
        (
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ),
        (
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".to_vec(),
            "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
        ),
    ]
}

struct Rfc4231 {
    key: Vec<u8>,
    data: Vec<u8>,
    sha256: &'static str,
    sha384: &'static str,
    sha512: &'static str,
}

/// RFC 4231 §4.2–4.8. Test case 5's outputs are truncated to 128 bits in the RFC.
fn rfc4231() -> Vec<Rfc4231> {
    vec![
        Rfc4231 {
            key: vec![0x0b; 20],
            data: b"Hi There".to_vec(),
            sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            sha384: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
                     faea9ea9076ede7f4af152e8b2fa9cb6",
            sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        },
        Rfc4231 {
            key: b"Jefe".to_vec(),
            data: b"what do ya want for nothing?".to_vec(),
            sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            sha384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
                     8e2240ca5e69e2c78b3239ecfab21649",
            sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        },
        Rfc4231 {
            key: vec![0xaa; 20],
            data: vec![0xdd; 50],
            sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            sha384: "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b
                     2a5ab39dc13814b94e3ab6e101a34f27",
            sha512: "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39
                     bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
        },
        Rfc4231 {
            key: (1..=25).collect(),
            data: vec![0xcd; 50],
            sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            sha384: "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e
                     6801dd23c4a7d679ccf8a386c674cffb",
            sha512: "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db
                     a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
        },
        Rfc4231 {
            key: vec![0x0c; 20],
            data: b"Test With Truncation".to_vec(),
            sha256: "a3b6167473100ee06e0c796c2955552b",
            sha384: "3abf34c3503b2a23a46efc619baef897",
            sha512: "415fad6271580a531d4179bc891d87a6",
        },
        Rfc4231 {
            key: vec![0xaa; 131],
            data: b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            sha384: "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
                     0c2ef6ab4030fe8296248df163f44952",
            sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        },
        Rfc4231 {
            key: vec![0xaa; 131],
            data: b"This is a test using a larger than block-size key and a larger than block-size data. \
                   The key needs to be hashed before being used by the HMAC algorithm."
                .to_vec(),
            sha256: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            sha384: "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5
                     a678cc31e799176d3860e6110c46523e",
            sha512: "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944
                     b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
        },
    ]
}

#[test]
fn prf_hmac_sha1_rfc2202() {
    for p in providers() {
        for (i, (key, data, want)) in rfc2202().into_iter().enumerate() {
            assert_eq!(
                hex::encode(p.prf(PrfAlg::HmacSha1, &key, &[&data])),
                want,
                "{}: RFC 2202 case {}",
                p.name(),
                i + 1
            );
        }
    }
}

#[test]
fn prf_hmac_sha2_rfc4231() {
    for p in providers() {
        for (i, c) in rfc4231().into_iter().enumerate() {
            for (alg, want) in
                [(PrfAlg::HmacSha256, c.sha256), (PrfAlg::HmacSha384, c.sha384), (PrfAlg::HmacSha512, c.sha512)]
            {
                let want = h(want);
                let got = p.prf(alg, &c.key, &[&c.data]);
                assert_eq!(got.len(), alg.output_len(), "{}: {alg:?} output length", p.name());
                // Case 5 gives only the first 128 bits.
                assert_eq!(
                    hex::encode(&got[..want.len()]),
                    hex::encode(&want),
                    "{}: RFC 4231 case {} {alg:?}",
                    p.name(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn prf_takes_data_in_pieces() {
    // prf(K, a | b | c) must not depend on how the caller cuts the data.
    for p in providers() {
        let c = &rfc4231()[6];
        let (a, rest) = c.data.split_at(7);
        let (b, d) = rest.split_at(60);
        assert_eq!(p.prf(PrfAlg::HmacSha256, &c.key, &[a, &[], b, d]), h(c.sha256), "{}", p.name());
    }
}

#[test]
fn integ_rfc2202_rfc4868() {
    // RFC 2202 case 5 gives HMAC-SHA-1-96 explicitly.
    for p in providers() {
        assert_eq!(
            hex::encode(p.integ(IntegAlg::HmacSha1_96, &[0x0c; 20], &[b"Test With Truncation"])),
            "4c1a03424b55e07fe7f27be1",
            "{}",
            p.name()
        );
    }
    // RFC 4868 §2.7.2: keys of the hash's length; the ICV is the first half.
    let cases: [(IntegAlg, Vec<u8>, Vec<u8>, &str); 8] = [
        (
            IntegAlg::HmacSha256_128,
            vec![0x0b; 32],
            b"Hi There".to_vec(),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
        ),
        (
            IntegAlg::HmacSha256_128,
            b"Jefe".repeat(8),
            b"what do ya want for nothing?".to_vec(),
            "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6",
        ),
        (
            IntegAlg::HmacSha256_128,
            vec![0xaa; 32],
            vec![0xdd; 50],
            "cdcb1220d1ecccea91e53aba3092f962e549fe6ce9ed7fdc43191fbde45c30b0",
        ),
        (
            IntegAlg::HmacSha256_128,
            (1..=32).collect(),
            vec![0xcd; 50],
            "372efcf9b40b35c2115b1346903d2ef42fced46f0846e7257bb156d3d7b30d3f",
        ),
        (
            IntegAlg::HmacSha384_192,
            vec![0x0b; 48],
            b"Hi There".to_vec(),
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc4c5df61d5b3297b4fb68dab9f1b582c2",
        ),
        (
            IntegAlg::HmacSha384_192,
            b"Jefe".repeat(12),
            b"what do ya want for nothing?".to_vec(),
            "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184da86a368e9b8e16f5349524ca4e82400cbde0686d403371c9",
        ),
        (
            IntegAlg::HmacSha384_192,
            vec![0xaa; 48],
            vec![0xdd; 50],
            "809f439be00274321d4a538652164b53554a508184a0c3160353e3428597003d35914a18770f9443987054944b7c4b4a",
        ),
        (
            IntegAlg::HmacSha512_256,
            vec![0x0b; 64],
            b"Hi There".to_vec(),
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8\
             ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
        ),
    ];
    for p in providers() {
        for (alg, key, data, full) in &cases {
            let full = h(full);
            let icv = p.integ(*alg, key, &[data]);
            assert_eq!(icv.len(), alg.icv_len(), "{}: {alg:?} ICV length", p.name());
            assert_eq!(icv, full[..alg.icv_len()], "{}: RFC 4868 {alg:?}", p.name());
            assert_eq!(full.len(), 2 * alg.icv_len(), "the ICV is half the HMAC");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ciphers.
// ---------------------------------------------------------------------------------------------

#[test]
fn aes_cbc_rfc3602() {
    let aes128 = EncrAlg::AesCbc { key_bits: 128 };
    let cases = [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            hex::encode("Single block msg"),
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_string(),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            hex::encode("This is a 48-byte message (exactly 3 AES blocks)"),
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684",
        ),
        (
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
          c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                .to_string(),
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
          35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        ),
    ];
    for p in providers() {
        for (i, (key, iv, pt, ct)) in cases.iter().enumerate() {
            let (key, iv, pt, ct) = (h(key), h(iv), h(pt), h(ct));
            // CBC ignores the AAD.
            assert_eq!(
                p.encrypt(aes128, &key, &iv, b"ignored", &pt).unwrap(),
                ct,
                "{}: RFC 3602 case {}",
                p.name(),
                i + 1
            );
            assert_eq!(*p.decrypt(aes128, &key, &iv, &[], &ct).unwrap(), pt, "{}: RFC 3602 case {}", p.name(), i + 1);
        }
    }
}

#[test]
fn aes_cbc_refusals() {
    for p in providers() {
        let alg = EncrAlg::AesCbc { key_bits: 256 };
        let (key, iv) = ([7u8; 32], [9u8; 16]);
        // The caller pads: a length that is not a multiple of 16 is refused, both ways.
        assert!(matches!(
            p.encrypt(alg, &key, &iv, &[], &[0; 17]),
            Err(CryptoError::Length { len: 17, expected: 32, .. })
        ));
        assert!(matches!(p.decrypt(alg, &key, &iv, &[], &[0; 31]), Err(CryptoError::Length { len: 31, .. })));
        // Wrong key and IV lengths.
        assert!(matches!(
            p.encrypt(alg, &key[..16], &iv, &[], &[0; 16]),
            Err(CryptoError::Length { len: 16, expected: 32, .. })
        ));
        assert!(matches!(
            p.encrypt(alg, &key, &iv[..8], &[], &[0; 16]),
            Err(CryptoError::Length { len: 8, expected: 16, .. })
        ));
        assert!(matches!(
            p.decrypt(alg, &key, &[0; 17], &[], &[0; 16]),
            Err(CryptoError::Length { len: 17, expected: 16, .. })
        ));
        // A key size AES does not have.
        assert!(matches!(
            p.encrypt(EncrAlg::AesCbc { key_bits: 512 }, &[0; 64], &iv, &[], &[0; 16]),
            Err(CryptoError::Unsupported(_))
        ));
        // Empty is a multiple of the block size.
        assert_eq!(p.encrypt(alg, &key, &iv, &[], &[]).unwrap(), Vec::<u8>::new());
    }
}

struct Aead {
    name: &'static str,
    alg: EncrAlg,
    key: Vec<u8>,
    /// The 12-byte nonce as published: salt ‖ IV once split.
    nonce: Vec<u8>,
    aad: Vec<u8>,
    pt: Vec<u8>,
    /// Ciphertext ‖ tag.
    ct: Vec<u8>,
}

fn aead_vectors() -> Vec<Aead> {
    let k = "feffe9928665731c6d6a8f9467308308";
    let pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
              1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    let aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    let gcm = |name, key_bits, key: String, nonce: &str, aad: &str, pt: &str, ct: &str| Aead {
        name,
        alg: EncrAlg::AesGcm16 { key_bits },
        key: h(&key),
        nonce: h(nonce),
        aad: h(aad),
        pt: h(pt),
        ct: h(ct),
    };
    let pt60 = &pt[..pt.len() - 8];
    vec![
        gcm(
            "GCM test case 1",
            128,
            "0".repeat(32),
            "000000000000000000000000",
            "",
            "",
            "58e2fccefa7e3061367f1d57a4e7455a",
        ),
        gcm(
            "GCM test case 2",
            128,
            "0".repeat(32),
            "000000000000000000000000",
            "",
            "00000000000000000000000000000000",
            "0388dace60b6a392f328c2b971b2fe78 ab6e47d42cec13bdf53a67b21257bddf",
        ),
        gcm(
            "GCM test case 3",
            128,
            k.to_string(),
            "cafebabefacedbaddecaf888",
            "",
            pt,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985
             4d5c2af327cd64a62cf35abd2ba6fab4",
        ),
        gcm(
            "GCM test case 4",
            128,
            k.to_string(),
            "cafebabefacedbaddecaf888",
            aad,
            pt60,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091
             5bc94fbc3221a5db94fae95ae7121a47",
        ),
        gcm(
            "GCM test case 7",
            192,
            "0".repeat(48),
            "000000000000000000000000",
            "",
            "",
            "cd33b28ac773f74ba00ed1f312572435",
        ),
        gcm(
            "GCM test case 13",
            256,
            "0".repeat(64),
            "000000000000000000000000",
            "",
            "",
            "530f8afbc74536b9a963b4f1c4cb738b",
        ),
        gcm(
            "GCM test case 14",
            256,
            "0".repeat(64),
            "000000000000000000000000",
            "",
            "00000000000000000000000000000000",
            "cea7403d4d606b6e074ec5d3baf39d18 d0d1c8a799996bf0265b98b5d48ab919",
        ),
        gcm(
            "GCM test case 15",
            256,
            format!("{k}{k}"),
            "cafebabefacedbaddecaf888",
            "",
            pt,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad
             b094dac5d93471bdec1a502270e3cc6c",
        ),
        gcm(
            "GCM test case 16",
            256,
            format!("{k}{k}"),
            "cafebabefacedbaddecaf888",
            aad,
            pt60,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662
             76fc6ece0f4e1768cddf8853bb2d551b",
        ),
        Aead {
            name: "RFC 8439 §2.8.2",
            alg: EncrAlg::ChaCha20Poly1305,
            key: h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
            nonce: h("07000000 4041424344454647"),
            aad: h("50515253c0c1c2c3c4c5c6c7"),
            pt: b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, \
                  sunscreen would be it."
                .to_vec(),
            ct: h("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
                   3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
                   92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
                   3ff4def08e4b7a9de576d26586cec64b6116
                   1ae10b594f09e26a7e902ecbd0600691"),
        },
    ]
}

#[test]
fn aead_known_answers_as_salt_and_iv() {
    for p in providers() {
        for v in aead_vectors() {
            // RFC 5282 §4 / RFC 7634 §2: nonce = salt (last 4 bytes of the key material) ‖ IV.
            let (salt, iv) = v.nonce.split_at(4);
            let key = [&v.key[..], salt].concat();
            assert_eq!(key.len(), v.alg.keymat_len());
            let ct = p.encrypt(v.alg, &key, iv, &v.aad, &v.pt).unwrap();
            assert_eq!(hex::encode(&ct), hex::encode(&v.ct), "{}: {}", p.name(), v.name);
            let pt = p.decrypt(v.alg, &key, iv, &v.aad, &v.ct).unwrap();
            assert_eq!(*pt, v.pt, "{}: {}", p.name(), v.name);
        }
    }
}

#[test]
fn aead_refuses_forgeries() {
    for p in providers() {
        for v in aead_vectors() {
            let (salt, iv) = v.nonce.split_at(4);
            let key = [&v.key[..], salt].concat();
            let last = v.ct.len() - 1;
            let mut bad_tag = v.ct.clone();
            bad_tag[last] ^= 0x01;
            assert_eq!(
                p.decrypt(v.alg, &key, iv, &v.aad, &bad_tag),
                Err(CryptoError::Integrity),
                "{}: {} tag",
                p.name(),
                v.name
            );
            if v.ct.len() > 16 {
                let mut bad_body = v.ct.clone();
                bad_body[0] ^= 0x80;
                assert_eq!(
                    p.decrypt(v.alg, &key, iv, &v.aad, &bad_body),
                    Err(CryptoError::Integrity),
                    "{}: {}",
                    p.name(),
                    v.name
                );
            }
            let other_aad = [&v.aad[..], b"x"].concat();
            assert_eq!(
                p.decrypt(v.alg, &key, iv, &other_aad, &v.ct),
                Err(CryptoError::Integrity),
                "{}: {} AAD",
                p.name(),
                v.name
            );
            let mut other_salt = key.clone();
            other_salt[v.alg.key_len()] ^= 1;
            assert_eq!(
                p.decrypt(v.alg, &other_salt, iv, &v.aad, &v.ct),
                Err(CryptoError::Integrity),
                "{}: {} salt",
                p.name(),
                v.name
            );
            // Shorter than the ICV, and wrong key or IV lengths.
            assert!(matches!(
                p.decrypt(v.alg, &key, iv, &v.aad, &v.ct[..15]),
                Err(CryptoError::Length { len: 15, .. })
            ));
            assert!(matches!(
                p.decrypt(v.alg, &v.key, iv, &v.aad, &v.ct),
                Err(CryptoError::Length { expected, .. }) if expected == v.alg.keymat_len()
            ));
            assert!(matches!(
                p.encrypt(v.alg, &key, &v.nonce, &v.aad, &v.pt),
                Err(CryptoError::Length { len: 12, expected: 8, .. })
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Diffie-Hellman.
// ---------------------------------------------------------------------------------------------

const ALL_GROUPS: [DhGroup; 7] = DhGroup::ALL;

#[test]
fn every_group_agrees_with_itself() {
    for p in providers() {
        for g in ALL_GROUPS {
            let (a, b) = (p.dh_generate(g).unwrap(), p.dh_generate(g).unwrap());
            assert_eq!(a.group(), g);
            assert_eq!(a.public().len(), g.public_len(), "{}: {g:?} public length", p.name());
            assert_ne!(a.public(), b.public(), "{}: {g:?} two fresh values", p.name());
            let (ab, ba) = (a.agree(b.public()).unwrap(), b.agree(a.public()).unwrap());
            assert_eq!(ab.len(), g.shared_len(), "{}: {g:?} shared length", p.name());
            assert_eq!(*ab, *ba, "{}: {g:?}", p.name());
            // Debug shows no private value, only what is public.
            let dbg = format!("{a:?}");
            assert!(dbg.contains(&format!("{g:?}")), "{dbg}");
        }
    }
}

#[test]
fn x25519_rfc7748_scalar_mult() {
    // §5.2: X25519(k, u) as agree() of a value made from the scalar k.
    let cases = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            // Bit 255 set: it must be masked (RFC 7748 §5).
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for p in providers() {
        for (k, u, want) in cases {
            let d = fixed_dh(p, DhGroup::Curve25519, &h(k)).unwrap();
            assert_eq!(hex::encode(d.agree(&h(u)).unwrap()), want, "{}", p.name());
        }
        // §5.2 iterated: k = u = 9; k, u = X25519(k, u), k.
        let (mut k, mut u) = (h(&format!("09{}", "00".repeat(31))), h(&format!("09{}", "00".repeat(31))));
        for i in 1..=1000 {
            let next = fixed_dh(p, DhGroup::Curve25519, &k).unwrap().agree(&u).unwrap().to_vec();
            u = std::mem::replace(&mut k, next);
            if i == 1 {
                assert_eq!(hex::encode(&k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
            }
        }
        assert_eq!(hex::encode(&k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
    }
}

#[test]
fn x25519_rfc7748_alice_and_bob() {
    // §6.1.
    for p in providers() {
        let a =
            fixed_dh(p, DhGroup::Curve25519, &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
                .unwrap();
        let b =
            fixed_dh(p, DhGroup::Curve25519, &h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
                .unwrap();
        assert_eq!(hex::encode(a.public()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(hex::encode(b.public()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(hex::encode(a.agree(b.public()).unwrap()), shared, "{}", p.name());
        assert_eq!(hex::encode(b.agree(a.public()).unwrap()), shared, "{}", p.name());
    }
}

#[test]
fn x25519_refusals() {
    for p in providers() {
        let d = p.dh_generate(DhGroup::Curve25519).unwrap();
        // u = 0 and u = 1 are low-order: the result is all zero (RFC 8031 §2).
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert!(
                matches!(d.agree(&u), Err(CryptoError::BadPublicValue { group: DhGroup::Curve25519, .. })),
                "{}",
                p.name()
            );
        }
        for len in [0, 31, 33, 64] {
            assert!(
                matches!(d.agree(&vec![9; len]), Err(CryptoError::BadPublicValue { .. })),
                "{}: length {len}",
                p.name()
            );
        }
    }
}

struct Rfc5903 {
    group: DhGroup,
    i: &'static str,
    gi: &'static str,
    r: &'static str,
    gr: &'static str,
    girx: &'static str,
}

/// RFC 5903 §8.1–8.3; public values as x ‖ y.
fn rfc5903() -> [Rfc5903; 3] {
    [
        Rfc5903 {
            group: DhGroup::Ecp256,
            i: "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
            gi: "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180
                 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
            r: "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
            gr: "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63
                 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
            girx: "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
        },
        Rfc5903 {
            group: DhGroup::Ecp384,
            i: "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
            gi: "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA
                 9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
            r: "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
            gr: "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571
                 DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
            girx: "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
        },
        Rfc5903 {
            group: DhGroup::Ecp521,
            i: "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
            gi: "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E
                 017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582",
            r: "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9",
            gr: "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F
                 015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A",
            girx: "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA",
        },
    ]
}

#[test]
fn ecp_rfc5903() {
    for p in providers() {
        for v in rfc5903() {
            let i = fixed_dh(p, v.group, &h(v.i)).unwrap();
            let r = fixed_dh(p, v.group, &h(v.r)).unwrap();
            assert_eq!(hex::encode(i.public()), hex::encode(h(v.gi)), "{}: {:?} g^i", p.name(), v.group);
            assert_eq!(hex::encode(r.public()), hex::encode(h(v.gr)), "{}: {:?} g^r", p.name(), v.group);
            assert_eq!(hex::encode(i.agree(&h(v.gr)).unwrap()), hex::encode(h(v.girx)), "{}: {:?}", p.name(), v.group);
            assert_eq!(hex::encode(r.agree(&h(v.gi)).unwrap()), hex::encode(h(v.girx)), "{}: {:?}", p.name(), v.group);
        }
    }
}

#[test]
fn ecp_refusals() {
    for p in providers() {
        for v in rfc5903() {
            let i = fixed_dh(p, v.group, &h(v.i)).unwrap();
            let gr = h(v.gr);
            let refused = |peer: &[u8], what: &str| {
                assert!(
                    matches!(i.agree(peer), Err(CryptoError::BadPublicValue { group, .. }) if group == v.group),
                    "{}: {:?} {what} accepted",
                    p.name(),
                    v.group
                );
            };
            let mut off = gr.clone();
            let last = off.len() - 1;
            off[last] ^= 1;
            refused(&off, "point off the curve");
            refused(&[&[4u8][..], &gr].concat(), "0x04-prefixed point");
            refused(&gr[..gr.len() - 1], "short value");
            refused(&vec![0; gr.len()], "all-zero point");
            // x = all ones is not below the field prime (P-256, P-384: 2^n - 1 > p; P-521:
            // 2^528 - 1 is not even a 521-bit number).
            let mut big_x = gr.clone();
            big_x[..v.group.shared_len()].fill(0xff);
            refused(&big_x, "x not below p");
        }
    }
}

/// The RFC 3526 prime of a MODP group, as OpenSSL's `BN_get_rfc3526_prime_*` gives it, checked
/// against the shape RFC 3526 gives every one of them: 2^n - 2^(n-64) - 1 + 2^64 × (…), whose
/// first 64 bits after the leading ones are those of π (C90FDAA2 2168C234), and which ends in
/// 64 one bits.
fn modp_prime(g: DhGroup) -> Vec<u8> {
    let p = match g {
        DhGroup::Modp2048 => openssl::bn::BigNum::get_rfc3526_prime_2048(),
        DhGroup::Modp3072 => openssl::bn::BigNum::get_rfc3526_prime_3072(),
        _ => openssl::bn::BigNum::get_rfc3526_prime_4096(),
    }
    .unwrap()
    .to_vec();
    assert_eq!(p.len(), g.public_len());
    assert_eq!(hex::encode(&p[..16]), "ffffffffffffffffc90fdaa22168c234");
    assert_eq!(hex::encode(&p[p.len() - 8..]), "ffffffffffffffff");
    p
}

/// Big-endian `n + delta` for small deltas, within the same length.
fn add(n: &[u8], delta: i8) -> Vec<u8> {
    let mut v = n.to_vec();
    let mut carry = i16::from(delta);
    for b in v.iter_mut().rev() {
        let s = i16::from(*b) + carry;
        *b = s.rem_euclid(256) as u8;
        carry = s.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    v
}

#[test]
fn modp_rfc6989_range_checks() {
    for p in providers() {
        for g in [DhGroup::Modp2048, DhGroup::Modp3072, DhGroup::Modp4096] {
            let prime = modp_prime(g);
            let d = p.dh_generate(g).unwrap();
            let n = g.public_len();
            let refused = |peer: &[u8], what: &str| {
                assert!(
                    matches!(d.agree(peer), Err(CryptoError::BadPublicValue { group, .. }) if group == g),
                    "{}: {g:?} {what} accepted",
                    p.name()
                );
            };
            let mut one = vec![0; n];
            one[n - 1] = 1;
            refused(&vec![0; n], "0");
            refused(&one, "1");
            refused(&add(&prime, -1), "p-1");
            refused(&prime, "p");
            refused(&add(&prime, 1), "p+1");
            refused(&vec![0xff; n], "2^n - 1");
            refused(&[&[0u8][..], d.public()].concat(), "a value one byte too long");
            refused(&d.public()[1..], "a value one byte too short");
            // 2, the low end of the valid range (and the generator), is taken.
            let mut two = vec![0; n];
            two[n - 1] = 2;
            assert_eq!(d.agree(&two).unwrap().len(), n, "{}: {g:?} 2", p.name());
        }
    }
}

#[test]
fn modp_fixed_private_value() {
    // With x = 1 the public value is g = 2 and agreeing with y gives y itself: a check that
    // public values and shared secrets are the prime's length, left-padded with zeros.
    for p in providers() {
        for g in [DhGroup::Modp2048, DhGroup::Modp3072, DhGroup::Modp4096] {
            let d = fixed_dh(p, g, &[1]).unwrap();
            let mut two = vec![0; g.public_len()];
            two[g.public_len() - 1] = 2;
            assert_eq!(d.public(), &two[..], "{}: {g:?}", p.name());
            // y = 2^26: a power of the generator, so in its subgroup.
            let mut y = vec![0; g.public_len()];
            y[g.public_len() - 4] = 0x04;
            assert_eq!(*d.agree(&y).unwrap(), y, "{}: {g:?}", p.name());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wycheproof.
// ---------------------------------------------------------------------------------------------

fn wycheproof(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/data/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn field<'a>(t: &'a serde_json::Value, k: &str) -> &'a str {
    t[k].as_str().unwrap_or_else(|| panic!("test {} has no {k}", t["tcId"]))
}

#[test]
fn wycheproof_x25519() {
    let doc = wycheproof("x25519_test.json");
    for p in providers() {
        let mut counts = [0usize; 3];
        for g in doc["testGroups"].as_array().unwrap() {
            assert_eq!(g["curve"], "curve25519");
            for t in g["tests"].as_array().unwrap() {
                let id = &t["tcId"];
                let d = fixed_dh(p, DhGroup::Curve25519, &h(field(t, "private"))).unwrap();
                let got = d.agree(&h(field(t, "public")));
                let shared = field(t, "shared");
                let zero = shared.bytes().all(|c| c == b'0');
                match field(t, "result") {
                    "invalid" => {
                        assert!(got.is_err(), "{}: tcId {id} invalid but accepted", p.name());
                        counts[0] += 1;
                    }
                    // RFC 8031 §2: an all-zero result MUST be refused, whatever Wycheproof
                    // calls it.
                    _ if zero => {
                        assert!(
                            matches!(got, Err(CryptoError::BadPublicValue { .. })),
                            "{}: tcId {id}: all-zero secret accepted",
                            p.name()
                        );
                        counts[1] += 1;
                    }
                    "valid" | "acceptable" => {
                        assert_eq!(hex::encode(got.unwrap()), shared, "{}: tcId {id}", p.name());
                        counts[2] += 1;
                    }
                    other => panic!("tcId {id}: result {other}"),
                }
            }
        }
        assert_eq!(counts.iter().sum::<usize>(), doc["numberOfTests"].as_u64().unwrap() as usize);
        assert!(counts[1] > 0 && counts[2] > 0, "{counts:?}");
    }
}

#[test]
fn wycheproof_ecdh_p256_ecpoint() {
    let doc = wycheproof("ecdh_secp256r1_ecpoint_test.json");
    for p in providers() {
        let mut counts = [0usize; 3];
        for g in doc["testGroups"].as_array().unwrap() {
            assert_eq!(g["curve"], "secp256r1");
            assert_eq!(g["encoding"], "ecpoint");
            for t in g["tests"].as_array().unwrap() {
                let id = &t["tcId"];
                let d = fixed_dh(p, DhGroup::Ecp256, &h(field(t, "private"))).unwrap();
                // The KE payload has x ‖ y without the SEC 1 point-format octet (RFC 5903 §7):
                // an uncompressed point loses its 0x04; anything else is passed as it is and
                // must be refused for its length at least.
                let public = h(field(t, "public"));
                let ke = match public.split_first() {
                    Some((4, xy)) if xy.len() == 64 => xy.to_vec(),
                    _ => public.clone(),
                };
                let got = d.agree(&ke);
                match field(t, "result") {
                    "valid" => {
                        assert_eq!(hex::encode(got.unwrap()), field(t, "shared"), "{}: tcId {id}", p.name());
                        counts[0] += 1;
                    }
                    "invalid" => {
                        assert!(got.is_err(), "{}: tcId {id} ({}) invalid but accepted", p.name(), t["comment"]);
                        counts[1] += 1;
                    }
                    // Compressed points: IKEv2 has no encoding for them.
                    "acceptable" => {
                        assert_ne!(public.len(), 65, "tcId {id}");
                        assert!(got.is_err(), "{}: tcId {id} compressed point accepted", p.name());
                        counts[2] += 1;
                    }
                    other => panic!("tcId {id}: result {other}"),
                }
            }
        }
        assert_eq!(counts.iter().sum::<usize>(), doc["numberOfTests"].as_u64().unwrap() as usize);
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness and identifiers.
// ---------------------------------------------------------------------------------------------

#[test]
fn random_fills_every_byte() {
    for p in providers() {
        // 64 bytes that stay zero, or two draws that agree, happen with probability 2^-512.
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        p.fill_random(&mut a);
        p.fill_random(&mut b);
        assert_ne!(a, [0; 64], "{}", p.name());
        assert_ne!(a, b, "{}", p.name());
        p.fill_random(&mut []);
    }
}

#[test]
fn iana_ids_round_trip() {
    for g in ALL_GROUPS {
        assert_eq!(DhGroup::from_id(g.id()), Some(g));
    }
    for a in [PrfAlg::HmacSha1, PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512] {
        assert_eq!(PrfAlg::from_id(a.id()), Some(a));
    }
    for a in [IntegAlg::HmacSha1_96, IntegAlg::HmacSha256_128, IntegAlg::HmacSha384_192, IntegAlg::HmacSha512_256] {
        assert_eq!(IntegAlg::from_id(a.id()), Some(a));
    }
    for a in [
        EncrAlg::AesCbc { key_bits: 128 },
        EncrAlg::AesCbc { key_bits: 256 },
        EncrAlg::AesGcm16 { key_bits: 192 },
        EncrAlg::ChaCha20Poly1305,
    ] {
        let bits = match a {
            EncrAlg::AesCbc { key_bits } | EncrAlg::AesGcm16 { key_bits } => Some(key_bits),
            EncrAlg::ChaCha20Poly1305 => None,
        };
        assert_eq!(EncrAlg::from_id(a.id(), bits), Some(a));
    }
    // AES needs its Key Length attribute; ChaCha20-Poly1305 must not have one.
    assert_eq!(EncrAlg::from_id(12, None), None);
    assert_eq!(EncrAlg::from_id(20, Some(64)), None);
    assert_eq!(EncrAlg::from_id(28, Some(256)), None);
    assert_eq!((DhGroup::Modp2048.id(), DhGroup::Curve25519.id(), PrfAlg::HmacSha256.id()), (14, 31, 5));
    assert_eq!((IntegAlg::HmacSha256_128.id(), EncrAlg::AesGcm16 { key_bits: 128 }.id()), (12, 20));
}
