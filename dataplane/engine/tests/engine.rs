//! The engine end to end, frame in, frames out: a client behind a NAT, the gateway, a server
//! on the inside. The client's side of each SA is played by an independent `OutboundSa` /
//! `InboundSa` pair keyed the same way.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use esprit_engine::config::{self, Config, Direction};
use esprit_engine::Event;
use esprit_engine::{Engine, HeapPool};
use esprit_esp::crypto::default_provider;
use esprit_esp::sa::{Endpoint, InboundMeta, InboundSa, OutboundSa};
use esprit_esp::{DropReason, HeapBuf, PacketBuf, Transform};
use esprit_wire::{arp, ethernet, icmpv4, ipv4, udp, EthernetAddress};

const SEC: u64 = 1_000_000_000;
const ENC_IN: &str = "00112233445566778899aabbccddeeff01020304";
const ENC_OUT: &str = "ffeeddccbbaa99887766554433221100a0a1a2a3";

fn mac(s: &str) -> EthernetAddress {
    s.parse().unwrap()
}
const GW_WAN: &str = "02:00:00:00:01:01";
const ROUTER: &str = "02:00:00:00:01:fe";
const GW_LAN: &str = "02:00:00:00:02:01";
const SERVER: &str = "02:00:00:00:02:05";

fn config_toml(extra: &str) -> String {
    format!(
        r#"
[dataplane]
keepalive_interval = 20
{extra}

[[interface]]
name = "wan"
role = "outside"
address = "198.51.100.1/24"
mac = "{GW_WAN}"

[[interface]]
name = "lan"
role = "inside"
address = "10.1.0.1/16"
mac = "{GW_LAN}"

[[neighbor]]
interface = "wan"
address = "198.51.100.254"
mac = "{ROUTER}"

[[neighbor]]
interface = "lan"
address = "10.1.0.5"
mac = "{SERVER}"

[[route]]
destination = "0.0.0.0/0"
via = "198.51.100.254"
interface = "wan"

[[sa]]
spi = 0x1001
direction = "in"
proposal = "aes128gcm16"
enc_key = "{ENC_IN}"
local = "198.51.100.1"
remote = "203.0.113.7"
local_port = 4500
remote_port = 34567
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.9.0.2/32"]

[[sa]]
spi = 0x2002
direction = "out"
proposal = "aes128gcm16"
enc_key = "{ENC_OUT}"
local = "198.51.100.1"
remote = "203.0.113.7"
local_port = 4500
remote_port = 34567

[[policy]]
src = "10.1.0.0/16"
dst = "10.9.0.2/32"
sa = 0x2002
"#
    )
}

fn config(extra: &str) -> Config {
    config::parse("test.toml", &config_toml(extra)).unwrap_or_else(|e| panic!("{e}"))
}

/// The client's halves of the two SAs.
struct Client {
    tx: OutboundSa,
    rx: InboundSa,
}

fn client(cfg: &Config) -> Client {
    let mut p_in = cfg.sas.iter().find(|s| s.params.spi == 0x1001).unwrap().params.clone();
    let mut p_out = cfg.sas.iter().find(|s| s.params.spi == 0x2002).unwrap().params.clone();
    // The client's view: endpoints and selectors swapped. It sits behind a NAT that maps
    // its 192.168.1.10:4500 to 203.0.113.7:34567; the gateway only ever sees the mapping.
    for p in [&mut p_in, &mut p_out] {
        std::mem::swap(&mut p.local, &mut p.remote);
        std::mem::swap(&mut p.local_ts, &mut p.remote_ts);
        p.encap = p.encap.map(|e| esprit_esp::sa::UdpEncap { local_port: e.remote_port, remote_port: e.local_port });
    }
    Client {
        tx: OutboundSa::new(p_in, default_provider(Transform::Aes128Gcm16)).unwrap(),
        rx: InboundSa::new(p_out, default_provider(Transform::Aes128Gcm16)).unwrap(),
    }
}

fn eth(dst: &str, src: &str, ethertype: u16, payload: &[u8]) -> HeapBuf {
    let mut f = vec![0u8; 14 + payload.len()];
    ethernet::Repr { src: mac(src), dst: mac(dst), vlan: None, ethertype }.emit(&mut f);
    f[14..].copy_from_slice(payload);
    HeapBuf::from_slice(&f)
}

fn udp4(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8], df: bool, ttl: u8) -> Vec<u8> {
    let (s, d): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0u8; 28 + payload.len()];
    ipv4::Repr {
        src: s,
        dst: d,
        protocol: 17,
        payload_len: 8 + payload.len(),
        ttl,
        tos: 0,
        ident: 7,
        dont_frag: df,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut p);
    udp::Repr { src_port: sport, dst_port: dport, payload_len: payload.len() }.emit(&mut p[20..]);
    p[28..].copy_from_slice(payload);
    udp::Packet::new_unchecked(&mut p[20..]).fill_checksum(IpAddr::V4(s), IpAddr::V4(d));
    p
}

/// The client seals `inner`; the NAT delivers it from 203.0.113.7:`port` via the router.
fn from_client(c: &Client, inner: &[u8], port: u16) -> HeapBuf {
    let mut b = [HeapBuf::from_slice(inner)];
    let mut r = [Ok(())];
    c.tx.encap_burst(&mut b, &mut r, 0);
    r[0].unwrap();
    let mut outer = b[0].data().to_vec();
    // The NAT rewrites the source: 192.168.1.10:4500 -> 203.0.113.7:port.
    let mut p = ipv4::Packet::new_unchecked(&mut outer[..]);
    p.set_src_addr("203.0.113.7".parse().unwrap());
    p.fill_checksum();
    udp::Packet::new_unchecked(&mut outer[20..]).set_src_port(port);
    eth(GW_WAN, ROUTER, 0x0800, &outer)
}

fn engine(cfg: &Config) -> Engine<HeapPool> {
    Engine::new(cfg, HeapPool::new(4096)).unwrap()
}

fn take(e: &mut Engine<HeapPool>, ifname: &str) -> Vec<Vec<u8>> {
    let i = e.interface_index(ifname).unwrap();
    e.tx_queue(i).drain(..).map(|b| b.data().to_vec()).collect()
}

/// Opens an ESP frame the gateway sent toward the client.
fn client_open(c: &Client, frame: &[u8]) -> Result<Vec<u8>, DropReason> {
    let f = ethernet::Frame::new_checked(frame).unwrap();
    assert_eq!(f.dst_addr(), mac(ROUTER), "toward the upstream router");
    assert_eq!(f.src_addr(), mac(GW_WAN));
    let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr(), "203.0.113.7".parse::<Ipv4Addr>().unwrap());
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(u.src_port(), 4500);
    let meta =
        InboundMeta { esp_offset: 28, src: Endpoint { addr: "198.51.100.1".parse().unwrap(), port: 4500 }, udp: true };
    let mut b = [HeapBuf::from_slice(f.payload())];
    let mut r = [Err(DropReason::NoBuffer)];
    c.rx.decap_burst(&mut b, &[meta], &mut r, 0);
    r[0].map(|_| b[0].data().to_vec())
}

fn dport(pkt: &[u8]) -> u16 {
    let f = ethernet::Frame::new_checked(pkt).unwrap();
    let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
    udp::Packet::new_checked(ip.payload()).unwrap().dst_port()
}

#[test]
fn client_to_server_and_back() {
    let cfg = config("");
    let c = client(&cfg);
    let mut e = engine(&cfg);
    let req = udp4("10.9.0.2", "10.1.0.5", 5000, 7, b"hello server", true, 64);
    e.rx(0, [from_client(&c, &req, 34567)], SEC);
    let lan = take(&mut e, "lan");
    assert_eq!(lan.len(), 1);
    let f = ethernet::Frame::new_checked(&lan[0][..]).unwrap();
    assert_eq!((f.dst_addr(), f.src_addr()), (mac(SERVER), mac(GW_LAN)));
    let mut want = req.clone();
    ipv4::Packet::new_unchecked(&mut want[..]).decrement_ttl();
    assert_eq!(f.payload(), &want[..], "inner packet forwarded with TTL - 1");

    let reply = udp4("10.1.0.5", "10.9.0.2", 7, 5000, b"hello client", true, 64);
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &reply)], SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(wan.len(), 1);
    assert_eq!(dport(&wan[0]), 34567, "to the client's NAT mapping");
    let mut want = reply.clone();
    ipv4::Packet::new_unchecked(&mut want[..]).decrement_ttl();
    assert_eq!(client_open(&c, &wan[0]).unwrap(), want);
    assert_eq!((e.counters.esp_decrypted, e.counters.esp_encrypted), (1, 1));
    assert_eq!(e.drops.total(), 0);
}

fn icmp_of(frame: &[u8]) -> (Ipv4Addr, u8, u8, u16, Vec<u8>) {
    let f = ethernet::Frame::new_checked(frame).unwrap();
    let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
    assert!(ip.verify_checksum());
    let i = icmpv4::Packet::new_checked(ip.payload()).unwrap();
    assert!(i.verify_checksum());
    (ip.dst_addr(), i.msg_type(), i.msg_code(), i.next_hop_mtu(), i.data().to_vec())
}

/// Seed 004, "complex scenario": the tunnel MTU is reported to the sender, then a router
/// past the gateway reports a smaller MTU for the ESP packets, and the next oversize packet
/// gets the smaller, overhead-adjusted figure.
#[test]
fn path_mtu_story() {
    let cfg = config("");
    let mut e = engine(&cfg);
    let big = |len: usize| udp4("10.1.0.5", "10.9.0.2", 7, 5000, &vec![0x5a; len - 28], true, 64);
    let gcm = Transform::Aes128Gcm16.layout();
    // 1500-byte packet with DF: 1438 fits aes128gcm16 with NAT-T in 1500.
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &big(1500))], SEC);
    let lan = take(&mut e, "lan");
    assert_eq!(lan.len(), 1);
    let (to, t, code, mtu, quoted) = icmp_of(&lan[0]);
    assert_eq!((to, t, code, mtu), ("10.1.0.5".parse().unwrap(), 3, 4, 1438));
    assert_eq!(&quoted[..20], &big(1500)[..20], "quotes the offending header");
    assert_eq!(e.drops.get(DropReason::TooBig), 1);
    assert!(take(&mut e, "wan").is_empty());
    // A 1438-byte packet fits: one ESP packet of exactly 1500 bytes.
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &big(1438))], SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(wan[0].len(), 14 + 1500);
    // The NAT router (MTU 1000 on its LAN) reports fragmentation-needed about it.
    let esp_ip = &wan[0][14..];
    let icmp = icmpv4::Repr::DstUnreachable { code: 4, next_hop_mtu: 1000, quoted: &esp_ip[..548] };
    let mut pkt = vec![0u8; 20 + icmp.buffer_len()];
    ipv4::Repr {
        src: "192.0.2.1".parse().unwrap(),
        dst: "198.51.100.1".parse().unwrap(),
        protocol: 1,
        payload_len: icmp.buffer_len(),
        ttl: 60,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut pkt);
    icmp.emit(&mut pkt[20..]);
    e.rx(0, [eth(GW_WAN, ROUTER, 0x0800, &pkt)], 2 * SEC);
    assert_eq!(e.counters.pmtu_updates, 1);
    assert!(e.events.contains(&Event::PmtuLearned { spi: 0x2002, mtu: 1000 }));
    // The next 1438-byte packet is refused with the overhead-adjusted smaller MTU.
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &big(1438))], 3 * SEC);
    let lan = take(&mut e, "lan");
    let (_, _, _, mtu, _) = icmp_of(&lan[0]);
    assert_eq!(mtu as u32, esprit_esp::mtu::max_inner(1000, false, true, gcm));
    assert_eq!(mtu, 938);
    // Learned path MTUs age out (10 minutes by default).
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &big(1438))], 3 * SEC + 601 * SEC);
    assert!(take(&mut e, "lan").is_empty());
    assert_eq!(take(&mut e, "wan").len(), 1);
}

#[test]
fn inner_ipv4_without_df_is_fragmented_before_encryption() {
    let cfg = config("");
    let c = client(&cfg);
    let mut e = engine(&cfg);
    let pkt = udp4("10.1.0.5", "10.9.0.2", 7, 5000, &(0..2972).map(|i| i as u8).collect::<Vec<_>>(), false, 64);
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &pkt)], SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(wan.len(), 3);
    assert!(wan.iter().all(|f| f.len() <= 14 + 1500));
    assert_eq!(e.counters.inner_fragmented, 1);
    // The client decrypts three fragments that reassemble to the original (TTL - 1).
    let mut payload = Vec::new();
    for f in &wan {
        let inner = client_open(&c, f).unwrap();
        let p = ipv4::Packet::new_checked(&inner[..]).unwrap();
        assert_eq!(p.frag_offset() as usize, payload.len());
        payload.extend_from_slice(p.payload());
    }
    assert_eq!(payload, pkt[20..]);
}

#[test]
fn nat_rebinding_is_followed_on_authentic_packets_only() {
    let cfg = config("");
    let c = client(&cfg);
    let mut e = engine(&cfg);
    let req = udp4("10.9.0.2", "10.1.0.5", 5000, 7, b"x", true, 64);
    e.rx(0, [from_client(&c, &req, 34567)], SEC);
    // A forged packet from a new port is dropped and moves nothing.
    let mut forged = from_client(&c, &req, 40000);
    let n = forged.len();
    forged.data_mut()[n - 1] ^= 1;
    e.rx(0, [forged], SEC);
    assert_eq!(e.drops.get(DropReason::AuthFailed), 1);
    assert_eq!(e.counters.nat_mapping_changes, 0);
    // The NAT rebinds the client to port 40000.
    e.rx(0, [from_client(&c, &req, 40000)], 2 * SEC);
    assert_eq!(e.counters.nat_mapping_changes, 1);
    assert!(e
        .events
        .iter()
        .any(|ev| matches!(ev, Event::NatMappingChanged { spi_in: 0x1001, new, .. } if new.port == 40000)));
    take(&mut e, "lan");
    let reply = udp4("10.1.0.5", "10.9.0.2", 7, 5000, b"y", true, 64);
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &reply)], 2 * SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(dport(&wan[0]), 40000, "replies follow the new mapping");
}

#[test]
fn arp_keepalives_ike_and_unprotected_traffic() {
    let cfg = config("");
    let mut e = engine(&cfg);
    e.poll(SEC); // the driver polls continuously; the keepalive clock starts here
                 // ARP for the gateway's outside address.
    let mut a = [0u8; 28];
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: mac(ROUTER),
        source_protocol_addr: "198.51.100.254".parse().unwrap(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: "198.51.100.1".parse().unwrap(),
    }
    .emit(&mut a);
    e.rx(0, [eth("ff:ff:ff:ff:ff:ff", ROUTER, 0x0806, &a)], SEC);
    let wan = take(&mut e, "wan");
    let r = arp::Repr::parse(&arp::Packet::new_checked(&wan[0][14..]).unwrap()).unwrap();
    assert_eq!((r.operation, r.source_hardware_addr), (arp::Operation::Reply, mac(GW_WAN)));
    // A NAT keepalive from the client is counted.
    let ka = udp4("203.0.113.7", "198.51.100.1", 34567, 4500, &[0xff], false, 64);
    e.rx(0, [eth(GW_WAN, ROUTER, 0x0800, &ka)], SEC);
    assert_eq!(e.counters.keepalives_rx, 1);
    // IKE with no control plane attached.
    let mut ike = vec![0u8; 28];
    esprit_wire::ike::Repr {
        initiator_spi: 1,
        responder_spi: 0,
        next_payload: 33,
        exchange_type: 34,
        flags: 8,
        message_id: 0,
        length: 28,
    }
    .emit(&mut ike);
    e.rx(0, [eth(GW_WAN, ROUTER, 0x0800, &udp4("203.0.113.7", "198.51.100.1", 500, 500, &ike, false, 64))], SEC);
    assert_eq!(e.drops.get(DropReason::IkeNoListener), 1);
    // The outbound SA is idle: a keepalive goes out after 20 s, and not again before 40 s.
    e.poll(21 * SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(wan.len(), 1);
    let ip = ipv4::Packet::new_checked(&wan[0][14..]).unwrap();
    let u = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.payload()), (4500, 34567, &[0xffu8][..]));
    assert!(ip.verify_checksum());
    assert_eq!(u.checksum(), 0, "over IPv4 a keepalive's UDP checksum is zero, as for UDP-encapsulated ESP");
    e.poll(30 * SEC);
    assert!(take(&mut e, "wan").is_empty());
    e.poll(42 * SEC);
    assert_eq!(take(&mut e, "wan").len(), 1);
    // Inside traffic to a destination no policy protects is not sent in clear.
    let other = udp4("10.1.0.5", "10.9.0.3", 1, 2, b"z", false, 64);
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &other)], 43 * SEC);
    assert!(take(&mut e, "wan").is_empty());
    assert_eq!(e.drops.get(DropReason::NoPolicy), 1);
}

#[test]
fn the_client_can_ping_the_gateway_and_traceroute_through_it() {
    let cfg = config("");
    let c = client(&cfg);
    let mut e = engine(&cfg);
    let mut echo = [0u8; 16];
    icmpv4::Repr::EchoRequest { ident: 9, seq_no: 1, data: b"pingping" }.emit(&mut echo);
    let mut req = vec![0u8; 36];
    ipv4::Repr {
        src: "10.9.0.2".parse().unwrap(),
        dst: "10.1.0.1".parse().unwrap(),
        protocol: 1,
        payload_len: 16,
        ttl: 64,
        tos: 0,
        ident: 3,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
    .emit(&mut req);
    req[20..].copy_from_slice(&echo);
    e.rx(0, [from_client(&c, &req, 34567)], SEC);
    let wan = take(&mut e, "wan");
    assert_eq!(wan.len(), 1, "the echo reply goes back through the tunnel");
    let reply = client_open(&c, &wan[0]).unwrap();
    let (_, t, _, _, _) = icmp_of(&[&[0u8; 12][..], &[8, 0], &reply].concat());
    assert_eq!(t, 0);
    // A server packet with TTL 1 gets time exceeded from the gateway.
    let p = udp4("10.1.0.5", "10.9.0.2", 33434, 33434, b"trace", false, 1);
    e.rx(1, [eth(GW_LAN, SERVER, 0x0800, &p)], SEC);
    let lan = take(&mut e, "lan");
    let (to, t, code, _, _) = icmp_of(&lan[0]);
    assert_eq!((to, t, code), ("10.1.0.5".parse().unwrap(), 11, 0));
}

#[test]
fn config_errors_name_the_line() {
    let bad = config_toml("")
        .replace("proposal = \"aes128gcm16\"\nenc_key = \"ffee", "proposal = \"3des-md5\"\nenc_key = \"ffee");
    let e = config::parse("gw.toml", &bad).unwrap_err().to_string();
    assert!(e.starts_with("gw.toml:"), "{e}");
    assert!(e.contains("3des-md5") && e.contains("RFC 8221"), "{e}");
    let bad = config_toml("").replace("spi = 0x1001", "spi = 12");
    let e = config::parse("gw.toml", &bad).unwrap_err();
    let line = config_toml("").lines().position(|l| l == "spi = 0x1001").unwrap() + 1;
    assert_eq!(e.0[0].line, line);
    assert!(e.0[0].message.contains("256 to 4294967295"), "{e}");
    let bad = config_toml("").replace(ENC_IN, "0011");
    let e = config::parse("gw.toml", &bad).unwrap_err().to_string();
    assert!(e.contains("20 bytes (16 key + 4 salt) = 40 hex digits; got 2 bytes"), "{e}");
    let bad = config_toml("").replace("sa = 0x2002", "sa = 0x9999");
    let e = config::parse("gw.toml", &bad).unwrap_err().to_string();
    assert!(e.contains("names no outbound [[sa]]; outbound SPIs: 0x2002"), "{e}");
    let bad = config_toml("").replace("role = \"inside\"", "role = \"lan\"");
    assert!(config::parse("gw.toml", &bad).unwrap_err().to_string().contains("valid: outside, inside"));
    let bad = config_toml("").replace("[[route]]", "[[rout]]");
    assert!(config::parse("gw.toml", &bad).unwrap_err().to_string().contains("rout"));
    // Several errors at once.
    let bad =
        config_toml("").replace("spi = 0x1001", "spi = 12").replace("mac = \"02:00:00:00:02:05\"", "mac = \"bogus\"");
    assert_eq!(config::parse("gw.toml", &bad).unwrap_err().0.len(), 2);
    let bad = config_toml("sa_arena = \"yes\"");
    let e = config::parse("gw.toml", &bad).unwrap_err();
    assert_eq!(e.0[0].line, bad.lines().position(|l| l.starts_with("sa_arena")).unwrap() + 1);
    assert!(e.to_string().contains("expected a boolean"), "{e}");
}

#[test]
fn sa_arena_is_on_unless_turned_off() {
    assert!(config::parse("gw.toml", &config_toml("")).unwrap().settings.sa_arena);
    let off = config::parse("gw.toml", &config_toml("sa_arena = false\nmax_sas = 1024")).unwrap();
    assert!(!off.settings.sa_arena);
    assert_eq!(off.settings.max_sas, 1024);
}

/// Two workers: the first to see an SA owns it; the other hands its packets over, so the
/// replay window has one writer however the flows are spread.
#[test]
fn packets_for_an_sa_owned_elsewhere_are_handed_off() {
    use esprit_engine::shared::{Control, Limits};
    use esprit_engine::worker::{Handoff, Worker};
    use std::sync::Arc;

    let cfg = config("");
    let c = client(&cfg);
    let (mut control, sh) = Control::new(&cfg, Limits::default()).unwrap();
    let queues: Arc<[crossbeam_queue::ArrayQueue<Handoff<HeapBuf>>]> =
        (0..2).map(|_| crossbeam_queue::ArrayQueue::new(64)).collect();
    let mut w0 = Worker::new(sh.clone(), HeapPool::new(256), true).with_handoff(0, queues.clone());
    let mut w1 = Worker::new(sh, HeapPool::new(256), false).with_handoff(1, queues);
    let req = |i: u8| udp4("10.9.0.2", "10.1.0.5", 5000, 7, &[i; 10], true, 64);
    w0.rx(0, [from_client(&c, &req(1), 34567)], SEC);
    control.apply(w0.requests.drain(..));
    assert_eq!(w0.counters.esp_decrypted, 1, "worker 0 claims the SA");
    // The NAT rebinds; the fanout hash now sends the flow to worker 1.
    w1.rx(0, [from_client(&c, &req(2), 40000)], SEC);
    assert_eq!((w1.counters.esp_decrypted, w1.counters.handed_off), (0, 1));
    assert_eq!(w0.rx_handoff(SEC), 1);
    assert_eq!(w0.counters.esp_decrypted, 2);
    control.apply(w0.requests.drain(..));
    assert_eq!(control.nat_mapping_changes, 1, "the owner saw the new mapping on an authentic packet");
    let lan: Vec<_> = w0.tx_queue(1).drain(..).collect();
    assert_eq!(lan.len(), 2);
}

#[test]
fn time_lifetimes_and_idle_spells_raise_events_and_stop_the_sa() {
    let toml = config_toml("").replace(
        "remote_ts = [\"10.9.0.2/32\"]",
        "remote_ts = [\"10.9.0.2/32\"]\nsoft_seconds = 30\nhard_seconds = 60\nidle_seconds = 10",
    );
    let cfg = config::parse("test.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    let c = client(&cfg);
    let mut e = engine(&cfg);
    let t0 = 1_700_000_000 * SEC; // a capture's wall clock: lifetimes start at the first packet
    let req = |n: u8| udp4("10.9.0.2", "10.1.0.5", 5000, 7, &[n; 20], true, 64);
    e.rx(0, [from_client(&c, &req(0), 34567)], t0);
    assert_eq!(take(&mut e, "lan").len(), 1);
    let events = |e: &mut Engine<HeapPool>| -> Vec<Event> { e.events.drain(..).collect() };
    assert_eq!(events(&mut e), []);
    e.poll(t0 + 9 * SEC);
    assert_eq!(events(&mut e), []);
    e.poll(t0 + 10 * SEC);
    assert_eq!(events(&mut e), [Event::Idle { spi: 0x1001, direction: Direction::In, seconds: 10 }]);
    e.rx(0, [from_client(&c, &req(1), 34567)], t0 + 29 * SEC);
    assert_eq!(take(&mut e, "lan").len(), 1);
    e.poll(t0 + 30 * SEC);
    assert_eq!(events(&mut e), [Event::SoftLifetime { spi: 0x1001, direction: Direction::In }]);
    e.poll(t0 + 40 * SEC);
    assert_eq!(events(&mut e), [Event::Idle { spi: 0x1001, direction: Direction::In, seconds: 11 }]);
    e.poll(t0 + 60 * SEC);
    assert_eq!(events(&mut e), [Event::HardLifetime { spi: 0x1001, direction: Direction::In }]);
    e.rx(0, [from_client(&c, &req(2), 34567)], t0 + 61 * SEC);
    assert_eq!(take(&mut e, "lan").len(), 0, "an SA past its hard lifetime passes nothing");
    assert_eq!(e.drops.get(DropReason::SaExpired), 1);
    e.poll(t0 + 120 * SEC);
    assert_eq!(events(&mut e), [], "each is reported once");
}

#[test]
fn addresses_added_and_removed_at_run_time() {
    let cfg = config("");
    let mut e = engine(&cfg);
    let arp_for = |target: &str| {
        let mut a = [0u8; 28];
        arp::Repr {
            operation: arp::Operation::Request,
            source_hardware_addr: mac(SERVER),
            source_protocol_addr: "10.1.0.5".parse().unwrap(),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target.parse().unwrap(),
        }
        .emit(&mut a);
        eth("ff:ff:ff:ff:ff:ff", SERVER, 0x0806, &a)
    };
    let g = esprit_satable::epoch::pin();
    e.rx(1, [arp_for("10.1.0.2")], SEC);
    assert!(take(&mut e, "lan").is_empty(), "not ours yet");
    // A second inside address, in a new subnet: answered for, with its connected route.
    assert_eq!(e.control().add_address(1, "10.1.0.2".parse().unwrap(), 16, &g), Ok(true));
    assert_eq!(e.control().add_address(1, "10.1.0.2".parse().unwrap(), 16, &g), Ok(false), "idempotent");
    assert_eq!(e.control().add_address(1, "172.16.5.1".parse().unwrap(), 24, &g), Ok(true));
    assert_eq!(e.control().add_address(1, "2001:db8:5::1".parse().unwrap(), 64, &g), Ok(true));
    // Local to the fast path too (its own flat copy of the addresses).
    for a in ["10.1.0.2", "172.16.5.1", "2001:db8:5::1"] {
        assert!(e.shared().is_local(a.parse().unwrap(), &g), "{a} is ours");
    }
    assert!(!e.shared().is_local("172.16.5.2".parse().unwrap(), &g));
    assert!(!e.shared().is_local("2001:db8:5::2".parse().unwrap(), &g));
    assert!(e
        .shared()
        .route("172.16.5.9".parse().unwrap(), &g)
        .is_some_and(|(i, via)| i == 1 && via == "172.16.5.9".parse::<IpAddr>().unwrap()));
    e.rx(1, [arp_for("10.1.0.2")], 2 * SEC);
    let lan = take(&mut e, "lan");
    assert_eq!(lan.len(), 1);
    let r = arp::Repr::parse(&arp::Packet::new_checked(&lan[0][14..]).unwrap()).unwrap();
    assert_eq!((r.operation, r.source_protocol_addr), (arp::Operation::Reply, "10.1.0.2".parse().unwrap()));
    // Removed: no longer answered; the shared subnet's route stays, the other one goes.
    assert!(e.control().remove_address(1, "10.1.0.2".parse().unwrap(), &g));
    assert!(!e.control().remove_address(1, "10.1.0.2".parse().unwrap(), &g));
    assert!(e.control().remove_address(1, "172.16.5.1".parse().unwrap(), &g));
    assert!(e.control().remove_address(1, "2001:db8:5::1".parse().unwrap(), &g));
    for a in ["10.1.0.2", "172.16.5.1", "2001:db8:5::1"] {
        assert!(!e.shared().is_local(a.parse().unwrap(), &g), "{a} is no longer ours");
    }
    e.rx(1, [arp_for("10.1.0.2")], 3 * SEC);
    assert!(take(&mut e, "lan").is_empty());
    assert!(e.shared().route("10.1.9.9".parse().unwrap(), &g).is_some());
    assert_eq!(e.shared().route("172.16.5.9".parse().unwrap(), &g).map(|(i, _)| i), Some(0), "default route now");
}

#[test]
fn large_ike_datagrams_are_fragmented_ipv4_and_ipv6() {
    let toml = config_toml("")
        .replace("address = \"198.51.100.1/24\"", "address = [\"198.51.100.1/24\", \"2001:db8:1::1/64\"]")
        .replace(
            "[[route]]",
            "[[neighbor]]\ninterface = \"wan\"\naddress = \"2001:db8:1::fe\"\nmac = \"02:00:00:00:01:fe\"\n\n\
             [[route]]\ndestination = \"::/0\"\nvia = \"2001:db8:1::fe\"\ninterface = \"wan\"\n\n[[route]]",
        );
    let cfg = config::parse("test.toml", &toml).unwrap_or_else(|e| panic!("{e}"));
    let mut e = engine(&cfg);
    let ep = |a: &str, port| Endpoint { addr: a.parse().unwrap(), port };
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
    for (src, dst) in [("2001:db8:1::1", "2001:db8:9::7"), ("198.51.100.1", "203.0.113.7")] {
        e.transmit(ep(src, 4500), ep(dst, 4500), true, &payload, SEC);
        let wan = take(&mut e, "wan");
        assert_eq!(wan.len(), 3, "{src}");
        let mut body = Vec::new();
        for f in &wan {
            assert!(f.len() - 14 <= 1500);
            assert_eq!(ethernet::Frame::new_checked(&f[..]).unwrap().dst_addr(), mac(ROUTER));
            if src.contains(':') {
                let ip = esprit_wire::ipv6::Packet::new_checked(&f[14..]).unwrap();
                let u = esprit_wire::ipv6::walk_ext_headers(ip.next_header(), ip.payload()).unwrap();
                let fi = u.frag.expect("a fragment header");
                assert_eq!((fi.next_header, fi.offset as usize), (17, body.len()));
                body.extend_from_slice(&ip.payload()[8..]);
            } else {
                let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!(ip.frag_offset() as usize, body.len());
                body.extend_from_slice(ip.payload());
            }
        }
        // The reassembled UDP datagram: ports, length, the non-ESP marker, the payload, and
        // a checksum over the right pseudo-header.
        let u = udp::Packet::new_checked(&body[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len() as usize), (4500, 4500, 8 + 4 + 3000));
        assert_eq!(&u.payload()[..4], &[0, 0, 0, 0]);
        assert_eq!(&u.payload()[4..], &payload[..]);
        assert!(u.verify_checksum(src.parse().unwrap(), dst.parse().unwrap()), "{src}");
    }
}
