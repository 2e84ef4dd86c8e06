//! What the integration tests of several crates share: the hand-written loopback receivers
//! (for fault injection and recording) and the real third-party peers the tests start (moto,
//! tansu, syslog-ng) with the helpers to run them. Test support only: never a dependency of
//! a shipped crate.
#![allow(clippy::unwrap_used)] // test support: a panic is the failure report

pub mod arrivals;
pub mod azure_receiver;
pub mod fault_receiver;
pub mod hec_receiver;
pub mod moto;
pub mod paths;
pub mod peer_process;
pub mod recording_receiver;
pub mod rsyslog;
pub mod scripted_receiver;
pub mod siem_receiver;
pub mod syslog_ng;
pub mod tansu;

pub use paths::{peer_python, repo_root};
