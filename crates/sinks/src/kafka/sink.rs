//! Producing one batch: every event as one record, the batch delivered once the broker
//! acknowledged all of them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auditrelay_format::{encode, Format};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde_json::Value;

use super::config::{parse_config, KafkaSettings};
use super::record::{headers, record_key};
use crate::http;
use crate::{AttemptReport, Batch, ConfigError, Outcome, Secrets, Sink, SinkEnv};

/// How often the brokers the cluster advertises are checked against the SSRF policy again.
const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// How long a metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A ready-to-send Kafka sink. The producer (librdkafka's threads and connections) is created
/// on the first delivery and replaced if it ever reports a fatal error.
pub struct KafkaSink {
    cfg: KafkaSettings,
    format: Format,
    password: Option<String>,
    env: SinkEnv,
    producer: Mutex<Option<Arc<FutureProducer>>>,
    /// When the advertised brokers last passed the SSRF policy.
    checked_at: Mutex<Option<Instant>>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.cfg.bootstrap_servers())
            .field("topic", &self.cfg.topic)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed, before it becomes an [`Outcome`].
enum Failure {
    Retry(String),
    Misconfigured(String),
}

impl KafkaSink {
    pub fn new(config: &Value, secrets: &Secrets, format: Format, env: &SinkEnv) -> Result<Self, ConfigError> {
        let cfg = parse_config(config)?;
        let password = secrets.get("sasl_password").cloned();
        if cfg.sasl.is_some() && password.is_none() {
            return Err(ConfigError::new(
                "secrets.sasl_password",
                "required with `sasl_mechanism`",
            ));
        }
        Ok(KafkaSink {
            cfg,
            format,
            password,
            env: env.clone(),
            producer: Mutex::new(None),
            checked_at: Mutex::new(None),
        })
    }

    /// The producer's settings. `enable.idempotence` makes librdkafka's own retries safe (no
    /// duplicate, no reordering within a partition) and implies `acks=all`.
    fn client_config(&self) -> ClientConfig {
        let cfg = &self.cfg;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", cfg.bootstrap_servers())
            .set("client.id", "auditrelay")
            .set("enable.idempotence", if cfg.idempotent { "true" } else { "false" })
            .set("acks", "all")
            .set("compression.type", cfg.compression.as_str())
            .set("linger.ms", "5")
            .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
            .set("socket.keepalive.enable", "true")
            // librdkafka's own reconnect backoff, so a dead broker is not hammered.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "10000");
        if !cfg.idempotent {
            // Without idempotence, a retried request could overtake the one after it.
            c.set("max.in.flight.requests.per.connection", "1");
        }
        let protocol = match (cfg.tls, cfg.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(ca) = &cfg.ca_file {
            c.set("ssl.ca.location", ca.display().to_string());
        }
        if let (Some((mechanism, user)), Some(password)) = (&cfg.sasl, &self.password) {
            c.set("sasl.mechanism", mechanism.as_str())
                .set("sasl.username", user)
                .set("sasl.password", password);
        }
        c
    }

    fn producer(&self) -> Result<Arc<FutureProducer>, Failure> {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.as_ref() {
            if p.client().fatal_error().is_none() {
                return Ok(p.clone());
            }
            // A fatal error (e.g. the idempotent producer lost its epoch) ends this producer's
            // life; a new one starts a new idempotence session.
            tracing::warn!(topic = %self.cfg.topic, "Kafka producer hit a fatal error; creating a new one");
        }
        let producer: FutureProducer = self
            .client_config()
            .create()
            .map_err(|e| Failure::Misconfigured(format!("cannot create the Kafka producer: {e}")))?;
        let producer = Arc::new(producer);
        *slot = Some(producer.clone());
        drop(slot);
        *self.checked_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(producer)
    }

    /// The SSRF guard for Kafka. librdkafka resolves and connects by itself, so the address
    /// connected to cannot be pinned as for HTTP; instead, before producing (and every
    /// minute), the bootstrap brokers are resolved again and every broker the cluster
    /// advertises — the addresses librdkafka will connect to next — is checked. A hostile
    /// cluster advertising `127.0.0.1` pauses the sink instead of reaching it.
    async fn check_brokers(&self, producer: &Arc<FutureProducer>) -> Result<(), Failure> {
        let fresh = self
            .checked_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < RECHECK_EVERY);
        if fresh {
            return Ok(());
        }
        let guarded = !self.env.allow_private_networks;
        if guarded {
            for (host, port) in &self.cfg.brokers {
                http::check_host(host, *port, "config.brokers", &self.env)
                    .await
                    .map_err(|e| Failure::Misconfigured(e.message))?;
            }
        }
        let p = producer.clone();
        let topic = self.cfg.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            p.client().fetch_metadata(Some(&topic), METADATA_TIMEOUT).map(|m| {
                let brokers: Vec<(String, u16)> = m
                    .brokers()
                    .iter()
                    .map(|b| (b.host().to_owned(), u16::try_from(b.port()).unwrap_or(0)))
                    .collect();
                let topic_error = m.topics().first().and_then(|t| t.error());
                (brokers, topic_error)
            })
        })
        .await
        .map_err(|e| Failure::Retry(format!("metadata task failed: {e}")))?
        .map_err(|e| classify_error(&e, "fetching cluster metadata"))?;
        let (advertised, topic_error) = metadata;
        if let Some(code) = topic_error {
            let code = RDKafkaErrorCode::from(code);
            return Err(classify_code(code, &format!("topic `{}`", self.cfg.topic)));
        }
        if guarded {
            for (host, port) in &advertised {
                http::check_host(host, *port, "advertised broker", &self.env)
                    .await
                    .map_err(|e| {
                        Failure::Misconfigured(format!("the cluster advertises broker {host}:{port}: {}", e.message))
                    })?;
            }
        }
        *self.checked_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    async fn produce(&self, batch: &Batch<'_>) -> Result<Vec<(usize, String)>, Failure> {
        let producer = self.producer()?;
        self.check_brokers(&producer).await?;
        let mut pending: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(batch.events.len());
        let mut rejected = Vec::new();
        let mut enqueue_error = None;
        for (i, event) in batch.events.iter().enumerate() {
            let value = match encode(self.format, event, &self.cfg.options) {
                Ok(v) => v,
                Err(e) => {
                    rejected.push((i, format!("cannot encode event {}: {e}", event.offset)));
                    continue;
                }
            };
            let key = record_key(&self.cfg.key, event);
            let mut hdrs = OwnedHeaders::new_with_capacity(4);
            for (name, val) in headers(event) {
                hdrs = hdrs.insert(Header {
                    key: name,
                    value: Some(val.as_bytes()),
                });
            }
            let record = FutureRecord::to(&self.cfg.topic)
                .key(key.as_bytes())
                .payload(&value)
                .headers(hdrs);
            match producer.send_result(record) {
                Ok(future) => pending.push((i, future)),
                Err((e, _)) => {
                    // Queue full or similar: stop enqueueing; what is already queued is
                    // awaited below so the attempt ends in a known state.
                    enqueue_error = Some(classify_error(&e, "queueing a record"));
                    break;
                }
            }
        }
        let mut failure = enqueue_error;
        for (i, future) in pending {
            match future.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => match permanent_rejection(&e) {
                    Some(reason) => rejected.push((i, reason)),
                    None => {
                        let f = classify_error(&e, "producing");
                        // Keep the most serious failure: misconfiguration pauses the sink.
                        if !matches!(failure, Some(Failure::Misconfigured(_))) {
                            failure = Some(f);
                        }
                    }
                },
                Err(_) => {
                    failure.get_or_insert(Failure::Retry(
                        "the producer was closed before the broker answered".into(),
                    ));
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(rejected),
        }
    }
}

/// Errors that no retry can fix, for one record.
fn permanent_rejection(e: &KafkaError) -> Option<String> {
    match e.rdkafka_error_code()? {
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::InvalidMessageSize
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::InvalidRecord => Some(format!("the broker refused the record: {e}")),
        _ => None,
    }
}

fn classify_code(code: RDKafkaErrorCode, what: &str) -> Failure {
    match code {
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed
        | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        | RDKafkaErrorCode::SaslAuthenticationFailed
        | RDKafkaErrorCode::Authentication
        | RDKafkaErrorCode::UnsupportedSASLMechanism
        | RDKafkaErrorCode::IllegalSASLState
        | RDKafkaErrorCode::SSL => Failure::Misconfigured(format!("{what}: {code}")),
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::InvalidTopic => {
            Failure::Misconfigured(format!("{what}: the topic does not exist or is not writable ({code})"))
        }
        _ => Failure::Retry(format!("{what}: {code}")),
    }
}

fn classify_error(e: &KafkaError, what: &str) -> Failure {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code, what),
        None => Failure::Retry(format!("{what}: {e}")),
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn deliver(&self, batch: &Batch<'_>) -> AttemptReport {
        match self.produce(batch).await {
            Ok(rejected) if rejected.is_empty() => AttemptReport::delivered(None),
            Ok(rejected) => AttemptReport {
                error: rejected.first().map(|(_, r)| r.clone()),
                outcome: Outcome::Partial {
                    retry: Vec::new(),
                    after: None,
                    rejected,
                },
                status: None,
            },
            Err(Failure::Retry(error)) => AttemptReport::failed(Outcome::Retry { after: None }, error),
            Err(Failure::Misconfigured(error)) => AttemptReport::failed(Outcome::Misconfigured, error),
        }
    }
}
