//! Which tenants a sink reads: its owner, the list it names, or every tenant but `system`.

use auditrelay_store::{SinkRow, Store};

use crate::spec::SinkSpec;
use crate::EngineError;

async fn all_tenants(store: &dyn Store) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_tenants(after.as_deref(), 1000).await?;
        // The system tenant (auditrelay's own trail) is read only by sinks that name it: a
        // customer-data pipe over "all tenants" should not start carrying operator activity.
        out.extend(
            page.iter()
                .filter(|t| t.id != auditrelay_core::ids::SYSTEM_TENANT)
                .map(|t| t.id.clone()),
        );
        if page.len() < 1000 {
            return Ok(out);
        }
        after = page.last().map(|t| t.id.clone());
    }
}

/// The tenants a sink reads right now.
pub(crate) async fn tenants_of(store: &dyn Store, row: &SinkRow, spec: &SinkSpec) -> Result<Vec<String>, EngineError> {
    Ok(match (&row.owner_tenant, &spec.tenants) {
        (Some(owner), _) => vec![owner.clone()],
        (None, Some(list)) => list.clone(),
        (None, None) => all_tenants(store).await?,
    })
}

/// Whether a sink reads `tenant`: [`tenants_of`] without listing every tenant.
pub(crate) fn reads_tenant(row: &SinkRow, spec: &SinkSpec, tenant: &str) -> bool {
    match (&row.owner_tenant, &spec.tenants) {
        (Some(owner), _) => owner == tenant,
        (None, Some(list)) => list.iter().any(|t| t == tenant),
        (None, None) => tenant != auditrelay_core::ids::SYSTEM_TENANT,
    }
}

/// Whether a sink reads every tenant, present and future (new tenants get a lane).
pub(crate) fn reads_all_tenants(row: &SinkRow, spec: &SinkSpec) -> bool {
    row.owner_tenant.is_none() && spec.tenants.is_none()
}
