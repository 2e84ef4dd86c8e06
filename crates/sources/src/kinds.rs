//! Every source kind, as one typed enum: [`SourceConfig`] has a variant per kind, so a match over
//! it is checked by the compiler, and [`source_kinds`] describes each kind (its secrets and the
//! JSON Schema of its `config`) from the same types that parse it.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outbox::{MysqlOutboxConfig, PostgresOutboxConfig};
use crate::syslog::SyslogConfig;

/// A `config` (or definition) the API refuses: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A secret a kind understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecretSpec {
    pub name: &'static str,
    pub required: bool,
}

/// What a kind accepts.
#[derive(Debug)]
pub struct KindSpec {
    pub kind: &'static str,
    pub secrets: &'static [SecretSpec],
    /// Whether the kind appends to one tenant named on the source (`tenant` required), rather
    /// than taking the tenant from each record.
    pub needs_tenant: bool,
}

/// A kind's typed `config`.
pub trait KindConfig: DeserializeOwned + Serialize + JsonSchema + Sized {
    const SPEC: KindSpec;

    fn parse(config: &Value) -> Result<Self, ConfigError> {
        crate::typed::parse_config(config)
    }

    /// Checks beyond the schema that need no I/O.
    fn check(&self) -> Result<(), ConfigError>;
}

/// What `GET /v1/source-kinds` says about a kind.
#[derive(Debug, Clone, Serialize)]
pub struct SourceKindInfo {
    pub kind: &'static str,
    pub secrets: Vec<SecretSpec>,
    /// Whether `tenant` is required on a source of this kind.
    pub needs_tenant: bool,
    /// JSON Schema 2020-12 of `config`, self-contained.
    pub config_schema: Value,
}

macro_rules! source_kinds {
    ($($variant:ident($ty:ty) in $module:ident,)*) => {
        /// A parsed `config`, one variant per kind.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "kind", content = "config", rename_all = "snake_case")]
        pub enum SourceConfig {
            $($variant($ty),)*
        }

        impl SourceConfig {
            /// Parses and checks `config` for `kind`, without I/O.
            pub fn parse(kind: &str, config: &Value) -> Result<SourceConfig, ConfigError> {
                $(
                    if kind == <$ty as KindConfig>::SPEC.kind {
                        let parsed = <$ty as KindConfig>::parse(config)?;
                        parsed.check()?;
                        return Ok(SourceConfig::$variant(parsed));
                    }
                )*
                Err(ConfigError::new(
                    "kind",
                    format!("unknown source kind `{kind}`; known: {}", SPECS.iter().map(|s| s.kind).collect::<Vec<_>>().join(", ")),
                ))
            }

            pub fn spec(&self) -> &'static KindSpec {
                match self {
                    $(SourceConfig::$variant(_) => &<$ty as KindConfig>::SPEC,)*
                }
            }

            /// Checks that need the machine (files readable, the listen address free).
            /// `previous`: the definition being replaced, whose running instance may hold
            /// resources the new one reuses.
            pub async fn preflight(
                &self,
                previous: Option<&SourceConfig>,
                secrets: &std::collections::BTreeMap<String, String>,
            ) -> Result<(), ConfigError> {
                match self {
                    $(SourceConfig::$variant(config) => {
                        #[allow(unreachable_patterns)]
                        let previous = match previous {
                            Some(SourceConfig::$variant(p)) => Some(p),
                            _ => None,
                        };
                        crate::$module::preflight(config, previous, secrets).await
                    })*
                }
            }

            /// The field of `self` that clashes with `other` (two listeners on one address).
            pub fn conflicts_with(&self, other: &SourceConfig) -> Option<String> {
                #[allow(unreachable_patterns)]
                match (self, other) {
                    $((SourceConfig::$variant(a), SourceConfig::$variant(b)) => crate::$module::conflicts(a, b),)*
                    _ => None,
                }
            }

            /// Runs the source until `run.cancel` fires: its module's `run`.
            pub(crate) async fn run(&self, run: crate::supervisor::RunContext) -> Result<(), String> {
                match self {
                    $(SourceConfig::$variant(config) => crate::$module::run(config, run).await,)*
                }
            }
        }

        pub(crate) const SPECS: &[&KindSpec] = &[$(&<$ty as KindConfig>::SPEC,)*];

        /// The JSON Schema of `kind`'s `config`, or `None` for an unknown kind.
        pub fn config_schema(kind: &str) -> Option<Value> {
            $(
                if kind == <$ty as KindConfig>::SPEC.kind {
                    return Some(crate::typed::schema_of::<$ty>());
                }
            )*
            None
        }
    };
}

// Adding a kind: a folder with its config type (`KindConfig`) and `run`, its `pub mod` in
// lib.rs, and one line here.
source_kinds! {
    Syslog(SyslogConfig) in syslog,
    PostgresOutbox(PostgresOutboxConfig) in postgres_outbox,
    MysqlOutbox(MysqlOutboxConfig) in mysql_outbox,
}

impl SourceConfig {
    /// Whether each record names its tenant (outbox `tenant_column`), so `tenant` may be omitted.
    pub fn tenant_from_records(&self) -> bool {
        match self {
            SourceConfig::Syslog(_) => false,
            SourceConfig::PostgresOutbox(c) => c.0.tenant_column.is_some(),
            SourceConfig::MysqlOutbox(c) => c.0.tenant_column.is_some(),
        }
    }
}

/// The spec of a built-in kind.
pub fn kind_spec(kind: &str) -> Option<&'static KindSpec> {
    SPECS.iter().copied().find(|s| s.kind == kind)
}

/// Each kind built in, described from its types.
pub fn source_kinds() -> Vec<SourceKindInfo> {
    SPECS
        .iter()
        .map(|spec| SourceKindInfo {
            kind: spec.kind,
            secrets: spec.secrets.to_vec(),
            needs_tenant: spec.needs_tenant,
            config_schema: config_schema(spec.kind).unwrap_or(Value::Null),
        })
        .collect()
}

/// A source definition as stored (the store's `spec` column): everything but the secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: String,
    pub config: Map<String, Value>,
}

impl SourceSpec {
    /// The typed config (checked when it was stored, so an error here means a newer build wrote
    /// it or the row was edited by hand).
    pub fn typed(&self) -> Result<SourceConfig, ConfigError> {
        SourceConfig::parse(&self.kind, &Value::Object(self.config.clone()))
    }
}
