//! bgswap: switch an InvenioRDM blue/green deployment between its colours as
//! one ordered, transactional, reversible plan. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod edit;
pub mod engine;
pub mod log;
pub mod mask;
pub mod model;
pub mod probe;
pub mod report;
#[cfg(test)]
pub mod sim;
pub mod transport;
pub mod ui;
