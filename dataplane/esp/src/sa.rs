//! Security associations and their burst processing in tunnel mode
//! ([RFC 4303 §3](https://www.rfc-editor.org/rfc/rfc4303#section-3), with UDP encapsulation per
//! [RFC 3948 §2.1](https://www.rfc-editor.org/rfc/rfc3948#section-2.1)).
//!
//! An SA is split as VPP splits it: the hot state used for every packet (cipher, sequence
//! counter or replay window, peer endpoint, counters) sits in a cache-line-aligned struct; the
//! cold configuration it was made from stays in [`SaParams`].
//!
//! Both directions process a whole burst at a time, whether its packets belong to one SA or
//! to many ([`decap_mixed`], [`encap_mixed`]): prepare every packet, hand all of the burst's
//! crypto to the providers at once ([`open_mixed`], [`seal_mixed`] — with many SAs a burst
//! holds a packet or two per SA, and crypto a packet at a time is what made a gateway with
//! many clients slow), then finish. Counters and lifetimes are updated once per run of
//! consecutive packets of one SA. Buffers grow and shrink in place ([`PacketBuf`]); nothing
//! is copied or allocated.

use core::net::IpAddr;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

use arrayvec::ArrayVec;
use esprit_wire::esp::Trailer;
use esprit_wire::{checksum, ip_proto};

use crate::buf::PacketBuf;
use crate::crypto::{open_mixed, seal_mixed, CryptoError, CryptoOp, CryptoProvider, EspCipher, OpStatus, SaKeys};
use crate::drop::DropReason;
use crate::proposal::{EspLayout, Transform};
use crate::replay::{ReplayError, ReplayWindow};
use crate::ts::{inbound_allowed, Flow, TrafficSelector};
use crate::MAX_BURST;

/// An address and UDP port (port 0 for raw ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// UDP encapsulation ports (RFC 3948), normally 4500 on both sides before any NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub local_port: u16,
    pub remote_port: u16,
}

/// How the outer IPv4 DF bit is set ([RFC 4301 §8.1](https://www.rfc-editor.org/rfc/rfc4301#section-8.1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DfMode {
    /// Copy DF from an inner IPv4 packet; set it for an inner IPv6 packet.
    #[default]
    Copy,
    Set,
    Clear,
}

/// SA lifetimes (RFC 4301 §4.4.2.1) and the idle report threshold.
///
/// Volume limits are checked per burst by the SA itself (`u64::MAX`: none), so the last
/// burst before a hard limit may overshoot it by less than one burst per lcore. Time limits
/// count from installation in seconds (0: none); they and the idle threshold are swept by
/// the tables' writer, which [`expire`](OutboundSa::expire)s an SA past its hard time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    /// Seconds after installation to ask for a rekey (0: never).
    pub soft_secs: u32,
    /// Seconds after installation the SA stops passing traffic (0: never).
    pub hard_secs: u32,
    /// Report the SA idle after this many seconds without a packet (0: never).
    pub idle_secs: u32,
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime {
            soft_bytes: u64::MAX,
            hard_bytes: u64::MAX,
            soft_packets: u64::MAX,
            hard_packets: u64::MAX,
            soft_secs: 0,
            hard_secs: 0,
            idle_secs: 0,
        }
    }
}

/// The configuration of one SA (one direction), as keyed by hand or negotiated by IKE.
#[derive(Debug, Clone)]
pub struct SaParams {
    pub spi: u32,
    pub transform: Transform,
    pub keys: SaKeys,
    /// Our tunnel endpoint address.
    pub local: IpAddr,
    /// The peer's tunnel endpoint address (its current NAT mapping, with `encap`).
    pub remote: IpAddr,
    pub encap: Option<UdpEncap>,
    pub esn: bool,
    /// Inbound only: replay window size in packets (0 disables the check).
    pub replay_window: u32,
    /// Our side's selectors (destinations of inbound inner packets).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side (sources of inbound inner packets).
    pub remote_ts: Vec<TrafficSelector>,
    pub df: DfMode,
    pub lifetime: Lifetime,
}

/// Why an SA could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("SPI {0:#x} is reserved (1-255 are reserved by IANA, 0 is not valid on the wire)")]
    ReservedSpi(u32),
    #[error("local {local} and remote {remote} tunnel endpoints are not of the same address family")]
    FamilyMismatch { local: IpAddr, remote: IpAddr },
}

impl SaParams {
    fn validate(&self) -> Result<(), SaError> {
        if esprit_wire::esp::spi_is_reserved(self.spi) {
            return Err(SaError::ReservedSpi(self.spi));
        }
        if self.local.is_ipv4() != self.remote.is_ipv4() {
            return Err(SaError::FamilyMismatch { local: self.local, remote: self.remote });
        }
        Ok(())
    }

    fn peer(&self) -> Endpoint {
        Endpoint { addr: self.remote, port: self.encap.map_or(0, |e| e.remote_port) }
    }
}

/// A peer endpoint that the NAT-mapping update can change while lcores read it: a sequence
/// lock over atomics (one writer; readers retry if they overlap a write).
#[derive(Debug)]
pub struct PeerCell {
    version: AtomicU64,
    hi: AtomicU64,
    lo: AtomicU64,
    /// port | family << 16
    port_family: AtomicU64,
}

impl PeerCell {
    pub fn new(e: Endpoint) -> PeerCell {
        let c = PeerCell {
            version: AtomicU64::new(0),
            hi: AtomicU64::new(0),
            lo: AtomicU64::new(0),
            port_family: AtomicU64::new(0),
        };
        c.store(e);
        c
    }

    /// Replaces the endpoint. Single writer only.
    pub fn store(&self, e: Endpoint) {
        let (bits, fam) = match e.addr {
            IpAddr::V4(a) => (u32::from(a) as u128, 4u64),
            IpAddr::V6(a) => (u128::from(a), 6u64),
        };
        let v = self.version.load(Relaxed);
        self.version.store(v.wrapping_add(1), Relaxed);
        fence(Release);
        self.hi.store((bits >> 64) as u64, Relaxed);
        self.lo.store(bits as u64, Relaxed);
        self.port_family.store(e.port as u64 | fam << 16, Relaxed);
        self.version.store(v.wrapping_add(2), Release);
    }

    #[inline]
    pub fn load(&self) -> Endpoint {
        loop {
            let v1 = self.version.load(Acquire);
            let (hi, lo, pf) = (self.hi.load(Relaxed), self.lo.load(Relaxed), self.port_family.load(Relaxed));
            fence(Acquire);
            if v1 & 1 == 0 && self.version.load(Relaxed) == v1 {
                let bits = (hi as u128) << 64 | lo as u128;
                let addr = if pf >> 16 == 4 { IpAddr::V4((bits as u32).into()) } else { IpAddr::V6(bits.into()) };
                return Endpoint { addr, port: pf as u16 };
            }
            core::hint::spin_loop();
        }
    }
}

/// Per-SA counters, added once per burst.
#[derive(Debug, Default)]
pub struct SaStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub auth_failed: AtomicU64,
    pub replay: AtomicU64,
    /// Every other drop charged to this SA.
    pub other_drops: AtomicU64,
    /// Time (ns, caller's clock) of the last packet.
    pub last_used: AtomicU64,
    /// Set by the tables' writer when the hard time lifetime ran out.
    expired: AtomicBool,
}

impl SaStats {
    /// Adds a burst to the counters and notes in `sum` which volume lifetimes it crossed
    /// (each is crossed by exactly one burst, however many lcores send).
    fn account(&self, l: &Lifetime, sum: &mut BurstSummary, now: u64) {
        if sum.ok == 0 {
            return;
        }
        let p0 = self.packets.fetch_add(sum.ok as u64, Relaxed);
        let b0 = self.bytes.fetch_add(sum.bytes, Relaxed);
        self.last_used.store(now, Relaxed);
        let (p1, b1) = (p0 + sum.ok as u64, b0 + sum.bytes);
        // Below the lowest limits (nearly every burst of an SA's life) nothing was crossed.
        if p1 < l.soft_packets.min(l.hard_packets) && b1 < l.soft_bytes.min(l.hard_bytes) {
            return;
        }
        let crossed = |before: u64, after: u64, limit: u64| before < limit && after >= limit;
        sum.soft_expired = crossed(p0, p1, l.soft_packets) || crossed(b0, b1, l.soft_bytes);
        sum.hard_expired = crossed(p0, p1, l.hard_packets) || crossed(b0, b1, l.hard_bytes);
    }

    /// Stops the SA for good (its hard time lifetime ran out); later bursts are dropped as
    /// `sa_expired`.
    pub fn expire(&self) {
        self.expired.store(true, Relaxed);
    }

    /// True once a hard lifetime is reached.
    fn hard_expired(&self, l: &Lifetime) -> bool {
        self.packets.load(Relaxed) >= l.hard_packets
            || self.bytes.load(Relaxed) >= l.hard_bytes
            || self.expired.load(Relaxed)
    }
}

/// The time side of an SA's lifetimes, kept by the tables' single writer (never by workers).
#[derive(Debug, Default)]
pub struct SaClock {
    /// When the SA was installed (ns, caller's clock).
    installed: AtomicU64,
    /// Which time events were raised already.
    raised: AtomicU8,
    /// The `last_used` value (or installation time) already reported idle.
    idle_reported: AtomicU64,
}

/// What a [`sweep`](OutboundSa::sweep) found: each is reported once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// The soft time lifetime ran out: rekey.
    pub soft_expired: bool,
    /// The hard time lifetime ran out: the SA now passes nothing.
    pub hard_expired: bool,
    /// No packet for this many seconds (at least the SA's idle threshold).
    pub idle_secs: Option<u32>,
}

const SOFT_RAISED: u8 = 1;
const HARD_RAISED: u8 = 2;
const NS: u64 = 1_000_000_000;

impl SaClock {
    /// Starts the SA's time lifetimes at `now`.
    pub fn start(&self, now: u64) {
        self.installed.store(now, Relaxed);
        self.idle_reported.store(0, Relaxed);
        self.raised.store(0, Relaxed);
    }

    /// Seconds since installation.
    pub fn age_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.installed.load(Relaxed)) / NS
    }

    fn sweep(&self, l: &Lifetime, stats: &SaStats, now: u64) -> Sweep {
        let installed = self.installed.load(Relaxed);
        let age = now.saturating_sub(installed);
        let raised = self.raised.load(Relaxed);
        let mut r = Sweep::default();
        let due = |secs: u32| secs != 0 && age >= secs as u64 * NS;
        if due(l.soft_secs) && raised & SOFT_RAISED == 0 {
            r.soft_expired = true;
        }
        if due(l.hard_secs) && raised & HARD_RAISED == 0 {
            r.hard_expired = !stats.hard_expired(l); // a volume limit already stopped it
            stats.expire();
            self.raised.fetch_or(HARD_RAISED, Relaxed);
        }
        if r.soft_expired {
            self.raised.fetch_or(SOFT_RAISED, Relaxed);
        }
        if l.idle_secs != 0 {
            let last = stats.last_used.load(Relaxed).max(installed);
            let idle = now.saturating_sub(last);
            if idle >= l.idle_secs as u64 * NS && self.idle_reported.load(Relaxed) != last {
                self.idle_reported.store(last, Relaxed);
                r.idle_secs = Some((idle / NS).min(u32::MAX as u64) as u32);
            }
        }
        r
    }
}

/// A path MTU learned from ICMP on the outside (RFC 4301 §8.2.1), aged out after a while
/// (RFC 4301 §8.2.2, RFC 1191 §6.3).
#[derive(Debug, Default)]
pub struct PathMtu {
    mtu: AtomicU32,
    expires: AtomicU64,
}

/// Lowest path MTU believed from ICMP: RFC 791's 68 is uselessly small for a tunnel and
/// a known attack lever; 576 keeps a tunnel usable (IPv4). IPv6 links carry 1280.
pub const MIN_PMTU_V4: u32 = 576;
pub const MIN_PMTU_V6: u32 = 1280;

impl PathMtu {
    /// The learned MTU, if any and not aged out.
    #[inline]
    pub fn get(&self, now: u64) -> Option<u32> {
        let m = self.mtu.load(Relaxed);
        (m != 0 && now < self.expires.load(Relaxed)).then_some(m)
    }

    /// Learns `mtu` (clamped to `min`) until `now + ttl`. Only lowers a current figure.
    /// Returns the MTU now in force if it changed.
    pub fn learn(&self, mtu: u32, min: u32, now: u64, ttl: u64) -> Option<u32> {
        let mtu = mtu.max(min);
        if let Some(cur) = self.get(now) {
            if mtu >= cur {
                return None;
            }
        }
        self.mtu.store(mtu, Relaxed);
        self.expires.store(now.saturating_add(ttl), Relaxed);
        Some(mtu)
    }
}

/// What a burst did, for counters and control-plane events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BurstSummary {
    pub ok: u32,
    pub bytes: u64,
    /// A soft volume lifetime was crossed during this burst (raise a rekey event).
    pub soft_expired: bool,
    /// A hard volume lifetime was reached during this burst: the SA passes no more traffic.
    pub hard_expired: bool,
    /// Outbound: the sequence numbers left fell below [`SEQ_LOW_WATER`] during this burst
    /// (raise a rekey event before they run out).
    pub seq_low: bool,
}

impl BurstSummary {
    fn merge(&mut self, o: BurstSummary) {
        self.ok += o.ok;
        self.bytes += o.bytes;
        self.soft_expired |= o.soft_expired;
        self.hard_expired |= o.hard_expired;
        self.seq_low |= o.seq_low;
    }
}

/// Sequence numbers left on an outbound SA below which a burst reports
/// [`BurstSummary::seq_low`].
pub const SEQ_LOW_WATER: u64 = 1 << 16;

/// The end of the run of packets of one SA that starts at `i` (the SAs of a burst, by
/// identity).
#[inline]
fn run_end<T>(sas: &[&T], i: usize) -> usize {
    let sa = sas[i];
    let mut j = i + 1;
    while j < sas.len() && core::ptr::eq(sas[j], sa) {
        j += 1;
    }
    j
}

/// The outer IP (+UDP) header of an SA, written in front of each packet of a burst.
///
/// Kept and written as whole 64-bit words (byte `k` of the header is byte `k % 8` of word
/// `k / 8`, little-endian) and built with arithmetic, never byte by byte: a header assembled
/// bytewise on the stack and then read back wider stalls on store forwarding, which with one
/// packet per SA (many clients) was paid for every packet.
struct OuterTemplate {
    words: [u64; 6],
    ip_len: usize,
    udp: bool,
    /// IPv4 only: one's-complement sum of the constant header words.
    sum: u64,
}

const OUTER_TTL: u8 = 64;

/// The 8 header bytes `b` as a template word.
#[inline(always)]
fn word(b: [u8; 8]) -> u64 {
    u64::from_le_bytes(b)
}

impl OuterTemplate {
    #[inline]
    fn new(local: IpAddr, peer: Endpoint, encap: Option<UdpEncap>) -> OuterTemplate {
        let proto = if encap.is_some() { ip_proto::UDP } else { ip_proto::ESP };
        // Source and destination UDP ports, as the first 4 bytes of the UDP header.
        let ports = encap.map_or(0, |e| {
            let (s, d) = (e.local_port.to_be_bytes(), peer.port.to_be_bytes());
            u32::from_le_bytes([s[0], s[1], d[0], d[1]]) as u64
        });
        let mut t = OuterTemplate { words: [0; 6], ip_len: 20, udp: encap.is_some(), sum: 0 };
        match (local, peer.addr) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let (sv, dv) = (s.to_bits() as u64, d.to_bits() as u64);
                // Bytes 0-7 (version, TOS, length, ID, flags) are filled in per packet; the
                // addresses go in network order, byte-swapped into the little-endian words.
                t.words[1] = OUTER_TTL as u64 | (proto as u64) << 8 | (s.to_bits().swap_bytes() as u64) << 32;
                t.words[2] = d.to_bits().swap_bytes() as u64 | ports << 32;
                t.sum = 0x4500
                    + ((OUTER_TTL as u64) << 8 | proto as u64)
                    + (sv >> 16)
                    + (sv & 0xffff)
                    + (dv >> 16)
                    + (dv & 0xffff);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                // Bytes 0-3 (version, traffic class) are filled in per packet, 4-5 too.
                t.words[0] = (proto as u64) << 48 | (OUTER_TTL as u64) << 56;
                let (sw, dw) = (u128::from_le_bytes(s.octets()), u128::from_le_bytes(d.octets()));
                t.words[1..5].copy_from_slice(&[sw as u64, (sw >> 64) as u64, dw as u64, (dw >> 64) as u64]);
                t.words[5] = ports;
                t.ip_len = 40;
            }
            // Families are validated when the SA is made and when the peer changes.
            _ => {}
        }
        t
    }

    #[inline]
    fn len(&self) -> usize {
        self.ip_len + if self.udp { 8 } else { 0 }
    }

    /// Writes the header for an ESP packet of `esp_len` bytes. Up to 7 bytes after the
    /// header are overwritten too (the caller writes the ESP header there next); `d` must
    /// hold at least `len() + 8` bytes.
    #[inline]
    fn write(&self, d: &mut [u8], esp_len: usize, ident: u16, tos: u8, df: bool) {
        let l4_len = (esp_len + if self.udp { 8 } else { 0 }) as u16;
        let w = &self.words;
        if self.ip_len == 20 {
            let total = 20 + l4_len;
            let flags: u16 = if df { 0x4000 } else { 0 };
            let c = !checksum::fold(self.sum + tos as u64 + total as u64 + ident as u64 + flags as u64);
            put(
                d,
                0,
                word([
                    0x45,
                    tos,
                    (total >> 8) as u8,
                    total as u8,
                    (ident >> 8) as u8,
                    ident as u8,
                    (flags >> 8) as u8,
                    0,
                ]),
            );
            put(d, 1, w[1] | (c.swap_bytes() as u64) << 16);
            put(d, 2, w[2]);
            if self.udp {
                // IPv4: zero UDP checksum (RFC 3948 §2.1).
                put(d, 3, l4_len.swap_bytes() as u64);
            }
        } else {
            // Traffic class copied from the inner packet (RFC 4301 §5.1.2.1, RFC 6040).
            put(d, 0, w[0] | word([0x60 | tos >> 4, tos << 4, 0, 0, (l4_len >> 8) as u8, l4_len as u8, 0, 0]));
            for (k, &v) in w.iter().enumerate().take(5).skip(1) {
                put(d, k, v);
            }
            if self.udp {
                // IPv6: the UDP checksum is filled in after encryption.
                put(d, 5, w[5] | (l4_len.swap_bytes() as u64) << 32);
            }
        }
    }
}

/// Stores template word `k`.
#[inline(always)]
fn put(d: &mut [u8], k: usize, v: u64) {
    d[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
}

/// Inner packet facts read before encapsulation.
#[inline]
fn inner_facts(inner: &[u8]) -> Result<(u8, u8, bool), DropReason> {
    match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= 20 => Ok((ip_proto::IPV4, inner[1], inner[6] & 0x40 != 0)),
        Some(6) if inner.len() >= 40 => Ok((ip_proto::IPV6, (inner[0] << 4) | (inner[1] >> 4), true)),
        _ => Err(DropReason::InnerMalformed),
    }
}

/// The outbound half of an SA.
#[repr(align(64))]
#[derive(Debug)]
pub struct OutboundSa {
    spi: u32,
    layout: EspLayout,
    /// Last sequence number handed out (the first packet gets 1).
    seq: AtomicU64,
    seq_limit: u64,
    cipher: Box<dyn EspCipher>,
    local: IpAddr,
    encap: Option<UdpEncap>,
    peer: PeerCell,
    df: DfMode,
    pub pmtu: PathMtu,
    pub stats: SaStats,
    pub clock: SaClock,
    lifetime: Lifetime,
    params: SaParams,
}

impl OutboundSa {
    pub fn new(params: SaParams, provider: &dyn CryptoProvider) -> Result<OutboundSa, SaError> {
        params.validate()?;
        let cipher = provider.new_cipher(params.transform, &params.keys, params.esn)?;
        Ok(OutboundSa {
            spi: params.spi,
            layout: params.transform.layout(),
            seq: AtomicU64::new(0),
            // RFC 4303 §3.3.3: the counter must not cycle.
            seq_limit: if params.esn { u64::MAX } else { u32::MAX as u64 },
            cipher,
            local: params.local,
            encap: params.encap,
            peer: PeerCell::new(params.peer()),
            df: params.df,
            pmtu: PathMtu::default(),
            stats: SaStats::default(),
            clock: SaClock::default(),
            lifetime: params.lifetime,
            params,
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }
    pub fn params(&self) -> &SaParams {
        &self.params
    }
    pub fn layout(&self) -> EspLayout {
        self.layout
    }
    pub fn cipher(&self) -> &dyn EspCipher {
        &*self.cipher
    }
    /// The peer's current endpoint.
    pub fn peer(&self) -> Endpoint {
        self.peer.load()
    }
    /// Follows a NAT mapping change (RFC 7296 §2.23). Single writer only.
    pub fn set_peer(&self, e: Endpoint) -> Result<(), SaError> {
        if e.addr.is_ipv4() != self.local.is_ipv4() {
            return Err(SaError::FamilyMismatch { local: self.local, remote: e.addr });
        }
        self.peer.store(e);
        Ok(())
    }
    pub fn is_udp_encap(&self) -> bool {
        self.encap.is_some()
    }
    /// Checks the time lifetimes and the idle threshold at `now` (tables' writer only, about
    /// once a second): an SA past its hard time is stopped.
    pub fn sweep(&self, now: u64) -> Sweep {
        self.clock.sweep(&self.lifetime, &self.stats, now)
    }
    /// True once a hard lifetime (volume or time) stopped the SA.
    pub fn is_expired(&self) -> bool {
        self.stats.hard_expired(&self.lifetime)
    }

    /// Sequence numbers used so far.
    pub fn seq_used(&self) -> u64 {
        self.seq.load(Relaxed).min(self.seq_limit)
    }
    /// Sequence numbers left before the SA must be rekeyed.
    pub fn seq_remaining(&self) -> u64 {
        self.seq_limit - self.seq_used()
    }
    /// Sets the sequence counter (tests; resynchronisation after a data-plane restart).
    pub fn set_seq(&self, last_used: u64) {
        self.seq.store(last_used, Relaxed);
    }

    /// Bytes added in front of and after an inner packet of `inner_len` bytes.
    #[inline]
    pub fn overhead(&self, inner_len: usize) -> usize {
        crate::mtu::outer_len(inner_len, self.local.is_ipv6(), self.encap.is_some(), self.layout) - inner_len
    }

    /// The largest inner packet that fits `link_mtu` and the learned path MTU.
    #[inline]
    pub fn inner_mtu(&self, link_mtu: u32, now: u64) -> u32 {
        let outer = self.pmtu.get(now).map_or(link_mtu, |p| p.min(link_mtu));
        crate::mtu::max_inner(outer, self.local.is_ipv6(), self.encap.is_some(), self.layout)
    }

    /// Encapsulates every inner IP packet of `pkts` in place: on success the buffer holds the
    /// outer IP packet. `out[i]` gets each packet's verdict. The caller has checked each inner
    /// packet against [`inner_mtu`](Self::inner_mtu). See [`encap_mixed`].
    pub fn encap_burst<B: PacketBuf>(
        &self,
        pkts: &mut [B],
        out: &mut [Result<(), DropReason>],
        now: u64,
    ) -> BurstSummary {
        let sas = [self; MAX_BURST];
        let mut total = BurstSummary::default();
        for (p, o) in pkts.chunks_mut(MAX_BURST).zip(out.chunks_mut(MAX_BURST)) {
            encap_mixed(&sas[..p.len()], p, o, now, |_, s| total.merge(s));
        }
        total
    }

    /// Grows one inner packet into an unencrypted ESP packet with its outer header.
    #[inline]
    fn prepare<B: PacketBuf>(&self, b: &mut B, seq: u64, tmpl: &OuterTemplate) -> Result<(), DropReason> {
        let inner_len = b.len();
        let (next_header, tos, inner_df) = inner_facts(b.data())?;
        let pad = self.layout.pad_len(inner_len);
        let tail = pad + esprit_wire::esp::TRAILER_LEN + self.layout.icv_len;
        let head = tmpl.len() + esprit_wire::esp::HEADER_LEN + self.layout.iv_len;
        let esp_len = self.layout.esp_len(inner_len);
        if tmpl.len() + esp_len > u16::MAX as usize {
            return Err(DropReason::InnerMalformed);
        }
        if !b.append(tail) {
            return Err(DropReason::NoBufferRoom);
        }
        if !b.prepend(head) {
            b.trim(tail);
            return Err(DropReason::NoBufferRoom);
        }
        let d = b.data_mut();
        Trailer::emit(&mut d[head..head + inner_len + pad + 2], inner_len, pad as u8, next_header);
        let df = match self.df {
            DfMode::Copy => inner_df,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        // The outer IPv4 ID only matters if the outer packet is fragmented downstream; the
        // low bits of the sequence number are unique per SA over 65536 packets.
        tmpl.write(d, esp_len, seq as u16 ^ (self.spi >> 16) as u16, tos, df);
        let e = &mut d[tmpl.len()..];
        e[..4].copy_from_slice(&self.spi.to_be_bytes());
        e[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        Ok(())
    }
}

/// Where the ESP header of an inbound packet is and whence it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundMeta {
    /// Offset of the ESP header from the start of the packet data (the outer IP header).
    pub esp_offset: usize,
    /// Outer source address and UDP source port (0 for raw ESP).
    pub src: Endpoint,
    /// True if the packet was UDP-encapsulated.
    pub udp: bool,
}

/// What decapsulation found out about a good packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapped {
    /// The full sequence number.
    pub seq: u64,
    /// The packet authenticated from an endpoint other than the SA's peer: a NAT mapping
    /// change (RFC 7296 §2.23), for the caller to follow on UDP-encapsulated SAs.
    pub peer_changed: bool,
}

/// The inbound half of an SA.
#[repr(align(64))]
#[derive(Debug)]
pub struct InboundSa {
    spi: u32,
    layout: EspLayout,
    cipher: Box<dyn EspCipher>,
    pub replay: ReplayWindow,
    encap: bool,
    peer: PeerCell,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    pub stats: SaStats,
    pub clock: SaClock,
    lifetime: Lifetime,
    params: SaParams,
    /// The worker that processes this SA's packets (the replay window's single writer);
    /// `u32::MAX` until the first packet claims it.
    owner: AtomicU32,
}

impl InboundSa {
    pub fn new(params: SaParams, provider: &dyn CryptoProvider) -> Result<InboundSa, SaError> {
        params.validate()?;
        let cipher = provider.new_cipher(params.transform, &params.keys, params.esn)?;
        Ok(InboundSa {
            spi: params.spi,
            layout: params.transform.layout(),
            cipher,
            replay: ReplayWindow::new(params.replay_window, params.esn),
            encap: params.encap.is_some(),
            peer: PeerCell::new(params.peer()),
            local_ts: params.local_ts.clone(),
            remote_ts: params.remote_ts.clone(),
            stats: SaStats::default(),
            clock: SaClock::default(),
            lifetime: params.lifetime,
            params,
            owner: AtomicU32::new(u32::MAX),
        })
    }

    /// The worker that owns this SA: the first to ask claims it. Packets that reach another
    /// worker (after a NAT rebinding changes their flow hash) are handed to the owner, so the
    /// replay window keeps one writer.
    #[inline]
    pub fn owner(&self, me: u32) -> u32 {
        // Asked for every packet: read first, so that an owned SA's line stays shared.
        let o = self.owner.load(Relaxed);
        if o != u32::MAX {
            return o;
        }
        match self.owner.compare_exchange(u32::MAX, me, Relaxed, Relaxed) {
            Ok(_) => me,
            Err(o) => o,
        }
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }
    pub fn params(&self) -> &SaParams {
        &self.params
    }
    pub fn cipher(&self) -> &dyn EspCipher {
        &*self.cipher
    }
    pub fn peer(&self) -> Endpoint {
        self.peer.load()
    }
    /// Records the peer's new NAT mapping. Single writer only.
    pub fn set_peer(&self, e: Endpoint) {
        self.peer.store(e);
    }
    pub fn is_udp_encap(&self) -> bool {
        self.encap
    }
    /// Checks the time lifetimes and the idle threshold at `now` (tables' writer only, about
    /// once a second): an SA past its hard time is stopped.
    pub fn sweep(&self, now: u64) -> Sweep {
        self.clock.sweep(&self.lifetime, &self.stats, now)
    }
    /// True once a hard lifetime (volume or time) stopped the SA.
    pub fn is_expired(&self) -> bool {
        self.stats.hard_expired(&self.lifetime)
    }

    /// Verifies, decrypts and strips every packet of `pkts`, which all carry this SA's SPI:
    /// on success the buffer holds the inner IP packet. `out[i]` gets each verdict. See
    /// [`decap_mixed`].
    pub fn decap_burst<B: PacketBuf>(
        &self,
        pkts: &mut [B],
        meta: &[InboundMeta],
        out: &mut [Result<Decapped, DropReason>],
        now: u64,
    ) -> BurstSummary {
        let sas = [self; MAX_BURST];
        let mut total = BurstSummary::default();
        for ((p, m), o) in pkts.chunks_mut(MAX_BURST).zip(meta.chunks(MAX_BURST)).zip(out.chunks_mut(MAX_BURST)) {
            decap_mixed(&sas[..p.len()], p, m, o, now, |_, s| total.merge(s));
        }
        total
    }

    /// The checks before crypto: lifetime, encapsulation, length, replay (cheap, before the
    /// ICV per RFC 4303 §3.4.3). Returns the full sequence number.
    #[inline]
    fn check<B: PacketBuf>(&self, hard_expired: bool, b: &B, m: &InboundMeta) -> Result<u64, DropReason> {
        if hard_expired {
            return Err(DropReason::SaExpired);
        }
        if m.udp != self.encap {
            return Err(DropReason::EspEncapMismatch);
        }
        let min =
            esprit_wire::esp::HEADER_LEN + self.layout.iv_len + esprit_wire::esp::TRAILER_LEN + self.layout.icv_len;
        let esp = b.data().get(m.esp_offset..).ok_or(DropReason::EspTruncated)?;
        if esp.len() < min {
            return Err(DropReason::EspTruncated);
        }
        if (esp.len() - min + esprit_wire::esp::TRAILER_LEN) % self.layout.align != 0 {
            return Err(DropReason::EspBadLength);
        }
        let seq_low = u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]]);
        self.replay.check(seq_low).map_err(replay_reason)
    }

    /// After authentication: commit the sequence number, strip headers and trailer, check
    /// the inner packet. Always inlined: its result, returned through memory in pieces and
    /// read back whole, stalled on store forwarding for every packet.
    #[inline(always)]
    fn finish_one<B: PacketBuf>(
        &self,
        b: &mut B,
        m: &InboundMeta,
        seq: u64,
        peer: Endpoint,
    ) -> Result<Decapped, DropReason> {
        // A duplicate within the burst passed the check twice; only the first commits.
        self.replay.commit(seq).map_err(replay_reason)?;
        let head = m.esp_offset + esprit_wire::esp::HEADER_LEN + self.layout.iv_len;
        let body_end = b.len() - self.layout.icv_len;
        let t = Trailer::parse(&b.data()[head..body_end]).map_err(|_| DropReason::BadPadding)?;
        match t.next_header {
            ip_proto::IPV4 | ip_proto::IPV6 => {}
            ip_proto::IPV6_NO_NXT => return Err(DropReason::DummyPacket),
            _ => return Err(DropReason::BadNextHeader),
        }
        let inner = &b.data()[head..head + t.payload_len];
        // The inner packet may be followed by TFC padding (RFC 4303 §2.7): trust its own
        // length field, which must fit.
        let inner_len = match (t.next_header, inner.first().map(|v| v >> 4)) {
            (ip_proto::IPV4, Some(4)) => esprit_wire::ipv4::Packet::new_checked(inner)
                .map(|p| p.total_len() as usize)
                .map_err(|_| DropReason::InnerMalformed)?,
            (ip_proto::IPV6, Some(6)) => esprit_wire::ipv6::Packet::new_checked(inner)
                .map(|p| p.total_len())
                .map_err(|_| DropReason::InnerMalformed)?,
            _ => return Err(DropReason::InnerMalformed),
        };
        let flow = Flow::of(&inner[..inner_len]).ok_or(DropReason::InnerMalformed)?;
        if !inbound_allowed(&flow, &self.local_ts, &self.remote_ts) {
            return Err(DropReason::TsMismatch);
        }
        let trailing = b.len() - head - inner_len;
        if !(b.adj(head) && b.trim(trailing)) {
            return Err(DropReason::InnerMalformed);
        }
        Ok(Decapped { seq, peer_changed: m.src != peer })
    }
}

fn replay_reason(e: ReplayError) -> DropReason {
    match e {
        ReplayError::Replay => DropReason::Replay,
        ReplayError::TooOld => DropReason::ReplayTooOld,
    }
}

/// Verifies, decrypts and strips a burst whose packets may belong to different SAs:
/// `pkts[i]` arrived under `sas[i]` (the SA of its SPI). On success a buffer holds the inner
/// IP packet; `out[i]` gets each verdict.
///
/// Order per RFC 4303 §3.4: replay check (cheap, before crypto) → ICV and decryption (the
/// whole burst's at once) → replay window update (only for authenticated packets) → padding →
/// next header → inner packet and traffic selectors. Each SA's counters are updated once per
/// run of its consecutive packets, and `summary` is told what that run did (lifetimes
/// crossed). The packets of one SA may be anywhere in the burst; its replay window sees them
/// in burst order.
pub fn decap_mixed<'s, B: PacketBuf>(
    sas: &[&'s InboundSa],
    pkts: &mut [B],
    meta: &[InboundMeta],
    out: &mut [Result<Decapped, DropReason>],
    now: u64,
    mut summary: impl FnMut(&'s InboundSa, BurstSummary),
) {
    let n = sas.len().min(pkts.len()).min(meta.len()).min(out.len());
    for start in (0..n).step_by(MAX_BURST) {
        let end = (start + MAX_BURST).min(n);
        decap_chunk(
            &sas[start..end],
            &mut pkts[start..end],
            &meta[start..end],
            &mut out[start..end],
            now,
            &mut summary,
        );
    }
}

fn decap_chunk<'s, B: PacketBuf>(
    sas: &[&'s InboundSa],
    pkts: &mut [B],
    meta: &[InboundMeta],
    out: &mut [Result<Decapped, DropReason>],
    now: u64,
    summary: &mut impl FnMut(&'s InboundSa, BurstSummary),
) {
    let mut seqs = [0u64; MAX_BURST];
    let mut i = 0;
    while i < sas.len() {
        let j = run_end(sas, i);
        let sa = sas[i];
        let hard = sa.stats.hard_expired(&sa.lifetime);
        for k in i..j {
            out[k] = sa.check(hard, &pkts[k], &meta[k]).map(|seq| {
                seqs[k] = seq;
                Decapped { seq, peer_changed: false }
            });
        }
        i = j;
    }
    let mut ops: ArrayVec<CryptoOp<'_>, MAX_BURST> = ArrayVec::new();
    let mut ciphers: ArrayVec<&dyn EspCipher, MAX_BURST> = ArrayVec::new();
    let mut which: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    for (i, ((b, m), sa)) in pkts.iter_mut().zip(meta).zip(sas).enumerate() {
        if out[i].is_ok() {
            ops.push(CryptoOp::new(&mut b.data_mut()[m.esp_offset..], seqs[i]));
            ciphers.push(sa.cipher());
            which.push(i as u8);
        }
    }
    open_mixed(&ciphers, &mut ops);
    let statuses: ArrayVec<OpStatus, MAX_BURST> = ops.iter().map(|o| o.status).collect();
    drop(ops);
    for (&i, st) in which.iter().zip(statuses) {
        let i = i as usize;
        let sa = sas[i];
        out[i] = match st {
            OpStatus::Ok => sa.finish_one(&mut pkts[i], &meta[i], seqs[i], sa.peer.load()),
            OpStatus::AuthFailed => Err(DropReason::AuthFailed),
            _ => Err(DropReason::EspBadLength),
        };
    }
    let mut i = 0;
    while i < sas.len() {
        let j = run_end(sas, i);
        let sa = sas[i];
        let mut sum = BurstSummary::default();
        let (mut auth, mut replay, mut other) = (0, 0, 0);
        for (b, o) in pkts[i..j].iter().zip(&out[i..j]) {
            match o {
                Ok(_) => {
                    sum.ok += 1;
                    sum.bytes += b.len() as u64;
                }
                Err(DropReason::AuthFailed) => auth += 1,
                Err(DropReason::Replay | DropReason::ReplayTooOld) => replay += 1,
                Err(_) => other += 1,
            }
        }
        for (c, v) in [(&sa.stats.auth_failed, auth), (&sa.stats.replay, replay), (&sa.stats.other_drops, other)] {
            if v > 0 {
                c.fetch_add(v, Relaxed);
            }
        }
        sa.stats.account(&sa.lifetime, &mut sum, now);
        summary(sa, sum);
        i = j;
    }
}

/// Encapsulates a burst whose inner packets may go to different SAs: `pkts[i]` under
/// `sas[i]`. On success a buffer holds the outer IP packet; `out[i]` gets each verdict. The
/// caller has checked each inner packet against its SA's
/// [`inner_mtu`](OutboundSa::inner_mtu).
///
/// Each run of consecutive packets of one SA reserves its sequence numbers with one atomic
/// add (never reused whichever lcore sends) and shares one outer header template; the whole
/// burst's crypto goes to the providers at once; counters and lifetimes are updated once per
/// run, and `summary` is told what that run did.
pub fn encap_mixed<'s, B: PacketBuf>(
    sas: &[&'s OutboundSa],
    pkts: &mut [B],
    out: &mut [Result<(), DropReason>],
    now: u64,
    mut summary: impl FnMut(&'s OutboundSa, BurstSummary),
) {
    let n = sas.len().min(pkts.len()).min(out.len());
    for start in (0..n).step_by(MAX_BURST) {
        let end = (start + MAX_BURST).min(n);
        encap_chunk(&sas[start..end], &mut pkts[start..end], &mut out[start..end], now, &mut summary);
    }
}

fn encap_chunk<'s, B: PacketBuf>(
    sas: &[&'s OutboundSa],
    pkts: &mut [B],
    out: &mut [Result<(), DropReason>],
    now: u64,
    summary: &mut impl FnMut(&'s OutboundSa, BurstSummary),
) {
    let mut seqs = [0u64; MAX_BURST];
    // Per packet: where its ESP header starts, and whether it has an IPv6 UDP checksum to
    // fill in after encryption (from the addresses in its header: carrying them here
    // copied 33 bytes per packet, and cleared 1 KiB per burst).
    let mut hdr = [0u8; MAX_BURST];
    let mut v6_udp = [false; MAX_BURST];
    let mut low: ArrayVec<bool, MAX_BURST> = ArrayVec::new();
    let mut i = 0;
    while i < sas.len() {
        let j = run_end(sas, i);
        let sa = sas[i];
        if sa.stats.hard_expired(&sa.lifetime) {
            out[i..j].iter_mut().for_each(|o| *o = Err(DropReason::SaExpired));
            low.push(false);
            i = j;
            continue;
        }
        // Reserve the run's sequence numbers at once.
        let k = (j - i) as u64;
        let prev = sa.seq.fetch_add(k, Relaxed);
        let left = |used: u64| sa.seq_limit - used.min(sa.seq_limit);
        low.push(left(prev) >= SEQ_LOW_WATER && left(prev.saturating_add(k)) < SEQ_LOW_WATER);
        let first = prev.wrapping_add(1);
        let tmpl = OuterTemplate::new(sa.local, sa.peer.load(), sa.encap);
        for (x, b) in pkts[i..j].iter_mut().enumerate() {
            let at = i + x;
            let seq = first.wrapping_add(x as u64);
            // `first` wraps only after 2^64 packets; `seq < first` catches it regardless.
            if seq > sa.seq_limit || seq < first || seq == 0 {
                out[at] = Err(DropReason::SeqExhausted);
                continue;
            }
            out[at] = sa.prepare(b, seq, &tmpl);
            seqs[at] = seq;
            hdr[at] = tmpl.len() as u8;
            v6_udp[at] = tmpl.udp && tmpl.ip_len == 40;
        }
        i = j;
    }
    let mut ops: ArrayVec<CryptoOp<'_>, MAX_BURST> = ArrayVec::new();
    let mut ciphers: ArrayVec<&dyn EspCipher, MAX_BURST> = ArrayVec::new();
    let mut which: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    for (i, (b, sa)) in pkts.iter_mut().zip(sas).enumerate() {
        if out[i].is_ok() {
            ops.push(CryptoOp::new(&mut b.data_mut()[hdr[i] as usize..], seqs[i]));
            ciphers.push(sa.cipher());
            which.push(i as u8);
        }
    }
    seal_mixed(&ciphers, &mut ops);
    let statuses: ArrayVec<OpStatus, MAX_BURST> = ops.iter().map(|o| o.status).collect();
    drop(ops);
    for (&i, st) in which.iter().zip(statuses) {
        let i = i as usize;
        if st != OpStatus::Ok {
            out[i] = Err(DropReason::NoBufferRoom);
            continue;
        }
        if !v6_udp[i] {
            continue;
        }
        // `prepare` wrote the 40-byte header in front.
        if let Some((ip, l4)) = pkts[i].data_mut().split_at_mut_checked(40) {
            let ip = esprit_wire::ipv6::Packet::new_unchecked(&ip[..]);
            let (s, d) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
            esprit_wire::udp::Packet::new_unchecked(l4).fill_checksum(s, d);
        }
    }
    let mut i = 0;
    for seq_low in low {
        let j = run_end(sas, i);
        let sa = sas[i];
        let mut sum = BurstSummary { seq_low, ..BurstSummary::default() };
        for (b, o) in pkts[i..j].iter().zip(&out[i..j]) {
            if o.is_ok() {
                sum.ok += 1;
                sum.bytes += b.len() as u64;
            }
        }
        sa.stats.account(&sa.lifetime, &mut sum, now);
        summary(sa, sum);
        i = j;
    }
}
