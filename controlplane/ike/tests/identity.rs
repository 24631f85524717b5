//! Identities as operators write them: parsing, printing, DN comparison and patterns.
//!
//! Oracles: the subject DER strongSwan's `pki` wrote into tests/data/pki/server-rsa.crt (our
//! DN encoding must equal it byte for byte), and the UTF8String subject the openssl CLI wrote
//! into victim.crt (a different encoding of the same DN, which must compare equal).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use esprit_ikev2::identity::{
    display_identity, dn_equal, parse_identity, same_identity, IdentityError, IdentityPattern,
};
use esprit_ikev2::message::{IdType, Identification};
use esprit_ikev2::pki::Certificate;
use openssl::asn1::Asn1Type;
use openssl::nid::Nid;
use openssl::x509::X509Name;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki").join(name)
}

fn cert(name: &str) -> Certificate {
    Certificate::load(data(name)).unwrap().remove(0)
}

fn id(kind: IdType, data: &[u8]) -> Identification {
    Identification { kind, data: data.to_vec() }
}

fn dn(s: &str) -> Identification {
    let id = parse_identity(s).unwrap();
    assert_eq!(id.kind, IdType::DER_ASN1_DN, "{s}");
    id
}

#[test]
fn parses_each_kind() {
    let cases: &[(&str, IdType, &[u8])] = &[
        ("192.0.2.1", IdType::IPV4_ADDR, &[192, 0, 2, 1]),
        ("2001:db8::1", IdType::IPV6_ADDR, &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ("@host.example", IdType::FQDN, b"host.example"),
        ("@host", IdType::FQDN, b"host"),
        ("@192.0.2.1", IdType::FQDN, b"192.0.2.1"),
        ("vpn.example.com", IdType::FQDN, b"vpn.example.com"),
        ("  vpn.example.com  ", IdType::FQDN, b"vpn.example.com"),
        ("@#0a1bFF", IdType::KEY_ID, &[0x0a, 0x1b, 0xff]),
        ("user@example.com", IdType::RFC822_ADDR, b"user@example.com"),
        ("@@user@example.com", IdType::RFC822_ADDR, b"user@example.com"),
    ];
    for &(input, kind, bytes) in cases {
        assert_eq!(parse_identity(input).unwrap(), id(kind, bytes), "{input}");
    }
}

#[test]
fn dn_der_equals_strongswans() {
    // pki wrote this subject from "C=CH, O=Esprit Test, CN=vpn.example.com", PrintableStrings.
    let subject = cert("server-rsa.crt").subject_der().to_vec();
    for written in [
        "C=CH, O=Esprit Test, CN=vpn.example.com",
        "C=CH,O=Esprit Test,CN=vpn.example.com",
        "  C = CH ,   O =   Esprit Test  , CN=vpn.example.com ",
        "/C=CH/O=Esprit Test/CN=vpn.example.com",
        "c=CH, organizationName=Esprit Test, commonName=vpn.example.com",
        "C=CH, O=\"Esprit Test\", CN=vpn.example.com",
    ] {
        assert_eq!(dn(written).data, subject, "{written}");
    }
}

#[test]
fn differently_encoded_dns_are_equal() {
    // victim.crt was issued by `openssl ca`: O and CN are UTF8Strings, not PrintableStrings.
    let victim = cert("victim.crt");
    let ours = dn("C=CH, O=Esprit Test, CN=victim.example.com");
    assert_ne!(ours.data, victim.subject_der(), "the encodings differ");
    assert!(dn_equal(&ours.data, victim.subject_der()));
    assert!(same_identity(&ours, &victim.subject_id()));

    // BMPString and UTF8String, different case and inner spacing.
    let mut b = X509Name::builder().unwrap();
    b.append_entry_by_nid_with_type(Nid::COUNTRYNAME, "CH", Asn1Type::PRINTABLESTRING).unwrap();
    let bmp: Vec<u8> = "esprit   TEST".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let bmp = bmp_as_str(&bmp);
    b.append_entry_by_nid_with_type(Nid::ORGANIZATIONNAME, &bmp, Asn1Type::BMPSTRING).unwrap();
    b.append_entry_by_nid_with_type(Nid::COMMONNAME, "VICTIM.example.com", Asn1Type::UTF8STRING).unwrap();
    let other = b.build().to_der().unwrap();
    assert!(dn_equal(&ours.data, &other));
}

/// `append_entry_by_nid_with_type` takes a `&str` whose bytes are stored as they are; a
/// BMPString's UTF-16 bytes are all ASCII-range here (the text is ASCII), so they form a valid
/// `str` with NUL characters.
fn bmp_as_str(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn dn_mismatches() {
    let base = dn("C=CH, O=Example, CN=vpn.example.com");
    for other in [
        "C=CH, CN=vpn.example.com, O=Example",
        "C=CH, O=Example, OU=Sales, CN=vpn.example.com",
        "C=CH, O=Example",
        "C=DE, O=Example, CN=vpn.example.com",
        "C=CH, OU=Example, CN=vpn.example.com",
        "C=CH, O=Example, CN=vpn.example.co",
    ] {
        assert!(!dn_equal(&base.data, &dn(other).data), "{other}");
    }
    assert!(!same_identity(&base, &id(IdType::FQDN, b"vpn.example.com")));
}

#[test]
fn refuses_with_reasons() {
    let err = |s: &str| parse_identity(s).unwrap_err();
    assert!(matches!(err(""), IdentityError::Empty));
    assert!(matches!(err("%any"), IdentityError::AnyIsNotAnIdentity));
    match err("C=CH, XY=foo, CN=x") {
        e @ IdentityError::UnknownAttribute { .. } => assert!(e.to_string().contains("`XY`"), "{e}"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(err("C=CHE, CN=x"), IdentityError::BadValue { attribute: "C", .. }));
    assert!(matches!(err("CN=Zürich, serialNumber=ü"), IdentityError::BadValue { attribute: "serialNumber", .. }));
    assert!(matches!(err("CN=x, E=ü@example.com"), IdentityError::BadValue { attribute: "E", .. }));
    assert!(matches!(err("C=CH, , CN=x"), IdentityError::BadRdn { why: "is empty", .. }));
    assert!(matches!(err("C=CH, O"), IdentityError::BadRdn { why: "has no `=`", .. }));
    assert!(matches!(err("C=CH, CN=\"x"), IdentityError::BadRdn { .. }));
    assert!(matches!(err("C=CH, CN="), IdentityError::BadValue { why: "is empty", .. }));
    assert!(matches!(err("@#abc"), IdentityError::BadKeyId { .. }));
    assert!(matches!(err("@#zz"), IdentityError::BadKeyId { .. }));
    assert!(matches!(err("vpn"), IdentityError::Ambiguous { .. }));
    assert!(matches!(err("user@"), IdentityError::BadName { .. }));
    assert!(matches!(err("@"), IdentityError::BadName { .. }));
    assert!(matches!(err("a b.example.com"), IdentityError::BadName { .. }));
}

#[test]
fn display_round_trips() {
    let cases = [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("vpn.example.com", "vpn.example.com"),
        ("@host", "@host"),
        ("@192.0.2.1", "@192.0.2.1"),
        ("@#0A1B", "@#0a1b"),
        ("user@example.com", "user@example.com"),
        ("C=CH,O=Example,CN=vpn.example.com", "C=CH, O=Example, CN=vpn.example.com"),
        ("/C=CH/ST=Zürich/L=Zürich/O=Example AG/OU=IT/CN=x", "C=CH, ST=Zürich, L=Zürich, O=Example AG, OU=IT, CN=x"),
        ("CN=Doe\\, John, O=\"A, B + C\"", "CN=Doe\\, John, O=A\\, B \\+ C"),
        ("CN=\\ padded\\ , O=x", "CN=\\ padded\\ , O=x"),
        ("DC=com, DC=example, CN=alice, E=alice@example.com", "DC=com, DC=example, CN=alice, E=alice@example.com"),
        ("emailAddress=alice@example.com, serialNumber=1234", "E=alice@example.com, serialNumber=1234"),
        ("C=CH, O=a/b, CN=x", "C=CH, O=a/b, CN=x"),
    ];
    for (input, shown) in cases {
        let parsed = parse_identity(input).unwrap();
        assert_eq!(display_identity(&parsed), shown, "{input}");
        assert_eq!(parse_identity(shown).unwrap(), parsed, "{shown}");
    }
}

#[test]
fn displays_what_cannot_be_written() {
    assert_eq!(display_identity(&id(IdType::IPV4_ADDR, &[1, 2, 3])), "(invalid IPv4 identity #010203)");
    assert_eq!(display_identity(&id(IdType::DER_ASN1_GN, &[0x30, 0x00])), "(ID_DER_ASN1_GN #3000)");
    assert_eq!(display_identity(&id(IdType(200), &[1])), "(ID type 200 #01)");
    assert_eq!(display_identity(&id(IdType::DER_ASN1_DN, &[0x31, 0x00])), "(invalid DN #3100)");
    // An attribute type outside the table is shown by its OID; a value that is not a
    // string by its DER.
    let mut b = X509Name::builder().unwrap();
    b.append_entry_by_nid(Nid::TITLE, "Boss").unwrap();
    let title = b.build().to_der().unwrap();
    assert_eq!(display_identity(&id(IdType::DER_ASN1_DN, &title)), "2.5.4.12=Boss");
}

fn matches(pattern: &str, ids: &[(Identification, bool)]) {
    let p = IdentityPattern::parse(pattern).unwrap();
    for (id, expected) in ids {
        assert_eq!(p.matches(id), *expected, "{pattern} vs {}", display_identity(id));
    }
}

#[test]
fn pattern_table() {
    let fqdn = |s: &str| id(IdType::FQDN, s.as_bytes());
    let email = |s: &str| id(IdType::RFC822_ADDR, s.as_bytes());
    matches("%any", &[(fqdn("a.example.com"), true), (dn("CN=x"), true), (id(IdType::KEY_ID, &[1]), true)]);
    matches(
        "vpn.example.com",
        &[
            (fqdn("vpn.example.com"), true),
            (fqdn("VPN.Example.COM"), true),
            (fqdn("vpn.example.com.evil"), false),
            (email("vpn.example.com@x"), false),
            (dn("CN=vpn.example.com"), false),
        ],
    );
    matches(
        "*.example.com",
        &[
            (fqdn("a.example.com"), true),
            (fqdn("A.B.EXAMPLE.com"), true),
            (fqdn("example.com"), false),
            (fqdn("evilexample.com"), false),
            (fqdn("a.example.com.evil"), false),
            (email("a@b.example.com"), false),
        ],
    );
    matches("@*.example.com", &[(fqdn("a.example.com"), true), (fqdn("example.com"), false)]);
    matches(
        "*@example.com",
        &[
            (email("alice@example.com"), true),
            (email("BOB@Example.COM"), true),
            (email("alice@sub.example.com"), false),
            (email("alice@example.com.evil"), false),
            (fqdn("alice@example.com"), false),
        ],
    );
    matches("alice@example.com", &[(email("Alice@Example.com"), true), (email("alice@example.org"), false)]);
    matches(
        "C=CH, O=Example, CN=*",
        &[
            (dn("C=CH, O=Example, CN=alice"), true),
            (dn("c=ch,o=EXAMPLE,cn=bob smith"), true),
            (dn("/C=CH/O=Example/CN=carol"), true),
            (dn("C=CH, O=Example, OU=Sales, CN=dave"), false),
            (dn("C=CH, O=Example"), false),
            (dn("C=DE, O=Example, CN=eve"), false),
            (dn("C=CH, OU=Example, CN=eve"), false),
            (fqdn("C=CH, O=Example, CN=x"), false),
        ],
    );
    matches(
        "C=CH, O=*, OU=*, CN=alice",
        &[(dn("C=CH, O=A, OU=B, CN=Alice"), true), (dn("C=CH, O=A, OU=B, CN=bob"), false)],
    );
    // An exact DN pattern, differently spaced and encoded than the certificate's subject.
    let victim = cert("victim.crt").subject_id();
    matches("C=CH,O=Esprit Test,   CN=victim.example.com", &[(victim.clone(), true)]);
    matches("C=CH, O=Esprit Test, CN=other.example.com", &[(victim, false)]);
    matches("192.0.2.1", &[(id(IdType::IPV4_ADDR, &[192, 0, 2, 1]), true), (fqdn("192.0.2.1"), false)]);
    matches("@#0102", &[(id(IdType::KEY_ID, &[1, 2]), true), (id(IdType::KEY_ID, &[1, 3]), false)]);
}

#[test]
fn pattern_errors_and_display() {
    for bad in ["*example.com", "a*.example.com", "*", "*.", "*@", "**.example.com", "C=CH, CN=a*, O=*"] {
        match IdentityPattern::parse(bad) {
            Err(IdentityError::BadWildcard { .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(IdentityPattern::parse("XY=*"), Err(IdentityError::UnknownAttribute { .. })));
    assert!(matches!(IdentityPattern::parse(""), Err(IdentityError::Empty)));
    assert!(IdentityPattern::parse("%any").unwrap().is_any());
    assert!(IdentityPattern::any().is_any());
    assert_eq!(IdentityPattern::parse(" *.example.com ").unwrap().to_string(), "*.example.com");
    let exact = IdentityPattern::exact(parse_identity("C=CH, CN=x").unwrap());
    assert_eq!(exact.to_string(), "C=CH, CN=x");
    assert!(exact.matches(&dn("c=ch, cn=X")));
}
