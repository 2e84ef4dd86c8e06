//! A sink that answers from a script instead of a socket, and remembers every batch it got.
//! Each call takes the next [`Step`] (or answers `Delivered` when the script is empty); a step
//! may hold its attempt until the test opens a [`Gate`], so tests decide the order in which
//! attempts in flight complete. Calls are published on a watch channel: tests wait for a
//! condition on them with a deadline instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auditrelay_engine::SinkFactory;
use auditrelay_sinks::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};
use serde_json::Value;
use tokio::sync::watch;

use crate::harness::DEADLINE;
use crate::journal::{Entry, Journal};

pub fn delivered() -> AttemptReport {
    AttemptReport::delivered(Some(200))
}

pub fn retry(after: Option<Duration>) -> AttemptReport {
    AttemptReport {
        outcome: Outcome::Retry { after },
        status: Some(503),
        error: Some("HTTP 503: scripted".into()),
    }
}

pub fn reject() -> AttemptReport {
    AttemptReport {
        outcome: Outcome::Reject,
        status: Some(400),
        error: Some("HTTP 400: scripted refusal".into()),
    }
}

pub fn misconfigured() -> AttemptReport {
    AttemptReport {
        outcome: Outcome::Misconfigured,
        status: Some(410),
        error: Some("HTTP 410: scripted gone".into()),
    }
}

pub fn partial(retry: Vec<usize>, after: Option<Duration>, rejected: Vec<(usize, &str)>) -> AttemptReport {
    AttemptReport {
        outcome: Outcome::Partial {
            retry,
            after,
            rejected: rejected.into_iter().map(|(i, why)| (i, why.to_owned())).collect(),
        },
        status: Some(200),
        error: Some("scripted partial answer".into()),
    }
}

/// Opens once; every attempt waiting on it then goes on.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Self {
        Gate(Arc::new(watch::Sender::new(false)))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut open = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = open.wait_for(|o| *o).await;
    }
}

pub enum Step {
    Answer(AttemptReport),
    /// Holds the attempt until the gate opens, then answers.
    Held(Gate, AttemptReport),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub batch_id: String,
    pub tenant: String,
    pub offsets: Vec<u64>,
    /// Which engine sent it (lease tests build one tagged sink per engine).
    pub node: Option<String>,
    pub received: Instant,
    /// When the answer was handed back; `None` while held, or if the engine dropped the
    /// attempt (timeout, crash).
    pub answered: Option<(Instant, Outcome)>,
}

pub struct ScriptedSink {
    sink_id: String,
    script: Mutex<VecDeque<Step>>,
    calls: watch::Sender<Vec<Call>>,
    journal: Arc<Journal>,
}

impl ScriptedSink {
    fn new(sink_id: &str, journal: Arc<Journal>) -> Self {
        ScriptedSink {
            sink_id: sink_id.to_owned(),
            script: Mutex::new(VecDeque::new()),
            calls: watch::Sender::new(Vec::new()),
            journal,
        }
    }

    /// Queues the answers of the next calls, in order.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().unwrap_or_else(|p| p.into_inner()).extend(steps);
    }

    /// Queues plain answers.
    pub fn answers(&self, reports: impl IntoIterator<Item = AttemptReport>) {
        self.script(reports.into_iter().map(Step::Answer));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Waits until `done` holds for the calls so far; panics naming `what` after [`DEADLINE`].
    pub async fn wait_calls(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let mut rx = self.calls.subscribe();
        let calls = match tokio::time::timeout(DEADLINE, rx.wait_for(|c| done(c))).await {
            Ok(Ok(calls)) => Some(calls.clone()),
            _ => None,
        };
        calls.unwrap_or_else(|| panic!("timed out waiting for {what}; calls: {:#?}", self.calls()))
    }

    /// `true` if `done` came to hold within `within` (for checks that something does *not*
    /// happen: the caller asserts `false`).
    pub async fn calls_within(&self, within: Duration, done: impl Fn(&[Call]) -> bool) -> bool {
        let mut rx = self.calls.subscribe();
        let happened = matches!(tokio::time::timeout(within, rx.wait_for(|c| done(c))).await, Ok(Ok(_)));
        happened
    }

    /// Waits until `n` calls were answered.
    pub async fn wait_answered(&self, n: usize) -> Vec<Call> {
        self.wait_calls(&format!("{n} answered calls"), |c| {
            c.iter().filter(|c| c.answered.is_some()).count() >= n
        })
        .await
    }

    async fn deliver_from(&self, node: Option<&str>, batch: &Batch<'_>) -> AttemptReport {
        let step = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or_else(|| Step::Answer(delivered()));
        let offsets: Vec<u64> = batch.events.iter().map(|e| e.offset).collect();
        let mut index = 0;
        self.calls.send_modify(|calls| {
            index = calls.len();
            calls.push(Call {
                batch_id: batch.batch_id.to_owned(),
                tenant: batch.tenant_id.to_owned(),
                offsets: offsets.clone(),
                node: node.map(str::to_owned),
                received: Instant::now(),
                answered: None,
            });
        });
        let report = match step {
            Step::Answer(report) => report,
            Step::Held(gate, report) => {
                gate.wait().await;
                report
            }
        };
        self.journal.push(Entry::Answered {
            sink: self.sink_id.clone(),
            tenant: batch.tenant_id.to_owned(),
            offsets,
            outcome: report.outcome.clone(),
        });
        self.calls.send_modify(|calls| {
            calls[index].answered = Some((Instant::now(), report.outcome.clone()));
        });
        report
    }
}

#[async_trait]
impl Sink for ScriptedSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        self.deliver_from(None, batch).await
    }
}

/// The same scripted sink, its calls marked with the engine that made them.
struct TaggedSink {
    node: String,
    inner: Arc<ScriptedSink>,
}

#[async_trait]
impl Sink for TaggedSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        self.inner.deliver_from(Some(&self.node), batch).await
    }
}

/// Hands each engine the scripted sink registered for the row's id.
pub struct ScriptedSinks {
    journal: Arc<Journal>,
    sinks: Mutex<HashMap<String, Arc<ScriptedSink>>>,
    /// The secrets each build got, opened from the sealed row.
    pub opened_secrets: Mutex<Vec<(String, Secrets)>>,
    /// Set for a factory that tags its sinks' calls with an engine's name.
    node: Option<String>,
}

impl ScriptedSinks {
    pub fn new(journal: Arc<Journal>) -> Self {
        ScriptedSinks {
            journal,
            sinks: Mutex::new(HashMap::new()),
            opened_secrets: Mutex::new(Vec::new()),
            node: None,
        }
    }

    pub fn register(&self, sink_id: &str) -> Arc<ScriptedSink> {
        let sink = Arc::new(ScriptedSink::new(sink_id, self.journal.clone()));
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sink_id.to_owned(), sink.clone());
        sink
    }

    /// The calls the sink registered for `sink_id` received (for failure messages).
    pub fn calls_of(&self, sink_id: &str) -> Vec<Call> {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        sinks.get(sink_id).map(|s| s.calls()).unwrap_or_default()
    }

    /// A factory over the same sinks whose calls are marked with `node`.
    pub fn tagged(&self, node: &str) -> ScriptedSinks {
        ScriptedSinks {
            journal: self.journal.clone(),
            sinks: Mutex::new(self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            opened_secrets: Mutex::new(Vec::new()),
            node: Some(node.to_owned()),
        }
    }
}

impl SinkFactory for ScriptedSinks {
    fn build(
        &self,
        sink_id: &str,
        _kind: &str,
        _config: &Value,
        secrets: &Secrets,
        _format: &str,
        _env: &SinkEnv,
    ) -> Result<Arc<dyn Sink>, ConfigError> {
        self.opened_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((sink_id.to_owned(), secrets.clone()));
        let sink = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sink_id)
            .cloned()
            .ok_or_else(|| ConfigError::new("kind", format!("no scripted sink registered for {sink_id}")))?;
        Ok(match &self.node {
            Some(node) => Arc::new(TaggedSink {
                node: node.clone(),
                inner: sink,
            }),
            None => sink,
        })
    }
}
