//! The AUTH payload: what each side signs or MACs
//! ([RFC 7296 §2.15](https://www.rfc-editor.org/rfc/rfc7296#section-2.15)), pre-shared keys,
//! and signatures — the legacy methods (RSA with SHA-1, [RFC 4754] ECDSA) and the Digital
//! Signature method of [RFC 7427] that names its algorithm with an ASN.1 AlgorithmIdentifier.
//!
//! [RFC 4754]: https://www.rfc-editor.org/rfc/rfc4754
//! [RFC 7427]: https://www.rfc-editor.org/rfc/rfc7427

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKeyRef};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use zeroize::Zeroizing;

use crate::crypto::{CryptoProvider, PrfAlg};
use crate::message::{AuthMethod, Identification};
use crate::pki::der::{self, DerError};
use crate::pki::{EcCurve, KeyKind, PrivateKey, PublicKey};

/// SIGNATURE_HASH_ALGORITHMS values ([RFC 7427 §4](https://www.rfc-editor.org/rfc/rfc7427#section-4),
/// IANA "IKEv2 Hash Algorithms").
pub const HASH_SHA1: u16 = 1;
pub const HASH_SHA2_256: u16 = 2;
pub const HASH_SHA2_384: u16 = 3;
pub const HASH_SHA2_512: u16 = 4;
/// "Identity": the data is signed as is, for Ed25519 ([RFC 8420](https://www.rfc-editor.org/rfc/rfc8420)).
pub const HASH_IDENTITY: u16 = 5;

/// The key pad of the shared-key MAC (RFC 7296 §2.15).
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Why an AUTH payload could not be made or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("the AUTH payload does not match the pre-shared key")]
    PskMismatch,
    #[error("the {scheme} signature does not verify with the peer's public key")]
    BadSignature { scheme: &'static str },
    #[error("auth method {} needs {needs}, but the key is {key}", .method.0)]
    KeyMismatch { method: AuthMethod, needs: &'static str, key: KeyKind },
    #[error("auth method {} is not a signature method verified here (1, 9, 10, 11 and 14 are)", .0.0)]
    UnsupportedMethod(AuthMethod),
    #[error("malformed Digital Signature AUTH data: {0}")]
    Malformed(&'static str),
    #[error("malformed AlgorithmIdentifier: {0}")]
    AlgorithmIdentifier(DerError),
    #[error("AlgorithmIdentifier {oid}: {why}")]
    UnknownAlgorithm { oid: String, why: &'static str },
    #[error("the signature uses {hash}, which is not accepted (SHA2-256, SHA2-384 and SHA2-512 are)")]
    UnsupportedHash { hash: &'static str },
    #[error("RSASSA-PSS parameters: {0}")]
    PssParameters(&'static str),
    #[error("auth method {} data is {got} bytes, expected {expected} (r and s of the curve's size)", .method.0)]
    SignatureLength { method: AuthMethod, got: usize, expected: usize },
    #[error("no signature hash in common with the peer for a {key} key (the peer announced {peer:?})")]
    NoCommonHash { key: KeyKind, peer: Vec<u16> },
    #[error("SIGNATURE_HASH_ALGORITHMS data of {0} bytes is not a list of 16-bit values")]
    HashNotifyLength(usize),
    #[error("{op}: {source}")]
    Crypto {
        op: &'static str,
        #[source]
        source: ErrorStack,
    },
}

impl From<DerError> for AuthError {
    fn from(e: DerError) -> Self {
        AuthError::AlgorithmIdentifier(e)
    }
}

fn crypto(op: &'static str) -> impl FnOnce(ErrorStack) -> AuthError {
    move |source| AuthError::Crypto { op, source }
}

/// The octets an AUTH payload covers (RFC 7296 §2.15):
///
/// ```text
/// InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
/// MACedIDForI           = prf(SK_pi, RestOfInitIDPayload)
/// RestOfInitIDPayload   = IDType | RESERVED | InitIDData
/// ```
///
/// (and symmetrically for the responder, with its IKE_SA_INIT response, the initiator's
/// nonce and SK_pr). `message` is the whole IKE_SA_INIT message this side sent.
pub fn signed_octets(
    message: &[u8],
    peer_nonce: &[u8],
    p: &dyn CryptoProvider,
    prf: PrfAlg,
    sk_p: &[u8],
    id: &Identification,
) -> Vec<u8> {
    let header = [id.kind.0, 0, 0, 0];
    let maced_id = p.prf(prf, sk_p, &[&header, &id.data]);
    let mut out = Vec::with_capacity(message.len() + peer_nonce.len() + maced_id.len());
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(&maced_id);
    out
}

/// The AUTH data for a shared secret (RFC 7296 §2.15):
/// `prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`. With EAP, the shared secret
/// is the MSK (§2.16).
pub fn psk_auth(p: &dyn CryptoProvider, prf: PrfAlg, psk: &[u8], signed_octets: &[u8]) -> Vec<u8> {
    let key = Zeroizing::new(p.prf(prf, psk, &[KEY_PAD]));
    p.prf(prf, &key, &[signed_octets])
}

/// Checks a peer's shared-key AUTH data, comparing in constant time.
pub fn verify_psk(
    p: &dyn CryptoProvider,
    prf: PrfAlg,
    psk: &[u8],
    signed_octets: &[u8],
    received: &[u8],
) -> Result<(), AuthError> {
    let expected = psk_auth(p, prf, psk, signed_octets);
    // The length is public (the PRF's output size); the contents are compared without
    // early exit.
    if expected.len() == received.len() && openssl::memcmp::eq(&expected, received) {
        Ok(())
    } else {
        Err(AuthError::PskMismatch)
    }
}

/// The SIGNATURE_HASH_ALGORITHMS notify data this implementation sends (RFC 7427 §4):
/// SHA2-256, SHA2-384, SHA2-512 and Identity (for Ed25519).
pub fn hash_algorithms_notify_data() -> Vec<u8> {
    [HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY].iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// The hash algorithms a peer's SIGNATURE_HASH_ALGORITHMS notify lists.
pub fn parse_hash_algorithms_notify(data: &[u8]) -> Result<Vec<u16>, AuthError> {
    if data.len() % 2 != 0 {
        return Err(AuthError::HashNotifyLength(data.len()));
    }
    Ok(data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn md(self) -> MessageDigest {
        match self {
            Hash::Sha1 => MessageDigest::sha1(),
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha384 => MessageDigest::sha384(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }

    fn ike_id(self) -> u16 {
        match self {
            Hash::Sha1 => HASH_SHA1,
            Hash::Sha256 => HASH_SHA2_256,
            Hash::Sha384 => HASH_SHA2_384,
            Hash::Sha512 => HASH_SHA2_512,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA2-256",
            Hash::Sha384 => "SHA2-384",
            Hash::Sha512 => "SHA2-512",
        }
    }

    /// id-sha1, id-sha256, … (RFC 3279 §2.2.1, RFC 4055 §2.1).
    fn oid(self) -> &'static [u32] {
        match self {
            Hash::Sha1 => &[1, 3, 14, 3, 2, 26],
            Hash::Sha256 => &[2, 16, 840, 1, 101, 3, 4, 2, 1],
            Hash::Sha384 => &[2, 16, 840, 1, 101, 3, 4, 2, 2],
            Hash::Sha512 => &[2, 16, 840, 1, 101, 3, 4, 2, 3],
        }
    }

    /// sha{256,384,512}WithRSAEncryption (RFC 4055 §5), sha1WithRSAEncryption (RFC 3279).
    fn rsa_pkcs1_oid(self) -> &'static [u32] {
        match self {
            Hash::Sha1 => &[1, 2, 840, 113549, 1, 1, 5],
            Hash::Sha256 => &[1, 2, 840, 113549, 1, 1, 11],
            Hash::Sha384 => &[1, 2, 840, 113549, 1, 1, 12],
            Hash::Sha512 => &[1, 2, 840, 113549, 1, 1, 13],
        }
    }

    /// ecdsa-with-SHA* (RFC 5758 §3.2, RFC 3279 §2.2.3).
    fn ecdsa_oid(self) -> &'static [u32] {
        match self {
            Hash::Sha1 => &[1, 2, 840, 10045, 4, 1],
            Hash::Sha256 => &[1, 2, 840, 10045, 4, 3, 2],
            Hash::Sha384 => &[1, 2, 840, 10045, 4, 3, 3],
            Hash::Sha512 => &[1, 2, 840, 10045, 4, 3, 4],
        }
    }

    const ALL: [Hash; 4] = [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512];
}

/// id-RSASSA-PSS (RFC 4055 §3.1).
const OID_RSASSA_PSS: &[u32] = &[1, 2, 840, 113549, 1, 1, 10];
/// id-mgf1 (RFC 4055 §2.2).
const OID_MGF1: &[u32] = &[1, 2, 840, 113549, 1, 1, 8];
/// id-Ed25519 (RFC 8410 §3).
const OID_ED25519: &[u32] = &[1, 3, 101, 112];

/// A signature algorithm an AlgorithmIdentifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    RsaPkcs1(Hash),
    RsaPss { hash: Hash, mgf1: Hash, salt_len: u32 },
    Ecdsa(Hash),
    Ed25519,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::RsaPkcs1(Hash::Sha1) => "RSA PKCS#1 v1.5 with SHA-1",
            Scheme::RsaPkcs1(Hash::Sha256) => "RSA PKCS#1 v1.5 with SHA2-256",
            Scheme::RsaPkcs1(Hash::Sha384) => "RSA PKCS#1 v1.5 with SHA2-384",
            Scheme::RsaPkcs1(Hash::Sha512) => "RSA PKCS#1 v1.5 with SHA2-512",
            Scheme::RsaPss { hash: Hash::Sha1, .. } => "RSASSA-PSS with SHA-1",
            Scheme::RsaPss { hash: Hash::Sha256, .. } => "RSASSA-PSS with SHA2-256",
            Scheme::RsaPss { hash: Hash::Sha384, .. } => "RSASSA-PSS with SHA2-384",
            Scheme::RsaPss { hash: Hash::Sha512, .. } => "RSASSA-PSS with SHA2-512",
            Scheme::Ecdsa(Hash::Sha1) => "ECDSA with SHA-1",
            Scheme::Ecdsa(Hash::Sha256) => "ECDSA with SHA2-256",
            Scheme::Ecdsa(Hash::Sha384) => "ECDSA with SHA2-384",
            Scheme::Ecdsa(Hash::Sha512) => "ECDSA with SHA2-512",
            Scheme::Ed25519 => "Ed25519",
        }
    }
}

/// The signature algorithms this implementation signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigningScheme {
    RsaPkcs1(Hash),
    Ecdsa(Hash),
    Ed25519,
}

impl SigningScheme {
    /// The DER AlgorithmIdentifier (RFC 7427 Appendix A): NULL parameters for PKCS#1 v1.5,
    /// none for ECDSA and Ed25519.
    fn algorithm_identifier(self) -> Vec<u8> {
        let mut content = match self {
            SigningScheme::RsaPkcs1(h) => der::encode(der::OID, &der::oid_content(h.rsa_pkcs1_oid())),
            SigningScheme::Ecdsa(h) => der::encode(der::OID, &der::oid_content(h.ecdsa_oid())),
            SigningScheme::Ed25519 => der::encode(der::OID, &der::oid_content(OID_ED25519)),
        };
        if let SigningScheme::RsaPkcs1(_) = self {
            content.extend(der::encode(der::NULL, &[]));
        }
        der::encode(der::SEQUENCE, &content)
    }
}

/// Parses a hash AlgorithmIdentifier (parameters NULL or absent).
fn parse_hash_algorithm(alg: &[u8]) -> Result<Hash, AuthError> {
    let seq = der::single(alg, der::SEQUENCE)?;
    let mut r = der::Reader::new(seq.content);
    let oid = r.read(der::OID)?;
    if let Some(p) = r.read_optional(der::NULL)? {
        if !p.content.is_empty() {
            return Err(AuthError::PssParameters("a hash algorithm's NULL parameters are not empty"));
        }
    }
    r.finish()?;
    Hash::ALL.into_iter().find(|h| der::oid_content(h.oid()) == oid.content).ok_or_else(|| {
        AuthError::UnknownAlgorithm { oid: der::oid_to_string(oid.content), why: "not a hash algorithm accepted here" }
    })
}

/// RSASSA-PSS-params (RFC 4055 §3.1), defaults filled in: SHA-1, MGF1 with SHA-1, salt
/// length 20, trailer field 1.
fn parse_pss_params(params: Option<der::Tlv<'_>>) -> Result<Scheme, AuthError> {
    let params = params.ok_or(AuthError::PssParameters("missing (RFC 4055 requires them in signatures)"))?;
    if params.tag != der::SEQUENCE {
        return Err(AuthError::PssParameters("not a SEQUENCE"));
    }
    let mut r = der::Reader::new(params.content);
    let mut hash = Hash::Sha1;
    let mut mgf1 = Hash::Sha1;
    let mut salt_len = 20;
    if let Some(t) = r.read_optional(0xa0)? {
        hash = parse_hash_algorithm(t.content)?;
    }
    if let Some(t) = r.read_optional(0xa1)? {
        let seq = der::single(t.content, der::SEQUENCE)?;
        let mut m = der::Reader::new(seq.content);
        let oid = m.read(der::OID)?;
        if oid.content != der::oid_content(OID_MGF1).as_slice() {
            return Err(AuthError::PssParameters("the mask generation function is not MGF1"));
        }
        mgf1 = parse_hash_algorithm(m.read(der::SEQUENCE)?.raw)?;
        m.finish()?;
    }
    if let Some(t) = r.read_optional(0xa2)? {
        let int = der::single(t.content, der::INTEGER)?;
        salt_len = der::small_uint(int.content)
            .filter(|&s| s <= 1024)
            .ok_or(AuthError::PssParameters("the salt length is not an integer from 0 to 1024"))?;
    }
    if let Some(t) = r.read_optional(0xa3)? {
        let int = der::single(t.content, der::INTEGER)?;
        if der::small_uint(int.content) != Some(1) {
            return Err(AuthError::PssParameters("the trailer field is not 1"));
        }
    }
    r.finish()?;
    Ok(Scheme::RsaPss { hash, mgf1, salt_len })
}

/// Parses the AlgorithmIdentifier of a Digital Signature AUTH payload and refuses what this
/// implementation does not accept (SHA-1 in particular: it is not announced).
fn parse_algorithm_identifier(alg: &[u8]) -> Result<Scheme, AuthError> {
    let seq = der::single(alg, der::SEQUENCE)?;
    let mut r = der::Reader::new(seq.content);
    let oid = r.read(der::OID)?.content;
    let params = if r.is_empty() { None } else { Some(r.read_any()?) };
    r.finish()?;
    let is = |arcs: &[u32]| der::oid_content(arcs) == oid;
    let no_params = |scheme: Scheme| match params {
        None => Ok(scheme),
        Some(_) => Err(AuthError::UnknownAlgorithm {
            oid: der::oid_to_string(oid),
            why: "ECDSA and Ed25519 AlgorithmIdentifiers have no parameters",
        }),
    };
    let scheme = if let Some(h) = Hash::ALL.into_iter().find(|h| is(h.rsa_pkcs1_oid())) {
        match params {
            None => Scheme::RsaPkcs1(h),
            Some(p) if p.tag == der::NULL && p.content.is_empty() => Scheme::RsaPkcs1(h),
            Some(_) => {
                return Err(AuthError::UnknownAlgorithm {
                    oid: der::oid_to_string(oid),
                    why: "PKCS#1 v1.5 parameters must be NULL",
                })
            }
        }
    } else if let Some(h) = Hash::ALL.into_iter().find(|h| is(h.ecdsa_oid())) {
        no_params(Scheme::Ecdsa(h))?
    } else if is(OID_ED25519) {
        no_params(Scheme::Ed25519)?
    } else if is(OID_RSASSA_PSS) {
        parse_pss_params(params)?
    } else {
        return Err(AuthError::UnknownAlgorithm {
            oid: der::oid_to_string(oid),
            why: "not a signature algorithm accepted here",
        });
    };
    match scheme {
        Scheme::RsaPkcs1(Hash::Sha1)
        | Scheme::Ecdsa(Hash::Sha1)
        | Scheme::RsaPss { hash: Hash::Sha1, .. }
        | Scheme::RsaPss { mgf1: Hash::Sha1, .. } => Err(AuthError::UnsupportedHash { hash: Hash::Sha1.name() }),
        s => Ok(s),
    }
}

fn sign_with(key: &PrivateKey, scheme: SigningScheme, octets: &[u8]) -> Result<Vec<u8>, AuthError> {
    let pkey = key.pkey();
    match scheme {
        SigningScheme::Ed25519 => Signer::new_without_digest(pkey)
            .and_then(|mut s| s.sign_oneshot_to_vec(octets))
            .map_err(crypto("signing with Ed25519")),
        SigningScheme::RsaPkcs1(h) | SigningScheme::Ecdsa(h) => {
            Signer::new(h.md(), pkey).and_then(|mut s| s.sign_oneshot_to_vec(octets)).map_err(crypto("signing"))
        }
    }
}

/// Signs `octets` for an AUTH payload.
///
/// When the peer announced SIGNATURE_HASH_ALGORITHMS (`peer_hashes` not empty), the Digital
/// Signature method (14, RFC 7427 §3) is used with the hash the key suits: ECDSA P-256 with
/// SHA2-256, P-384 with SHA2-384, P-521 with SHA2-512 (another SHA-2 the peer lists if it
/// lacks that one), RSA PKCS#1 v1.5 with SHA2-256 (else SHA2-384, SHA2-512), Ed25519 with
/// Identity. Its data is the AlgorithmIdentifier's length (one octet), the DER
/// AlgorithmIdentifier and the signature (ECDSA: a DER Ecdsa-Sig-Value).
///
/// Otherwise, or if the peer lists no hash in common, the key's legacy method: RSA Digital
/// Signature (1, PKCS#1 v1.5 with SHA-1, RFC 7296 §3.8) or ECDSA with SHA-256/384/512 on
/// P-256/384/521 (9, 10, 11; r ‖ s of the curve's size, RFC 4754 §7). Ed25519 has no legacy
/// method.
pub fn sign_auth(key: &PrivateKey, peer_hashes: &[u16], octets: &[u8]) -> Result<(AuthMethod, Vec<u8>), AuthError> {
    let offered = |h: Hash| peer_hashes.contains(&h.ike_id());
    let digital = match key.kind() {
        KeyKind::Rsa { .. } => {
            [Hash::Sha256, Hash::Sha384, Hash::Sha512].into_iter().find(|&h| offered(h)).map(SigningScheme::RsaPkcs1)
        }
        KeyKind::Ecdsa(curve) => {
            let preferred = legacy_ecdsa(curve).1;
            core::iter::once(preferred)
                .chain([Hash::Sha512, Hash::Sha384, Hash::Sha256])
                .find(|&h| offered(h))
                .map(SigningScheme::Ecdsa)
        }
        KeyKind::Ed25519 => peer_hashes.contains(&HASH_IDENTITY).then_some(SigningScheme::Ed25519),
    };
    if let Some(scheme) = digital {
        let alg = scheme.algorithm_identifier();
        let sig = sign_with(key, scheme, octets)?;
        let mut data = Vec::with_capacity(1 + alg.len() + sig.len());
        data.push(u8::try_from(alg.len()).map_err(|_| AuthError::Malformed("AlgorithmIdentifier too long"))?);
        data.extend_from_slice(&alg);
        data.extend_from_slice(&sig);
        return Ok((AuthMethod::DIGITAL_SIGNATURE, data));
    }
    match key.kind() {
        KeyKind::Rsa { .. } => Ok((AuthMethod::RSA_SIG, sign_with(key, SigningScheme::RsaPkcs1(Hash::Sha1), octets)?)),
        KeyKind::Ecdsa(curve) => {
            let (method, hash) = legacy_ecdsa(curve);
            let der_sig = sign_with(key, SigningScheme::Ecdsa(hash), octets)?;
            let sig = EcdsaSig::from_der(&der_sig).map_err(crypto("decoding an ECDSA signature"))?;
            let n = curve.coordinate_len() as i32;
            let mut data = sig.r().to_vec_padded(n).map_err(crypto("encoding r"))?;
            data.extend(sig.s().to_vec_padded(n).map_err(crypto("encoding s"))?);
            Ok((method, data))
        }
        KeyKind::Ed25519 => Err(AuthError::NoCommonHash { key: key.kind(), peer: peer_hashes.to_vec() }),
    }
}

/// The RFC 4754 method and hash of a curve.
fn legacy_ecdsa(curve: EcCurve) -> (AuthMethod, Hash) {
    match curve {
        EcCurve::P256 => (AuthMethod::ECDSA_SHA256_P256, Hash::Sha256),
        EcCurve::P384 => (AuthMethod::ECDSA_SHA384_P384, Hash::Sha384),
        EcCurve::P521 => (AuthMethod::ECDSA_SHA512_P521, Hash::Sha512),
    }
}

fn verify_with<T: HasPublic>(
    pkey: &PKeyRef<T>,
    scheme: Scheme,
    signature: &[u8],
    octets: &[u8],
) -> Result<(), AuthError> {
    let outcome = match scheme {
        Scheme::Ed25519 => Verifier::new_without_digest(pkey).and_then(|mut v| v.verify_oneshot(signature, octets)),
        Scheme::RsaPkcs1(h) | Scheme::Ecdsa(h) => Verifier::new(h.md(), pkey).and_then(|mut v| {
            v.update(octets)?;
            v.verify(signature)
        }),
        Scheme::RsaPss { hash, mgf1, salt_len } => {
            let salt = i32::try_from(salt_len).map_err(|_| AuthError::PssParameters("salt length too large"))?;
            Verifier::new(hash.md(), pkey).and_then(|mut v| {
                v.set_rsa_padding(Padding::PKCS1_PSS)?;
                v.set_rsa_mgf1_md(mgf1.md())?;
                v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt))?;
                v.update(octets)?;
                v.verify(signature)
            })
        }
    };
    // A signature OpenSSL cannot even parse (wrong length, bad DER) is as bad as one that
    // does not verify.
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(AuthError::BadSignature { scheme: scheme.name() }),
    }
}

fn require_key(method: AuthMethod, key: &PublicKey, needs: &'static str, ok: bool) -> Result<(), AuthError> {
    if ok {
        Ok(())
    } else {
        Err(AuthError::KeyMismatch { method, needs, key: key.kind() })
    }
}

/// Verifies a peer's signature AUTH payload over `octets` with its public key. Methods: RSA
/// Digital Signature (1, PKCS#1 v1.5 with SHA-1), ECDSA with SHA-256/384/512 on
/// P-256/384/521 (9, 10, 11, RFC 4754) and Digital Signature (14, RFC 7427) with RSA PKCS#1
/// v1.5 or RSASSA-PSS (SHA2-256/384/512, any salt length, MGF1 with a SHA-2), ECDSA with
/// SHA2-256/384/512 (any of the three curves) or Ed25519.
pub fn verify_auth(key: &PublicKey, method: AuthMethod, data: &[u8], octets: &[u8]) -> Result<(), AuthError> {
    let kind = key.kind();
    match method {
        AuthMethod::RSA_SIG => {
            require_key(method, key, "an RSA key", matches!(kind, KeyKind::Rsa { .. }))?;
            verify_with(key.pkey(), Scheme::RsaPkcs1(Hash::Sha1), data, octets)
        }
        AuthMethod::ECDSA_SHA256_P256 | AuthMethod::ECDSA_SHA384_P384 | AuthMethod::ECDSA_SHA512_P521 => {
            let (curve, needs) = match method {
                AuthMethod::ECDSA_SHA256_P256 => (EcCurve::P256, "an ECDSA P-256 key"),
                AuthMethod::ECDSA_SHA384_P384 => (EcCurve::P384, "an ECDSA P-384 key"),
                _ => (EcCurve::P521, "an ECDSA P-521 key"),
            };
            require_key(method, key, needs, kind == KeyKind::Ecdsa(curve))?;
            let n = curve.coordinate_len();
            if data.len() != 2 * n {
                return Err(AuthError::SignatureLength { method, got: data.len(), expected: 2 * n });
            }
            let (r, s) = data.split_at(n);
            let sig = BigNum::from_slice(r)
                .and_then(|r| BigNum::from_slice(s).map(|s| (r, s)))
                .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
                .and_then(|sig| sig.to_der())
                .map_err(crypto("encoding an ECDSA signature"))?;
            verify_with(key.pkey(), Scheme::Ecdsa(legacy_ecdsa(curve).1), &sig, octets)
        }
        AuthMethod::DIGITAL_SIGNATURE => {
            let (&len, rest) = data.split_first().ok_or(AuthError::Malformed("empty"))?;
            let len = usize::from(len);
            if rest.len() < len {
                return Err(AuthError::Malformed("the AlgorithmIdentifier is longer than the data"));
            }
            let (alg, signature) = rest.split_at(len);
            let scheme = parse_algorithm_identifier(alg)?;
            if signature.is_empty() {
                return Err(AuthError::Malformed("no signature after the AlgorithmIdentifier"));
            }
            match scheme {
                Scheme::RsaPkcs1(_) | Scheme::RsaPss { .. } => {
                    require_key(method, key, "an RSA key for an RSA signature", matches!(kind, KeyKind::Rsa { .. }))?
                }
                Scheme::Ecdsa(_) => {
                    require_key(method, key, "an ECDSA key for an ECDSA signature", matches!(kind, KeyKind::Ecdsa(_)))?
                }
                Scheme::Ed25519 => {
                    require_key(method, key, "an Ed25519 key for an Ed25519 signature", kind == KeyKind::Ed25519)?
                }
            }
            verify_with(key.pkey(), scheme, signature, octets)
        }
        other => Err(AuthError::UnsupportedMethod(other)),
    }
}
