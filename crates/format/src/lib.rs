//! Wire formats: pure functions from one stored event to the bytes of one record. No I/O
//! (invariant 6). Sinks frame records into requests (arrays, NDJSON, HEC envelopes); a format
//! knows nothing of transports.

use auditrelay_core::StoredEvent;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The canonical event (api.md), `offset` first.
    Json,
    /// The event exactly as ingested, byte for byte.
    Raw,
    /// ArcSight CEF:0.
    Cef,
    /// IBM QRadar LEEF 2.0.
    Leef,
    /// OCSF (API Activity 6003, Authentication 3002, Account Change 3001).
    Ocsf,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "raw" => Some(Format::Raw),
            "cef" => Some(Format::Cef),
            "leef" => Some(Format::Leef),
            "ocsf" => Some(Format::Ocsf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::Ocsf => "ocsf",
        }
    }

    /// Whether a record is a JSON object (it can be embedded as JSON; otherwise as a string).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::Raw | Format::Ocsf)
    }
}

/// Names a format uses in its headers; from the sink's `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// CEF/LEEF Device Vendor, OCSF `metadata.product.vendor_name`.
    pub vendor: String,
    /// CEF/LEEF Device Product, OCSF `metadata.product.name`.
    pub product: String,
    /// CEF/LEEF Device Version, OCSF `metadata.product.version`.
    pub product_version: String,
    /// LEEF 2.0 attribute delimiter.
    pub leef_delimiter: char,
    /// OCSF `metadata.version` (the schema version the output claims).
    pub ocsf_version: String,
}

/// `config` keys every sink with a format choice accepts.
pub const OPTION_KEYS: &[&str] = &["vendor", "product", "product_version", "leef_delimiter", "ocsf_version"];

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            vendor: "auditrelay".into(),
            product: "auditrelay".into(),
            product_version: env!("CARGO_PKG_VERSION").into(),
            leef_delimiter: '^',
            ocsf_version: "1.8.0".into(),
        }
    }
}

/// A bad format option; `field` is its path (`config.leef_delimiter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionError {
    pub field: String,
    pub message: String,
}

impl FormatOptions {
    /// Reads the option keys from a sink's `config` (others are ignored here).
    pub fn from_config(config: &Map<String, Value>) -> Result<FormatOptions, OptionError> {
        // FORMAT HELPER: validate each key (non-empty strings of bounded length, a single
        // printable delimiter character, a version string).
        let mut o = FormatOptions::default();
        let text = |k: &str| -> Result<Option<String>, OptionError> {
            match config.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Ok(Some(s.clone())),
                Some(_) => Err(OptionError {
                    field: format!("config.{k}"),
                    message: "must be a non-empty string of at most 128 bytes".into(),
                }),
            }
        };
        if let Some(v) = text("vendor")? {
            o.vendor = v;
        }
        if let Some(v) = text("product")? {
            o.product = v;
        }
        if let Some(v) = text("product_version")? {
            o.product_version = v;
        }
        if let Some(v) = text("ocsf_version")? {
            o.ocsf_version = v;
        }
        if let Some(v) = text("leef_delimiter")? {
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => o.leef_delimiter = c,
                _ => {
                    return Err(OptionError {
                        field: "config.leef_delimiter".into(),
                        message: "must be exactly one character".into(),
                    })
                }
            }
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("event {offset} was read without its raw form")]
    RawMissing { offset: u64 },
    #[error("format `{0}` is not built yet")]
    NotBuilt(&'static str),
}

/// One event as one record (no trailing newline).
pub fn encode(format: Format, event: &StoredEvent, options: &FormatOptions) -> Result<Vec<u8>, FormatError> {
    let _ = options;
    match format {
        Format::Json => Ok(event.to_json().into_bytes()),
        Format::Raw => event
            .raw
            .as_ref()
            .map(|r| r.clone().into_bytes())
            .ok_or(FormatError::RawMissing { offset: event.offset }),
        // FORMAT HELPER: cef.rs, leef.rs, ocsf.rs.
        Format::Cef => Err(FormatError::NotBuilt("cef")),
        Format::Leef => Err(FormatError::NotBuilt("leef")),
        Format::Ocsf => Err(FormatError::NotBuilt("ocsf")),
    }
}
