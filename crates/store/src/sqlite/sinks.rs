//! Sinks, dead letters and the delivery log on SQLite.
// HELPER: replace these stubs (see the task description).

use async_trait::async_trait;

use super::SqliteStore;
use crate::{DeadLetter, DeadLetters, DeliveryAttempt, DeliveryLog, Result, SinkRow, SinkStore, StoreError};

fn todo() -> StoreError {
    StoreError::Unavailable("not implemented".into())
}

#[async_trait]
impl SinkStore for SqliteStore {
    async fn create_sink(&self, _sink: SinkRow) -> Result<()> {
        Err(todo())
    }
    async fn sink(&self, _id: &str) -> Result<Option<SinkRow>> {
        Err(todo())
    }
    async fn list_sinks(&self, _owner: Option<&str>, _after: Option<&str>, _limit: usize) -> Result<Vec<SinkRow>> {
        Err(todo())
    }
    async fn update_sink(&self, _sink: SinkRow) -> Result<Option<SinkRow>> {
        Err(todo())
    }
    async fn set_sink_paused(&self, _id: &str, _paused: bool, _reason: Option<&str>) -> Result<Option<SinkRow>> {
        Err(todo())
    }
    async fn delete_sink(&self, _id: &str) -> Result<bool> {
        Err(todo())
    }
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn add_dead_letter(&self, _dead_letter: DeadLetter) -> Result<()> {
        Err(todo())
    }
    async fn list_dead_letters(&self, _sink_id: &str, _after: Option<&str>, _limit: usize) -> Result<Vec<DeadLetter>> {
        Err(todo())
    }
    async fn dead_letter(&self, _sink_id: &str, _id: &str) -> Result<Option<DeadLetter>> {
        Err(todo())
    }
    async fn update_dead_letter_attempts(&self, _sink_id: &str, _id: &str, _attempts: &str) -> Result<bool> {
        Err(todo())
    }
    async fn delete_dead_letter(&self, _sink_id: &str, _id: &str) -> Result<bool> {
        Err(todo())
    }
    async fn count_dead_letters(&self, _sink_id: &str) -> Result<u64> {
        Err(todo())
    }
}

#[async_trait]
impl DeliveryLog for SqliteStore {
    async fn record_attempts(&self, _attempts: Vec<DeliveryAttempt>) -> Result<()> {
        Err(todo())
    }
    async fn list_attempts(
        &self,
        _sink_id: &str,
        _before: Option<u64>,
        _limit: usize,
    ) -> Result<Vec<(u64, DeliveryAttempt)>> {
        Err(todo())
    }
    async fn prune_attempts(&self, _older_than: &str) -> Result<u64> {
        Err(todo())
    }
}
