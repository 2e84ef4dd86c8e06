//! Shared HTTP plumbing for HTTP sinks: the client (no proxy, no redirects, SSRF-guarding
//! resolver), save-time and send-time URL checks, and the classification of a response.

mod answer;
mod cidr;
mod classify;
mod client;
mod ip_policy;
mod send;
mod ssrf;

pub use answer::{exchange, Answer};
pub use cidr::{Cidr, CidrError};
pub use classify::{classify, retry_after, MAX_RETRY_AFTER};
pub use client::{client, ClientError, CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT, USER_AGENT};
pub use ip_policy::{forbidden_reason, is_forbidden};
pub(crate) use send::{read_prefix, url_target};
pub use send::{report_response, send, transport_error, ERROR_SNIPPET_BYTES};
pub use ssrf::{
    check_host, check_url, check_url_literal, host_port, parse_url, refusal, PrivateAddressRefused, RESOLVE_TIMEOUT,
};
pub(crate) use ssrf::{validate_config_url, POLICY};
