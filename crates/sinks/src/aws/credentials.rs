//! Where a sink's AWS credentials come from: static keys (the secrets, or the server's
//! environment), or temporary keys from STS `AssumeRole`, cached until shortly before they expire.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use super::config::{RoleSettings, ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN};
use super::sts;
use crate::{AttemptReport, ConfigError, Secrets, SinkEnv};

/// Refresh assumed-role credentials this long before they expire.
pub(crate) const REFRESH_SKEW: Duration = Duration::from_secs(300);

/// A key pair (and session token). Debug never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Keys {
    /// Removes every secret part from `text` (an answer that echoes a request).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.secret_access_key, "<redacted>");
        if let Some(token) = &self.session_token {
            out = out.replace(token.as_str(), "<redacted>");
        }
        out
    }
}

/// The static keys: both secrets (+ `session_token`), or neither and then the process
/// environment's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
pub(crate) fn static_keys(secrets: &Secrets) -> Result<Keys, ConfigError> {
    let field = |name: &str| format!("secrets.{name}");
    let (id, secret, token) = match (secrets.get(ACCESS_KEY_ID), secrets.get(SECRET_ACCESS_KEY)) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone(), secrets.get(SESSION_TOKEN).cloned()),
        (Some(_), None) => {
            return Err(ConfigError::new(
                field(SECRET_ACCESS_KEY),
                "required with `access_key_id`",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                field(ACCESS_KEY_ID),
                "required with `secret_access_key`",
            ))
        }
        (None, None) => {
            if secrets.contains_key(SESSION_TOKEN) {
                return Err(ConfigError::new(
                    field(SESSION_TOKEN),
                    "only with `access_key_id` and `secret_access_key`",
                ));
            }
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => (id, secret, var("AWS_SESSION_TOKEN")),
                _ => {
                    return Err(ConfigError::new(
                        field(ACCESS_KEY_ID),
                        "required (with `secret_access_key`), unless the server's environment sets \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ))
                }
            }
        }
    };
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    // The errors never echo a value.
    for (name, value) in [
        (ACCESS_KEY_ID, Some(&id)),
        (SECRET_ACCESS_KEY, Some(&secret)),
        (SESSION_TOKEN, token.as_ref()),
    ] {
        if value.is_some_and(|v| !printable(v)) {
            return Err(ConfigError::new(
                field(name),
                "must be non-empty printable ASCII without spaces",
            ));
        }
    }
    Ok(Keys {
        access_key_id: id,
        secret_access_key: secret,
        session_token: token,
    })
}

struct Cached {
    keys: Keys,
    refresh_at: Timestamp,
}

/// A sink's credentials. With a role, the assumed keys are cached and shared by every lane; a
/// lane that finds them stale fetches new ones while the others wait for that one request.
pub(crate) struct CredentialSource {
    base: Keys,
    role: Option<RoleSettings>,
    region: String,
    /// `RoleSessionName`: which sink assumed the role, in CloudTrail.
    session_name: String,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSource")
            .field("access_key_id", &self.base.access_key_id)
            .field("role_arn", &self.role.as_ref().map(|r| r.role_arn.as_str()))
            .finish_non_exhaustive()
    }
}

impl CredentialSource {
    pub(crate) fn new(base: Keys, role: Option<RoleSettings>, region: &str, session_name: &str) -> Self {
        // RoleSessionName: 2-64 of [\w+=,.@-].
        let mut name: String = session_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        if name.len() < 2 {
            name = "auditrelay".to_owned();
        }
        CredentialSource {
            base,
            role,
            region: region.to_owned(),
            session_name: name,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The keys to sign with now. Fetching assumed-role keys can fail like a delivery does
    /// (`Retry` when STS is busy or unreachable, `Misconfigured` when it refuses).
    pub(crate) async fn get(&self, client: &reqwest::Client, env: &SinkEnv) -> Result<Keys, AttemptReport> {
        let Some(role) = &self.role else {
            return Ok(self.base.clone());
        };
        let mut slot = self.cache.lock().await;
        if let Some(cached) = slot.as_ref() {
            if Timestamp::now() < cached.refresh_at {
                return Ok(cached.keys.clone());
            }
        }
        let grant = sts::assume_role(client, env, &self.base, role, &self.region, &self.session_name).await?;
        let lifetime = grant.expiration.duration_since(Timestamp::now());
        let skew = jiff::SignedDuration::try_from(REFRESH_SKEW)
            .unwrap_or_default()
            .min(lifetime / 2);
        let refresh_at = grant.expiration.checked_sub(skew).unwrap_or(grant.expiration);
        *slot = Some(Cached {
            keys: grant.keys.clone(),
            refresh_at,
        });
        Ok(grant.keys)
    }

    /// Forgets assumed-role keys the service called expired, so the next attempt fetches new ones.
    pub(crate) async fn invalidate(&self, keys: &Keys) {
        let mut slot = self.cache.lock().await;
        if slot.as_ref().is_some_and(|c| &c.keys == keys) {
            *slot = None;
        }
    }

    /// Scrubs the base secret from a text (assumed keys are scrubbed by the caller).
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.base.scrub(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Secrets {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn static_keys_never_echo_the_secret() {
        assert_eq!(
            static_keys(&s(&[(ACCESS_KEY_ID, "AKIA1")])).unwrap_err().field,
            "secrets.secret_access_key"
        );
        let e = static_keys(&s(&[(ACCESS_KEY_ID, "AKIA1"), (SECRET_ACCESS_KEY, "hunter2 x")])).unwrap_err();
        assert_eq!(e.field, "secrets.secret_access_key");
        assert!(!e.to_string().contains("hunter2"));
        let k = static_keys(&s(&[
            (ACCESS_KEY_ID, "AKIA1"),
            (SECRET_ACCESS_KEY, "hunter2"),
            (SESSION_TOKEN, "tok"),
        ]))
        .unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok\""), "{shown}");
        assert_eq!(k.scrub("a hunter2 b tok"), "a <redacted> b <redacted>");
        assert_eq!(
            static_keys(&s(&[(SESSION_TOKEN, "x")])).unwrap_err().field,
            "secrets.session_token"
        );
    }
}
