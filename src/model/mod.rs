//! The functional core: inventory, observation, roles, the swap and the plan.
//! Nothing in here does I/O, except [`inventory::Inventory::load`] reading the
//! inventory file it is given; everything else is a pure function of its inputs.

pub mod allowed_hosts;
pub mod colour;
pub mod compose_spec;
pub mod deps;
pub mod inventory;
pub mod observation;
pub mod parsed;
pub mod plan;
pub mod roles;
pub mod saved;
pub mod swap;
mod swap_compose;
pub mod swap_env;
mod swap_nginx;
pub mod tokens;
pub mod web;
