//! Checking what an independent client read back against what the server accepted: every event
//! exactly once (duplicates are counted, not hidden) and, within each tenant, first arrivals in
//! offset order. Shared by the sink-level and end-to-end transport tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;

/// `(tenant, event id, offset)` in the order a receiver got them.
pub type Arrival = (String, String, u64);

/// Every expected event exactly once, first arrivals in per-tenant offset order. Returns the
/// number of duplicate deliveries.
pub fn check_arrivals(what: &str, arrivals: &[Arrival], expected: &BTreeMap<(String, String), u64>) -> usize {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (tenant, id, offset) in arrivals {
        let n = seen.entry((tenant.clone(), id.clone())).or_insert(0);
        *n += 1;
        if *n == 1 {
            let prev = last.entry(tenant.clone()).or_insert(0);
            assert!(
                *offset > *prev,
                "{what}: {tenant} offset {offset} arrived first after {prev}"
            );
            *prev = *offset;
        }
        assert_eq!(
            expected.get(&(tenant.clone(), id.clone())),
            Some(offset),
            "{what}: an event nobody sent, or at the wrong offset: {tenant}/{id}@{offset}"
        );
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} events never arrived, e.g. {missing:?}",
        expected.len() - seen.len(),
        expected.len()
    );
    seen.values().map(|n| n - 1).sum()
}
