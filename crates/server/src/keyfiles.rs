//! Secrets kept in the data dir: the operator token's hash and the master keys.
//! Files are created with mode 0600; the operator token itself is never written, only its hash.
//!
//! Master keys: `master.key` is the current key (unless `AUDITRELAY_MASTER_KEY` is set), and
//! `master-keys/<key id>.key` are retired keys that still open secrets sealed before a rotation
//! (`auditrelay keys rotate`). Every key is 32 bytes of base64.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use auditrelay_engine::Keyring;
use base64::Engine;
use rand::RngCore;

use crate::tokens::{hash_token, random_token};

const ADMIN_TOKEN_HASH_FILE: &str = "admin-token.sha256";
const MASTER_KEY_FILE: &str = "master.key";
/// Retired master keys, one file per key, named by key id.
pub const RETIRED_KEYS_DIR: &str = "master-keys";
/// Written by `POST /v1/admin/token/rotate`; once present it wins over a configured token.
const ROTATED_TOKEN_HASH_FILE: &str = "admin-token.rotated.sha256";
const INTEGRITY_KEY_FILE: &str = "integrity-ed25519.key";

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

fn parse_hash(path: &Path, text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).with_context(|| format!("decoding {}", path.display()))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} does not hold a SHA-256 hash", path.display()))
}

/// The operator token's hash, and the token itself when it was generated just now (to print
/// once). Precedence: a token rotated over the API (its hash file in the data dir) wins over a
/// configured token — otherwise a restart would bring back the token the operator just retired
/// — and a configured token wins over the hash generated on first start. Deleting the rotated
/// hash file returns to the configured token.
pub fn operator_token(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<([u8; 32], Option<String>)> {
    let rotated = data_dir.join(ROTATED_TOKEN_HASH_FILE);
    match std::fs::read_to_string(&rotated) {
        Ok(text) => {
            if configured.is_some() {
                tracing::warn!(
                    file = %rotated.display(),
                    "the operator token was rotated over the API: the configured token is ignored (delete the file to use it again)"
                );
            }
            return Ok((parse_hash(&rotated, &text)?, None));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", rotated.display())),
    }
    if let Some(token) = configured {
        return Ok((hash_token(token), None));
    }
    let path = data_dir.join(ADMIN_TOKEN_HASH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse_hash(&path, &text)?, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token("aro");
            let hash = hash_token(&token);
            write_private(&path, &hex::encode(hash))?;
            Ok((hash, Some(token)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Decodes a base64 master key; `from` names where it came from (never the key itself).
pub fn decode_key(b64: &str, from: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| anyhow::anyhow!("{from} is not valid base64"))?;
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(k) => Ok(k),
        Err(_) => bail!("{from} must be 32 bytes of base64, got {}", bytes.len()),
    }
}

pub fn encode_key(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub fn generate_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// Makes a rotated operator token's hash durable: written to a temporary file, synced, renamed
/// over the previous one and the directory synced, so a crash leaves the old or the new hash,
/// never a torn file.
pub fn store_rotated_operator_hash(data_dir: &Path, hash: &[u8; 32]) -> anyhow::Result<()> {
    let path = data_dir.join(ROTATED_TOKEN_HASH_FILE);
    let tmp = data_dir.join(format!("{ROTATED_TOKEN_HASH_FILE}.tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", tmp.display())),
    }
    write_private(&tmp, &hex::encode(hash))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", data_dir.display()))
}

/// The 32-byte master key that encrypts sink secrets: configured (base64) or generated into the
/// data dir on first start.
pub fn master_key(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<[u8; 32]> {
    match current_key(data_dir, configured)? {
        Some(key) => Ok(key),
        None => {
            let key = generate_key();
            write_private(&data_dir.join(MASTER_KEY_FILE), &encode_key(&key))?;
            Ok(key)
        }
    }
}

/// The current master key if there is one (configured, or `master.key`); generates nothing.
pub fn current_key(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<Option<[u8; 32]>> {
    if let Some(b64) = configured {
        return decode_key(b64, "the master key from the configuration").map(Some);
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_key(&text, &format!("the master key in {}", path.display())).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Retired keys from `master-keys/` (sorted by file name, so the order is stable).
pub fn retired_keys(data_dir: &Path) -> anyhow::Result<Vec<[u8; 32]>> {
    let dir = data_dir.join(RETIRED_KEYS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "key") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            decode_key(&text, &format!("the master key in {}", path.display()))
        })
        .collect()
}

/// Every key the server knows: the current one (generated on first start when none is
/// configured), retired keys from the data dir, and `previous` keys from the configuration
/// (base64; for operators whose keys live outside the data dir).
pub fn keyring(data_dir: &Path, configured: Option<&str>, previous: &[String]) -> anyhow::Result<Keyring> {
    let current = master_key(data_dir, configured)?;
    with_retired(Keyring::new(&current), data_dir, previous)
}

/// Adds the retired keys of the data dir and the configured previous keys to `ring`.
pub fn with_retired(ring: Keyring, data_dir: &Path, previous: &[String]) -> anyhow::Result<Keyring> {
    let mut retired = retired_keys(data_dir)?;
    for (i, b64) in previous.iter().enumerate() {
        retired.push(decode_key(b64, &format!("previous master key #{}", i + 1))?);
    }
    Ok(ring.with_retired(&retired))
}

/// Stores `key` as a retired key (`master-keys/<id>.key`, mode 0600, synced). Idempotent.
pub fn write_retired_key(data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join(RETIRED_KEYS_DIR);
    create_private_dir(&dir)?;
    let path = dir.join(format!("{}.key", Keyring::new(key).current_id()));
    if !path.exists() {
        write_private(&path, &encode_key(key))?;
        sync_dir(&dir)?;
    }
    Ok(path)
}

/// Makes `key` the current key in `master.key`, atomically (write a new file, rename it over).
pub fn replace_master_key(data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    let path = data_dir.join(MASTER_KEY_FILE);
    let tmp = data_dir.join(format!("{MASTER_KEY_FILE}.new"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", tmp.display())),
    }
    write_private(&tmp, &encode_key(key))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(data_dir)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// The Ed25519 seed (32 bytes, base64 in the file) that signs hash-chain checkpoints,
/// generated into the data dir on first start.
pub fn integrity_key(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<[u8; 32]> {
    if let Some(b64) = configured {
        return decode_key(b64, "the integrity key (AUDITRELAY_INTEGRITY_KEY)");
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let path = data_dir.join(INTEGRITY_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = engine
                .decode(text.trim())
                .with_context(|| format!("decoding {}", path.display()))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes of base64, got {}", path.display(), bytes.len()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            write_private(&path, &engine.encode(seed))?;
            Ok(seed)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
