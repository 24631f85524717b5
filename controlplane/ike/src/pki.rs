//! X.509 certificates and keys for IKEv2 authentication: loading them, verifying a peer's
//! chain, and matching the peer's identity against its certificate
//! ([RFC 7296 §3.5–3.7](https://www.rfc-editor.org/rfc/rfc7296#section-3.6),
//! [RFC 4945 §3](https://www.rfc-editor.org/rfc/rfc4945#section-3)).
//!
//! Chains are built and checked by OpenSSL's `X509_STORE_CTX` (signatures, validity at an
//! injected instant, CA basicConstraints, path length). No extended key usage is required: IKE
//! certificates often carry none. The trust store's certificates are trust anchors even when
//! they are not self-signed (strongSwan's convention for an intermediate CA placed among the
//! CA certificates).

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::error::ErrorStack;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509Ref, X509StoreContext, X509};

use crate::identity;
use crate::message::{IdType, Identification};

pub use der::DerError;

/// The curves of the ECDSA keys this crate signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl EcCurve {
    /// The length of one coordinate (and of r and s in an [RFC 4754] signature).
    ///
    /// [RFC 4754]: https://www.rfc-editor.org/rfc/rfc4754#section-7
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        })
    }
}

/// What kind of key a [`PrivateKey`] or [`PublicKey`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa { bits: u32 },
    Ecdsa(EcCurve),
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::Ecdsa(curve) => write!(f, "ECDSA {curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a certificate or key could not be loaded, or a peer's chain was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks, or DER)")]
    NoCertificate { origin: String },
    #[error("{origin}: PEM block {block}: {why}")]
    Pem { origin: String, block: usize, why: &'static str },
    #[error("{origin}: not a DER X.509 certificate: {why}")]
    CertificateStructure { origin: String, why: DerError },
    #[error("{origin}: OpenSSL refuses the certificate: {source}")]
    Certificate {
        origin: String,
        #[source]
        source: ErrorStack,
    },
    #[error("{origin}: the private key is encrypted; store it unencrypted (mode 0600) instead")]
    EncryptedKey { origin: String },
    #[error("{origin}: not a private key (expected PKCS#1, PKCS#8 or SEC1, in PEM or DER): {source}")]
    PrivateKey {
        origin: String,
        #[source]
        source: ErrorStack,
    },
    #[error("{origin}: not a public key (expected a SubjectPublicKeyInfo, in PEM or DER): {source}")]
    PublicKey {
        origin: String,
        #[source]
        source: ErrorStack,
    },
    #[error("{origin}: {what} keys are not supported (RSA, ECDSA P-256/P-384/P-521 and Ed25519 are)")]
    UnsupportedKey { origin: String, what: String },
    #[error("certificate \"{subject}\" expired at {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("certificate \"{subject}\" is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
    #[error("certificate \"{subject}\" was issued by \"{issuer}\", which is not a trusted CA (nor found among the intermediates sent)")]
    UnknownCa { subject: String, issuer: String },
    #[error("the signature on certificate \"{subject}\" does not verify with its issuer's key")]
    BadSignature { subject: String },
    #[error("certificate \"{subject}\" signs other certificates but is not a CA (basicConstraints)")]
    NotACa { subject: String },
    #[error("certificate \"{subject}\" signs other certificates but its keyUsage lacks keyCertSign")]
    NoCertSign { subject: String },
    #[error("the path length constraint of CA \"{subject}\" forbids this chain")]
    PathLength { subject: String },
    #[error("the chain of \"{subject}\" is longer than {max} certificates")]
    ChainTooLong { subject: String, max: u32 },
    #[error("certificate \"{subject}\" refused: {reason} (X509_V_ERR {code})")]
    Rejected { subject: String, code: i32, reason: &'static str },
    #[error("verification time {now_unix} does not fit this platform's time_t")]
    TimeRange { now_unix: i64 },
    #[error("CERTREQ data of {len} bytes is not a list of 20-byte SHA-1 hashes")]
    CertReqLength { len: usize },
    #[error("{op}: {source}")]
    Library {
        op: &'static str,
        #[source]
        source: ErrorStack,
    },
}

fn library(op: &'static str) -> impl FnOnce(ErrorStack) -> PkiError {
    move |source| PkiError::Library { op, source }
}

fn read_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read { path: path.to_path_buf(), source })
}

fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The base64 bodies of the PEM blocks labelled `label` (RFC 7468), decoded.
fn pem_blocks(data: &[u8], label: &str, origin: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let text = String::from_utf8_lossy(data);
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match &mut body {
            None if line == begin => body = Some(String::new()),
            None => {}
            Some(b) if line == end => {
                let block = blocks.len() + 1;
                let der = openssl::base64::decode_block(b).map_err(|_| PkiError::Pem {
                    origin: origin.to_owned(),
                    block,
                    why: "invalid base64",
                })?;
                blocks.push(der);
                body = None;
            }
            Some(_) if line.starts_with("-----") => {
                return Err(PkiError::Pem {
                    origin: origin.to_owned(),
                    block: blocks.len() + 1,
                    why: "a PEM boundary inside the block",
                })
            }
            Some(b) => b.push_str(line),
        }
    }
    if body.is_some() {
        return Err(PkiError::Pem { origin: origin.to_owned(), block: blocks.len() + 1, why: "no END line" });
    }
    Ok(blocks)
}

/// An X.509 certificate, with its DER encoding.
#[derive(Clone)]
pub struct Certificate {
    x509: X509,
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    spki: Vec<u8>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &identity::display_dn(&self.subject))
            .field("issuer", &identity::display_dn(&self.issuer))
            .finish()
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl Certificate {
    /// Parses one DER certificate (nothing may follow it).
    pub fn from_der(der: &[u8]) -> Result<Certificate, PkiError> {
        Self::parse_der(der, "DER certificate")
    }

    /// Parses every `CERTIFICATE` block of PEM text; at least one must be there.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Certificate>, PkiError> {
        Self::parse_pem(pem, "PEM input")
    }

    /// Loads a file of one or several PEM certificates, or of one DER certificate.
    pub fn load(path: impl AsRef<Path>) -> Result<Vec<Certificate>, PkiError> {
        let path = path.as_ref();
        let data = read_file(path)?;
        let origin = path.display().to_string();
        if is_pem(&data) {
            Self::parse_pem(&data, &origin)
        } else if data.is_empty() {
            Err(PkiError::NoCertificate { origin })
        } else {
            Ok(vec![Self::parse_der(&data, &origin)?])
        }
    }

    fn parse_pem(pem: &[u8], origin: &str) -> Result<Vec<Certificate>, PkiError> {
        let blocks = pem_blocks(pem, "CERTIFICATE", origin)?;
        if blocks.is_empty() {
            return Err(PkiError::NoCertificate { origin: origin.to_owned() });
        }
        blocks
            .iter()
            .enumerate()
            .map(|(i, der)| Self::parse_der(der, &format!("{origin}, certificate {}", i + 1)))
            .collect()
    }

    fn parse_der(der: &[u8], origin: &str) -> Result<Certificate, PkiError> {
        let parts = CertificateParts::locate(der)
            .map_err(|why| PkiError::CertificateStructure { origin: origin.to_owned(), why })?;
        let x509 = X509::from_der(der).map_err(|source| PkiError::Certificate { origin: origin.to_owned(), source })?;
        Ok(Certificate {
            x509,
            der: der.to_vec(),
            subject: parts.subject.to_vec(),
            issuer: parts.issuer.to_vec(),
            spki: parts.spki.to_vec(),
        })
    }

    fn from_x509(x509: &X509Ref) -> Result<Certificate, PkiError> {
        let der = x509.to_der().map_err(library("encoding a certificate"))?;
        Self::parse_der(&der, "certificate chain")
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's DER Name.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The issuer's DER Name.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer
    }

    /// The subject as an ID_DER_ASN1_DN identity.
    pub fn subject_id(&self) -> Identification {
        Identification { kind: IdType::DER_ASN1_DN, data: self.subject.clone() }
    }

    /// The subject printed as "C=CH, O=…, CN=…".
    pub fn subject_display(&self) -> String {
        identity::display_dn(&self.subject)
    }

    /// The DER SubjectPublicKeyInfo, exactly as the certificate carries it.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The subjectAltNames IKE identities can name: dNSName as FQDN, rfc822Name as
    /// RFC822_ADDR, iPAddress as IPV4_ADDR or IPV6_ADDR; other kinds are left out.
    pub fn subject_alt_names(&self) -> Vec<Identification> {
        let Some(names) = self.x509.subject_alt_names() else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| {
                if let Some(dns) = n.dnsname() {
                    Some(Identification { kind: IdType::FQDN, data: dns.as_bytes().to_vec() })
                } else if let Some(email) = n.email() {
                    Some(Identification { kind: IdType::RFC822_ADDR, data: email.as_bytes().to_vec() })
                } else {
                    match n.ipaddress() {
                        Some(ip) if ip.len() == 4 => {
                            Some(Identification { kind: IdType::IPV4_ADDR, data: ip.to_vec() })
                        }
                        Some(ip) if ip.len() == 16 => {
                            Some(Identification { kind: IdType::IPV6_ADDR, data: ip.to_vec() })
                        }
                        _ => None,
                    }
                }
            })
            .collect()
    }

    /// The subject's public key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        PublicKey::from_der(&self.spki)
    }
}

/// The fields of a certificate this module reads itself, as slices of its DER
/// ([RFC 5280 §4.1](https://www.rfc-editor.org/rfc/rfc5280#section-4.1)).
struct CertificateParts<'a> {
    issuer: &'a [u8],
    subject: &'a [u8],
    spki: &'a [u8],
}

impl<'a> CertificateParts<'a> {
    fn locate(der_bytes: &'a [u8]) -> Result<CertificateParts<'a>, DerError> {
        let cert = der::single(der_bytes, der::SEQUENCE)?;
        let mut c = der::Reader::new(cert.content);
        let tbs = c.read(der::SEQUENCE)?;
        let mut t = der::Reader::new(tbs.content);
        t.read_optional(0xa0)?; // [0] EXPLICIT version
        t.read(der::INTEGER)?; // serialNumber
        t.read(der::SEQUENCE)?; // signature
        let issuer = t.read(der::SEQUENCE)?.raw;
        t.read(der::SEQUENCE)?; // validity
        let subject = t.read(der::SEQUENCE)?.raw;
        let spki = t.read(der::SEQUENCE)?.raw;
        c.read(der::SEQUENCE)?; // signatureAlgorithm
        c.read(0x03)?; // signatureValue
        c.finish()?;
        Ok(CertificateParts { issuer, subject, spki })
    }
}

fn key_kind<T: HasPublic>(pkey: &PKeyRef<T>, origin: &str) -> Result<KeyKind, PkiError> {
    let unsupported = |what: String| PkiError::UnsupportedKey { origin: origin.to_owned(), what };
    match pkey.id() {
        Id::RSA => Ok(KeyKind::Rsa { bits: pkey.bits() }),
        Id::ED25519 => Ok(KeyKind::Ed25519),
        Id::EC => {
            let ec = pkey.ec_key().map_err(library("reading an EC key"))?;
            match ec.group().curve_name() {
                Some(openssl::nid::Nid::X9_62_PRIME256V1) => Ok(KeyKind::Ecdsa(EcCurve::P256)),
                Some(openssl::nid::Nid::SECP384R1) => Ok(KeyKind::Ecdsa(EcCurve::P384)),
                Some(openssl::nid::Nid::SECP521R1) => Ok(KeyKind::Ecdsa(EcCurve::P521)),
                Some(nid) => Err(unsupported(format!("EC {}", nid.short_name().unwrap_or("(unnamed curve)")))),
                None => Err(unsupported("EC with explicit curve parameters".to_owned())),
            }
        }
        Id::RSA_PSS => Err(unsupported("RSASSA-PSS-restricted RSA".to_owned())),
        Id::DSA => Err(unsupported("DSA".to_owned())),
        Id::ED448 => Err(unsupported("Ed448".to_owned())),
        other => Err(unsupported(format!("OpenSSL key type {}", other.as_raw()))),
    }
}

/// A private key for signing AUTH payloads: RSA, ECDSA P-256/P-384/P-521 or Ed25519.
pub struct PrivateKey {
    pkey: PKey<Private>,
    kind: KeyKind,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.kind)
    }
}

impl PrivateKey {
    /// Reads a PEM key: PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`). Encrypted keys are refused.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, PkiError> {
        Self::parse_pem(pem, "PEM input")
    }

    /// Reads a DER key: PKCS#8, or PKCS#1 / SEC1.
    pub fn from_der(der: &[u8]) -> Result<PrivateKey, PkiError> {
        Self::parse_der(der, "DER input")
    }

    /// Loads a key file, PEM or DER.
    pub fn load(path: impl AsRef<Path>) -> Result<PrivateKey, PkiError> {
        let path = path.as_ref();
        let data = zeroize::Zeroizing::new(read_file(path)?);
        let origin = path.display().to_string();
        if is_pem(&data) {
            Self::parse_pem(&data, &origin)
        } else {
            Self::parse_der(&data, &origin)
        }
    }

    fn parse_pem(pem: &[u8], origin: &str) -> Result<PrivateKey, PkiError> {
        let encrypted = String::from_utf8_lossy(pem)
            .lines()
            .map(str::trim)
            .any(|l| l.starts_with("-----BEGIN ENCRYPTED") || l.starts_with("Proc-Type: 4,ENCRYPTED"));
        if encrypted {
            return Err(PkiError::EncryptedKey { origin: origin.to_owned() });
        }
        // The callback is only asked for a passphrase if the key is encrypted after all:
        // refusing it keeps OpenSSL from prompting on a terminal.
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|source| PkiError::PrivateKey { origin: origin.to_owned(), source })?;
        Self::new(pkey, origin)
    }

    fn parse_der(der: &[u8], origin: &str) -> Result<PrivateKey, PkiError> {
        let pkey = PKey::private_key_from_der(der)
            .map_err(|source| PkiError::PrivateKey { origin: origin.to_owned(), source })?;
        Self::new(pkey, origin)
    }

    fn new(pkey: PKey<Private>, origin: &str) -> Result<PrivateKey, PkiError> {
        let kind = key_kind(&pkey, origin)?;
        Ok(PrivateKey { pkey, kind })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        let der = self.pkey.public_key_to_der().map_err(library("encoding a public key"))?;
        PublicKey::from_der(&der)
    }

    /// Whether `cert` carries this key's public half.
    pub fn matches_certificate(&self, cert: &Certificate) -> bool {
        cert.x509.public_key().map(|p| p.public_eq(&self.pkey)).unwrap_or(false)
    }

    pub(crate) fn pkey(&self) -> &PKeyRef<Private> {
        &self.pkey
    }
}

/// A public key that verifies AUTH payloads.
#[derive(Clone)]
pub struct PublicKey {
    pkey: PKey<Public>,
    kind: KeyKind,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.kind)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.pkey.public_eq(&other.pkey)
    }
}

impl PublicKey {
    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, PkiError> {
        let pkey = PKey::public_key_from_der(der)
            .map_err(|source| PkiError::PublicKey { origin: "DER input".to_owned(), source })?;
        Self::new(pkey, "DER input")
    }

    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, PkiError> {
        let pkey = PKey::public_key_from_pem(pem)
            .map_err(|source| PkiError::PublicKey { origin: "PEM input".to_owned(), source })?;
        Self::new(pkey, "PEM input")
    }

    fn new<T: HasPublic>(pkey: PKey<T>, origin: &str) -> Result<PublicKey, PkiError> {
        let kind = key_kind(&pkey, origin)?;
        let der = pkey.public_key_to_der().map_err(library("encoding a public key"))?;
        let pkey = PKey::public_key_from_der(&der).map_err(library("decoding a public key"))?;
        Ok(PublicKey { pkey, kind })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> Result<Vec<u8>, PkiError> {
        self.pkey.public_key_to_der().map_err(library("encoding a public key"))
    }

    pub(crate) fn pkey(&self) -> &PKeyRef<Public> {
        &self.pkey
    }
}

/// The longest chain accepted, trust anchor included.
const MAX_CHAIN: u32 = 8;

/// The OpenSSL 3 verification results this module names (`X509_V_ERR_*` in `x509_vfy.h`).
mod verr {
    pub const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
    pub const UNABLE_TO_DECRYPT_CERT_SIGNATURE: i32 = 4;
    pub const CERT_SIGNATURE_FAILURE: i32 = 7;
    pub const CERT_NOT_YET_VALID: i32 = 9;
    pub const CERT_HAS_EXPIRED: i32 = 10;
    pub const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
    pub const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
    pub const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
    pub const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
    pub const CERT_CHAIN_TOO_LONG: i32 = 22;
    pub const PATH_LENGTH_EXCEEDED: i32 = 25;
    pub const KEYUSAGE_NO_CERTSIGN: i32 = 32;
    pub const INVALID_CA: i32 = 79;
}

/// The CA certificates peers' chains must lead to.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    cas: Vec<Certificate>,
}

impl TrustStore {
    pub fn new(cas: Vec<Certificate>) -> TrustStore {
        TrustStore { cas }
    }

    pub fn cas(&self) -> &[Certificate] {
        &self.cas
    }

    /// The CERTREQ payload data naming every CA of the store (RFC 7296 §3.7).
    pub fn certreq_data(&self) -> Vec<u8> {
        self.cas.iter().flat_map(certreq_hash).collect()
    }

    /// The CA a CERTREQ hash names, if it is in the store.
    pub fn find_by_certreq_hash(&self, hash: &[u8; 20]) -> Option<&Certificate> {
        self.cas.iter().find(|ca| &certreq_hash(ca) == hash)
    }

    /// Verifies `end_entity` through `intermediates` (in any order) to one of the store's CAs,
    /// at the instant `now_unix`.
    pub fn verify(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        now_unix: i64,
    ) -> Result<VerifiedPeer, PkiError> {
        let mut builder = X509StoreBuilder::new().map_err(library("creating an X509_STORE"))?;
        for ca in &self.cas {
            builder.add_cert(ca.x509.clone()).map_err(library("adding a CA to the X509_STORE"))?;
        }
        let mut param = X509VerifyParam::new().map_err(library("creating verification parameters"))?;
        // time_t is 64 bits here, but 32 bits on some platforms.
        #[allow(clippy::useless_conversion)]
        let time = now_unix.try_into().map_err(|_| PkiError::TimeRange { now_unix })?;
        param.set_time(time);
        param.set_depth(MAX_CHAIN as i32 - 2);
        param.set_flags(X509VerifyFlags::PARTIAL_CHAIN).map_err(library("setting verification flags"))?;
        builder.set_param(&param).map_err(library("setting verification parameters"))?;
        let store = builder.build();

        let mut untrusted = Stack::new().map_err(library("creating a certificate stack"))?;
        for cert in intermediates {
            untrusted.push(cert.x509.clone()).map_err(library("stacking an intermediate"))?;
        }
        let mut ctx = X509StoreContext::new().map_err(library("creating an X509_STORE_CTX"))?;
        let outcome = ctx
            .init(&store, &end_entity.x509, &untrusted, |ctx| {
                if ctx.verify_cert()? {
                    let chain = ctx.chain().map(|c| c.iter().map(|x| x.to_owned()).collect::<Vec<X509>>());
                    return Ok(Ok(chain.unwrap_or_default()));
                }
                let code = ctx.error().as_raw();
                let reason = ctx.error().error_string();
                let failed = ctx.current_cert().map(|c| c.to_owned());
                Ok(Err((code, reason, failed)))
            })
            .map_err(library("verifying a certificate chain"))?;

        match outcome {
            Ok(chain) => {
                let chain = chain.iter().map(|x| Certificate::from_x509(x)).collect::<Result<Vec<_>, _>>()?;
                Ok(VerifiedPeer {
                    public_key: end_entity.public_key()?,
                    subject: end_entity.subject.clone(),
                    subject_alt_names: end_entity.subject_alt_names(),
                    chain,
                })
            }
            Err((code, reason, failed)) => {
                let cert = match failed {
                    Some(x) => Certificate::from_x509(&x)?,
                    None => end_entity.clone(),
                };
                Err(verify_error(code, reason, &cert))
            }
        }
    }
}

fn verify_error(code: i32, reason: &'static str, cert: &Certificate) -> PkiError {
    let subject = cert.subject_display();
    match code {
        verr::CERT_HAS_EXPIRED => PkiError::Expired { subject, not_after: cert.x509.not_after().to_string() },
        verr::CERT_NOT_YET_VALID => PkiError::NotYetValid { subject, not_before: cert.x509.not_before().to_string() },
        verr::UNABLE_TO_GET_ISSUER_CERT
        | verr::UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | verr::UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | verr::DEPTH_ZERO_SELF_SIGNED_CERT
        | verr::SELF_SIGNED_CERT_IN_CHAIN => {
            PkiError::UnknownCa { subject, issuer: identity::display_dn(cert.issuer_der()) }
        }
        verr::CERT_SIGNATURE_FAILURE | verr::UNABLE_TO_DECRYPT_CERT_SIGNATURE => PkiError::BadSignature { subject },
        verr::INVALID_CA => PkiError::NotACa { subject },
        verr::KEYUSAGE_NO_CERTSIGN => PkiError::NoCertSign { subject },
        verr::PATH_LENGTH_EXCEEDED => PkiError::PathLength { subject },
        verr::CERT_CHAIN_TOO_LONG => PkiError::ChainTooLong { subject, max: MAX_CHAIN },
        _ => PkiError::Rejected { subject, code, reason },
    }
}

/// A peer whose certificate chain verified: only [`TrustStore::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedPeer {
    public_key: PublicKey,
    subject: Vec<u8>,
    subject_alt_names: Vec<Identification>,
    chain: Vec<Certificate>,
}

impl VerifiedPeer {
    /// The end entity's public key, to verify the AUTH payload with.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The end entity's subject, DER.
    pub fn subject(&self) -> &[u8] {
        &self.subject
    }

    /// The end entity's subjectAltNames IKE identities can name.
    pub fn subject_alt_names(&self) -> &[Identification] {
        &self.subject_alt_names
    }

    /// The chain OpenSSL built: the end entity first, the trust anchor last.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// Whether the certificate vouches for `id`
    /// ([RFC 7296 §3.5](https://www.rfc-editor.org/rfc/rfc7296#section-3.5),
    /// [RFC 4945 §3.1](https://www.rfc-editor.org/rfc/rfc4945#section-3.1)): an ID_DER_ASN1_DN
    /// must equal the subject (compared attribute by attribute); an FQDN, RFC822 address or IP
    /// address must be one of the subjectAltNames. The subject's CN is never used for an FQDN.
    /// Other identity types (KEY_ID, DER_ASN1_GN) are never vouched for.
    pub fn matches(&self, id: &Identification) -> bool {
        match id.kind {
            IdType::DER_ASN1_DN => identity::dn_equal(&id.data, &self.subject),
            IdType::FQDN | IdType::RFC822_ADDR | IdType::IPV4_ADDR | IdType::IPV6_ADDR => {
                self.subject_alt_names.iter().any(|san| identity::same_identity(san, id))
            }
            _ => false,
        }
    }
}

/// The CERTREQ hash of a CA: SHA-1 of its DER SubjectPublicKeyInfo
/// ([RFC 7296 §3.7](https://www.rfc-editor.org/rfc/rfc7296#section-3.7)).
pub fn certreq_hash(ca: &Certificate) -> [u8; 20] {
    openssl::sha::sha1(&ca.spki)
}

/// Splits a CERTREQ payload's data (X.509 Certificate - Signature encoding) into the 20-byte
/// hashes it lists.
pub fn split_certreq(data: &[u8]) -> Result<Vec<[u8; 20]>, PkiError> {
    if data.len() % 20 != 0 {
        return Err(PkiError::CertReqLength { len: data.len() });
    }
    Ok(data
        .chunks_exact(20)
        .map(|c| {
            let mut h = [0; 20];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// A minimal DER reader and writer for the structures this crate walks itself: Names,
/// AlgorithmIdentifiers, the outer layers of a certificate
/// ([X.690 §8, §10](https://www.itu.int/rec/T-REC-X.690)). Single-byte tags only.
pub(crate) mod der {
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const NULL: u8 = 0x05;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;

    /// Why bytes are not the DER expected.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum DerError {
        #[error("truncated")]
        Truncated,
        #[error("indefinite or oversized length")]
        BadLength,
        #[error("multi-byte tags are not supported")]
        LongTag,
        #[error("expected tag {expected:#04x}, found {found:#04x}")]
        UnexpectedTag { expected: u8, found: u8 },
        #[error("bytes after the end")]
        Trailing,
    }

    /// One element: its tag, its content, and its whole encoding.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Tlv<'a> {
        pub tag: u8,
        pub content: &'a [u8],
        pub raw: &'a [u8],
    }

    /// Reads consecutive elements.
    #[derive(Debug, Clone)]
    pub(crate) struct Reader<'a> {
        rest: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub fn new(bytes: &'a [u8]) -> Reader<'a> {
            Reader { rest: bytes }
        }

        pub fn is_empty(&self) -> bool {
            self.rest.is_empty()
        }

        pub fn peek_tag(&self) -> Option<u8> {
            self.rest.first().copied()
        }

        pub fn read_any(&mut self) -> Result<Tlv<'a>, DerError> {
            let b = self.rest;
            let (&tag, after) = b.split_first().ok_or(DerError::Truncated)?;
            if tag & 0x1f == 0x1f {
                return Err(DerError::LongTag);
            }
            let (&first, after) = after.split_first().ok_or(DerError::Truncated)?;
            let (len, after) = if first < 0x80 {
                (first as usize, after)
            } else {
                let n = (first & 0x7f) as usize;
                if n == 0 || n > 4 {
                    return Err(DerError::BadLength);
                }
                if after.len() < n {
                    return Err(DerError::Truncated);
                }
                let len = after[..n].iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
                (len, &after[n..])
            };
            if after.len() < len {
                return Err(DerError::Truncated);
            }
            let header = b.len() - after.len();
            let tlv = Tlv { tag, content: &after[..len], raw: &b[..header + len] };
            self.rest = &after[len..];
            Ok(tlv)
        }

        pub fn read(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
            match self.peek_tag() {
                None => Err(DerError::Truncated),
                Some(found) if found != tag => Err(DerError::UnexpectedTag { expected: tag, found }),
                Some(_) => self.read_any(),
            }
        }

        pub fn read_optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
            if self.peek_tag() == Some(tag) {
                self.read_any().map(Some)
            } else {
                Ok(None)
            }
        }

        pub fn finish(&self) -> Result<(), DerError> {
            if self.rest.is_empty() {
                Ok(())
            } else {
                Err(DerError::Trailing)
            }
        }
    }

    /// `bytes` must be exactly one element with tag `tag`.
    pub(crate) fn single(bytes: &[u8], tag: u8) -> Result<Tlv<'_>, DerError> {
        let mut r = Reader::new(bytes);
        let tlv = r.read(tag)?;
        r.finish()?;
        Ok(tlv)
    }

    /// A non-negative INTEGER's value, if it fits a u32.
    pub(crate) fn small_uint(content: &[u8]) -> Option<u32> {
        match content {
            [] => None,
            [first, ..] if first & 0x80 != 0 => None,
            _ => {
                let trimmed = content.strip_prefix(&[0]).filter(|t| !t.is_empty()).unwrap_or(content);
                if trimmed.len() > 4 {
                    return None;
                }
                Some(trimmed.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32))
            }
        }
    }

    /// Encodes one element.
    pub(crate) fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// The content octets of an OBJECT IDENTIFIER (X.690 §8.19). `arcs` has at least two
    /// arcs, the first 0, 1 or 2.
    pub(crate) fn oid_content(arcs: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |v: u64| {
            let mut groups = vec![(v & 0x7f) as u8];
            let mut v = v >> 7;
            while v > 0 {
                groups.push(0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            out.extend(groups.iter().rev());
        };
        match arcs {
            [a, b, rest @ ..] => {
                push(u64::from(*a) * 40 + u64::from(*b));
                rest.iter().for_each(|&x| push(u64::from(x)));
            }
            [a] => push(u64::from(*a) * 40),
            [] => {}
        }
        out
    }

    /// An OBJECT IDENTIFIER's dotted form, for messages.
    pub(crate) fn oid_to_string(content: &[u8]) -> String {
        let mut arcs: Vec<u64> = Vec::new();
        let mut acc: u64 = 0;
        for &b in content {
            acc = (acc << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (acc / 40).min(2);
                    arcs.push(first);
                    arcs.push(acc - first * 40);
                } else {
                    arcs.push(acc);
                }
                acc = 0;
            }
        }
        arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
    }
}
