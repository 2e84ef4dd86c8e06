//! One purge pass: for each tenant whose policy has `auto_purge`, delete the events past
//! `purge_after_days` that every sink has delivered, and those past `hard_limit_days` whatever
//! the sinks owe.
//!
//! Before the first delete of a pass, the chain value at the new boundary is signed as a
//! checkpoint, so `auditrelay verify` can start there once the prefix is gone. Deletes are paced
//! (`auditrelay_store::purge::purge_paced`): ingest keeps its latency while a year of events
//! is purged. What a pass deleted is recorded as a
//! `retention.purged` event in the `system` tenant.

use auditrelay_core::ids::TenantId;
use auditrelay_store::purge::purge_paced;
use auditrelay_store::{ReadQuery, StoreError};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::RetentionService;
use crate::audit::{self, Target};

/// What one pass did to one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub tenant: String,
    /// The offsets deleted: `from..=through`.
    pub from: u64,
    pub through: u64,
    /// Where the purge would have gone without the sinks' holds.
    pub eligible_through: u64,
    /// Sinks whose undelivered events went because they passed the hard limit, with the first
    /// such offset.
    pub forced: Vec<(String, u64)>,
    /// Sinks that held the purge back (it stopped before what they still owe).
    pub held_by: Vec<String>,
}

impl RetentionService {
    /// One pass over every tenant. Stops between chunks when `shutdown` is cancelled.
    pub async fn purge_once(&self, shutdown: &CancellationToken) -> Result<Vec<PurgeReport>, StoreError> {
        let mut reports = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_tenants(after.as_deref(), 1000).await?;
            for tenant in &page {
                if shutdown.is_cancelled() {
                    return Ok(reports);
                }
                if let Some(report) = self.purge_tenant(&tenant.id, shutdown).await? {
                    reports.push(report);
                }
            }
            if page.len() < 1000 {
                return Ok(reports);
            }
            after = page.last().map(|t| t.id.clone());
        }
    }

    async fn purge_tenant(
        &self,
        tenant: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<PurgeReport>, StoreError> {
        let (_, policy) = self.policy(tenant).await?;
        if !policy.auto_purge {
            return Ok(None);
        }
        let done = self.store.purged_through(tenant).await?;
        let eligible = self.older_than(tenant, policy.purge_after_days).await?;
        if eligible <= done {
            return Ok(None);
        }
        let hard = self.older_than(tenant, policy.hard_limit_days).await?.min(eligible);
        let holds = self
            .engine
            .holds(&TenantId::from_stored(tenant))
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading what sinks owe `{tenant}`: {e}")))?;
        let guard = holds.iter().map(|h| h.through).min().unwrap_or(u64::MAX);
        let target = eligible.min(guard).max(hard);
        // Sinks that still hold part of what is eligible, and sinks the hard limit overrode.
        let held_by: Vec<String> = holds
            .iter()
            .filter(|h| h.through < eligible && h.through >= target)
            .map(|h| h.sink_id.clone())
            .collect();
        // What each overridden sink loses in this pass: from its hold (or from where earlier
        // passes stopped, whose losses they reported) up to the target.
        let forced: Vec<(String, u64)> = holds
            .iter()
            .filter(|h| h.through < target)
            .map(|h| (h.sink_id.clone(), h.through.max(done) + 1))
            .collect();
        if target <= done {
            if !held_by.is_empty() {
                tracing::info!(%tenant, eligible, sinks = ?held_by, "purge held back: sinks have not delivered these events yet");
            }
            return Ok(None);
        }

        self.checkpoint_at(tenant, target).await?;
        let through = purge_paced(self.store.as_ref(), tenant, done, target, || shutdown.is_cancelled()).await?;
        if through <= done {
            return Ok(None);
        }
        let report = PurgeReport {
            tenant: tenant.to_owned(),
            from: done + 1,
            through,
            eligible_through: eligible,
            forced,
            held_by,
        };
        ::metrics::counter!(crate::metrics::PURGED, "tenant" => tenant.to_owned()).increment(through - done);
        if !report.forced.is_empty() {
            ::metrics::counter!(crate::metrics::PURGE_FORCED, "tenant" => tenant.to_owned()).increment(1);
        }
        self.record(&report, policy).await;
        tracing::info!(%tenant, from = report.from, through, forced = report.forced.len(), "purged events past retention");
        Ok(Some(report))
    }

    /// Signs the chain value after `offset`, read from the event itself before it is deleted.
    async fn checkpoint_at(&self, tenant: &str, offset: u64) -> Result<(), StoreError> {
        let event = self
            .store
            .read(ReadQuery {
                tenant: tenant.to_owned(),
                after: offset - 1,
                limit: 1,
                filter: Default::default(),
            })
            .await?
            .into_iter()
            .next()
            .filter(|e| e.offset == offset);
        let chain = event.and_then(|e| e.chain).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "tenant `{tenant}`: no chained event at offset {offset} to checkpoint"
            ))
        })?;
        let checkpoint = self.signer.sign(tenant, offset, chain, self.clock.now_rfc3339());
        self.store.add_checkpoint(checkpoint).await
    }

    async fn record(&self, report: &PurgeReport, policy: super::RetentionPolicy) {
        let forced: Vec<_> = report
            .forced
            .iter()
            .map(|(sink, first)| json!({ "sink": sink, "first_undelivered_offset": first }))
            .collect();
        let details = json!({
            "tenant": report.tenant,
            "from_offset": report.from,
            "through_offset": report.through,
            "events": report.through - report.from + 1,
            "eligible_through_offset": report.eligible_through,
            "forced_past_hard_limit": forced,
            "held_back_by": report.held_by,
            "policy": policy,
        });
        let target = Target {
            kind: "tenant",
            id: &report.tenant,
            name: None,
        };
        // The purge happened whatever the audit append says; a failure is in the server log
        // with the whole event (record_system logs it).
        let _ = audit::record_system(
            self.store.as_ref(),
            self.clock.as_ref(),
            "retention",
            "retention.purged",
            "delete",
            target,
            details,
        )
        .await;
    }
}
