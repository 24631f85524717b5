//! Stateless cookies (RFC 7296 §2.6): when half-open IKE SAs pile up, an IKE_SA_INIT request
//! is only processed if it echoes a cookie that proves the initiator receives at its source
//! address. Cookie = version ‖ SHA-256(Ni ‖ IPi ‖ SPIi ‖ secret); the secret changes now
//! and then, and the previous one stays valid for a while.

use core::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::crypto::CryptoProvider;

/// How long a secret is used before it is replaced.
pub const ROTATE: Duration = Duration::from_secs(120);

/// Cookie secrets.
pub struct CookieJar {
    version: u32,
    secret: [u8; 32],
    previous: Option<[u8; 32]>,
    rotated: Instant,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar").field("version", &self.version).finish_non_exhaustive()
    }
}

fn compute(version: u32, secret: &[u8; 32], ni: &[u8], from: SocketAddr, spi_i: u64) -> Vec<u8> {
    let mut h = openssl::sha::Sha256::new();
    h.update(ni);
    match from.ip() {
        IpAddr::V4(a) => h.update(&a.octets()),
        IpAddr::V6(a) => h.update(&a.octets()),
    }
    h.update(&spi_i.to_be_bytes());
    h.update(secret);
    let mut c = version.to_be_bytes().to_vec();
    c.extend_from_slice(&h.finish());
    c
}

impl CookieJar {
    pub fn new(p: &dyn CryptoProvider, now: Instant) -> CookieJar {
        let mut secret = [0u8; 32];
        p.fill_random(&mut secret);
        CookieJar { version: 1, secret, previous: None, rotated: now }
    }

    fn rotate(&mut self, p: &dyn CryptoProvider, now: Instant) {
        if now.duration_since(self.rotated) >= ROTATE {
            self.previous = Some(self.secret);
            p.fill_random(&mut self.secret);
            self.version = self.version.wrapping_add(1);
            self.rotated = now;
        }
    }

    /// The cookie for an initiator.
    pub fn make(&mut self, p: &dyn CryptoProvider, now: Instant, ni: &[u8], from: SocketAddr, spi_i: u64) -> Vec<u8> {
        self.rotate(p, now);
        compute(self.version, &self.secret, ni, from, spi_i)
    }

    /// True if `cookie` is one we handed out (with the current or the previous secret).
    pub fn check(&self, cookie: &[u8], ni: &[u8], from: SocketAddr, spi_i: u64) -> bool {
        if cookie.len() != 4 + 32 {
            return false;
        }
        let version = u32::from_be_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]);
        let secret = if version == self.version {
            &self.secret
        } else if version == self.version.wrapping_sub(1) {
            match &self.previous {
                Some(s) => s,
                None => return false,
            }
        } else {
            return false;
        };
        let want = compute(version, secret, ni, from, spi_i);
        want.iter().zip(cookie).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    }
}
