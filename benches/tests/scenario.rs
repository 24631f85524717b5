//! The captures and configuration `esprit-pktgen pcap` writes are consistent: the offline
//! engine, loading only the written esprit.toml, decrypts every outside frame toward the
//! server and encrypts every inside frame toward its client, with no drop.
#![allow(clippy::unwrap_used)]

use esprit_benches::scenario::{self, Scenario};
use esprit_engine::{offline, Engine};
use esprit_esp::{HeapPool, Transform};

fn check(t: Transform, sas: u32, size: &str) {
    let dir = std::env::temp_dir().join(format!("esprit-scenario-{}-{}-{sas}-{size}", std::process::id(), t.name()));
    let count = 3 * sas as usize + 5;
    let sc = Scenario { transform: t, sas, sizes: scenario::sizes(size, t).unwrap(), count };
    let w = scenario::write(&dir, &sc).unwrap();
    let cfg = offline::load_config(&w.config).unwrap();
    assert_eq!(cfg.sas.len(), 2 * sas as usize);
    assert_eq!(cfg.policies.len(), sas as usize);
    for (input, output) in [("outside", "inside"), ("inside", "outside")] {
        let mut e = Engine::new(&cfg, HeapPool::new(1024)).unwrap();
        let file = if input == "outside" { &w.outside } else { &w.inside };
        let out = dir.join(format!("{input}-through.pcap"));
        let s = offline::run(&mut e, &[(input.into(), file.clone())], &[(output.into(), out)]).unwrap();
        assert_eq!(s.frames_in, count as u64);
        assert_eq!(s.frames_out[0].1, count as u64, "{input} → {output}: {:?}", e.drops.nonzero().collect::<Vec<_>>());
        assert_eq!(e.drops.total(), 0, "{:?}", e.drops.nonzero().collect::<Vec<_>>());
        let c = e.counters;
        assert_eq!(c.esp_decrypted + c.esp_encrypted, count as u64);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gcm_many_clients_imix() {
    check(Transform::Aes128Gcm16, 40, "imix");
}

#[test]
fn cbc_sha1_one_client_full_size() {
    check(Transform::Aes128Sha1, 1, "1420");
}

#[test]
fn sizes_are_named_or_refused() {
    assert_eq!(scenario::sizes("64", Transform::Aes128Gcm16).unwrap(), vec![64]);
    assert_eq!(scenario::sizes("imix", Transform::Aes128Gcm16).unwrap().len(), 12);
    let e = scenario::sizes("jumbo", Transform::Aes128Gcm16).unwrap_err();
    assert!(e.contains("jumbo") && e.contains("imix"), "{e}");
}
