//! Decapsulation of arbitrary bytes presented as ESP for a real SA, for every transform:
//! never panics, never accepts (the fuzzer cannot forge an ICV), never moves the window.
#![no_main]

use std::sync::OnceLock;

use esprit_esp::crypto::{default_provider, SaKeys};
use esprit_esp::sa::{DfMode, Endpoint, InboundMeta, InboundSa, Lifetime, SaParams, UdpEncap};
use esprit_esp::ts::TrafficSelector;
use esprit_esp::{DropReason, HeapBuf, Transform};
use libfuzzer_sys::fuzz_target;

fn sas() -> &'static Vec<InboundSa> {
    static S: OnceLock<Vec<InboundSa>> = OnceLock::new();
    S.get_or_init(|| {
        Transform::ALL
            .iter()
            .map(|&t| {
                let keys = SaKeys::new(t, &vec![7; t.enc_key_len()], &vec![9; t.int_key_len()]).unwrap();
                let any = TrafficSelector::from_cidr("0.0.0.0/0".parse().unwrap());
                InboundSa::new(
                    SaParams {
                        spi: 0x1001,
                        transform: t,
                        keys,
                        local: "198.51.100.1".parse().unwrap(),
                        remote: "203.0.113.7".parse().unwrap(),
                        encap: Some(UdpEncap { local_port: 4500, remote_port: 4500 }),
                        esn: t == Transform::Aes128Gcm16,
                        replay_window: 64,
                        local_ts: vec![any],
                        remote_ts: vec![any],
                        df: DfMode::Copy,
                        lifetime: Lifetime::default(),
                    },
                    default_provider(t),
                )
                .unwrap()
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let sa = &sas()[data[0] as usize % Transform::ALL.len()];
    let esp = &data[1..];
    let meta = InboundMeta { esp_offset: 0, src: Endpoint { addr: "203.0.113.7".parse().unwrap(), port: 4500 }, udp: true };
    let mut b = [HeapBuf::from_slice(esp)];
    let mut r = [Err(DropReason::NoBuffer)];
    sa.decap_burst(&mut b, &[meta], &mut r, 1);
    assert!(r[0].is_err(), "forged ESP accepted");
    assert_eq!(sa.replay.top(), 0);
});
