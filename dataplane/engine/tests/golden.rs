//! The same captures through the pcap backend and through DPDK's net_pcap PMD give the same
//! output, byte for byte: the DPDK path runs the engine exactly as the offline path does.
#![cfg(feature = "dpdk")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use esprit_engine::live::{drive_until_idle, Poller};
use esprit_engine::shared::{Control, Limits};
use esprit_engine::{config, Worker};
use esprit_esp::HeapPool;
use esprit_pktio::pcap::PcapReader;
use esprit_pktio::pcapdev::PcapDevice;

fn example(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples/offline").join(f)
}

fn frames(p: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(p).unwrap()).unwrap();
    let mut v = Vec::new();
    let mut b = Vec::new();
    while r.next_frame(&mut b).unwrap().is_some() {
        v.push(b.clone());
    }
    v
}

fn cfg() -> esprit_engine::Config {
    // Keepalives are timer-driven: off, so both runs see the same events whatever the
    // backends' burst timing.
    let src = std::fs::read_to_string(example("gateway.toml"))
        .unwrap()
        .replace("keepalive_interval = 20", "keepalive_interval = 0");
    config::parse("gateway.toml", &src).unwrap()
}

#[test]
fn pcap_backend_and_dpdk_net_pcap_agree() {
    let dir = std::env::temp_dir().join(format!("esprit-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = cfg();
    let t0 = 1_000_000_000;

    // 1. The pcap backend.
    let (mut control, sh) = Control::new(&cfg, Limits::default()).unwrap();
    let devs = vec![
        PcapDevice::open("outside", Some(&example("outside-in.pcap")), Some(&dir.join("pcap-outside.pcap"))).unwrap(),
        PcapDevice::open("inside", Some(&example("inside-in.pcap")), Some(&dir.join("pcap-inside.pcap"))).unwrap(),
    ];
    let mut p = Poller::new(Worker::new(sh, HeapPool::new(4096), true), devs);
    drive_until_idle(&mut p, &mut control, t0, 100);
    for d in &mut p.devs {
        d.flush().unwrap();
    }
    let pcap_drops: Vec<_> = p.worker.drops.nonzero().collect();
    drop(p);

    // 2. DPDK: net_pcap vdevs reading and writing the same kind of files.
    let eal = dpdk::Eal::init(&[
        "esprit-golden".to_string(),
        "--no-huge".into(),
        "-m".into(),
        "256".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--no-shconf".into(),
        format!("--file-prefix=esprit-golden-{}", std::process::id()),
    ])
    .unwrap();
    let pool = dpdk::Mempool::new(&eal, "golden", 4096, 64, 0, 2048 + 128, eal.socket_id()).unwrap();
    let mut ports = Vec::new();
    for (name, rx, tx) in
        [("net_pcap0", "outside-in.pcap", "dpdk-outside.pcap"), ("net_pcap1", "inside-in.pcap", "dpdk-inside.pcap")]
    {
        eal.probe_device(&format!("{name},rx_pcap={},tx_pcap={}", example(rx).display(), dir.join(tx).display()))
            .unwrap();
        let id = eal.port_by_name(name).unwrap();
        let mut port = dpdk::Port::configure(id, &dpdk::PortConfig { queues: 1, ..Default::default() }, &pool).unwrap();
        port.start().unwrap();
        ports.push(port);
    }
    {
        let (mut control, sh) = Control::new(&cfg, Limits::default()).unwrap();
        let devs: Vec<_> = ports
            .iter()
            .zip(["outside", "inside"])
            .map(|(port, n)| {
                esprit_pktio::dpdkdev::DpdkQueues::new(n, port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap())
            })
            .collect();
        let mut p = Poller::new(Worker::new(sh, esprit_pktio::dpdkdev::MbufPool::new(&pool), true), devs);
        drive_until_idle(&mut p, &mut control, t0, 100);
        let dpdk_drops: Vec<_> = p.worker.drops.nonzero().collect();
        assert_eq!(dpdk_drops, pcap_drops, "same drops by reason");
    }
    // net_pcap writes its files when the port closes.
    drop(ports);

    for side in ["outside", "inside"] {
        let a = frames(&dir.join(format!("pcap-{side}.pcap")));
        let b = frames(&dir.join(format!("dpdk-{side}.pcap")));
        assert!(!a.is_empty(), "{side}: the example produces traffic");
        assert_eq!(a.len(), b.len(), "{side}: frame count");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{side}: frame {i} differs");
        }
    }
    assert!(pcap_drops.iter().any(|(r, _)| r.name() == "replay"), "{pcap_drops:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
