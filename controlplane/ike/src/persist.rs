//! Checkpoints of established IKE SAs, so that a restarted esprit-ike carries on where a
//! killed one stopped: the keys, both message-ID windows, our last response (the peer may
//! retransmit its request), our request in flight with what completing it needs (its
//! nonce and Diffie-Hellman private value), the leases and the CHILD SAs with their keys.
//!
//! A checkpoint is written before any output of the change that led to it leaves the
//! process (the daemon journals, then sends), so a restored SA never lags what the peer or
//! the data plane saw: at worst it is ahead (a response or request that never left), and
//! the peer's retransmission or ours closes the gap.
//!
//! Not kept: half-open SAs and SAs being deleted or replaced (the peer retries or was done
//! with them), the state of a rekey collision under way, fragments being reassembled.
//!
//! The format is this crate's own (big-endian, length-prefixed, versioned); decoding checks
//! every length and value and fails with what was wrong.

use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use esprit_esp::Transform as EspTransform;
use esprit_wire::IpCidr;
use zeroize::Zeroizing;

use crate::config::IkeConfig;
use crate::crypto::{CryptoProvider, DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::exchange::child::{RekeyChildSent, RekeyIkeSent};
use crate::keys::{IkeKeys, IkeSuite};
use crate::message::{ExchangeType, IdType, Identification};
use crate::sa::{Child, ChildInstall, ChildKeys, ChildState, IkeSa, PeerAuthenticated, Pending, Queued, SaState, Task};
use crate::ts::TrafficSelector;

/// One IKE SA's checkpoint: it holds keys, zeroized when dropped.
pub type Checkpoint = Zeroizing<Vec<u8>>;

const MAGIC: &[u8; 4] = b"EIKS";
const VERSION: u8 = 1;

/// Wall-clock milliseconds at `now` (the clock a checkpoint's times are kept in: a
/// restarted process has new `Instant`s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub now: Instant,
    pub unix_ms: i64,
}

impl Clock {
    fn to_unix(self, t: Instant) -> i64 {
        match t.checked_duration_since(self.now) {
            Some(d) => self.unix_ms.saturating_add(d.as_millis() as i64),
            None => self.unix_ms.saturating_sub(self.now.duration_since(t).as_millis() as i64),
        }
    }

    /// The instant of a kept time; times past become now (their timer runs at once).
    fn instant(self, ms: i64) -> Instant {
        let ahead = ms.saturating_sub(self.unix_ms);
        if ahead <= 0 {
            self.now
        } else {
            self.now + Duration::from_millis(ahead as u64)
        }
    }

    fn before(self, ms: i64) -> Instant {
        let back = self.unix_ms.saturating_sub(ms).max(0) as u64;
        self.now.checked_sub(Duration::from_millis(back)).unwrap_or(self.now)
    }
}

/// Why a checkpoint could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IKE SA checkpoint: {0}")]
pub struct RestoreError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, RestoreError> {
    Err(RestoreError(what.into()))
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt_time(&mut self, c: Clock, t: Option<Instant>) {
        self.bool(t.is_some());
        if let Some(t) = t {
            self.i64(c.to_unix(t));
        }
    }
    fn ip(&mut self, a: IpAddr) {
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
    fn sock(&mut self, s: SocketAddr) {
        self.ip(s.ip());
        self.u16(s.port());
    }
    fn ts(&mut self, v: &[TrafficSelector]) {
        self.u16(v.len() as u16);
        for t in v {
            self.ip(t.start);
            self.ip(t.end);
            self.u8(t.protocol);
            self.u16(t.start_port);
            self.u16(t.end_port);
        }
    }
    fn cidrs(&mut self, v: &[(IpCidr, IpCidr)]) {
        self.u16(v.len() as u16);
        for (a, b) in v {
            for c in [a, b] {
                self.ip(c.addr());
                self.u8(c.prefix_len());
            }
        }
    }
    fn transform(&mut self, t: EspTransform) {
        let (e, k, i) = t.ikev2_ids();
        self.u16(e);
        self.u16(k);
        self.u16(i);
    }
    fn dh(&mut self, dh: &dyn crate::crypto::DhSecret) -> bool {
        let Some(private) = dh.private() else { return false };
        self.u16(dh.group().id());
        self.bytes(&private);
        true
    }
}

impl Drop for W {
    fn drop(&mut self) {
        // The buffer held keys until it was handed over (or abandoned).
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RestoreError> {
        if self.0.len() < n {
            return bad(format!("truncated in {what}"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, RestoreError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, RestoreError> {
        Ok(u16::from_be_bytes(self.take(2, what)?.try_into().unwrap_or_default()))
    }
    fn u32(&mut self, what: &str) -> Result<u32, RestoreError> {
        Ok(u32::from_be_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }
    fn u64(&mut self, what: &str) -> Result<u64, RestoreError> {
        Ok(u64::from_be_bytes(self.take(8, what)?.try_into().unwrap_or_default()))
    }
    fn i64(&mut self, what: &str) -> Result<i64, RestoreError> {
        Ok(i64::from_be_bytes(self.take(8, what)?.try_into().unwrap_or_default()))
    }
    fn bool(&mut self, what: &str) -> Result<bool, RestoreError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            x => bad(format!("{what}: {x} is not a boolean")),
        }
    }
    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, RestoreError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    fn secret(&mut self, what: &str) -> Result<Zeroizing<Vec<u8>>, RestoreError> {
        self.bytes(what).map(Zeroizing::new)
    }
    fn str(&mut self, what: &str) -> Result<String, RestoreError> {
        String::from_utf8(self.bytes(what)?).or_else(|_| bad(format!("{what}: not UTF-8")))
    }
    fn opt_time(&mut self, c: Clock, what: &str) -> Result<Option<Instant>, RestoreError> {
        Ok(if self.bool(what)? { Some(c.instant(self.i64(what)?)) } else { None })
    }
    fn ip(&mut self, what: &str) -> Result<IpAddr, RestoreError> {
        match self.u8(what)? {
            4 => Ok(IpAddr::from(<[u8; 4]>::try_from(self.take(4, what)?).unwrap_or_default())),
            6 => Ok(IpAddr::from(<[u8; 16]>::try_from(self.take(16, what)?).unwrap_or_default())),
            x => bad(format!("{what}: address family {x}")),
        }
    }
    fn sock(&mut self, what: &str) -> Result<SocketAddr, RestoreError> {
        Ok(SocketAddr::new(self.ip(what)?, self.u16(what)?))
    }
    fn ts(&mut self, what: &str) -> Result<Vec<TrafficSelector>, RestoreError> {
        let n = self.u16(what)?;
        (0..n)
            .map(|_| {
                Ok(TrafficSelector {
                    start: self.ip(what)?,
                    end: self.ip(what)?,
                    protocol: self.u8(what)?,
                    start_port: self.u16(what)?,
                    end_port: self.u16(what)?,
                })
            })
            .collect()
    }
    fn cidrs(&mut self, what: &str) -> Result<Vec<(IpCidr, IpCidr)>, RestoreError> {
        let n = self.u16(what)?;
        let one = |r: &mut Self| -> Result<IpCidr, RestoreError> {
            let (a, l) = (r.ip(what)?, r.u8(what)?);
            IpCidr::new(a, l).or_else(|e| bad(format!("{what}: {e}")))
        };
        (0..n).map(|_| Ok((one(self)?, one(self)?))).collect()
    }
    fn transform(&mut self, what: &str) -> Result<EspTransform, RestoreError> {
        let (e, k, i) = (self.u16(what)?, self.u16(what)?, self.u16(what)?);
        EspTransform::from_ikev2_ids(e, k, i).ok_or_else(|| RestoreError(format!("{what}: unknown ESP transform")))
    }
    fn dh(
        &mut self,
        p: &'static dyn CryptoProvider,
        what: &str,
    ) -> Result<Box<dyn crate::crypto::DhSecret>, RestoreError> {
        let id = self.u16(what)?;
        let group = DhGroup::from_id(id).ok_or_else(|| RestoreError(format!("{what}: DH group {id}")))?;
        let private = self.secret(what)?;
        p.dh_restore(group, &private).map_err(|e| RestoreError(format!("{what}: {e}")))
    }
}

/// Whether an SA in this state is kept across a restart.
pub(crate) fn keeps(sa: &IkeSa) -> bool {
    matches!(sa.state, SaState::Established) && sa.peer.is_some() && sa.conn.is_some()
}

fn queued_tag(q: Queued) -> (u8, u64) {
    match q {
        Queued::RekeyChild(c) => (1, c),
        Queued::RekeyIke => (2, 0),
        Queued::DeleteChild(c) => (3, c),
        Queued::DeleteIke => (4, 0),
        Queued::Dpd => (5, 0),
    }
}

/// The checkpoint of an SA that [`keeps`] says is kept.
pub(crate) fn checkpoint(sa: &IkeSa, cfg: &IkeConfig, c: Clock) -> Option<Checkpoint> {
    if !keeps(sa) {
        return None;
    }
    let conn = sa.connection(cfg)?;
    let mut w = W(Vec::with_capacity(1024));
    w.0.extend_from_slice(MAGIC);
    w.u8(VERSION);
    w.u64(sa.spi);
    w.bool(sa.initiator);
    w.u64(sa.spi_i);
    w.u64(sa.spi_r);
    w.sock(sa.local);
    w.sock(sa.remote);
    w.bool(sa.nat);
    w.bytes(conn.name.as_bytes());
    let s = sa.suite;
    w.u16(s.encr.id());
    w.u16(match s.encr {
        EncrAlg::AesCbc { key_bits } | EncrAlg::AesGcm16 { key_bits } => key_bits,
        EncrAlg::ChaCha20Poly1305 => 0,
    });
    w.u16(s.prf.id());
    w.u16(s.integ.map_or(0, |i| i.id()));
    w.u16(s.dh.id());
    let k = &sa.keys;
    for key in [&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr] {
        w.bytes(key);
    }
    w.u64(sa.iv_out);
    w.u32(sa.my_next_id);
    w.u32(sa.peer_next_id);
    w.bool(sa.last_reply.is_some());
    if let Some((id, d)) = &sa.last_reply {
        w.u32(*id);
        w.u16(d.len() as u16);
        for x in d {
            w.bytes(x);
        }
    }
    w.bool(sa.frag_ok);
    w.bytes(&sa.ni);
    w.bytes(&sa.nr);
    let id = &sa.peer.as_ref()?.id;
    w.u8(id.kind.0);
    w.bytes(&id.data);
    w.u8(sa.vips.len() as u8);
    for a in &sa.vips {
        w.ip(*a);
    }
    w.i64(c.to_unix(sa.created));
    w.opt_time(c, sa.rekey_at);
    w.opt_time(c, sa.expire_at);
    w.u16(sa.queue.len() as u16);
    for q in &sa.queue {
        let (t, x) = queued_tag(*q);
        w.u8(t);
        w.u64(x);
    }
    pending(&mut w, sa.pending.as_ref(), c);
    w.u16(sa.children.len() as u16);
    for ch in &sa.children {
        child(&mut w, ch, c);
    }
    Some(Zeroizing::new(std::mem::take(&mut w.0)))
}

/// Our request in flight: the datagrams (retransmitted as they were, so that message IDs
/// stay in step) and what completing it needs.
fn pending(w: &mut W, p: Option<&Pending>, c: Clock) {
    let Some(p) = p else { return w.u8(0) };
    w.u8(1);
    w.u32(p.id);
    w.u8(p.exchange.0);
    w.u32(p.sends);
    w.i64(c.to_unix(p.next));
    w.u16(p.datagrams.len() as u16);
    for d in &p.datagrams {
        w.bytes(d);
    }
    let mark = w.0.len();
    let ok = match &p.task {
        Task::Dpd => {
            w.u8(1);
            true
        }
        Task::DeleteChildren(v) => {
            w.u8(2);
            w.u16(v.len() as u16);
            v.iter().for_each(|x| w.u64(*x));
            true
        }
        Task::DeleteIke => {
            w.u8(3);
            true
        }
        Task::RekeyChild(r) => {
            w.u8(4);
            w.u64(r.old);
            w.u32(r.spi_in);
            w.bytes(&r.ni);
            w.bool(r.dh.is_some());
            r.dh.as_ref().is_none_or(|d| w.dh(d.as_ref()))
        }
        Task::RekeyIke(r) => {
            w.u8(5);
            w.u64(r.new_spi);
            w.bytes(&r.ni);
            w.dh(r.dh.as_ref())
        }
        Task::Init | Task::Auth(_) => false,
    };
    if !ok {
        // What completing it needs cannot be kept (a provider that does not export DH
        // values): after a restart its answer only says the peer is alive, and the request
        // is still retransmitted as it was, which keeps the message IDs in step.
        w.0.truncate(mark);
        w.u8(1);
    }
}

fn child(w: &mut W, ch: &Child, c: Clock) {
    let i = &ch.install;
    w.u64(i.cookie);
    w.transform(i.transform);
    w.bool(i.esn);
    w.u32(i.spi_in);
    w.u32(i.spi_out);
    for k in [&i.keys_in, &i.keys_out] {
        w.bytes(&k.enc);
        w.bytes(&k.int);
    }
    w.sock(i.local);
    w.sock(i.remote);
    w.bool(i.encap);
    w.ts(&i.local_ts);
    w.ts(&i.remote_ts);
    w.cidrs(&i.policies);
    w.bool(i.route);
    w.u32(i.replay_window);
    w.u32(i.soft_secs);
    w.u32(i.hard_secs);
    w.u32(i.idle_secs);
    w.bool(ch.routed);
    match ch.state {
        ChildState::Installed => w.u8(0),
        ChildState::Rekeying => w.u8(1),
        ChildState::Rekeyed { by } => {
            w.u8(2);
            w.u64(by);
        }
        ChildState::Deleting => w.u8(3),
    }
    w.bool(ch.idle);
    w.bytes(&ch.nonces.0);
    w.bytes(&ch.nonces.1);
    w.opt_time(c, ch.remove_at);
    w.opt_time(c, ch.rekey_retry);
}

/// An SA back from its checkpoint, for the configuration `cfg` (its connection found by
/// name: `None` if the configuration no longer has it).
pub(crate) fn restore(
    b: &[u8],
    cfg: &IkeConfig,
    p: &'static dyn CryptoProvider,
    c: Clock,
) -> Result<(Box<IkeSa>, Option<String>), RestoreError> {
    let mut r = R(b);
    if r.take(4, "magic")? != MAGIC {
        return bad("not an IKE SA checkpoint");
    }
    let v = r.u8("version")?;
    if v != VERSION {
        return bad(format!("version {v}, this esprit-ike reads {VERSION}"));
    }
    let spi = r.u64("spi")?;
    let initiator = r.bool("initiator")?;
    let (spi_i, spi_r) = (r.u64("spi_i")?, r.u64("spi_r")?);
    let (local, remote) = (r.sock("local")?, r.sock("remote")?);
    let nat = r.bool("nat")?;
    let conn_name = r.str("connection")?;
    let conn = cfg.connections.iter().position(|x| x.name == conn_name);
    let (eid, ebits) = (r.u16("encr")?, r.u16("encr key bits")?);
    let encr = EncrAlg::from_id(eid, (ebits != 0).then_some(ebits))
        .ok_or_else(|| RestoreError(format!("encryption algorithm {eid}/{ebits}")))?;
    let pid = r.u16("prf")?;
    let prf = PrfAlg::from_id(pid).ok_or_else(|| RestoreError(format!("PRF {pid}")))?;
    let iid = r.u16("integ")?;
    let integ = match iid {
        0 => None,
        x => Some(IntegAlg::from_id(x).ok_or_else(|| RestoreError(format!("integrity algorithm {x}")))?),
    };
    let gid = r.u16("dh")?;
    let dh = DhGroup::from_id(gid).ok_or_else(|| RestoreError(format!("DH group {gid}")))?;
    let suite = IkeSuite { encr, prf, integ, dh };
    let keys = IkeKeys {
        sk_d: r.secret("SK_d")?,
        sk_ai: r.secret("SK_ai")?,
        sk_ar: r.secret("SK_ar")?,
        sk_ei: r.secret("SK_ei")?,
        sk_er: r.secret("SK_er")?,
        sk_pi: r.secret("SK_pi")?,
        sk_pr: r.secret("SK_pr")?,
    };
    if keys.sk_ei.len() != suite.encr_key_len() || keys.sk_ai.len() != suite.integ.map_or(0, |i| i.key_len()) {
        return bad("IKE SA key lengths do not fit its algorithms");
    }
    let iv_out = r.u64("iv")?;
    let my_next_id = r.u32("my message ID")?;
    let peer_next_id = r.u32("peer message ID")?;
    let last_reply = if r.bool("last reply")? {
        let id = r.u32("last reply")?;
        let n = r.u16("last reply")?;
        Some((id, (0..n).map(|_| r.bytes("last reply")).collect::<Result<Vec<_>, _>>()?))
    } else {
        None
    };
    let frag_ok = r.bool("fragmentation")?;
    let (ni, nr) = (r.bytes("Ni")?, r.bytes("Nr")?);
    let peer_id = Identification { kind: IdType(r.u8("peer identity")?), data: r.bytes("peer identity")? };
    let nv = r.u8("virtual IPs")?;
    let vips = (0..nv).map(|_| r.ip("virtual IP")).collect::<Result<Vec<_>, _>>()?;
    let created = c.before(r.i64("created")?);
    let rekey_at = r.opt_time(c, "rekey time")?;
    let expire_at = r.opt_time(c, "expiry")?;
    let nq = r.u16("queue")?;
    let mut queue = VecDeque::new();
    for _ in 0..nq {
        let (t, x) = (r.u8("queue")?, r.u64("queue")?);
        queue.push_back(match t {
            1 => Queued::RekeyChild(x),
            2 => Queued::RekeyIke,
            3 => Queued::DeleteChild(x),
            4 => Queued::DeleteIke,
            5 => Queued::Dpd,
            _ => return bad(format!("queued request kind {t}")),
        });
    }
    let pending = read_pending(&mut r, p, c)?;
    let nc = r.u16("children")?;
    let conn_label = conn.and_then(|i| cfg.connections.get(i)).map_or_else(|| conn_name.clone(), |x| x.name.clone());
    let mut children = Vec::with_capacity(nc as usize);
    for _ in 0..nc {
        children.push(read_child(&mut r, spi, &conn_label, c)?);
    }
    if !r.0.is_empty() {
        return bad(format!("{} bytes after the end", r.0.len()));
    }
    // A CHILD rekey whose request cannot be completed any more starts again.
    let rekeying = match &pending {
        Some(Pending { task: Task::RekeyChild(x), .. }) => Some(x.old),
        _ => None,
    };
    for ch in &mut children {
        if ch.state == ChildState::Rekeying && Some(ch.cookie) != rekeying {
            ch.state = ChildState::Installed;
            if !queue.contains(&Queued::RekeyChild(ch.cookie)) {
                queue.push_back(Queued::RekeyChild(ch.cookie));
            }
        }
    }
    let sa = IkeSa {
        spi,
        initiator,
        spi_i,
        spi_r,
        local,
        remote,
        nat,
        candidates: conn.into_iter().collect(),
        conn,
        suite,
        keys,
        iv_out,
        state: SaState::Established,
        my_next_id,
        pending,
        queue,
        peer_next_id,
        last_reply,
        reasm: None,
        frag_ok,
        peer_hashes: Vec::new(),
        ni,
        nr,
        init_req: Vec::new(),
        init_resp: Vec::new(),
        // Authenticated before the checkpoint was written (only established SAs are kept).
        peer: Some(PeerAuthenticated::new_after_verification(peer_id)),
        vips,
        children,
        created,
        rekey_at,
        expire_at,
        last_rx: c.now,
        scheduled: None,
        init_opts: None,
        rekey_collision: None,
    };
    Ok((Box::new(sa), conn.is_none().then_some(conn_name)))
}

fn read_pending(r: &mut R<'_>, p: &'static dyn CryptoProvider, c: Clock) -> Result<Option<Pending>, RestoreError> {
    if !r.bool("request in flight")? {
        return Ok(None);
    }
    let id = r.u32("request")?;
    let exchange = ExchangeType(r.u8("request")?);
    let sends = r.u32("request")?;
    let next = c.instant(r.i64("request")?);
    let n = r.u16("request")?;
    let datagrams = (0..n).map(|_| r.bytes("request")).collect::<Result<Vec<_>, _>>()?;
    let task = match r.u8("request task")? {
        1 => Task::Dpd,
        2 => {
            let n = r.u16("deleted children")?;
            Task::DeleteChildren((0..n).map(|_| r.u64("deleted children")).collect::<Result<_, _>>()?)
        }
        3 => Task::DeleteIke,
        4 => {
            let old = r.u64("rekey")?;
            let spi_in = r.u32("rekey")?;
            let ni = r.bytes("rekey")?;
            let dh = if r.bool("rekey")? { Some(r.dh(p, "rekey")?) } else { None };
            Task::RekeyChild(Box::new(RekeyChildSent { old, spi_in, ni, dh }))
        }
        5 => {
            let new_spi = r.u64("IKE rekey")?;
            let ni = r.bytes("IKE rekey")?;
            let dh = r.dh(p, "IKE rekey")?;
            Task::RekeyIke(Box::new(RekeyIkeSent { new_spi, ni, dh }))
        }
        t => return bad(format!("request task {t}")),
    };
    Ok(Some(Pending { id, exchange, datagrams, sends, next, task }))
}

fn read_child(r: &mut R<'_>, ike_spi: u64, connection: &str, c: Clock) -> Result<Child, RestoreError> {
    let cookie = r.u64("cookie")?;
    let transform = r.transform("child transform")?;
    let esn = r.bool("esn")?;
    let (spi_in, spi_out) = (r.u32("child SPI")?, r.u32("child SPI")?);
    let keys_in = ChildKeys { enc: r.secret("child key")?, int: r.secret("child key")? };
    let keys_out = ChildKeys { enc: r.secret("child key")?, int: r.secret("child key")? };
    for k in [&keys_in, &keys_out] {
        if k.enc.len() != transform.enc_key_len() || k.int.len() != transform.int_key_len() {
            return bad(format!("child {cookie}: key lengths do not fit {}", transform.name()));
        }
    }
    let install = ChildInstall {
        cookie,
        ike_spi,
        connection: connection.to_string(),
        transform,
        esn,
        spi_in,
        spi_out,
        keys_in,
        keys_out,
        local: r.sock("child local")?,
        remote: r.sock("child remote")?,
        encap: r.bool("encap")?,
        local_ts: r.ts("local TS")?,
        remote_ts: r.ts("remote TS")?,
        policies: r.cidrs("policies")?,
        route: r.bool("route")?,
        replay_window: r.u32("replay window")?,
        soft_secs: r.u32("soft lifetime")?,
        hard_secs: r.u32("hard lifetime")?,
        idle_secs: r.u32("idle")?,
    };
    let routed = r.bool("routed")?;
    let state = match r.u8("child state")? {
        0 => ChildState::Installed,
        1 => ChildState::Rekeying,
        2 => ChildState::Rekeyed { by: r.u64("child state")? },
        3 => ChildState::Deleting,
        x => return bad(format!("child state {x}")),
    };
    let idle = r.bool("idle")?;
    let nonces = (r.bytes("child nonce")?, r.bytes("child nonce")?);
    let remove_at = r.opt_time(c, "removal")?;
    let rekey_retry = r.opt_time(c, "rekey retry")?;
    let mut child = Child::new(Box::new(install), nonces);
    child.routed = routed;
    child.state = state;
    child.idle = idle;
    child.remove_at = remove_at;
    child.rekey_retry = rekey_retry;
    Ok(child)
}
