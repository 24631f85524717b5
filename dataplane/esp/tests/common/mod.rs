//! Packet builders shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use esprit_esp::crypto::{default_provider, SaKeys};
use esprit_esp::sa::{DfMode, InboundSa, Lifetime, OutboundSa, SaParams, UdpEncap};
use esprit_esp::ts::TrafficSelector;
use esprit_esp::Transform;
use esprit_wire::{ipv4, ipv6, udp};

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An IPv4 UDP packet with a valid checksum and a recognisable payload.
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8], df: bool) -> Vec<u8> {
    let mut p = vec![0u8; 28 + payload.len()];
    ipv4::Repr {
        src,
        dst,
        protocol: 17,
        payload_len: 8 + payload.len(),
        ttl: 64,
        tos: 0x28,
        ident: 0x1234,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    udp::Repr { src_port: sport, dst_port: dport, payload_len: payload.len() }.emit(&mut p[20..]);
    p[28..].copy_from_slice(payload);
    udp::Packet::new_unchecked(&mut p[20..]).fill_checksum(IpAddr::V4(src), IpAddr::V4(dst));
    p
}

/// An IPv6 UDP packet with a valid checksum.
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 48 + payload.len()];
    ipv6::Repr {
        src,
        dst,
        next_header: 17,
        payload_len: 8 + payload.len(),
        hop_limit: 64,
        traffic_class: 0x28,
        flow_label: 7,
    }
    .emit(&mut p);
    udp::Repr { src_port: sport, dst_port: dport, payload_len: payload.len() }.emit(&mut p[40..]);
    p[48..].copy_from_slice(payload);
    udp::Packet::new_unchecked(&mut p[40..]).fill_checksum(IpAddr::V6(src), IpAddr::V6(dst));
    p
}

/// An inner packet of `len` bytes (IPv4 or IPv6 UDP) from the client 10.9.0.2 /
/// 2001:db8:9::2 to the server 10.1.0.5 / 2001:db8:1::5.
pub fn inner(v6_inner: bool, len: usize, seed: u8) -> Vec<u8> {
    if v6_inner {
        let n = len.max(48) - 48;
        udp6(v6("2001:db8:9::2"), v6("2001:db8:1::5"), 5000, 7, &(0..n).map(|i| (i as u8) ^ seed).collect::<Vec<_>>())
    } else {
        let n = len.max(28) - 28;
        udp4(v4("10.9.0.2"), v4("10.1.0.5"), 5000, 7, &(0..n).map(|i| (i as u8) ^ seed).collect::<Vec<_>>(), true)
    }
}

pub fn keys(t: Transform) -> SaKeys {
    let enc: Vec<u8> = (0..t.enc_key_len()).map(|i| i as u8 * 3 + 1).collect();
    let int: Vec<u8> = (0..t.int_key_len()).map(|i| i as u8 * 5 + 2).collect();
    SaKeys::new(t, &enc, &int).unwrap()
}

/// Parameters for a gateway (local) ↔ client (remote) SA pair with NAT-T or raw ESP.
pub fn params(t: Transform, v6_outer: bool, udp: bool, spi: u32) -> SaParams {
    let (gw, client) =
        if v6_outer { (ip("2001:db8:ff::1"), ip("2001:db8:aa::2")) } else { (ip("198.51.100.1"), ip("203.0.113.7")) };
    SaParams {
        spi,
        transform: t,
        keys: keys(t),
        local: gw,
        remote: client,
        encap: udp.then_some(UdpEncap { local_port: 4500, remote_port: 34567 }),
        esn: false,
        replay_window: 64,
        local_ts: vec![
            TrafficSelector::from_cidr("10.1.0.0/16".parse().unwrap()),
            TrafficSelector::from_cidr("2001:db8:1::/48".parse().unwrap()),
        ],
        remote_ts: vec![
            TrafficSelector::from_cidr("10.9.0.2/32".parse().unwrap()),
            TrafficSelector::from_cidr("2001:db8:9::2/128".parse().unwrap()),
        ],
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

/// The client's view: its outbound SA seals what the gateway's inbound SA opens. Encap is
/// done by an `OutboundSa` whose local/remote are swapped.
pub fn client_out(p: &SaParams) -> OutboundSa {
    let mut c = p.clone();
    std::mem::swap(&mut c.local, &mut c.remote);
    c.encap = p.encap.map(|e| UdpEncap { local_port: e.remote_port, remote_port: e.local_port });
    std::mem::swap(&mut c.local_ts, &mut c.remote_ts);
    OutboundSa::new(c, default_provider(p.transform)).unwrap()
}

pub fn gw_in(p: &SaParams) -> InboundSa {
    InboundSa::new(p.clone(), default_provider(p.transform)).unwrap()
}

/// Where the ESP header is in an outer packet, and its source endpoint.
pub fn meta_of(outer: &[u8]) -> esprit_esp::sa::InboundMeta {
    use esprit_esp::sa::{Endpoint, InboundMeta};
    let (ip_len, proto, src) = if outer[0] >> 4 == 4 {
        let p = ipv4::Packet::new_checked(outer).unwrap();
        (p.header_len(), p.protocol(), IpAddr::V4(p.src_addr()))
    } else {
        let p = ipv6::Packet::new_checked(outer).unwrap();
        (40, p.next_header(), IpAddr::V6(p.src_addr()))
    };
    if proto == 17 {
        let u = udp::Packet::new_checked(&outer[ip_len..]).unwrap();
        InboundMeta { esp_offset: ip_len + 8, src: Endpoint { addr: src, port: u.src_port() }, udp: true }
    } else {
        InboundMeta { esp_offset: ip_len, src: Endpoint { addr: src, port: 0 }, udp: false }
    }
}
