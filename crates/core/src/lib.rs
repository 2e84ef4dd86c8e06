//! The vocabulary of auditrelay. Nothing in this crate does I/O (invariant 4 in ARCHITECTURE.md):
//! it turns bytes a client sent into validated events, and names the things the rest of the
//! system passes around.

pub mod event;
mod fast;
pub mod glob;
pub mod ids;
pub mod ingest;
mod jcs;
pub mod limits;
pub mod time;
mod validate;

pub use event::{EventTimes, NewEvent, ParsedEvent, StoredEvent};
pub use glob::{GlobError, TypeFilter};
pub use ingest::{parse_request, BodyFormat, IngestError};
pub use limits::Limits;
