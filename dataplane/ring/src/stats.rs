//! The stats segment: the data plane's counters in a shared file that the control plane
//! reads without disturbing the writers (as VPP's stats segment).
//!
//! ```text
//! offset            contents
//! 0                 header (256 bytes): magic "ESPRITST", version major/minor, layout
//!                   (lcores, counter counts, SA slots, offsets, stride), epoch, state,
//!                   writer pid, creation time
//! 256               names: each a length byte then the name; the per-lcore counters first,
//!                   then the per-SA ones
//! data_offset       lcore 0: one u64 per counter, then max_sa × per-SA counters
//! + stride          lcore 1 ...        (stride a multiple of 128: no line shared by lcores)
//! ```
//!
//! Each lcore's block has one writer, the lcore (relaxed load and store: no locked
//! instruction); readers do relaxed loads, and may see a counter one increment behind.
//!
//! A restarted data plane does not reuse the file: it marks the old one superseded,
//! removes it, and publishes a new one (built under a temporary name, then renamed) with
//! the next `epoch`. A reader polls [`StatsReader::status`] and reopens on
//! [`ReaderStatus::Superseded`]; counters start again from zero in the new epoch.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering::*};
use std::sync::Arc;

use crate::shm::{self, Mapping};

const MAGIC: u64 = u64::from_le_bytes(*b"ESPRITST");
/// Layout version; a reader refuses another major version.
pub const STATS_VERSION_MAJOR: u16 = 1;
pub const STATS_VERSION_MINOR: u16 = 0;

const HEADER_LEN: usize = 256;
const BLOCK_ALIGN: u64 = 128;
const PAGE: u64 = 4096;
const WRITER_LOCK: i64 = 0;

const STATE_LIVE: u64 = 1;
const STATE_SUPERSEDED: u64 = 2;

pub const MAX_LCORES: usize = 1024;
pub const MAX_COUNTERS: usize = 4096;
pub const MAX_SA_COUNTERS: usize = 64;
pub const MAX_SA_SLOTS: usize = 1 << 24;
pub const MAX_NAME_LEN: usize = 64;
/// Largest segment (mostly untouched, so mostly unallocated, on tmpfs).
pub const MAX_SEGMENT: u64 = 16 << 30;

#[repr(C)]
#[derive(Debug)]
struct Header {
    magic: AtomicU64,
    version_major: AtomicU64,
    version_minor: AtomicU64,
    total_len: AtomicU64,
    lcores: AtomicU64,
    n_counters: AtomicU64,
    n_sa_counters: AtomicU64,
    max_sa: AtomicU64,
    names_offset: AtomicU64,
    names_len: AtomicU64,
    data_offset: AtomicU64,
    lcore_stride: AtomicU64,
    sa_offset: AtomicU64,
    epoch: AtomicU64,
    state: AtomicU64,
    writer_pid: AtomicU64,
    created_unix_ns: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_LEN);

/// What a data plane counts, fixed when the segment is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsLayout {
    /// Worker lcores, each with its own block.
    pub lcores: usize,
    /// Per-lcore counters ("rx_packets", "drop.replay", ...).
    pub counters: Vec<String>,
    /// Counters of each SA slot ("packets", "bytes", ...).
    pub sa_counters: Vec<String>,
    /// SA slots per lcore, addressed by index.
    pub max_sa: usize,
}

/// Offsets and sizes derived from a layout, the same for writer and reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    lcores: u64,
    n_counters: u64,
    n_sa_counters: u64,
    max_sa: u64,
    names_len: u64,
    data_offset: u64,
    stride: u64,
    sa_offset: u64,
    total: u64,
}

impl Geometry {
    fn new(lcores: u64, n_counters: u64, n_sa_counters: u64, max_sa: u64, names_len: u64) -> Option<Geometry> {
        let within = lcores >= 1
            && lcores <= MAX_LCORES as u64
            && n_counters <= MAX_COUNTERS as u64
            && n_sa_counters <= MAX_SA_COUNTERS as u64
            && max_sa <= MAX_SA_SLOTS as u64;
        if !within {
            return None;
        }
        let data_offset = (HEADER_LEN as u64).checked_add(names_len)?.next_multiple_of(PAGE);
        let sa_offset = n_counters * 8;
        let words = n_counters.checked_add(max_sa.checked_mul(n_sa_counters)?)?;
        let stride = words.checked_mul(8)?.next_multiple_of(BLOCK_ALIGN).max(BLOCK_ALIGN);
        let total = data_offset.checked_add(stride.checked_mul(lcores)?)?;
        (total <= MAX_SEGMENT).then_some(Geometry {
            lcores,
            n_counters,
            n_sa_counters,
            max_sa,
            names_len,
            data_offset,
            stride,
            sa_offset,
            total,
        })
    }
}

/// Why a stats segment could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: a running data plane already writes this stats segment", path.display())]
    WriterBusy { path: PathBuf },
    #[error("counter name {name:?} is not valid: 1 to {MAX_NAME_LEN} characters of a-z 0-9 _ .")]
    BadName { name: String },
    #[error("counter name {name:?} is registered twice")]
    Duplicate { name: String },
    #[error(
        "stats layout too large: {lcores} lcores, {counters} counters, {sa_counters} SA counters \
         × {max_sa} SA slots (limits: {MAX_LCORES} lcores, {MAX_COUNTERS} counters, \
         {MAX_SA_COUNTERS} SA counters, {MAX_SA_SLOTS} slots, {MAX_SEGMENT} bytes)"
    )]
    TooLarge { lcores: usize, counters: usize, sa_counters: usize, max_sa: usize },
    #[error("{}: not an Esprit stats segment (magic {magic:#018x})", path.display())]
    NotStats { path: PathBuf, magic: u64 },
    #[error(
        "{}: stats segment version {theirs}.x, this build reads {STATS_VERSION_MAJOR}.x",
        path.display()
    )]
    Version { path: PathBuf, theirs: u64 },
    #[error("{}: stats segment inconsistent: {what}", path.display())]
    Corrupt { path: PathBuf, what: &'static str },
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// A per-lcore counter, by its registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId(pub u32);

/// A per-SA counter, by its registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaCounterId(pub u32);

/// The data plane's handle on its stats segment. Hands out one [`LcoreStats`] per lcore.
#[derive(Debug)]
pub struct StatsWriter {
    map: Arc<Mapping>,
    geo: Geometry,
    counters: Vec<String>,
    sa_counters: Vec<String>,
    taken: Vec<bool>,
    epoch: u64,
    path: PathBuf,
}

impl StatsWriter {
    /// Makes a fresh segment at `path` (file mode 0644), superseding any left by a previous
    /// writer that is no longer running.
    pub fn create(path: &Path, layout: &StatsLayout) -> Result<StatsWriter, StatsError> {
        let mut names = Vec::new();
        for list in [&layout.counters, &layout.sa_counters] {
            for (i, n) in list.iter().enumerate() {
                if !valid_name(n) {
                    return Err(StatsError::BadName { name: n.clone() });
                }
                if list[..i].contains(n) {
                    return Err(StatsError::Duplicate { name: n.clone() });
                }
                names.push(n.len() as u8);
                names.extend_from_slice(n.as_bytes());
            }
        }
        let too_large = || StatsError::TooLarge {
            lcores: layout.lcores,
            counters: layout.counters.len(),
            sa_counters: layout.sa_counters.len(),
            max_sa: layout.max_sa,
        };
        let geo = Geometry::new(
            layout.lcores as u64,
            layout.counters.len() as u64,
            layout.sa_counters.len() as u64,
            layout.max_sa as u64,
            names.len() as u64,
        )
        .ok_or_else(too_large)?;
        let io = |op: &'static str| move |source| StatsError::Io { path: path.to_owned(), op, source };

        let epoch = supersede(path)?.wrapping_add(1);

        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.new", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let file =
            OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(&tmp).map_err(io("create"))?;
        let made = (|| {
            if !shm::try_lock(&file, WRITER_LOCK).map_err(io("lock"))? {
                return Err(StatsError::WriterBusy { path: path.to_owned() });
            }
            file.set_len(geo.total).map_err(io("truncate"))?;
            file.write_all_at(&names, HEADER_LEN as u64).map_err(io("write"))?;
            let map = Mapping::new(file, geo.total as usize, true).map_err(io("mmap"))?;
            // SAFETY: the mapping is `total` > HEADER_LEN bytes; atomics only.
            let h = unsafe { map.at::<Header>(0) };
            h.version_major.store(STATS_VERSION_MAJOR.into(), Relaxed);
            h.version_minor.store(STATS_VERSION_MINOR.into(), Relaxed);
            h.total_len.store(geo.total, Relaxed);
            h.lcores.store(geo.lcores, Relaxed);
            h.n_counters.store(geo.n_counters, Relaxed);
            h.n_sa_counters.store(geo.n_sa_counters, Relaxed);
            h.max_sa.store(geo.max_sa, Relaxed);
            h.names_offset.store(HEADER_LEN as u64, Relaxed);
            h.names_len.store(geo.names_len, Relaxed);
            h.data_offset.store(geo.data_offset, Relaxed);
            h.lcore_stride.store(geo.stride, Relaxed);
            h.sa_offset.store(geo.sa_offset, Relaxed);
            h.epoch.store(epoch, Relaxed);
            h.state.store(STATE_LIVE, Relaxed);
            h.writer_pid.store(std::process::id().into(), Relaxed);
            h.created_unix_ns.store(shm::unix_ns(), Relaxed);
            h.magic.store(MAGIC, Release);
            std::fs::rename(&tmp, path).map_err(io("rename"))?;
            Ok(map)
        })();
        let map = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(StatsWriter {
            map: Arc::new(map),
            geo,
            counters: layout.counters.clone(),
            sa_counters: layout.sa_counters.clone(),
            taken: vec![false; layout.lcores],
            epoch,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// This segment's epoch: one more than the segment it superseded.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn counter(&self, name: &str) -> Option<CounterId> {
        self.counters.iter().position(|n| n == name).map(|i| CounterId(i as u32))
    }
    pub fn sa_counter(&self, name: &str) -> Option<SaCounterId> {
        self.sa_counters.iter().position(|n| n == name).map(|i| SaCounterId(i as u32))
    }

    /// The writing handle of `lcore`: once per lcore, `None` after that or out of range.
    pub fn take_lcore(&mut self, lcore: usize) -> Option<LcoreStats> {
        let t = self.taken.get_mut(lcore)?;
        if *t {
            return None;
        }
        *t = true;
        let off = self.geo.data_offset + lcore as u64 * self.geo.stride;
        let words = (self.geo.stride / 8) as usize;
        // SAFETY: the block [off, off + stride) lies within the mapping (Geometry), is
        // 128-byte aligned, and holds only u64 counters (any bytes are valid).
        let base = unsafe { self.map.ptr().add(off as usize) }.cast::<AtomicU64>();
        Some(LcoreStats {
            _map: self.map.clone(),
            base,
            words,
            n_counters: self.geo.n_counters as usize,
            n_sa_counters: self.geo.n_sa_counters as usize,
            max_sa: self.geo.max_sa as usize,
            _not_sync: PhantomData,
        })
    }
}

/// Marks the segment at `path` superseded and removes it; its epoch (0 if none).
fn supersede(path: &Path) -> Result<u64, StatsError> {
    let io = |op: &'static str| move |source| StatsError::Io { path: path.to_owned(), op, source };
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("open")(e)),
    };
    if !shm::try_lock(&file, WRITER_LOCK).map_err(io("lock"))? {
        return Err(StatsError::WriterBusy { path: path.to_owned() });
    }
    let len = file.metadata().map_err(io("stat"))?.len();
    let mut epoch = 0;
    if len >= HEADER_LEN as u64 {
        let mut m = [0u8; 8];
        file.read_exact_at(&mut m, 0).map_err(io("read"))?;
        if u64::from_le_bytes(m) == MAGIC {
            let map = Mapping::new(file, HEADER_LEN, true).map_err(io("mmap"))?;
            // SAFETY: HEADER_LEN bytes mapped; atomics only.
            let h = unsafe { map.at::<Header>(0) };
            epoch = h.epoch.load(Relaxed);
            h.state.store(STATE_SUPERSEDED, Release);
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(epoch),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(epoch),
        Err(e) => Err(io("remove")(e)),
    }
}

/// One lcore's counters: its only writer. `Send` (made on the main thread, moved to the
/// lcore) but not `Sync`.
#[derive(Debug)]
pub struct LcoreStats {
    _map: Arc<Mapping>,
    base: *const AtomicU64,
    words: usize,
    n_counters: usize,
    n_sa_counters: usize,
    max_sa: usize,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: `base` points into the mapping that `_map` keeps alive; the counters are atomics.
unsafe impl Send for LcoreStats {}

impl LcoreStats {
    #[inline]
    fn word(&self, i: usize) -> Option<&AtomicU64> {
        // SAFETY: `i < words` keeps it inside this lcore's block of the live mapping.
        (i < self.words).then(|| unsafe { &*self.base.add(i) })
    }

    #[inline]
    fn bump(c: &AtomicU64, n: u64) {
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds `n` to a counter. An id from another layout is ignored.
    #[inline]
    pub fn add(&self, c: CounterId, n: u64) {
        if (c.0 as usize) < self.n_counters {
            if let Some(w) = self.word(c.0 as usize) {
                Self::bump(w, n);
            }
        }
    }

    #[inline]
    pub fn inc(&self, c: CounterId) {
        self.add(c, 1);
    }

    #[inline]
    fn sa_word(&self, sa: u32, c: SaCounterId) -> Option<&AtomicU64> {
        let (sa, c) = (sa as usize, c.0 as usize);
        if sa >= self.max_sa || c >= self.n_sa_counters {
            return None;
        }
        self.word(self.n_counters + sa * self.n_sa_counters + c)
    }

    /// Adds `n` to a counter of SA slot `sa`. Out-of-range slots and ids are ignored.
    #[inline]
    pub fn sa_add(&self, sa: u32, c: SaCounterId, n: u64) {
        if let Some(w) = self.sa_word(sa, c) {
            Self::bump(w, n);
        }
    }

    /// Zeroes SA slot `sa` (before it is given to a new SA).
    pub fn sa_clear(&self, sa: u32) {
        for c in 0..self.n_sa_counters {
            if let Some(w) = self.sa_word(sa, SaCounterId(c as u32)) {
                w.store(0, Relaxed);
            }
        }
    }

    pub fn get(&self, c: CounterId) -> u64 {
        if (c.0 as usize) < self.n_counters {
            self.word(c.0 as usize).map_or(0, |w| w.load(Relaxed))
        } else {
            0
        }
    }

    pub fn sa_get(&self, sa: u32, c: SaCounterId) -> u64 {
        self.sa_word(sa, c).map_or(0, |w| w.load(Relaxed))
    }
}

/// Whether the segment a reader has open is still the one the data plane writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderStatus {
    Live,
    /// A new writer replaced it (or it was removed): reopen.
    Superseded,
}

/// The control plane's read-only view of a stats segment.
#[derive(Debug)]
pub struct StatsReader {
    map: Mapping,
    geo: Geometry,
    counters: Vec<String>,
    sa_counters: Vec<String>,
    epoch: u64,
    id: (u64, u64),
    path: PathBuf,
}

/// All counters summed over lcores, at one moment (each counter read once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub epoch: u64,
    pub counters: Vec<(String, u64)>,
}

impl StatsReader {
    /// Opens the segment at `path` read-only.
    pub fn open(path: &Path) -> Result<StatsReader, StatsError> {
        let io = |op: &'static str| move |source| StatsError::Io { path: path.to_owned(), op, source };
        let corrupt = |what| StatsError::Corrupt { path: path.to_owned(), what };
        let file = File::open(path).map_err(io("open"))?;
        let meta = file.metadata().map_err(io("stat"))?;
        if meta.len() < HEADER_LEN as u64 {
            return Err(corrupt("shorter than its header"));
        }
        let map = Mapping::new(file, meta.len() as usize, false).map_err(io("mmap"))?;
        // SAFETY: at least HEADER_LEN bytes mapped; atomics only. Read-only mapping: only
        // Relaxed loads of 8 bytes (documented by std as sound on read-only memory on
        // x86_64 and aarch64) and fences.
        let h = unsafe { map.at::<Header>(0) };
        let magic = h.magic.load(Relaxed);
        fence(Acquire);
        if magic != MAGIC {
            return Err(StatsError::NotStats { path: path.to_owned(), magic });
        }
        let major = h.version_major.load(Relaxed);
        if major != STATS_VERSION_MAJOR as u64 {
            return Err(StatsError::Version { path: path.to_owned(), theirs: major });
        }
        let geo = Geometry::new(
            h.lcores.load(Relaxed),
            h.n_counters.load(Relaxed),
            h.n_sa_counters.load(Relaxed),
            h.max_sa.load(Relaxed),
            h.names_len.load(Relaxed),
        )
        .ok_or_else(|| corrupt("layout out of bounds"))?;
        let consistent = h.total_len.load(Relaxed) == geo.total
            && geo.total == meta.len()
            && h.names_offset.load(Relaxed) == HEADER_LEN as u64
            && h.data_offset.load(Relaxed) == geo.data_offset
            && h.lcore_stride.load(Relaxed) == geo.stride
            && h.sa_offset.load(Relaxed) == geo.sa_offset;
        if !consistent {
            return Err(corrupt("layout fields disagree"));
        }
        // Names: copied out once, then parsed from the copy.
        let mut names = vec![0u8; geo.names_len as usize];
        map.file().read_exact_at(&mut names, HEADER_LEN as u64).map_err(io("read"))?;
        let mut all = Vec::new();
        let mut rest = &names[..];
        while let Some((&len, tail)) = rest.split_first() {
            let name = tail
                .get(..len as usize)
                .and_then(|b| core::str::from_utf8(b).ok())
                .filter(|n| valid_name(n))
                .ok_or_else(|| corrupt("bad counter name"))?;
            all.push(name.to_string());
            rest = &tail[len as usize..];
        }
        if all.len() as u64 != geo.n_counters + geo.n_sa_counters {
            return Err(corrupt("number of names"));
        }
        let sa_counters = all.split_off(geo.n_counters as usize);
        Ok(StatsReader {
            epoch: h.epoch.load(Relaxed),
            map,
            geo,
            counters: all,
            sa_counters,
            id: (meta.dev(), meta.ino()),
            path: path.to_owned(),
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: checked at open.
        unsafe { self.map.at::<Header>(0) }
    }

    /// The writer's epoch (one more per data-plane start).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn lcores(&self) -> usize {
        self.geo.lcores as usize
    }
    pub fn max_sa(&self) -> usize {
        self.geo.max_sa as usize
    }
    pub fn counter_names(&self) -> &[String] {
        &self.counters
    }
    pub fn sa_counter_names(&self) -> &[String] {
        &self.sa_counters
    }
    pub fn counter(&self, name: &str) -> Option<CounterId> {
        self.counters.iter().position(|n| n == name).map(|i| CounterId(i as u32))
    }
    pub fn sa_counter(&self, name: &str) -> Option<SaCounterId> {
        self.sa_counters.iter().position(|n| n == name).map(|i| SaCounterId(i as u32))
    }

    /// True if the writer holds the segment now.
    pub fn writer_alive(&self) -> bool {
        shm::is_locked(self.map.file(), WRITER_LOCK).unwrap_or(false)
    }

    /// Whether this segment is still the current one at the path.
    pub fn status(&self) -> ReaderStatus {
        let s = self.header().state.load(Relaxed);
        let same_file = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()) == self.id).unwrap_or(false);
        if s == STATE_LIVE && same_file {
            ReaderStatus::Live
        } else {
            ReaderStatus::Superseded
        }
    }

    fn word(&self, lcore: usize, i: u64) -> u64 {
        if lcore as u64 >= self.geo.lcores || i >= self.geo.stride / 8 {
            return 0;
        }
        let off = self.geo.data_offset + lcore as u64 * self.geo.stride + i * 8;
        // SAFETY: within the mapping (Geometry checked against the file length at open),
        // 8-byte aligned; a Relaxed load of an AtomicU64 on a read-only mapping (see `open`).
        unsafe { self.map.at::<AtomicU64>(off as usize) }.load(Relaxed)
    }

    /// One lcore's value of a counter (0 for ids or lcores out of range).
    pub fn get(&self, lcore: usize, c: CounterId) -> u64 {
        if (c.0 as u64) < self.geo.n_counters {
            self.word(lcore, c.0 as u64)
        } else {
            0
        }
    }

    /// A counter summed over all lcores.
    pub fn total(&self, c: CounterId) -> u64 {
        (0..self.lcores()).fold(0u64, |s, l| s.wrapping_add(self.get(l, c)))
    }

    /// One lcore's value of an SA slot's counter.
    pub fn sa_get(&self, lcore: usize, sa: u32, c: SaCounterId) -> u64 {
        let (sa, c) = (sa as u64, c.0 as u64);
        if sa >= self.geo.max_sa || c >= self.geo.n_sa_counters {
            return 0;
        }
        self.word(lcore, self.geo.n_counters + sa * self.geo.n_sa_counters + c)
    }

    /// An SA slot's counter summed over all lcores.
    pub fn sa_total(&self, sa: u32, c: SaCounterId) -> u64 {
        (0..self.lcores()).fold(0u64, |s, l| s.wrapping_add(self.sa_get(l, sa, c)))
    }

    /// The SA slots in use, in slot order: for each, its values of the SA counters named
    /// `names` (summed over lcores), or `None` if the segment lacks one of them. A slot is in
    /// use when its first named counter is not 0 (name the SPI first, as the data plane
    /// writes it).
    pub fn sa_rows<'a>(&'a self, names: &[&str]) -> Option<impl Iterator<Item = Vec<u64>> + 'a> {
        let ids = names.iter().map(|n| self.sa_counter(n)).collect::<Option<Vec<_>>>()?;
        Some((0..self.max_sa() as u32).filter_map(move |slot| {
            if ids.is_empty() || self.sa_total(slot, ids[0]) == 0 {
                return None;
            }
            Some(ids.iter().map(|&c| self.sa_total(slot, c)).collect())
        }))
    }

    /// Every per-lcore counter summed over lcores.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            epoch: self.epoch,
            counters: self
                .counters
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), self.total(CounterId(i as u32))))
                .collect(),
        }
    }
}
