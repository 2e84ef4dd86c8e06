//! The do-nothing HTTP ceiling: every request's body is read whole, then answered
//! `202 {"status":"accepted"}`. No parsing, no storage: what the loopback HTTP exchange and the
//! load generator cost by themselves.

use std::convert::Infallible;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::runs::Subject;

use super::{json_response, start as start_server, Ceiling};

/// Thread name prefix (CPU accounting).
pub const THREADS: &str = "ceil-noop";

pub fn start() -> Result<Ceiling> {
    start_server(Subject::NoopHttp, THREADS, handle, Vec::new(), None)
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.into_body().collect().await {
        Ok(_) => Ok(json_response(StatusCode::ACCEPTED, r#"{"status":"accepted"}"#.into())),
        Err(_) => Ok(json_response(StatusCode::BAD_REQUEST, r#"{"error":"body"}"#.into())),
    }
}
