//! ESP transforms, named as strongSwan names ESP proposals, and the sizes that decide an SA's
//! overhead.

use core::fmt;

/// A transform the engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// AES-128-GCM with a 16-byte ICV ([RFC 4106](https://www.rfc-editor.org/rfc/rfc4106)).
    Aes128Gcm16,
    /// AES-256-GCM with a 16-byte ICV (RFC 4106).
    Aes256Gcm16,
    /// AES-128-CBC ([RFC 3602](https://www.rfc-editor.org/rfc/rfc3602)) with HMAC-SHA1-96
    /// ([RFC 2404](https://www.rfc-editor.org/rfc/rfc2404)).
    Aes128Sha1,
    /// AES-256-CBC with HMAC-SHA1-96.
    Aes256Sha1,
    /// AES-128-CBC with HMAC-SHA-256-128 ([RFC 4868](https://www.rfc-editor.org/rfc/rfc4868)).
    Aes128Sha256,
    /// AES-256-CBC with HMAC-SHA-256-128.
    Aes256Sha256,
    /// ChaCha20-Poly1305 ([RFC 7634](https://www.rfc-editor.org/rfc/rfc7634)).
    Chacha20Poly1305,
}

/// Where and how big the IV, the padding alignment and the ICV of an ESP packet are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspLayout {
    /// Bytes of explicit IV after the ESP header.
    pub iv_len: usize,
    /// Bytes of integrity check value at the end.
    pub icv_len: usize,
    /// The payload, padding and 2-byte trailer are padded to a multiple of this
    /// (the cipher block size, and at least 4: RFC 4303 §2.4).
    pub align: usize,
}

impl EspLayout {
    /// Bytes of padding for `payload_len` bytes of payload.
    #[inline]
    pub const fn pad_len(&self, payload_len: usize) -> usize {
        let t = payload_len + esprit_wire::esp::TRAILER_LEN;
        t.next_multiple_of(self.align) - t
    }
    /// Length of the ESP packet (header to ICV) carrying `payload_len` bytes.
    #[inline]
    pub const fn esp_len(&self, payload_len: usize) -> usize {
        esprit_wire::esp::HEADER_LEN
            + self.iv_len
            + (payload_len + esprit_wire::esp::TRAILER_LEN).next_multiple_of(self.align)
            + self.icv_len
    }
}

/// Why a proposal name was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    #[error("unknown ESP proposal '{name}'; valid: {}", Transform::VALID_NAMES)]
    Unknown { name: String },
    #[error("ESP proposal '{name}' is deprecated by RFC 8221 and refused; use aes128gcm16 or aes128-sha256")]
    Deprecated { name: String },
}

impl Transform {
    /// Every transform, in order of preference.
    pub const ALL: [Transform; 7] = [
        Transform::Aes128Gcm16,
        Transform::Aes256Gcm16,
        Transform::Chacha20Poly1305,
        Transform::Aes128Sha256,
        Transform::Aes256Sha256,
        Transform::Aes128Sha1,
        Transform::Aes256Sha1,
    ];

    const VALID_NAMES: &'static str =
        "aes128gcm16, aes256gcm16, aes128-sha1, aes256-sha1, aes128-sha256, aes256-sha256, chacha20poly1305";

    /// The strongSwan name of the ESP proposal.
    pub const fn name(self) -> &'static str {
        match self {
            Transform::Aes128Gcm16 => "aes128gcm16",
            Transform::Aes256Gcm16 => "aes256gcm16",
            Transform::Aes128Sha1 => "aes128-sha1",
            Transform::Aes256Sha1 => "aes256-sha1",
            Transform::Aes128Sha256 => "aes128-sha256",
            Transform::Aes256Sha256 => "aes256-sha256",
            Transform::Chacha20Poly1305 => "chacha20poly1305",
        }
    }

    /// Parses a strongSwan ESP proposal name (and the common aliases strongSwan accepts).
    pub fn from_name(name: &str) -> Result<Transform, ProposalError> {
        let n = name.trim().to_ascii_lowercase();
        Ok(match n.as_str() {
            "aes128gcm16" | "aes128gcm128" => Transform::Aes128Gcm16,
            "aes256gcm16" | "aes256gcm128" => Transform::Aes256Gcm16,
            "aes128-sha1" | "aes128-sha" => Transform::Aes128Sha1,
            "aes256-sha1" | "aes256-sha" => Transform::Aes256Sha1,
            "aes128-sha256" | "aes128-sha2_256" => Transform::Aes128Sha256,
            "aes256-sha256" | "aes256-sha2_256" => Transform::Aes256Sha256,
            "chacha20poly1305" => Transform::Chacha20Poly1305,
            _ if LegacyTransform::from_name(&n).is_some() => {
                return Err(ProposalError::Deprecated { name: name.to_string() })
            }
            _ => return Err(ProposalError::Unknown { name: name.to_string() }),
        })
    }

    /// The IKEv2 transform IDs (IANA "Transform Type 1" and "Type 3" registries, RFC 7296
    /// §3.3.2): ENCR id, key length in bits as the Key Length attribute carries it (0 where
    /// the cipher has none), INTEG id (0 = none, for AEADs).
    pub const fn ikev2_ids(self) -> (u16, u16, u16) {
        const AES_CBC: u16 = 12;
        const AES_GCM_16: u16 = 20;
        const CHACHA20_POLY1305: u16 = 28;
        const NONE: u16 = 0;
        const HMAC_SHA1_96: u16 = 2;
        const HMAC_SHA2_256_128: u16 = 12;
        match self {
            Transform::Aes128Gcm16 => (AES_GCM_16, 128, NONE),
            Transform::Aes256Gcm16 => (AES_GCM_16, 256, NONE),
            Transform::Chacha20Poly1305 => (CHACHA20_POLY1305, 0, NONE),
            Transform::Aes128Sha1 => (AES_CBC, 128, HMAC_SHA1_96),
            Transform::Aes256Sha1 => (AES_CBC, 256, HMAC_SHA1_96),
            Transform::Aes128Sha256 => (AES_CBC, 128, HMAC_SHA2_256_128),
            Transform::Aes256Sha256 => (AES_CBC, 256, HMAC_SHA2_256_128),
        }
    }

    /// The transform with these IKEv2 transform IDs, if the engine implements it.
    pub fn from_ikev2_ids(encr: u16, key_bits: u16, integ: u16) -> Option<Transform> {
        Transform::ALL.into_iter().find(|t| t.ikev2_ids() == (encr, key_bits, integ))
    }

    /// True for combined-mode (AEAD) transforms.
    pub const fn is_aead(self) -> bool {
        matches!(self, Transform::Aes128Gcm16 | Transform::Aes256Gcm16 | Transform::Chacha20Poly1305)
    }

    /// Bytes of encryption key material; for AEADs this includes the 4-byte salt that
    /// RFC 4106 §8.1 and RFC 7634 §2 take from the end of KEYMAT.
    pub const fn enc_key_len(self) -> usize {
        match self {
            Transform::Aes128Gcm16 => 16 + 4,
            Transform::Aes256Gcm16 => 32 + 4,
            Transform::Chacha20Poly1305 => 32 + 4,
            Transform::Aes128Sha1 | Transform::Aes128Sha256 => 16,
            Transform::Aes256Sha1 | Transform::Aes256Sha256 => 32,
        }
    }

    /// Bytes of integrity key (0 for AEADs).
    pub const fn int_key_len(self) -> usize {
        match self {
            Transform::Aes128Sha1 | Transform::Aes256Sha1 => 20,
            Transform::Aes128Sha256 | Transform::Aes256Sha256 => 32,
            _ => 0,
        }
    }

    /// The packet layout of this transform.
    pub const fn layout(self) -> EspLayout {
        match self {
            Transform::Aes128Gcm16 | Transform::Aes256Gcm16 | Transform::Chacha20Poly1305 => {
                EspLayout { iv_len: 8, icv_len: 16, align: 4 }
            }
            Transform::Aes128Sha1 | Transform::Aes256Sha1 => EspLayout { iv_len: 16, icv_len: 12, align: 16 },
            Transform::Aes128Sha256 | Transform::Aes256Sha256 => EspLayout { iv_len: 16, icv_len: 16, align: 16 },
        }
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Transform {
    type Err = ProposalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transform::from_name(s)
    }
}

/// Transforms the engine refuses (RFC 8221 §5: 3DES SHOULD NOT, MD5 MUST NOT) but whose sizes
/// the MTU calculator knows, so that figures for legacy peers can be worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyTransform {
    /// 3DES-CBC with HMAC-MD5-96.
    TripleDesMd5,
    /// 3DES-CBC with HMAC-SHA1-96.
    TripleDesSha1,
}

impl LegacyTransform {
    pub fn from_name(name: &str) -> Option<LegacyTransform> {
        match name.trim().to_ascii_lowercase().as_str() {
            "3des-md5" => Some(LegacyTransform::TripleDesMd5),
            "3des-sha1" | "3des-sha" => Some(LegacyTransform::TripleDesSha1),
            _ => None,
        }
    }
    /// 8-byte IV and block (3DES), 12-byte truncated ICV (HMAC-MD5-96 / HMAC-SHA1-96).
    pub const fn layout(self) -> EspLayout {
        EspLayout { iv_len: 8, icv_len: 12, align: 8 }
    }
}

/// The layout for a proposal name, including the legacy ones the engine refuses.
pub fn layout_for_name(name: &str) -> Result<EspLayout, ProposalError> {
    if let Some(l) = LegacyTransform::from_name(name) {
        return Ok(l.layout());
    }
    Transform::from_name(name).map(Transform::layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Transform::ALL {
            assert_eq!(Transform::from_name(t.name()).unwrap(), t);
        }
        assert_eq!(Transform::from_name(" AES128GCM128 ").unwrap(), Transform::Aes128Gcm16);
    }

    #[test]
    fn legacy_refused_but_sized() {
        assert!(matches!(Transform::from_name("3des-md5"), Err(ProposalError::Deprecated { .. })));
        assert_eq!(layout_for_name("3des-md5").unwrap(), EspLayout { iv_len: 8, icv_len: 12, align: 8 });
        let e = Transform::from_name("aes-ctr").unwrap_err().to_string();
        assert!(e.contains("aes128gcm16"), "{e}");
    }

    #[test]
    fn padding() {
        let gcm = Transform::Aes128Gcm16.layout();
        assert_eq!(gcm.pad_len(100), 2); // 100 + 2 + 2 = 104
        assert_eq!(gcm.pad_len(102), 0);
        assert_eq!(gcm.esp_len(100), 8 + 8 + 104 + 16);
        let cbc = Transform::Aes128Sha1.layout();
        assert_eq!(cbc.pad_len(100), 10); // 100 + 10 + 2 = 112
        assert_eq!(cbc.esp_len(100), 8 + 16 + 112 + 12);
    }
}
