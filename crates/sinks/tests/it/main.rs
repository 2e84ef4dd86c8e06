//! The sinks' integration tests, one binary: each module drives one sink kind against a loopback receiver or a real peer (`auditrelay-testkit`).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;
mod config_schema;
mod datadog;
mod elastic;
mod generic_https;
mod http;
#[cfg(feature = "kafka")]
mod kafka;
mod s3;
mod sentinel_config;
mod sentinel_data_collector;
mod sentinel_logs_ingestion;
mod sentinel_support;
mod splunk_hec;
mod syslog;
mod webhook;
