//! Format tests: snapshots over representative events, and property tests that put hostile
//! strings in every field and read the output back with a parser we did not write (cefp for
//! CEF, the OCSF JSON Schema for OCSF) or a strict reader (LEEF, for which no parser exists).
//!
//! The Python peers live in `tests/peers` and are installed by `scripts/test-peers`; without
//! them these tests FAIL rather than skip, so a broken encoder cannot pass unnoticed.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod cef;
mod common;
mod leef;
mod ocsf;
