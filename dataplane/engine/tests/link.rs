//! The data plane's end of the rings, driven by a control side in the same process: every
//! control message is applied to the tables or refused with a reason, and events and punts
//! come back with the SA's cookie.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::PathBuf;

use esprit_engine::config::{self, Direction};
use esprit_engine::link::{Link, PuntedIke};
use esprit_engine::shared::{Control, Limits};
use esprit_engine::Event;
use esprit_esp::sa::{DfMode, Endpoint, Lifetime, UdpEncap};
use esprit_esp::Transform;
use esprit_ring::message::{
    AddSa, DeleteSa, ErrorCode, IfAddress, IfName, KeyBytes, Message, MessageKind, SaDirection, SaEventKind,
};
use esprit_ring::region::{Channel, RegionOptions, Side};
use esprit_satable::epoch;

const CONFIG: &str = r#"
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
"#;

struct Rig {
    path: PathBuf,
    control: Control,
    link: Link,
    cp: Channel,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn rig(tag: &str) -> Rig {
    let path = std::env::temp_dir().join(format!("esprit-link-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cfg = config::parse("link.toml", CONFIG).unwrap();
    let (control, _) = Control::new(&cfg, Limits::default()).unwrap();
    let cp = Channel::attach(&path, Side::Control, &RegionOptions::default()).unwrap();
    let link = Link::attach(&path, vec!["outside".into(), "inside".into()]).unwrap();
    let mut r = Rig { path, control, link, cp };
    assert!(matches!(r.recv().as_slice(), [Message::Hello(_)]));
    r
}

impl Rig {
    fn send(&mut self, m: Message) {
        self.cp.sender().try_send(&m).unwrap();
    }
    fn apply(&mut self) {
        self.link.poll(&mut self.control, 1000, |_| panic!("nothing to transmit"));
    }
    fn recv(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.cp.receiver().try_recv().unwrap().map(|r| r.message)).collect()
    }
    fn refused(&mut self) -> Vec<(MessageKind, ErrorCode, String)> {
        self.recv()
            .into_iter()
            .map(|m| match m {
                Message::Error(e) => (e.about.kind, e.code, e.reason),
                other => panic!("expected an error, got {other:?}"),
            })
            .collect()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn add_sa(direction: SaDirection, spi: u32, cookie: u64) -> AddSa {
    let t = Transform::Aes128Gcm16;
    AddSa {
        cookie,
        direction,
        spi,
        transform: t,
        enc_key: KeyBytes::new(&[7; 20]),
        int_key: KeyBytes::new(&[]),
        local: ip("198.51.100.1"),
        remote: ip("203.0.113.7"),
        encap: Some(UdpEncap { local_port: 4500, remote_port: 4500 }),
        esn: false,
        replay_window: 64,
        local_ts: vec![],
        remote_ts: vec![],
        df: DfMode::Copy,
        lifetime: Lifetime { idle_secs: 5, ..Lifetime::default() },
        initial_seq: 0,
    }
}

fn ifaddr(interface: &str, addr: &str, prefix_len: u8) -> IfAddress {
    IfAddress { interface: IfName::new(interface).unwrap(), addr: ip(addr), prefix_len }
}

#[test]
fn sas_with_resync_and_events_with_cookies() {
    let mut r = rig("sa");
    let mut out = add_sa(SaDirection::Out, 0x2002, 77);
    out.initial_seq = 1000;
    r.send(Message::AddSa(Box::new(out)));
    r.send(Message::AddSa(Box::new(add_sa(SaDirection::In, 0x1001, 77))));
    r.send(Message::SyncDone);
    r.apply();
    assert!(matches!(r.recv().as_slice(), [Message::Ack(s)] if s.kind == MessageKind::SyncDone));
    let g = epoch::pin();
    let sh = r.control.shared().clone();
    assert_eq!(sh.sa_out.get(&0x2002, &g).unwrap().seq_used(), 1000, "resynchronised: no number reused");

    // Adding an SA that is installed (a restarted esprit-ike reconciling) is refused with
    // Exists and the installed one is kept: its sequence numbers do not start again.
    r.send(Message::AddSa(Box::new(add_sa(SaDirection::Out, 0x2002, 77))));
    r.apply();
    let e = r.refused();
    assert_eq!((e.len(), e[0].0, e[0].1), (1, MessageKind::AddSa, ErrorCode::Exists), "{e:?}");
    assert_eq!(sh.sa_out.get(&0x2002, &g).unwrap().seq_used(), 1000, "the installed SA is kept");

    // A reserved SPI and an unknown SA are refused with their reasons.
    r.send(Message::AddSa(Box::new(add_sa(SaDirection::In, 200, 78))));
    r.send(Message::DeleteSa(DeleteSa { direction: SaDirection::In, spi: 0x9999 }));
    r.apply();
    let e = r.refused();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (MessageKind::AddSa, ErrorCode::Invalid));
    assert_eq!((e[1].0, e[1].1), (MessageKind::DeleteSa, ErrorCode::NotFound));
    assert!(e[1].2.contains("0x9999"), "{}", e[1].2);

    // Idle after 5 s (the sweep), reported with the SA's cookie.
    r.control.set_now(1_000_000_000);
    r.control.sweep(7_000_000_000);
    for ev in std::mem::take(&mut r.control.events) {
        r.link.event(&ev);
    }
    let mut got: Vec<_> = r
        .recv()
        .into_iter()
        .map(|m| match m {
            Message::SaEvent(e) => (e.cookie, e.spi, e.direction, e.kind),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_by_key(|g| g.1);
    // Both SAs were installed at clock 0 (before the clock started): they count from 1 s.
    assert_eq!(
        got,
        [
            (77, 0x1001, SaDirection::In, SaEventKind::Idle { seconds: 6 }),
            (77, 0x2002, SaDirection::Out, SaEventKind::Idle { seconds: 6 }),
        ]
    );
    // An event of a worker, for an SA the link does not know, still goes out (cookie 0).
    r.link.event(&Event::SoftLifetime { spi: 0x5555, direction: Direction::In });
    assert!(
        matches!(r.recv().as_slice(), [Message::SaEvent(e)] if e.cookie == 0 && e.kind == SaEventKind::SoftLifetime)
    );
    // A punt names its interface.
    let ep = |a: &str, port| Endpoint { addr: ip(a), port };
    r.link.punt(PuntedIke {
        src: ep("203.0.113.7", 4500),
        dst: ep("198.51.100.1", 4500),
        ifidx: 0,
        had_marker: true,
        payload: vec![1, 2, 3],
    });
    assert!(matches!(r.recv().as_slice(), [Message::Punt(p)] if p.interface.as_str() == "outside" && p.had_marker));
}

#[test]
fn interface_addresses_over_the_ring() {
    let mut r = rig("addr");
    let g = epoch::pin();
    let sh = r.control.shared().clone();
    r.send(Message::SetAddress(ifaddr("inside", "10.2.0.1", 16)));
    r.send(Message::SetAddress(ifaddr("dmz", "10.3.0.1", 16)));
    // Bytes no encoder would write (a /99 IPv4 prefix): counted and skipped.
    let mut raw = Message::SetAddress(ifaddr("inside", "10.4.0.1", 16)).encode().unwrap();
    *raw.last_mut().unwrap() = 99;
    r.cp.sender().try_send_raw(&raw).unwrap();
    r.apply();
    let e = r.refused();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (MessageKind::SetAddress, ErrorCode::NotFound));
    assert!(e[0].2.contains("dmz") && e[0].2.contains("outside, inside"), "{}", e[0].2);
    assert_eq!(r.link.stats.bad_messages, 1);
    assert!(!sh.is_local(ip("10.4.0.1"), &g));
    assert!(sh.is_local(ip("10.2.0.1"), &g));
    assert_eq!(sh.route(ip("10.2.9.9"), &g).map(|(i, _)| i), Some(1), "connected route");

    r.send(Message::RemoveAddress(ifaddr("inside", "10.2.0.1", 16)));
    r.send(Message::RemoveAddress(ifaddr("inside", "10.2.0.1", 16)));
    r.apply();
    let e = r.refused();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (MessageKind::RemoveAddress, ErrorCode::NotFound));
    assert!(!sh.is_local(ip("10.2.0.1"), &g));
    assert_eq!(sh.route(ip("10.2.9.9"), &g), None, "no default route in this configuration");
}

/// A full ring (a flood of IKE, a control plane that is slow or restarting) loses no SA
/// event: events wait, in order, and go before any further punt; punts are dropped meanwhile
/// (the peer retransmits).
#[test]
fn events_wait_for_room_in_a_full_ring_and_punts_yield_to_them() {
    let mut r = rig("full");
    let ep = |a: &str, port| Endpoint { addr: ip(a), port };
    let punt = || PuntedIke {
        src: ep("203.0.113.7", 500),
        dst: ep("198.51.100.1", 500),
        ifidx: 0,
        had_marker: false,
        payload: vec![0x55; 1200],
    };
    // Nobody reads: punts fill the ring.
    let mut filled = 0;
    while r.link.stats.punts_dropped == 0 {
        r.link.punt(punt());
        filled += 1;
        assert!(filled < 1_000_000, "the ring never filled");
    }
    for spi in 1..=100 {
        r.link.event(&Event::SoftLifetime { spi, direction: Direction::In });
    }
    // The small ones still fit in what the large punts left; the rest wait.
    let waiting = r.link.backlog();
    assert!(waiting > 0 && waiting < 100, "{waiting}");
    assert_eq!((r.link.stats.events_delayed, r.link.stats.events_dropped), (waiting as u64, 0));
    // More punts while events wait: dropped, not sent ahead of them.
    let dropped = r.link.stats.punts_dropped;
    r.link.punt(punt());
    assert_eq!(r.link.stats.punts_dropped, dropped + 1);
    // The control plane reads; the data plane's next turn flushes the backlog, in order.
    let mut got = Vec::new();
    let mut punts = 0;
    for _ in 0..1000 {
        for m in r.recv() {
            match m {
                Message::SaEvent(e) => got.push(e.spi),
                Message::Punt(_) => punts += 1,
                other => panic!("{other:?}"),
            }
        }
        r.apply();
        if r.link.backlog() == 0 && got.len() == 100 {
            break;
        }
    }
    assert_eq!(got, (1..=100).collect::<Vec<u32>>());
    assert_eq!(punts, r.link.stats.punts_sent);
    assert_eq!(r.link.stats.events_sent, 100);
    // And punts flow again.
    r.link.punt(punt());
    assert!(matches!(r.recv().as_slice(), [Message::Punt(_)]));
}
