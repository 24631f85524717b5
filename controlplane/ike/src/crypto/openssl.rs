//! The OpenSSL provider, through the `openssl` crate (system OpenSSL 3), with two parts done
//! elsewhere because OpenSSL 3's per-call overhead made them most of a setup's cost
//! (`esprit-pktgen ike`; figures in `benches/README.md`): HMAC and X25519.
//!
//! * PRFs and integrity algorithms are HMACs, the latter truncated
//!   ([RFC 2404](https://www.rfc-editor.org/rfc/rfc2404),
//!   [RFC 4868](https://www.rfc-editor.org/rfc/rfc4868)), computed by RustCrypto's `hmac`,
//!   `sha1` and `sha2` (SHA-NI where the CPU has it). Through the `openssl` crate an HMAC is
//!   an `EVP_PKEY` MAC key and `EVP_DigestSign*`, and OpenSSL 3 imports the key into its
//!   provider and fetches the algorithms anew on every call: about half of the CPU time of a
//!   whole IKE_SA + CHILD_SA setup went there (a setup runs some forty HMACs: prf+, AUTH,
//!   the SK payloads' integrity when not an AEAD).
//! * AES-CBC runs without padding: the SK payload carries its own
//!   ([RFC 7296 §3.14](https://www.rfc-editor.org/rfc/rfc7296#section-3.14)). The AEADs take
//!   key ‖ 4-byte salt and build the 12-byte nonce as salt ‖ 8-byte IV
//!   ([RFC 5282 §4](https://www.rfc-editor.org/rfc/rfc5282#section-4),
//!   [RFC 7634 §2](https://www.rfc-editor.org/rfc/rfc7634#section-2)); decryption writes into a
//!   zeroized-on-drop buffer, so plaintext that fails authentication does not outlive the call.
//! * MODP and ECP Diffie-Hellman go through `EVP_PKEY_derive`, after this module has checked
//!   the peer's value itself ([RFC 6989](https://www.rfc-editor.org/rfc/rfc6989)); OpenSSL
//!   checks it again when the peer key is set. X25519 is AWS-LC's (aws-lc-rs): 2.5× faster
//!   here (the private `X25519` type below); an all-zero result is refused (RFC 8031 §2).
//!
//! What is relied on for secrets held by the libraries: private DH values and EC scalars are
//! `BIGNUM`s freed with `BN_clear_free` (`DH_free`, `EC_KEY_free`), AWS-LC zeroizes every
//! allocation it frees (the X25519 keys), the HMAC state is zeroized on drop, and cipher
//! contexts are cleansed by `EVP_CIPHER_CTX_free`. Copies made on the Rust side (shared
//! secrets, nonces with their salt, decrypted plaintext) are held in [`Zeroizing`] buffers.

use core::fmt;

use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::dh::Dh;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::symm::{Cipher, Crypter, Mode};
use zeroize::Zeroizing;

use super::{CryptoError, CryptoProvider, DhGroup, DhSecret, EncrAlg, IntegAlg, PrfAlg};

/// The provider's one instance, as [`super::providers`] lists it.
pub(super) static PROVIDER: OpensslProvider = OpensslProvider;

const NAME: &str = "openssl";
/// Bytes of AEAD ICV (the `_16` of ENCR_AES_GCM_16; Poly1305's tag).
const AEAD_TAG_LEN: usize = 16;
/// Bytes of AEAD nonce: 4-byte salt ‖ 8-byte IV.
const AEAD_NONCE_LEN: usize = 12;
const AEAD_SALT_LEN: usize = 4;
const AES_BLOCK: usize = 16;

/// The OpenSSL provider. Stateless: every call sets up its own OpenSSL context.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpensslProvider;

impl OpensslProvider {
    /// A Diffie-Hellman value from a fixed private one, for known-answer tests: `private` is
    /// the MODP exponent or the ECP scalar (big-endian), or the 32-byte X25519 scalar (RFC 7748
    /// §5: little-endian, clamped by OpenSSL). Never use it for a real exchange: a private value
    /// must be fresh ([`CryptoProvider::dh_generate`]).
    #[doc(hidden)]
    pub fn dh_from_private_for_tests(&self, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
        self.dh_restore(group, private)
    }
}

impl OpensslProvider {
    fn dh_from_private(&self, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
        let key = match group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                let x = Zeroizing::new(private.to_vec());
                let dh = modp_params(group)?.set_private_key(BigNum::from_slice(&x).map_err(lib)?).map_err(lib)?;
                PKey::from_dh(dh).map_err(lib)?
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => {
                let ec = ec_group(group)?;
                let scalar = BigNum::from_slice(private).map_err(lib)?;
                let mut ctx = BigNumContext::new().map_err(lib)?;
                let mut public = EcPoint::new(&ec).map_err(lib)?;
                public.mul_generator2(&ec, &scalar, &mut ctx).map_err(lib)?;
                PKey::from_ec_key(EcKey::from_private_components(&ec, &scalar, &public).map_err(lib)?).map_err(lib)?
            }
            DhGroup::Curve25519 => {
                if private.len() != 32 {
                    return Err(CryptoError::Length { what: "X25519 private value", len: private.len(), expected: 32 });
                }
                return X25519::restore(private).map(|d| Box::new(d) as Box<dyn DhSecret>);
            }
        };
        OsslDh::new(group, key).map(|d| Box::new(d) as Box<dyn DhSecret>)
    }
}

impl CryptoProvider for OpensslProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Fills `out` from OpenSSL's CSPRNG (`RAND_bytes`).
    ///
    /// # Panics
    ///
    /// If `RAND_bytes` fails (its DRBG could not be seeded). The trait has no error to return
    /// and there is no safe way to go on without randomness: nonces, SPIs and private values
    /// would be predictable.
    fn fill_random(&self, out: &mut [u8]) {
        if let Err(e) = openssl::rand::rand_bytes(out) {
            panic!("OpenSSL's CSPRNG failed ({e}); refusing to continue without randomness");
        }
    }

    fn prf(&self, alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        hmac(prf_digest(alg), key, data)
    }

    fn integ(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let md = match alg {
            IntegAlg::HmacSha1_96 => Md::Sha1,
            IntegAlg::HmacSha256_128 => Md::Sha256,
            IntegAlg::HmacSha384_192 => Md::Sha384,
            IntegAlg::HmacSha512_256 => Md::Sha512,
        };
        let mut mac = hmac(md, key, data);
        mac.truncate(alg.icv_len());
        mac
    }

    fn encrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let cipher = cipher_for(alg)?;
        check_len(alg, "key", key.len(), alg.keymat_len())?;
        check_len(alg, "IV", iv.len(), alg.iv_len())?;
        if !alg.is_aead() {
            check_cbc_len(plaintext.len(), "AES-CBC plaintext (must be a multiple of 16 bytes)")?;
            let mut c = Crypter::new(cipher, Mode::Encrypt, key, Some(iv)).map_err(lib)?;
            c.pad(false);
            let mut out = vec![0; plaintext.len() + AES_BLOCK];
            let n = c.update(plaintext, &mut out).map_err(lib)?;
            let m = c.finalize(&mut out[n..]).map_err(lib)?;
            out.truncate(n + m);
            return Ok(out);
        }
        let (k, nonce) = aead_key_nonce(alg, key, iv);
        let mut c = Crypter::new(cipher, Mode::Encrypt, k, Some(&nonce[..])).map_err(lib)?;
        c.aad_update(aad).map_err(lib)?;
        let mut out = vec![0; plaintext.len() + AEAD_TAG_LEN];
        let n = c.update(plaintext, &mut out).map_err(lib)?;
        let m = c.finalize(&mut out[n..]).map_err(lib)?;
        debug_assert_eq!(n + m, plaintext.len(), "a counter mode outputs as many bytes as it takes");
        c.get_tag(&mut out[plaintext.len()..]).map_err(lib)?;
        Ok(out)
    }

    fn decrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let cipher = cipher_for(alg)?;
        check_len(alg, "key", key.len(), alg.keymat_len())?;
        check_len(alg, "IV", iv.len(), alg.iv_len())?;
        if !alg.is_aead() {
            check_cbc_len(ciphertext.len(), "AES-CBC ciphertext (must be a multiple of 16 bytes)")?;
            let mut c = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).map_err(lib)?;
            c.pad(false);
            let mut out = Zeroizing::new(vec![0; ciphertext.len() + AES_BLOCK]);
            let n = c.update(ciphertext, &mut out).map_err(lib)?;
            let m = c.finalize(&mut out[n..]).map_err(lib)?;
            out.truncate(n + m);
            return Ok(out);
        }
        let Some(body_len) = ciphertext.len().checked_sub(AEAD_TAG_LEN) else {
            return Err(CryptoError::Length {
                what: "AEAD ciphertext (at least its 16-byte ICV)",
                len: ciphertext.len(),
                expected: AEAD_TAG_LEN,
            });
        };
        let (body, tag) = ciphertext.split_at(body_len);
        let (k, nonce) = aead_key_nonce(alg, key, iv);
        let mut c = Crypter::new(cipher, Mode::Decrypt, k, Some(&nonce[..])).map_err(lib)?;
        c.aad_update(aad).map_err(lib)?;
        // Plaintext lands here before the tag is checked; on failure it is zeroized on drop.
        let mut out = Zeroizing::new(vec![0; body_len]);
        let n = c.update(body, &mut out).map_err(lib)?;
        c.set_tag(tag).map_err(lib)?;
        // EVP_DecryptFinal_ex fails only when the tag does not verify: key, IV and tag lengths
        // were checked above.
        c.finalize(&mut out[n..]).map_err(|_| CryptoError::Integrity)?;
        Ok(out)
    }

    fn dh_restore(&self, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
        self.dh_from_private(group, private)
    }

    fn dh_generate(&self, group: DhGroup) -> Result<Box<dyn DhSecret>, CryptoError> {
        let key = match group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                PKey::from_dh(modp_params(group)?.generate_key().map_err(lib)?).map_err(lib)?
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => {
                let ec = ec_group(group)?;
                PKey::from_ec_key(EcKey::generate(&ec).map_err(lib)?).map_err(lib)?
            }
            DhGroup::Curve25519 => return X25519::generate().map(|d| Box::new(d) as Box<dyn DhSecret>),
        };
        OsslDh::new(group, key).map(|d| Box::new(d) as Box<dyn DhSecret>)
    }
}

fn lib(e: ErrorStack) -> CryptoError {
    CryptoError::Library(e.to_string())
}

/// The hash under an HMAC.
#[derive(Debug, Clone, Copy)]
enum Md {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

fn prf_digest(alg: PrfAlg) -> Md {
    match alg {
        PrfAlg::HmacSha1 => Md::Sha1,
        PrfAlg::HmacSha256 => Md::Sha256,
        PrfAlg::HmacSha384 => Md::Sha384,
        PrfAlg::HmacSha512 => Md::Sha512,
    }
}

/// HMAC ([RFC 2104](https://www.rfc-editor.org/rfc/rfc2104)) of the concatenated `data`.
/// The keyed state is zeroized on drop (the `zeroize` features of `hmac` and `sha2`).
fn hmac(md: Md, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    fn run<D>(key: &[u8], data: &[&[u8]]) -> Vec<u8>
    where
        D: hmac::EagerHash,
        hmac::Hmac<D>: hmac::KeyInit + hmac::Mac,
    {
        use hmac::{KeyInit, Mac};
        // HMAC takes a key of any length, the empty one included (RFC 2104 §3: a longer one
        // is hashed first), so this constructor has no error to return.
        let Ok(mut m) = <hmac::Hmac<D> as KeyInit>::new_from_slice(key) else {
            unreachable!("HMAC accepts keys of every length")
        };
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().to_vec()
    }
    match md {
        Md::Sha1 => run::<sha1::Sha1>(key, data),
        Md::Sha256 => run::<sha2::Sha256>(key, data),
        Md::Sha384 => run::<sha2::Sha384>(key, data),
        Md::Sha512 => run::<sha2::Sha512>(key, data),
    }
}

fn cipher_for(alg: EncrAlg) -> Result<Cipher, CryptoError> {
    Ok(match alg {
        EncrAlg::AesCbc { key_bits: 128 } => Cipher::aes_128_cbc(),
        EncrAlg::AesCbc { key_bits: 192 } => Cipher::aes_192_cbc(),
        EncrAlg::AesCbc { key_bits: 256 } => Cipher::aes_256_cbc(),
        EncrAlg::AesGcm16 { key_bits: 128 } => Cipher::aes_128_gcm(),
        EncrAlg::AesGcm16 { key_bits: 192 } => Cipher::aes_192_gcm(),
        EncrAlg::AesGcm16 { key_bits: 256 } => Cipher::aes_256_gcm(),
        EncrAlg::ChaCha20Poly1305 => Cipher::chacha20_poly1305(),
        EncrAlg::AesCbc { .. } | EncrAlg::AesGcm16 { .. } => {
            return Err(CryptoError::Unsupported("AES with a key of other than 128, 192 or 256 bits"))
        }
    })
}

fn check_len(alg: EncrAlg, what: &'static str, len: usize, expected: usize) -> Result<(), CryptoError> {
    if len == expected {
        return Ok(());
    }
    let what = match (alg, what) {
        (EncrAlg::AesCbc { .. }, "key") => "AES-CBC key",
        (EncrAlg::AesCbc { .. }, _) => "AES-CBC IV",
        (EncrAlg::AesGcm16 { .. }, "key") => "AES-GCM key with its 4-byte salt",
        (EncrAlg::AesGcm16 { .. }, _) => "AES-GCM IV",
        (EncrAlg::ChaCha20Poly1305, "key") => "ChaCha20-Poly1305 key with its 4-byte salt",
        (EncrAlg::ChaCha20Poly1305, _) => "ChaCha20-Poly1305 IV",
    };
    Err(CryptoError::Length { what, len, expected })
}

fn check_cbc_len(len: usize, what: &'static str) -> Result<(), CryptoError> {
    if len % AES_BLOCK == 0 {
        Ok(())
    } else {
        Err(CryptoError::Length { what, len, expected: len.next_multiple_of(AES_BLOCK) })
    }
}

/// Splits key ‖ salt and builds the nonce salt ‖ IV (RFC 5282 §4, RFC 7634 §2). Lengths were
/// checked by the caller.
fn aead_key_nonce<'k>(alg: EncrAlg, key: &'k [u8], iv: &[u8]) -> (&'k [u8], Zeroizing<[u8; AEAD_NONCE_LEN]>) {
    let (k, salt) = key.split_at(alg.key_len());
    let mut nonce = Zeroizing::new([0u8; AEAD_NONCE_LEN]);
    nonce[..AEAD_SALT_LEN].copy_from_slice(salt);
    nonce[AEAD_SALT_LEN..].copy_from_slice(iv);
    (k, nonce)
}

/// The MODP group's parameters: the RFC 3526 prime and generator 2.
fn modp_params(group: DhGroup) -> Result<Dh<openssl::pkey::Params>, CryptoError> {
    let p = match group {
        DhGroup::Modp2048 => BigNum::get_rfc3526_prime_2048(),
        DhGroup::Modp3072 => BigNum::get_rfc3526_prime_3072(),
        DhGroup::Modp4096 => BigNum::get_rfc3526_prime_4096(),
        _ => return Err(CryptoError::Unsupported("MODP parameters for a group that is not MODP")),
    }
    .map_err(lib)?;
    Dh::from_pqg(p, None, BigNum::from_u32(2).map_err(lib)?).map_err(lib)
}

fn ec_group(group: DhGroup) -> Result<EcGroup, CryptoError> {
    let nid = match group {
        DhGroup::Ecp256 => Nid::X9_62_PRIME256V1,
        DhGroup::Ecp384 => Nid::SECP384R1,
        DhGroup::Ecp521 => Nid::SECP521R1,
        _ => return Err(CryptoError::Unsupported("an elliptic curve for a group that is not ECP")),
    };
    EcGroup::from_curve_name(nid).map_err(lib)
}

/// A MODP or ECP private value held by OpenSSL, with its public value in KE payload form
/// (X25519 is [`X25519`]'s).
struct OsslDh {
    group: DhGroup,
    key: PKey<Private>,
    public: Vec<u8>,
}

impl fmt::Debug for OsslDh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsslDh").field("group", &self.group).field("public_len", &self.public.len()).finish()
    }
}

impl OsslDh {
    fn new(group: DhGroup, key: PKey<Private>) -> Result<OsslDh, CryptoError> {
        let public = match group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                let dh = key.dh().map_err(lib)?;
                pad(dh.public_key(), group.public_len())?
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => {
                let ec = key.ec_key().map_err(lib)?;
                let mut ctx = BigNumContext::new().map_err(lib)?;
                let (mut x, mut y) = (BigNum::new().map_err(lib)?, BigNum::new().map_err(lib)?);
                ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx).map_err(lib)?;
                // RFC 5903 §7: x ‖ y, each padded to the field size, no point-format octet.
                let mut v = pad(&x, group.shared_len())?;
                v.extend_from_slice(&pad(&y, group.shared_len())?);
                v
            }
            DhGroup::Curve25519 => {
                return Err(CryptoError::Unsupported("X25519 through OpenSSL (it is AWS-LC's here)"))
            }
        };
        if public.len() != group.public_len() {
            return Err(CryptoError::Library(format!(
                "OpenSSL gave a {}-byte {group:?} public value, expected {}",
                public.len(),
                group.public_len()
            )));
        }
        Ok(OsslDh { group, key, public })
    }

    fn bad(&self, why: &'static str) -> CryptoError {
        CryptoError::BadPublicValue { group: self.group, why }
    }

    /// The peer's public value as an OpenSSL key, after the checks RFC 6989 asks for.
    fn peer_key(&self, peer: &[u8]) -> Result<PKey<openssl::pkey::Public>, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(self.bad(match self.group {
                DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                    "not the prime's length (RFC 7296 §3.4: left-padded with zeros)"
                }
                DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => {
                    "not x ‖ y of the field size (RFC 5903 §7: no point-format octet)"
                }
                DhGroup::Curve25519 => "not an OpenSSL group here",
            }));
        }
        match self.group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                // RFC 6989 §2.1: 1 < y < p-1.
                let params = modp_params(self.group)?;
                let y = BigNum::from_slice(peer).map_err(lib)?;
                let mut p_minus_1 = params.prime_p().to_owned().map_err(lib)?;
                p_minus_1.sub_word(1).map_err(lib)?;
                let one = BigNum::from_u32(1).map_err(lib)?;
                if y <= one {
                    return Err(self.bad("1 or less (RFC 6989 §2.1)"));
                }
                if y >= p_minus_1 {
                    return Err(self.bad("p-1 or more (RFC 6989 §2.1)"));
                }
                PKey::from_dh(params.set_public_key(y).map_err(lib)?).map_err(lib)
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => {
                // RFC 6989 §2.3 (via RFC 5903): the point must be on the curve; coordinates
                // must be field elements. OpenSSL refuses points off the curve when they are set.
                let ec = ec_group(self.group)?;
                let (xb, yb) = peer.split_at(self.group.shared_len());
                let x = BigNum::from_slice(xb).map_err(lib)?;
                let y = BigNum::from_slice(yb).map_err(lib)?;
                let mut ctx = BigNumContext::new().map_err(lib)?;
                let (mut p, mut a, mut b) =
                    (BigNum::new().map_err(lib)?, BigNum::new().map_err(lib)?, BigNum::new().map_err(lib)?);
                ec.components_gfp(&mut p, &mut a, &mut b, &mut ctx).map_err(lib)?;
                if x >= p || y >= p {
                    return Err(self.bad("a coordinate is not below the field prime (RFC 6989 §2.3)"));
                }
                let key = EcKey::from_public_key_affine_coordinates(&ec, &x, &y)
                    .map_err(|_| self.bad("not a point on the curve (RFC 6989 §2.3)"))?;
                PKey::from_ec_key(key).map_err(lib)
            }
            DhGroup::Curve25519 => Err(CryptoError::Unsupported("X25519 through OpenSSL (it is AWS-LC's here)")),
        }
    }
}

impl DhSecret for OsslDh {
    fn group(&self) -> DhGroup {
        self.group
    }

    fn public(&self) -> &[u8] {
        &self.public
    }

    fn private(&self) -> Option<Zeroizing<Vec<u8>>> {
        let v = match self.group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => self.key.dh().ok()?.private_key().to_vec(),
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => self.key.ec_key().ok()?.private_key().to_vec(),
            DhGroup::Curve25519 => return None,
        };
        Some(Zeroizing::new(v))
    }

    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let peer_key = self.peer_key(peer)?;
        let mut deriver = Deriver::new(&self.key).map_err(lib)?;
        deriver.set_peer(&peer_key).map_err(|_| self.bad("refused by OpenSSL's public key check"))?;
        let len = deriver.len().map_err(lib)?;
        let mut raw = Zeroizing::new(vec![0u8; len]);
        let n = match deriver.derive(&mut raw) {
            Ok(n) => n,
            Err(e) => return Err(lib(e)),
        };
        raw.truncate(n);
        let want = self.group.shared_len();
        if n > want {
            return Err(CryptoError::Library(format!(
                "OpenSSL derived {n} bytes for {:?}, expected {want}",
                self.group
            )));
        }
        // MODP: OpenSSL strips leading zero bytes; g^ir is the prime's length (RFC 7296 §2.14).
        let mut shared = Zeroizing::new(vec![0u8; want]);
        shared[want - n..].copy_from_slice(&raw);
        Ok(shared)
    }
}

/// An X25519 private value held by AWS-LC (aws-lc-rs), whose X25519 is 2.5× as fast as
/// OpenSSL 3's through the `openssl` crate here (gen + public + agree: 38 µs against 95 µs,
/// most of OpenSSL's in its `EVP_PKEY` provider machinery), and X25519 was three quarters of
/// an IKE_SA + CHILD_SA setup once HMAC left OpenSSL. AWS-LC cleanses the key's memory when
/// it is freed (`OPENSSL_free` zeroizes every allocation).
struct X25519 {
    key: aws_lc_rs::agreement::PrivateKey,
    public: Vec<u8>,
}

impl fmt::Debug for X25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Like OsslDh's: the group and the public value's length, never the private value.
        f.debug_struct("X25519").field("group", &DhGroup::Curve25519).field("public_len", &self.public.len()).finish()
    }
}

impl X25519 {
    fn with_key(key: aws_lc_rs::agreement::PrivateKey) -> Result<X25519, CryptoError> {
        let public = key.compute_public_key().map_err(|_| lc("computing the X25519 public value"))?.as_ref().to_vec();
        if public.len() != DhGroup::Curve25519.public_len() {
            return Err(lc("an X25519 public value of other than 32 bytes"));
        }
        Ok(X25519 { key, public })
    }

    fn generate() -> Result<X25519, CryptoError> {
        let key = aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::X25519)
            .map_err(|_| lc("generating an X25519 private value"))?;
        X25519::with_key(key)
    }

    /// From the 32 raw private bytes (RFC 7748 §5: the scalar before clamping, as
    /// [`DhSecret::private`] exports it; OpenSSL's raw private key is the same bytes, so
    /// checkpoints written by either restore).
    fn restore(private: &[u8]) -> Result<X25519, CryptoError> {
        let key = aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::X25519, private)
            .map_err(|_| lc("loading an X25519 private value"))?;
        X25519::with_key(key)
    }
}

fn lc(what: &str) -> CryptoError {
    CryptoError::Library(format!("AWS-LC failed {what}"))
}

impl DhSecret for X25519 {
    fn group(&self) -> DhGroup {
        DhGroup::Curve25519
    }

    fn public(&self) -> &[u8] {
        &self.public
    }

    fn private(&self) -> Option<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
        let seed: Curve25519SeedBin<'static> = self.key.as_be_bytes().ok()?;
        Some(Zeroizing::new(seed.as_ref().to_vec()))
    }

    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let bad = |why| CryptoError::BadPublicValue { group: DhGroup::Curve25519, why };
        if peer.len() != DhGroup::Curve25519.public_len() {
            return Err(bad("not 32 bytes (RFC 8031 §2)"));
        }
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(&aws_lc_rs::agreement::X25519, peer);
        // Any 32 bytes are a u-coordinate (RFC 7748 §5 masks the top bit), so the one
        // failure left is AWS-LC refusing an all-zero result: the peer sent a low-order point
        // (RFC 7748 §6.1, RFC 8031 §2 "MUST check").
        let shared = aws_lc_rs::agreement::agree(&self.key, peer, (), |s| Ok(Zeroizing::new(s.to_vec())))
            .map_err(|()| bad("low-order point: all-zero shared secret (RFC 8031 §2)"))?;
        if shared.len() != 32 || shared.iter().fold(0u8, |acc, b| acc | b) == 0 {
            return Err(bad("low-order point: all-zero shared secret (RFC 8031 §2)"));
        }
        Ok(shared)
    }
}

/// A big-endian number left-padded with zeros to `len` bytes.
fn pad(n: &openssl::bn::BigNumRef, len: usize) -> Result<Vec<u8>, CryptoError> {
    let len_i32 =
        i32::try_from(len).map_err(|_| CryptoError::Library(format!("{len} bytes do not fit BN_bn2binpad")))?;
    n.to_vec_padded(len_i32).map_err(lib)
}
