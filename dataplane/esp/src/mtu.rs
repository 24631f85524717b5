//! The exact overhead of an SA and the largest inner packet that fits an outer MTU.
//!
//! An ESP tunnel packet is: outer IP header (20 or 40), UDP (8, with NAT-T), ESP header (8),
//! IV, the inner packet with padding, pad length and next header (a multiple of the cipher
//! block or 4), and the ICV. Seed 004's figures come out of [`max_inner`]: at an outer MTU of 1500 with
//! NAT-T, AES-CBC + HMAC-SHA1-96 leaves 1422 and 3DES + HMAC-MD5-96 leaves 1438.

use crate::proposal::EspLayout;

/// Outer IP header + UDP encapsulation bytes.
#[inline]
pub const fn outer_header_len(outer_v6: bool, udp: bool) -> usize {
    (if outer_v6 { 40 } else { 20 }) + if udp { 8 } else { 0 }
}

/// The size of the outer packet carrying an inner packet of `inner_len` bytes.
#[inline]
pub const fn outer_len(inner_len: usize, outer_v6: bool, udp: bool, layout: EspLayout) -> usize {
    outer_header_len(outer_v6, udp) + layout.esp_len(inner_len)
}

/// The largest inner packet whose outer packet fits in `outer_mtu` (0 if none does).
#[inline]
pub const fn max_inner(outer_mtu: u32, outer_v6: bool, udp: bool, layout: EspLayout) -> u32 {
    let fixed = outer_header_len(outer_v6, udp) + esprit_wire::esp::HEADER_LEN + layout.iv_len + layout.icv_len;
    let mtu = outer_mtu as usize;
    if mtu < fixed + esprit_wire::esp::TRAILER_LEN {
        return 0;
    }
    let body = (mtu - fixed) / layout.align * layout.align;
    body.saturating_sub(esprit_wire::esp::TRAILER_LEN) as u32
}

/// The breakdown `espritctl mtu` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuReport {
    pub outer_mtu: u32,
    pub outer_ip: usize,
    pub udp: usize,
    pub esp_header: usize,
    pub iv: usize,
    pub icv: usize,
    pub align: usize,
    /// Padding + pad length + next header for the largest inner packet.
    pub pad_and_trailer: usize,
    pub max_inner: u32,
}

/// Works out the largest inner packet and the overhead it carries.
pub fn report(outer_mtu: u32, outer_v6: bool, udp: bool, layout: EspLayout) -> MtuReport {
    let max = max_inner(outer_mtu, outer_v6, udp, layout);
    MtuReport {
        outer_mtu,
        outer_ip: if outer_v6 { 40 } else { 20 },
        udp: if udp { 8 } else { 0 },
        esp_header: esprit_wire::esp::HEADER_LEN,
        iv: layout.iv_len,
        icv: layout.icv_len,
        align: layout.align,
        pad_and_trailer: layout.pad_len(max as usize) + esprit_wire::esp::TRAILER_LEN,
        max_inner: max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::{layout_for_name, Transform};

    fn inner(name: &str, mtu: u32, udp: bool) -> u32 {
        max_inner(mtu, false, udp, layout_for_name(name).unwrap())
    }

    /// ../shared/REFERENCES.md, "Worked numbers from the seeds" (seed 004).
    #[test]
    fn seed_004_figures() {
        assert_eq!(inner("aes128-sha1", 1500, true), 1422);
        assert_eq!(inner("3des-md5", 1500, true), 1438);
        assert_eq!(inner("3des-md5", 1300, true), 1238);
        assert_eq!(inner("3des-md5", 1000, true), 942);
        // Issue 4(h): tracepath through aes128gcm16 with NAT-T at 1500.
        assert_eq!(inner("aes128gcm16", 1500, true), 1438);
    }

    #[test]
    fn fits_exactly() {
        for t in Transform::ALL {
            let l = t.layout();
            for v6 in [false, true] {
                for udp in [false, true] {
                    for mtu in [576u32, 1000, 1280, 1300, 1400, 1500, 9000] {
                        let m = max_inner(mtu, v6, udp, l) as usize;
                        assert!(outer_len(m, v6, udp, l) <= mtu as usize, "{t} {mtu}");
                        assert!(outer_len(m + 1, v6, udp, l) > mtu as usize, "{t} {mtu}: {} would fit", m + 1);
                    }
                }
            }
        }
        assert_eq!(max_inner(40, false, true, Transform::Aes128Gcm16.layout()), 0);
    }

    #[test]
    fn report_adds_up() {
        let r = report(1500, false, true, Transform::Aes128Sha1.layout());
        let total = r.outer_ip + r.udp + r.esp_header + r.iv + r.max_inner as usize + r.pad_and_trailer + r.icv;
        // 20 + 8 + 8 + 16 + 1422 + 2 + 12 = 1488: the last 12 bytes cannot hold a whole block.
        assert_eq!(total, 1488);
        assert!(1500 - total < r.align);
        assert_eq!(r.max_inner, 1422);
    }
}
