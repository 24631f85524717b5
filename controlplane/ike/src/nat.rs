//! NAT detection (RFC 7296 §2.23): each side sends SHA-1(SPIi | SPIr | IP | port) of the
//! source and destination it uses; a mismatch on receipt means a NAT rewrote that address.

use core::net::{IpAddr, SocketAddr};

use crate::message::{Notify, NotifyType, Payload, ProtocolId};

/// The NAT_DETECTION_*_IP notification data for `addr`.
pub fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut h = openssl::sha::Sha1::new();
    h.update(&spi_i.to_be_bytes());
    h.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(&a.octets()),
        IpAddr::V6(a) => h.update(&a.octets()),
    }
    h.update(&addr.port().to_be_bytes());
    h.finish()
}

/// Our two NAT detection notifies for a message from `local` to `remote`.
pub fn notifies(spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> [Payload; 2] {
    let n = |kind, data: [u8; 20]| {
        Payload::Notify(Notify { protocol: ProtocolId(0), spi: vec![], kind, data: data.to_vec() })
    };
    [
        n(NotifyType::NAT_DETECTION_SOURCE_IP, hash(spi_i, spi_r, local)),
        n(NotifyType::NAT_DETECTION_DESTINATION_IP, hash(spi_i, spi_r, remote)),
    ]
}

/// What the peer's NAT detection notifies say, for a message it sent from `remote` to
/// `local` (as we received it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detected {
    /// The peer supports NAT traversal (it sent the notifies).
    pub supported: bool,
    /// Our address was rewritten on the way: we are behind a NAT.
    pub local_behind: bool,
    /// The peer's address was rewritten: it is behind a NAT.
    pub remote_behind: bool,
}

/// Checks the peer's NAT detection notifies in `payloads`.
pub fn detect(payloads: &[Payload], spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> Detected {
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for p in payloads {
        if let Payload::Notify(n) = p {
            if n.kind == NotifyType::NAT_DETECTION_SOURCE_IP {
                src.push(n.data.as_slice());
            } else if n.kind == NotifyType::NAT_DETECTION_DESTINATION_IP {
                dst.push(n.data.as_slice());
            }
        }
    }
    if src.is_empty() || dst.is_empty() {
        return Detected::default();
    }
    let their_src = hash(spi_i, spi_r, remote);
    let our_dst = hash(spi_i, spi_r, local);
    Detected {
        supported: true,
        // One of possibly several source notifies (a multihomed peer) must match.
        remote_behind: !src.iter().any(|h| *h == their_src),
        local_behind: !dst.iter().any(|h| *h == our_dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_who_is_behind_a_nat() {
        let client: SocketAddr = "192.168.1.10:500".parse().unwrap();
        let mapped: SocketAddr = "203.0.113.2:1024".parse().unwrap();
        let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
        // The client hashes what it knows: its private address, the gateway's.
        let sent = notifies(7, 0, client, gw);
        let d = detect(&sent, 7, 0, gw, mapped);
        assert_eq!(d, Detected { supported: true, local_behind: false, remote_behind: true });
        // No NAT on the way.
        let sent = notifies(7, 0, mapped, gw);
        assert_eq!(
            detect(&sent, 7, 0, gw, mapped),
            Detected { supported: true, local_behind: false, remote_behind: false }
        );
        assert_eq!(detect(&[], 7, 0, gw, mapped), Detected::default());
    }

    #[test]
    fn hash_is_sha1_of_the_rfc_fields() {
        // SHA-1(SPIi | SPIr | IPv4 | port), computed independently with Python's hashlib:
        // hashlib.sha1(bytes.fromhex('0102030405060708' '0000000000000000' 'c6336401' '01f4')).hexdigest()
        let h = hash(0x0102030405060708, 0, "198.51.100.1:500".parse().unwrap());
        assert_eq!(h.to_vec(), hex_lit("3a02de24d181fd88168057d5ab63bd418473444a"));
    }

    fn hex_lit(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
