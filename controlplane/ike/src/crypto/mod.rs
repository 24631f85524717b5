//! The cryptography IKEv2 needs, behind a provider: random bytes, PRFs, integrity
//! algorithms, the SK payload's ciphers, and Diffie-Hellman. Algorithms are named by their
//! IANA IKEv2 transform IDs (RFC 7296 §3.3.2).

use core::fmt;

use zeroize::Zeroizing;

pub mod openssl;

pub use self::openssl::OpensslProvider;

/// Encryption algorithms for the SK payload (transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// ENCR_AES_CBC (12), with a key of 128, 192 or 256 bits (RFC 3602).
    AesCbc { key_bits: u16 },
    /// ENCR_AES_GCM_16 (20), with a key of 128, 192 or 256 bits (RFC 5282).
    AesGcm16 { key_bits: u16 },
    /// ENCR_CHACHA20_POLY1305 (28) (RFC 7634).
    ChaCha20Poly1305,
}

/// Pseudo-random functions (transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (2).
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7).
    HmacSha512,
}

/// Integrity algorithms (transform type 3), for the SK payload of non-AEAD suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    /// AUTH_HMAC_SHA1_96 (2).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14).
    HmacSha512_256,
}

/// Diffie-Hellman groups (transform type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 14: 2048-bit MODP (RFC 3526).
    Modp2048,
    /// 15: 3072-bit MODP.
    Modp3072,
    /// 16: 4096-bit MODP.
    Modp4096,
    /// 19: 256-bit random ECP (RFC 5903).
    Ecp256,
    /// 20: 384-bit random ECP.
    Ecp384,
    /// 21: 521-bit random ECP.
    Ecp521,
    /// 31: Curve25519 (RFC 8031).
    Curve25519,
}

impl EncrAlg {
    /// ENCR_AES_CBC.
    pub const ID_AES_CBC: u16 = 12;
    /// ENCR_AES_GCM_16.
    pub const ID_AES_GCM_16: u16 = 20;
    /// ENCR_CHACHA20_POLY1305.
    pub const ID_CHACHA20_POLY1305: u16 = 28;

    /// The IANA transform ID (RFC 7296 §3.3.2, type 1).
    pub const fn id(self) -> u16 {
        match self {
            EncrAlg::AesCbc { .. } => Self::ID_AES_CBC,
            EncrAlg::AesGcm16 { .. } => Self::ID_AES_GCM_16,
            EncrAlg::ChaCha20Poly1305 => Self::ID_CHACHA20_POLY1305,
        }
    }

    /// The algorithm for a transform ID and its Key Length attribute in bits
    /// ([RFC 7296 §3.3.5](https://www.rfc-editor.org/rfc/rfc7296#section-3.3.5)). AES needs the
    /// attribute, with 128, 192 or 256; ChaCha20-Poly1305 has a fixed key and must come without
    /// one ([RFC 7634 §2](https://www.rfc-editor.org/rfc/rfc7634#section-2)). Anything else is
    /// `None`: not a transform this crate knows.
    pub const fn from_id(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        match (id, key_bits) {
            (Self::ID_AES_CBC, Some(b @ (128 | 192 | 256))) => Some(EncrAlg::AesCbc { key_bits: b }),
            (Self::ID_AES_GCM_16, Some(b @ (128 | 192 | 256))) => Some(EncrAlg::AesGcm16 { key_bits: b }),
            (Self::ID_CHACHA20_POLY1305, None) => Some(EncrAlg::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// True for the combined-mode (AEAD) ciphers, which need no integrity transform
    /// ([RFC 5282 §8](https://www.rfc-editor.org/rfc/rfc5282#section-8)).
    pub const fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305)
    }

    /// Bytes of cipher key, without the salt.
    pub const fn key_len(self) -> usize {
        match self {
            EncrAlg::AesCbc { key_bits } | EncrAlg::AesGcm16 { key_bits } => key_bits as usize / 8,
            EncrAlg::ChaCha20Poly1305 => 32,
        }
    }

    /// Bytes of salt taken from the keying material after the key: 4 for the AEADs
    /// ([RFC 5282 §7.1](https://www.rfc-editor.org/rfc/rfc5282#section-7.1),
    /// [RFC 7634 §2](https://www.rfc-editor.org/rfc/rfc7634#section-2)), 0 for CBC.
    pub const fn salt_len(self) -> usize {
        if self.is_aead() {
            4
        } else {
            0
        }
    }

    /// Bytes of keying material an SK_e key takes: the key and, for AEADs, the salt. This is
    /// also the length of the `key` argument of [`CryptoProvider::encrypt`].
    pub const fn keymat_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Bytes of IV carried in each SK payload: 16 for AES-CBC
    /// ([RFC 3602 §3](https://www.rfc-editor.org/rfc/rfc3602#section-3)), 8 for the AEADs.
    pub const fn iv_len(self) -> usize {
        match self {
            EncrAlg::AesCbc { .. } => 16,
            EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305 => 8,
        }
    }

    /// The block size the SK payload's plaintext is padded to: AES's 16 bytes for CBC; 1 for
    /// the AEADs, which are counter modes and take any length.
    pub const fn block_len(self) -> usize {
        match self {
            EncrAlg::AesCbc { .. } => 16,
            EncrAlg::AesGcm16 { .. } | EncrAlg::ChaCha20Poly1305 => 1,
        }
    }

    /// Bytes of ICV the cipher itself appends: 16 for the AEADs, 0 for CBC (whose ICV comes
    /// from the integrity algorithm).
    pub const fn icv_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            0
        }
    }
}

impl PrfAlg {
    /// The IANA transform ID (RFC 7296 §3.3.2, type 2).
    pub const fn id(self) -> u16 {
        match self {
            PrfAlg::HmacSha1 => 2,
            PrfAlg::HmacSha256 => 5,
            PrfAlg::HmacSha384 => 6,
            PrfAlg::HmacSha512 => 7,
        }
    }

    /// The PRF for a transform ID, if it is one this crate knows.
    pub const fn from_id(id: u16) -> Option<PrfAlg> {
        match id {
            2 => Some(PrfAlg::HmacSha1),
            5 => Some(PrfAlg::HmacSha256),
            6 => Some(PrfAlg::HmacSha384),
            7 => Some(PrfAlg::HmacSha512),
            _ => None,
        }
    }

    /// Bytes of output of one invocation.
    pub const fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha1 => 20,
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }

    /// The preferred key length, which SK_d, SK_pi and SK_pr take
    /// ([RFC 7296 §2.13](https://www.rfc-editor.org/rfc/rfc7296#section-2.13)): for HMACs, the
    /// output length ([RFC 4868 §2.2](https://www.rfc-editor.org/rfc/rfc4868#section-2.2)).
    pub const fn key_len(self) -> usize {
        self.output_len()
    }
}

impl IntegAlg {
    /// The IANA transform ID (RFC 7296 §3.3.2, type 3).
    pub const fn id(self) -> u16 {
        match self {
            IntegAlg::HmacSha1_96 => 2,
            IntegAlg::HmacSha256_128 => 12,
            IntegAlg::HmacSha384_192 => 13,
            IntegAlg::HmacSha512_256 => 14,
        }
    }

    /// The integrity algorithm for a transform ID, if it is one this crate knows.
    pub const fn from_id(id: u16) -> Option<IntegAlg> {
        match id {
            2 => Some(IntegAlg::HmacSha1_96),
            12 => Some(IntegAlg::HmacSha256_128),
            13 => Some(IntegAlg::HmacSha384_192),
            14 => Some(IntegAlg::HmacSha512_256),
            _ => None,
        }
    }

    /// Bytes of key: the hash's output length
    /// ([RFC 2404 §3](https://www.rfc-editor.org/rfc/rfc2404#section-3),
    /// [RFC 4868 §2.1.1](https://www.rfc-editor.org/rfc/rfc4868#section-2.1.1)).
    pub const fn key_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 20,
            IntegAlg::HmacSha256_128 => 32,
            IntegAlg::HmacSha384_192 => 48,
            IntegAlg::HmacSha512_256 => 64,
        }
    }

    /// Bytes of ICV: the HMAC truncated to half its length, 96 bits for SHA-1.
    pub const fn icv_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 12,
            IntegAlg::HmacSha256_128 => 16,
            IntegAlg::HmacSha384_192 => 24,
            IntegAlg::HmacSha512_256 => 32,
        }
    }
}

impl DhGroup {
    /// Every group this crate implements.
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    /// The IANA transform ID (RFC 7296 §3.3.2, type 4), also the KE payload's DH Group Num.
    pub const fn id(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
        }
    }

    /// The group for a transform ID, if it is one this crate knows.
    pub const fn from_id(id: u16) -> Option<DhGroup> {
        match id {
            14 => Some(DhGroup::Modp2048),
            15 => Some(DhGroup::Modp3072),
            16 => Some(DhGroup::Modp4096),
            19 => Some(DhGroup::Ecp256),
            20 => Some(DhGroup::Ecp384),
            21 => Some(DhGroup::Ecp521),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    /// Bytes of public value in a KE payload: the prime's length for MODP
    /// ([RFC 7296 §3.4](https://www.rfc-editor.org/rfc/rfc7296#section-3.4)), x ‖ y for ECP
    /// ([RFC 5903 §7](https://www.rfc-editor.org/rfc/rfc5903#section-7)), 32 for Curve25519
    /// ([RFC 8031 §2](https://www.rfc-editor.org/rfc/rfc8031#section-2)).
    pub const fn public_len(self) -> usize {
        match self {
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => 2 * self.shared_len(),
            _ => self.shared_len(),
        }
    }

    /// Bytes of the shared secret g^ir: the prime's length for MODP, the field size for ECP
    /// (the x coordinate, [RFC 5903 §7](https://www.rfc-editor.org/rfc/rfc5903#section-7)), 32
    /// for Curve25519.
    pub const fn shared_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Ecp256 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Ecp521 => 66,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// An AEAD tag or an integrity check did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// The peer's public value is invalid (RFC 6989: out of range, not on the curve, or a
    /// low-order point giving an all-zero secret).
    #[error("invalid {group:?} public value: {why}")]
    BadPublicValue { group: DhGroup, why: &'static str },
    /// A key, IV or input of the wrong length.
    #[error("{what}: {len} bytes, expected {expected}")]
    Length { what: &'static str, len: usize, expected: usize },
    /// The provider does not implement this algorithm.
    #[error("{0} is not available from this provider")]
    Unsupported(&'static str),
    /// The underlying library failed.
    #[error("crypto library: {0}")]
    Library(String),
}

/// A Diffie-Hellman private value with its public one.
pub trait DhSecret: Send + fmt::Debug {
    fn group(&self) -> DhGroup;
    /// The public value as the KE payload carries it (RFC 7296 §3.4, RFC 5903 §7 —
    /// x ‖ y without a point-format byte —, RFC 8031 §2).
    fn public(&self) -> &[u8];
    /// The shared secret g^ir as the key derivation takes it (MODP: padded to the prime's
    /// length; ECP: the x coordinate; Curve25519: the 32-byte output), after checking the
    /// peer's public value (RFC 6989).
    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// The private value as [`CryptoProvider::dh_restore`] takes it, for the checkpoint of an
    /// exchange in flight (a restarted esprit-ike completes it): the MODP exponent or the ECP
    /// scalar (big-endian), or the X25519 scalar. `None`: this provider cannot export it.
    fn private(&self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
}

/// A source of the primitives.
pub trait CryptoProvider: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;
    /// Fills `out` with random bytes from a CSPRNG.
    fn fill_random(&self, out: &mut [u8]);
    /// prf(key, data[0] ‖ data[1] ‖ …), full output length.
    fn prf(&self, alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8>;
    /// The truncated ICV of data[0] ‖ data[1] ‖ ….
    fn integ(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8>;
    /// Encrypts. AEAD: returns ciphertext ‖ tag over `aad`; CBC: `plaintext` is a multiple
    /// of the block size (the caller pads) and `aad` is ignored. `key` includes the salt for
    /// AEADs (RFC 5282 §7.1, RFC 7634 §2).
    fn encrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
    /// Decrypts (and for AEADs verifies the tag, giving [`CryptoError::Integrity`]).
    fn decrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// A fresh private value for `group`.
    fn dh_generate(&self, group: DhGroup) -> Result<Box<dyn DhSecret>, CryptoError>;
    /// A private value [`DhSecret::private`] gave, back as a secret (a checkpointed exchange
    /// resumed). Never for a new exchange: a private value must be fresh.
    fn dh_restore(&self, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
        let _ = private;
        Err(CryptoError::Library(format!("{} cannot restore a {group:?} private value", self.name())))
    }
}

/// `base`'s primitives with randomness (SPIs, nonces, IVs, cookies) from `random`: for tests
/// and fuzzing, where a state machine must replay exactly. Diffie-Hellman private values
/// stay `base`'s: they change key material, never what the state machine decides. Never for
/// production use.
pub struct WithRandom {
    pub base: &'static dyn CryptoProvider,
    pub random: fn(&mut [u8]),
    pub name: &'static str,
}

impl fmt::Debug for WithRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl CryptoProvider for WithRandom {
    fn name(&self) -> &'static str {
        self.name
    }
    fn fill_random(&self, out: &mut [u8]) {
        (self.random)(out)
    }
    fn prf(&self, alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        self.base.prf(alg, key, data)
    }
    fn integ(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        self.base.integ(alg, key, data)
    }
    fn encrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.base.encrypt(alg, key, iv, aad, plaintext)
    }
    fn decrypt(
        &self,
        alg: EncrAlg,
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.base.decrypt(alg, key, iv, aad, ciphertext)
    }
    fn dh_generate(&self, group: DhGroup) -> Result<Box<dyn DhSecret>, CryptoError> {
        self.base.dh_generate(group)
    }
    fn dh_restore(&self, group: DhGroup, private: &[u8]) -> Result<Box<dyn DhSecret>, CryptoError> {
        self.base.dh_restore(group, private)
    }
}

/// Every provider compiled in, the default first. Tests run against each of them.
pub fn providers() -> Vec<&'static dyn CryptoProvider> {
    vec![&openssl::PROVIDER]
}

/// The provider to use unless configured otherwise: OpenSSL.
pub fn default_provider() -> &'static dyn CryptoProvider {
    &openssl::PROVIDER
}
