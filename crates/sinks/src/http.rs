//! Shared HTTP plumbing for HTTP sinks: the client (no proxy, no redirects, SSRF-guarding
//! resolver), save-time and send-time URL checks, and the classification of a response.
// HELPER: implement (see the task description).
