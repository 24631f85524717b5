//! The single-producer single-consumer byte ring and its index protocol.
//!
//! A ring is a power-of-two data area and two 64-bit positions that only grow: `head` (bytes
//! ever published, written by the producer only) and `tail` (bytes ever consumed, written by
//! the consumer only). Both live in the shared mapping, each on its own 128-byte line, so
//! either process can restart and carry on where its predecessor stopped.
//!
//! A record is a 16-byte header — payload length (`u32`), producer generation (`u32`), and
//! the record's own position (`u64`) — then the payload, padded to 8 bytes. Records wrap
//! around the end of the data area. The consumer copies a record out before it looks at it
//! (so a peer writing the same bytes cannot change what was validated), checks the header
//! (the position must be the consumer's tail, the length within bounds and within what was
//! published), zeroes the record in the ring (no key material stays in shared memory) and
//! only then advances `tail`.
//!
//! Ordering: the producer writes a record, then stores `head` with Release; the consumer
//! loads `head` with Acquire before reading. The consumer zeroes a record, then stores
//! `tail` with Release; the producer loads `tail` with Acquire before writing over that
//! space. A producer that dies between writing and publishing leaves bytes past `head` that
//! nobody reads and its successor overwrites: a record is committed exactly when `head`
//! passes it.
//!
//! Nothing the peer writes can make this code panic or loop: inconsistent positions or a bad
//! header are reported as [`RingCorrupt`], counted, and the consumer skips to the
//! producer's `head` (dropping what it cannot frame).

use crate::sync::{AtomicU64, Ordering::*};

/// Bytes of record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Records start at multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// The longest record payload: an encoded [`crate::Message`] with a full 64 KiB datagram
/// fits with room to spare.
pub const MAX_RECORD_LEN: usize = 70 * 1024;

/// Ring space taken by a record of `len` payload bytes.
pub const fn record_space(len: usize) -> usize {
    RECORD_HEADER_LEN + len.next_multiple_of(RECORD_ALIGN)
}

/// The producer's line: its position and counters (written by the producer only).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ProducerLine {
    pub head: AtomicU64,
    /// Records published.
    pub sent: AtomicU64,
    /// Times a send found the ring full.
    pub full: AtomicU64,
}

/// The consumer's line: its position and counters (written by the consumer only).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ConsumerLine {
    pub tail: AtomicU64,
    /// Records consumed (good or not).
    pub received: AtomicU64,
    /// Framing errors: the consumer skipped to `head`.
    pub corrupt: AtomicU64,
    /// Well-framed records whose message was refused (decode error, wrong direction).
    pub rejected: AtomicU64,
}

/// The control block of one ring.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingCtl {
    pub prod: ProducerLine,
    pub cons: ConsumerLine,
}

/// Counters of one ring, as read from the shared mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Bytes ever published.
    pub head: u64,
    /// Bytes ever consumed.
    pub tail: u64,
    pub sent: u64,
    pub full: u64,
    pub received: u64,
    pub corrupt: u64,
    pub rejected: u64,
}

impl RingCtl {
    /// A control block on the heap (tests and the model checker; the real ones live in the
    /// shared mapping, zero-filled by the kernel).
    #[cfg(any(test, loom))]
    pub fn new() -> RingCtl {
        RingCtl {
            prod: ProducerLine { head: AtomicU64::new(0), sent: AtomicU64::new(0), full: AtomicU64::new(0) },
            cons: ConsumerLine {
                tail: AtomicU64::new(0),
                received: AtomicU64::new(0),
                corrupt: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            },
        }
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            head: self.prod.head.load(Relaxed),
            tail: self.cons.tail.load(Relaxed),
            sent: self.prod.sent.load(Relaxed),
            full: self.prod.full.load(Relaxed),
            received: self.cons.received.load(Relaxed),
            corrupt: self.cons.corrupt.load(Relaxed),
            rejected: self.cons.rejected.load(Relaxed),
        }
    }
}

/// Increments a counter that has one writer (no locked instruction).
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// The data area of a ring.
pub(crate) trait RingMem {
    /// Size in bytes: a power of two, a multiple of [`RECORD_ALIGN`].
    fn cap(&self) -> usize;
    /// Copies `src` to offset `off`.
    ///
    /// # Safety
    /// `off + src.len() <= cap()`, and the ring protocol gives the caller those bytes: no
    /// correct peer accesses them concurrently.
    unsafe fn write(&self, off: usize, src: &[u8]);
    /// Copies from offset `off` into `dst`.
    ///
    /// # Safety
    /// As for [`write`](Self::write).
    unsafe fn read(&self, off: usize, dst: &mut [u8]);
    /// Zeroes `len` bytes at `off`.
    ///
    /// # Safety
    /// As for [`write`](Self::write).
    unsafe fn zero(&self, off: usize, len: usize);
    /// Stores `v` little-endian at `off` in one 8-byte store: a process killed around it
    /// leaves either the old bytes or the new ones.
    ///
    /// # Safety
    /// As for [`write`](Self::write), and `off` is a multiple of 8.
    unsafe fn write_u64(&self, off: usize, v: u64) {
        // SAFETY: forwarded. (Test memories are not killed half-way.)
        unsafe { self.write(off, &v.to_le_bytes()) }
    }
}

/// Writes `src` at ring position `pos`, wrapping around the end.
///
/// # Safety
/// `src.len() <= cap`, and the caller owns `[pos, pos + src.len())` under the protocol.
unsafe fn write_at<M: RingMem>(m: &M, pos: u64, src: &[u8]) {
    let (off, first) = split(m.cap(), pos, src.len());
    // SAFETY: `split` keeps both pieces inside the data area; ownership is the caller's.
    unsafe {
        m.write(off, &src[..first]);
        m.write(0, &src[first..]);
    }
}

/// Reads into `dst` from ring position `pos`, wrapping around the end.
///
/// # Safety
/// As for [`write_at`].
unsafe fn read_at<M: RingMem>(m: &M, pos: u64, dst: &mut [u8]) {
    let (off, first) = split(m.cap(), pos, dst.len());
    let (a, b) = dst.split_at_mut(first);
    // SAFETY: as in `write_at`.
    unsafe {
        m.read(off, a);
        m.read(0, b);
    }
}

/// Zeroes `len` bytes from ring position `pos`, wrapping around the end.
///
/// # Safety
/// As for [`write_at`].
unsafe fn zero_at<M: RingMem>(m: &M, pos: u64, len: usize) {
    let (off, first) = split(m.cap(), pos, len);
    // SAFETY: as in `write_at`.
    unsafe {
        m.zero(off, first);
        m.zero(0, len - first);
    }
}

/// The offset of `pos` and how many of `len` bytes fit before the end (`len <= cap`).
#[inline]
fn split(cap: usize, pos: u64, len: usize) -> (usize, usize) {
    debug_assert!(cap.is_power_of_two() && len <= cap);
    let off = (pos & (cap as u64 - 1)) as usize;
    (off, len.min(cap - off))
}

/// Why a ring cannot be used as it stands. The peer wrote something a correct peer does
/// not write (or the region was damaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingCorrupt {
    #[error("ring positions inconsistent: head {head}, tail {tail}, capacity {cap}")]
    Positions { head: u64, tail: u64, cap: u64 },
    #[error("bad record header at position {at}: length {len}, position field {pos}")]
    Header { at: u64, len: u32, pos: u64 },
}

/// Why a record was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Not enough free space now; nothing was written.
    Full,
    /// Longer than [`MAX_RECORD_LEN`] or than the ring can ever hold.
    TooLarge {
        len: usize,
        max: usize,
    },
    Corrupt(RingCorrupt),
}

/// The producer's private state.
#[derive(Debug)]
pub(crate) struct ProdState {
    head: u64,
    /// A tail seen earlier: never ahead of the real one, so free space is never overstated.
    tail_seen: u64,
    generation: u32,
}

impl ProdState {
    /// Takes over the producer end: carries on from the published `head`.
    pub fn attach(ctl: &RingCtl, cap: usize, generation: u32) -> Result<ProdState, RingCorrupt> {
        let head = ctl.prod.head.load(Acquire);
        let tail = ctl.cons.tail.load(Acquire);
        check_positions(head, tail, cap)?;
        Ok(ProdState { head, tail_seen: tail, generation })
    }

    /// Bytes that can be written now.
    fn free(&mut self, ctl: &RingCtl, cap: usize, need: usize) -> Result<usize, RingCorrupt> {
        let used = self.head.wrapping_sub(self.tail_seen);
        if used <= cap as u64 && cap - used as usize >= need {
            return Ok(cap - used as usize);
        }
        let tail = ctl.cons.tail.load(Acquire);
        check_positions(self.head, tail, cap)?;
        self.tail_seen = tail;
        Ok(cap - self.head.wrapping_sub(tail) as usize)
    }

    /// Writes one record and publishes it, or writes nothing.
    pub fn push<M: RingMem>(&mut self, ctl: &RingCtl, mem: &M, payload: &[u8]) -> Result<(), PushError> {
        let cap = mem.cap();
        let max = MAX_RECORD_LEN.min(cap - RECORD_HEADER_LEN);
        if payload.len() > max {
            return Err(PushError::TooLarge { len: payload.len(), max });
        }
        let need = record_space(payload.len());
        if self.free(ctl, cap, need).map_err(PushError::Corrupt)? < need {
            bump(&ctl.prod.full);
            return Err(PushError::Full);
        }
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        hdr[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&self.generation.to_le_bytes());
        hdr[8..16].copy_from_slice(&self.head.to_le_bytes());
        // SAFETY: `free` showed that [head, head + need) is not between tail and head: the
        // consumer neither reads nor zeroes it until `head` is published below.
        unsafe {
            write_at(mem, self.head, &hdr);
            write_at(mem, self.head + RECORD_HEADER_LEN as u64, payload);
        }
        self.head += need as u64;
        ctl.prod.head.store(self.head, Release);
        bump(&ctl.prod.sent);
        Ok(())
    }

    /// Writes a record without publishing it, as a producer killed at the wrong moment
    /// would (tests only).
    #[cfg(any(test, loom))]
    pub fn write_unpublished<M: RingMem>(&mut self, ctl: &RingCtl, mem: &M, payload: &[u8]) {
        let need = record_space(payload.len());
        if matches!(self.free(ctl, mem.cap(), need), Ok(f) if f >= need) {
            // SAFETY: as in `push`.
            unsafe { write_at(mem, self.head, &[0xEE; RECORD_HEADER_LEN]) };
        }
    }
}

fn check_positions(head: u64, tail: u64, cap: usize) -> Result<(), RingCorrupt> {
    let used = head.wrapping_sub(tail);
    let aligned = head % RECORD_ALIGN as u64 == 0 && tail % RECORD_ALIGN as u64 == 0;
    if used > cap as u64 || !aligned {
        return Err(RingCorrupt::Positions { head, tail, cap: cap as u64 });
    }
    Ok(())
}

/// A record read but not yet consumed: [`ConsState::commit`] consumes it; dropping it
/// leaves it in the ring, to be read again (also by a successor process).
#[derive(Debug)]
#[must_use = "a record is consumed only when committed"]
pub(crate) struct Pending {
    pub generation: u32,
    pos: u64,
    next: u64,
}

impl Pending {
    /// The record's position in the ring's byte stream.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

/// The consumer's private state.
#[derive(Debug)]
pub(crate) struct ConsState {
    tail: u64,
    /// A head seen earlier: never ahead of the real one.
    head_seen: u64,
}

impl ConsState {
    /// Takes over the consumer end: carries on from the committed `tail`.
    pub fn attach(ctl: &RingCtl) -> ConsState {
        let tail = ctl.cons.tail.load(Acquire);
        ConsState { tail, head_seen: tail }
    }

    /// Copies the next record's payload into `buf` (replacing its contents).
    pub fn peek<M: RingMem>(
        &mut self,
        ctl: &RingCtl,
        mem: &M,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Pending>, RingCorrupt> {
        let cap = mem.cap();
        // Each turn either returns or consumes a record: at most cap / 16 turns.
        loop {
            if self.head_seen == self.tail {
                self.head_seen = ctl.prod.head.load(Acquire);
                if self.head_seen == self.tail {
                    return Ok(None);
                }
            }
            if let Err(e) = check_positions(self.head_seen, self.tail, cap) {
                self.skip_to_head(ctl, mem);
                return Err(e);
            }
            let avail = self.head_seen - self.tail;
            let mut hdr = [0u8; RECORD_HEADER_LEN];
            if avail >= RECORD_HEADER_LEN as u64 {
                // SAFETY: [tail, head) was published by the producer (Acquire above) and is
                // ours until we advance `tail`; `check_positions` bounded it by `cap`.
                unsafe { read_at(mem, self.tail, &mut hdr) };
            }
            let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let generation = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let mut p = [0u8; 8];
            p.copy_from_slice(&hdr[8..16]);
            let pos = u64::from_le_bytes(p);
            let fits = (len as usize) <= MAX_RECORD_LEN
                && record_space(len as usize) as u64 <= avail
                && avail >= RECORD_HEADER_LEN as u64;
            let pending = Pending { generation, pos: self.tail, next: self.tail + record_space(len as usize) as u64 };
            if fits && pos == !self.tail {
                // Marked consumed by a predecessor that died inside `commit`: it had
                // handed the message out. Finish its commit; do not deliver it again.
                self.commit(ctl, mem, pending);
                continue;
            }
            if pos != self.tail || !fits {
                let at = self.tail;
                self.skip_to_head(ctl, mem);
                return Err(RingCorrupt::Header { at, len, pos });
            }
            buf.clear();
            buf.resize(len as usize, 0);
            // SAFETY: within [tail, head), checked just above.
            unsafe { read_at(mem, self.tail + RECORD_HEADER_LEN as u64, buf) };
            return Ok(Some(pending));
        }
    }

    /// Consumes a record returned by [`peek`](Self::peek): marks it consumed, zeroes its
    /// payload in the ring, and publishes the new tail.
    ///
    /// The mark is one aligned 8-byte store into the header's position field (`!pos`), so
    /// that a successor of a consumer killed before the tail moved finishes this commit
    /// instead of delivering a half-zeroed record. The header itself (length, generation,
    /// position) holds nothing secret and stays until the producer writes over it.
    pub fn commit<M: RingMem>(&mut self, ctl: &RingCtl, mem: &M, p: Pending) {
        if p.pos != self.tail {
            // A stale token (the ring was resynchronised since): nothing to consume.
            return;
        }
        let cap = mem.cap() as u64;
        let payload = p.pos + RECORD_HEADER_LEN as u64;
        // SAFETY: [pos, next) lies within [tail, head) (checked by `peek`) and is ours; the
        // position field is 8-aligned (records are) and does not straddle the end (the data
        // area is a multiple of 8).
        unsafe {
            mem.write_u64(((p.pos + 8) & (cap - 1)) as usize, !p.pos);
            zero_at(mem, payload, (p.next - payload) as usize);
        }
        self.tail = p.next;
        ctl.cons.tail.store(self.tail, Release);
        bump(&ctl.cons.received);
    }

    /// Marks and partly zeroes a record without publishing the tail, as a consumer killed
    /// inside [`commit`](Self::commit) would (tests only).
    #[cfg(any(test, loom))]
    pub fn commit_interrupted<M: RingMem>(&mut self, mem: &M, p: Pending) {
        let cap = mem.cap() as u64;
        // SAFETY: as in `commit`.
        unsafe {
            mem.write_u64(((p.pos + 8) & (cap - 1)) as usize, !p.pos);
            zero_at(mem, p.pos + RECORD_HEADER_LEN as u64, 3);
        }
    }

    /// Drops everything published so far (after a framing error) and counts it.
    fn skip_to_head<M: RingMem>(&mut self, ctl: &RingCtl, mem: &M) {
        let head = ctl.prod.head.load(Acquire);
        let span = head.wrapping_sub(self.tail);
        if span <= mem.cap() as u64 {
            // SAFETY: [tail, head) is published and ours, bounded by `cap`.
            unsafe { zero_at(mem, self.tail, span as usize) };
        }
        self.tail = head;
        self.head_seen = head;
        ctl.cons.tail.store(head, Release);
        bump(&ctl.cons.corrupt);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::cell::UnsafeCell;

    /// A heap data area for single-threaded tests.
    struct VecMem(Vec<UnsafeCell<u8>>);

    impl VecMem {
        fn new(cap: usize) -> VecMem {
            VecMem((0..cap).map(|_| UnsafeCell::new(0)).collect())
        }
        fn poke(&self, off: usize, v: u8) {
            // SAFETY: single-threaded test.
            unsafe { *self.0[off].get() = v }
        }
        fn all_zero(&self) -> bool {
            // SAFETY: single-threaded test.
            self.0.iter().all(|c| unsafe { *c.get() } == 0)
        }
        /// True if the `len` bytes from ring position `pos` are zero.
        fn zero_span(&self, pos: u64, len: usize) -> bool {
            let cap = self.0.len();
            // SAFETY: single-threaded test.
            (0..len).all(|i| unsafe { *self.0[(pos as usize + i) % cap].get() } == 0)
        }
    }

    impl RingMem for VecMem {
        fn cap(&self) -> usize {
            self.0.len()
        }
        unsafe fn write(&self, off: usize, src: &[u8]) {
            for (i, b) in src.iter().enumerate() {
                // SAFETY: the caller owns these bytes; single-threaded test.
                unsafe { *self.0[off + i].get() = *b };
            }
        }
        unsafe fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                // SAFETY: as above.
                *b = unsafe { *self.0[off + i].get() };
            }
        }
        unsafe fn zero(&self, off: usize, len: usize) {
            for c in &self.0[off..off + len] {
                // SAFETY: as above.
                unsafe { *c.get() = 0 };
            }
        }
    }

    #[test]
    fn wraps_and_scrubs() {
        let ctl = RingCtl::new();
        let mem = VecMem::new(64);
        let mut p = ProdState::attach(&ctl, 64, 7).unwrap();
        let mut c = ConsState::attach(&ctl);
        let mut buf = Vec::new();
        for i in 0..100u8 {
            let msg: Vec<u8> = (0..(i % 21)).map(|j| i ^ j).collect();
            p.push(&ctl, &mem, &msg).unwrap();
            let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
            assert_eq!((r.generation, &buf[..]), (7, &msg[..]));
            let (payload, end) = (r.pos + 16, r.next);
            c.commit(&ctl, &mem, r);
            assert!(mem.zero_span(payload, (end - payload) as usize), "record {i} left bytes");
        }
        assert!(c.peek(&ctl, &mem, &mut buf).unwrap().is_none());
    }

    #[test]
    fn full_and_too_large() {
        let ctl = RingCtl::new();
        let mem = VecMem::new(64);
        let mut p = ProdState::attach(&ctl, 64, 1).unwrap();
        assert_eq!(p.push(&ctl, &mem, &[0; 49]), Err(PushError::TooLarge { len: 49, max: 48 }));
        p.push(&ctl, &mem, &[1; 40]).unwrap(); // 56 bytes
        assert_eq!(p.push(&ctl, &mem, &[2; 1]), Err(PushError::Full));
        assert_eq!(ctl.stats().full, 1);
        let mut c = ConsState::attach(&ctl);
        let mut buf = Vec::new();
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        c.commit(&ctl, &mem, r);
        p.push(&ctl, &mem, &[2; 1]).unwrap();
    }

    #[test]
    fn bad_header_is_skipped_once() {
        let ctl = RingCtl::new();
        let mem = VecMem::new(128);
        let mut p = ProdState::attach(&ctl, 128, 1).unwrap();
        p.push(&ctl, &mem, b"one").unwrap();
        p.push(&ctl, &mem, b"two").unwrap();
        mem.poke(0, 0xff); // length of the first record
        let mut c = ConsState::attach(&ctl);
        let mut buf = Vec::new();
        assert!(matches!(c.peek(&ctl, &mem, &mut buf), Err(RingCorrupt::Header { at: 0, .. })));
        assert!(c.peek(&ctl, &mem, &mut buf).unwrap().is_none());
        assert_eq!(ctl.stats().corrupt, 1);
        assert!(mem.all_zero());
        p.push(&ctl, &mem, b"three").unwrap();
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..], b"three");
        c.commit(&ctl, &mem, r);
    }

    #[test]
    fn bad_positions_never_loop() {
        let mem = VecMem::new(64);
        for (head, tail) in [(8u64, 16u64), (1000, 0), (3, 0), (u64::MAX, 0)] {
            let ctl = RingCtl::new();
            ctl.prod.head.store(head, Relaxed);
            ctl.cons.tail.store(tail, Relaxed);
            assert!(ProdState::attach(&ctl, 64, 1).is_err());
            let mut c = ConsState::attach(&ctl);
            let mut buf = Vec::new();
            assert!(c.peek(&ctl, &mem, &mut buf).is_err());
            // Resynchronised: the consumer now agrees with the producer's head.
            assert!(c.peek(&ctl, &mem, &mut buf).unwrap().is_none());
        }
    }

    #[test]
    fn interrupted_commit_is_finished_not_redelivered() {
        let ctl = RingCtl::new();
        let mem = VecMem::new(64);
        let mut p = ProdState::attach(&ctl, 64, 1).unwrap();
        p.push(&ctl, &mem, b"applied").unwrap();
        p.push(&ctl, &mem, b"next").unwrap();
        let mut c = ConsState::attach(&ctl);
        let mut buf = Vec::new();
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..], b"applied");
        c.commit_interrupted(&mem, r);
        // Its successor.
        let mut c = ConsState::attach(&ctl);
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..], b"next");
        c.commit(&ctl, &mem, r);
        let s = ctl.stats();
        assert_eq!((s.received, s.corrupt, s.head, s.tail), (2, 0, 48, 48));
    }

    #[test]
    fn unpublished_record_is_invisible_and_overwritten() {
        let ctl = RingCtl::new();
        let mem = VecMem::new(64);
        let mut p = ProdState::attach(&ctl, 64, 1).unwrap();
        p.push(&ctl, &mem, b"kept").unwrap();
        // Killed before publishing.
        p.write_unpublished(&ctl, &mem, b"lost");
        let mut c = ConsState::attach(&ctl);
        let mut buf = Vec::new();
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..], b"kept");
        c.commit(&ctl, &mem, r);
        assert!(c.peek(&ctl, &mem, &mut buf).unwrap().is_none());
        let mut p = ProdState::attach(&ctl, 64, 2).unwrap();
        p.push(&ctl, &mem, b"next").unwrap();
        let r = c.peek(&ctl, &mem, &mut buf).unwrap().unwrap();
        assert_eq!((&buf[..], r.generation), (&b"next"[..], 2));
        c.commit(&ctl, &mem, r);
    }
}

/// Model checks of the index protocol (`RUSTFLAGS="--cfg loom" cargo test -p esprit-ring
/// --release loom`): every interleaving of a producer and a consumer, with records that
/// wrap, a full ring, and restarts of either side. loom's `UnsafeCell` reports any access
/// to the data area that the positions do not order.
#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    struct LoomMem(Vec<UnsafeCell<u8>>);

    impl LoomMem {
        fn new(cap: usize) -> LoomMem {
            LoomMem((0..cap).map(|_| UnsafeCell::new(0)).collect())
        }
    }

    impl RingMem for LoomMem {
        fn cap(&self) -> usize {
            self.0.len()
        }
        unsafe fn write(&self, off: usize, src: &[u8]) {
            for (i, b) in src.iter().enumerate() {
                // SAFETY: loom checks that no other access races with this one.
                self.0[off + i].with_mut(|p| unsafe { *p = *b });
            }
        }
        unsafe fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                // SAFETY: as above.
                *b = self.0[off + i].with(|p| unsafe { *p });
            }
        }
        unsafe fn zero(&self, off: usize, len: usize) {
            for c in &self.0[off..off + len] {
                // SAFETY: as above.
                c.with_mut(|p| unsafe { *p = 0 });
            }
        }
    }

    fn msg(i: u8) -> Vec<u8> {
        // 1, 9, 1 ... bytes: records of 24 and 32 bytes in a 64-byte ring wrap and fill it.
        vec![i; if i % 2 == 0 { 1 } else { 9 }]
    }

    /// `n` records through a 64-byte ring; the producer restarts (leaving an unpublished
    /// record behind) before record `restart_producer_at`; the consumer restarts after
    /// reading record `restart_consumer_at` without committing it, and half-way through
    /// committing record `interrupt_commit_at`.
    fn run(n: u8, restart_producer_at: Option<u8>, restart_consumer_at: Option<u8>, interrupt_commit_at: Option<u8>) {
        // LOOM_MAX_PREEMPTIONS overrides the bound.
        let mut b = loom::model::Builder::new();
        b.preemption_bound = b.preemption_bound.or(Some(3));
        b.check(move || {
            let shared = Arc::new((RingCtl::new(), LoomMem::new(64)));
            let s = shared.clone();
            let producer = loom::thread::spawn(move || {
                let (ctl, mem) = (&s.0, &s.1);
                let mut p = ProdState::attach(ctl, 64, 1).unwrap();
                let mut i = 0u8;
                let mut restarted = false;
                while i < n {
                    if Some(i) == restart_producer_at && !restarted {
                        p.write_unpublished(ctl, mem, &msg(0xEE));
                        p = ProdState::attach(ctl, 64, 2).unwrap();
                        restarted = true;
                    }
                    match p.push(ctl, mem, &msg(i)) {
                        Ok(()) => i += 1,
                        Err(PushError::Full) => loom::thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
            let (ctl, mem) = (&shared.0, &shared.1);
            let mut c = ConsState::attach(ctl);
            let mut buf = Vec::new();
            let mut got = 0u8;
            while got < n {
                let Some(mut r) = c.peek(ctl, mem, &mut buf).unwrap() else {
                    loom::thread::yield_now();
                    continue;
                };
                assert_eq!(buf, msg(got));
                let want_gen = match restart_producer_at {
                    Some(k) if got >= k => 2,
                    _ => 1,
                };
                assert_eq!(r.generation, want_gen);
                if Some(got) == restart_consumer_at {
                    // Killed before committing (`r` is abandoned): its successor reads the
                    // same record again.
                    c = ConsState::attach(ctl);
                    r = c.peek(ctl, mem, &mut buf).unwrap().unwrap();
                    assert_eq!(buf, msg(got));
                }
                if Some(got) == interrupt_commit_at {
                    // Killed inside commit: its successor finishes the commit.
                    c.commit_interrupted(mem, r);
                    c = ConsState::attach(ctl);
                } else {
                    c.commit(ctl, mem, r);
                }
                got += 1;
            }
            producer.join().unwrap();
            assert!(c.peek(ctl, mem, &mut buf).unwrap().is_none());
            assert_eq!(ctl.stats().corrupt, 0);
        });
    }

    #[test]
    fn loom_spsc_wraps_and_fills() {
        run(4, None, None, None);
    }

    #[test]
    fn loom_producer_restart() {
        run(3, Some(1), None, None);
    }

    #[test]
    fn loom_consumer_restart() {
        run(3, None, Some(1), None);
    }

    #[test]
    fn loom_consumer_killed_in_commit() {
        run(3, None, None, Some(1));
    }
}
