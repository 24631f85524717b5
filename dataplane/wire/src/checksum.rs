//! The Internet checksum ([RFC 1071](https://www.rfc-editor.org/rfc/rfc1071)) with
//! incremental update ([RFC 1624](https://www.rfc-editor.org/rfc/rfc1624)) and the
//! IPv4/IPv6 pseudo-headers of UDP, TCP and ICMPv6.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to a running one's-complement sum (not yet folded).
///
/// Bytes are summed as big-endian 16-bit words; an odd trailing byte is padded with zero.
/// The sum is accumulated in 64 bits, eight bytes at a time, and folded by [`fold`].
#[inline]
pub fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Native-endian 32-bit halves summed as big-endian words: the one's-complement sum
        // is byte-order independent once folded, as long as we swap once at the end. We
        // keep it simple and exact by summing big-endian 32-bit values.
        let hi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
        let lo = u32::from_be_bytes([c[4], c[5], c[6], c[7]]) as u64;
        sum = sum.wrapping_add(hi).wrapping_add(lo);
        // Each step adds < 2^33, so 2^31 steps (16 GiB) cannot overflow 64 bits.
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        sum += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        sum += (rest[i] as u64) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits (not complemented).
///
/// Four fixed steps, no loop: 64 bits to at most 2^33 − 2, then to at most 0x2fffe, to at
/// most 0x10001 and to 16 bits. (A loop until the carries stop took a data-dependent
/// branch per step, on every packet's header checksum.)
#[inline]
pub fn fold(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum of `data`: the complement of its folded one's-complement sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(add(0, data))
}

/// The IPv4 pseudo-header sum (RFC 768, RFC 793) for `proto` and an upper-layer length.
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u64 {
    let mut s = add(0, &src.octets());
    s = add(s, &dst.octets());
    s + proto as u64 + len as u64
}

/// The IPv6 pseudo-header sum ([RFC 8200 §8.1](https://www.rfc-editor.org/rfc/rfc8200#section-8.1)).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: u32) -> u64 {
    let mut s = add(0, &src.octets());
    s = add(s, &dst.octets());
    s + proto as u64 + len as u64
}

/// Incrementally updates checksum `old_check` for a 16-bit field changing from `old` to `new`
/// ([RFC 1624 §3](https://www.rfc-editor.org/rfc/rfc1624#section-3), eqn. 3:
/// `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update16(old_check: u16, old: u16, new: u16) -> u16 {
    let sum = (!old_check) as u64 + (!old) as u64 + new as u64;
    !fold(sum)
}

/// Incrementally updates a checksum for a 32-bit field (e.g. an IPv4 address) change.
#[inline]
pub fn update32(old_check: u16, old: u32, new: u32) -> u16 {
    let c = update16(old_check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's fold: add the carries back until there are none.
    fn fold_until_no_carry(mut sum: u64) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The reference algorithm, word by word, to check the 8-byte fast path against.
    fn slow(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            sum += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
            i += 2;
        }
        if i < data.len() {
            sum += (data[i] as u32) << 8;
        }
        !fold_until_no_carry(sum as u64)
    }

    #[test]
    fn fold_matches_folding_until_no_carry() {
        let edges = [0, 1, 0xffff, 0x1_0000, 0x1_ffff, 0x2_fffe, 0xffff_ffff, 0x1_0000_0000, u64::MAX, u64::MAX - 1];
        let powers = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]);
        // A cheap deterministic spread over the whole range.
        let spread = (0..100_000).scan(0x9e37_79b9_7f4a_7c15u64, |x, _| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            Some([*x, *x >> (*x % 64)])
        });
        let edges = edges.into_iter().chain(powers).chain(spread.flatten());
        for s in edges {
            assert_eq!(fold(s), fold_until_no_carry(s), "{s:#x}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A captured IPv4 header (the Wikipedia "IPv4 header checksum" example) whose checksum is b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn incremental_matches_full() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        // Decrement the TTL and change the destination, then compare with a full recompute.
        let old_ttl_proto = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new_ttl_proto = u16::from_be_bytes([h[8], h[9]]);
        let c = update16(0xb861, old_ttl_proto, new_ttl_proto);
        let old_dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let new_dst: u32 = 0x0a00_0001;
        h[16..20].copy_from_slice(&new_dst.to_be_bytes());
        let c = update32(c, old_dst, new_dst);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c, checksum(&h));
    }

    proptest::proptest! {
        #[test]
        fn fast_path_equals_reference(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(checksum(&data), slow(&data));
        }

        #[test]
        fn incremental_equals_full(data in proptest::collection::vec(proptest::num::u8::ANY, 2..64), at in 0usize..31, v in proptest::num::u16::ANY) {
            let mut data = data;
            if data.len() % 2 == 1 { data.push(0); }
            let at = (at * 2) % data.len();
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&v.to_be_bytes());
            let inc = update16(before, old, v);
            // One's complement has two zeros; compare the folded values modulo that.
            let full = checksum(&data);
            proptest::prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }
    }
}
