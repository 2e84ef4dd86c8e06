//! Signed checkpoints of each tenant's hash chain (docs/integrity.md).
//!
//! The chain itself is computed by the store inside the append transaction; this module only
//! signs "tenant T's log had chain C after offset N, at time S" from time to time, so that a
//! verifier can trust a chain value without replaying the log from offset 1 (after a purge) and
//! so that an attacker who rewrites the whole store cannot recompute a matching history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_store::{Checkpoint, Store};
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use tokio_util::sync::CancellationToken;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The bytes a checkpoint signature covers (docs/integrity.md, "Checkpoints").
pub fn signed_bytes(tenant: &str, offset: u64, chain: &[u8; 32], signed_at: &str) -> Vec<u8> {
    format!(
        "auditrelay-checkpoint-v1\n{tenant}\n{offset}\n{}\n{signed_at}\n",
        hex::encode(chain)
    )
    .into_bytes()
}

/// The checkpoint signing key.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        CheckpointSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn sign(&self, tenant: &str, offset: u64, chain: [u8; 32], signed_at: String) -> Checkpoint {
        let signature = self
            .key
            .sign(&signed_bytes(tenant, offset, &chain, &signed_at))
            .to_bytes();
        Checkpoint {
            tenant_id: tenant.to_owned(),
            offset,
            chain,
            signed_at,
            signature,
        }
    }

    /// The raw 32-byte public key, base64 (standard alphabet, padded).
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// The public key as a PEM SubjectPublicKeyInfo, as `openssl pkey -pubin` reads it.
    pub fn public_key_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.key.verifying_key().to_bytes());
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }
}

/// Checks the newest checkpoint of each tenant against this server's key. Another key means
/// another signer on the same log (nodes of a cluster started without one shared
/// `AUDITRELAY_INTEGRITY_KEY`, or a replaced key): verifiers would then reject one of them, so
/// say so loudly at start rather than at audit time.
pub async fn warn_on_foreign_checkpoints(store: &dyn Store, signer: &CheckpointSigner) {
    use ed25519_dalek::Verifier as _;
    let latest = match store.latest_checkpoints().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "could not read checkpoints to check the signing key");
            return;
        }
    };
    let key = signer.key.verifying_key();
    let mut foreign = Vec::new();
    for (tenant, offset) in latest.into_iter().take(100) {
        let Ok(page) = store.list_checkpoints(&tenant, offset.saturating_sub(1), 1).await else {
            continue;
        };
        for cp in page {
            let bytes = signed_bytes(&cp.tenant_id, cp.offset, &cp.chain, &cp.signed_at);
            if key
                .verify(&bytes, &ed25519_dalek::Signature::from_bytes(&cp.signature))
                .is_err()
            {
                foreign.push(tenant.clone());
            }
        }
    }
    if !foreign.is_empty() {
        tracing::error!(
            tenants = %foreign.join(","),
            "checkpoints in this log were signed by another integrity key: every node sharing a log \
             must run with the same AUDITRELAY_INTEGRITY_KEY (docs/deployment-postgres.md)"
        );
    }
}

/// Every `interval`, signs a checkpoint for each tenant whose head moved since its last one.
/// Runs until `shutdown`, then signs once more so a clean stop leaves the head covered.
pub async fn run_checkpoints(
    store: Arc<dyn Store>,
    signer: Arc<CheckpointSigner>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut covered: HashMap<String, u64> = match store.latest_checkpoints().await {
        Ok(latest) => latest.into_iter().collect(),
        Err(e) => {
            tracing::error!(error = %e, "reading the latest checkpoints; signing every tenant afresh");
            HashMap::new()
        }
    };
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = shutdown.cancelled() => true,
        };
        if let Err(e) = checkpoint_all(store.as_ref(), &signer, &mut covered).await {
            tracing::warn!(error = %e, "signing checkpoints failed; trying again next interval");
        }
        if stop {
            return;
        }
    }
}

async fn checkpoint_all(
    store: &dyn Store,
    signer: &CheckpointSigner,
    covered: &mut HashMap<String, u64>,
) -> auditrelay_store::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = store.list_tenants(after.as_deref(), 1000).await?;
        for tenant in &page {
            let Some((head, chain)) = store.chain_head(&tenant.id).await? else {
                continue;
            };
            if covered.get(&tenant.id).is_some_and(|&done| done >= head) {
                continue;
            }
            let checkpoint = signer.sign(&tenant.id, head, chain, auditrelay_core::time::now_rfc3339());
            store.add_checkpoint(checkpoint).await?;
            covered.insert(tenant.id.clone(), head);
        }
        if page.len() < 1000 {
            return Ok(());
        }
        after = page.last().map(|t| t.id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn signatures_cover_the_documented_bytes() {
        let signer = CheckpointSigner::from_seed(&[7; 32]);
        let cp = signer.sign("acme", 42, [0xab; 32], "2026-01-01T00:00:00.000Z".into());
        let expected = format!(
            "auditrelay-checkpoint-v1\nacme\n42\n{}\n2026-01-01T00:00:00.000Z\n",
            "ab".repeat(32)
        );
        let key = VerifyingKey::from_bytes(&signer.key.verifying_key().to_bytes()).unwrap();
        key.verify(expected.as_bytes(), &Signature::from_bytes(&cp.signature))
            .unwrap();
        assert!(key
            .verify(b"something else", &Signature::from_bytes(&cp.signature))
            .is_err());
        assert!(signer
            .public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    }
}
