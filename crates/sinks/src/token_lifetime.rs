//! How long a cached OAuth2 access token is used (Pub/Sub's service account tokens, Sentinel's
//! Entra ID tokens): the lifetime the token endpoint granted, less a margin so that a token
//! never expires while a request carrying it is in flight.

use std::time::Duration;

use serde_json::Value;

/// Refresh this long before a token expires, so a token never expires in flight …
pub const REFRESH_SKEW: Duration = Duration::from_secs(300);
/// … unless the token lives less than twice that: then refresh at half its lifetime.
///
/// Assumed lifetime when the token endpoint gives none (Entra ID and Google always do; a
/// compatible endpoint might not): short, so a wrong guess costs a few extra token requests,
/// not 401s.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Longest lifetime believed: an endpoint's absurd `expires_in` cannot pin a token for ever.
const MAX_LIFETIME_SECS: f64 = 366.0 * 86_400.0;

/// The lifetime an answer's `expires_in` grants: seconds as a number, or as a numeric string
/// (some older endpoints). Absent or unreadable: [`DEFAULT_LIFETIME`]; zero, negative or not
/// finite: already expired (the token serves the attempt that fetched it, no more).
pub(crate) fn granted_lifetime(expires_in: Option<&Value>) -> Duration {
    let secs = match expires_in {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s.min(MAX_LIFETIME_SECS)),
        Some(_) => Duration::ZERO,
        None => DEFAULT_LIFETIME,
    }
}

/// How long a token that lives `lifetime` is used before it is refreshed.
pub(crate) fn usable_for(lifetime: Duration) -> Duration {
    lifetime - REFRESH_SKEW.min(lifetime / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_from_expires_in() {
        assert_eq!(granted_lifetime(Some(&json!(3599))), Duration::from_secs(3599));
        assert_eq!(granted_lifetime(Some(&json!(" 120 "))), Duration::from_secs(120));
        assert_eq!(granted_lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(granted_lifetime(Some(&json!("soon"))), DEFAULT_LIFETIME);
        assert_eq!(granted_lifetime(Some(&json!(-5))), Duration::ZERO);
        assert_eq!(granted_lifetime(Some(&json!(1e300))), Duration::from_secs(366 * 86_400));
    }

    #[test]
    fn refresh_schedule() {
        assert_eq!(usable_for(Duration::from_secs(3600)), Duration::from_secs(3300));
        assert_eq!(usable_for(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }
}
