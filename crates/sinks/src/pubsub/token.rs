//! Google OAuth2 for service accounts (JWT bearer grant, RFC 7523): an RS256-signed assertion
//! from the service account key, exchanged at its `token_uri` for an access token, which the
//! sink caches until five minutes before it expires.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Url;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http;
use crate::token_lifetime::{granted_lifetime, usable_for};
use crate::{AttemptReport, ConfigError, Outcome};

/// The scope a publisher needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
/// Google's token endpoint, when the key names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How much of a token endpoint's answer is read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// How long a signed assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;

#[derive(Deserialize)]
struct KeyFile {
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A parsed service account key. Its Debug output never shows the key.
pub(crate) struct ServiceAccount {
    pub client_email: String,
    pub token_uri: Url,
    key: RsaKeyPair,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parses the `service_account_json` secret (a key file downloaded from IAM). Errors name
    /// the field, never the key.
    pub fn parse(raw: &str, field: &str) -> Result<ServiceAccount, ConfigError> {
        let file: KeyFile = serde_json::from_str(raw)
            .map_err(|_| ConfigError::new(field, "must be a service account key file (JSON)"))?;
        let client_email = file
            .client_email
            .filter(|e| e.contains('@') && e.len() <= 320)
            .ok_or_else(|| ConfigError::new(field, "has no `client_email`"))?;
        let pem = file
            .private_key
            .ok_or_else(|| ConfigError::new(field, "has no `private_key`"))?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| ConfigError::new(field, "`private_key` is not a PEM PKCS#8 private key"))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| ConfigError::new(field, format!("`private_key` is not a usable RSA key: {e}")))?;
        let token_uri = http::parse_url(
            file.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI),
            &format!("{field}.token_uri"),
        )?;
        Ok(ServiceAccount {
            client_email,
            token_uri,
            key,
        })
    }

    /// The signed JWT: `{"alg":"RS256","typ":"JWT"}` and the claims `iss`, `scope`, `aud`
    /// (the token URI), `iat`, `exp`.
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri.as_str(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "cannot sign the token assertion".to_owned())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A cached access token. Debug never shows it.
pub(crate) struct Token {
    pub bearer: String,
    pub refresh_at: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Exchanges a fresh assertion for an access token. 408/429/5xx and transport failures retry;
/// any other failure pauses the sink (the key or the token endpoint is wrong, not the batch).
pub(crate) async fn fetch(client: &reqwest::Client, account: &ServiceAccount) -> Result<Token, AttemptReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let assertion = account
        .assertion(now)
        .map_err(|e| AttemptReport::failed(Outcome::Misconfigured, e))?;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", &assertion)
        .finish();
    let target = http::url_target(&account.token_uri);
    let request = client
        .post(account.token_uri.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    let answer = http::exchange(request, MAX_TOKEN_RESPONSE).await.map_err(|mut r| {
        r.error = r.error.map(|e| format!("token endpoint: {e}"));
        r
    })?;
    let status = answer.status;
    let fail = |outcome: Outcome, what: String| AttemptReport {
        outcome,
        status: Some(status),
        error: Some(format!("token endpoint {target} answered HTTP {status}{what}")),
    };
    match status {
        200..=299 => {
            let parsed: TokenBody = serde_json::from_slice(&answer.body)
                .map_err(|_| fail(Outcome::Misconfigured, " without a JSON token response".into()))?;
            let raw = parsed
                .access_token
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| fail(Outcome::Misconfigured, " without a usable `access_token`".into()))?;
            let lifetime = granted_lifetime(parsed.expires_in.as_ref());
            Ok(Token {
                bearer: format!("Bearer {raw}"),
                refresh_at: Instant::now() + usable_for(lifetime),
            })
        }
        408 | 429 | 500..=599 => Err(fail(
            Outcome::Retry {
                after: http::retry_after(&answer.headers),
            },
            format!(": {}", answer.snippet()),
        )),
        _ => Err(fail(Outcome::Misconfigured, format!(": {}", answer.snippet()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_errors_name_the_field() {
        let e = ServiceAccount::parse("nope", "secrets.service_account_json").unwrap_err();
        assert_eq!(e.field, "secrets.service_account_json");
        let e = ServiceAccount::parse(r#"{"client_email":"a@b","private_key":"s3cr3t-key"}"#, "s").unwrap_err();
        assert!(e.message.contains("PKCS#8"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
