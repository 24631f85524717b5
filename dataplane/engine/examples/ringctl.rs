//! A minimal control plane on the rings, for tests and debugging before esprit-ike:
//!
//! ```text
//! ringctl push NAME CONFIG.toml [--flush]   install the [[sa]]s and [[policy]]s of a config
//! ringctl listen NAME SECONDS               print what the data plane sends, one per line
//! ringctl transmit NAME SRC:PORT DST:PORT HEX [--marker]   send a datagram through it
//! ringctl delete NAME in|out SPI              delete one SA (its policies stay)
//! ringctl serve NAME CONFIG.toml SECONDS    push, then listen; on every Hello (a data
//!                                           plane (re)started) flush and push again
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use esprit_engine::config;
use esprit_engine::link::ring_dir;
use esprit_ring::message::{AddSa, DeleteSa, Message, Policy, SaDirection, Transmit};
use esprit_ring::region::{Channel, RegionOptions, Side};

const USAGE: &str = "usage: ringctl push NAME CONFIG [--flush] | listen NAME SECONDS | \
                     transmit NAME SRC DST HEX [--marker] | serve NAME CONFIG SECONDS | \
                     delete NAME in|out SPI";

fn attach(name: &str) -> Result<Channel, String> {
    let path = esprit_ring::shm_path(name).map_err(|e| e.to_string())?;
    Channel::attach(&path, Side::Control, &RegionOptions::default()).map_err(|e| e.to_string())
}

fn endpoint(s: &str) -> Result<esprit_esp::sa::Endpoint, String> {
    let sa: std::net::SocketAddr = s.parse().map_err(|e| format!("{s}: {e}"))?;
    Ok(esprit_esp::sa::Endpoint { addr: sa.ip(), port: sa.port() })
}

fn send(ch: &mut Channel, m: Message) -> Result<(), String> {
    ch.sender().send_timeout(&m, Duration::from_secs(5)).map_err(|e| e.to_string())
}

/// Sends the SAs and policies of a configuration file, then SyncDone.
fn push(ch: &mut Channel, file: &str, flush: bool) -> Result<(), String> {
    let src = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let cfg = config::parse(file, &src).map_err(|e| e.to_string())?;
    if flush {
        send(ch, Message::Flush)?;
    }
    for s in &cfg.sas {
        let m = AddSa::from_params(s.params.spi as u64, ring_dir(s.direction), &s.params, 0);
        send(ch, Message::AddSa(Box::new(m)))?;
    }
    for p in &cfg.policies {
        send(ch, Message::AddPolicy(Policy { src: p.src, dst: p.dst, spi_out: p.spi }))?;
    }
    send(ch, Message::SyncDone)?;
    println!("pushed {} SAs and {} policies", cfg.sas.len(), cfg.policies.len());
    Ok(())
}

fn print_message(m: Message) {
    match m {
        Message::Hello(h) => println!("hello generation={}", h.generation),
        Message::Punt(p) => println!(
            "punt src={} dst={} interface={} marker={} len={}",
            p.src,
            p.dst,
            p.interface,
            p.had_marker,
            p.payload.len()
        ),
        Message::SaEvent(e) => println!("event spi={:#x} kind={:?}", e.spi, e.kind),
        Message::Ack(s) => println!("ack {}", s.kind),
        Message::Error(e) => println!("error {} {:?} {}", e.about.kind, e.code, e.reason),
        m => println!("other {}", m.kind()),
    }
}

/// Prints what arrives for `secs` seconds; `on_hello` runs after each Hello.
fn listen(
    ch: &mut Channel,
    secs: f64,
    mut on_hello: impl FnMut(&mut Channel) -> Result<(), String>,
) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        match ch.receiver().recv_timeout(Duration::from_millis(20)) {
            Ok(Some(r)) => {
                let hello = matches!(r.message, Message::Hello(_));
                print_message(r.message);
                if hello {
                    on_hello(ch)?;
                }
            }
            Ok(None) => {}
            Err(e) => println!("bad {e}"),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let secs = |s: &str| s.parse::<f64>().map_err(|_| USAGE.to_string());
    match a.first().map(String::as_str) {
        Some("push") if a.len() >= 3 => push(&mut attach(&a[1])?, &a[2], a.iter().any(|x| x == "--flush")),
        Some("listen") if a.len() == 3 => listen(&mut attach(&a[1])?, secs(&a[2])?, |_| Ok(())),
        Some("serve") if a.len() == 4 => {
            let mut ch = attach(&a[1])?;
            push(&mut ch, &a[2], true)?;
            let file = a[2].clone();
            listen(&mut ch, secs(&a[3])?, |ch| push(ch, &file, true))
        }
        Some("delete") if a.len() == 4 => {
            let direction = match a[2].as_str() {
                "in" => SaDirection::In,
                "out" => SaDirection::Out,
                _ => return Err(USAGE.to_string()),
            };
            let spi = u32::from_str_radix(a[3].trim_start_matches("0x"), 16).map_err(|_| USAGE.to_string())?;
            send(&mut attach(&a[1])?, Message::DeleteSa(DeleteSa { direction, spi }))
        }
        Some("transmit") if a.len() >= 5 => {
            let t = Transmit {
                src: endpoint(&a[2])?,
                dst: endpoint(&a[3])?,
                non_esp_marker: a.iter().any(|x| x == "--marker"),
                payload: hex::decode(&a[4]).map_err(|e| e.to_string())?,
            };
            send(&mut attach(&a[1])?, Message::Transmit(t))
        }
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringctl: {e}");
            ExitCode::from(1)
        }
    }
}
