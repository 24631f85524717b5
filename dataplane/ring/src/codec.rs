//! The byte encoding of [`Message`]s (ABI major 1).
//!
//! A message is its 2-byte tag ([`MessageKind`]) followed by its fields in declaration
//! order, all little-endian, with no padding and nothing optional at the end:
//!
//! | type | encoding |
//! | --- | --- |
//! | `u8`/`u16`/`u32`/`u64` | little-endian |
//! | `bool` | 1 byte, 0 or 1 |
//! | `Option<T>` | 1 byte 0 (none) or 1 followed by `T` |
//! | `IpAddr` | 1 byte family (4 or 6), then 4 or 16 bytes in network order |
//! | `Endpoint` | `IpAddr`, `u16` port |
//! | `IpCidr` | `IpAddr` with no host bits set, `u8` prefix length |
//! | transform | `u16` ENCR id, `u16` key bits, `u16` INTEG id (IANA IKEv2 registries) |
//! | key, datagram | `u16` (key) or `u32` (datagram) length, then the bytes |
//! | string | `u16` length, then UTF-8 |
//! | list | `u16` count, then the items |
//!
//! Decoding checks every length against the bytes left and against its limit, every
//! enumeration value, and that nothing is left over: arbitrary input gives a
//! [`DecodeError`], never a panic. Encoding checks the same limits, so whatever encodes
//! decodes back to an equal message.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::message::*;

/// The most traffic selectors in one list of an [`AddSa`].
pub const MAX_SELECTORS: usize = 64;

/// The IKEv2 transform IDs of an ESP transform: (ENCR id, key length in bits as the Key
/// Length attribute carries it, 0 where there is none; INTEG id).
pub const fn transform_ids(t: Transform) -> (u16, u16, u16) {
    t.ikev2_ids()
}

/// The transform with these IKEv2 transform IDs, if the data plane implements it.
pub fn transform_from_ids(encr: u16, key_bits: u16, integ: u16) -> Option<Transform> {
    Transform::from_ikev2_ids(encr, key_bits, integ)
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("message truncated: {field} at offset {at} needs {need} more bytes")]
    Truncated { field: &'static str, at: usize, need: usize },
    #[error("unknown message tag {0:#06x}")]
    UnknownTag(u16),
    #[error("{extra} bytes left over after a complete {kind} message")]
    TrailingBytes { kind: MessageKind, extra: usize },
    #[error("{field}: value {value} is not one this ABI defines")]
    BadValue { field: &'static str, value: u64 },
    #[error("{field}: length {len} exceeds the limit of {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field}: {what}")]
    Invalid { field: &'static str, what: &'static str },
    #[error("{transform} needs a {want}-byte {which} key, got {got} bytes")]
    KeyLength { transform: Transform, which: &'static str, want: usize, got: usize },
    #[error("no ESP transform has ENCR id {encr} with key length {key_bits} and INTEG id {integ}")]
    UnknownTransform { encr: u16, key_bits: u16, integ: u16 },
}

/// Why a message cannot be encoded (it would not decode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{field}: length {len} exceeds the limit of {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field}: {what}")]
    Invalid { field: &'static str, what: &'static str },
    #[error("{transform} needs a {want}-byte {which} key, got {got} bytes")]
    KeyLength { transform: Transform, which: &'static str, want: usize, got: usize },
}

/// Decodes one message: the whole of `bytes`, nothing more, nothing less.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    Message::decode(bytes)
}

impl Message {
    /// Decodes one message: the whole of `bytes`, nothing more, nothing less.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Rd { b: bytes, at: 0 };
        let tag = r.u16("tag")?;
        let kind = MessageKind::from_tag(tag).ok_or(DecodeError::UnknownTag(tag))?;
        let m = match kind {
            MessageKind::AddSa => Message::AddSa(Box::new(r.add_sa()?)),
            MessageKind::DeleteSa => Message::DeleteSa(DeleteSa { direction: r.direction()?, spi: r.u32("spi")? }),
            MessageKind::SetPeer => Message::SetPeer(SetPeer {
                spi_in: r.u32("spi_in")?,
                spi_out: r.u32("spi_out")?,
                endpoint: r.endpoint("endpoint")?,
            }),
            MessageKind::AddPolicy => Message::AddPolicy(r.policy()?),
            MessageKind::DeletePolicy => Message::DeletePolicy(r.policy()?),
            MessageKind::AddRoute => Message::AddRoute(r.route()?),
            MessageKind::DeleteRoute => Message::DeleteRoute(r.route()?),
            MessageKind::SetAddress => Message::SetAddress(r.if_address()?),
            MessageKind::RemoveAddress => Message::RemoveAddress(r.if_address()?),
            MessageKind::SetKeepalive => Message::SetKeepalive { interval_secs: r.u32("interval_secs")? },
            MessageKind::Transmit => Message::Transmit(Transmit {
                src: r.endpoint("src")?,
                dst: r.endpoint("dst")?,
                non_esp_marker: r.bool("non_esp_marker")?,
                payload: r.datagram()?,
            }),
            MessageKind::Flush => Message::Flush,
            MessageKind::SyncDone => Message::SyncDone,
            MessageKind::Trace => Message::Trace(TraceRequest {
                id: r.u32("id")?,
                peer: r.option("peer", |r| r.addr("peer"))?,
                dir: r.string("dir", MAX_TRACE_DIR_LEN)?,
                max_packets: r.u32("max_packets")?,
            }),
            MessageKind::Hello => {
                Message::Hello(Hello { generation: r.u64("generation")?, start_unix_ns: r.u64("start_unix_ns")? })
            }
            MessageKind::Punt => Message::Punt(Punt {
                src: r.endpoint("src")?,
                dst: r.endpoint("dst")?,
                interface: r.if_name()?,
                had_marker: r.bool("had_marker")?,
                payload: r.datagram()?,
            }),
            MessageKind::SaEvent => Message::SaEvent(r.sa_event()?),
            MessageKind::Ack => Message::Ack(r.subject()?),
            MessageKind::Error => Message::Error(ApplyError {
                about: r.subject()?,
                code: r.error_code()?,
                reason: r.string("reason", MAX_REASON_LEN)?,
            }),
        };
        let extra = bytes.len() - r.at;
        if extra != 0 {
            return Err(DecodeError::TrailingBytes { kind, extra });
        }
        Ok(m)
    }

    /// The encoding of this message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.encode_into(&mut v)?;
        Ok(v)
    }

    /// Replaces the contents of `out` with the encoding of this message. On error `out` is
    /// left empty.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        let r = self.encode_fields(&mut Wr(out));
        if r.is_err() {
            zeroize::Zeroize::zeroize(out);
        }
        r
    }

    fn encode_fields(&self, w: &mut Wr<'_>) -> Result<(), EncodeError> {
        w.u16(self.kind().tag());
        match self {
            Message::AddSa(a) => w.add_sa(a)?,
            Message::DeleteSa(d) => {
                w.direction(d.direction);
                w.u32(d.spi);
            }
            Message::SetPeer(p) => {
                w.u32(p.spi_in);
                w.u32(p.spi_out);
                w.endpoint(&p.endpoint);
            }
            Message::AddPolicy(p) | Message::DeletePolicy(p) => {
                w.cidr(&p.src);
                w.cidr(&p.dst);
                w.u32(p.spi_out);
            }
            Message::AddRoute(r) | Message::DeleteRoute(r) => {
                w.cidr(&r.prefix);
                w.option(r.gateway.as_ref(), |w, a| w.addr(a));
                w.if_name(&r.interface)?;
            }
            Message::SetAddress(a) | Message::RemoveAddress(a) => {
                w.if_name(&a.interface)?;
                let max = if a.addr.is_ipv4() { 32 } else { 128 };
                if a.prefix_len > max {
                    return Err(EncodeError::Invalid { field: "prefix_len", what: "longer than the address" });
                }
                w.addr(&a.addr);
                w.u8(a.prefix_len);
            }
            Message::SetKeepalive { interval_secs } => w.u32(*interval_secs),
            Message::Transmit(t) => {
                w.endpoint(&t.src);
                w.endpoint(&t.dst);
                w.bool(t.non_esp_marker);
                w.datagram(&t.payload)?;
            }
            Message::Flush | Message::SyncDone => {}
            Message::Trace(t) => {
                w.u32(t.id);
                w.option(t.peer.as_ref(), |w, a| w.addr(a));
                w.string("dir", &t.dir, MAX_TRACE_DIR_LEN)?;
                w.u32(t.max_packets);
            }
            Message::Hello(h) => {
                w.u64(h.generation);
                w.u64(h.start_unix_ns);
            }
            Message::Punt(p) => {
                w.endpoint(&p.src);
                w.endpoint(&p.dst);
                w.if_name(&p.interface)?;
                w.bool(p.had_marker);
                w.datagram(&p.payload)?;
            }
            Message::SaEvent(e) => w.sa_event(e),
            Message::Ack(s) => w.subject(s)?,
            Message::Error(e) => {
                w.subject(&e.about)?;
                w.u8(error_code_id(e.code));
                w.string("reason", &e.reason, MAX_REASON_LEN)?;
            }
        }
        Ok(())
    }
}

// ---- reading

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let left = self.b.len() - self.at;
        if n > left {
            return Err(DecodeError::Truncated { field, at: self.at, need: n - left });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadValue { field, value: v.into() }),
        }
    }

    fn option<T>(
        &mut self,
        field: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.bool(field)? {
            false => Ok(None),
            true => f(self).map(Some),
        }
    }

    fn addr(&mut self, field: &'static str) -> Result<IpAddr, DecodeError> {
        match self.u8(field)? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>(field)?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>(field)?))),
            v => Err(DecodeError::BadValue { field, value: v.into() }),
        }
    }

    fn endpoint(&mut self, field: &'static str) -> Result<Endpoint, DecodeError> {
        Ok(Endpoint { addr: self.addr(field)?, port: self.u16(field)? })
    }

    fn cidr(&mut self, field: &'static str) -> Result<IpCidr, DecodeError> {
        let addr = self.addr(field)?;
        let len = self.u8(field)?;
        match IpCidr::new(addr, len) {
            Ok(c) if c.addr() == addr => Ok(c),
            Ok(_) => Err(DecodeError::Invalid { field, what: "prefix has host bits set" }),
            Err(_) => Err(DecodeError::BadValue { field, value: len.into() }),
        }
    }

    fn direction(&mut self) -> Result<SaDirection, DecodeError> {
        match self.u8("direction")? {
            0 => Ok(SaDirection::In),
            1 => Ok(SaDirection::Out),
            v => Err(DecodeError::BadValue { field: "direction", value: v.into() }),
        }
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = self.u16(field)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        let b = self.take(len, field)?;
        core::str::from_utf8(b).map(str::to_string).map_err(|_| DecodeError::Invalid { field, what: "not UTF-8" })
    }

    fn if_name(&mut self) -> Result<IfName, DecodeError> {
        let s = self.string("interface", MAX_IFNAME_LEN)?;
        IfName::new(&s).map_err(|_| DecodeError::Invalid { field: "interface", what: "not an interface name" })
    }

    fn datagram(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32("payload")? as usize;
        if len > MAX_DATAGRAM {
            return Err(DecodeError::TooLong { field: "payload", len, max: MAX_DATAGRAM });
        }
        Ok(self.take(len, "payload")?.to_vec())
    }

    fn key(&mut self, field: &'static str, transform: Transform, want: usize) -> Result<KeyBytes, DecodeError> {
        let len = self.u16(field)? as usize;
        if len != want {
            return Err(DecodeError::KeyLength { transform, which: field, want, got: len });
        }
        Ok(KeyBytes::new(self.take(len, field)?))
    }

    fn selectors(&mut self, field: &'static str) -> Result<Vec<TrafficSelector>, DecodeError> {
        let n = self.u16(field)? as usize;
        if n > MAX_SELECTORS {
            return Err(DecodeError::TooLong { field, len: n, max: MAX_SELECTORS });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let ts = TrafficSelector {
                start: self.addr(field)?,
                end: self.addr(field)?,
                protocol: self.u8(field)?,
                start_port: self.u16(field)?,
                end_port: self.u16(field)?,
            };
            if let Some(what) = selector_problem(&ts) {
                return Err(DecodeError::Invalid { field, what });
            }
            v.push(ts);
        }
        Ok(v)
    }

    fn add_sa(&mut self) -> Result<AddSa, DecodeError> {
        let cookie = self.u64("cookie")?;
        let direction = self.direction()?;
        let spi = self.u32("spi")?;
        let (e, k, i) = (self.u16("transform")?, self.u16("transform")?, self.u16("transform")?);
        let transform =
            transform_from_ids(e, k, i).ok_or(DecodeError::UnknownTransform { encr: e, key_bits: k, integ: i })?;
        Ok(AddSa {
            cookie,
            direction,
            spi,
            transform,
            enc_key: self.key("encryption", transform, transform.enc_key_len())?,
            int_key: self.key("integrity", transform, transform.int_key_len())?,
            local: self.addr("local")?,
            remote: self.addr("remote")?,
            encap: self
                .option("encap", |r| Ok(UdpEncap { local_port: r.u16("encap")?, remote_port: r.u16("encap")? }))?,
            esn: self.bool("esn")?,
            replay_window: self.u32("replay_window")?,
            local_ts: self.selectors("local_ts")?,
            remote_ts: self.selectors("remote_ts")?,
            df: match self.u8("df")? {
                0 => DfMode::Copy,
                1 => DfMode::Set,
                2 => DfMode::Clear,
                v => return Err(DecodeError::BadValue { field: "df", value: v.into() }),
            },
            lifetime: Lifetime {
                soft_bytes: self.u64("lifetime")?,
                hard_bytes: self.u64("lifetime")?,
                soft_packets: self.u64("lifetime")?,
                hard_packets: self.u64("lifetime")?,
                soft_secs: self.u32("lifetime")?,
                hard_secs: self.u32("lifetime")?,
                idle_secs: self.u32("lifetime")?,
            },
            initial_seq: self.u64("initial_seq")?,
        })
    }

    fn policy(&mut self) -> Result<Policy, DecodeError> {
        Ok(Policy { src: self.cidr("src")?, dst: self.cidr("dst")?, spi_out: self.u32("spi_out")? })
    }

    fn route(&mut self) -> Result<Route, DecodeError> {
        Ok(Route {
            prefix: self.cidr("prefix")?,
            gateway: self.option("gateway", |r| r.addr("gateway"))?,
            interface: self.if_name()?,
        })
    }

    fn if_address(&mut self) -> Result<IfAddress, DecodeError> {
        let interface = self.if_name()?;
        let addr = self.addr("addr")?;
        let prefix_len = self.u8("prefix_len")?;
        if prefix_len > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(DecodeError::BadValue { field: "prefix_len", value: prefix_len.into() });
        }
        Ok(IfAddress { interface, addr, prefix_len })
    }

    fn sa_event(&mut self) -> Result<SaEvent, DecodeError> {
        let cookie = self.u64("cookie")?;
        let spi = self.u32("spi")?;
        let direction = self.direction()?;
        let kind = match self.u8("event")? {
            1 => SaEventKind::SoftLifetime,
            2 => SaEventKind::HardLifetime,
            3 => SaEventKind::SeqNearExhaustion,
            4 => SaEventKind::NatMappingChanged { endpoint: self.endpoint("endpoint")? },
            5 => SaEventKind::Idle { seconds: self.u32("seconds")? },
            v => return Err(DecodeError::BadValue { field: "event", value: v.into() }),
        };
        Ok(SaEvent { cookie, spi, direction, kind })
    }

    fn subject(&mut self) -> Result<Subject, DecodeError> {
        let tag = self.u16("about")?;
        let kind = MessageKind::from_tag(tag)
            .filter(|k| k.heading() == Heading::ToData)
            .ok_or(DecodeError::BadValue { field: "about", value: tag.into() })?;
        Ok(Subject { kind, spi: self.u32("spi")?, cookie: self.u64("cookie")? })
    }

    fn error_code(&mut self) -> Result<ErrorCode, DecodeError> {
        let v = self.u8("code")?;
        ERROR_CODES
            .iter()
            .find(|&&(id, _)| id == v)
            .map(|&(_, c)| c)
            .ok_or(DecodeError::BadValue { field: "code", value: v.into() })
    }
}

const ERROR_CODES: [(u8, ErrorCode); 5] = [
    (1, ErrorCode::Invalid),
    (2, ErrorCode::Exists),
    (3, ErrorCode::NotFound),
    (4, ErrorCode::NoResources),
    (5, ErrorCode::Unsupported),
];

fn error_code_id(c: ErrorCode) -> u8 {
    match c {
        ErrorCode::Invalid => 1,
        ErrorCode::Exists => 2,
        ErrorCode::NotFound => 3,
        ErrorCode::NoResources => 4,
        ErrorCode::Unsupported => 5,
    }
}

/// What is wrong with a selector, if anything.
fn selector_problem(ts: &TrafficSelector) -> Option<&'static str> {
    let ordered = match (ts.start, ts.end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => s <= e,
        (IpAddr::V6(s), IpAddr::V6(e)) => s <= e,
        _ => return Some("start and end addresses of different families"),
    };
    if !ordered {
        return Some("start address after end address");
    }
    if ts.start_port > ts.end_port {
        return Some("start port after end port");
    }
    None
}

// ---- writing

struct Wr<'a>(&'a mut Vec<u8>);

impl Wr<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        self.bool(v.is_some());
        if let Some(v) = v {
            f(self, v);
        }
    }
    fn addr(&mut self, a: &IpAddr) {
        match a {
            IpAddr::V4(a) => {
                self.u8(4);
                self.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.0.extend_from_slice(&a.octets());
            }
        }
    }
    fn endpoint(&mut self, e: &Endpoint) {
        self.addr(&e.addr);
        self.u16(e.port);
    }
    fn cidr(&mut self, c: &IpCidr) {
        self.addr(&c.addr());
        self.u8(c.prefix_len());
    }
    fn direction(&mut self, d: SaDirection) {
        self.u8(match d {
            SaDirection::In => 0,
            SaDirection::Out => 1,
        });
    }
    fn string(&mut self, field: &'static str, s: &str, max: usize) -> Result<(), EncodeError> {
        if s.len() > max {
            return Err(EncodeError::TooLong { field, len: s.len(), max });
        }
        self.u16(s.len() as u16);
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    fn if_name(&mut self, n: &IfName) -> Result<(), EncodeError> {
        self.string("interface", n.as_str(), MAX_IFNAME_LEN)
    }
    fn datagram(&mut self, p: &[u8]) -> Result<(), EncodeError> {
        if p.len() > MAX_DATAGRAM {
            return Err(EncodeError::TooLong { field: "payload", len: p.len(), max: MAX_DATAGRAM });
        }
        self.u32(p.len() as u32);
        self.0.extend_from_slice(p);
        Ok(())
    }
    fn key(&mut self, which: &'static str, t: Transform, k: &KeyBytes, want: usize) -> Result<(), EncodeError> {
        if k.len() != want {
            return Err(EncodeError::KeyLength { transform: t, which, want, got: k.len() });
        }
        self.u16(k.len() as u16);
        self.0.extend_from_slice(k.as_bytes());
        Ok(())
    }
    fn selectors(&mut self, field: &'static str, v: &[TrafficSelector]) -> Result<(), EncodeError> {
        if v.len() > MAX_SELECTORS {
            return Err(EncodeError::TooLong { field, len: v.len(), max: MAX_SELECTORS });
        }
        self.u16(v.len() as u16);
        for ts in v {
            if let Some(what) = selector_problem(ts) {
                return Err(EncodeError::Invalid { field, what });
            }
            self.addr(&ts.start);
            self.addr(&ts.end);
            self.u8(ts.protocol);
            self.u16(ts.start_port);
            self.u16(ts.end_port);
        }
        Ok(())
    }
    fn add_sa(&mut self, a: &AddSa) -> Result<(), EncodeError> {
        self.u64(a.cookie);
        self.direction(a.direction);
        self.u32(a.spi);
        let (e, k, i) = transform_ids(a.transform);
        self.u16(e);
        self.u16(k);
        self.u16(i);
        let t = a.transform;
        self.key("encryption", t, &a.enc_key, t.enc_key_len())?;
        self.key("integrity", t, &a.int_key, t.int_key_len())?;
        self.addr(&a.local);
        self.addr(&a.remote);
        self.option(a.encap.as_ref(), |w, e| {
            w.u16(e.local_port);
            w.u16(e.remote_port);
        });
        self.bool(a.esn);
        self.u32(a.replay_window);
        self.selectors("local_ts", &a.local_ts)?;
        self.selectors("remote_ts", &a.remote_ts)?;
        self.u8(match a.df {
            DfMode::Copy => 0,
            DfMode::Set => 1,
            DfMode::Clear => 2,
        });
        let l = &a.lifetime;
        self.u64(l.soft_bytes);
        self.u64(l.hard_bytes);
        self.u64(l.soft_packets);
        self.u64(l.hard_packets);
        self.u32(l.soft_secs);
        self.u32(l.hard_secs);
        self.u32(l.idle_secs);
        self.u64(a.initial_seq);
        Ok(())
    }
    fn sa_event(&mut self, e: &SaEvent) {
        self.u64(e.cookie);
        self.u32(e.spi);
        self.direction(e.direction);
        match e.kind {
            SaEventKind::SoftLifetime => self.u8(1),
            SaEventKind::HardLifetime => self.u8(2),
            SaEventKind::SeqNearExhaustion => self.u8(3),
            SaEventKind::NatMappingChanged { endpoint } => {
                self.u8(4);
                self.endpoint(&endpoint);
            }
            SaEventKind::Idle { seconds } => {
                self.u8(5);
                self.u32(seconds);
            }
        }
    }
    fn subject(&mut self, s: &Subject) -> Result<(), EncodeError> {
        if s.kind.heading() != Heading::ToData {
            return Err(EncodeError::Invalid { field: "about", what: "replies are about control-plane messages only" });
        }
        self.u16(s.kind.tag());
        self.u32(s.spi);
        self.u64(s.cookie);
        Ok(())
    }
}
