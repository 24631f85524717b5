//! Identities ([RFC 7296 §3.5](https://www.rfc-editor.org/rfc/rfc7296#section-3.5)) as
//! operators write them, after strongSwan's conventions, and the patterns a configuration
//! constrains remote identities with.
//!
//! | written                               | identity                               |
//! |---------------------------------------|----------------------------------------|
//! | `192.0.2.1`, `2001:db8::1`            | ID_IPV4_ADDR, ID_IPV6_ADDR             |
//! | `@host.example`, `@host`              | ID_FQDN (without the `@`)              |
//! | `@#0a1b…`                             | ID_KEY_ID (hexadecimal)                |
//! | `user@example.com`, `@@user@host`     | ID_RFC822_ADDR                         |
//! | `C=CH, O=Example, CN=vpn.example.com` | ID_DER_ASN1_DN (also `/C=CH/O=…/CN=…`) |
//! | `vpn.example.com`                     | ID_FQDN (a plain name needs a dot)     |
//!
//! Distinguished names are compared RDN by RDN — attribute type and value, string values
//! case-insensitively with whitespace runs folded, whatever their ASN.1 string type — never as
//! raw DER ([RFC 5280 §7.1](https://www.rfc-editor.org/rfc/rfc5280#section-7.1)), so a
//! PrintableString and a UTF8String of the same text match.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use openssl::asn1::Asn1Type;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::x509::X509Name;

use crate::message::{IdType, Identification};
use crate::pki::der;

/// Why a written identity or pattern was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("empty identity")]
    Empty,
    #[error("`%any` is a pattern for remote identities, not an identity")]
    AnyIsNotAnIdentity,
    #[error("`{input}`: unknown DN attribute `{attribute}` (known: C, ST, L, O, OU, CN, E, DC, serialNumber)")]
    UnknownAttribute { input: String, attribute: String },
    #[error("`{input}`: relative distinguished name `{rdn}` {why}")]
    BadRdn { input: String, rdn: String, why: &'static str },
    #[error("`{input}`: {attribute}={value:?} {why}")]
    BadValue { input: String, attribute: &'static str, value: String, why: &'static str },
    #[error("`{input}`: a key ID after `@#` must be an even number of hexadecimal digits")]
    BadKeyId { input: String },
    #[error("`{input}`: {why}")]
    BadName { input: String, why: &'static str },
    #[error("`{input}` is ambiguous: write `@{input}` for an FQDN identity without a dot")]
    Ambiguous { input: String },
    #[error("`{input}`: {why}")]
    BadWildcard { input: String, why: &'static str },
    #[error("building the DER of `{input}`: {source}")]
    Library {
        input: String,
        #[source]
        source: ErrorStack,
    },
}

/// How an attribute's value is encoded when a DN is built from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringRule {
    /// PrintableString, exactly two letters (X.520 countryName).
    Country,
    /// PrintableString when every character allows it, else UTF8String (strongSwan's and
    /// OpenSSL's choice for DirectoryString).
    Directory,
    /// PrintableString only (X.520 serialNumber).
    Printable,
    /// IA5String (emailAddress, domainComponent).
    Ia5,
}

/// An attribute type operators can write.
#[derive(Debug)]
struct Attribute {
    label: &'static str,
    aliases: &'static [&'static str],
    /// The OBJECT IDENTIFIER's content octets.
    oid: &'static [u8],
    nid: Nid,
    rule: StringRule,
}

const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        label: "C",
        aliases: &["countryName"],
        oid: &[0x55, 4, 6],
        nid: Nid::COUNTRYNAME,
        rule: StringRule::Country,
    },
    Attribute {
        label: "ST",
        aliases: &["S", "stateOrProvinceName"],
        oid: &[0x55, 4, 8],
        nid: Nid::STATEORPROVINCENAME,
        rule: StringRule::Directory,
    },
    Attribute {
        label: "L",
        aliases: &["localityName"],
        oid: &[0x55, 4, 7],
        nid: Nid::LOCALITYNAME,
        rule: StringRule::Directory,
    },
    Attribute {
        label: "O",
        aliases: &["organizationName"],
        oid: &[0x55, 4, 10],
        nid: Nid::ORGANIZATIONNAME,
        rule: StringRule::Directory,
    },
    Attribute {
        label: "OU",
        aliases: &["organizationalUnitName"],
        oid: &[0x55, 4, 11],
        nid: Nid::ORGANIZATIONALUNITNAME,
        rule: StringRule::Directory,
    },
    Attribute {
        label: "CN",
        aliases: &["commonName"],
        oid: &[0x55, 4, 3],
        nid: Nid::COMMONNAME,
        rule: StringRule::Directory,
    },
    Attribute {
        label: "E",
        aliases: &["emailAddress", "Email"],
        oid: &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        nid: Nid::PKCS9_EMAILADDRESS,
        rule: StringRule::Ia5,
    },
    Attribute {
        label: "DC",
        aliases: &["domainComponent"],
        oid: &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        nid: Nid::DOMAINCOMPONENT,
        rule: StringRule::Ia5,
    },
    Attribute {
        label: "serialNumber",
        aliases: &[],
        oid: &[0x55, 4, 5],
        nid: Nid::SERIALNUMBER,
        rule: StringRule::Printable,
    },
];

fn attribute_by_name(name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES
        .iter()
        .find(|a| a.label.eq_ignore_ascii_case(name) || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(name)))
}

fn attribute_by_oid(oid: &[u8]) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|a| a.oid == oid)
}

/// X.680 §41.4 PrintableString characters.
fn is_printable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

/// Parses an identity as an operator writes it (see the module documentation).
pub fn parse_identity(s: &str) -> Result<Identification, IdentityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(IdentityError::Empty);
    }
    if s.eq_ignore_ascii_case("%any") {
        return Err(IdentityError::AnyIsNotAnIdentity);
    }
    if let Some(hex) = s.strip_prefix("@#") {
        let data = decode_hex(hex).ok_or_else(|| IdentityError::BadKeyId { input: s.to_owned() })?;
        return Ok(Identification { kind: IdType::KEY_ID, data });
    }
    if let Some(email) = s.strip_prefix("@@") {
        check_email(email, s)?;
        return Ok(Identification { kind: IdType::RFC822_ADDR, data: email.as_bytes().to_vec() });
    }
    if let Some(name) = s.strip_prefix('@') {
        check_name(name, s)?;
        return Ok(Identification { kind: IdType::FQDN, data: name.as_bytes().to_vec() });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(a) => Identification { kind: IdType::IPV4_ADDR, data: a.octets().to_vec() },
            IpAddr::V6(a) => Identification { kind: IdType::IPV6_ADDR, data: a.octets().to_vec() },
        });
    }
    if s.contains('=') {
        return Ok(Identification { kind: IdType::DER_ASN1_DN, data: build_dn(s)? });
    }
    if s.contains('@') {
        check_email(s, s)?;
        return Ok(Identification { kind: IdType::RFC822_ADDR, data: s.as_bytes().to_vec() });
    }
    if s.contains('.') {
        check_name(s, s)?;
        return Ok(Identification { kind: IdType::FQDN, data: s.as_bytes().to_vec() });
    }
    Err(IdentityError::Ambiguous { input: s.to_owned() })
}

fn check_name(name: &str, input: &str) -> Result<(), IdentityError> {
    let bad = |why| Err(IdentityError::BadName { input: input.to_owned(), why });
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a name may not contain spaces or control characters");
    }
    Ok(())
}

fn check_email(email: &str, input: &str) -> Result<(), IdentityError> {
    check_name(email, input)?;
    match email.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(()),
        _ => Err(IdentityError::BadName { input: input.to_owned(), why: "an email address needs user@domain" }),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `attribute=value` of a written DN.
#[derive(Debug, Clone)]
struct WrittenRdn {
    attribute: &'static Attribute,
    value: String,
    /// The value was a bare `*` (not quoted nor escaped).
    wildcard: bool,
}

/// Splits a written DN into its RDNs: `C=CH, O=Example, CN=x` (`,` separated) or
/// `/C=CH/O=Example/CN=x`. A value may be double-quoted, and `\` escapes the next character.
fn split_dn(input: &str) -> Result<Vec<WrittenRdn>, IdentityError> {
    let (sep, body) = match input.strip_prefix('/') {
        Some(rest) => ('/', rest),
        None => (',', input),
    };
    let mut rdns = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        // The attribute type, up to '='.
        let mut key = String::new();
        let mut found_eq = false;
        for c in chars.by_ref() {
            if c == '=' {
                found_eq = true;
                break;
            }
            if c == sep {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_owned();
        if !found_eq {
            let why = if key.is_empty() { "is empty" } else { "has no `=`" };
            return Err(IdentityError::BadRdn { input: input.to_owned(), rdn: key, why });
        }
        let attribute = attribute_by_name(&key)
            .ok_or_else(|| IdentityError::UnknownAttribute { input: input.to_owned(), attribute: key.clone() })?;

        // The value, up to an unescaped separator. Each character remembers whether it was
        // escaped or quoted, so that only bare surrounding whitespace is trimmed.
        let mut value: Vec<(char, bool)> = Vec::new();
        let mut quoted = false;
        let mut ended_by_sep = false;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e) => value.push((e, true)),
                    None => {
                        return Err(IdentityError::BadRdn {
                            input: input.to_owned(),
                            rdn: key,
                            why: "ends with a lone `\\`",
                        })
                    }
                },
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    ended_by_sep = true;
                    break;
                }
                c => value.push((c, quoted)),
            }
        }
        if quoted {
            return Err(IdentityError::BadRdn { input: input.to_owned(), rdn: key, why: "has an unclosed `\"`" });
        }
        while value.last().is_some_and(|(c, escaped)| c.is_whitespace() && !escaped) {
            value.pop();
        }
        let wildcard = matches!(value.as_slice(), [('*', false)]);
        let value: String = value.into_iter().map(|(c, _)| c).collect();
        if value.is_empty() {
            return Err(IdentityError::BadValue {
                input: input.to_owned(),
                attribute: attribute.label,
                value,
                why: "is empty",
            });
        }
        rdns.push(WrittenRdn { attribute, value, wildcard });
        if !ended_by_sep {
            return Ok(rdns);
        }
    }
}

/// The ASN.1 string type `value` gets for `attribute`, or why it cannot have one.
fn string_type(attribute: &Attribute, value: &str, input: &str) -> Result<Asn1Type, IdentityError> {
    let bad = |why| {
        Err(IdentityError::BadValue {
            input: input.to_owned(),
            attribute: attribute.label,
            value: value.to_owned(),
            why,
        })
    };
    match attribute.rule {
        StringRule::Country if value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()) => {
            Ok(Asn1Type::PRINTABLESTRING)
        }
        StringRule::Country => bad("is not a two-letter country code"),
        StringRule::Printable if is_printable(value) => Ok(Asn1Type::PRINTABLESTRING),
        StringRule::Printable => bad("has characters a PrintableString cannot hold"),
        StringRule::Ia5 if value.is_ascii() => Ok(Asn1Type::IA5STRING),
        StringRule::Ia5 => bad("is not ASCII"),
        StringRule::Directory if is_printable(value) => Ok(Asn1Type::PRINTABLESTRING),
        StringRule::Directory => Ok(Asn1Type::UTF8STRING),
    }
}

/// Builds the DER Name of a written DN (with OpenSSL's `X509NameBuilder`).
fn build_dn(input: &str) -> Result<Vec<u8>, IdentityError> {
    let rdns = split_dn(input)?;
    let library = |source| IdentityError::Library { input: input.to_owned(), source };
    let mut builder = X509Name::builder().map_err(library)?;
    for rdn in &rdns {
        let ty = string_type(rdn.attribute, &rdn.value, input)?;
        builder.append_entry_by_nid_with_type(rdn.attribute.nid, &rdn.value, ty).map_err(library)?;
    }
    builder.build().to_der().map_err(library)
}

/// One AttributeTypeAndValue of a DER Name.
#[derive(Debug, Clone, Copy)]
struct Ava<'a> {
    oid: &'a [u8],
    tag: u8,
    value: &'a [u8],
    raw_value: &'a [u8],
}

/// Name ::= SEQUENCE OF SET SIZE (1..MAX) OF SEQUENCE { type OID, value ANY }
/// ([RFC 5280 §4.1.2.4](https://www.rfc-editor.org/rfc/rfc5280#section-4.1.2.4)).
fn parse_dn(name: &[u8]) -> Result<Vec<Vec<Ava<'_>>>, der::DerError> {
    let seq = der::single(name, der::SEQUENCE)?;
    let mut rdns = Vec::new();
    let mut r = der::Reader::new(seq.content);
    while !r.is_empty() {
        let set = r.read(der::SET)?;
        let mut s = der::Reader::new(set.content);
        let mut avas = Vec::new();
        while !s.is_empty() {
            let atv = s.read(der::SEQUENCE)?;
            let mut a = der::Reader::new(atv.content);
            let oid = a.read(der::OID)?.content;
            let value = a.read_any()?;
            a.finish()?;
            avas.push(Ava { oid, tag: value.tag, value: value.content, raw_value: value.raw });
        }
        if avas.is_empty() {
            return Err(der::DerError::Truncated);
        }
        rdns.push(avas);
    }
    Ok(rdns)
}

/// The text of a string-typed value, whatever its ASN.1 string type.
fn value_text(tag: u8, v: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        0x0c => core::str::from_utf8(v).ok().map(str::to_owned),
        // PrintableString, IA5String, VisibleString, NumericString
        0x13 | 0x16 | 0x1a | 0x12 => v.is_ascii().then(|| v.iter().map(|&b| b as char).collect()),
        // TeletexString, read as Latin-1 as most software does
        0x14 => Some(v.iter().map(|&b| b as char).collect()),
        // BMPString (UTF-16BE)
        0x1e if v.len() % 2 == 0 => {
            let units: Vec<u16> = v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString (UCS-4BE)
        0x1c if v.len() % 4 == 0 => {
            v.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        _ => None,
    }
}

/// Case-insensitive, whitespace-folded form of a value, for comparisons.
fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn ava_equal(a: &Ava<'_>, b: &Ava<'_>) -> bool {
    if a.oid != b.oid {
        return false;
    }
    match (value_text(a.tag, a.value), value_text(b.tag, b.value)) {
        (Some(x), Some(y)) => fold(&x) == fold(&y),
        (None, None) => a.raw_value == b.raw_value,
        _ => false,
    }
}

/// RDNs are sets: every AVA of one matches a distinct AVA of the other.
fn rdn_equal(a: &[Ava<'_>], b: &[Ava<'_>]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| match (0..b.len()).find(|&i| !used[i] && ava_equal(x, &b[i])) {
        Some(i) => {
            used[i] = true;
            true
        }
        None => false,
    })
}

/// Whether two DER Names are the same distinguished name, compared RDN by RDN. If either is
/// not a well-formed Name, only identical bytes are equal.
pub fn dn_equal(a: &[u8], b: &[u8]) -> bool {
    match (parse_dn(a), parse_dn(b)) {
        (Ok(x), Ok(y)) => x.len() == y.len() && x.iter().zip(&y).all(|(r, s)| rdn_equal(r, s)),
        _ => a == b,
    }
}

/// Whether two identities name the same peer: DNs compared with [`dn_equal`], FQDNs and
/// RFC822 addresses case-insensitively, others byte for byte.
pub fn same_identity(a: &Identification, b: &Identification) -> bool {
    if a.kind != b.kind {
        return false;
    }
    match a.kind {
        IdType::DER_ASN1_DN => dn_equal(&a.data, &b.data),
        IdType::FQDN | IdType::RFC822_ADDR => a.data.eq_ignore_ascii_case(&b.data),
        _ => a.data == b.data,
    }
}

/// Escapes the characters a written DN gives a meaning to.
fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if matches!(c, ',' | '+' | '"' | '\\') || edge_space || (i == 0 && c == '/') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A DER Name printed as "C=CH, O=Example, CN=vpn.example.com" (the attributes of a
/// multi-valued RDN joined with " + "; unknown attribute types as dotted OIDs; values that
/// are not strings as `#` and their DER in hexadecimal).
pub fn display_dn(name: &[u8]) -> String {
    let Ok(rdns) = parse_dn(name) else {
        return format!("(invalid DN #{})", encode_hex(name));
    };
    rdns.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|ava| {
                    let label = match attribute_by_oid(ava.oid) {
                        Some(a) => a.label.to_owned(),
                        None => der::oid_to_string(ava.oid),
                    };
                    let value = match value_text(ava.tag, ava.value) {
                        Some(t) => escape_value(&t),
                        None => format!("#{}", encode_hex(ava.raw_value)),
                    };
                    format!("{label}={value}")
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An identity as an operator would write it, so that [`parse_identity`] gives it back.
pub fn display_identity(id: &Identification) -> String {
    let text = || String::from_utf8_lossy(&id.data).into_owned();
    match id.kind {
        IdType::IPV4_ADDR => match <[u8; 4]>::try_from(id.data.as_slice()) {
            Ok(a) => Ipv4Addr::from(a).to_string(),
            Err(_) => format!("(invalid IPv4 identity #{})", encode_hex(&id.data)),
        },
        IdType::IPV6_ADDR => match <[u8; 16]>::try_from(id.data.as_slice()) {
            Ok(a) => Ipv6Addr::from(a).to_string(),
            Err(_) => format!("(invalid IPv6 identity #{})", encode_hex(&id.data)),
        },
        IdType::FQDN => {
            let name = text();
            let plain = name.contains('.')
                && !name.contains(['@', '=', '*'])
                && !name.starts_with('/')
                && name.parse::<IpAddr>().is_err();
            if plain {
                name
            } else {
                format!("@{name}")
            }
        }
        IdType::RFC822_ADDR => {
            let email = text();
            if email.contains('=') || email.starts_with('@') {
                format!("@@{email}")
            } else {
                email
            }
        }
        IdType::DER_ASN1_DN => display_dn(&id.data),
        IdType::KEY_ID => format!("@#{}", encode_hex(&id.data)),
        IdType::DER_ASN1_GN => format!("(ID_DER_ASN1_GN #{})", encode_hex(&id.data)),
        IdType(other) => format!("(ID type {other} #{})", encode_hex(&id.data)),
    }
}

/// A constraint on the remote identity, as a configuration writes it:
///
/// * `%any`: any identity;
/// * an identity ([`parse_identity`]): that identity (DNs compared RDN by RDN, FQDNs and
///   email addresses case-insensitively);
/// * `*.example.com` (or `@*.example.com`): an FQDN ending with `.example.com`, any number of
///   labels before it; `*@example.com`: an RFC822 address at `example.com`;
/// * a DN with `*` as whole values, `C=CH, O=Example, CN=*`: a DN with exactly these RDNs in
///   this order, any value where the pattern has `*`.
#[derive(Debug, Clone)]
pub struct IdentityPattern {
    written: String,
    kind: PatternKind,
}

#[derive(Debug, Clone)]
enum PatternKind {
    Any,
    Exact(Identification),
    Suffix { kind: IdType, suffix: String },
    Dn(Vec<DnPatternRdn>),
}

#[derive(Debug, Clone)]
struct DnPatternRdn {
    oid: &'static [u8],
    /// Folded; `None` for `*`.
    value: Option<String>,
}

impl IdentityPattern {
    /// Parses a pattern (see the type's documentation).
    pub fn parse(s: &str) -> Result<IdentityPattern, IdentityError> {
        let s = s.trim();
        let written = s.to_owned();
        if s.is_empty() {
            return Err(IdentityError::Empty);
        }
        if s.eq_ignore_ascii_case("%any") {
            return Ok(IdentityPattern { written, kind: PatternKind::Any });
        }
        let wildcard = |why| IdentityError::BadWildcard { input: s.to_owned(), why };
        if s.contains('=') && !s.starts_with('@') {
            let rdns = split_dn(s)?;
            if !rdns.iter().any(|r| r.wildcard) {
                let id = Identification { kind: IdType::DER_ASN1_DN, data: build_dn(s)? };
                return Ok(IdentityPattern { written, kind: PatternKind::Exact(id) });
            }
            let rdns = rdns
                .into_iter()
                .map(|r| {
                    if !r.wildcard && r.value.contains('*') {
                        return Err(wildcard("in a DN, `*` must be a whole value (CN=*)"));
                    }
                    Ok(DnPatternRdn { oid: r.attribute.oid, value: (!r.wildcard).then(|| fold(&r.value)) })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(IdentityPattern { written, kind: PatternKind::Dn(rdns) });
        }
        let unprefixed = s.strip_prefix('@').filter(|r| r.starts_with('*')).unwrap_or(s);
        if let Some(suffix) = unprefixed.strip_prefix('*') {
            if suffix.contains('*') {
                return Err(wildcard("only one leading `*` is supported"));
            }
            let kind = if suffix.starts_with('@') && suffix.len() > 1 {
                IdType::RFC822_ADDR
            } else if suffix.starts_with('.') && suffix.len() > 1 {
                IdType::FQDN
            } else {
                return Err(wildcard("write `*.domain` for FQDNs or `*@domain` for email addresses"));
            };
            check_name(suffix, s)?;
            return Ok(IdentityPattern { written, kind: PatternKind::Suffix { kind, suffix: suffix.to_lowercase() } });
        }
        if s.contains('*') {
            return Err(wildcard("`*` may only start an FQDN or email pattern, or be a whole DN value"));
        }
        Ok(IdentityPattern { written, kind: PatternKind::Exact(parse_identity(s)?) })
    }

    /// `%any`.
    pub fn any() -> IdentityPattern {
        IdentityPattern { written: "%any".to_owned(), kind: PatternKind::Any }
    }

    /// Exactly `id`.
    pub fn exact(id: Identification) -> IdentityPattern {
        IdentityPattern { written: display_identity(&id), kind: PatternKind::Exact(id) }
    }

    pub fn is_any(&self) -> bool {
        matches!(self.kind, PatternKind::Any)
    }

    /// Whether `id` satisfies the pattern.
    pub fn matches(&self, id: &Identification) -> bool {
        match &self.kind {
            PatternKind::Any => true,
            PatternKind::Exact(want) => same_identity(want, id),
            PatternKind::Suffix { kind, suffix } => {
                id.kind == *kind
                    && core::str::from_utf8(&id.data)
                        .is_ok_and(|name| name.len() > suffix.len() && name.to_lowercase().ends_with(suffix.as_str()))
            }
            PatternKind::Dn(pattern) => {
                if id.kind != IdType::DER_ASN1_DN {
                    return false;
                }
                let Ok(rdns) = parse_dn(&id.data) else {
                    return false;
                };
                rdns.len() == pattern.len()
                    && rdns.iter().zip(pattern).all(|(rdn, p)| match rdn.as_slice() {
                        [ava] if ava.oid == p.oid => match &p.value {
                            None => true,
                            Some(want) => value_text(ava.tag, ava.value).is_some_and(|t| fold(&t) == *want),
                        },
                        _ => false,
                    })
            }
        }
    }
}

impl fmt::Display for IdentityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}
