//! The `config` of the `postgres_outbox` and `mysql_outbox` sources (one shape for both; only
//! PostgreSQL takes `notify_channel`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::{ConfigError, KindConfig, KindSpec, SecretSpec};

pub const DEFAULT_BATCH_SIZE: u32 = 500;
pub const MAX_BATCH_SIZE: u32 = 10_000;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
pub const MIN_POLL_INTERVAL_MS: u64 = 10;
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;

/// Event fields a `columns` mapping may fill: top-level fields, and the members of `actor`,
/// `target` and `source` as `actor.id` etc.
const TOP_FIELDS: &[&str] = &[
    "type",
    "occurred_at",
    "action",
    "outcome",
    "severity",
    "request_id",
    "actor",
    "target",
    "changes",
    "metadata",
    "source",
];
const OBJECT_FIELDS: &[&str] = &["actor", "target", "changes", "metadata", "source"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterAppend {
    /// Delete the row once its event is durable.
    #[default]
    Delete,
    /// Set `mark_column` to the current time once its event is durable; marked rows are skipped.
    Mark,
}

/// `config` of an outbox source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The outbox table (`schema.table` allowed): `[A-Za-z_][A-Za-z0-9_.]*`.
    #[schemars(length(min = 1, max = 128), example = &"audit_outbox")]
    pub table: String,
    /// Its integer key, increasing with inserts (`bigserial`, `AUTO_INCREMENT`); default `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub id_column: Option<String>,
    /// A JSON column holding the whole event (as `POST /v1/events` takes it). Exclusive with `columns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub event_column: Option<String>,
    /// Event field → column (`type`, `occurred_at`, `action`, `outcome`, `severity`,
    /// `request_id`, `actor`, `target`, `changes`, `metadata`, `source`, or a member such as
    /// `actor.id`). Exclusive with `event_column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeMap<String, String>>,
    /// The column naming each row's tenant; without it every event goes to the source's `tenant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub tenant_column: Option<String>,
    /// Rows read per batch (default 500, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: Option<u32>,
    /// How often the table is read when idle (default 1000 ms; with `notify_channel`, a fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600000))]
    pub poll_interval_ms: Option<u64>,
    /// PostgreSQL only: `LISTEN` on this channel and read at once on a `NOTIFY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub notify_channel: Option<String>,
    /// What happens to a row once its event is durable (default `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_append: Option<AfterAppend>,
    /// With `after_append: mark`: a nullable timestamp column set when the row is relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub mark_column: Option<String>,
}

/// Where the event comes from in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventShape {
    Json(String),
    /// (event field, column), in a stable order.
    Columns(Vec<(String, String)>),
}

/// A checked config, with defaults applied.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub table: String,
    pub id_column: String,
    pub shape: EventShape,
    pub tenant_column: Option<String>,
    pub batch_size: u32,
    pub poll_interval_ms: u64,
    pub notify_channel: Option<String>,
    /// `Some(column)` for `mark`.
    pub mark_column: Option<String>,
}

/// `[A-Za-z_][A-Za-z0-9_.]*`, each dotted part non-empty and at most 63 characters.
pub fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && s.split('.').all(|p| !p.is_empty() && p.len() <= 63)
}

fn ident(field: &str, value: &str) -> Result<String, ConfigError> {
    if valid_identifier(value) {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::new(
            field,
            "must be an identifier: [A-Za-z_][A-Za-z0-9_.]*, dotted parts of at most 63 characters",
        ))
    }
}

fn column(field: &str, value: &str) -> Result<String, ConfigError> {
    let v = ident(field, value)?;
    if v.contains('.') {
        return Err(ConfigError::new(field, "must be a column name (no `.`)"));
    }
    Ok(v)
}

impl OutboxConfig {
    pub fn settings(&self, postgres: bool) -> Result<OutboxSettings, ConfigError> {
        let table = ident("config.table", &self.table)?;
        let id_column = column("config.id_column", self.id_column.as_deref().unwrap_or("id"))?;
        let shape = match (&self.event_column, &self.columns) {
            (Some(c), None) => EventShape::Json(column("config.event_column", c)?),
            (None, Some(map)) => {
                if !map.contains_key("type") {
                    return Err(ConfigError::new(
                        "config.columns",
                        "must map `type` (the one required event field) to a column",
                    ));
                }
                let mut out = Vec::new();
                for (field, col) in map {
                    let path = format!("config.columns.{field}");
                    let known = TOP_FIELDS.contains(&field.as_str())
                        || field.split_once('.').is_some_and(|(top, member)| {
                            ["actor", "target", "source"].contains(&top)
                                && valid_identifier(member)
                                && !member.contains('.')
                        });
                    if !known {
                        return Err(ConfigError::new(
                            path,
                            format!(
                                "not an event field; known: {}, or actor./target./source. members",
                                TOP_FIELDS.join(", ")
                            ),
                        ));
                    }
                    out.push((field.clone(), column(&path, col)?));
                }
                EventShape::Columns(out)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "config.columns",
                    "give `event_column` or `columns`, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "config.event_column",
                    "is required (or `columns`, a mapping of event fields to columns)",
                ))
            }
        };
        let tenant_column = self
            .tenant_column
            .as_deref()
            .map(|c| column("config.tenant_column", c))
            .transpose()?;
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(ConfigError::new(
                "config.batch_size",
                format!("must be 1 to {MAX_BATCH_SIZE}"),
            ));
        }
        let poll_interval_ms = self.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS);
        if !(MIN_POLL_INTERVAL_MS..=MAX_POLL_INTERVAL_MS).contains(&poll_interval_ms) {
            return Err(ConfigError::new(
                "config.poll_interval_ms",
                format!("must be {MIN_POLL_INTERVAL_MS} to {MAX_POLL_INTERVAL_MS}"),
            ));
        }
        let notify_channel = match &self.notify_channel {
            Some(_) if !postgres => {
                return Err(ConfigError::new(
                    "config.notify_channel",
                    "is PostgreSQL only (MySQL has no NOTIFY; the table is polled)",
                ))
            }
            Some(c) => Some(column("config.notify_channel", c)?),
            None => None,
        };
        let mark_column = match (self.after_append.unwrap_or_default(), &self.mark_column) {
            (AfterAppend::Mark, Some(c)) => Some(column("config.mark_column", c)?),
            (AfterAppend::Mark, None) => {
                return Err(ConfigError::new(
                    "config.mark_column",
                    "is required with `after_append: mark`",
                ))
            }
            (AfterAppend::Delete, Some(_)) => {
                return Err(ConfigError::new(
                    "config.mark_column",
                    "is only used with `after_append: mark`",
                ))
            }
            (AfterAppend::Delete, None) => None,
        };
        Ok(OutboxSettings {
            table,
            id_column,
            shape,
            tenant_column,
            batch_size,
            poll_interval_ms,
            notify_channel,
            mark_column,
        })
    }
}

pub(crate) fn is_object_field(field: &str) -> bool {
    OBJECT_FIELDS.contains(&field)
}

const DATABASE_URL: &[SecretSpec] = &[SecretSpec {
    name: "database_url",
    required: true,
}];

/// `config` of a `postgres_outbox` source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(title = "postgres_outbox source config")]
pub struct PostgresOutboxConfig(pub OutboxConfig);

/// `config` of a `mysql_outbox` source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(title = "mysql_outbox source config")]
pub struct MysqlOutboxConfig(pub OutboxConfig);

impl KindConfig for PostgresOutboxConfig {
    const SPEC: KindSpec = KindSpec {
        kind: "postgres_outbox",
        secrets: DATABASE_URL,
        needs_tenant: false,
    };
    fn check(&self) -> Result<(), ConfigError> {
        self.0.settings(true).map(|_| ())
    }
}

impl KindConfig for MysqlOutboxConfig {
    const SPEC: KindSpec = KindSpec {
        kind: "mysql_outbox",
        secrets: DATABASE_URL,
        needs_tenant: false,
    };
    fn check(&self) -> Result<(), ConfigError> {
        self.0.settings(false).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_injection() {
        assert!(valid_identifier("audit_outbox"));
        assert!(valid_identifier("app.audit_outbox"));
        assert!(!valid_identifier("x; DROP TABLE y"));
        assert!(!valid_identifier("a\"b"));
        assert!(!valid_identifier("1abc"));
        assert!(!valid_identifier("a..b"));
        assert!(!valid_identifier(""));
    }
}
