//! SA installation through the shared-memory rings, as esprit-ike installs them: a control
//! thread encodes `AddSa` messages into the region (blocking while the ring is full, the
//! backpressure esprit-ike sees), the data plane's link applies them to the lock-free tables
//! (key schedule, cipher contexts, table insert). The rate counts applied SAs from the first
//! send to the last one applied.

use std::time::{Duration, Instant};

use esprit_engine::config;
use esprit_engine::link::{ring_dir, Link};
use esprit_engine::shared::{Control, Limits};
use esprit_esp::Transform;
use esprit_ring::message::{AddSa, Message};
use esprit_ring::region::{Channel, RegionOptions, Side};

use crate::gen;

/// How an installation run went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Installed {
    pub sas: u64,
    pub secs: f64,
    /// Messages the data plane refused (must be 0).
    pub refused: u64,
    /// Bytes the installed SAs took in the SA arena (0 without one).
    pub arena_bytes: u64,
}

impl Installed {
    pub fn per_second(&self) -> f64 {
        self.sas as f64 / self.secs
    }
}

fn add_sa(t: Transform, i: u32) -> [Message; 2] {
    gen::gateway_sas(t, i, false)
        .map(|(dir, p)| Message::AddSa(Box::new(AddSa::from_params(u64::from(i), ring_dir(dir), &p, 0))))
}

/// Installs `clients` SA pairs of transform `t` through a fresh ring region.
pub fn run(t: Transform, clients: u32) -> Result<Installed, String> {
    let path = std::env::temp_dir().join(format!("esprit-bench-install-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cfg = config::parse("base.toml", gen::BASE_CONFIG).map_err(|e| format!("{e:?}"))?;
    let want = 2 * clients as usize;
    let (mut control, _sh) =
        Control::new(&cfg, Limits { max_sas: want + 16, ..Limits::default() }).map_err(|e| e.to_string())?;
    let cp = Channel::attach(&path, Side::Control, &RegionOptions::default()).map_err(|e| e.to_string())?;
    let link = Link::attach(&path, vec!["outside".into(), "inside".into()]);
    let _ = std::fs::remove_file(&path);
    let mut link = link?;
    let (mut tx, mut rx) = cp.split();
    // Messages are built before the clock starts: esprit-ike has the keys in hand already.
    let msgs: Vec<Message> = (0..clients).flat_map(|i| add_sa(t, i)).collect();
    let arena0 = esprit_heap::arena_used();
    let t0 = Instant::now();
    let sent = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            for m in &msgs {
                tx.send_timeout(m, Duration::from_secs(10)).map_err(|e| format!("send: {e}"))?;
            }
            Ok::<_, String>(msgs.len())
        });
        let deadline = t0 + Duration::from_secs(120);
        while (link.stats.applied + link.stats.rejected) < want as u64 && Instant::now() < deadline {
            if link.poll(&mut control, 4096, |_| {}) == 0 {
                if producer.is_finished() && link.poll(&mut control, 4096, |_| {}) == 0 {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        producer.join().map_err(|_| "the producer panicked".to_string())?
    })?;
    let secs = t0.elapsed().as_secs_f64();
    // Drain the replies: hello, and an error for each refusal.
    while let Ok(Some(_)) = rx.try_recv() {}
    if sent != want || link.stats.applied + link.stats.rejected != want as u64 {
        return Err(format!("sent {sent}, applied {}, refused {} of {want}", link.stats.applied, link.stats.rejected));
    }
    let arena_bytes = esprit_heap::arena_used().saturating_sub(arena0) as u64;
    Ok(Installed { sas: link.stats.applied, secs, refused: link.stats.rejected, arena_bytes })
}
