//! Who is calling: the operator, or a tenant key with scopes (api.md "Auth").
//!
//! Tokens are never stored: the operator token and tenant keys are compared by their SHA-256
//! hash. Keys are cached by hash for a short time so a busy ingest path does not read the
//! catalog per request; revocation clears the local cache at once and other nodes within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditrelay_store::Store;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{hash_token, random_token};

const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Ingest,
    Read,
    Manage,
}

impl Scope {
    pub const ALL: [&'static str; 3] = ["ingest", "read", "manage"];

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "manage" => Some(Scope::Manage),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Manage => "manage",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Tenant {
        tenant: String,
        key_id: String,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Principal::Tenant { .. } => Err(ApiError::forbidden(format!(
                "this key lacks the `{}` scope",
                scope.as_str()
            ))),
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant { .. } => Err(ApiError::forbidden("this route needs the operator token")),
        }
    }

    /// The tenant a request acts on. A tenant key acts on its own tenant only: naming another
    /// answers 404, exactly like a tenant that does not exist, so ids cannot be probed.
    pub fn tenant_for(&self, requested: Option<&str>) -> Result<Option<String>, ApiError> {
        match (self, requested) {
            (Principal::Operator, r) => Ok(r.map(str::to_owned)),
            (Principal::Tenant { tenant, .. }, None) => Ok(Some(tenant.clone())),
            (Principal::Tenant { tenant, .. }, Some(r)) if r == tenant => Ok(Some(tenant.clone())),
            (Principal::Tenant { .. }, Some(r)) => Err(ApiError::not_found(format!("tenant `{r}` not found"))),
        }
    }
}

#[derive(Clone)]
struct CachedKey {
    principal: Principal,
    revoked: bool,
    fetched: Instant,
}

pub struct Authenticator {
    /// Replaced by a rotation; read on every request (an uncontended read lock).
    operator_hash: std::sync::RwLock<[u8; 32]>,
    /// Serializes rotations so the hash file and the hash in memory always agree.
    rotation: tokio::sync::Mutex<()>,
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<[u8; 32], CachedKey>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl Authenticator {
    pub fn new(operator_hash: [u8; 32], store: Arc<dyn Store>) -> Self {
        Authenticator {
            operator_hash: std::sync::RwLock::new(operator_hash),
            rotation: tokio::sync::Mutex::new(()),
            store,
            cache: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let hash = hash_token(token);
        let operator_hash = *self.operator_hash.read().unwrap_or_else(|p| p.into_inner());
        if bool::from(hash.ct_eq(&operator_hash)) {
            return Ok(Principal::Operator);
        }
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&hash)
                .filter(|c| c.fetched.elapsed() < KEY_CACHE_TTL)
                .cloned()
        };
        let entry = match cached {
            Some(c) => c,
            None => {
                let key = self.store.key_by_hash(hash).await?;
                let Some(key) = key.filter(|k| bool::from(k.hash.ct_eq(&hash))) else {
                    return Err(ApiError::unauthorized("invalid token"));
                };
                let entry = CachedKey {
                    principal: Principal::Tenant {
                        tenant: key.tenant_id.clone(),
                        key_id: key.id.clone(),
                        scopes: key.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                    },
                    revoked: key.revoked_at.is_some(),
                    fetched: Instant::now(),
                };
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hash, entry.clone());
                entry
            }
        };
        if entry.revoked {
            return Err(ApiError::unauthorized("this key has been revoked"));
        }
        if let Principal::Tenant { key_id, .. } = &entry.principal {
            self.touch(key_id);
        }
        Ok(entry.principal)
    }

    /// Replaces the operator token: a new random token whose hash is first made durable in the
    /// data dir (so a restart keeps it), then swapped in; the old token fails from the next
    /// request on. Returns the new token, to show once.
    pub async fn rotate_operator_token(&self, data_dir: &std::path::Path) -> Result<String, ApiError> {
        let _one_at_a_time = self.rotation.lock().await;
        let token = random_token("aro");
        let hash = hash_token(&token);
        let dir = data_dir.to_owned();
        let saved =
            tokio::task::spawn_blocking(move || crate::keyfiles::store_rotated_operator_hash(&dir, &hash)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "could not store the rotated operator token; the old one stays"
                );
                return Err(ApiError::unavailable(
                    "the new operator token could not be stored; the old one stays valid",
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "the rotation task failed; the old operator token stays");
                return Err(ApiError::unavailable(
                    "the new operator token could not be stored; the old one stays valid",
                ));
            }
        }
        *self.operator_hash.write().unwrap_or_else(|p| p.into_inner()) = hash;
        Ok(token)
    }

    /// Drops cached keys so a revocation takes effect at once on this node.
    pub fn forget_keys(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn touch(&self, key_id: &str) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.get(key_id).is_some_and(|t| t.elapsed() < TOUCH_INTERVAL) {
                return;
            }
            touched.insert(key_id.to_owned(), Instant::now());
        }
        let store = self.store.clone();
        let key_id = key_id.to_owned();
        tokio::spawn(async move {
            let now = auditrelay_core::time::now_rfc3339();
            if let Err(e) = store.touch_key(&key_id, &now).await {
                tracing::warn!(error = %e, key_id, "could not record key use");
            }
        });
    }
}

/// Extractor: every `/v1` handler takes a `Principal`.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let principal = state.auth.authenticate(token).await?;
        // Rate limit per tenant key, before the handler does any work for it.
        if let Principal::Tenant { key_id, .. } = &principal {
            state.abuse.rate.check(key_id)?;
        }
        Ok(principal)
    }
}
