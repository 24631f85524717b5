//! Two processes: the test binary runs itself as the peer (`child_process_entry`), and the
//! peer is killed with SIGKILL mid-stream and restarted.

// Under `--cfg loom` only the ring protocol is built (the shared mapping is not modelled).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::*;
use esprit_ring::region::MIN_CAPACITY;
use esprit_ring::stats::ReaderStatus;
use esprit_ring::*;

const CHILD: &str = "ESPRIT_RING_CHILD";

fn small() -> RegionOptions {
    RegionOptions { capacity: MIN_CAPACITY, ..RegionOptions::default() }
}

fn env_u64(k: &str) -> u64 {
    std::env::var(k).unwrap().parse().unwrap()
}

/// Not a test of its own: the body of the child processes the other tests start.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let path = std::path::PathBuf::from(std::env::var("ESPRIT_RING_PATH").unwrap());
    match role.as_str() {
        "producer" => {
            let mut c = Channel::attach(&path, Side::Control, &small()).unwrap();
            for seq in env_u64("START")..env_u64("N") {
                c.sender().send_timeout(&numbered(seq), Duration::from_secs(60)).unwrap();
            }
        }
        "consumer" => {
            let n = env_u64("N");
            let mut d = Channel::attach(&path, Side::Data, &small()).unwrap();
            let mut out = std::io::stdout().lock();
            loop {
                // Log, then commit: a kill between the two leaves the record for the next
                // consumer, and the log shows it was read.
                let r = d.receiver().try_recv_with(|r| {
                    let seq = check_numbered(&r.message);
                    let line = format!("REC {seq} {} {}\n", r.position, r.generation);
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                    seq
                });
                match r.unwrap() {
                    Some(seq) if seq == n - 1 => break,
                    Some(_) => {}
                    None => std::thread::yield_now(),
                }
            }
        }
        "stats_writer" => {
            let mut w = StatsWriter::create(&path, &stats_layout()).unwrap();
            let (rx, replay) = (w.counter("rx_packets").unwrap(), w.counter("drop.replay").unwrap());
            let pk = w.sa_counter("packets").unwrap();
            let (l0, l1) = (w.take_lcore(0).unwrap(), w.take_lcore(1).unwrap());
            let mut out = std::io::stdout().lock();
            out.write_all(b"READY\n").unwrap();
            out.flush().unwrap();
            // Until killed (and never for long if the test that started it is gone).
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                for _ in 0..1000 {
                    l0.inc(rx);
                    l0.sa_add(3, pk, 2);
                    l1.inc(replay);
                }
                std::thread::yield_now();
            }
        }
        r => panic!("unknown role {r}"),
    }
}

/// A child process, killed if the test fails before it is waited for.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Peer {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn spawn(role: &str, path: &Path, env: &[(&str, u64)]) -> Peer {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["child_process_entry", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD, role)
        .env("ESPRIT_RING_PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v.to_string());
    }
    Peer(c.spawn().unwrap())
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(!st.success());
}

/// The control plane (producer) is killed three times mid-stream and restarted; the data
/// plane (consumer, this process) sees every committed message once, in order, and the
/// generation change at each restart.
#[test]
fn producer_killed_and_restarted() {
    let f = ShmFile::new("pkill");
    let mut d = Channel::attach(f.path(), Side::Data, &small()).unwrap();
    const N: u64 = 60_000;
    let mut next = 0u64;
    let mut changes = vec![];
    for round in 0..4u64 {
        let mut child = spawn("producer", f.path(), &[("START", next), ("N", N)]);
        let kill_at = if round < 3 { next + 4_000 + round * 2_500 } else { N };
        let mut rx = |next: &mut u64| -> bool {
            let Some(r) = d.receiver().try_recv().unwrap() else {
                return false;
            };
            assert_eq!(check_numbered(&r.message), *next, "lost or repeated");
            if changes.last().map(|&(g, _)| g) != Some(r.generation) {
                changes.push((r.generation, *next));
            }
            *next += 1;
            true
        };
        while next < kill_at {
            if !rx(&mut next) {
                std::thread::yield_now();
            }
        }
        if round < 3 {
            // Killed while it is producing (the ring just made room).
            kill(&mut child);
            // Everything it committed before dying, and nothing else.
            while rx(&mut next) {}
            assert!(next >= kill_at);
        } else {
            assert!(child.wait().unwrap().success());
            assert!(d.receiver().try_recv().unwrap().is_none());
        }
        let peer = d.region().peer();
        assert_eq!(peer.generation, round + 1);
        assert!(!peer.alive);
    }
    assert_eq!(next, N);
    assert_eq!(
        changes.iter().map(|&(g, _)| g).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "a new generation at each restart: {changes:?}"
    );
    let s = d.region().ring_stats(Heading::ToData);
    assert_eq!((s.corrupt, s.rejected), (0, 0));
    eprintln!("generation changes (generation, first seq): {changes:?}; {s:?}");
}

/// Lines `REC seq position generation` from a consumer child, until it exits.
fn records(out: ChildStdout, kill_after: Option<(usize, &mut Child)>) -> Vec<(u64, u64, u32)> {
    let mut v = vec![];
    let mut kill_after = kill_after;
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("REC ") else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        v.push((f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap()));
        if let Some((k, child)) = kill_after.as_mut() {
            if v.len() == *k {
                child.kill().unwrap();
            }
        }
    }
    v
}

/// The data plane (consumer) is killed three times mid-stream and restarted: each
/// successor resumes at the committed tail. The one message a killed consumer was applying
/// is delivered again if the kill came before its commit marked it, and not otherwise; no
/// other message is ever seen twice or missed.
#[test]
fn consumer_killed_and_restarted() {
    let f = ShmFile::new("ckill");
    let c = Channel::attach(f.path(), Side::Control, &small()).unwrap();
    let (mut tx, _) = c.split();
    const N: u64 = 60_000;
    let producer = std::thread::spawn(move || {
        for seq in 0..N {
            tx.send_timeout(&numbered(seq), Duration::from_secs(60)).unwrap();
        }
        tx
    });
    let mut applied: Vec<u64> = vec![];
    // The last message a killed consumer logged, if its commit had not published the tail.
    let mut in_flight: Option<(u64, u64)> = None;
    let (mut redelivered, mut finished_by_successor) = (0, 0);
    for round in 0..4usize {
        let mut child = spawn("consumer", f.path(), &[("N", N)]);
        let out = child.stdout.take().unwrap();
        let kill_after = (round < 3).then_some((3_000 + round * 2_000, &mut *child));
        let mut recs = records(out, kill_after);
        let st = child.wait().unwrap();
        assert_eq!(st.success(), round == 3);
        if let Some((seq, pos)) = in_flight.take() {
            if (recs[0].0, recs[0].1) == (seq, pos) {
                // Killed before marking it consumed: delivered again (at least once).
                recs.remove(0);
                redelivered += 1;
            } else {
                // Killed inside commit, after the mark: the successor finished the commit.
                finished_by_successor += 1;
            }
        }
        let tail = inspect(f.path()).unwrap().rings[0].tail;
        for (i, &(seq, pos, generation)) in recs.iter().enumerate() {
            assert_eq!(generation, 1, "one producer throughout");
            applied.push(seq);
            if pos >= tail {
                // Read and logged, tail not yet moved: only the last one can be in that state.
                assert_eq!(i, recs.len() - 1);
                in_flight = Some((seq, pos));
            }
        }
        assert!(!inspect(f.path()).unwrap().sides[1].alive);
    }
    let tx = producer.join().unwrap();
    assert_eq!(applied, (0..N).collect::<Vec<_>>(), "lost or repeated");
    let s = tx.region().ring_stats(Heading::ToData);
    assert_eq!((s.sent, s.received, s.corrupt, s.rejected), (N, N, 0, 0));
    assert!(s.full > 0, "the producer never waited for a dead consumer");
    assert_eq!(tx.region().peer().generation, 4);
    eprintln!(
        "in flight at a kill: {redelivered} delivered again, {finished_by_successor} commits \
         finished by the successor; {s:?}"
    );
}

fn stats_layout() -> StatsLayout {
    StatsLayout {
        lcores: 2,
        counters: vec!["rx_packets".into(), "drop.replay".into()],
        sa_counters: vec!["packets".into()],
        max_sa: 16,
    }
}

/// The stats writer (data plane) is killed; the reader saw its counters grow without
/// disturbing it, keeps the last values, and notices the next writer.
#[test]
fn stats_writer_killed_and_replaced() {
    let f = ShmFile::new("stats");
    let mut child = spawn("stats_writer", f.path(), &[]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "READY" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "writer died");
    }
    let r = StatsReader::open(f.path()).unwrap();
    assert_eq!(r.epoch(), 1);
    assert!(r.writer_alive());
    let rx = r.counter("rx_packets").unwrap();
    let pk = r.sa_counter("packets").unwrap();
    let mut last = 0;
    for _ in 0..5 {
        // Growing, however busy the machine is.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = r.total(rx);
            if v > last {
                last = v;
                break;
            }
            assert!(std::time::Instant::now() < deadline, "counter stuck at {v}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    kill(&mut child);
    assert!(!r.writer_alive());
    let v = r.get(0, rx);
    assert_eq!(r.get(0, rx), v);
    assert!(r.sa_total(3, pk) >= 2 * v - 2);
    assert_eq!(r.status(), ReaderStatus::Live);

    let w = StatsWriter::create(f.path(), &stats_layout()).unwrap();
    assert_eq!(w.epoch(), 2);
    assert_eq!(r.status(), ReaderStatus::Superseded);
    let r2 = StatsReader::open(f.path()).unwrap();
    assert_eq!((r2.epoch(), r2.total(rx)), (2, 0));
}
