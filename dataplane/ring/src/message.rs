//! The messages the two processes exchange, as owned Rust values.
//!
//! Their byte encoding is in [`crate::codec`]; the tag of each kind is
//! [`MessageKind`]. Control-plane messages (esprit-ike → esprit-dataplane) have tags below
//! `0x8000`, data-plane messages (esprit-dataplane → esprit-ike) have the high bit set, so a
//! receiver can refuse a message that travels the wrong way.

use core::fmt;
use core::net::IpAddr;

pub use esprit_esp::proposal::Transform;
pub use esprit_esp::sa::{DfMode, Endpoint, Lifetime, UdpEncap};
pub use esprit_esp::ts::TrafficSelector;
pub use esprit_wire::IpCidr;
use zeroize::Zeroizing;

/// Which way an SA carries traffic, seen from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaDirection {
    /// Packets from the peer to us (decapsulated here).
    In,
    /// Packets from us to the peer (encapsulated here).
    Out,
}

/// Key material (an encryption key with its salt, or an integrity key).
///
/// Zeroized when dropped, never printed by `Debug` (only its length is).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyBytes(Zeroizing<Vec<u8>>);

impl KeyBytes {
    pub fn new(bytes: &[u8]) -> KeyBytes {
        KeyBytes(Zeroizing::new(bytes.to_vec()))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} key bytes redacted>", self.0.len())
    }
}

/// The longest interface name the ABI carries.
pub const MAX_IFNAME_LEN: usize = 32;

/// A data-plane interface name as the configuration names it: 1 to [`MAX_IFNAME_LEN`] bytes
/// of printable ASCII, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfName(String);

/// Why a string is not an interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interface name {name:?} is not valid: 1 to 32 printable ASCII characters without spaces")]
pub struct IfNameError {
    pub name: String,
}

impl IfName {
    pub fn new(name: &str) -> Result<IfName, IfNameError> {
        let ok = !name.is_empty() && name.len() <= MAX_IFNAME_LEN && name.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(IfName(name.to_string()))
        } else {
            Err(IfNameError { name: name.to_string() })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Install one SA (one direction) in the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSa {
    /// Identifies the IKE-side CHILD_SA; echoed in events and replies about this SA.
    pub cookie: u64,
    pub direction: SaDirection,
    pub spi: u32,
    pub transform: Transform,
    /// The encryption key, followed by the 4-byte salt for AEAD transforms
    /// ([RFC 4106 §8.1](https://www.rfc-editor.org/rfc/rfc4106#section-8.1)); exactly
    /// [`Transform::enc_key_len`] bytes.
    pub enc_key: KeyBytes,
    /// The integrity key; exactly [`Transform::int_key_len`] bytes (empty for AEADs).
    pub int_key: KeyBytes,
    /// Our tunnel endpoint address.
    pub local: IpAddr,
    /// The peer's tunnel endpoint address (its current NAT mapping with `encap`).
    pub remote: IpAddr,
    /// UDP encapsulation ports ([RFC 3948](https://www.rfc-editor.org/rfc/rfc3948)).
    pub encap: Option<UdpEncap>,
    pub esn: bool,
    /// Inbound only: replay window in packets (0 disables the check).
    pub replay_window: u32,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub df: DfMode,
    pub lifetime: Lifetime,
    /// Outbound: last sequence number already used (0 for a new SA); inbound: highest
    /// sequence number already seen. Lets a restarted data plane be resynchronised without
    /// ever reusing a sequence number.
    pub initial_seq: u64,
}

impl AddSa {
    /// The message installing the SA `p` describes (a manually keyed `[[sa]]`, a generated
    /// one), with `cookie` echoed in events about it.
    pub fn from_params(cookie: u64, direction: SaDirection, p: &esprit_esp::sa::SaParams, initial_seq: u64) -> AddSa {
        AddSa {
            cookie,
            direction,
            spi: p.spi,
            transform: p.transform,
            enc_key: KeyBytes::new(p.keys.enc()),
            int_key: KeyBytes::new(p.keys.int()),
            local: p.local,
            remote: p.remote,
            encap: p.encap,
            esn: p.esn,
            replay_window: p.replay_window,
            local_ts: p.local_ts.clone(),
            remote_ts: p.remote_ts.clone(),
            df: p.df,
            lifetime: p.lifetime,
            initial_seq,
        }
    }
}

/// Remove one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteSa {
    pub direction: SaDirection,
    pub spi: u32,
}

/// The peer of a pair of SAs moved to a new NAT mapping
/// ([RFC 7296 §2.23](https://www.rfc-editor.org/rfc/rfc7296#section-2.23)), as the control
/// plane decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetPeer {
    pub spi_in: u32,
    pub spi_out: u32,
    pub endpoint: Endpoint,
}

/// Inside traffic from `src` to `dst` is protected by the outbound SA `spi_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub src: IpCidr,
    pub dst: IpCidr,
    pub spi_out: u32,
}

/// A route of the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpCidr,
    pub gateway: Option<IpAddr>,
    pub interface: IfName,
}

/// An address of one of the data plane's interfaces (with host bits: not an [`IpCidr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddress {
    pub interface: IfName,
    pub addr: IpAddr,
    /// At most 32 (IPv4) or 128 (IPv6).
    pub prefix_len: u8,
}

/// The largest datagram payload carried by [`Transmit`] and [`Punt`]: a UDP datagram.
pub const MAX_DATAGRAM: usize = 65_535;

/// Capture the ESP packets of the peers in scope as they are on the wire and their inner
/// packets as they are before encryption and after decryption, into `esp-wire.pcap` and
/// `inner.pcap` (raw IP, mode 0600) in the directory `dir`; an empty `dir` stops the trace
/// `id` and closes its files. Acknowledged with [`Subject`] `{kind: Trace, spi: id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRequest {
    pub id: u32,
    /// Only packets to and from this outer address; `None`: every peer.
    pub peer: Option<IpAddr>,
    /// At most [`MAX_TRACE_DIR_LEN`] bytes of UTF-8; empty: stop.
    pub dir: String,
    /// Packets per file before the rest is left out (0: no limit).
    pub max_packets: u32,
}

/// The longest trace directory path.
pub const MAX_TRACE_DIR_LEN: usize = 4095;

/// An IKE datagram for the data plane to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port (500 or 4500).
    pub src: Endpoint,
    pub dst: Endpoint,
    /// Put the 4-byte non-ESP marker in front of the payload (UDP 4500,
    /// [RFC 3948 §2.2](https://www.rfc-editor.org/rfc/rfc3948#section-2.2)).
    pub non_esp_marker: bool,
    /// The IKE message, at most [`MAX_DATAGRAM`] bytes.
    pub payload: Vec<u8>,
}

/// The data plane (re)started: the control plane refills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The data plane's generation in the region (1 on first start).
    pub generation: u64,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
}

/// An IKE datagram that arrived on UDP 500, or on UDP 4500 behind the non-ESP marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punt {
    /// The sender (the client's NAT mapping).
    pub src: Endpoint,
    /// Our address and port it arrived on.
    pub dst: Endpoint,
    pub interface: IfName,
    /// It arrived behind the non-ESP marker (which is stripped from `payload`).
    pub had_marker: bool,
    /// The IKE message, at most [`MAX_DATAGRAM`] bytes.
    pub payload: Vec<u8>,
}

/// What happened to an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaEventKind {
    /// A soft volume lifetime was crossed: rekey.
    SoftLifetime,
    /// A hard volume lifetime was reached: the SA no longer passes traffic.
    HardLifetime,
    /// The sequence counter is close to its end (RFC 4303 §3.3.3): rekey.
    SeqNearExhaustion,
    /// Authenticated packets arrive from a new outer address or port.
    NatMappingChanged { endpoint: Endpoint },
    /// No traffic for this long.
    Idle { seconds: u32 },
}

/// An event about one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaEvent {
    /// The cookie given in [`AddSa`].
    pub cookie: u64,
    pub spi: u32,
    pub direction: SaDirection,
    pub kind: SaEventKind,
}

/// Which control message a reply is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The kind of the control message (a control-plane kind).
    pub kind: MessageKind,
    /// Its SPI (the outbound one for policies), 0 if it has none.
    pub spi: u32,
    /// Its cookie ([`AddSa`]), 0 if it has none.
    pub cookie: u64,
}

/// Why a control message failed to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is inconsistent (key length, address family, reserved SPI, ...).
    Invalid,
    /// The SA, policy, route or address already exists.
    Exists,
    /// The SA, policy, route or address does not exist.
    NotFound,
    /// A table is full.
    NoResources,
    /// Known but not implemented by this data plane (a transform, a feature).
    Unsupported,
}

/// A control message that failed to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    pub about: Subject,
    pub code: ErrorCode,
    /// For people: what was wrong, at most [`MAX_REASON_LEN`] bytes of UTF-8.
    pub reason: String,
}

/// The longest reason string of an [`ApplyError`].
pub const MAX_REASON_LEN: usize = 1024;

/// Everything either process sends the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    // ---- control plane → data plane
    AddSa(Box<AddSa>),
    DeleteSa(DeleteSa),
    SetPeer(SetPeer),
    AddPolicy(Policy),
    DeletePolicy(Policy),
    AddRoute(Route),
    DeleteRoute(Route),
    SetAddress(IfAddress),
    RemoveAddress(IfAddress),
    /// Send NAT keepalives on idle NATed SAs every this many seconds (0: never).
    SetKeepalive {
        interval_secs: u32,
    },
    Transmit(Transmit),
    /// Delete every SA and policy (before a full resynchronisation).
    Flush,
    /// The resynchronisation after a [`Hello`] or a control-plane restart is complete.
    SyncDone,
    /// Start or stop capturing ESP and inner traffic (`espritctl trace`).
    Trace(TraceRequest),
    // ---- data plane → control plane
    Hello(Hello),
    Punt(Punt),
    SaEvent(SaEvent),
    /// A control message was applied (sent where the control plane needs to know).
    Ack(Subject),
    Error(ApplyError),
}

macro_rules! kinds {
    ($( $(#[doc = $doc:literal])* $kind:ident = $tag:literal ),* $(,)?) => {
        /// The type tag of a message: the first two bytes (little-endian) of its encoding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum MessageKind {
            $( $(#[doc = $doc])* $kind = $tag ),*
        }

        impl MessageKind {
            /// Every kind, in tag order.
            pub const ALL: &'static [MessageKind] = &[ $(MessageKind::$kind),* ];

            /// The kind with this tag.
            pub fn from_tag(tag: u16) -> Option<MessageKind> {
                match tag { $($tag => Some(MessageKind::$kind),)* _ => None }
            }

            pub const fn tag(self) -> u16 {
                self as u16
            }

            pub const fn name(self) -> &'static str {
                match self { $(MessageKind::$kind => stringify!($kind)),* }
            }
        }
    };
}

kinds! {
    AddSa = 0x0001,
    DeleteSa = 0x0002,
    SetPeer = 0x0003,
    AddPolicy = 0x0004,
    DeletePolicy = 0x0005,
    AddRoute = 0x0006,
    DeleteRoute = 0x0007,
    SetAddress = 0x0008,
    RemoveAddress = 0x0009,
    SetKeepalive = 0x000a,
    Transmit = 0x000b,
    Flush = 0x000c,
    SyncDone = 0x000d,
    Trace = 0x000e,
    Hello = 0x8001,
    Punt = 0x8002,
    SaEvent = 0x8003,
    Ack = 0x8004,
    Error = 0x8005,
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Heading {
    /// esprit-ike → esprit-dataplane.
    ToData,
    /// esprit-dataplane → esprit-ike.
    ToControl,
}

impl MessageKind {
    /// Which way messages of this kind travel.
    pub const fn heading(self) -> Heading {
        if self.tag() & 0x8000 == 0 {
            Heading::ToData
        } else {
            Heading::ToControl
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::AddSa(_) => MessageKind::AddSa,
            Message::DeleteSa(_) => MessageKind::DeleteSa,
            Message::SetPeer(_) => MessageKind::SetPeer,
            Message::AddPolicy(_) => MessageKind::AddPolicy,
            Message::DeletePolicy(_) => MessageKind::DeletePolicy,
            Message::AddRoute(_) => MessageKind::AddRoute,
            Message::DeleteRoute(_) => MessageKind::DeleteRoute,
            Message::SetAddress(_) => MessageKind::SetAddress,
            Message::RemoveAddress(_) => MessageKind::RemoveAddress,
            Message::SetKeepalive { .. } => MessageKind::SetKeepalive,
            Message::Transmit(_) => MessageKind::Transmit,
            Message::Flush => MessageKind::Flush,
            Message::SyncDone => MessageKind::SyncDone,
            Message::Trace(_) => MessageKind::Trace,
            Message::Hello(_) => MessageKind::Hello,
            Message::Punt(_) => MessageKind::Punt,
            Message::SaEvent(_) => MessageKind::SaEvent,
            Message::Ack(_) => MessageKind::Ack,
            Message::Error(_) => MessageKind::Error,
        }
    }

    pub fn heading(&self) -> Heading {
        self.kind().heading()
    }

    /// True if the message carries key material.
    pub fn has_keys(&self) -> bool {
        matches!(self, Message::AddSa(_))
    }
}
