//! Helpers shared by the benches: traffic generators for inner and ESP packets.

#![forbid(unsafe_code)]

pub mod gen;
pub mod ike;
pub mod install;
pub mod junk;
pub mod measure;
pub mod scenario;
pub mod soak;

use std::net::{IpAddr, Ipv4Addr};

use esprit_esp::crypto::{CryptoProvider, SaKeys};
use esprit_esp::sa::{DfMode, InboundSa, Lifetime, OutboundSa, SaParams, UdpEncap};
use esprit_esp::ts::TrafficSelector;
use esprit_esp::{DropReason, HeapBuf, PacketBuf, Transform};
use esprit_wire::{ipv4, udp};

/// Inner packet sizes of the simple IMIX: 7 × 64, 4 × 570, 1 × 1518 (capped to `mtu`).
pub fn imix(mtu: usize) -> Vec<usize> {
    let mut v = vec![64; 7];
    v.extend([570; 4]);
    v.push(1518.min(mtu));
    v
}

/// An IPv4/UDP packet of exactly `len` bytes from 10.9.0.2 to 10.1.0.5.
pub fn inner_v4(len: usize, seed: u8) -> Vec<u8> {
    let len = len.max(28);
    let mut p = vec![0u8; len];
    ipv4::Repr {
        src: Ipv4Addr::new(10, 9, 0, 2),
        dst: Ipv4Addr::new(10, 1, 0, 5),
        protocol: 17,
        payload_len: len - 20,
        ttl: 64,
        tos: 0,
        ident: seed as u16,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    udp::Repr { src_port: 5000, dst_port: 7, payload_len: len - 28 }.emit(&mut p[20..]);
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i as u8) ^ seed;
    }
    p
}

/// Parameters of a NAT-T SA between 198.51.100.1 and 203.0.113.7 (replay check off, so the
/// same packets can be opened again and again).
pub fn params(t: Transform, spi: u32) -> SaParams {
    let enc: Vec<u8> = (0..t.enc_key_len()).map(|i| i as u8).collect();
    let int: Vec<u8> = (0..t.int_key_len()).map(|i| 0x80 | i as u8).collect();
    let any = [
        TrafficSelector::from_cidr("0.0.0.0/0".parse().expect("valid prefix")),
        TrafficSelector::from_cidr("::/0".parse().expect("valid prefix")),
    ];
    SaParams {
        spi,
        transform: t,
        keys: SaKeys::new(t, &enc, &int).expect("key lengths match the transform"),
        local: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        remote: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        encap: Some(UdpEncap { local_port: 4500, remote_port: 4500 }),
        esn: false,
        replay_window: 0,
        local_ts: any.to_vec(),
        remote_ts: any.to_vec(),
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

/// The receiving side of `params`: endpoints swapped.
pub fn reverse(p: &SaParams) -> SaParams {
    let mut r = p.clone();
    std::mem::swap(&mut r.local, &mut r.remote);
    r
}

/// Sealed outer packets (IPv4/UDP/ESP) for inner packets of `sizes`.
pub fn sealed(tx: &OutboundSa, sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut bufs: Vec<HeapBuf> =
        sizes.iter().enumerate().map(|(i, &s)| HeapBuf::from_slice(&inner_v4(s, i as u8))).collect();
    let mut r = vec![Ok(()); bufs.len()];
    tx.encap_burst(&mut bufs, &mut r, 1);
    assert!(r.iter().all(Result::is_ok), "sealing failed: {r:?}");
    bufs.iter().map(|b| b.data().to_vec()).collect()
}

/// An outbound/inbound pair for `t` from `provider`.
pub fn pair(t: Transform, provider: &dyn CryptoProvider) -> (OutboundSa, InboundSa) {
    let p = params(t, 0x1000);
    let tx = OutboundSa::new(p.clone(), provider).expect("valid SA");
    let rx = InboundSa::new(reverse(&p), provider).expect("valid SA");
    (tx, rx)
}

/// The verdict array type benches reuse.
pub type Verdicts = Vec<Result<(), DropReason>>;
