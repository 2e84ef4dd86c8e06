//! Bearer tokens: how they are made and how they are stored. Pure functions, so that the
//! request guard (`auth`) and the files that hold the operator's hash (`keyfiles`) both use them
//! without depending on each other.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What is stored for a token: its SHA-256. Tokens carry 256 random bits, so a fast hash is
/// enough (no password stretching needed) and lookups stay O(1).
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random secret with a readable prefix (`aro_…`, `ark_…`): 32 bytes, base64url.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
