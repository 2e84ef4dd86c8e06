//! Secrets kept in the data dir: the operator token's hash and the master key.
//! Files are created with mode 0600; the operator token itself is never written, only its hash.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use rand::RngCore;

use crate::auth::hash_token;

const ADMIN_TOKEN_HASH_FILE: &str = "admin-token.sha256";
const MASTER_KEY_FILE: &str = "master.key";

/// A fresh random secret with a readable prefix (`aro_…`, `ark_…`): 32 bytes, base64url.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The operator token's hash, and the token itself when it was generated just now (to print
/// once). A configured token wins over the stored hash.
pub fn operator_token(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = configured {
        return Ok((hash_token(token), None));
    }
    let path = data_dir.join(ADMIN_TOKEN_HASH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| format!("decoding {}", path.display()))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} does not hold a SHA-256 hash", path.display()))?;
            Ok((hash, None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token("aro");
            let hash = hash_token(&token);
            write_private(&path, &hex::encode(hash))?;
            Ok((hash, Some(token)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The 32-byte master key that encrypts sink secrets: configured (base64) or generated into the
/// data dir on first start.
pub fn master_key(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<[u8; 32]> {
    let engine = base64::engine::general_purpose::STANDARD;
    let decode = |b64: &str, from: &str| -> anyhow::Result<[u8; 32]> {
        let bytes = engine
            .decode(b64.trim())
            .with_context(|| format!("decoding the master key from {from}"))?;
        match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(k) => Ok(k),
            Err(_) => bail!(
                "the master key from {from} must be 32 bytes of base64, got {}",
                bytes.len()
            ),
        }
    };
    if let Some(b64) = configured {
        return decode(b64, "configuration");
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => decode(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(&path, &engine.encode(key))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
