//! Sources (api.md "Sources"): things auditrelay listens to or polls, each turning outside
//! records into events that go through the same validation, dedup, limits and durability as
//! `POST /v1/events`.
//!
//! * [`kinds`]: the typed `config` of every kind ([`SourceConfig`], one variant per kind) and
//!   the JSON Schema `GET /v1/source-kinds` serves, generated from the same types.
//! * [`supervisor`]: runs every stored, unpaused source this node holds the lease of; starts,
//!   stops and restarts them when their definition changes, without a server restart.
//! * [`Appender`]: the one way a source appends (the server implements it on its ingest path).
//! * [`syslog`]: the RFC 5424/3164 listener over TCP or TLS.
//! * [`outbox`]: the transactional-outbox relays (`postgres_outbox`, `mysql_outbox`).
//!
//! Adding a kind: a folder beside `syslog/` with its config type ([`kinds::KindConfig`]) and a
//! `run` function, its `pub mod` here, and one line in the `source_kinds!` list in kinds.rs.

pub mod append;
pub mod health;
pub mod kinds;
pub mod outbox;
pub mod supervisor;
pub mod syslog;
mod typed;

pub(crate) use outbox::mysql as mysql_outbox;
pub(crate) use outbox::postgres as postgres_outbox;

pub use append::{AppendFailure, Appender};
pub use health::{SourceHealth, SourceStatus};
pub use kinds::{source_kinds, ConfigError, KindConfig, SourceConfig, SourceKindInfo, SourceSpec};
pub use supervisor::{Supervisor, SupervisorOptions};
