//! A tenant's retention policy (docs/retention.md): how long its events stay active (visible
//! to the consume routes), when they may be purged, and the hard limit past which even events
//! a sink has not delivered go.

use serde::{Deserialize, Serialize};

/// Upper bound of every `*_days` setting: 100 years.
pub const MAX_DAYS: u32 = 36_500;

/// The effective policy of a tenant. `active_days` ≤ `purge_after_days` ≤ `hard_limit_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetentionPolicy {
    /// Events received longer ago than this are archived: hidden from `GET /v1/events` and
    /// `/v1/stream`, still in `GET /v1/export`, still delivered to sinks that owe them.
    #[schema(minimum = 1, maximum = 36500)]
    pub active_days: u32,
    /// Whether archived events are ever deleted.
    pub auto_purge: bool,
    /// With `auto_purge`: events received longer ago than this are deleted, unless a sink has
    /// not delivered them yet.
    #[schema(minimum = 1, maximum = 36500)]
    pub purge_after_days: u32,
    /// With `auto_purge`: events received longer ago than this are deleted even if a sink has
    /// not delivered them (the purge's audit event names each such sink).
    #[schema(minimum = 1, maximum = 36500)]
    pub hard_limit_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            active_days: 90,
            auto_purge: false,
            purge_after_days: 365,
            hard_limit_days: 730,
        }
    }
}

/// What an operator sets for one tenant; each omitted field follows the server's default.
/// Stored as given, so a later change of a server default reaches the fields left unset.
/// Together with the defaults the windows must nest (`active_days` ≤ `purge_after_days` ≤
/// `hard_limit_days`), else `400` naming the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RetentionOverride, example = json!({"active_days": 30, "auto_purge": true, "purge_after_days": 365}))]
pub struct PolicyOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36500)]
    pub active_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_purge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36500)]
    pub purge_after_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36500)]
    pub hard_limit_days: Option<u32>,
}

/// A policy that does not hold together, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

impl RetentionPolicy {
    /// Checks the windows nest: active <= purge_after <= hard_limit, each 1..=MAX_DAYS.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (field, days) in [
            ("active_days", self.active_days),
            ("purge_after_days", self.purge_after_days),
            ("hard_limit_days", self.hard_limit_days),
        ] {
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(PolicyError {
                    field,
                    message: format!("must be from 1 to {MAX_DAYS} days, got {days}"),
                });
            }
        }
        if self.purge_after_days < self.active_days {
            return Err(PolicyError {
                field: "purge_after_days",
                message: format!(
                    "must be at least active_days ({}): events are archived before they are purged",
                    self.active_days
                ),
            });
        }
        if self.hard_limit_days < self.purge_after_days {
            return Err(PolicyError {
                field: "hard_limit_days",
                message: format!("must be at least purge_after_days ({})", self.purge_after_days),
            });
        }
        Ok(())
    }

    /// `over` laid on these defaults as given, for checking what an operator asked for.
    pub fn exactly_with(&self, over: &PolicyOverride) -> RetentionPolicy {
        RetentionPolicy {
            active_days: over.active_days.unwrap_or(self.active_days),
            auto_purge: over.auto_purge.unwrap_or(self.auto_purge),
            purge_after_days: over.purge_after_days.unwrap_or(self.purge_after_days),
            hard_limit_days: over.hard_limit_days.unwrap_or(self.hard_limit_days),
        }
    }

    /// `over` laid on these defaults. Windows that no longer nest (a server default changed
    /// under a stored override) are widened, never narrowed: retention errs on keeping.
    pub fn with(&self, over: &PolicyOverride) -> RetentionPolicy {
        let mut p = self.exactly_with(over);
        p.purge_after_days = p.purge_after_days.max(p.active_days);
        p.hard_limit_days = p.hard_limit_days.max(p.purge_after_days);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_nest_and_overrides_widen_rather_than_narrow() {
        let d = RetentionPolicy::default();
        d.validate().unwrap();
        let p = d.with(&PolicyOverride {
            active_days: Some(400),
            ..Default::default()
        });
        assert_eq!((p.active_days, p.purge_after_days, p.hard_limit_days), (400, 400, 730));
        let p = d.with(&PolicyOverride {
            hard_limit_days: Some(10),
            ..Default::default()
        });
        assert_eq!(p.hard_limit_days, 365);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |p: RetentionPolicy| p.validate().unwrap_err().field;
        let d = RetentionPolicy::default();
        assert_eq!(bad(RetentionPolicy { active_days: 0, ..d }), "active_days");
        assert_eq!(
            bad(RetentionPolicy {
                active_days: MAX_DAYS + 1,
                ..d
            }),
            "active_days"
        );
        assert_eq!(
            bad(RetentionPolicy {
                purge_after_days: 30,
                ..d
            }),
            "purge_after_days"
        );
        assert_eq!(
            bad(RetentionPolicy {
                hard_limit_days: 100,
                ..d
            }),
            "hard_limit_days"
        );
    }
}
