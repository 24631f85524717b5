//! The engine of the offline mode, tests and benches: one [`Worker`] and its [`Control`]
//! in one thread, the writer applying the worker's requests after every burst. The live
//! data plane runs the same two parts on separate threads.

use std::ops::{Deref, DerefMut};

use esprit_esp::BufPool;

use crate::config::Config;
use crate::shared::{Control, EngineError, Limits};
use crate::worker::Worker;

/// A worker and the writer of the tables it reads.
pub struct Engine<P: BufPool> {
    control: Control,
    worker: Worker<P>,
    next_sweep: u64,
}

impl<P: BufPool> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("control", &self.control).finish()
    }
}

impl<P: BufPool> Engine<P> {
    pub fn new(cfg: &Config, pool: P) -> Result<Self, EngineError> {
        let limits = Limits { max_sas: cfg.settings.max_sas, ..Limits::default() };
        let (control, sh) = Control::new(cfg, limits)?;
        Ok(Engine { control, worker: Worker::new(sh, pool, true), next_sweep: 0 })
    }

    /// Processes frames received on interface `ifidx`, then applies what they taught.
    pub fn rx(&mut self, ifidx: usize, frames: impl IntoIterator<Item = P::Buf>, now: u64) {
        self.worker.rx(ifidx, frames, now);
        self.settle(now);
    }

    /// Runs the timers.
    pub fn poll(&mut self, now: u64) {
        self.worker.poll(now);
        self.settle(now);
    }

    fn settle(&mut self, now: u64) {
        self.control.apply(self.worker.requests.drain(..));
        if now >= self.next_sweep {
            // SA time lifetimes and idle spells, once a second of the packets' clock.
            self.control.sweep(now);
            self.next_sweep = now.saturating_add(1_000_000_000);
        }
        self.worker.events.append(&mut self.control.events);
        self.worker.counters.nat_mapping_changes = self.control.nat_mapping_changes;
    }

    pub fn control(&mut self) -> &mut Control {
        &mut self.control
    }

    pub fn interface_names(&self) -> impl Iterator<Item = &str> {
        self.worker.shared().ifs.iter().map(|i| i.name.as_str())
    }

    pub fn interface_index(&self, name: &str) -> Option<usize> {
        self.worker.shared().interface_index(name)
    }
}

impl<P: BufPool> Deref for Engine<P> {
    type Target = Worker<P>;
    fn deref(&self) -> &Worker<P> {
        &self.worker
    }
}

impl<P: BufPool> DerefMut for Engine<P> {
    fn deref_mut(&mut self) -> &mut Worker<P> {
        &mut self.worker
    }
}
