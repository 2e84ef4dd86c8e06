//! OTLP/HTTP bodies: protobuf or JSON, optionally gzip-compressed (opentelemetry-proto
//! `docs/specification.md`, "OTLP/HTTP").

use std::io::Read;

use prost::Message;

use crate::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse};

pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// `google.rpc.Code.INVALID_ARGUMENT`: what a malformed body is.
pub const CODE_INVALID_ARGUMENT: i32 = 3;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a media type (without parameters, lowercase) names, if OTLP has it.
    pub fn from_media_type(media_type: &str) -> Option<Encoding> {
        match media_type {
            CONTENT_TYPE_PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
            CONTENT_TYPE_JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => CONTENT_TYPE_PROTOBUF,
            Encoding::Json => CONTENT_TYPE_JSON,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Decompressed, the body is larger than the request limit (a 413, not a 400).
    #[error("the decompressed body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the gzip body could not be decompressed: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("not a valid protobuf ExportLogsServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("not a valid OTLP/JSON ExportLogsServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not encode the answer: {0}")]
    Encode(String),
}

/// Inflates a gzip body, refusing to grow it past `limit` bytes (a small body can inflate to
/// gigabytes).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(WireError::Gzip)?;
    if out.len() > limit {
        return Err(WireError::TooLarge { limit });
    }
    Ok(out)
}

/// Compresses `body` with gzip (what the `otlp` sink sends by default).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Decodes an uncompressed request body.
pub fn decode_request(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, WireError> {
    match encoding {
        Encoding::Protobuf => Ok(ExportLogsServiceRequest::decode(body)?),
        Encoding::Json => {
            let mut value: serde_json::Value = serde_json::from_slice(body)?;
            normalize_json(&mut value);
            Ok(serde_json::from_value(value)?)
        }
    }
}

/// OTLP/JSON lets 64-bit integers be numbers or decimal strings; the generated serde code reads
/// only strings for the timestamps, so numbers are turned into strings first.
fn normalize_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::Number(n) if matches!(key.as_str(), "timeUnixNano" | "observedTimeUnixNano") => {
                        *v = Value::String(n.to_string());
                    }
                    _ => normalize_json(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_json),
        _ => {}
    }
}

/// Encodes a request (what the `otlp` sink sends), uncompressed.
pub fn encode_request(request: &ExportLogsServiceRequest, encoding: Encoding) -> Result<Vec<u8>, WireError> {
    match encoding {
        Encoding::Protobuf => Ok(request.encode_to_vec()),
        Encoding::Json => serde_json::to_vec(request).map_err(|e| WireError::Encode(e.to_string())),
    }
}

/// The success answer, with `partial_success` when records were refused.
pub fn encode_response(rejected: i64, message: Option<String>, encoding: Encoding) -> Vec<u8> {
    let response = ExportLogsServiceResponse {
        partial_success: (rejected > 0 || message.is_some()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: message.unwrap_or_default(),
        }),
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            // Written by hand (it is two fields) so `rejectedLogRecords` is a plain number.
            let mut out = serde_json::Map::new();
            if let Some(p) = response.partial_success {
                out.insert(
                    "partialSuccess".into(),
                    serde_json::json!({"rejectedLogRecords": p.rejected_log_records, "errorMessage": p.error_message}),
                );
            }
            serde_json::Value::Object(out).to_string().into_bytes()
        }
    }
}

/// Decodes a receiver's success answer (what the `otlp` sink reads): `None` for an empty or
/// unreadable body, which OTLP counts as full success.
pub fn decode_response(body: &[u8], encoding: Encoding) -> Option<ExportLogsPartialSuccess> {
    if body.is_empty() {
        return None;
    }
    match encoding {
        Encoding::Protobuf => ExportLogsServiceResponse::decode(body).ok()?.partial_success,
        Encoding::Json => {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            let p = v.get("partialSuccess")?;
            let rejected = match p.get("rejectedLogRecords") {
                Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
                _ => 0,
            };
            Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: p
                    .get("errorMessage")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            })
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP failure answer. The well-known message has no
/// generated type in opentelemetry-proto; this derive carries its field numbers (code = 1,
/// message = 2; `details` is not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A failure answer's body in the request's encoding.
pub fn encode_status(code: i32, message: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => Status {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogRecord, ResourceLogs, ScopeLogs};

    fn request() -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: 1_780_000_000_123_456_789,
                        event_name: "auth.login".into(),
                        trace_id: vec![1; 16],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn protobuf_and_json_round_trip() {
        for enc in [Encoding::Protobuf, Encoding::Json] {
            let body = encode_request(&request(), enc).unwrap();
            assert_eq!(decode_request(&body, enc).unwrap(), request(), "{enc:?}");
        }
        let json = String::from_utf8(encode_request(&request(), Encoding::Json).unwrap()).unwrap();
        assert!(
            json.contains("\"traceId\":\"01010101010101010101010101010101\""),
            "{json}"
        );
        assert!(json.contains("\"timeUnixNano\":\"1780000000123456789\""), "{json}");
    }

    #[test]
    fn json_timestamps_may_be_numbers() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":1780000000123456789,"severityNumber":9,"unknownField":1}]}]}]}"#;
        let req = decode_request(body, Encoding::Json).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            (rec.time_unix_nano, rec.severity_number),
            (1_780_000_000_123_456_789, 9)
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode_request(b"\xff\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode_request(b"{\"resourceLogs\": 5}", Encoding::Json).is_err());
        assert!(decode_request(b"nope", Encoding::Json).is_err());
    }

    #[test]
    fn gzip_is_bounded() {
        let big = vec![b'a'; 100_000];
        let z = gzip(&big);
        assert_eq!(gunzip(&z, 100_000).unwrap(), big);
        assert!(matches!(gunzip(&z, 99_999), Err(WireError::TooLarge { .. })));
        assert!(matches!(gunzip(b"not gzip", 10), Err(WireError::Gzip(_))));
    }

    #[test]
    fn answers() {
        assert!(encode_response(0, None, Encoding::Protobuf).is_empty());
        assert_eq!(encode_response(0, None, Encoding::Json), b"{}");
        for enc in [Encoding::Protobuf, Encoding::Json] {
            let body = encode_response(2, Some("log record 1: bad".into()), enc);
            let p = decode_response(&body, enc).unwrap();
            assert_eq!(
                (p.rejected_log_records, p.error_message.as_str()),
                (2, "log record 1: bad")
            );
        }
        let status = Status::decode(&encode_status(3, "bad", Encoding::Protobuf)[..]).unwrap();
        assert_eq!((status.code, status.message.as_str()), (3, "bad"));
    }
}
