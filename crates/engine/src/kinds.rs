//! `GET /v1/sink-kinds`: each sink kind as the sinks crate describes it (formats, secrets, the
//! JSON Schema of `config`), plus the definition defaults, which live here with the rest of the
//! sink definition ([`crate::spec`]).

use serde::Serialize;

use auditrelay_sinks::SinkKindInfo;

use crate::spec::{
    default_batch, BatchPolicy, BreakerPolicy, OnExhausted, RetryPolicy, DEFAULT_BREAKER, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RETRY, DEFAULT_TIMEOUT_MS,
};

/// A sink kind and what a definition of it gets for every field left out.
#[derive(Debug, Clone, Serialize)]
pub struct SinkKind {
    #[serde(flatten)]
    pub info: SinkKindInfo,
    pub defaults: SinkDefaults,
}

/// The value [`crate::spec::SinkSpec::with_defaults`] gives each optional field of a definition.
#[derive(Debug, Clone, Serialize)]
pub struct SinkDefaults {
    pub format: &'static str,
    pub event_types: [&'static str; 0],
    pub start_at: &'static str,
    pub batch: BatchPolicy,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
    pub on_exhausted: OnExhausted,
    pub breaker: BreakerPolicy,
}

/// Every sink kind built in, with its defaults.
pub fn sink_kinds() -> Vec<SinkKind> {
    auditrelay_sinks::sink_kinds()
        .into_iter()
        .map(|info| SinkKind {
            defaults: SinkDefaults {
                format: info.default_format,
                event_types: [],
                start_at: crate::spec::DEFAULT_START_AT,
                batch: default_batch(info.kind),
                retry: DEFAULT_RETRY,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                on_exhausted: crate::spec::DEFAULT_ON_EXHAUSTED,
                breaker: DEFAULT_BREAKER,
            },
            info,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_what_a_minimal_definition_gets() {
        for kind in sink_kinds() {
            let spec = crate::spec::SinkSpec::with_defaults("x", kind.info.kind, kind.info.default_format);
            let d = &kind.defaults;
            assert_eq!(spec.format, d.format, "{}", kind.info.kind);
            assert_eq!(spec.start_at.as_str(), d.start_at);
            assert!(spec.event_types.is_empty());
            assert_eq!((spec.batch, spec.retry, spec.breaker), (d.batch, d.retry, d.breaker));
            assert_eq!(
                (spec.timeout_ms, spec.max_in_flight, spec.on_exhausted),
                (d.timeout_ms, d.max_in_flight, d.on_exhausted)
            );
            let answer = serde_json::to_value(&kind).expect("serialises");
            assert_eq!(answer["defaults"]["on_exhausted"], "dead_letter");
            assert_eq!(answer["defaults"]["start_at"], "now");
            assert!(answer["config_schema"]["$schema"].is_string());
            assert!(answer["secrets"].is_array());
        }
        let lake = sink_kinds()
            .into_iter()
            .find(|k| k.info.kind == "security_lake")
            .expect("security_lake");
        assert_eq!(lake.defaults.batch.max_bytes, 64 * 1024 * 1024);
        assert_eq!(lake.defaults.batch.flush_interval_ms, 300_000);
    }
}
