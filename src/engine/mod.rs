//! The engine: performs a plan on the hosts and undoes it. It journals before
//! it acts, emits events instead of printing, and never decides exit codes.

pub mod commands;
pub mod events;
pub mod journal;
pub mod lock;
pub mod probe;
pub mod run;
pub mod step;
