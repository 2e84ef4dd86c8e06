//! Why a request body was refused. Its own module so that parsing (`ingest`) and field checks
//! (`validate`) both depend on it without depending on each other.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("the request body is empty or holds no events")]
    Empty,
    #[error("the request body is not valid UTF-8 (first bad byte at offset {byte_offset})")]
    InvalidUtf8 { byte_offset: usize },
    #[error("malformed JSON{}: {message}", location(*.index, *.line, *.column))]
    MalformedJson {
        /// Event index (arrays, NDJSON) when the error is inside one event.
        index: Option<usize>,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("event {index}: field `{field}`: {message}")]
    InvalidEvent {
        index: usize,
        field: String,
        message: String,
    },
    #[error("event {index} is {size} bytes of JSON; the limit is {limit}")]
    EventTooLarge { index: usize, size: usize, limit: usize },
    #[error("the request holds {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("the request body is {size} bytes; the limit is {limit}")]
    RequestTooLarge { size: usize, limit: usize },
}

fn location(index: Option<usize>, line: usize, column: usize) -> String {
    match index {
        Some(i) => format!(" in event {i} at line {line} column {column}"),
        None => format!(" at line {line} column {column}"),
    }
}

impl IngestError {
    /// Whether the error is about size (HTTP 413) rather than content (HTTP 400).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            IngestError::EventTooLarge { .. } | IngestError::TooManyEvents { .. } | IngestError::RequestTooLarge { .. }
        )
    }

    /// Stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Empty => "empty_request",
            IngestError::InvalidUtf8 { .. } => "invalid_utf8",
            IngestError::MalformedJson { .. } => "invalid_json",
            IngestError::InvalidEvent { .. } => "invalid_event",
            IngestError::EventTooLarge { .. } => "event_too_large",
            IngestError::TooManyEvents { .. } => "too_many_events",
            IngestError::RequestTooLarge { .. } => "request_too_large",
        }
    }
}
