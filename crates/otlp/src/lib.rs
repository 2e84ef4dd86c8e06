//! OpenTelemetry logs in and out of auditrelay (api.md "OTLP logs in", the `otlp` sink kind).
//!
//! Three jobs, one module each, all pure (no I/O, no store):
//! - [`wire`]: an OTLP/HTTP body (protobuf or JSON, optionally gzip) to the generated
//!   `ExportLogsServiceRequest` and back, plus the answers (`ExportLogsServiceResponse`,
//!   `google.rpc.Status`).
//! - [`to_event`]: one `LogRecord` (with its resource and scope) to one auditrelay event, as the
//!   JSON object `POST /v1/events` takes; nothing dropped (unmapped data lands under
//!   `metadata.otel`).
//! - [`from_event`]: the inverse, a stored event to a `LogRecord`, grouped by resource and scope
//!   into one request, so OTLP → auditrelay → OTLP keeps the name, attributes, resource and scope.
//!
//! The messages are the official generated types from `opentelemetry-proto` (prost).

pub mod any_value;
pub mod from_event;
pub mod to_event;
pub mod wire;

pub use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
pub use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use wire::{Encoding, WireError};
