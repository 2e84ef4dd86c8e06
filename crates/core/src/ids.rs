//! Identifiers and the syntax rules for names a client chooses.

/// A fresh, time-ordered event id (UUIDv7), used when the client gave none.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A fresh id with a readable prefix, e.g. `key_0190…`. Time-ordered so listings page stably.
pub fn new_prefixed_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The reserved tenant that holds auditrelay's own audit trail (administrative actions). It is
/// created at start, cannot be created over the API, and only the server appends to it.
pub const SYSTEM_TENANT: &str = "system";

/// Tenant ids: 1–64 chars of `[a-z0-9_-]` (api.md).
pub fn is_valid_tenant_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Event types: 1–128 chars of `[a-z0-9_.-]`, dotted (`category.verb`): at least two
/// non-empty segments separated by single dots.
pub fn is_valid_event_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.')
        && s.contains('.')
        && s.split('.').all(|seg| !seg.is_empty())
}

/// Client-supplied event ids: 1–128 printable characters, no whitespace or control characters.
pub fn is_valid_client_event_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// Ids that cross module boundaries as their own types, so a sink id cannot be passed where a
/// replay id or a tenant id is expected. Each is the text the API shows (`snk_0190…`); the
/// store keeps the text (its columns are strings) and these types wrap it at the boundary.
macro_rules! prefixed_ids {
    ($($(#[$doc:meta])* $name:ident = $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                $name(new_prefixed_id($prefix))
            }

            /// An id read back from the store or a path: kept as given (an id that was never
            /// issued simply matches nothing).
            pub fn from_stored(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    )*};
}

prefixed_ids! {
    /// A sink (`snk_…`).
    SinkId = "snk";
    /// A replay job of a sink (`rpl_…`).
    ReplayId = "rpl";
    /// A batch kept after it exhausted its attempts (`dl_…`).
    DeadLetterId = "dl";
    /// A tenant's API key (`key_…`).
    KeyId = "key";
    /// A source: a listener or poller that appends events (`src_…`).
    SourceId = "src";
}

/// A tenant id (`[a-z0-9_-]{1,64}`): the one id clients choose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// `None` unless `id` follows the syntax.
    pub fn parse(id: &str) -> Option<TenantId> {
        is_valid_tenant_id(id).then(|| TenantId(id.to_owned()))
    }

    /// A tenant id read back from the store (checked when it was written).
    pub fn from_stored(id: impl Into<String>) -> Self {
        TenantId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_syntax() {
        for ok in ["decision.rejected", "auth.login", "a.b.c", "x_1.y-2", "system.test"] {
            assert!(is_valid_event_type(ok), "{ok}");
        }
        let long = format!("a.{}", "b".repeat(127));
        for bad in [
            "",
            "login",
            "Auth.login",
            "a..b",
            ".a",
            "a.",
            "a b.c",
            "a/b.c",
            long.as_str(),
        ] {
            assert!(!is_valid_event_type(bad), "{bad}");
        }
    }

    #[test]
    fn tenant_id_syntax() {
        assert!(is_valid_tenant_id("acme"));
        assert!(is_valid_tenant_id("a-b_c9"));
        assert!(!is_valid_tenant_id(""));
        assert!(!is_valid_tenant_id("Acme"));
        assert!(!is_valid_tenant_id("a.b"));
        assert!(!is_valid_tenant_id(&"a".repeat(65)));
    }

    #[test]
    fn generated_ids_are_time_ordered() {
        let a = new_event_id();
        let b = new_event_id();
        assert!(a < b);
        assert!(new_prefixed_id("key").starts_with("key_"));
        let (a, b) = (SinkId::generate(), SinkId::generate());
        assert!(a.as_str().starts_with("snk_") && a < b);
        assert!(ReplayId::generate().as_str().starts_with("rpl_"));
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }

    #[test]
    fn tenant_ids_are_parsed() {
        assert_eq!(TenantId::parse("acme").map(|t| t.to_string()), Some("acme".into()));
        assert!(TenantId::parse("Acme").is_none());
    }
}
