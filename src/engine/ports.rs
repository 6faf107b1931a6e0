//! What the engine needs from the outside, declared here so the engine
//! depends on no outer layer: a [`Sink`] for its [`Event`]s (drawn by
//! `ui::progress`) and a [`Prompter`] to ask the operator between phases
//! (implemented by `ui::prompt`).

use std::io;

pub use super::events::{Event, Sink};

/// What to do before the next phase, under `--step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepChoice {
    /// Run the next phase.
    Continue,
    /// Undo everything done so far, then stop.
    RollBack,
    /// Stop now and leave the deployment as it is, half-switched.
    StopHere,
}

pub trait Prompter: Send + Sync {
    /// Shows `summary`, then asks the operator to type `expected` (the
    /// colour being promoted). True only on an exact match (after trimming);
    /// one attempt, anything else is false. An empty `expected` is an
    /// `InvalidInput` error: nothing could confirm it.
    fn confirm_typed(&self, summary: &str, expected: &str) -> io::Result<bool>;
    /// Before phase `index` of `total` (1-based) with `--step`: continue,
    /// roll back, or stop and leave the deployment half-switched.
    fn before_phase(&self, phase: &str, index: usize, total: usize) -> io::Result<StepChoice>;
    /// A yes/no question, default no (Enter alone answers no).
    fn yes_no(&self, question: &str) -> io::Result<bool>;
}
