//! The cryptography IKEv2 needs, behind a provider: random bytes, PRFs, integrity
//! algorithms, the SK payload's ciphers, and Diffie-Hellman. Algorithms are named by their
//! IANA IKEv2 transform IDs (RFC 7296 §3.3.2).

use core::fmt;

use zeroize::Zeroizing;

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
}
