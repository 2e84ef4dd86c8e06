//! Per-sink filter and transform (api.md, "Per-sink filter and transform"): pure functions over
//! one event's JSON rendering (what the `json` format sends), compiled once when a sink is saved
//! and applied once per event per sink. Nothing here does I/O; the engine's lane decides what a
//! result means (a filter error counts as `false` and in `filter_errors`).
//!
//! Order per event: [`Filter::matches`], then, for the events that pass, [`Transform::apply`]
//! on a copy, then the sink's format.

mod filter;
mod transform;

pub use filter::{EvalError, Filter, FilterError};
pub use transform::{
    generate_hash_key, hash_value, Transform, TransformError, HASH_PREFIX, PROTECTED, REDACTED, TRANSFORMED,
};
