//! TCP MSS clamping: lowers the maximum segment size a SYN announces so that TCP through the
//! tunnel never needs path MTU discovery (what `iptables … TCPMSS --clamp-mss-to-pmtu` does).
//! Optional, per configuration.

use esprit_wire::{checksum, ip_proto, ipv4, ipv6};

const TCP_SYN: u8 = 0x02;
const OPT_MSS: u8 = 2;

/// The MSS that fits an inner MTU: MTU minus the IP and TCP headers.
pub fn mss_for_mtu(inner_mtu: u32, v6: bool) -> u16 {
    inner_mtu.saturating_sub(if v6 { 60 } else { 40 }).min(u16::MAX as u32) as u16
}

/// If `pkt` is an IPv4 or IPv6 TCP SYN announcing an MSS above `max_mss`, lowers it and
/// recomputes the TCP checksum (SYNs are short and rare; a full sum is simplest and exact
/// whatever the option's alignment). Returns true if the packet changed.
pub fn clamp(pkt: &mut [u8], max_mss: u16) -> bool {
    let (off, end, pseudo) = match pkt.first().map(|b| b >> 4) {
        Some(4) => match ipv4::Packet::new_checked(&pkt[..]) {
            Ok(p) if p.protocol() == ip_proto::TCP && !p.is_fragment() => {
                let len = p.total_len() as usize - p.header_len();
                (
                    p.header_len(),
                    p.total_len() as usize,
                    checksum::pseudo_v4(p.src_addr(), p.dst_addr(), ip_proto::TCP, len as u32),
                )
            }
            _ => return false,
        },
        Some(6) => match ipv6::Packet::new_checked(&pkt[..]) {
            Ok(p) => match p.upper_layer() {
                Ok(u) if u.protocol == ip_proto::TCP && u.frag.is_none() => {
                    let off = ipv6::HEADER_LEN + u.offset;
                    let len = p.total_len() - off;
                    (off, p.total_len(), checksum::pseudo_v6(p.src_addr(), p.dst_addr(), ip_proto::TCP, len as u32))
                }
                _ => return false,
            },
            Err(_) => return false,
        },
        _ => return false,
    };
    let tcp = &mut pkt[off..end];
    if tcp.len() < 20 || tcp[13] & TCP_SYN == 0 {
        return false;
    }
    let hl = ((tcp[12] >> 4) as usize) * 4;
    if hl < 20 || hl > tcp.len() {
        return false;
    }
    let mut i = 20;
    while i < hl {
        match tcp[i] {
            0 => return false,
            1 => i += 1,
            kind => {
                let len = match tcp.get(i + 1) {
                    Some(&l) if l >= 2 && i + l as usize <= hl => l as usize,
                    _ => return false,
                };
                if kind == OPT_MSS && len == 4 {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= max_mss {
                        return false;
                    }
                    tcp[i + 2..i + 4].copy_from_slice(&max_mss.to_be_bytes());
                    tcp[16..18].fill(0);
                    let c = !checksum::fold(checksum::add(pseudo, tcp));
                    tcp[16..18].copy_from_slice(&c.to_be_bytes());
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::IpAddr;

    fn tcp_checksum_ok(pkt: &[u8]) -> bool {
        let p = ipv4::Packet::new_checked(pkt).unwrap();
        let seg = p.payload();
        let s = checksum::pseudo_v4(p.src_addr(), p.dst_addr(), ip_proto::TCP, seg.len() as u32);
        checksum::fold(checksum::add(s, seg)) == 0xffff
    }

    fn syn(options: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut p = vec![0u8; 20 + tcp_len];
        ipv4::Repr {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 6,
            payload_len: tcp_len,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
        .emit(&mut p);
        let t = &mut p[20..];
        t[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = TCP_SYN;
        t[20..].copy_from_slice(options);
        let (s, d) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let sum = checksum::pseudo_v4(s, d, ip_proto::TCP, tcp_len as u32);
        let c = !checksum::fold(checksum::add(sum, &p[20..]));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        let _: IpAddr = IpAddr::V4(s);
        p
    }

    #[test]
    fn clamps_and_keeps_checksum_valid() {
        let mut p = syn(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2]); // MSS 1460, NOP NOP SACK-permitted
        assert!(tcp_checksum_ok(&p));
        assert!(clamp(&mut p, 1398));
        assert_eq!(&p[42..44], &1398u16.to_be_bytes());
        assert!(tcp_checksum_ok(&p));
        assert!(!clamp(&mut p, 1400), "already below");
    }

    #[test]
    fn odd_aligned_option() {
        // NOP then MSS: the value starts at an odd offset.
        let mut p = syn(&[1, 2, 4, 0x05, 0xb4, 1, 1, 0]);
        assert!(clamp(&mut p, 1300));
        assert_eq!(&p[43..45], &1300u16.to_be_bytes());
        assert!(tcp_checksum_ok(&p));
    }

    #[test]
    fn leaves_others_alone() {
        let mut p = syn(&[2, 4, 0x05, 0xb4]);
        p[33] = 0x10; // ACK, not SYN
        assert!(!clamp(&mut p, 1000));
        let mut bad = syn(&[2, 9, 0x05, 0xb4]); // option runs past the header
        assert!(!clamp(&mut bad, 1000));
        assert!(!clamp(&mut [0x45, 0, 0], 1000));
        assert_eq!(mss_for_mtu(1438, false), 1398);
        assert_eq!(mss_for_mtu(1438, true), 1378);
    }
}
