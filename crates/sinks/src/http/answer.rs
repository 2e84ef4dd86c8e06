//! One HTTP exchange whose answer the sink reads itself: protocols that say more in the body
//! than in the status (Splunk HEC codes and ack ids, bulk item errors, token responses).

use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;

use super::send::{read_prefix, snippet, status_report, transport_error};
use crate::AttemptReport;

/// A receiver's answer: status, headers and up to the requested number of body bytes.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// A prefix of the body (all of it unless `truncated`).
    pub body: Vec<u8>,
    /// The body was longer than the limit given to [`exchange`].
    pub truncated: bool,
}

impl Answer {
    /// What [`super::send`] would report for this answer: the status classified, and for a
    /// failure `HTTP <status>: <body snippet>`. For answers the protocol says nothing more about.
    pub fn report(&self) -> AttemptReport {
        status_report(self.status, &self.headers, &self.body, self.truncated)
    }

    /// The body as one line for an error message (control characters replaced, capped at
    /// [`super::ERROR_SNIPPET_BYTES`]).
    pub fn snippet(&self) -> String {
        snippet(&self.body, self.truncated)
    }
}

/// Sends `request` once and reads up to `limit` bytes of the answer. A transport failure comes
/// back as the report [`super::send`] gives for it (`Retry`, or `Misconfigured` for the SSRF
/// guard's refusal), with the same path- and secret-free error text.
pub async fn exchange(request: RequestBuilder, limit: usize) -> Result<Answer, AttemptReport> {
    let mut response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let (body, truncated) = read_prefix(&mut response, limit).await;
    Ok(Answer {
        status,
        headers,
        body,
        truncated,
    })
}
