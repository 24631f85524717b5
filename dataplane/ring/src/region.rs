//! The shared region between esprit-ike and esprit-dataplane: a file under /dev/shm with a
//! versioned header and two rings, one per direction.
//!
//! ```text
//! offset        size   contents
//! 0             128    fixed header: magic "ESPRITRG", ABI major/minor, header length,
//!                      region length, ring capacity, record limit, creation time
//! 128           128    control side: generation, pid, ABI minor, attach time
//! 256           128    data side: the same
//! 384           256    ring to data:    producer line (head, sent, full)  | 128 each,
//! 640           256    ring to control: consumer line (tail, received,    | so no two
//!                                       corrupt, rejected)                | writers share one
//! 4096          C      ring to data, data area (C: a power of two, 128 KiB to 1 GiB)
//! 4096 + C      C      ring to control, data area
//! ```
//!
//! Whichever process comes first creates and initialises the file; the other attaches. Both
//! take an OFD lock on byte 0 of the file while they do (so one initialises and the other
//! sees it whole), and hold one on byte 1 (control) or 2 (data) for as long as they are
//! attached: a second process for the same side is refused, and the lock goes away when its
//! holder dies. Each attach increments that side's generation, which also stamps every
//! record it sends, so the peer sees a restart in the stream itself.
//!
//! The region is a file: it and every message not yet consumed survive either process. A
//! restarted producer carries on at the published head; a restarted consumer at its
//! committed tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroize;

use crate::codec::{DecodeError, EncodeError};
use crate::message::{Heading, Message, MessageKind};
use crate::ring::{
    bump, ConsState, Pending, ProdState, PushError, RingCorrupt, RingCtl, RingMem, RingStats, MAX_RECORD_LEN,
    RECORD_HEADER_LEN,
};
use crate::shm::{self, Mapping};

/// The ABI major version: messages, record framing and region layout. A peer with another
/// major version is refused.
pub const ABI_MAJOR: u16 = 1;
/// The ABI minor version: additions a peer of the same major version may ignore.
pub const ABI_MINOR: u16 = 1;

const MAGIC: u64 = u64::from_le_bytes(*b"ESPRITRG");
/// Bytes before the first data area.
pub const HEADER_LEN: usize = 4096;
/// Smallest ring data area: room for the largest record and more.
pub const MIN_CAPACITY: usize = 128 * 1024;
/// Largest ring data area.
pub const MAX_CAPACITY: usize = 1 << 30;
/// Data area of each ring unless configured: about 16,000 SA installs in flight.
pub const DEFAULT_CAPACITY: usize = 4 << 20;

const INIT_LOCK: i64 = 0;

/// Which process is attaching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// esprit-ike.
    Control,
    /// esprit-dataplane.
    Data,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Control => 0,
            Side::Data => 1,
        }
    }
    fn lock_byte(self) -> i64 {
        self.index() as i64 + 1
    }
    pub fn peer(self) -> Side {
        match self {
            Side::Control => Side::Data,
            Side::Data => Side::Control,
        }
    }
    /// Which way this side sends.
    pub fn sends(self) -> Heading {
        match self {
            Side::Control => Heading::ToData,
            Side::Data => Heading::ToControl,
        }
    }
}

impl core::fmt::Display for Side {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Side::Control => "control",
            Side::Data => "data",
        })
    }
}

fn ring_index(h: Heading) -> usize {
    match h {
        Heading::ToData => 0,
        Heading::ToControl => 1,
    }
}

#[repr(C, align(128))]
#[derive(Debug)]
struct Fixed {
    magic: AtomicU64,
    abi_major: AtomicU64,
    abi_minor: AtomicU64,
    header_len: AtomicU64,
    region_len: AtomicU64,
    ring_capacity: AtomicU64,
    max_record: AtomicU64,
    created_unix_ns: AtomicU64,
}

#[repr(C, align(128))]
#[derive(Debug)]
struct SideBlock {
    generation: AtomicU64,
    pid: AtomicU64,
    abi_minor: AtomicU64,
    attached_unix_ns: AtomicU64,
}

#[repr(C)]
#[derive(Debug)]
struct Header {
    fixed: Fixed,
    sides: [SideBlock; 2],
    rings: [RingCtl; 2],
}

const _: () = {
    assert!(core::mem::size_of::<Header>() <= HEADER_LEN);
    assert!(core::mem::offset_of!(Header, sides) == 128);
    assert!(core::mem::offset_of!(Header, rings) == 384);
    assert!(core::mem::size_of::<RingCtl>() == 256);
    assert!(crate::ring::record_space(MAX_RECORD_LEN) <= MIN_CAPACITY);
};

/// How a region is made if this side creates it. The creator's choice stands: a process
/// that attaches to an existing region uses its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOptions {
    /// Bytes of each ring's data area: a power of two from [`MIN_CAPACITY`] to
    /// [`MAX_CAPACITY`].
    pub capacity: usize,
    /// File mode of a new region.
    pub mode: u32,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions { capacity: DEFAULT_CAPACITY, mode: 0o600 }
    }
}

/// Why a process could not attach to a region.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: another process is attached as the {side} side", path.display())]
    SideBusy { path: PathBuf, side: Side },
    #[error(
        "{}: not an Esprit ring region (magic {magic:#018x}); remove it if no Esprit process uses it",
        path.display()
    )]
    NotARegion { path: PathBuf, magic: u64 },
    #[error(
        "{}: the region speaks ABI {theirs_major}.{theirs_minor} and this build speaks \
         {ours_major}.{ours_minor}: major versions must match (stop both processes and remove \
         the file to start afresh)",
        path.display()
    )]
    AbiMismatch { path: PathBuf, ours_major: u16, ours_minor: u16, theirs_major: u64, theirs_minor: u64 },
    #[error("{}: region header inconsistent: {what} is {value}", path.display())]
    BadHeader { path: PathBuf, what: &'static str, value: u64 },
    #[error("{}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: RingCorrupt,
    },
    #[error("ring capacity {capacity} is not valid: a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}")]
    BadCapacity { capacity: usize },
    #[error(
        "instance name {name:?} is not valid: 1 to 64 characters of A-Z a-z 0-9 . _ - \
         (not starting with '.')"
    )]
    BadInstance { name: String },
}

/// The region file of an instance: `/dev/shm/esprit-<instance>`.
pub fn shm_path(instance: &str) -> Result<PathBuf, AttachError> {
    let ok = !instance.is_empty()
        && instance.len() <= 64
        && !instance.starts_with('.')
        && instance.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(AttachError::BadInstance { name: instance.to_string() });
    }
    Ok(PathBuf::from(format!("/dev/shm/esprit-{instance}")))
}

/// The other side as the region shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// How many times it attached (0: never).
    pub generation: u64,
    pub pid: u32,
    pub abi_minor: u16,
    pub attached_unix_ns: u64,
    /// It holds its side's lock now (it is running).
    pub alive: bool,
}

/// An attached region, shared by a [`Sender`] and a [`Receiver`].
#[derive(Debug)]
pub struct Region {
    map: Mapping,
    path: PathBuf,
    side: Side,
    cap: usize,
    generation: u64,
}

impl Region {
    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_LEN bytes (checked at attach), page
        // aligned, and a `Header` is atomics only, valid for any bytes.
        unsafe { self.map.at::<Header>(0) }
    }

    fn ring(&self, h: Heading) -> (&RingCtl, ShmMem) {
        let i = ring_index(h);
        let mem = ShmMem {
            // SAFETY: HEADER_LEN + 2 * cap == map.len() (checked at attach).
            base: unsafe { self.map.ptr().add(HEADER_LEN + i * self.cap) },
            cap: self.cap,
        };
        (&self.header().rings[i], mem)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn side(&self) -> Side {
        self.side
    }
    /// Bytes of each ring's data area.
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// This process's generation: 1 for the first attach of this side, then one more per
    /// re-attach.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The other side, now.
    pub fn peer(&self) -> PeerInfo {
        let peer = self.side.peer();
        let s = &self.header().sides[peer.index()];
        PeerInfo {
            generation: s.generation.load(Acquire),
            pid: s.pid.load(Relaxed) as u32,
            abi_minor: s.abi_minor.load(Relaxed) as u16,
            attached_unix_ns: s.attached_unix_ns.load(Relaxed),
            alive: shm::is_locked(self.map.file(), peer.lock_byte()).unwrap_or(false),
        }
    }
    /// The counters of the ring going `h`.
    pub fn ring_stats(&self, h: Heading) -> RingStats {
        self.ring(h).0.stats()
    }

    /// Attaches as `side` to the region at `path`, creating it with `opts` if there is none.
    pub fn attach(path: &Path, side: Side, opts: &RegionOptions) -> Result<Channel, AttachError> {
        let cap = opts.capacity;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(AttachError::BadCapacity { capacity: cap });
        }
        let io = |op: &'static str| move |source| AttachError::Io { path: path.to_owned(), op, source };
        let file =
            OpenOptions::new().read(true).write(true).create(true).mode(opts.mode).open(path).map_err(io("open"))?;
        shm::lock_wait(&file, INIT_LOCK).map_err(io("lock"))?;
        // On error the file is closed, which drops its locks.
        let region = Arc::new(Region::attach_locked(file, path, side, opts)?);
        shm::unlock(region.map.file(), INIT_LOCK).map_err(io("unlock"))?;
        let (tx_ctl, tx_mem) = region.ring(side.sends());
        let tx = ProdState::attach(tx_ctl, tx_mem.cap, region.generation as u32)
            .map_err(|source| AttachError::Corrupt { path: path.to_owned(), source })?;
        let rx_heading = side.peer().sends();
        let (rx_ctl, rx_mem) = region.ring(rx_heading);
        let rx = ConsState::attach(rx_ctl);
        Ok(Channel {
            tx: Sender { region: region.clone(), mem: tx_mem, st: tx, heading: side.sends(), scratch: Vec::new() },
            rx: Receiver { region, mem: rx_mem, st: rx, heading: rx_heading, buf: Vec::new() },
        })
    }

    fn attach_locked(file: File, path: &Path, side: Side, opts: &RegionOptions) -> Result<Region, AttachError> {
        let io = |op: &'static str| move |source| AttachError::Io { path: path.to_owned(), op, source };
        if !shm::try_lock(&file, side.lock_byte()).map_err(io("lock"))? {
            return Err(AttachError::SideBusy { path: path.to_owned(), side });
        }
        let size = file.metadata().map_err(io("stat"))?.len();
        let mut m = [0u8; 8];
        if size >= HEADER_LEN as u64 {
            file.read_exact_at(&mut m, 0).map_err(io("read"))?;
        }
        let magic = u64::from_le_bytes(m);
        let map = if magic == 0 {
            // New, or its creator died before finishing (the magic is written last, under
            // the init lock): nothing was ever exchanged through it.
            // Sized, then the header zeroed in place: never shrunk to nothing, so a tool
            // mapping the header meanwhile (`inspect`) cannot fault. Leftover bytes in the
            // data areas are never read: both rings start empty.
            let total = HEADER_LEN + 2 * opts.capacity;
            file.set_len(total as u64).map_err(io("truncate"))?;
            file.write_all_at(&[0; HEADER_LEN], 0).map_err(io("write"))?;
            let map = Mapping::new(file, total, true).map_err(io("mmap"))?;
            // SAFETY: `total` > HEADER_LEN; atomics only.
            let h = unsafe { map.at::<Header>(0) };
            let f = &h.fixed;
            f.abi_major.store(ABI_MAJOR.into(), Relaxed);
            f.abi_minor.store(ABI_MINOR.into(), Relaxed);
            f.header_len.store(HEADER_LEN as u64, Relaxed);
            f.region_len.store(total as u64, Relaxed);
            f.ring_capacity.store(opts.capacity as u64, Relaxed);
            f.max_record.store(MAX_RECORD_LEN as u64, Relaxed);
            f.created_unix_ns.store(shm::unix_ns(), Relaxed);
            f.magic.store(MAGIC, Release);
            map
        } else if magic != MAGIC {
            return Err(AttachError::NotARegion { path: path.to_owned(), magic });
        } else {
            let map = Mapping::new(file, size as usize, true).map_err(io("mmap"))?;
            check_header(&map, path)?;
            map
        };
        // SAFETY: checked or made above.
        let h = unsafe { map.at::<Header>(0) };
        let cap = h.fixed.ring_capacity.load(Relaxed) as usize;
        let s = &h.sides[side.index()];
        // We hold this side's lock: the only writer.
        let generation = s.generation.load(Relaxed).wrapping_add(1);
        s.pid.store(std::process::id().into(), Relaxed);
        s.abi_minor.store(ABI_MINOR.into(), Relaxed);
        s.attached_unix_ns.store(shm::unix_ns(), Relaxed);
        s.generation.store(generation, Release);
        Ok(Region { map, path: path.to_owned(), side, cap, generation })
    }
}

fn check_header(map: &Mapping, path: &Path) -> Result<(), AttachError> {
    // SAFETY: the caller mapped at least HEADER_LEN bytes; atomics only.
    let f = unsafe { &map.at::<Header>(0).fixed };
    let major = f.abi_major.load(Acquire);
    if major != ABI_MAJOR as u64 {
        return Err(AttachError::AbiMismatch {
            path: path.to_owned(),
            ours_major: ABI_MAJOR,
            ours_minor: ABI_MINOR,
            theirs_major: major,
            theirs_minor: f.abi_minor.load(Relaxed),
        });
    }
    let bad = |what, value| Err(AttachError::BadHeader { path: path.to_owned(), what, value });
    let hl = f.header_len.load(Relaxed);
    if hl != HEADER_LEN as u64 {
        return bad("header length", hl);
    }
    let cap = f.ring_capacity.load(Relaxed);
    if !cap.is_power_of_two() || !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&cap) {
        return bad("ring capacity", cap);
    }
    let len = f.region_len.load(Relaxed);
    if len != HEADER_LEN as u64 + 2 * cap || len != map.len() as u64 {
        return bad("region length", len);
    }
    let mr = f.max_record.load(Relaxed);
    if mr != MAX_RECORD_LEN as u64 {
        return bad("record limit", mr);
    }
    Ok(())
}

/// A snapshot of a region's header for tools (espritctl, tests): read through a read-only
/// mapping, without attaching and without disturbing either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSnapshot {
    pub abi_major: u64,
    pub abi_minor: u64,
    pub capacity: u64,
    pub created_unix_ns: u64,
    /// Control side, data side.
    pub sides: [PeerInfo; 2],
    /// The ring to the data plane, the ring to the control plane.
    pub rings: [RingStats; 2],
}

/// Reads a region's header without attaching.
pub fn inspect(path: &Path) -> Result<RegionSnapshot, AttachError> {
    let io = |op: &'static str| move |source| AttachError::Io { path: path.to_owned(), op, source };
    let file = File::open(path).map_err(io("open"))?;
    let size = file.metadata().map_err(io("stat"))?.len();
    if size < HEADER_LEN as u64 {
        return Err(AttachError::BadHeader { path: path.to_owned(), what: "file length", value: size });
    }
    let map = Mapping::new(file, HEADER_LEN, false).map_err(io("mmap"))?;
    // SAFETY: HEADER_LEN bytes mapped; atomics only. The mapping is read-only: only Relaxed
    // loads of at most 8 bytes, which std documents as sound on read-only memory on
    // x86_64 and aarch64, and fences.
    let h = unsafe { map.at::<Header>(0) };
    let magic = h.fixed.magic.load(Relaxed);
    core::sync::atomic::fence(Acquire);
    if magic != MAGIC {
        return Err(AttachError::NotARegion { path: path.to_owned(), magic });
    }
    let side = |s: Side| {
        let b = &h.sides[s.index()];
        PeerInfo {
            generation: b.generation.load(Relaxed),
            pid: b.pid.load(Relaxed) as u32,
            abi_minor: b.abi_minor.load(Relaxed) as u16,
            attached_unix_ns: b.attached_unix_ns.load(Relaxed),
            alive: shm::is_locked(map.file(), s.lock_byte()).unwrap_or(false),
        }
    };
    Ok(RegionSnapshot {
        abi_major: h.fixed.abi_major.load(Relaxed),
        abi_minor: h.fixed.abi_minor.load(Relaxed),
        capacity: h.fixed.ring_capacity.load(Relaxed),
        created_unix_ns: h.fixed.created_unix_ns.load(Relaxed),
        sides: [side(Side::Control), side(Side::Data)],
        rings: [h.rings[0].stats(), h.rings[1].stats()],
    })
}

/// A ring's data area inside the mapping.
#[derive(Debug, Clone, Copy)]
struct ShmMem {
    base: *mut u8,
    cap: usize,
}

// SAFETY: `base` points into a `Mapping` that the owner of this `ShmMem` (a `Sender` or
// `Receiver`) keeps alive through its `Arc<Region>`; the mapping itself is Send + Sync.
unsafe impl Send for ShmMem {}

impl RingMem for ShmMem {
    fn cap(&self) -> usize {
        self.cap
    }
    unsafe fn write(&self, off: usize, src: &[u8]) {
        // SAFETY: the caller keeps `off + len` within the data area; `src` is private memory,
        // so the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(off), src.len()) }
    }
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: as for `write`.
        unsafe { core::ptr::copy_nonoverlapping(self.base.add(off), dst.as_mut_ptr(), dst.len()) }
    }
    unsafe fn zero(&self, off: usize, len: usize) {
        // SAFETY: as for `write`.
        unsafe { core::ptr::write_bytes(self.base.add(off), 0, len) }
    }
    unsafe fn write_u64(&self, off: usize, v: u64) {
        // SAFETY: as for `write`; `base` is page-aligned plus a multiple of the (power of two,
        // at least 128 KiB) capacity, and `off` is a multiple of 8, so the store is aligned:
        // one instruction, which a killed process either did or did not execute. Volatile so
        // that it is not split or merged with the zeroing after it.
        unsafe { core::ptr::write_volatile(self.base.add(off).cast::<u64>(), v.to_le()) }
    }
}

/// Both ends of a process's attachment: it sends on one ring and receives on the other.
#[derive(Debug)]
pub struct Channel {
    tx: Sender,
    rx: Receiver,
}

impl Channel {
    /// Attaches as `side` to the region at `path`, creating it with `opts` if there is none.
    /// See [`Region::attach`].
    pub fn attach(path: &Path, side: Side, opts: &RegionOptions) -> Result<Channel, AttachError> {
        Region::attach(path, side, opts)
    }
    pub fn region(&self) -> &Region {
        &self.tx.region
    }
    pub fn sender(&mut self) -> &mut Sender {
        &mut self.tx
    }
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.rx
    }
    /// For a sending thread and a receiving thread. The region stays attached until both
    /// are dropped.
    pub fn split(self) -> (Sender, Receiver) {
        (self.tx, self.rx)
    }
}

/// Why a message was not sent. In every case the caller still has it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("ring full")]
    Full,
    #[error("ring still full after {0:?}")]
    Timeout(Duration),
    #[error("record of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("a {0} message cannot be sent from this side")]
    WrongHeading(MessageKind),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Corrupt(#[from] RingCorrupt),
}

impl From<PushError> for SendError {
    fn from(e: PushError) -> SendError {
        match e {
            PushError::Full => SendError::Full,
            PushError::TooLarge { len, max } => SendError::TooLarge { len, max },
            PushError::Corrupt(c) => SendError::Corrupt(c),
        }
    }
}

/// Spin, then yield, then sleep: for waits whose end the other process decides.
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        self.0 = self.0.saturating_add(1);
        if self.0 < 64 {
            core::hint::spin_loop();
        } else if self.0 < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// The producer end of this side's outgoing ring.
#[derive(Debug)]
pub struct Sender {
    region: Arc<Region>,
    mem: ShmMem,
    st: ProdState,
    heading: Heading,
    /// Encoding buffer, reused; zeroed after a message with key material.
    scratch: Vec<u8>,
}

impl Sender {
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Sends `m` if there is room now; [`SendError::Full`] otherwise, with nothing written.
    pub fn try_send(&mut self, m: &Message) -> Result<(), SendError> {
        self.send_with(m, None)
    }

    /// Sends `m`, waiting (spinning, yielding, then sleeping 50 µs at a time) for room for
    /// at most `timeout`.
    pub fn send_timeout(&mut self, m: &Message, timeout: Duration) -> Result<(), SendError> {
        self.send_with(m, Some(timeout))
    }

    fn send_with(&mut self, m: &Message, timeout: Option<Duration>) -> Result<(), SendError> {
        if m.heading() != self.heading {
            return Err(SendError::WrongHeading(m.kind()));
        }
        m.encode_into(&mut self.scratch)?;
        let mut scratch = core::mem::take(&mut self.scratch);
        let r = self.push_waiting(&scratch, timeout);
        if m.has_keys() {
            scratch.as_mut_slice().zeroize();
        }
        self.scratch = scratch;
        r
    }

    /// Sends one record of raw bytes: for tests and tools that need to send what a buggy
    /// peer would. The receiver decodes it as a message.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.push_waiting(bytes, None)
    }

    fn push_waiting(&mut self, bytes: &[u8], timeout: Option<Duration>) -> Result<(), SendError> {
        let (ctl, _) = self.region.ring(self.heading);
        let Some(timeout) = timeout else {
            return Ok(self.st.push(ctl, &self.mem, bytes)?);
        };
        let start = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            match self.st.push(ctl, &self.mem, bytes) {
                Err(PushError::Full) if start.elapsed() < timeout => backoff.snooze(),
                Err(PushError::Full) => return Err(SendError::Timeout(timeout)),
                r => return Ok(r?),
            }
        }
    }

    /// The largest encoded message this ring takes.
    pub fn max_record(&self) -> usize {
        MAX_RECORD_LEN.min(self.mem.cap - RECORD_HEADER_LEN)
    }
}

/// A message and the generation of the process that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender's generation when it sent this (its low 32 bits): a change means the
    /// sender restarted.
    pub generation: u32,
    /// Where the record sat in the ring's byte stream: strictly increasing over the life of
    /// the region, across restarts of either side. A consumer that stores the position of
    /// the last message it applied can recognise a redelivered one.
    pub position: u64,
    pub message: Message,
}

/// Why a record was not delivered. Each is counted in the ring's counters and the record
/// (or, for framing errors, everything published so far) is skipped: the next call carries
/// on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The ring could not be framed; counted in `corrupt`.
    #[error(transparent)]
    Corrupt(#[from] RingCorrupt),
    /// A well-framed record is not a message; counted in `rejected`.
    #[error("record from sender generation {generation} is not a message: {error}")]
    Decode { generation: u32, error: DecodeError },
    /// A message that travels the other way; counted in `rejected`.
    #[error("sender generation {generation} sent a {kind} message, which travels the other way")]
    WrongHeading { generation: u32, kind: MessageKind },
}

/// The consumer end of this side's incoming ring.
#[derive(Debug)]
pub struct Receiver {
    region: Arc<Region>,
    mem: ShmMem,
    st: ConsState,
    heading: Heading,
    /// Copy of the record being decoded, reused; zeroed after each decode.
    buf: Vec<u8>,
}

impl Receiver {
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The next message, consumed: a process that dies after this returns does not see it
    /// again. `Ok(None)` if the ring is empty.
    pub fn try_recv(&mut self) -> Result<Option<Received>, RecvError> {
        Ok(self.next()?.map(|(p, r)| {
            self.commit(p);
            r
        }))
    }

    /// The next message, handed to `apply` and consumed only when `apply` returns: a
    /// process that dies inside `apply` leaves it for its successor (at-least-once).
    pub fn try_recv_with<T>(&mut self, apply: impl FnOnce(Received) -> T) -> Result<Option<T>, RecvError> {
        let Some((p, r)) = self.next()? else {
            return Ok(None);
        };
        let t = apply(r);
        self.commit(p);
        Ok(Some(t))
    }

    /// Waits for the next message for at most `timeout`; `Ok(None)` if none came.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Received>, RecvError> {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            if let Some(r) = self.try_recv()? {
                return Ok(Some(r));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            backoff.snooze();
        }
    }

    /// The next record's raw bytes into `buf`, consumed; its sender's generation.
    pub fn try_recv_raw(&mut self, buf: &mut Vec<u8>) -> Result<Option<u32>, RecvError> {
        let (ctl, _) = self.region.ring(self.heading);
        let Some(p) = self.st.peek(ctl, &self.mem, buf)? else {
            return Ok(None);
        };
        let g = p.generation;
        self.st.commit(ctl, &self.mem, p);
        Ok(Some(g))
    }

    fn next(&mut self) -> Result<Option<(Pending, Received)>, RecvError> {
        let (ctl, _) = self.region.ring(self.heading);
        let Some(p) = self.st.peek(ctl, &self.mem, &mut self.buf)? else {
            return Ok(None);
        };
        let decoded = Message::decode(&self.buf);
        self.buf.as_mut_slice().zeroize();
        let generation = p.generation;
        let err = match decoded {
            Ok(message) if message.heading() == self.heading => {
                let position = p.position();
                return Ok(Some((p, Received { generation, position, message })));
            }
            Ok(m) => RecvError::WrongHeading { generation, kind: m.kind() },
            Err(error) => RecvError::Decode { generation, error },
        };
        self.st.commit(ctl, &self.mem, p);
        bump(&ctl.cons.rejected);
        Err(err)
    }

    fn commit(&mut self, p: Pending) {
        let (ctl, _) = self.region.ring(self.heading);
        self.st.commit(ctl, &self.mem, p);
    }
}
