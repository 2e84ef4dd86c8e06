//! The delivery latency scenario (`deliver-latency`): paced ingest on one connection, each event
//! stamped with `metadata.sent_ns`, ingest → receipt latency measured by the receiver (see
//! [`crate::deliver`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;

use super::{drain, finish, Completeness, SinkHandle, SinkSettings};
use crate::http::{Auth, Conn, Target};
use crate::load::{round1, round3};
use crate::procfs::CpuMeter;
use crate::receiver::{unix_nanos, Receiver};
use crate::stats::{Samples, Summary};

/// The latency scenario's tick at 100 events/s and above.
const LATENCY_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// Target events per second.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub server_pid: Option<u32>,
}

/// Events per request and the tick for `rate` events/s (see the module docs).
pub fn pacing(rate: f64) -> (usize, Duration) {
    let per_tick = (rate * LATENCY_TICK.as_secs_f64()).round().max(1.0);
    (per_tick as usize, Duration::from_secs_f64(per_tick / rate))
}

#[derive(Debug, Clone)]
pub struct LatencyResult {
    pub tenant: String,
    pub rate: f64,
    pub events_per_request: usize,
    pub tick: Duration,
    /// Events acknowledged (202), warm-up included.
    pub sent: u64,
    /// Events acknowledged per second over the measured period.
    pub sent_per_sec: f64,
    /// Ingest → receipt, events sent after the warm-up, first receipt of each.
    pub latency: Summary,
    /// POST → 202 of the measured period's requests.
    pub post_latency: Summary,
    /// Measured-period ticks whose request went out more than one tick behind schedule, and
    /// the worst lag behind schedule (measured period).
    pub late_ticks: u64,
    pub max_behind_schedule: Duration,
    /// The same during the warm-up.
    pub late_ticks_warmup: u64,
    pub max_behind_schedule_warmup: Duration,
    pub ingest_errors: u64,
    pub first_ingest_error: Option<String>,
    pub without_sent_ns: u64,
    pub clock_anomalies: u64,
    pub server_cpu_percent: Option<f64>,
    pub check: Completeness,
}

impl LatencyResult {
    pub fn to_json(&self) -> Value {
        json!({
            "tenant": self.tenant,
            "sink_max_events": 100,
            "sink_max_in_flight": 1,
            "target_events_per_s": self.rate,
            "events_per_request": self.events_per_request,
            "tick_ms": round3(self.tick.as_secs_f64() * 1000.0),
            "missed_tick_behavior": "burst",
            "sent_events": self.sent,
            "sent_events_per_s": round1(self.sent_per_sec),
            "latency": self.latency.to_json_ms(),
            "post_latency": self.post_latency.to_json_ms(),
            "late_ticks": self.late_ticks,
            "max_behind_schedule_ms": round3(self.max_behind_schedule.as_secs_f64() * 1000.0),
            "late_ticks_warmup": self.late_ticks_warmup,
            "max_behind_schedule_warmup_ms": round3(self.max_behind_schedule_warmup.as_secs_f64() * 1000.0),
            "ingest_errors": self.ingest_errors,
            "first_ingest_error": self.first_ingest_error,
            "events_without_sent_ns": self.without_sent_ns,
            "clock_anomalies": self.clock_anomalies,
            "server_cpu_pct": self.server_cpu_percent.map(round1),
            "delivery": self.check.to_json(),
        })
    }
}

/// A JSON array of `k` events numbered from `first`, each with `metadata.sent_ns`.
pub fn latency_body(first: u64, k: usize, sent_ns: u64) -> Bytes {
    let mut s = String::with_capacity(240 * k + 2);
    s.push('[');
    for i in 0..k as u64 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"type":"bench.latency","actor":{{"id":"usr_1"}},"action":"update","target":{{"type":"doc","id":"d1"}},"outcome":"success","metadata":{{"n":{},"sent_ns":{sent_ns}}}}}"#,
            first + i
        ));
    }
    s.push(']');
    Bytes::from(s)
}

#[derive(Deserialize)]
struct Accepted {
    accepted: u64,
}

pub async fn run_latency(
    target: Arc<Target>,
    operator: &Auth,
    key: Auth,
    tenant: &str,
    cfg: LatencyConfig,
) -> Result<LatencyResult> {
    let receiver = Receiver::start(true)?;
    let settings = SinkSettings {
        max_events: 100,
        max_in_flight: 1,
    };
    let mut sink = SinkHandle::create(&target, operator, tenant, settings, &receiver.url()).await?;
    let h0 = sink.wait_started().await?;

    let (k, tick) = pacing(cfg.rate);
    let mut conn = Conn::connect(target.clone()).await?;
    let mut post = Samples::with_capacity(1024);
    let (mut sent, mut sent_measured, mut n) = (0u64, 0u64, 0u64);
    // [warm-up, measured]
    let mut late_ticks = [0u64; 2];
    let mut max_behind = [Duration::ZERO; 2];
    let (mut errors, mut first_error) = (0u64, None::<String>);
    let mut note = |errors: &mut u64, e: String| {
        *errors += 1;
        if first_error.is_none() {
            first_error = Some(e);
        }
    };

    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let measure_from_ns = unix_nanos() + u64::try_from(cfg.warmup.as_nanos()).unwrap_or(u64::MAX);
    let mut cpu = None;
    let mut interval = tokio::time::interval_at(start.into(), tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        let scheduled: Instant = interval.tick().await.into();
        if scheduled >= end {
            break;
        }
        let now = Instant::now();
        if cpu.is_none() && now >= measure_from {
            cpu = cfg.server_pid.map(CpuMeter::start);
        }
        let behind = now.saturating_duration_since(scheduled);
        let phase = usize::from(scheduled >= measure_from);
        max_behind[phase] = max_behind[phase].max(behind);
        if behind > tick {
            late_ticks[phase] += 1;
        }
        if conn.is_closed() {
            match Conn::connect(target.clone()).await {
                Ok(c) => conn = c,
                Err(e) => {
                    note(&mut errors, format!("connect: {e:#}"));
                    continue;
                }
            }
        }
        let body = latency_body(n, k, unix_nanos());
        n += k as u64;
        let t = Instant::now();
        match conn.post_json("/v1/events", &key, body).await {
            Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                match resp.json::<Accepted>() {
                    Ok(a) if a.accepted == k as u64 => {}
                    Ok(a) => note(&mut errors, format!("202 with accepted={}, sent {k}", a.accepted)),
                    Err(e) => note(&mut errors, format!("{e:#}")),
                }
                sent += k as u64;
                if t >= measure_from {
                    sent_measured += k as u64;
                    post.record(t.elapsed());
                }
            }
            Ok(resp) => note(&mut errors, format!("HTTP {}: {}", resp.status, resp.body_snippet())),
            Err(e) => note(&mut errors, format!("request: {e:#}")),
        }
    }
    let ingest_end = Instant::now();
    let measured_secs = ingest_end.saturating_duration_since(measure_from).as_secs_f64();
    let h1 = sink.head().await?;
    let drained = drain(&receiver, tenant, h0 + 1, h1, ingest_end, cfg.drain_timeout).await;
    let server_cpu_percent = cpu.and_then(|m| m.percent());

    let (latency, without_sent_ns, clock_anomalies) = {
        let books = receiver.books();
        let mut s = Samples::with_capacity(books.latency.len());
        for sample in books
            .latency
            .iter()
            .filter(|l| l.sent_ns >= measure_from_ns && (h0 + 1..=h1).contains(&l.offset))
        {
            s.record(Duration::from_micros(sample.micros));
        }
        (s.summary(), books.without_sent_ns, books.clock_anomalies)
    };
    let check = finish(sink, &receiver, h0 + 1, h1, drained).await;
    Ok(LatencyResult {
        tenant: tenant.to_string(),
        rate: cfg.rate,
        events_per_request: k,
        tick,
        sent,
        sent_per_sec: if measured_secs > 0.0 {
            sent_measured as f64 / measured_secs
        } else {
            0.0
        },
        latency,
        post_latency: post.summary(),
        late_ticks: late_ticks[1],
        max_behind_schedule: max_behind[1],
        late_ticks_warmup: late_ticks[0],
        max_behind_schedule_warmup: max_behind[0],
        ingest_errors: errors,
        first_ingest_error: first_error,
        without_sent_ns,
        clock_anomalies,
        server_cpu_percent,
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use anyhow::Context;

    #[test]
    fn pacing_uses_ten_ms_ticks_down_to_one_event() {
        assert_eq!(pacing(1000.0), (10, Duration::from_millis(10)));
        assert_eq!(pacing(100_000.0), (1000, Duration::from_millis(10)));
        assert_eq!(pacing(100.0), (1, Duration::from_millis(10)));
        assert_eq!(pacing(50.0), (1, Duration::from_millis(20)));
        let (k, t) = pacing(1234.0);
        assert_eq!(k, 12);
        assert!((k as f64 / t.as_secs_f64() - 1234.0).abs() < 0.01);
    }

    #[test]
    fn latency_body_carries_sent_ns_on_every_event() -> Result<()> {
        let v: Value = serde_json::from_slice(&latency_body(5, 3, 1_700_000_000_123_456_789))?;
        let arr = v.as_array().context("array")?;
        assert_eq!(arr.len(), 3);
        for (i, e) in arr.iter().enumerate() {
            assert_eq!(e["metadata"]["n"], 5 + i as u64);
            assert_eq!(e["metadata"]["sent_ns"], 1_700_000_000_123_456_789u64);
            assert_eq!(e["type"], "bench.latency");
        }
        Ok(())
    }
}
