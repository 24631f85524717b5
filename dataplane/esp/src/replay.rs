//! The anti-replay window ([RFC 4303 §3.4.3](https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3)),
//! with extended sequence numbers ([RFC 4303 App. A](https://www.rfc-editor.org/rfc/rfc4303#appendix-A))
//! and the block bitmap of [RFC 6479](https://www.rfc-editor.org/rfc/rfc6479).
//!
//! Used in two steps, as boringtun does: [`ReplayWindow::check`] is a cheap test before
//! decryption (it also infers the high 32 bits of an ESN), [`ReplayWindow::commit`] marks the
//! number seen once the ICV has verified — never before, or a forged packet could slide the
//! window.
//!
//! The window has one writer: the lcore that owns the inbound SA. Its state is held in atomics
//! so that the SA can be shared read-only with every lcore (and read by statistics) in safe
//! Rust; with one writer, relaxed loads and stores compile to plain moves.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The largest window accepted, in packets.
pub const MAX_WINDOW: u32 = 65536;
/// Bits per bitmap block.
const BLOCK_BITS: u64 = 64;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The number has been seen.
    #[error("sequence number already received")]
    Replay,
    /// The number is left of the window (or zero, which is never sent).
    #[error("sequence number left of the replay window")]
    TooOld,
}

/// An anti-replay window of `size` packets.
#[derive(Debug)]
pub struct ReplayWindow {
    /// Window size W in packets; 0 disables the replay check (manual keying may).
    size: u64,
    esn: bool,
    /// Highest authenticated sequence number (full 64 bits), 0 before the first.
    top: AtomicU64,
    /// `blocks.len() - 1`; the number of blocks is a power of two.
    mask: u64,
    blocks: Box<[AtomicU64]>,
}

impl ReplayWindow {
    /// A window of `size` packets (0 = no replay check), for 32-bit or extended sequence
    /// numbers. Sizes above [`MAX_WINDOW`] are clamped.
    pub fn new(size: u32, esn: bool) -> ReplayWindow {
        let size = size.min(MAX_WINDOW) as u64;
        // One block more than the window spans, so advancing can clear whole blocks
        // without touching bits still inside the window (RFC 6479 §2).
        let nblocks = (size.div_ceil(BLOCK_BITS) + 1).next_power_of_two().max(2);
        ReplayWindow {
            size,
            esn,
            top: AtomicU64::new(0),
            mask: nblocks - 1,
            blocks: (0..nblocks).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// The highest authenticated sequence number so far.
    pub fn top(&self) -> u64 {
        self.top.load(Relaxed)
    }

    /// Infers the full sequence number of a received low-order 32 bits
    /// (RFC 4303 App. A2.2; without ESN it is just the low bits).
    #[inline]
    pub fn infer(&self, seq_low: u32) -> Option<u64> {
        if !self.esn {
            return Some(seq_low as u64);
        }
        let t = self.top.load(Relaxed);
        let (th, tl) = (t >> 32, t as u32);
        // The inference needs some window; with the check disabled assume the default 64.
        let w = if self.size == 0 { 64 } else { self.size } as u32;
        let sh = if tl >= w - 1 {
            // Case A: the window lies within one 2^32 subspace.
            if seq_low >= tl - (w - 1) {
                th
            } else {
                th + 1
            }
        } else if seq_low >= tl.wrapping_sub(w - 1) {
            // Case B: the window spans two subspaces; this one belongs to the lower.
            th.checked_sub(1)?
        } else {
            th
        };
        Some((sh << 32) | seq_low as u64)
    }

    /// Checks a received sequence number before decryption; returns the full number.
    #[inline]
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_low).ok_or(ReplayError::TooOld)?;
        self.check_full(seq)?;
        Ok(seq)
    }

    #[inline]
    fn check_full(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        if self.size == 0 {
            return Ok(());
        }
        let top = self.top.load(Relaxed);
        if seq > top {
            return Ok(());
        }
        if top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (blk, bit) = self.position(seq);
        if self.blocks[blk].load(Relaxed) & bit != 0 {
            return Err(ReplayError::Replay);
        }
        Ok(())
    }

    #[inline]
    fn position(&self, seq: u64) -> (usize, u64) {
        (((seq / BLOCK_BITS) & self.mask) as usize, 1u64 << (seq % BLOCK_BITS))
    }

    /// Marks an authenticated sequence number as received, sliding the window if it is the
    /// new highest. Fails if it was received in the meantime (a duplicate within one burst).
    /// Single writer only.
    #[inline]
    pub fn commit(&self, seq: u64) -> Result<(), ReplayError> {
        self.check_full(seq)?;
        let top = self.top.load(Relaxed);
        if seq > top {
            if self.size != 0 {
                let (old_blk, new_blk) = (top / BLOCK_BITS, seq / BLOCK_BITS);
                let n = (new_blk - old_blk).min(self.mask + 1);
                for i in 1..=n {
                    self.blocks[((old_blk + i) & self.mask) as usize].store(0, Relaxed);
                }
            }
            self.top.store(seq, Relaxed);
        }
        if self.size != 0 {
            let (blk, bit) = self.position(seq);
            let b = &self.blocks[blk];
            b.store(b.load(Relaxed) | bit, Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Receive in order through check + commit; returns the outcome of each.
    fn feed(w: &ReplayWindow, seqs: &[u32]) -> Vec<Result<u64, ReplayError>> {
        seqs.iter()
            .map(|&s| {
                let full = w.check(s)?;
                w.commit(full)?;
                Ok(full)
            })
            .collect()
    }

    #[test]
    fn table_32bit() {
        use ReplayError::*;
        let w = ReplayWindow::new(64, false);
        let r = feed(&w, &[1, 2, 2, 100, 37, 36, 36, 35, 101, 38, 0]);
        assert_eq!(
            r,
            vec![
                Ok(1),
                Ok(2),
                Err(Replay),
                Ok(100),
                Ok(37),
                Err(TooOld),
                Err(TooOld),
                Err(TooOld),
                Ok(101),
                Ok(38),
                Err(TooOld)
            ]
        );
        // 100 - 37 = 63 < 64: inside; 100 - 36 = 64: outside.
        assert_eq!(w.top(), 101);
    }

    #[test]
    fn big_window_and_big_jump() {
        let w = ReplayWindow::new(4096, false);
        for s in (1..=5000u32).step_by(2) {
            assert!(w.check(s).is_ok());
            w.commit(s as u64).unwrap();
        }
        // Even numbers inside the window are still acceptable, odd ones are replays.
        assert!(w.check(4998).is_ok());
        assert_eq!(w.check(4999), Err(ReplayError::Replay));
        assert_eq!(w.check(4999 - 4096), Err(ReplayError::TooOld));
        assert!(w.check(4999 - 4095).is_ok());
        // A jump far beyond the window clears everything.
        w.commit(1_000_000).unwrap();
        assert!(w.check(1_000_000 - 4095).is_ok());
        assert_eq!(w.check(1_000_000), Err(ReplayError::Replay));
    }

    #[test]
    fn esn_wrap() {
        let w = ReplayWindow::new(64, true);
        let near = (1u64 << 32) - 10;
        w.commit(near).unwrap();
        // Case A: low bits 5 are past the wrap.
        assert_eq!(w.check(5), Ok((1 << 32) + 5));
        w.commit((1 << 32) + 5).unwrap();
        // Case B: the window now spans the wrap; a late packet from below it.
        assert_eq!(w.check(u32::MAX - 19), Ok((1 << 32) - 20));
        w.commit((1 << 32) - 20).unwrap();
        assert_eq!(w.check(u32::MAX - 19), Err(ReplayError::Replay));
        // Far below the window the low bits read as the next subspace (such a packet then
        // fails authentication, since the ICV covers the high bits).
        assert_eq!(w.check(u32::MAX - 100), Ok((1 << 32) + (u32::MAX - 100) as u64));
        // The one just seen before the wrap.
        assert_eq!(w.check(u32::MAX - 9), Err(ReplayError::Replay));
        assert_eq!(w.top(), (1 << 32) + 5);
    }

    #[test]
    fn esn_start_has_no_lower_subspace() {
        let w = ReplayWindow::new(64, true);
        w.commit(3).unwrap();
        assert_eq!(w.check(u32::MAX), Err(ReplayError::TooOld));
        assert_eq!(w.check(4), Ok(4));
    }

    #[test]
    fn disabled_accepts_replays_but_not_zero() {
        let w = ReplayWindow::new(0, false);
        assert_eq!(feed(&w, &[5, 5, 1]), vec![Ok(5), Ok(5), Ok(1)]);
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn commit_refuses_duplicate_after_check() {
        // Two copies in one burst both pass check before either is committed.
        let w = ReplayWindow::new(64, false);
        assert!(w.check(7).is_ok());
        assert!(w.check(7).is_ok());
        assert!(w.commit(7).is_ok());
        assert_eq!(w.commit(7), Err(ReplayError::Replay));
    }

    /// The RFC 4303 semantics in the most obvious form, to test the bitmap against.
    struct Model {
        size: u64,
        top: u64,
        seen: BTreeSet<u64>,
    }
    impl Model {
        fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
            if seq == 0 || (seq <= self.top && self.top - seq >= self.size) {
                return Err(ReplayError::TooOld);
            }
            if !self.seen.insert(seq) {
                return Err(ReplayError::Replay);
            }
            self.top = self.top.max(seq);
            Ok(())
        }
    }

    proptest::proptest! {
        #[test]
        fn matches_model(size in 1u32..600, steps in proptest::collection::vec((0u64..3, 0u64..700), 1..400)) {
            let w = ReplayWindow::new(size, true);
            let mut m = Model { size: size as u64, top: 0, seen: BTreeSet::new() };
            // Start just below a 2^32 boundary to exercise ESN inference across it.
            let mut cursor = (1u64 << 32) - 300;
            w.commit(cursor).unwrap();
            m.accept(cursor).unwrap();
            for (kind, d) in steps {
                // Mostly forward, sometimes backward, sometimes repeats.
                let seq = match kind { 0 => cursor + d, 1 => cursor.saturating_sub(d), _ => cursor };
                cursor = cursor.max(seq);
                let want = m.accept(seq);
                match w.check(seq as u32) {
                    // Left of the window the low bits are read as the next subspace: a
                    // packet that would then fail authentication (the ICV covers the high
                    // bits). The model must have refused it as too old.
                    Ok(full) if full != seq => {
                        proptest::prop_assert_eq!(full, seq + (1 << 32));
                        proptest::prop_assert_eq!(want, Err(ReplayError::TooOld));
                    }
                    Ok(full) => proptest::prop_assert_eq!(w.commit(full), want),
                    Err(e) => proptest::prop_assert_eq!(Err(e), want),
                }
            }
        }
    }
}
