//! Size limits on ingest (api.md "Limits"). Configurable; these are the documented defaults.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single event, in bytes of JSON as the client sent it.
    pub max_event_bytes: usize,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Most events in one request.
    pub max_request_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 64 * 1024,
            max_request_bytes: 5 * 1024 * 1024,
            max_request_events: 10_000,
        }
    }
}
