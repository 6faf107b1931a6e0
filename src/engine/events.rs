//! What the engine reports while it works. The engine never prints: it emits
//! events to a [`Sink`], and a renderer (`ui::progress`) draws them — bars on
//! a terminal, timestamped lines otherwise. Events carry names, paths and
//! command descriptions, never file contents or values.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A phase begins: `index` of `total` (1-based), with the hosts it touches.
    PhaseStarted {
        index: usize,
        total: usize,
        name: String,
        hosts: Vec<String>,
    },
    PhaseDone {
        index: usize,
        name: String,
        took: Duration,
    },
    /// A step of the plan begins on a host.
    StepStarted {
        n: usize,
        host: String,
        what: String,
    },
    StepDone {
        n: usize,
        host: String,
        what: String,
        took: Duration,
    },
    StepFailed {
        n: usize,
        host: String,
        what: String,
        error: String,
    },
    /// Something worth a line: lock taken, staged file validated, …
    Note {
        host: Option<String>,
        message: String,
    },
    /// Undoing begins (automatic after a failure, or `bgswap rollback`).
    RollbackStarted { reason: String, steps: usize },
    UndoStarted {
        n: usize,
        host: String,
        what: String,
    },
    UndoDone {
        n: usize,
        host: String,
        what: String,
        took: Duration,
    },
    /// Nothing to undo for this step: inspection found it as it was.
    UndoSkipped { n: usize, host: String, why: String },
    UndoFailed {
        n: usize,
        host: String,
        what: String,
        error: String,
    },
    /// The run is over; `summary` is one line.
    Finished { summary: String, took: Duration },
}

impl Event {
    /// The event with every text through `mask::mask_text` (secrets and
    /// control characters): what a renderer draws.
    pub fn masked(&self) -> Event {
        let m = |s: &String| crate::mask::mask_text(s);
        let mut e = self.clone();
        match &mut e {
            Event::PhaseStarted { name, hosts, .. } => {
                *name = m(name);
                hosts.iter_mut().for_each(|h| *h = m(h));
            }
            Event::PhaseDone { name, .. } => *name = m(name),
            Event::StepStarted { host, what, .. }
            | Event::StepDone { host, what, .. }
            | Event::UndoStarted { host, what, .. }
            | Event::UndoDone { host, what, .. } => {
                *host = m(host);
                *what = m(what);
            }
            Event::StepFailed {
                host, what, error, ..
            }
            | Event::UndoFailed {
                host, what, error, ..
            } => {
                *host = m(host);
                *what = m(what);
                *error = m(error);
            }
            Event::Note { host, message } => {
                *host = host.as_ref().map(m);
                *message = m(message);
            }
            Event::RollbackStarted { reason, .. } => *reason = m(reason),
            Event::UndoSkipped { host, why, .. } => {
                *host = m(host);
                *why = m(why);
            }
            Event::Finished { summary, .. } => *summary = m(summary),
        }
        e
    }
}

/// Where events go.
pub trait Sink: Send + Sync {
    fn emit(&self, e: &Event);
}

/// Collects events (tests, and the journal of what was shown).
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<Event>>);

impl Sink for Collect {
    fn emit(&self, e: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e.clone());
        }
    }
}
