//! What the sinks still owe: retention asks before purging. A sink holds back every event of a
//! tenant after its committed cursor there, and every range named by one of its dead letters
//! (an operator may still retry it). Paused sinks hold too: pausing is temporary, and a sink
//! paused for a 401 is exactly the one whose SIEM must not lose a day.

use auditrelay_store::{SinkRow, Store};

use crate::spec::SinkSpec;
use crate::tenants::reads_tenant;
use crate::EngineError;

/// One sink's claim on a tenant's log: it has not delivered the event at `through + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub sink_id: String,
    pub sink_name: String,
    /// Every event after this offset is still owed to the sink.
    pub through: u64,
}

/// Every sink's hold on `tenant`, lowest first.
pub(crate) async fn holds(store: &dyn Store, tenant: &str) -> Result<Vec<Hold>, EngineError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_sinks(None, after.as_deref(), 500).await?;
        for row in &page {
            if let Some(hold) = hold_of(store, row, tenant).await? {
                out.push(hold);
            }
        }
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|s| s.id.clone());
    }
    out.sort_by_key(|h| h.through);
    Ok(out)
}

async fn hold_of(store: &dyn Store, row: &SinkRow, tenant: &str) -> Result<Option<Hold>, EngineError> {
    let spec = SinkSpec::from_stored(&row.spec)?;
    if !reads_tenant(row, &spec, tenant) {
        return Ok(None);
    }
    // Before its first lane start a sink has no cursor: it will start where `start_at` says.
    let mut through = match store.cursor(&row.id, tenant).await? {
        Some(c) => c,
        None => match spec.start_at.from_time(&row.created_at) {
            None => 0,
            Some(time) => store.offset_at_time(tenant, time).await?,
        },
    };
    let mut after: Option<String> = None;
    loop {
        let page = store.list_dead_letters(&row.id, after.as_deref(), 500).await?;
        for dl in page.iter().filter(|d| d.tenant_id == tenant) {
            through = through.min(dl.first_offset.saturating_sub(1));
        }
        if page.len() < 500 {
            break;
        }
        after = page.last().map(|d| d.id.clone());
    }
    Ok(Some(Hold {
        sink_id: row.id.clone(),
        sink_name: spec.name,
        through,
    }))
}
