//! `GET /v1/export`: a tenant's events between two bounds, streamed page by page so that an
//! export of any size runs in constant memory (docs/integrity.md, "Compliance export").

use auditrelay_core::StoredEvent;
use auditrelay_store::{ReadQuery, Store};
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;

use super::consume::{parse_types, reading_tenant};
use super::doc;
use super::extract::ApiQuery;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Events read per step; the response holds at most one page in memory.
const PAGE: usize = 1000;

/// The CSV header: the last column is the whole event as the `json` format delivers it.
pub const CSV_HEADER: &str = "offset,id,type,occurred_at,received_at,chain,event\r\n";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The tenant. Required with the operator token (else `400 invalid_parameter`); a tenant
    /// key may omit it or give its own tenant (another answers `404`).
    tenant: Option<String>,
    /// The first event: an offset (inclusive), or an RFC 3339 time (the first event received
    /// at or after it). Default: the start of the log.
    #[param(value_type = Option<ExportBound>)]
    from: Option<String>,
    /// The last event: an offset (inclusive), or an RFC 3339 time (events received before it).
    /// Default and upper bound: the log head when the export starts.
    #[param(value_type = Option<ExportBound>)]
    to: Option<String>,
    /// Comma-separated type globs, as for `GET /v1/events`.
    #[param(pattern = r"^[a-z0-9_.*?-]{1,128}(,[a-z0-9_.*?-]{1,128})*$", example = "decision.*")]
    types: Option<String>,
    /// `ndjson` (default) or `csv`.
    #[param(value_type = Option<ExportFormatName>)]
    format: Option<String>,
}

super::doc::json_schema! {
    /// An offset or an RFC 3339 time.
    pub struct ExportBound = {
        "description": "An offset or an RFC 3339 time.",
        "oneOf": [
            { "type": "integer", "minimum": 0, "maximum": 18446744073709551615u64 },
            { "type": "string", "format": "date-time" }
        ]
    }
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used.
pub enum ExportFormatName {
    Ndjson,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Ndjson,
    Csv,
}

/// `from` (inclusive) as the cursor to read after: an offset, or the first event received at or
/// after an RFC 3339 time.
async fn start_cursor(store: &dyn Store, tenant: &str, from: Option<&str>) -> ApiResult<u64> {
    match from.map(str::trim) {
        None | Some("") => Ok(0),
        Some(s) => match s.parse::<u64>() {
            Ok(offset) => Ok(offset.saturating_sub(1)),
            Err(_) if auditrelay_core::time::parse_rfc3339(s).is_some() => Ok(store.offset_at_time(tenant, s).await?),
            Err(_) => Err(ApiError::invalid_param(
                "from",
                format!("`from` must be an offset or an RFC 3339 time, got `{s}`"),
            )),
        },
    }
}

/// `to` (inclusive for an offset; for a time, events received before it) as the last offset.
async fn end_offset(store: &dyn Store, tenant: &str, to: Option<&str>) -> ApiResult<u64> {
    let head = store.head(tenant).await?;
    let end = match to.map(str::trim) {
        None | Some("") => head,
        Some(s) => match s.parse::<u64>() {
            Ok(offset) => offset,
            Err(_) if auditrelay_core::time::parse_rfc3339(s).is_some() => store.offset_at_time(tenant, s).await?,
            Err(_) => {
                return Err(ApiError::invalid_param(
                    "to",
                    format!("`to` must be an offset or an RFC 3339 time, got `{s}`"),
                ))
            }
        },
    };
    // The head at the start bounds the export: it is a snapshot, not a tail.
    Ok(end.min(head))
}

/// A tenant's events between two bounds, for compliance (docs/integrity.md): each event as the
/// `json` format delivers it, with its `chain`. Streamed in constant memory; the head at the
/// start bounds it (a snapshot, not a tail).
#[utoipa::path(
    get,
    path = "/v1/export",
    operation_id = "exportEvents",
    tag = "integrity",
    params(ExportQuery),
    responses(
        (status = 200, description = "The events: NDJSON (one StoredEvent per line), or CSV with the header `offset,id,type,occurred_at,received_at,chain,event` (the last column is the whole event as JSON).",
            content(
                (String = "application/x-ndjson"),
                (String = "text/csv; charset=utf-8"),
            )),
        doc::QueryReadErrors,
    ),
    security(("bearerAuth" = ["read"])),
)]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let tenant = reading_tenant(&state, &principal, q.tenant.as_deref()).await?;
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("ndjson") => ExportFormat::Ndjson,
        Some("csv") => ExportFormat::Csv,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "format",
                format!("`format` must be `ndjson` or `csv`, got `{other}`"),
            ))
        }
    };
    let filter = parse_types(q.types.as_deref())?;
    let after = start_cursor(state.store.as_ref(), &tenant, q.from.as_deref()).await?;
    let end = end_offset(state.store.as_ref(), &tenant, q.to.as_deref()).await?;

    let query = ReadQuery {
        tenant,
        after,
        limit: PAGE,
        filter,
    };
    let header_chunk: Option<std::io::Result<Bytes>> =
        (format == ExportFormat::Csv).then(|| Ok(Bytes::from_static(CSV_HEADER.as_bytes())));
    // The first page is read before answering, so a store that cannot serve the range answers
    // with a proper error status instead of a stream that breaks off before it began.
    let first = if after < end {
        Some(state.store.read(query.clone()).await?)
    } else {
        None
    };
    let pages = futures::stream::try_unfold(
        (state.store.clone(), query, end, first),
        move |(store, query, end, prefetched): (Arc<dyn Store>, ReadQuery, u64, Option<Vec<StoredEvent>>)| async move {
            if query.after >= end {
                return Ok(None);
            }
            let events = match prefetched {
                Some(events) => events,
                None => store
                    .read(query.clone())
                    .await
                    .map_err(|e| std::io::Error::other(format!("reading the log for export: {e}")))?,
            };
            let mut out = String::with_capacity(events.iter().map(|e| e.body.len() + 200).sum());
            let mut last = end; // no event left: the range is done
            for ev in events.iter().take_while(|e| e.offset <= end) {
                render(&mut out, ev, format);
                last = ev.offset;
            }
            if events.len() < query.limit {
                last = end;
            }
            let next = ReadQuery { after: last, ..query };
            Ok(Some((Bytes::from(out), (store, next, end, None))))
        },
    );
    let body = Body::from_stream(futures::StreamExt::chain(futures::stream::iter(header_chunk), pages));
    let content_type = match format {
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn render(out: &mut String, ev: &StoredEvent, format: ExportFormat) {
    let json = ev.to_json();
    match format {
        ExportFormat::Ndjson => out.push_str(&json),
        ExportFormat::Csv => {
            let times = ev.times();
            out.push_str(&ev.offset.to_string());
            for field in [
                ev.id.as_str(),
                ev.event_type.as_str(),
                times.occurred_at.as_deref().unwrap_or(""),
                times.received_at.as_deref().unwrap_or(""),
                ev.chain_hex().as_deref().unwrap_or(""),
                &json,
            ] {
                out.push(',');
                push_csv_field(out, field);
            }
            out.push('\r');
        }
    }
    out.push('\n');
}

/// RFC 4180: quote a field that holds a comma, quote or line break; double inner quotes.
fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}
