//! REST errors as GraphQL errors: the same code and message, so a client handles both alike.
//!
//! `extensions.code` is REST's `error.code`; every member of REST's `error.detail` is copied
//! beside it (`field` for `invalid_request`, `parameter`, `attempt`, …), plus `status`, the
//! HTTP status REST answers, for clients that map errors by status.

use async_graphql::{ErrorExtensionValues, ServerError};
use serde_json::Value;

use crate::error::ApiError;

/// The code of errors the GraphQL layer raises before any resolver runs (a document that does
/// not parse or validate, too deep, too costly, a wrong argument type): the request is wrong.
pub const INVALID_REQUEST: &str = "invalid_request";

pub fn from_api(e: ApiError) -> async_graphql::Error {
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", e.code);
    ext.set("status", i32::from(e.status.as_u16()));
    if let Value::Object(detail) = e.detail {
        for (k, v) in detail {
            // `code` and `status` are ours; a detail member of that name cannot replace them.
            if k == "code" || k == "status" {
                continue;
            }
            match async_graphql::Value::from_json(v) {
                Ok(v) => ext.set(k, v),
                Err(err) => tracing::warn!(error = %err, member = %k, "an error detail could not be shown"),
            }
        }
    }
    async_graphql::Error {
        message: e.message,
        source: None,
        extensions: Some(ext),
    }
}

/// A REST answer that does not read as its GraphQL type: a bug between the two layers, logged
/// here; the client gets REST's `internal` code without internals.
pub fn projection(what: &str, e: serde_json::Error) -> async_graphql::Error {
    tracing::error!(error = %e, what, "a REST answer does not match its GraphQL type");
    from_api(ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("the {what} could not be shown"),
    ))
}

/// `?` from REST results into GraphQL results.
pub trait IntoGraphql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGraphql<T> for Result<T, ApiError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(from_api)
    }
}

/// Gives every error that has no code (raised by the GraphQL engine itself, not by a resolver)
/// the code `invalid_request`, so every error a client sees has one.
pub fn ensure_codes(errors: &mut [ServerError]) {
    for e in errors {
        let ext = e.extensions.get_or_insert_with(ErrorExtensionValues::default);
        if ext.get("code").is_none() {
            ext.set("code", INVALID_REQUEST);
        }
    }
}
