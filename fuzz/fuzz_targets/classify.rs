//! NAT-T classification of arbitrary outer packets: never panics, and whatever it calls ESP
//! or IKE really has the header it claims at the offset it gives.
#![no_main]

use esprit_esp::classify::{classify, Class};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gw4: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    let gw6: std::net::IpAddr = "2001:db8:ff::1".parse().unwrap();
    match classify(data, |a| a == gw4 || a == gw6) {
        Class::Esp { spi, esp_offset, .. } => {
            assert!(spi > 255);
            assert!(data.len() >= esp_offset + 8);
            assert_eq!(u32::from_be_bytes(data[esp_offset..esp_offset + 4].try_into().unwrap()), spi);
        }
        Class::Ike { ike_offset, .. } => {
            let ike = &data[ike_offset..];
            assert!(esprit_wire::ike::Packet::new_checked(ike).is_ok() || ike.len() >= 28);
        }
        _ => {}
    }
});
