//! The engine: performs a plan on the hosts and undoes it. It journals before
//! it acts, emits events instead of printing, and never decides exit codes.

pub mod backups;
pub mod commands;
pub mod drain;
pub mod events;
pub mod execute;
pub mod journal;
pub mod lock;
pub mod ports;
pub mod run;
pub mod state;
pub mod step;
pub mod undo;
pub mod undo_plan;
pub mod verify;
pub mod watchdog;
