//! Shared HTTP plumbing for HTTP sinks: the client (no proxy, no redirects, SSRF-guarding
//! resolver), save-time and send-time URL checks, and the classification of a response.

mod answer;
mod classify;
mod client;
mod send;
mod ssrf;

pub use answer::{exchange, Answer};
pub use classify::{classify, retry_after, MAX_RETRY_AFTER};
pub use client::{client, ClientError, CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT, USER_AGENT};
pub use send::{report_response, send, transport_error, ERROR_SNIPPET_BYTES};
pub use ssrf::{
    check_url, check_url_literal, forbidden_reason, is_forbidden, parse_url, PrivateAddressRefused, RESOLVE_TIMEOUT,
};
