//! Packets the appliance originates itself: ARP and neighbor discovery, echo replies, NAT
//! keepalives. Each builder writes into an empty buffer and leaves it holding the packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use esprit_esp::PacketBuf;
use esprit_wire::{arp, ethernet, icmpv4, icmpv6, ip_proto, ipv4, ipv6, udp, EthernetAddress};

fn fill<B: PacketBuf>(b: &mut B, len: usize) -> Option<&mut [u8]> {
    let cur = b.len();
    (b.trim(cur) && b.append(len)).then(|| b.data_mut())
}

/// Prepends an Ethernet header.
pub fn push_ethernet<B: PacketBuf>(b: &mut B, src: EthernetAddress, dst: EthernetAddress, ethertype: u16) -> bool {
    if !b.prepend(ethernet::HEADER_LEN) {
        return false;
    }
    ethernet::Repr { src, dst, vlan: None, ethertype }.emit(b.data_mut());
    true
}

/// An ARP frame (complete with Ethernet header).
pub fn arp_frame<B: PacketBuf>(
    b: &mut B,
    op: arp::Operation,
    our_mac: EthernetAddress,
    our_ip: Ipv4Addr,
    target_mac: EthernetAddress,
    target_ip: Ipv4Addr,
) -> bool {
    let r = arp::Repr {
        operation: op,
        source_hardware_addr: our_mac,
        source_protocol_addr: our_ip,
        target_hardware_addr: if op == arp::Operation::Request { EthernetAddress([0; 6]) } else { target_mac },
        target_protocol_addr: target_ip,
    };
    let Some(d) = fill(b, arp::PACKET_LEN) else {
        return false;
    };
    r.emit(d);
    let dst = if op == arp::Operation::Request { EthernetAddress::BROADCAST } else { target_mac };
    push_ethernet(b, our_mac, dst, ethernet::ethertype::ARP)
}

/// An IPv6 neighbor solicitation (to the solicited-node group) or advertisement, as an IP packet.
pub fn nd_packet<B: PacketBuf>(
    b: &mut B,
    advert: Option<Ipv6Addr>,
    our_mac: EthernetAddress,
    src: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<Ipv6Addr> {
    // For a solicitation `target` is the address to resolve; for an advert, `advert` is the
    // solicitor to answer.
    let (msg, dst) = match advert {
        Some(to) => (
            icmpv6::Repr::NeighborAdvert {
                flags: icmpv6::NA_FLAG_SOLICITED | icmpv6::NA_FLAG_OVERRIDE,
                target,
                lladdr: Some(our_mac),
            },
            to,
        ),
        None => (icmpv6::Repr::NeighborSolicit { target, lladdr: Some(our_mac) }, icmpv6::solicited_node(target)),
    };
    let d = fill(b, ipv6::HEADER_LEN + msg.buffer_len())?;
    ipv6::Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: msg.buffer_len(),
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(d);
    msg.emit(&mut d[ipv6::HEADER_LEN..], src, dst);
    Some(dst)
}

/// An ICMP or ICMPv6 echo reply to the echo request `req` (an IP packet), as an IP packet.
pub fn echo_reply<B: PacketBuf>(b: &mut B, req: &[u8]) -> bool {
    match req.first().map(|v| v >> 4) {
        Some(4) => {
            let Ok(p) = ipv4::Packet::new_checked(req) else {
                return false;
            };
            let Ok(i) = icmpv4::Packet::new_checked(p.payload()) else {
                return false;
            };
            if i.msg_type() != icmpv4::kind::ECHO_REQUEST || !i.verify_checksum() {
                return false;
            }
            let r = icmpv4::Repr::EchoReply { ident: i.echo_ident(), seq_no: i.echo_seq_no(), data: i.data() };
            let Some(d) = fill(b, 20 + r.buffer_len()) else {
                return false;
            };
            ipv4::Repr {
                src: p.dst_addr(),
                dst: p.src_addr(),
                protocol: ip_proto::ICMP,
                payload_len: r.buffer_len(),
                ttl: 64,
                tos: p.tos(),
                ident: p.ident(),
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
            }
            .emit(d);
            r.emit(&mut d[20..]);
            true
        }
        Some(6) => {
            let Ok(p) = ipv6::Packet::new_checked(req) else {
                return false;
            };
            let Ok(i) = icmpv6::Packet::new_checked(p.payload()) else {
                return false;
            };
            if i.msg_type() != icmpv6::kind::ECHO_REQUEST || !i.verify_checksum(p.src_addr(), p.dst_addr()) {
                return false;
            }
            let r = icmpv6::Repr::EchoReply { ident: i.echo_ident(), seq_no: i.echo_seq_no(), data: &p.payload()[8..] };
            let (src, dst) = (p.dst_addr(), p.src_addr());
            let Some(d) = fill(b, 40 + r.buffer_len()) else {
                return false;
            };
            ipv6::Repr {
                src,
                dst,
                next_header: ip_proto::ICMPV6,
                payload_len: r.buffer_len(),
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(d);
            r.emit(&mut d[40..], src, dst);
            true
        }
        _ => false,
    }
}

/// A NAT keepalive: one 0xFF byte in UDP from `src` to `dst` (RFC 3948 §2.3), as an IP packet.
pub fn keepalive<B: PacketBuf>(b: &mut B, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
    let Some(d) = fill(b, udp::ip_datagram_len(src.is_ipv4(), 1)) else {
        return false;
    };
    if !udp::emit_ip_datagram(d, (src, sport), (dst, dport), &[], &[0xff]) {
        return false;
    }
    if src.is_ipv4() {
        // Over IPv4 the checksum is left out (zero), as for the ESP it keeps alive.
        udp::Packet::new_unchecked(&mut d[ipv4::HEADER_LEN..]).set_checksum(0);
    }
    true
}

/// A UDP datagram from `src` to `dst` carrying `payload` (behind the 4-byte non-ESP marker
/// when `marker`), as an IP packet with a valid UDP checksum: an IKE message the control
/// plane sends.
pub fn udp_datagram<B: PacketBuf>(
    b: &mut B,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    marker: bool,
    payload: &[u8],
) -> bool {
    let prefix: &[u8] = if marker { &[0; 4] } else { &[] };
    if udp::HEADER_LEN + prefix.len() + payload.len() > u16::MAX as usize {
        return false;
    }
    let len = udp::ip_datagram_len(src.0.is_ipv4(), prefix.len() + payload.len());
    let Some(d) = fill(b, len) else { return false };
    udp::emit_ip_datagram(d, src, dst, prefix, payload)
}
