//! Traffic for N SAs: the SAs and policies to install in the gateway, and the frames that
//! arrive on each side — ESP-in-UDP from N clients (each behind its own NAT mapping, with its
//! own virtual IP) on the outside, plaintext toward those virtual IPs on the inside. Frames
//! are built once and recycled by the benches, so the generator is never the bottleneck.

use std::net::{IpAddr, Ipv4Addr};

use esprit_engine::config::Direction;
use esprit_esp::crypto::{default_provider, SaKeys};
use esprit_esp::sa::{DfMode, Lifetime, OutboundSa, SaParams, UdpEncap};
use esprit_esp::ts::TrafficSelector;
use esprit_esp::{HeapBuf, PacketBuf, Transform};
use esprit_satable::Policy;
use esprit_wire::IpCidr;

use crate::inner_v4;

pub const GW_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0xfe];
pub const GW_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
pub const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 5];
pub const GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);

/// The interfaces, routes and neighbors every scenario shares (no SAs: those are added).
pub const BASE_CONFIG: &str = r#"
[dataplane]
keepalive_interval = 0

[[interface]]
name = "outside"
role = "outside"
address = "198.51.100.1/24"
mac = "02:00:00:00:01:01"

[[interface]]
name = "inside"
role = "inside"
address = "10.1.0.1/16"
mac = "02:00:00:00:02:01"

[[neighbor]]
interface = "outside"
address = "198.51.100.254"
mac = "02:00:00:00:01:fe"

[[neighbor]]
interface = "inside"
address = "10.1.0.5"
mac = "02:00:00:00:02:05"

[[route]]
destination = "0.0.0.0/0"
via = "198.51.100.254"
interface = "outside"
"#;

/// Client `i`'s virtual IP (10.128.0.0/10 holds four million).
pub fn virtual_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i)
}

/// Client `i`'s public NAT mapping.
pub fn nat_mapping(i: u32) -> (Ipv4Addr, u16) {
    (Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i / 16), 1024 + (i % 16) as u16 * 1000)
}

/// Client `i`'s keys for direction `dir` (1: toward the gateway, 2: from it).
pub fn keys(t: Transform, i: u32, dir: u8) -> SaKeys {
    let enc: Vec<u8> = (0..t.enc_key_len()).map(|k| (k as u32 ^ i.rotate_left(k as u32) ^ dir as u32) as u8).collect();
    let int: Vec<u8> = (0..t.int_key_len()).map(|k| ((k as u32 * 7) ^ i ^ dir as u32) as u8).collect();
    SaKeys::new(t, &enc, &int).expect("lengths match the transform")
}

/// The gateway's side of client `i`'s SA pair (inbound SPI 0x1000_0000 + i, outbound
/// 0x2000_0000 + i), with the replay check off when `replay_off` (benches replay the same
/// packets forever).
pub fn gateway_sas(t: Transform, i: u32, replay_off: bool) -> [(Direction, SaParams); 2] {
    let (nat, port) = nat_mapping(i);
    let p = |spi, dir| SaParams {
        spi,
        transform: t,
        keys: keys(t, i, dir),
        local: IpAddr::V4(GW),
        remote: IpAddr::V4(nat),
        encap: Some(UdpEncap { local_port: 4500, remote_port: port }),
        esn: false,
        replay_window: if replay_off { 0 } else { 1024 },
        local_ts: vec![TrafficSelector::from_cidr("10.1.0.0/16".parse().expect("prefix"))],
        remote_ts: vec![TrafficSelector::from_cidr(IpCidr::host(IpAddr::V4(virtual_ip(i))))],
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    };
    [(Direction::In, p(0x1000_0000 + i, 1)), (Direction::Out, p(0x2000_0000 + i, 2))]
}

/// The policy sending the inside's traffic for client `i` through its outbound SA.
pub fn policy(i: u32) -> Policy {
    Policy {
        src: "10.1.0.0/16".parse().expect("prefix"),
        dst: IpCidr::host(IpAddr::V4(virtual_ip(i))),
        spi: 0x2000_0000 + i,
    }
}

/// Client `i`'s sealing SA (the mirror of the gateway's inbound one).
pub fn client_sa(t: Transform, i: u32) -> OutboundSa {
    let [(_, mut p), _] = gateway_sas(t, i, true);
    std::mem::swap(&mut p.local, &mut p.remote);
    p.encap = Some(UdpEncap { local_port: nat_mapping(i).1, remote_port: 4500 });
    OutboundSa::new(p, default_provider(t)).expect("valid SA")
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

/// `count` outside frames cycling over clients `0..n`, inner sizes cycling over `sizes`.
pub fn outside_frames(t: Transform, n: u32, sizes: &[usize], count: usize) -> Vec<Vec<u8>> {
    let clients: Vec<OutboundSa> = (0..n.min(count as u32)).map(|i| client_sa(t, i)).collect();
    (0..count)
        .map(|k| {
            let i = (k as u32) % n;
            client_frame(&clients[(i as usize) % clients.len()], virtual_ip(i), sizes[k % sizes.len()], k as u8)
        })
        .collect()
}

/// `count` outside frames of client `i` alone, numbered 1, 2, 3, … by its SA.
pub fn client_frames(t: Transform, i: u32, sizes: &[usize], count: usize) -> Vec<Vec<u8>> {
    let c = client_sa(t, i);
    (0..count).map(|k| client_frame(&c, virtual_ip(i), sizes[k % sizes.len()], k as u8)).collect()
}

/// The next packet of the client with virtual IP `vip` to the server, sealed by `c`, as it
/// arrives at the gateway.
pub fn client_frame(c: &OutboundSa, vip: Ipv4Addr, size: usize, seed: u8) -> Vec<u8> {
    let mut inner = inner_v4(size, seed);
    inner[12..16].copy_from_slice(&vip.octets());
    inner[16..20].copy_from_slice(&SERVER.octets());
    esprit_wire::ipv4::Packet::new_unchecked(&mut inner[..]).fill_checksum();
    let mut b = [HeapBuf::from_slice(&inner)];
    let mut r = [Ok(())];
    c.encap_burst(&mut b, &mut r, 0);
    ethernet(GW_WAN_MAC, ROUTER_MAC, b[0].data())
}

/// `count` inside frames from the server to clients `0..n`, sizes cycling over `sizes`.
pub fn inside_frames(n: u32, sizes: &[usize], count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|k| server_frame(virtual_ip((k as u32) % n), sizes[k % sizes.len()], k as u8)).collect()
}

/// A plaintext packet from the server to `vip`, as it arrives at the gateway's inside port.
pub fn server_frame(vip: Ipv4Addr, size: usize, seed: u8) -> Vec<u8> {
    let mut p = inner_v4(size, seed);
    p[12..16].copy_from_slice(&SERVER.octets());
    p[16..20].copy_from_slice(&vip.octets());
    esprit_wire::ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    ethernet(GW_LAN_MAC, SERVER_MAC, &p)
}
