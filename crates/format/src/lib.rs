//! Wire formats: pure functions from one stored event to the bytes of one record. No I/O
//! (invariant *`core` and `format` do no I/O*). Sinks frame records into requests (arrays, NDJSON, HEC envelopes); a format
//! knows nothing of transports.

use auditrelay_core::StoredEvent;
use serde_json::{Map, Value};

mod cef;
mod leef;
mod ocsf;
mod text;
mod view;

pub use leef::DELIMITERS as LEEF_DELIMITERS;
pub use ocsf::{classify as ocsf_classify, Class as OcsfClass};

/// Declares [`Format`] with each variant's name, so that the enum, its names ([`Format::parse`],
/// [`Format::name`]) and the list of every format ([`Format::ALL`], which the API document's
/// `SinkFormat` enum is built from) come from one list: a new format cannot be left out of any.
macro_rules! formats {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Format {
            $($(#[$doc])* $variant,)*
        }

        impl Format {
            /// Every format, in the order the API document lists them.
            pub const ALL: &'static [Format] = &[$(Format::$variant,)*];

            pub fn parse(name: &str) -> Option<Format> {
                match name {
                    $($name => Some(Format::$variant),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Format::$variant => $name,)*
                }
            }
        }
    };
}

formats! {
    /// The canonical event (api.md), `offset` first.
    Json = "json",
    /// ArcSight CEF:0.
    Cef = "cef",
    /// IBM QRadar LEEF 2.0.
    Leef = "leef",
    /// OCSF (API Activity 6003, Authentication 3002, Account Change 3001).
    Ocsf = "ocsf",
    /// The event as the log stores it: the canonical event without `offset` and `chain`, in
    /// RFC 8785 (JCS) form (members sorted, no whitespace, numbers as ECMAScript prints them),
    /// byte for byte as rendered at ingest. Not the client's bytes: each event is stored once.
    /// (Events stored by earlier versions keep the member order they were stored with.)
    Raw = "raw",
    /// OpenTelemetry: the event as one OTLP `LogRecord` (the inverse of the OTLP ingest
    /// mapping), shown as an OTLP/JSON `ExportLogsServiceRequest`; the `otlp` sink groups a
    /// batch's records by resource and scope and sends protobuf or JSON.
    Otlp = "otlp",
}

impl Format {
    /// Whether a record is a JSON object (it can be embedded as JSON; otherwise as a string).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::Raw | Format::Ocsf | Format::Otlp)
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
    /// LEEF 2.0 attribute delimiter: one of [`LEEF_DELIMITERS`] (`from_config` refuses others;
    /// the encoder falls back to `^` for a hand-built invalid one).
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
        let mut o = FormatOptions::default();
        let err = |k: &str, message: &str| OptionError {
            field: format!("config.{k}"),
            message: message.into(),
        };
        // Names end up in record headers. The formats would neutralise control characters
        // anyway, but a name that needs it is a configuration mistake worth reporting.
        let name = |k: &str| -> Result<Option<String>, OptionError> {
            match config.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s))
                    if !s.is_empty() && s.len() <= MAX_OPTION_LEN && !s.chars().any(text::is_unsafe) =>
                {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(err(
                    k,
                    "must be a non-empty string of at most 128 bytes without control characters",
                )),
            }
        };
        if let Some(v) = name("vendor")? {
            o.vendor = v;
        }
        if let Some(v) = name("product")? {
            o.product = v;
        }
        if let Some(v) = name("product_version")? {
            o.product_version = v;
        }
        if let Some(v) = name("ocsf_version")? {
            if !is_version(&v) {
                return Err(err(
                    "ocsf_version",
                    "must be a schema version such as 1.8.0 or 1.9.0-dev",
                ));
            }
            o.ocsf_version = v;
        }
        // Read apart from the names: a literal tab is a valid delimiter.
        match config.get("leef_delimiter") {
            None | Some(Value::Null) => {}
            Some(v) => {
                o.leef_delimiter = v.as_str().and_then(parse_delimiter).ok_or_else(|| {
                    err(
                        "leef_delimiter",
                        "must be one of ^ | ~ ; , ! # $ % & * ? @ or a tab, as the character or in LEEF's hex form (x5E, 0x09)",
                    )
                })?;
            }
        }
        Ok(o)
    }
}

/// Longest name a format option may have.
const MAX_OPTION_LEN: usize = 128;

/// `MAJOR.MINOR.PATCH` with an optional `-suffix` of letters, digits and dots (`1.9.0-dev`).
fn is_version(v: &str) -> bool {
    let (core, suffix) = match v.split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (v, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && suffix.is_none_or(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
}

/// A LEEF delimiter as LEEF writes it: the character itself, or `x`/`0x` and 1–4 hex digits.
fn parse_delimiter(v: &str) -> Option<char> {
    let hex = v.strip_prefix("0x").or_else(|| v.strip_prefix('x'));
    let c = match hex {
        Some(h) if (1..=4).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            char::from_u32(u32::from_str_radix(h, 16).ok()?)?
        }
        _ => {
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => return None,
            }
        }
    };
    LEEF_DELIMITERS.contains(&c).then_some(c)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Kept for API stability: every format is built now, so `encode` no longer returns it.
    #[error("format `{0}` is not built yet")]
    NotBuilt(&'static str),
    /// The record could not be serialized (the OTLP encoder's own failure).
    #[error("cannot encode the record: {0}")]
    Encode(String),
}

/// One event as one record (no trailing newline).
pub fn encode(format: Format, event: &StoredEvent, options: &FormatOptions) -> Result<Vec<u8>, FormatError> {
    match format {
        Format::Json => Ok(event.to_json().into_bytes()),
        Format::Raw => Ok(event.body.clone().into_bytes()),
        Format::Cef => Ok(cef::encode(&view::EventView::new(event), options).into_bytes()),
        Format::Leef => Ok(leef::encode(&view::EventView::new(event), options).into_bytes()),
        Format::Ocsf => Ok(ocsf_record(event, options).to_string().into_bytes()),
        Format::Otlp => {
            let request = auditrelay_otlp::from_event::to_request(std::slice::from_ref(event));
            auditrelay_otlp::wire::encode_request(&request, auditrelay_otlp::Encoding::Json)
                .map_err(|e| FormatError::Encode(e.to_string()))
        }
    }
}

/// The OCSF record as a JSON value, for sinks that embed it in an envelope rather than as bytes.
pub fn ocsf_record(event: &StoredEvent, options: &FormatOptions) -> Value {
    ocsf::encode(&view::EventView::new(event), options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn options_default_and_override() {
        assert_eq!(FormatOptions::from_config(&Map::new()), Ok(FormatOptions::default()));
        let o = FormatOptions::from_config(&config(json!({
            "vendor": "Acme", "product": "Audit", "product_version": "2.1", "ocsf_version": "1.9.0-dev",
            "leef_delimiter": "x09", "other": 1
        })))
        .unwrap();
        assert_eq!(
            (
                o.vendor.as_str(),
                o.product.as_str(),
                o.product_version.as_str(),
                o.ocsf_version.as_str()
            ),
            ("Acme", "Audit", "2.1", "1.9.0-dev")
        );
        assert_eq!(o.leef_delimiter, '\t');
    }

    #[test]
    fn leef_delimiter_forms() {
        let d = |v: &str| FormatOptions::from_config(&config(json!({ "leef_delimiter": v }))).map(|o| o.leef_delimiter);
        assert_eq!(d("^"), Ok('^'));
        assert_eq!(d("|"), Ok('|'));
        assert_eq!(d("\t"), Ok('\t'));
        assert_eq!(d("x5E"), Ok('^'));
        assert_eq!(d("0x7c"), Ok('|'));
        assert_eq!(d("x0009"), Ok('\t'));
        for bad in [
            "", "^^", "=", "a", " ", "x", "0x", "x41", "x3D", "xD800", "x12345", "\n", "'", "-", ":",
        ] {
            let e = d(bad).unwrap_err();
            assert_eq!(e.field, "config.leef_delimiter", "{bad:?}");
        }
    }

    #[test]
    fn bad_options_name_their_field() {
        for (k, v) in [
            ("vendor", json!("")),
            ("vendor", json!("a\nb")),
            ("product", json!(5)),
            ("product_version", json!("x".repeat(129))),
            ("ocsf_version", json!("1.8")),
            ("ocsf_version", json!("v1.8.0")),
            ("ocsf_version", json!("1.8.0-")),
        ] {
            let e = FormatOptions::from_config(&config(json!({ k: v }))).unwrap_err();
            assert_eq!(e.field, format!("config.{k}"));
        }
    }
}
