//! Every wire parser on arbitrary bytes: checked views never panic, and what parses emits
//! back to the same header.
#![no_main]

use esprit_wire::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ethernet::Frame::new_checked(data) {
        let r = ethernet::Repr::parse(&f).unwrap();
        let _ = f.payload();
        let mut out = [0u8; 18];
        r.emit(&mut out[..r.buffer_len()]);
    }
    if let Ok(p) = arp::Packet::new_checked(data) {
        if let Ok(r) = arp::Repr::parse(&p) {
            let mut out = [0u8; 28];
            r.emit(&mut out);
            assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
        }
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        let _ = (p.payload(), p.options(), p.verify_checksum());
        if let Ok(r) = ipv4::Repr::parse(&p) {
            let mut out = [0u8; 20];
            r.emit(&mut out);
            assert!(ipv4::Packet::new_unchecked(&out[..]).verify_checksum());
        }
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = (p.payload(), p.upper_layer());
        let _ = ipv6::Repr::parse(&p);
    }
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = p.payload();
    }
    if let Ok(p) = icmpv4::Packet::new_checked(data) {
        let _ = icmpv4::Repr::parse(&icmpv4::Packet::new_unchecked(data));
        let _ = p.data();
    }
    if icmpv6::Packet::new_checked(data).is_ok() {
        let a = "fe80::1".parse().unwrap();
        let _ = icmpv6::Repr::parse(&icmpv6::Packet::new_unchecked(data), a, a);
    }
    if let Ok(p) = esp::Packet::new_checked(data) {
        let _ = (esp::Repr::parse(&p), p.payload());
    }
    let _ = esp::Trailer::parse(data);
    if let Ok(p) = ike::Packet::new_checked(data) {
        let _ = ike::Repr::parse(&p);
    }
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = s.parse::<IpCidr>();
        let _ = s.parse::<EthernetAddress>();
    }
});
