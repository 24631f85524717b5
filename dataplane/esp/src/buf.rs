//! The packet buffer the engine works on: one contiguous region with headroom before the data
//! and tailroom after it, as a DPDK mbuf has. Encapsulation grows the data at both ends in
//! place; decapsulation shrinks it; nothing is copied.

/// A packet buffer with room to grow at both ends.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes available in front of the data.
    fn headroom(&self) -> usize;
    /// Bytes available after the data.
    fn tailroom(&self) -> usize;
    /// Extends the data by `n` bytes at the front (contents unspecified); false, and no
    /// change, if there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Extends the data by `n` bytes at the back (contents unspecified); false, and no
    /// change, if there is not enough tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false, and no change, if the data is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back; false, and no change, if the data is shorter.
    fn trim(&mut self, n: usize) -> bool;

    /// Length of the data.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    #[inline]
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

impl<B: PacketBuf + ?Sized> PacketBuf for &mut B {
    fn data(&self) -> &[u8] {
        (**self).data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        (**self).data_mut()
    }
    fn headroom(&self) -> usize {
        (**self).headroom()
    }
    fn tailroom(&self) -> usize {
        (**self).tailroom()
    }
    fn prepend(&mut self, n: usize) -> bool {
        (**self).prepend(n)
    }
    fn append(&mut self, n: usize) -> bool {
        (**self).append(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        (**self).adj(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        (**self).trim(n)
    }
}

/// Default headroom, as DPDK's `RTE_PKTMBUF_HEADROOM`: room for Ethernet + IPv6 + UDP + ESP
/// header + IV in front of an inner packet.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default capacity: headroom plus a 2048-byte data room, as a default DPDK mbuf.
pub const DEFAULT_CAPACITY: usize = DEFAULT_HEADROOM + 2048;

/// A heap-allocated packet buffer, for tests, benches, the AF_PACKET and pcap backends and
/// the in-memory backend. Allocated once and reused; nothing on the fast path allocates.
///
/// Where the data starts and ends is one 64-bit word, always written whole: a buffer is
/// moved between the stages of a burst, and a move read two separately written 8-byte
/// fields with one 16-byte load, which stalled on store forwarding (30 % of
/// `Worker::route_out`'s samples and more of `Worker::rx`'s).
#[derive(Clone)]
pub struct HeapBuf {
    mem: Box<[u8]>,
    /// Start of the data (low 32 bits) and its end (high 32 bits), offsets into `mem`.
    bounds: u64,
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapBuf").field("len", &self.len()).field("headroom", &self.start()).finish()
    }
}

impl Default for HeapBuf {
    fn default() -> Self {
        HeapBuf::new(DEFAULT_CAPACITY, DEFAULT_HEADROOM)
    }
}

impl HeapBuf {
    /// An empty buffer of `capacity` bytes (at most 4 GiB) whose data starts after
    /// `headroom` bytes.
    pub fn new(capacity: usize, headroom: usize) -> HeapBuf {
        let capacity = capacity.min(u32::MAX as usize);
        let headroom = headroom.min(capacity);
        let mut b = HeapBuf { mem: vec![0u8; capacity].into_boxed_slice(), bounds: 0 };
        b.set(headroom, headroom);
        b
    }

    #[inline(always)]
    fn start(&self) -> usize {
        self.bounds as u32 as usize
    }
    #[inline(always)]
    fn end(&self) -> usize {
        (self.bounds >> 32) as usize
    }
    /// Both bounds in one store; `start <= end <= capacity` (< 2^32) holds.
    #[inline(always)]
    fn set(&mut self, start: usize, end: usize) {
        self.bounds = start as u64 | (end as u64) << 32;
    }

    /// A buffer holding a copy of `data` after the default headroom, with at least the
    /// default tailroom.
    pub fn from_slice(data: &[u8]) -> HeapBuf {
        let cap = DEFAULT_CAPACITY.max(DEFAULT_HEADROOM + data.len() + 256);
        let mut b = HeapBuf::new(cap, DEFAULT_HEADROOM);
        assert!(b.fill(DEFAULT_HEADROOM, data), "a buffer sized for its data holds it");
        b
    }

    /// Empties the buffer and restores `headroom` bytes of headroom, for reuse.
    pub fn reset(&mut self, headroom: usize) {
        let start = headroom.min(self.mem.len());
        self.set(start, start);
    }

    /// Replaces the content with `data` after `headroom` bytes; false if it does not fit.
    pub fn fill(&mut self, headroom: usize, data: &[u8]) -> bool {
        if headroom + data.len() > self.mem.len() {
            return false;
        }
        self.set(headroom, headroom + data.len());
        self.mem[headroom..headroom + data.len()].copy_from_slice(data);
        true
    }

    pub fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl PacketBuf for HeapBuf {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.mem[self.start()..self.end()]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (s, e) = (self.start(), self.end());
        &mut self.mem[s..e]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start()
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.mem.len() - self.end()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let (s, e) = (self.start(), self.end());
        if n > s {
            return false;
        }
        self.set(s - n, e);
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.set(self.start(), self.end() + n);
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.set(self.start() + n, self.end());
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.set(self.start(), self.end() - n);
        true
    }
}

/// A source of packet buffers.
pub trait BufPool {
    type Buf: PacketBuf;
    /// An empty buffer with the default headroom, or `None` if the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Returns a buffer.
    fn free(&mut self, b: Self::Buf);
    /// An empty buffer with room for `len` bytes after the default headroom (reassembled
    /// datagrams can exceed a normal buffer), or `None`.
    fn alloc_len(&mut self, len: usize) -> Option<Self::Buf> {
        let b = self.alloc()?;
        if b.tailroom() >= len {
            Some(b)
        } else {
            self.free(b);
            None
        }
    }
}

/// A pool of heap buffers, for the offline mode, tests and benches.
#[derive(Debug)]
pub struct HeapPool {
    free: Vec<HeapBuf>,
    outstanding: usize,
    limit: usize,
}

impl HeapPool {
    /// A pool that hands out at most `limit` buffers at once.
    pub fn new(limit: usize) -> HeapPool {
        HeapPool { free: Vec::new(), outstanding: 0, limit }
    }
    /// A buffer holding a copy of `frame`.
    pub fn alloc_frame(&mut self, frame: &[u8]) -> Option<HeapBuf> {
        let mut b = self.alloc_len(frame.len())?;
        if !b.append(frame.len()) {
            self.free(b);
            return None;
        }
        b.data_mut().copy_from_slice(frame);
        Some(b)
    }
    /// Returns a buffer (the `BufPool::free` of this pool, callable without the trait).
    pub fn free_buf(&mut self, b: HeapBuf) {
        <Self as BufPool>::free(self, b)
    }
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }
}

impl BufPool for HeapPool {
    type Buf = HeapBuf;
    fn alloc(&mut self) -> Option<Self::Buf> {
        if self.outstanding >= self.limit {
            return None;
        }
        self.outstanding += 1;
        let mut b = self.free.pop().unwrap_or_default();
        b.reset(DEFAULT_HEADROOM);
        Some(b)
    }
    fn free(&mut self, b: Self::Buf) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.free.len() < 4096 && b.capacity() == DEFAULT_CAPACITY {
            self.free.push(b);
        }
    }
    fn alloc_len(&mut self, len: usize) -> Option<Self::Buf> {
        if len + DEFAULT_HEADROOM <= DEFAULT_CAPACITY {
            return self.alloc();
        }
        if self.outstanding >= self.limit {
            return None;
        }
        self.outstanding += 1;
        Some(HeapBuf::new(DEFAULT_HEADROOM + len + 64, DEFAULT_HEADROOM))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink() {
        let mut b = HeapBuf::new(64, 16);
        assert!(b.is_empty());
        assert!(b.append(10));
        b.data_mut().copy_from_slice(b"0123456789");
        assert!(b.prepend(16));
        assert!(!b.prepend(1), "no headroom left");
        assert_eq!(b.len(), 26);
        assert!(b.adj(16));
        assert_eq!(b.data(), b"0123456789");
        assert!(b.trim(5));
        assert_eq!(b.data(), b"01234");
        assert!(!b.trim(6));
        assert!(!b.append(64));
        assert_eq!(b.tailroom(), 64 - 16 - 5);
    }
}
