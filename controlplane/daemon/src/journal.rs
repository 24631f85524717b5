//! esprit-ike's journal: what a restarted esprit-ike needs to carry on after a crash (or a
//! kill -9) without losing an SA. Each turn appends one frame — the checkpoints of the IKE
//! SAs that changed (see `esprit_ikev2::persist`), the pairs removed meanwhile, the last
//! CHILD SA cookie — *before* anything that turn produced is sent, so the journal is never
//! behind the peers or the data plane. When it has grown to several times what is live, it
//! is rewritten (a new file renamed over the old one).
//!
//! It lives beside the ring in /dev/shm: it survives the process, not the machine (after a
//! reboot the data plane starts empty too). It holds keys: mode 0600, never logged.
//!
//! A frame is `length (u32) ‖ FNV-1a 64 of the body (u64) ‖ body`; a torn or damaged last
//! frame (the process died while writing it) is left out — nothing of that turn had left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use esprit_ikev2::persist::Checkpoint;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"ESPRITJ1";

const PUT: u8 = 1;
const DROP: u8 = 2;
const COOKIE: u8 = 3;
/// A removed pair (inbound SPI, outbound SPI): its deletion may still wait to reach the
/// data plane.
const TOMBSTONE: u8 = 4;
/// Every deletion journalled so far has reached the data plane's ring.
const TOMBSTONES_DONE: u8 = 5;
/// A pair whose outbound SA the data plane lost (it restarted): never to be installed
/// again with these keys (its sequence numbers were used).
const RETIRED: u8 = 6;

/// A pair given to the data plane (cookie, inbound SPI, outbound SPI), and its removal: what
/// the data plane may hold, whichever IKE SA it belonged to (one being deleted is not kept,
/// its pairs must still go).
const PAIR: u8 = 7;
const UNPAIR: u8 = 8;

/// Rewrite when the file is this many times what is live, plus this much.
const COMPACT_FACTOR: u64 = 4;
const COMPACT_SLACK: u64 = 4 << 20;

/// What a journal holds.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct State {
    /// Checkpoint of each kept IKE SA, by our SPI.
    pub sas: BTreeMap<u64, Checkpoint>,
    pub last_cookie: u64,
    /// Pairs removed whose DeleteSa may not have reached the data plane: (spi_in, spi_out).
    pub tombstones: Vec<(u32, u32)>,
    /// Cookies of pairs whose outbound SA must not be installed again.
    pub retired: BTreeSet<u64>,
    /// Pairs given to the data plane and not removed: cookie → (spi_in, spi_out).
    pub pairs: BTreeMap<u64, (u32, u32)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Checkpoints hold keys: their sizes only.
        f.debug_struct("State")
            .field("sas", &self.sas.iter().map(|(k, v)| (*k, v.len())).collect::<Vec<_>>())
            .field("last_cookie", &self.last_cookie)
            .field("tombstones", &self.tombstones)
            .field("retired", &self.retired)
            .field("pairs", &self.pairs)
            .finish()
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3))
}

/// One turn's changes.
#[derive(Debug, Default)]
pub struct Turn {
    pub checkpoints: Vec<(u64, Option<Checkpoint>)>,
    pub last_cookie: u64,
    pub tombstones: Vec<(u32, u32)>,
    pub retired: Vec<u64>,
    pub pairs_added: Vec<(u64, u32, u32)>,
    pub pairs_removed: Vec<u64>,
    /// Every deletion of earlier turns has entered the ring (this turn's are not sent yet).
    pub deletions_sent: bool,
}

fn encode_state(s: &State) -> Vec<u8> {
    let mut b = Vec::new();
    b.push(COOKIE);
    b.extend_from_slice(&s.last_cookie.to_be_bytes());
    for (spi, c) in &s.sas {
        put(&mut b, *spi, c);
    }
    for (i, o) in &s.tombstones {
        b.push(TOMBSTONE);
        b.extend_from_slice(&i.to_be_bytes());
        b.extend_from_slice(&o.to_be_bytes());
    }
    for c in &s.retired {
        b.push(RETIRED);
        b.extend_from_slice(&c.to_be_bytes());
    }
    for (c, (i, o)) in &s.pairs {
        pair(&mut b, *c, *i, *o);
    }
    b
}

fn pair(b: &mut Vec<u8>, cookie: u64, spi_in: u32, spi_out: u32) {
    b.push(PAIR);
    b.extend_from_slice(&cookie.to_be_bytes());
    b.extend_from_slice(&spi_in.to_be_bytes());
    b.extend_from_slice(&spi_out.to_be_bytes());
}

fn put(b: &mut Vec<u8>, spi: u64, c: &[u8]) {
    b.push(PUT);
    b.extend_from_slice(&spi.to_be_bytes());
    b.extend_from_slice(&(c.len() as u32).to_be_bytes());
    b.extend_from_slice(c);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(12 + body.len());
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&fnv(body).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Applies one frame's body to `s`.
fn apply(s: &mut State, mut b: &[u8]) -> Result<(), String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err("a record is cut short".into());
        }
        let (x, rest) = b.split_at(n);
        *b = rest;
        Ok(x)
    }
    let u64_of = |x: &[u8]| u64::from_be_bytes(x.try_into().unwrap_or_default());
    let u32_of = |x: &[u8]| u32::from_be_bytes(x.try_into().unwrap_or_default());
    while let Some((&kind, rest)) = b.split_first() {
        b = rest;
        match kind {
            PUT => {
                let spi = u64_of(take(&mut b, 8)?);
                let n = u32_of(take(&mut b, 4)?) as usize;
                s.sas.insert(spi, Zeroizing::new(take(&mut b, n)?.to_vec()));
            }
            DROP => {
                s.sas.remove(&u64_of(take(&mut b, 8)?));
            }
            COOKIE => s.last_cookie = s.last_cookie.max(u64_of(take(&mut b, 8)?)),
            TOMBSTONE => {
                let i = u32_of(take(&mut b, 4)?);
                s.tombstones.push((i, u32_of(take(&mut b, 4)?)));
            }
            TOMBSTONES_DONE => s.tombstones.clear(),
            RETIRED => {
                s.retired.insert(u64_of(take(&mut b, 8)?));
            }
            PAIR => {
                let c = u64_of(take(&mut b, 8)?);
                let i = u32_of(take(&mut b, 4)?);
                s.pairs.insert(c, (i, u32_of(take(&mut b, 4)?)));
            }
            UNPAIR => {
                let c = u64_of(take(&mut b, 8)?);
                s.pairs.remove(&c);
                s.retired.remove(&c);
            }
            k => return Err(format!("unknown record kind {k}")),
        }
    }
    Ok(())
}

/// Reads the journal at `path`: `None` if there is none.
pub fn load(path: &Path) -> Result<Option<State>, String> {
    let data = match std::fs::read(path) {
        Ok(d) => Zeroizing::new(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let Some(mut rest) = data.strip_prefix(MAGIC.as_slice()) else {
        return Err(format!("{} is not an esprit-ike journal", path.display()));
    };
    let mut s = State::default();
    let mut n = 0;
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        let sum = u64::from_be_bytes(rest[4..12].try_into().unwrap_or_default());
        let Some(body) = rest.get(12..12 + len) else { break };
        if fnv(body) != sum {
            // Only the last frame may be torn; damage before it is an error.
            if rest.len() > 12 + len {
                return Err(format!("{}: frame {n} is damaged (checksum)", path.display()));
            }
            break;
        }
        apply(&mut s, body).map_err(|e| format!("{}: frame {n}: {e}", path.display()))?;
        rest = &rest[12 + len..];
        n += 1;
    }
    Ok(Some(s))
}

/// The journal being written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Size of each live checkpoint.
    live: HashMap<u64, u64>,
    live_bytes: u64,
    /// Tombstones not yet declared done (kept through compactions).
    tombstones: Vec<(u32, u32)>,
    last_cookie: u64,
    pub frames: u64,
    pub compactions: u64,
}

impl Journal {
    /// Starts a journal at `path` holding `s` (written to a new file renamed over the old).
    pub fn create(path: &Path, s: &State) -> Result<Journal, String> {
        let file = write_new(path, s)?;
        let live: HashMap<u64, u64> = s.sas.iter().map(|(k, v)| (*k, v.len() as u64)).collect();
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            bytes,
            live_bytes: live.values().sum(),
            live,
            tombstones: s.tombstones.clone(),
            last_cookie: s.last_cookie,
            frames: 0,
            compactions: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one turn (nothing if nothing changed).
    pub fn commit(&mut self, t: Turn) -> Result<(), String> {
        let mut b = Vec::new();
        for (spi, c) in &t.checkpoints {
            match c {
                Some(c) => {
                    put(&mut b, *spi, c);
                    self.live_bytes += c.len() as u64;
                    if let Some(old) = self.live.insert(*spi, c.len() as u64) {
                        self.live_bytes -= old;
                    }
                }
                None => {
                    if let Some(old) = self.live.remove(spi) {
                        self.live_bytes -= old;
                        b.push(DROP);
                        b.extend_from_slice(&spi.to_be_bytes());
                    }
                }
            }
        }
        if t.last_cookie != self.last_cookie {
            self.last_cookie = t.last_cookie;
            b.push(COOKIE);
            b.extend_from_slice(&t.last_cookie.to_be_bytes());
        }
        // Before this turn's own: those wait to be sent.
        if t.deletions_sent && !self.tombstones.is_empty() {
            b.push(TOMBSTONES_DONE);
            self.tombstones.clear();
        }
        for (i, o) in &t.tombstones {
            b.push(TOMBSTONE);
            b.extend_from_slice(&i.to_be_bytes());
            b.extend_from_slice(&o.to_be_bytes());
            self.tombstones.push((*i, *o));
        }
        for c in &t.retired {
            b.push(RETIRED);
            b.extend_from_slice(&c.to_be_bytes());
        }
        for &(c, i, o) in &t.pairs_added {
            pair(&mut b, c, i, o);
        }
        for c in &t.pairs_removed {
            b.push(UNPAIR);
            b.extend_from_slice(&c.to_be_bytes());
        }
        if b.is_empty() {
            return Ok(());
        }
        let mut f = frame(&b);
        zeroize::Zeroize::zeroize(&mut b);
        let len = f.len() as u64;
        let r = self.file.write_all(&f).map_err(|e| format!("cannot append to {}: {e}", self.path.display()));
        zeroize::Zeroize::zeroize(&mut f);
        r?;
        self.bytes += len;
        self.frames += 1;
        Ok(())
    }

    /// The file has grown well beyond what is live: time to [`compact`](Self::compact).
    pub fn wants_compaction(&self) -> bool {
        self.bytes > COMPACT_FACTOR * self.live_bytes + COMPACT_SLACK
    }

    /// Rewrites the file as `s` (everything live, from the endpoint; the tombstones not yet
    /// done are kept whatever `s` says).
    pub fn compact(&mut self, mut s: State) -> Result<(), String> {
        s.tombstones = self.tombstones.clone();
        let mut fresh = Journal::create(&self.path, &s)?;
        fresh.frames = self.frames;
        fresh.compactions = self.compactions + 1;
        *self = fresh;
        Ok(())
    }
}

/// Writes `s` to `path`.new (0600), renames it over `path`, returns it open for appending.
fn write_new(path: &Path, s: &State) -> Result<File, String> {
    let tmp = path.with_extension("new");
    let mut body = encode_state(s);
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(&frame(&body));
    zeroize::Zeroize::zeroize(&mut body);
    let r = (|| -> std::io::Result<File> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&data)?;
        std::fs::rename(&tmp, path)?;
        let f2 = OpenOptions::new().append(true).open(path)?;
        drop(f);
        Ok(f2)
    })();
    zeroize::Zeroize::zeroize(&mut data);
    r.map_err(|e| format!("cannot write the journal {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "esprit-journal-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::create_dir_all(&d);
        d
    }

    #[test]
    fn what_is_committed_loads_back_and_a_torn_last_frame_is_left_out() {
        let p = dir().join("j");
        let mut j = Journal::create(&p, &State::default()).unwrap();
        j.commit(Turn {
            checkpoints: vec![(1, Some(Zeroizing::new(vec![1; 10]))), (2, Some(Zeroizing::new(vec![2; 5])))],
            last_cookie: 4,
            ..Turn::default()
        })
        .unwrap();
        j.commit(Turn {
            checkpoints: vec![(2, None), (3, Some(Zeroizing::new(vec![3])))],
            last_cookie: 6,
            tombstones: vec![(0x100, 0x200)],
            retired: vec![6],
            pairs_added: vec![(5, 0x101, 0x201), (6, 0x102, 0x202)],
            pairs_removed: vec![5],
            ..Turn::default()
        })
        .unwrap();
        let s = load(&p).unwrap().unwrap();
        assert_eq!(s.sas.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(s.pairs.iter().map(|(c, p)| (*c, *p)).collect::<Vec<_>>(), [(6, (0x102, 0x202))]);
        assert_eq!((s.last_cookie, s.tombstones.clone(), s.retired.len()), (6, vec![(0x100, 0x200)], 1));
        // The deletions reached the ring: the tombstones are done — not those of the same
        // turn (they are not sent yet), and those survive a compaction.
        j.commit(Turn { last_cookie: 6, deletions_sent: true, tombstones: vec![(7, 8)], ..Turn::default() }).unwrap();
        assert_eq!(load(&p).unwrap().unwrap().tombstones, [(7, 8)]);
        let st = load(&p).unwrap().unwrap();
        j.compact(State { tombstones: vec![], ..st }).unwrap();
        assert_eq!(load(&p).unwrap().unwrap().tombstones, [(7, 8)]);
        j.commit(Turn { last_cookie: 6, deletions_sent: true, ..Turn::default() }).unwrap();
        assert!(load(&p).unwrap().unwrap().tombstones.is_empty());
        // A frame cut short by a crash is left out; the ones before stay.
        let before = std::fs::read(&p).unwrap();
        j.commit(Turn {
            checkpoints: vec![(9, Some(Zeroizing::new(vec![9; 100])))],
            last_cookie: 6,
            ..Turn::default()
        })
        .unwrap();
        let all = std::fs::read(&p).unwrap();
        for cut in before.len()..all.len() {
            std::fs::write(&p, &all[..cut]).unwrap();
            assert!(!load(&p).unwrap().unwrap().sas.contains_key(&9), "cut at {cut}");
        }
        // Damage before the last frame is an error, not a silent loss.
        let mut bad = all.clone();
        bad[MAGIC.len() + 14] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(load(&p).unwrap_err().contains("damaged"));
        std::fs::write(&p, b"something else").unwrap();
        assert!(load(&p).unwrap_err().contains("not an esprit-ike journal"));
    }

    #[test]
    fn compaction_keeps_what_is_live_only() {
        let p = dir().join("k");
        let mut j = Journal::create(&p, &State::default()).unwrap();
        for i in 0..200u64 {
            j.commit(Turn {
                checkpoints: vec![(i % 3, Some(Zeroizing::new(vec![0; 50_000])))],
                last_cookie: i,
                ..Turn::default()
            })
            .unwrap();
        }
        assert!(j.wants_compaction(), "{} bytes for {} live", j.bytes, j.live_bytes);
        let s = load(&p).unwrap().unwrap();
        j.compact(s.clone()).unwrap();
        assert!(!j.wants_compaction() && j.bytes() < 200_000);
        assert_eq!(load(&p).unwrap().unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "it holds keys");
    }
}
