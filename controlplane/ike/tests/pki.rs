//! Certificates, keys, chain verification and identity matching against the certificates of
//! tests/data/pki (made by make.sh there with strongSwan's `pki` and the openssl CLI; their
//! validity windows are fixed, so every check runs at a fixed instant).
//!
//! Oracle for the CERTREQ hashes: the openssl CLI and sha1sum
//! (`openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha1sum`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use esprit_ikev2::identity::parse_identity;
use esprit_ikev2::message::{IdType, Identification};
use esprit_ikev2::pki::{certreq_hash, split_certreq, Certificate, EcCurve, KeyKind, PkiError, PrivateKey, TrustStore};

/// 2030-01-01T00:00:00Z: inside every window but expired.crt's and future.crt's.
const Y2030: i64 = 1_893_456_000;
/// 2045-01-01T00:00:00Z: inside future.crt's window.
const Y2045: i64 = 2_366_841_600;
/// 2070-01-01T00:00:00Z: end entities (until 2064) expired, CAs (until 2074) not.
const Y2070: i64 = 3_155_760_000;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki").join(name)
}

fn cert(name: &str) -> Certificate {
    let mut certs = Certificate::load(data(name)).unwrap();
    assert_eq!(certs.len(), 1, "{name}");
    certs.remove(0)
}

fn store(names: &[&str]) -> TrustStore {
    TrustStore::new(names.iter().map(|n| cert(n)).collect())
}

fn fqdn(s: &str) -> Identification {
    Identification { kind: IdType::FQDN, data: s.as_bytes().to_vec() }
}

#[test]
fn loads_pem_der_and_bundles() {
    let pem = cert("server-rsa.crt");
    assert_eq!(cert("server-rsa.der"), pem);
    assert_eq!(Certificate::from_der(pem.der()).unwrap(), pem);
    let both = Certificate::load(data("two-cas.crt")).unwrap();
    assert_eq!(both, vec![cert("rsa-ca.crt"), cert("p384-ca.crt")]);
    assert_eq!(pem.subject_display(), "C=CH, O=Esprit Test, CN=vpn.example.com");
    assert_eq!(
        pem.subject_alt_names(),
        vec![
            fqdn("vpn.example.com"),
            Identification { kind: IdType::IPV4_ADDR, data: vec![192, 0, 2, 1] },
            Identification {
                kind: IdType::IPV6_ADDR,
                data: "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec()
            },
        ]
    );
    assert_eq!(pem.public_key().unwrap().kind(), KeyKind::Rsa { bits: 2048 });
}

#[test]
fn load_errors_name_the_file() {
    let missing = data("no-such.crt");
    let e = Certificate::load(&missing).unwrap_err();
    assert!(matches!(e, PkiError::Read { .. }));
    assert!(e.to_string().contains("no-such.crt"), "{e}");

    // A key file is PEM, but holds no certificate.
    let e = Certificate::load(data("server-rsa.key")).unwrap_err();
    assert!(matches!(e, PkiError::NoCertificate { .. }));
    assert!(e.to_string().contains("server-rsa.key"), "{e}");

    assert!(matches!(Certificate::from_pem(b"hello"), Err(PkiError::NoCertificate { .. })));
    let bad_b64 = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(Certificate::from_pem(bad_b64), Err(PkiError::Pem { block: 1, .. })));
    let unterminated = b"-----BEGIN CERTIFICATE-----\nMAA=\n";
    assert!(matches!(Certificate::from_pem(unterminated), Err(PkiError::Pem { .. })));

    let mut der = cert("rsa-ca.crt").der().to_vec();
    der.push(0);
    assert!(matches!(Certificate::from_der(&der), Err(PkiError::CertificateStructure { .. })));
    assert!(matches!(Certificate::from_der(&der[..100]), Err(PkiError::CertificateStructure { .. })));

    let e = PrivateKey::load(data("encrypted.key")).unwrap_err();
    assert!(matches!(e, PkiError::EncryptedKey { .. }));
    assert!(e.to_string().contains("encrypted.key"), "{e}");
    // The traditional (OpenSSL "Proc-Type: 4,ENCRYPTED") encryption, made by the CLI.
    let legacy = Command::new("openssl")
        .args(["pkey", "-traditional", "-aes256", "-passout", "pass:secret", "-in"])
        .arg(data("client-p256.key"))
        .output()
        .unwrap();
    assert!(legacy.status.success());
    assert!(matches!(PrivateKey::from_pem(&legacy.stdout), Err(PkiError::EncryptedKey { .. })));
    let e = PrivateKey::load(data("rsa-ca.crt")).unwrap_err();
    assert!(matches!(e, PkiError::PrivateKey { .. }), "{e}");
}

#[test]
fn loads_every_key_encoding() {
    let cases = [
        ("server-rsa.key", KeyKind::Rsa { bits: 2048 }, "server-rsa.crt"), // PKCS#1
        ("rsa-pkcs8.key", KeyKind::Rsa { bits: 2048 }, "server-rsa.crt"),  // PKCS#8
        ("rsa-ca.key", KeyKind::Rsa { bits: 3072 }, "rsa-ca.crt"),
        ("client-p256.key", KeyKind::Ecdsa(EcCurve::P256), "client-p256.crt"), // SEC1
        ("server-p384.key", KeyKind::Ecdsa(EcCurve::P384), "server-p384.crt"),
        ("ed25519-ee.key", KeyKind::Ed25519, "ed25519-ee.crt"), // PKCS#8
    ];
    for (key, kind, crt) in cases {
        let k = PrivateKey::load(data(key)).unwrap();
        assert_eq!(k.kind(), kind, "{key}");
        let c = cert(crt);
        assert!(k.matches_certificate(&c), "{key}");
        assert_eq!(k.public_key().unwrap(), c.public_key().unwrap(), "{key}");
        assert!(!k.matches_certificate(&cert("p256-ca.crt")), "{key}");
    }
    assert_eq!(PrivateKey::load(data("p521.key")).unwrap().kind(), KeyKind::Ecdsa(EcCurve::P521));
    // DER PKCS#8, through the openssl CLI.
    let der = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(data("client-p256.key"))
        .output()
        .unwrap();
    assert!(der.status.success());
    assert!(PrivateKey::from_der(&der.stdout).unwrap().matches_certificate(&cert("client-p256.crt")));
}

#[test]
fn verifies_chains() {
    let cas = store(&["rsa-ca.crt", "p256-ca.crt", "p384-ca.crt"]);

    let peer = cas.verify(&cert("server-rsa.crt"), &[], Y2030).unwrap();
    assert_eq!(peer.public_key().kind(), KeyKind::Rsa { bits: 2048 });
    assert_eq!(peer.subject(), cert("server-rsa.crt").subject_der());
    assert_eq!(peer.chain().len(), 2);
    assert_eq!(peer.chain()[1], cert("rsa-ca.crt"));

    let client = cas.verify(&cert("client-p256.crt"), &[cert("int-ca.crt")], Y2030).unwrap();
    assert_eq!(client.chain().len(), 3);
    assert_eq!(client.public_key().kind(), KeyKind::Ecdsa(EcCurve::P256));
    // Intermediates that do not belong to the chain are ignored.
    cas.verify(&cert("client-p256.crt"), &[cert("unknown-ca.crt"), cert("int-ca.crt")], Y2030).unwrap();

    let p384 = cas.verify(&cert("server-p384.crt"), &[], Y2030).unwrap();
    assert_eq!(p384.public_key().kind(), KeyKind::Ecdsa(EcCurve::P384));
    let ed = cas.verify(&cert("ed25519-ee.crt"), &[], Y2030).unwrap();
    assert_eq!(ed.public_key().kind(), KeyKind::Ed25519);

    // An intermediate CA in the store is a trust anchor by itself.
    store(&["int-ca.crt"]).verify(&cert("client-p256.crt"), &[], Y2030).unwrap();
    // future.crt, inside its window.
    cas.verify(&cert("future.crt"), &[], Y2045).unwrap();
}

#[test]
fn refuses_chains_precisely() {
    let cas = store(&["rsa-ca.crt", "p256-ca.crt", "p384-ca.crt"]);

    match cas.verify(&cert("expired.crt"), &[], Y2030).unwrap_err() {
        PkiError::Expired { subject, not_after } => {
            assert_eq!(subject, "C=CH, O=Esprit Test, CN=expired.example.com");
            assert!(not_after.contains("2022"), "{not_after}");
        }
        e => panic!("{e}"),
    }
    match cas.verify(&cert("server-rsa.crt"), &[], Y2070).unwrap_err() {
        PkiError::Expired { subject, .. } => assert_eq!(subject, "C=CH, O=Esprit Test, CN=vpn.example.com"),
        e => panic!("{e}"),
    }
    match cas.verify(&cert("future.crt"), &[], Y2030).unwrap_err() {
        PkiError::NotYetValid { subject, not_before } => {
            assert_eq!(subject, "C=CH, O=Esprit Test, CN=future.example.com");
            assert!(not_before.contains("2040"), "{not_before}");
        }
        e => panic!("{e}"),
    }
    match cas.verify(&cert("client-p256.crt"), &[], Y2030).unwrap_err() {
        PkiError::UnknownCa { subject, issuer } => {
            assert_eq!(subject, "C=CH, O=Esprit Test, OU=Users, CN=alice@example.com");
            assert_eq!(issuer, "C=CH, O=Esprit Test, OU=Intermediate, CN=Esprit Intermediate CA");
        }
        e => panic!("{e}"),
    }
    for intermediates in [vec![], vec![cert("unknown-ca.crt")]] {
        match cas.verify(&cert("unknown-ee.crt"), &intermediates, Y2030).unwrap_err() {
            PkiError::UnknownCa { issuer, .. } => assert_eq!(issuer, "C=CH, O=Somebody Else, CN=Unknown CA"),
            e => panic!("{e}"),
        }
    }
    // A self-signed certificate nobody trusts.
    assert!(matches!(cas.verify(&cert("unknown-ca.crt"), &[], Y2030), Err(PkiError::UnknownCa { .. })));
    match cas.verify(&cert("broken.crt"), &[], Y2030).unwrap_err() {
        PkiError::BadSignature { subject } => assert_eq!(subject, "C=CH, O=Esprit Test, CN=brokeN.example.com"),
        e => panic!("{e}"),
    }
    match cas.verify(&cert("victim.crt"), &[cert("fake-ca.crt")], Y2030).unwrap_err() {
        PkiError::NotACa { subject } => assert_eq!(subject, "C=CH, O=Esprit Test, CN=fake-ca.example.com"),
        e => panic!("{e}"),
    }
    match cas.verify(&cert("deep.crt"), &[cert("sub-ca.crt"), cert("int-ca.crt")], Y2030).unwrap_err() {
        PkiError::PathLength { subject } => {
            assert_eq!(subject, "C=CH, O=Esprit Test, OU=Intermediate, CN=Esprit Intermediate CA")
        }
        e => panic!("{e}"),
    }
    // An empty store trusts nothing.
    assert!(matches!(
        TrustStore::default().verify(&cert("server-rsa.crt"), &[], Y2030),
        Err(PkiError::UnknownCa { .. })
    ));
}

#[test]
fn identities_match_the_certificate() {
    let cas = store(&["rsa-ca.crt"]);
    let server = cas.verify(&cert("server-rsa.crt"), &[], Y2030).unwrap();
    let id = |s: &str| parse_identity(s).unwrap();
    let table = [
        ("vpn.example.com", true),
        ("VPN.Example.COM", true),
        ("192.0.2.1", true),
        ("2001:db8::1", true),
        ("C=CH, O=Esprit Test, CN=vpn.example.com", true),
        ("c=ch,o=esprit test,cn=VPN.example.com", true),
        ("/C=CH/O=Esprit Test/CN=vpn.example.com", true),
        ("C=CH, O=Esprit Test", false),
        ("C=CH, O=Esprit Test, CN=vpn.example.com, OU=x", false),
        ("other.example.com", false),
        ("192.0.2.2", false),
        ("2001:db8::2", false),
        ("vpn@example.com", false),
        ("@#00", false),
    ];
    for (written, expected) in table {
        assert_eq!(server.matches(&id(written)), expected, "{written}");
    }

    let client = store(&["rsa-ca.crt"]).verify(&cert("client-p256.crt"), &[cert("int-ca.crt")], Y2030).unwrap();
    let table = [
        ("alice@example.com", true),
        ("ALICE@example.com", true),
        ("alice.example.com", true),
        ("@alice@example.com", false), // an FQDN "alice@example.com" is not the email SAN
        ("bob@example.com", false),
        ("C=CH, O=Esprit Test, OU=Users, CN=alice@example.com", true),
        ("C=CH, O=Esprit Test, CN=alice@example.com", false),
    ];
    for (written, expected) in table {
        assert_eq!(client.matches(&id(written)), expected, "{written}");
    }

    // A certificate whose CN is a host name but which has no dNSName SAN: the CN is not
    // used for an FQDN (RFC 4945 §3.1.2).
    let broken_cn = store(&["rsa-ca.crt"]).verify(&cert("fake-ca.crt"), &[], Y2030).unwrap();
    assert!(broken_cn.subject_alt_names().is_empty());
    assert!(!broken_cn.matches(&fqdn("fake-ca.example.com")));
}

fn openssl_spki_sha1(name: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform DER | sha1sum")
        .arg("sh")
        .arg(data(name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[test]
fn certreq_hashes_match_openssl() {
    let names = ["rsa-ca.crt", "p256-ca.crt", "p384-ca.crt", "int-ca.crt", "ed25519-ee.crt"];
    for name in names {
        assert_eq!(hex::encode(certreq_hash(&cert(name))), openssl_spki_sha1(name), "{name}");
    }
    let cas = store(&["rsa-ca.crt", "p256-ca.crt"]);
    let data = cas.certreq_data();
    assert_eq!(data.len(), 40);
    let hashes = split_certreq(&data).unwrap();
    assert_eq!(hashes, vec![certreq_hash(&cert("rsa-ca.crt")), certreq_hash(&cert("p256-ca.crt"))]);
    assert_eq!(cas.find_by_certreq_hash(&hashes[1]), Some(&cert("p256-ca.crt")));
    assert_eq!(cas.find_by_certreq_hash(&certreq_hash(&cert("p384-ca.crt"))), None);
    assert!(split_certreq(&[]).unwrap().is_empty());
    assert!(matches!(split_certreq(&data[..39]), Err(PkiError::CertReqLength { len: 39 })));
}
