//! The server's integration tests, one binary: each module spawns the real `auditrelay` binary on loopback (`common`) and checks one part of the contract. One binary links the world once instead of once per file.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod abuse_limits;
mod aws_sinks;
mod bad_input;
mod common;
mod concurrency;
mod console;
mod crash;
mod delivery_faults;
mod delivery_operations;
mod delivery_support;
mod filter_transform;
mod graphql;
mod ingest_and_consume;
mod integrity;
mod isolation_matrix;
mod openapi;
mod otlp;
mod otlp_sink;
mod postgres;
mod pubsub_sink;
mod retention;
mod schema_fuzz;
mod secrets_at_rest;
mod self_audit;
mod siem_matrix;
mod sink_kinds;
mod sinks_api;
mod sources_api;
mod sources_outbox;
mod sources_syslog;
mod ssrf;
mod three_nodes;
mod tls_serve;
mod token_rotation;
mod transports;
