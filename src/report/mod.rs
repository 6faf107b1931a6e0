//! Presentation: turns plans and role tables into text, JSON or Markdown. Every text
//! that came from a host passes through [`crate::mask`] before it is shown.
//! Nothing here decides anything or touches a host.

pub mod diff;
pub mod json;
pub mod markdown;
mod md;
pub mod review;
pub mod style;
pub mod table;
pub mod text;
