//! AUTH payloads (RFC 7296 §2.15, RFC 4754, RFC 7427) against independent oracles:
//!
//! * the AlgorithmIdentifiers we send equal RFC 7427 Appendix A's byte strings;
//! * every signature we make verifies with the openssl CLI (`openssl dgst -verify`,
//!   `openssl pkeyutl -verify`), and every signature the openssl CLI makes verifies with
//!   `verify_auth`;
//! * the signed octets and the shared-key AUTH data equal a Python `hmac` computation.

#![allow(clippy::unwrap_used)]

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use esprit_ikev2::auth::{
    hash_algorithms_notify_data, parse_hash_algorithms_notify, psk_auth, sign_auth, signed_octets, verify_auth,
    verify_psk, AuthError, HASH_IDENTITY, HASH_SHA1, HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512,
};
use esprit_ikev2::crypto::{default_provider, PrfAlg};
use esprit_ikev2::message::{AuthMethod, IdType, Identification};
use esprit_ikev2::pki::{PrivateKey, PublicKey};

const ALL_HASHES: [u16; 4] = [HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY];

/// RFC 7427 Appendix A, the DER AlgorithmIdentifiers (hex dumps there, copied here).
mod rfc7427 {
    /// A.1.1 sha1WithRSAEncryption.
    pub const SHA1_WITH_RSA: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00];
    /// A.1.2 sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
    /// A.1.3 sha384WithRSAEncryption.
    pub const SHA384_WITH_RSA: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00];
    /// A.1.4 sha512WithRSAEncryption.
    pub const SHA512_WITH_RSA: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00];
    /// A.2.2 dsa-with-sha256.
    pub const DSA_WITH_SHA256: &[u8] = &[0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02];
    /// A.3.1 ecdsa-with-sha1.
    pub const ECDSA_WITH_SHA1: &[u8] = &[0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    /// A.3.2 ecdsa-with-sha256.
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// A.3.3 ecdsa-with-sha384.
    pub const ECDSA_WITH_SHA384: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// A.3.4 ecdsa-with-sha512.
    pub const ECDSA_WITH_SHA512: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    /// A.4.1 RSASSA-PSS with empty parameters (all defaults: SHA-1).
    pub const PSS_EMPTY: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x00];
    /// A.4.2 RSASSA-PSS with the default parameters written out (SHA-1, MGF1-SHA-1, salt 20,
    /// trailer 1).
    pub const PSS_DEFAULT: &[u8] = &[
        0x30, 0x3e, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x31, 0xa0, //
        0x0b, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0xa1, 0x18, 0x30, 0x16, //
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x09, 0x06, 0x05, 0x2b, //
        0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x14, 0xa3, 0x03, 0x02, 0x01, 0x01,
    ];
    /// A.4.3 RSASSA-PSS with SHA-256 (MGF1-SHA-256, salt 32).
    pub const PSS_SHA256: &[u8] = &[
        0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, //
        0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, //
        0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, //
        0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, //
        0x02, 0x01, 0x20,
    ];
}

/// id-Ed25519 without parameters (RFC 8420 §2, RFC 8410 §3).
const ED25519_ALG: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// RSASSA-PSS with SHA-512, MGF1-SHA-512, salt 64: A.4.3 with the SHA-256 OIDs' last arc
/// changed to SHA-512's (2.16.840.1.101.3.4.2.3) and the salt to 64.
fn pss_sha512_alg() -> Vec<u8> {
    let mut alg = rfc7427::PSS_SHA256.to_vec();
    assert_eq!(alg[29], 0x01);
    assert_eq!(alg[59], 0x01);
    alg[29] = 0x03;
    alg[59] = 0x03;
    alg[66] = 0x40;
    alg
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki").join(name)
}

fn key(name: &str) -> PrivateKey {
    PrivateKey::load(data(name)).unwrap()
}

fn public(name: &str) -> PublicKey {
    key(name).public_key().unwrap()
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "esprit-ikeauth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_owned()
}

fn openssl(args: &[OsString]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

fn pubkey_pem(s: &Scratch, key_file: &str) -> PathBuf {
    let out = s.path("pub.pem");
    let o = openssl(&[os("pkey"), os("-in"), os(data(key_file)), os("-pubout"), os("-out"), os(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// `openssl dgst -<digest> -verify` (or `pkeyutl -verify -rawin` for Ed25519).
fn cli_verifies(key_file: &str, digest: Option<&str>, octets: &[u8], sig: &[u8]) -> bool {
    let s = Scratch::new();
    let pubkey = pubkey_pem(&s, key_file);
    let msg = s.write("msg", octets);
    let sig = s.write("sig", sig);
    let args = match digest {
        Some(d) => vec![os("dgst"), os(format!("-{d}")), os("-verify"), os(pubkey), os("-signature"), os(sig), os(msg)],
        None => vec![
            os("pkeyutl"),
            os("-verify"),
            os("-pubin"),
            os("-inkey"),
            os(pubkey),
            os("-rawin"),
            os("-in"),
            os(msg),
            os("-sigfile"),
            os(sig),
        ],
    };
    openssl(&args).status.success()
}

/// `openssl dgst -<digest> -sign` with extra `-sigopt`s (or `pkeyutl -sign -rawin`).
fn cli_sign(key_file: &str, digest: Option<&str>, sigopts: &[&str], octets: &[u8]) -> Vec<u8> {
    let s = Scratch::new();
    let msg = s.write("msg", octets);
    let sig = s.path("sig");
    let mut args = match digest {
        Some(d) => vec![os("dgst"), os(format!("-{d}")), os("-sign"), os(data(key_file))],
        None => vec![os("pkeyutl"), os("-sign"), os("-rawin"), os("-inkey"), os(data(key_file)), os("-in"), os(&msg)],
    };
    for o in sigopts {
        args.extend([os("-sigopt"), os(o)]);
    }
    args.extend([os("-out"), os(&sig)]);
    if digest.is_some() {
        args.push(os(&msg));
    }
    let o = openssl(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(sig).unwrap()
}

// A small DER codec for ECDSA-Sig-Value, independent of the library under test.

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.extend([0x81, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn raw_to_der(raw: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        der_tlv(0x02, &v)
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    der_tlv(0x30, &[int(r), int(s)].concat())
}

fn der_to_raw(der: &[u8], n: usize) -> Vec<u8> {
    let body = if der[1] == 0x81 { &der[3..] } else { &der[2..] };
    assert_eq!(der[0], 0x30);
    let mut out = Vec::new();
    let mut rest = body;
    for _ in 0..2 {
        assert_eq!(rest[0], 0x02);
        let len = rest[1] as usize;
        let v: Vec<u8> = rest[2..2 + len].iter().copied().skip_while(|&b| b == 0).collect();
        out.extend(std::iter::repeat_n(0, n - v.len()));
        out.extend(v);
        rest = &rest[2 + len..];
    }
    out
}

fn digital(alg: &[u8], sig: &[u8]) -> Vec<u8> {
    [&[alg.len() as u8][..], alg, sig].concat()
}

fn split_digital(data: &[u8]) -> (&[u8], &[u8]) {
    let len = data[0] as usize;
    (&data[1..1 + len], &data[1 + len..])
}

const OCTETS: &[u8] = b"IKE_SA_INIT message, peer nonce and prf(SK_p, IDx') stand-in";

#[test]
fn our_algorithm_identifiers_are_rfc7427_appendix_a() {
    let cases: &[(&str, &[u16], &[u8])] = &[
        ("server-rsa.key", &[HASH_SHA2_256], rfc7427::SHA256_WITH_RSA),
        ("server-rsa.key", &ALL_HASHES, rfc7427::SHA256_WITH_RSA),
        ("server-rsa.key", &[HASH_SHA2_384], rfc7427::SHA384_WITH_RSA),
        ("server-rsa.key", &[HASH_SHA2_512, HASH_SHA1], rfc7427::SHA512_WITH_RSA),
        ("client-p256.key", &ALL_HASHES, rfc7427::ECDSA_WITH_SHA256),
        ("server-p384.key", &ALL_HASHES, rfc7427::ECDSA_WITH_SHA384),
        ("p521.key", &ALL_HASHES, rfc7427::ECDSA_WITH_SHA512),
        // The curve's own hash missing: another SHA-2 the peer has.
        ("server-p384.key", &[HASH_SHA2_256], rfc7427::ECDSA_WITH_SHA256),
        ("client-p256.key", &[HASH_SHA2_512, HASH_SHA2_384], rfc7427::ECDSA_WITH_SHA512),
        ("ed25519-ee.key", &ALL_HASHES, ED25519_ALG),
    ];
    for &(key_file, peer, alg) in cases {
        let (method, data) = sign_auth(&key(key_file), peer, OCTETS).unwrap();
        assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE, "{key_file} {peer:?}");
        assert_eq!(split_digital(&data).0, alg, "{key_file} {peer:?}");
    }
}

#[test]
fn legacy_methods_without_the_notify() {
    let cases: &[(&str, &[u16], AuthMethod, usize)] = &[
        ("server-rsa.key", &[], AuthMethod::RSA_SIG, 256),
        ("server-rsa.key", &[HASH_SHA1], AuthMethod::RSA_SIG, 256),
        ("client-p256.key", &[], AuthMethod::ECDSA_SHA256_P256, 64),
        ("client-p256.key", &[HASH_SHA1, HASH_IDENTITY], AuthMethod::ECDSA_SHA256_P256, 64),
        ("server-p384.key", &[], AuthMethod::ECDSA_SHA384_P384, 96),
        ("p521.key", &[], AuthMethod::ECDSA_SHA512_P521, 132),
    ];
    for &(key_file, peer, method, len) in cases {
        let (m, data) = sign_auth(&key(key_file), peer, OCTETS).unwrap();
        assert_eq!((m, data.len()), (method, len), "{key_file} {peer:?}");
    }
    assert!(matches!(sign_auth(&key("ed25519-ee.key"), &[HASH_SHA2_256], OCTETS), Err(AuthError::NoCommonHash { .. })));
}

#[test]
fn our_signatures_verify_with_the_openssl_cli() {
    // (key, peer's hashes, the digest the CLI must verify with; None: Ed25519)
    let cases: &[(&str, &[u16], Option<&str>)] = &[
        ("server-rsa.key", &[], Some("sha1")),
        ("server-rsa.key", &[HASH_SHA2_256], Some("sha256")),
        ("server-rsa.key", &[HASH_SHA2_384], Some("sha384")),
        ("server-rsa.key", &[HASH_SHA2_512], Some("sha512")),
        ("rsa-ca.key", &ALL_HASHES, Some("sha256")),
        ("client-p256.key", &[], Some("sha256")),
        ("client-p256.key", &ALL_HASHES, Some("sha256")),
        ("server-p384.key", &[], Some("sha384")),
        ("server-p384.key", &ALL_HASHES, Some("sha384")),
        ("server-p384.key", &[HASH_SHA2_256], Some("sha256")),
        ("p521.key", &[], Some("sha512")),
        ("p521.key", &ALL_HASHES, Some("sha512")),
        ("ed25519-ee.key", &ALL_HASHES, None),
    ];
    for &(key_file, peer, digest) in cases {
        let k = key(key_file);
        let (method, data) = sign_auth(&k, peer, OCTETS).unwrap();
        let cli_sig = match method {
            AuthMethod::DIGITAL_SIGNATURE => split_digital(&data).1.to_vec(),
            AuthMethod::RSA_SIG => data.clone(),
            _ => raw_to_der(&data), // RFC 4754 r ‖ s
        };
        assert!(cli_verifies(key_file, digest, OCTETS, &cli_sig), "{key_file} {peer:?}");
        // The CLI refuses it for other octets.
        assert!(!cli_verifies(key_file, digest, b"other octets", &cli_sig), "{key_file} {peer:?}");
        // And so do we.
        let pk = k.public_key().unwrap();
        verify_auth(&pk, method, &data, OCTETS).unwrap();
        assert!(matches!(verify_auth(&pk, method, &data, b"other octets"), Err(AuthError::BadSignature { .. })));
    }
}

#[test]
fn openssl_cli_signatures_verify_with_verify_auth() {
    let rsa = public("server-rsa.key");
    let p256 = public("client-p256.key");
    let p384 = public("server-p384.key");
    let p521 = public("p521.key");
    let ed = public("ed25519-ee.key");

    let sig = cli_sign("server-rsa.key", Some("sha1"), &[], OCTETS);
    verify_auth(&rsa, AuthMethod::RSA_SIG, &sig, OCTETS).unwrap();
    for (digest, alg) in [
        ("sha256", rfc7427::SHA256_WITH_RSA),
        ("sha384", rfc7427::SHA384_WITH_RSA),
        ("sha512", rfc7427::SHA512_WITH_RSA),
    ] {
        let sig = cli_sign("server-rsa.key", Some(digest), &[], OCTETS);
        verify_auth(&rsa, AuthMethod::DIGITAL_SIGNATURE, &digital(alg, &sig), OCTETS).unwrap();
        // Parameters omitted instead of NULL are accepted too (RFC 4055 §5).
        let mut no_null = alg[..alg.len() - 2].to_vec();
        no_null[1] -= 2;
        verify_auth(&rsa, AuthMethod::DIGITAL_SIGNATURE, &digital(&no_null, &sig), OCTETS).unwrap();
    }

    // RSASSA-PSS, RFC 7427 A.4.3's AlgorithmIdentifier (SHA-256, MGF1-SHA-256, salt 32).
    let pss = ["rsa_padding_mode:pss", "rsa_pss_saltlen:32", "rsa_mgf1_md:sha256"];
    let sig = cli_sign("server-rsa.key", Some("sha256"), &pss, OCTETS);
    verify_auth(&rsa, AuthMethod::DIGITAL_SIGNATURE, &digital(rfc7427::PSS_SHA256, &sig), OCTETS).unwrap();
    // The same AlgorithmIdentifier over a signature with a 20-byte salt: refused.
    let salt20 = ["rsa_padding_mode:pss", "rsa_pss_saltlen:20", "rsa_mgf1_md:sha256"];
    let sig20 = cli_sign("server-rsa.key", Some("sha256"), &salt20, OCTETS);
    assert!(matches!(
        verify_auth(&rsa, AuthMethod::DIGITAL_SIGNATURE, &digital(rfc7427::PSS_SHA256, &sig20), OCTETS),
        Err(AuthError::BadSignature { .. })
    ));
    let pss512 = ["rsa_padding_mode:pss", "rsa_pss_saltlen:64", "rsa_mgf1_md:sha512"];
    let sig = cli_sign("server-rsa.key", Some("sha512"), &pss512, OCTETS);
    verify_auth(&rsa, AuthMethod::DIGITAL_SIGNATURE, &digital(&pss_sha512_alg(), &sig), OCTETS).unwrap();

    // ECDSA: DER in method 14, r ‖ s in methods 9, 10, 11.
    for (key_file, pk, digest, alg, method, n) in [
        ("client-p256.key", &p256, "sha256", rfc7427::ECDSA_WITH_SHA256, AuthMethod::ECDSA_SHA256_P256, 32),
        ("server-p384.key", &p384, "sha384", rfc7427::ECDSA_WITH_SHA384, AuthMethod::ECDSA_SHA384_P384, 48),
        ("p521.key", &p521, "sha512", rfc7427::ECDSA_WITH_SHA512, AuthMethod::ECDSA_SHA512_P521, 66),
    ] {
        let sig = cli_sign(key_file, Some(digest), &[], OCTETS);
        verify_auth(pk, AuthMethod::DIGITAL_SIGNATURE, &digital(alg, &sig), OCTETS).unwrap();
        verify_auth(pk, method, &der_to_raw(&sig, n), OCTETS).unwrap();
    }
    // Any SHA-2 with any curve in method 14.
    let sig = cli_sign("client-p256.key", Some("sha384"), &[], OCTETS);
    verify_auth(&p256, AuthMethod::DIGITAL_SIGNATURE, &digital(rfc7427::ECDSA_WITH_SHA384, &sig), OCTETS).unwrap();

    let sig = cli_sign("ed25519-ee.key", None, &[], OCTETS);
    verify_auth(&ed, AuthMethod::DIGITAL_SIGNATURE, &digital(ED25519_ALG, &sig), OCTETS).unwrap();
}

#[test]
fn refusals_are_precise() {
    let rsa = public("server-rsa.key");
    let p256 = public("client-p256.key");
    let p384 = public("server-p384.key");
    let rsa_sig = cli_sign("server-rsa.key", Some("sha256"), &[], OCTETS);
    let sha1_sig = cli_sign("server-rsa.key", Some("sha1"), &[], OCTETS);
    let ec_sig = cli_sign("client-p256.key", Some("sha256"), &[], OCTETS);
    let ds = AuthMethod::DIGITAL_SIGNATURE;

    // SHA-1 is not announced, so not accepted in method 14, whatever the algorithm.
    for alg in [rfc7427::SHA1_WITH_RSA, rfc7427::PSS_EMPTY, rfc7427::PSS_DEFAULT] {
        assert!(
            matches!(verify_auth(&rsa, ds, &digital(alg, &sha1_sig), OCTETS), Err(AuthError::UnsupportedHash { .. })),
            "{alg:02x?}"
        );
    }
    assert!(matches!(
        verify_auth(&p256, ds, &digital(rfc7427::ECDSA_WITH_SHA1, &ec_sig), OCTETS),
        Err(AuthError::UnsupportedHash { .. })
    ));
    match verify_auth(&p256, ds, &digital(rfc7427::DSA_WITH_SHA256, &ec_sig), OCTETS).unwrap_err() {
        e @ AuthError::UnknownAlgorithm { .. } => assert!(e.to_string().contains("2.16.840.1.101.3.4.3.2"), "{e}"),
        e => panic!("{e}"),
    }

    // Key and algorithm disagree.
    assert!(matches!(
        verify_auth(&p256, ds, &digital(rfc7427::SHA256_WITH_RSA, &rsa_sig), OCTETS),
        Err(AuthError::KeyMismatch { .. })
    ));
    assert!(matches!(
        verify_auth(&rsa, ds, &digital(rfc7427::ECDSA_WITH_SHA256, &ec_sig), OCTETS),
        Err(AuthError::KeyMismatch { .. })
    ));
    assert!(matches!(verify_auth(&p256, AuthMethod::RSA_SIG, &rsa_sig, OCTETS), Err(AuthError::KeyMismatch { .. })));
    let raw = der_to_raw(&ec_sig, 32);
    assert!(matches!(
        verify_auth(&p384, AuthMethod::ECDSA_SHA256_P256, &raw, OCTETS),
        Err(AuthError::KeyMismatch { .. })
    ));
    assert!(matches!(
        verify_auth(&p256, AuthMethod::ECDSA_SHA256_P256, &raw[..63], OCTETS),
        Err(AuthError::SignatureLength { got: 63, expected: 64, .. })
    ));

    // Framing.
    assert!(matches!(verify_auth(&rsa, ds, &[], OCTETS), Err(AuthError::Malformed(_))));
    assert!(matches!(verify_auth(&rsa, ds, &[40, 0x30, 0x00], OCTETS), Err(AuthError::Malformed(_))));
    assert!(matches!(
        verify_auth(&rsa, ds, &digital(rfc7427::SHA256_WITH_RSA, &[]), OCTETS),
        Err(AuthError::Malformed(_))
    ));
    let mut trailing = rfc7427::SHA256_WITH_RSA.to_vec();
    trailing.push(0);
    assert!(matches!(
        verify_auth(&rsa, ds, &digital(&trailing, &rsa_sig), OCTETS),
        Err(AuthError::AlgorithmIdentifier(_))
    ));
    let mut truncated = rfc7427::SHA256_WITH_RSA.to_vec();
    truncated[1] += 1;
    assert!(matches!(
        verify_auth(&rsa, ds, &digital(&truncated, &rsa_sig), OCTETS),
        Err(AuthError::AlgorithmIdentifier(_))
    ));

    // RSASSA-PSS parameters.
    let mut trailer2 = rfc7427::PSS_SHA256.to_vec();
    trailer2.extend([0xa3, 0x03, 0x02, 0x01, 0x02]);
    trailer2[1] += 5;
    trailer2[14] += 5;
    assert!(matches!(verify_auth(&rsa, ds, &digital(&trailer2, &rsa_sig), OCTETS), Err(AuthError::PssParameters(_))));
    let no_params = &rfc7427::PSS_EMPTY[..13];
    let mut no_params = no_params.to_vec();
    no_params[1] = 11;
    assert!(matches!(verify_auth(&rsa, ds, &digital(&no_params, &rsa_sig), OCTETS), Err(AuthError::PssParameters(_))));

    // A flipped bit anywhere in the signature.
    let mut bad = rsa_sig.clone();
    bad[100] ^= 0x01;
    assert!(matches!(
        verify_auth(&rsa, ds, &digital(rfc7427::SHA256_WITH_RSA, &bad), OCTETS),
        Err(AuthError::BadSignature { .. })
    ));
    let mut bad = raw.clone();
    bad[40] ^= 0x80;
    assert!(matches!(
        verify_auth(&p256, AuthMethod::ECDSA_SHA256_P256, &bad, OCTETS),
        Err(AuthError::BadSignature { .. })
    ));

    for method in [AuthMethod::SHARED_KEY, AuthMethod(3), AuthMethod(13)] {
        assert!(matches!(verify_auth(&rsa, method, &rsa_sig, OCTETS), Err(AuthError::UnsupportedMethod(_))));
    }
}

#[test]
fn hash_algorithms_notify() {
    assert_eq!(hash_algorithms_notify_data(), vec![0, 2, 0, 3, 0, 4, 0, 5]);
    assert_eq!(parse_hash_algorithms_notify(&hash_algorithms_notify_data()).unwrap(), ALL_HASHES.to_vec());
    assert!(matches!(parse_hash_algorithms_notify(&[0, 2, 0]), Err(AuthError::HashNotifyLength(3))));
}

/// The signed octets and the shared-key AUTH data, computed by Python's `hmac`.
fn python_psk(
    hash: &str,
    message: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id: &Identification,
    psk: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let script = r#"
import hashlib, hmac, sys
h = getattr(hashlib, sys.argv[1])
msg, nonce, sk_p, id_data, psk = (bytes.fromhex(a) for a in sys.argv[3:8])
id_type = int(sys.argv[2])
octets = msg + nonce + hmac.new(sk_p, bytes([id_type, 0, 0, 0]) + id_data, h).digest()
key = hmac.new(psk, b"Key Pad for IKEv2", h).digest()
print(octets.hex())
print(hmac.new(key, octets, h).hexdigest())
"#;
    let out = Command::new("python3")
        .args(["-c", script, hash, &id.kind.0.to_string()])
        .args([message, nonce, sk_p, &id.data, psk].map(hex::encode))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(|l| hex::decode(l).unwrap());
    (lines.next().unwrap(), lines.next().unwrap())
}

#[test]
fn psk_auth_matches_python_hmac() {
    let p = default_provider();
    let message: Vec<u8> = (0..=255u8).cycle().take(312).collect();
    let nonce: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7)).collect();
    let psk = b"correct horse battery staple";
    let ids = [
        Identification { kind: IdType::FQDN, data: b"vpn.example.com".to_vec() },
        Identification { kind: IdType::IPV4_ADDR, data: vec![192, 0, 2, 1] },
    ];
    for (prf, hash, key_len) in [
        (PrfAlg::HmacSha1, "sha1", 20),
        (PrfAlg::HmacSha256, "sha256", 32),
        (PrfAlg::HmacSha384, "sha384", 48),
        (PrfAlg::HmacSha512, "sha512", 64),
    ] {
        let sk_p: Vec<u8> = (0..key_len as u8).collect();
        for id in &ids {
            let (octets, auth) = python_psk(hash, &message, &nonce, &sk_p, id, psk);
            let ours = signed_octets(&message, &nonce, p, prf, &sk_p, id);
            assert_eq!(ours, octets, "{hash}");
            assert_eq!(psk_auth(p, prf, psk, &ours), auth, "{hash}");
            verify_psk(p, prf, psk, &ours, &auth).unwrap();
            assert!(matches!(verify_psk(p, prf, b"wrong", &ours, &auth), Err(AuthError::PskMismatch)));
            assert!(matches!(verify_psk(p, prf, psk, &ours, &auth[1..]), Err(AuthError::PskMismatch)));
            let mut flipped = auth.clone();
            flipped[0] ^= 1;
            assert!(matches!(verify_psk(p, prf, psk, &ours, &flipped), Err(AuthError::PskMismatch)));
        }
    }
}
