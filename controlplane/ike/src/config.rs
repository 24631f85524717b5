//! What the state machine is configured with: connections (who may connect, how they
//! authenticate, what they get), pools and protocol limits. The daemon builds these from
//! its configuration file; tests build them directly.

use core::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::identity::IdentityPattern;
use crate::message::Identification;
use crate::pki::{Certificate, PrivateKey, TrustStore};
use crate::proposal::{EspProposal, IkeProposal};
use crate::ts::TrafficSelector;

/// How we prove who we are.
#[derive(Clone)]
pub enum LocalAuth {
    /// A pre-shared key.
    Psk(Arc<Zeroizing<Vec<u8>>>),
    /// A private key and our certificate chain (end entity first).
    Pubkey { key: Arc<PrivateKey>, certs: Vec<Certificate> },
}

/// How the peer must prove who it is.
#[derive(Clone)]
pub enum RemoteAuth {
    Psk(Arc<Zeroizing<Vec<u8>>>),
    /// A certificate chaining to one of these CAs, for the identity it claims.
    Pubkey(Arc<TrustStore>),
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalAuth::Psk(_) => f.write_str("Psk(<redacted>)"),
            LocalAuth::Pubkey { certs, .. } => write!(f, "Pubkey({} certificates)", certs.len()),
        }
    }
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteAuth::Psk(_) => f.write_str("Psk(<redacted>)"),
            RemoteAuth::Pubkey(_) => f.write_str("Pubkey"),
        }
    }
}

/// Rekeying and expiry of one kind of SA (strongSwan's `rekey_time`, `life_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Start rekeying after this long (0: never).
    pub rekey: Duration,
    /// Close the SA after this long if rekeying did not succeed.
    pub hard: Duration,
    /// Rekey up to this much earlier, at random, so that thousands of SAs made at once do
    /// not all rekey in the same second.
    pub jitter: Duration,
}

impl Lifetimes {
    /// IKE SAs: rekeyed after a day (seed 004: "IKE SA one day").
    pub const IKE_DEFAULT: Lifetimes = Lifetimes {
        rekey: Duration::from_secs(24 * 3600),
        hard: Duration::from_secs(24 * 3600 + 2400),
        jitter: Duration::from_secs(1800),
    };
    /// CHILD SAs: rekeyed after an hour (seed 004: "CHILD SA one hour").
    pub const CHILD_DEFAULT: Lifetimes = Lifetimes {
        rekey: Duration::from_secs(3600),
        hard: Duration::from_secs(3960),
        jitter: Duration::from_secs(360),
    };
}

/// One connection definition: the peers it admits and what they get.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    /// Our addresses this connection answers on (empty: any).
    pub local_addrs: Vec<IpAddr>,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    pub local_id: Identification,
    pub local_auth: LocalAuth,
    /// Which identities the peer may claim.
    pub remote_id: IdentityPattern,
    pub remote_auth: RemoteAuth,
    /// Our side of the CHILD SAs' traffic selectors (the protected networks).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side when it does not get a virtual IP (empty: whatever it proposes).
    pub remote_ts: Vec<TrafficSelector>,
    /// Indexes into [`IkeConfig::pools`] to take virtual IPs from.
    pub pools: Vec<usize>,
    /// DNS servers handed out with the virtual IP.
    pub dns: Vec<IpAddr>,
    pub ike_lifetime: Lifetimes,
    pub child_lifetime: Lifetimes,
    /// Check the peer's liveness after this long without a packet from it (0: never).
    pub dpd_delay: Duration,
    /// RFC 7383 fragmentation: offered and used when the peer supports it.
    pub fragmentation: bool,
    /// The anti-replay window of inbound CHILD SAs, in packets.
    pub replay_window: u32,
}

impl Connection {
    /// A connection authenticated by a pre-shared key `psk` both ways, with nothing else
    /// set: any local address, no traffic selectors, pools or DNS servers, default
    /// lifetimes, no dead peer detection, fragmentation on, a 1024-packet replay window.
    /// Callers set the rest with struct update syntax.
    pub fn psk(
        name: &str,
        local_id: Identification,
        remote_id: IdentityPattern,
        psk: Arc<Zeroizing<Vec<u8>>>,
        ike_proposals: Vec<IkeProposal>,
        esp_proposals: Vec<EspProposal>,
    ) -> Connection {
        Connection {
            name: name.to_string(),
            local_addrs: vec![],
            ike_proposals,
            esp_proposals,
            local_id,
            local_auth: LocalAuth::Psk(psk.clone()),
            remote_id,
            remote_auth: RemoteAuth::Psk(psk),
            local_ts: vec![],
            remote_ts: vec![],
            pools: vec![],
            dns: vec![],
            ike_lifetime: Lifetimes::IKE_DEFAULT,
            child_lifetime: Lifetimes::CHILD_DEFAULT,
            dpd_delay: Duration::ZERO,
            fragmentation: true,
            replay_window: 1024,
        }
    }
}

/// Retransmission of our requests (RFC 7296 §2.1), strongSwan's defaults: 4 s, then ×1.8 per
/// try, 5 retransmissions, giving up 165 s after the first send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retransmit {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit { timeout: Duration::from_secs(4), base: 1.8, tries: 5 }
    }
}

impl Retransmit {
    /// The wait after send number `n` (0 = the first send); after the last retransmission,
    /// the wait before giving up.
    pub fn wait(&self, n: u32) -> Duration {
        self.timeout.mul_f64(self.base.powi(n as i32))
    }
}

/// Everything the state machine is configured with.
#[derive(Debug, Clone)]
pub struct IkeConfig {
    pub connections: Vec<Connection>,
    /// Address pools: (name, spec) — `10.9.0.0/24` or `10.9.0.10-10.9.0.99`.
    pub pools: Vec<(String, String)>,
    pub retransmit: Retransmit,
    /// Half-open IKE SAs at which IKE_SA_INIT requests must carry a cookie (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// The most IKE SAs at once (half-open included); beyond, new ones are refused.
    pub max_ike_sas: usize,
    /// Half-open IKE SAs are forgotten after this long.
    pub half_open_timeout: Duration,
    /// Failed authentications from one address within `auth_failure_window` after which
    /// that address's IKE_SA_INIT requests are ignored for the rest of the window (0: never).
    /// Several clients may share an address behind a NAT: keep it well above one.
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    /// The largest IKE datagram we send before fragmenting (RFC 7383), IP and UDP headers
    /// included (strongSwan's `fragment_size`: 1280).
    pub fragment_size: usize,
}

impl Default for IkeConfig {
    fn default() -> Self {
        IkeConfig {
            connections: Vec::new(),
            pools: Vec::new(),
            retransmit: Retransmit::default(),
            cookie_threshold: 1000,
            max_ike_sas: 100_000,
            half_open_timeout: Duration::from_secs(30),
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            fragment_size: 1280,
        }
    }
}
