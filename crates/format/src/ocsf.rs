//! OCSF (docs/formats.md has the class rules and the attribute table).
//!
//! The class is chosen from the event type alone, so one type always lands in one class and
//! SIEM rules can rely on it: Authentication (3002) when the type says sign-in/out or session,
//! Account Change (3001) when it names an account lifecycle step OCSF has an activity for, and
//! API Activity (6003) for everything else. Each class's required attributes are always present;
//! where the event lacks the data, a documented placeholder (`"unknown"`) stands in, because an
//! event that fails the schema would be rejected whole by a strict receiver.

use serde_json::{json, Map, Value};

use crate::view::{EventView, Target};
use crate::FormatOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 3001, category 3 (Identity & Access Management).
    AccountChange,
    /// 3002, category 3.
    Authentication,
    /// 6003, category 6 (Application Activity).
    ApiActivity,
}

impl Class {
    pub fn uid(self) -> u32 {
        match self {
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::ApiActivity => 6003,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "Account Change",
            Class::Authentication => "Authentication",
            Class::ApiActivity => "API Activity",
        }
    }

    fn category(self) -> (u32, &'static str) {
        match self {
            Class::AccountChange | Class::Authentication => (3, "Identity & Access Management"),
            Class::ApiActivity => (6, "Application Activity"),
        }
    }

    /// The schema's caption for an activity id of this class.
    pub fn activity_name(self, activity: u32) -> &'static str {
        match (self, activity) {
            (_, 0) => "Unknown",
            (_, 99) => "Other",
            (Class::ApiActivity, 1) | (Class::AccountChange, 1) => "Create",
            (Class::ApiActivity, 2) => "Read",
            (Class::ApiActivity, 3) => "Update",
            (Class::ApiActivity, 4) => "Delete",
            (Class::Authentication, 1) => "Logon",
            (Class::Authentication, 2) => "Logoff",
            (Class::Authentication, 3) => "Authentication Ticket",
            (Class::Authentication, 4) => "Service Ticket Request",
            (Class::Authentication, 5) => "Service Ticket Renew",
            (Class::Authentication, 6) => "Preauth",
            (Class::Authentication, 7) => "Account Switch",
            (Class::AccountChange, 2) => "Enable",
            (Class::AccountChange, 3) => "Password Change",
            (Class::AccountChange, 4) => "Password Reset",
            (Class::AccountChange, 5) => "Disable",
            (Class::AccountChange, 6) => "Delete",
            (Class::AccountChange, 7) => "Attach Policy",
            (Class::AccountChange, 8) => "Detach Policy",
            (Class::AccountChange, 9) => "Lock",
            (Class::AccountChange, 10) => "MFA Factor Enable",
            (Class::AccountChange, 11) => "MFA Factor Disable",
            (Class::AccountChange, 12) => "Unlock",
            _ => "Other",
        }
    }
}

/// A type segment without its word separators: `password_changed` → `passwordchanged`.
fn joined(segment: &str) -> String {
    segment.chars().filter(|c| *c != '_' && *c != '-').collect()
}

/// The last `_`/`-`-separated word: `bulk_delete` → `delete`.
fn last_word(s: &str) -> &str {
    s.rsplit(['_', '-']).next().unwrap_or(s)
}

/// `(object, verb)` of a type: its last two dot-separated segments (`iam.user.created` →
/// `user`, `created`); a one-segment type is both.
fn object_and_verb(event_type: &str) -> (&str, &str) {
    let mut segs = event_type.rsplit('.');
    let verb = segs.next().unwrap_or(event_type);
    let object = segs.next().unwrap_or(verb);
    (object, verb)
}

const AUTH_OBJECTS: &[&str] = &[
    "auth",
    "authn",
    "authentication",
    "login",
    "logon",
    "logout",
    "logoff",
    "signin",
    "signout",
    "session",
    "sessions",
];
const LOGON_PREFIXES: &[&str] = &["login", "logon", "loggedin", "signin", "signedin", "authenticat"];
const LOGOFF_PREFIXES: &[&str] = &["logout", "logoff", "loggedout", "signout", "signedout"];

fn starts_with_any(s: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| s.starts_with(p))
}

/// Authentication activity for the type, or `None` when the type is not about authentication.
fn authentication(event_type: &str) -> Option<u32> {
    let (object, verb) = object_and_verb(event_type);
    let v = joined(verb);
    let logon = starts_with_any(&v, LOGON_PREFIXES);
    let logoff = starts_with_any(&v, LOGOFF_PREFIXES);
    if !(logon || logoff || AUTH_OBJECTS.contains(&object)) {
        return None;
    }
    let activity = if logon {
        1
    } else if logoff {
        2
    } else if matches!(object, "session" | "sessions") {
        match v.as_str() {
            "created" | "started" | "opened" | "established" | "began" | "begun" => 1,
            "ended" | "expired" | "revoked" | "terminated" | "closed" | "deleted" | "destroyed" | "invalidated" => 2,
            _ => 99,
        }
    } else if v.contains("token") || v.contains("ticket") {
        3
    } else if starts_with_any(&v, &["impersonat", "switchuser", "switchaccount", "accountswitch"]) {
        7
    } else if matches!(object, "login" | "logon" | "signin") {
        1
    } else if matches!(object, "logout" | "logoff" | "signout") {
        2
    } else if matches!(
        v.as_str(),
        "failed" | "failure" | "succeeded" | "success" | "attempt" | "attempted" | "denied" | "rejected"
    ) {
        // `auth.failed`: an authentication attempt, i.e. a logon; the outcome says how it went.
        1
    } else {
        99
    };
    Some(activity)
}

/// Account Change activity for the type, or `None` when OCSF has no account activity for it
/// (`user.viewed`, `role.created`, …: those stay API Activity).
fn account_change(event_type: &str) -> Option<u32> {
    let (object, verb) = object_and_verb(event_type);
    let v = joined(verb);
    let v = v.as_str();
    match object {
        "user" | "users" | "account" | "accounts" | "member" | "members" => match v {
            "created" | "create" | "registered" | "signedup" | "signup" | "provisioned" => Some(1),
            "enabled" | "activated" | "reactivated" | "unsuspended" | "restored" => Some(2),
            "passwordchanged" | "passwordupdated" | "passwordset" => Some(3),
            _ if v.starts_with("passwordreset") => Some(4),
            "disabled" | "deactivated" | "suspended" => Some(5),
            "deleted" | "removed" | "deprovisioned" | "destroyed" => Some(6),
            "roleassigned" | "rolegranted" | "roleadded" | "policyattached" | "permissiongranted" => Some(7),
            "rolerevoked" | "roleremoved" | "roleunassigned" | "policydetached" | "permissionrevoked" => Some(8),
            "locked" | "lockedout" => Some(9),
            "mfaenabled" | "mfaadded" | "mfaenrolled" => Some(10),
            "mfadisabled" | "mfaremoved" => Some(11),
            "unlocked" => Some(12),
            _ => None,
        },
        "password" | "passwords" => match v {
            "changed" | "updated" | "set" | "change" | "update" => Some(3),
            _ if v.starts_with("reset") => Some(4),
            _ => None,
        },
        "mfa" | "2fa" => match v {
            "enabled" | "added" | "enrolled" | "activated" => Some(10),
            "disabled" | "removed" | "deactivated" => Some(11),
            _ => None,
        },
        "role" | "roles" | "policy" | "policies" | "permission" | "permissions" => match v {
            "assigned" | "granted" | "attached" | "added" => Some(7),
            "revoked" | "unassigned" | "removed" | "detached" => Some(8),
            _ => None,
        },
        _ => None,
    }
}

/// API Activity from a verb word (the action's, else the type's).
fn api_verb(word: &str) -> Option<u32> {
    match word {
        "create" | "created" | "add" | "added" | "insert" | "inserted" | "new" | "register" | "registered" => Some(1),
        "read" | "get" | "list" | "listed" | "view" | "viewed" | "fetch" | "fetched" | "search" | "searched"
        | "query" | "queried" | "access" | "accessed" | "export" | "exported" | "download" | "downloaded" => Some(2),
        "update" | "updated" | "change" | "changed" | "edit" | "edited" | "modify" | "modified" | "patch"
        | "patched" | "set" | "rename" | "renamed" | "replace" | "replaced" => Some(3),
        "delete" | "deleted" | "remove" | "removed" | "destroy" | "destroyed" | "purge" | "purged" | "erase"
        | "erased" => Some(4),
        _ => None,
    }
}

/// The class and activity id an event maps to.
pub fn classify(event_type: &str, action: Option<&str>) -> (Class, u32) {
    if let Some(a) = authentication(event_type) {
        return (Class::Authentication, a);
    }
    if let Some(a) = account_change(event_type) {
        return (Class::AccountChange, a);
    }
    let from_action = action.and_then(|a| api_verb(last_word(&a.to_lowercase())));
    let (_, verb) = object_and_verb(event_type);
    let activity = from_action.or_else(|| api_verb(last_word(verb))).unwrap_or(99);
    (Class::ApiActivity, activity)
}

/// The API's 0–10 severity on OCSF's scale. Fatal (6) is never used: it means "too late to
/// act" in OCSF, which no input severity claims.
pub fn severity_id(severity: Option<u8>) -> (u32, &'static str) {
    match severity {
        None => (0, "Unknown"),
        Some(0) => (1, "Informational"),
        Some(1..=3) => (2, "Low"),
        Some(4..=6) => (3, "Medium"),
        Some(7..=8) => (4, "High"),
        Some(_) => (5, "Critical"),
    }
}

fn status(outcome: Option<&str>) -> (u32, &'static str) {
    match outcome {
        Some("success") => (1, "Success"),
        Some("failure") => (2, "Failure"),
        _ => (0, "Unknown"),
    }
}

/// OCSF `user.type_id` for an actor/target type.
fn user_type_id(kind: &str) -> u32 {
    match kind {
        "user" => 1,
        "admin" => 2,
        "system" => 3,
        "service" => 4,
        _ => 99,
    }
}

/// OCSF's `email_t` pattern, checked by hand:
/// `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$` (the `+-/` in that class
/// is a range: `+ , - . /`). A value outside it goes to `unmapped` instead, so the record still
/// validates.
pub fn is_ocsf_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+,-./=?^_`{|}~".contains(c));
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    local_ok
        && !first.is_empty()
        && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Names for whatever the event does not say, where OCSF requires something.
const UNKNOWN: &str = "unknown";

/// Target types that denote an account, so the target is the user an Account Change or
/// Authentication is about.
const USER_TARGETS: &[&str] = &[
    "user",
    "users",
    "account",
    "accounts",
    "member",
    "admin",
    "service_account",
    "principal",
    "identity",
];

fn put(m: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.into(), Value::String(v.to_owned()));
    }
}

pub(crate) fn encode(ev: &EventView<'_>, o: &FormatOptions) -> Value {
    let (class, activity) = classify(ev.event_type, ev.action.as_deref());
    let (category_uid, category_name) = class.category();
    let activity_name = class.activity_name(activity);
    let (severity_id, severity) = severity_id(ev.severity);
    let (status_id, status) = status(ev.outcome.as_deref());
    let mut unmapped = Map::new();

    let mut metadata = Map::new();
    metadata.insert(
        "product".into(),
        json!({"name": o.product, "vendor_name": o.vendor, "version": o.product_version}),
    );
    metadata.insert("version".into(), json!(o.ocsf_version));
    metadata.insert("uid".into(), json!(ev.id));
    metadata.insert("tenant_uid".into(), json!(ev.tenant_id));
    put(&mut metadata, "correlation_uid", ev.request_id.as_deref());
    metadata.insert("event_code".into(), json!(ev.event_type));
    put(&mut metadata, "original_time", ev.occurred_at.as_deref());
    if let Some(ms) = ev.received_ms() {
        metadata.insert("logged_time".into(), json!(ms));
    }
    // The event's position in its tenant's log: a consumer can spot gaps by it.
    metadata.insert("sequence".into(), json!(ev.offset));
    // The hash chain after this event (docs/integrity.md); `offset` again beside it so the
    // pair reads on its own.
    if let Some(chain) = &ev.chain {
        unmapped.insert("offset".into(), json!(ev.offset));
        unmapped.insert("chain".into(), json!(chain));
    }

    let mut out = Map::new();
    out.insert("class_uid".into(), json!(class.uid()));
    out.insert("class_name".into(), json!(class.name()));
    out.insert("category_uid".into(), json!(category_uid));
    out.insert("category_name".into(), json!(category_name));
    out.insert("activity_id".into(), json!(activity));
    out.insert("activity_name".into(), json!(activity_name));
    out.insert(
        "type_uid".into(),
        json!(u64::from(class.uid()) * 100 + u64::from(activity)),
    );
    out.insert("type_name".into(), json!(format!("{}: {activity_name}", class.name())));
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("severity".into(), json!(severity));
    // `time` is required; 0 only for a body with neither timestamp, which the server never stores.
    out.insert("time".into(), json!(ev.time_ms().unwrap_or(0)));
    out.insert("status_id".into(), json!(status_id));
    out.insert("status".into(), json!(status));
    let message = match &ev.action {
        Some(a) => format!("{}: {a}", ev.event_type),
        None => ev.event_type.to_owned(),
    };
    out.insert("message".into(), json!(message));
    out.insert("metadata".into(), Value::Object(metadata));

    // Who acted.
    let actor_user = actor_user(ev, &mut unmapped);
    let user_target = user_target(&ev.target);
    match class {
        Class::ApiActivity => {
            let actor = match &actor_user {
                Some(u) => json!({ "user": u }),
                // Required: without a known actor, the service that recorded the event acted.
                None => json!({ "app_name": ev.source.service.as_deref().unwrap_or(UNKNOWN) }),
            };
            out.insert("actor".into(), actor);
        }
        Class::Authentication | Class::AccountChange => {
            if let Some(u) = &actor_user {
                out.insert("actor".into(), json!({"user": u}));
            }
        }
    }

    // Where from: the client's address. Required only by API Activity, where an event without
    // one says so rather than inventing an address.
    if let Some(ip) = ev.actor_ip() {
        out.insert("src_endpoint".into(), json!({ "ip": ip.to_string() }));
    } else {
        if let Some(raw) = &ev.actor.ip_address {
            unmapped.insert("actor_ip_address".into(), json!(raw));
        }
        if class == Class::ApiActivity {
            out.insert("src_endpoint".into(), json!({ "name": UNKNOWN }));
        }
    }
    if let Some(ua) = &ev.actor.user_agent {
        out.insert("http_request".into(), json!({"user_agent": ua}));
    }

    // The service the event came from: API Activity's and Authentication's destination.
    let mut dst = Map::new();
    put(&mut dst, "svc_name", ev.source.service.as_deref());
    put(&mut dst, "instance_uid", ev.source.instance.as_deref());
    let mut service = Map::new();
    put(&mut service, "name", ev.source.service.as_deref());
    put(&mut service, "version", ev.source.version.as_deref());

    match class {
        Class::ApiActivity => {
            let mut api = Map::new();
            api.insert("operation".into(), json!(ev.action.as_deref().unwrap_or(ev.event_type)));
            if let Some(r) = &ev.request_id {
                api.insert("request".into(), json!({"uid": r}));
            }
            if service.contains_key("name") {
                api.insert("service".into(), Value::Object(service));
            }
            out.insert("api".into(), Value::Object(api));
            if !dst.is_empty() {
                out.insert("dst_endpoint".into(), Value::Object(dst));
            }
            let t = &ev.target;
            if t.id.is_some() || t.name.is_some() {
                let mut r = Map::new();
                put(&mut r, "uid", t.id.as_deref());
                put(&mut r, "name", t.name.as_deref());
                put(&mut r, "type", t.kind.as_deref());
                out.insert("resources".into(), json!([r]));
            } else if let Some(kind) = &t.kind {
                // resource_details needs a name or uid; a bare type cannot be a resource.
                unmapped.insert("target".into(), json!({"type": kind}));
            }
        }
        Class::Authentication => {
            // The user who signed in: the actor, else an account-typed target.
            let user = actor_user
                .clone()
                .or_else(|| user_target.clone())
                .unwrap_or_else(|| json!({"name": UNKNOWN}));
            out.insert("user".into(), user);
            // At least one of service / dst_endpoint: the tenant's application is the service
            // signed in to when the event does not name one.
            if service.contains_key("name") {
                out.insert("service".into(), Value::Object(service));
            } else {
                out.insert("service".into(), json!({"uid": ev.tenant_id}));
            }
            if !dst.is_empty() {
                out.insert("dst_endpoint".into(), Value::Object(dst));
            }
            if let Some(a) = &ev.action {
                unmapped.insert("action".into(), json!(a));
            }
            insert_target(&mut unmapped, &ev.target);
        }
        Class::AccountChange => {
            // The account changed: an account-typed target, else the actor (self-service).
            let user = user_target
                .clone()
                .or_else(|| actor_user.clone())
                .unwrap_or_else(|| json!({"name": UNKNOWN}));
            out.insert("user".into(), user);
            if let Some(a) = &ev.action {
                unmapped.insert("action".into(), json!(a));
            }
            if user_target.is_none() {
                insert_target(&mut unmapped, &ev.target);
            }
        }
    }

    if let Some(c) = &ev.changes {
        unmapped.insert("changes".into(), Value::Object(c.clone()));
    }
    if let Some(m) = &ev.metadata {
        unmapped.insert("metadata".into(), Value::Object(m.clone()));
    }
    if let Some(s) = &ev.source_raw {
        unmapped.insert("source".into(), Value::Object(s.clone()));
    }
    if !unmapped.is_empty() {
        out.insert("unmapped".into(), Value::Object(unmapped));
    }
    Value::Object(out)
}

fn insert_target(unmapped: &mut Map<String, Value>, t: &Target) {
    let mut m = Map::new();
    put(&mut m, "type", t.kind.as_deref());
    put(&mut m, "id", t.id.as_deref());
    put(&mut m, "name", t.name.as_deref());
    if !m.is_empty() {
        unmapped.insert("target".into(), Value::Object(m));
    }
}

/// OCSF `user` for the actor, when the actor is identified at all (`user` needs a uid or name;
/// an email alone serves as the name, as it does at sign-in).
fn actor_user(ev: &EventView<'_>, unmapped: &mut Map<String, Value>) -> Option<Value> {
    let a = &ev.actor;
    let valid_email = a.email.as_deref().filter(|e| is_ocsf_email(e));
    if let (Some(e), None) = (&a.email, valid_email) {
        unmapped.insert("actor_email".into(), json!(e));
    }
    let name = a.name.as_deref().or(a.email.as_deref());
    if a.id.is_none() && name.is_none() {
        if let Some(k) = &a.kind {
            unmapped.insert("actor_type".into(), json!(k));
        }
        return None;
    }
    let mut u = Map::new();
    put(&mut u, "uid", a.id.as_deref());
    put(&mut u, "name", name);
    put(&mut u, "email_addr", valid_email);
    if let Some(k) = &a.kind {
        u.insert("type".into(), json!(k));
        u.insert("type_id".into(), json!(user_type_id(k)));
    }
    Some(Value::Object(u))
}

/// OCSF `user` for the target when it is an account (by its type) and identified.
fn user_target(t: &Target) -> Option<Value> {
    let is_account = t.kind.as_deref().is_some_and(|k| USER_TARGETS.contains(&k));
    if !is_account || (t.id.is_none() && t.name.is_none()) {
        return None;
    }
    let mut u = Map::new();
    put(&mut u, "uid", t.id.as_deref());
    put(&mut u, "name", t.name.as_deref());
    if let Some(k) = &t.kind {
        u.insert("type".into(), json!(k));
        u.insert("type_id".into(), json!(user_type_id(k)));
    }
    Some(Value::Object(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases: &[(&str, Option<&str>, Class, u32)] = &[
            ("auth.login", None, Class::Authentication, 1),
            ("user.login_failed", None, Class::Authentication, 1),
            ("user.signed_in", None, Class::Authentication, 1),
            ("user.sign_in", None, Class::Authentication, 1),
            ("auth.logout", None, Class::Authentication, 2),
            ("session.created", None, Class::Authentication, 1),
            ("iam.session.expired", None, Class::Authentication, 2),
            ("auth.token_issued", None, Class::Authentication, 3),
            ("auth.impersonation_started", None, Class::Authentication, 7),
            ("auth.failed", None, Class::Authentication, 1),
            ("session.token_refreshed", None, Class::Authentication, 99),
            ("logout.failed", None, Class::Authentication, 2),
            ("sso.configured", None, Class::ApiActivity, 99),
            ("sso.login", None, Class::Authentication, 1),
            ("auth.mfa_challenge", None, Class::Authentication, 99),
            ("user.created", None, Class::AccountChange, 1),
            ("iam.account.enabled", None, Class::AccountChange, 2),
            ("user.password_changed", None, Class::AccountChange, 3),
            ("password.reset_requested", None, Class::AccountChange, 4),
            ("account.suspended", None, Class::AccountChange, 5),
            ("user.deleted", None, Class::AccountChange, 6),
            ("role.assigned", None, Class::AccountChange, 7),
            ("role.revoked", None, Class::AccountChange, 8),
            ("account.locked", None, Class::AccountChange, 9),
            ("mfa.enabled", None, Class::AccountChange, 10),
            ("mfa.disabled", None, Class::AccountChange, 11),
            ("user.unlocked", None, Class::AccountChange, 12),
            ("user.viewed", None, Class::ApiActivity, 2),
            ("role.created", None, Class::ApiActivity, 1),
            ("invoice.updated", Some("approve"), Class::ApiActivity, 3),
            ("decision.rejected", Some("reject"), Class::ApiActivity, 99),
            ("report.x", Some("Bulk_Delete"), Class::ApiActivity, 4),
            ("document.created", Some("delete"), Class::ApiActivity, 4),
            ("ping", None, Class::ApiActivity, 99),
            ("", None, Class::ApiActivity, 99),
        ];
        for (t, action, class, activity) in cases {
            assert_eq!(classify(t, *action), (*class, *activity), "{t} / {action:?}");
        }
    }

    #[test]
    fn severity_table() {
        let ids: Vec<u32> = (0..=10).map(|s| severity_id(Some(s)).0).collect();
        assert_eq!(ids, [1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5]);
        assert_eq!(severity_id(None), (0, "Unknown"));
    }

    #[test]
    fn email_pattern() {
        for ok in ["a@b.c", "first.last+tag@example.co.uk", "a,b/c@x-y.z", "x@a.b-c.d."] {
            assert!(is_ocsf_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.c", "a@b", "a@.c", "a@b.", "a b@c.d", "a@b.c\n", "é@b.c", "a@b@c.d", "a@b_c.d",
        ] {
            assert!(!is_ocsf_email(bad), "{bad:?}");
        }
    }
}
