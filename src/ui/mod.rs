//! The terminal side of a run: [`progress`] draws the engine's events
//! (indicatif bars on a terminal, timestamped lines otherwise, both on
//! stderr) and [`prompt`] asks the operator between steps (dialoguer, only
//! on a terminal). Neither decides anything: the engine emits, the CLI asks
//! and chooses what to do with the answers. [`events_json`] writes the same
//! events as JSON lines on stdout, for a program (`--format json`).

pub mod events_json;
pub mod progress;
pub mod prompt;
