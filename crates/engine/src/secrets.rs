//! Sink secrets at rest: a JSON map sealed with AES-256-GCM under a master key.
//!
//! Layout (version 2): `0x02 ‖ key id (8 bytes) ‖ nonce (12 bytes) ‖ ciphertext+tag`. The key
//! id names the master key that sealed the blob (a fingerprint of the key, never the key), so a
//! [`Keyring`] holding the current key and retired ones opens blobs from before a rotation, and
//! `auditrelay keys rotate` can tell which rows still need re-sealing. The associated data is the
//! header and the sink id, so a blob copied onto another sink's row, or a header edited to name
//! another key, fails to open instead of leaking into the wrong receiver.
//!
//! Version 1 blobs (`0x01 ‖ nonce ‖ ciphertext+tag`, sink id as associated data, no key id) are
//! still opened, by trying each key; they are re-sealed as version 2 on the next change or
//! rotation.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use auditrelay_sinks::Secrets;
use rand::RngCore;
use sha2::{Digest, Sha256};

const V1: u8 = 1;
const V2: u8 = 2;
const NONCE_LEN: usize = 12;
const KEY_ID_LEN: usize = 8;
const V2_HEADER: usize = 1 + KEY_ID_LEN;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("sealed secrets are malformed or were sealed under another master key")]
    Open,
    #[error("sealed secrets name master key {0}, which this server does not have (see `auditrelay keys rotate`)")]
    UnknownKey(KeyId),
    #[error("sealing secrets failed")]
    Seal,
}

/// A master key's public name: the first 8 bytes of SHA-256 over a label and the key. It
/// identifies a key without revealing it, in blobs, file names and logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(key: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"auditrelay master key id\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// One master key and its id.
#[derive(Clone)]
struct MasterKey {
    id: KeyId,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn new(key: &[u8; 32]) -> Self {
        MasterKey {
            id: KeyId::of(key),
            cipher: Aes256Gcm::new(key.into()),
        }
    }
}

/// The master keys a server knows: the current one seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    current: MasterKey,
    /// Retired keys, kept to open what was sealed before a rotation (and backups).
    retired: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: &[u8; 32]) -> Self {
        Keyring {
            current: MasterKey::new(current),
            retired: Vec::new(),
        }
    }

    /// Adds keys that open but no longer seal. The current key and repeats are skipped.
    pub fn with_retired<'a>(mut self, keys: impl IntoIterator<Item = &'a [u8; 32]>) -> Self {
        for key in keys {
            let key = MasterKey::new(key);
            if key.id != self.current.id && !self.retired.iter().any(|k| k.id == key.id) {
                self.retired.push(key);
            }
        }
        self
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// Ids of the retired keys, in the order given.
    pub fn retired_ids(&self) -> Vec<KeyId> {
        self.retired.iter().map(|k| k.id).collect()
    }

    /// The key id a sealed blob names, or `None` for a version 1 blob (or garbage).
    pub fn sealed_key_id(sealed: &[u8]) -> Option<KeyId> {
        match sealed {
            [V2, rest @ ..] if rest.len() >= KEY_ID_LEN + NONCE_LEN => {
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&rest[..KEY_ID_LEN]);
                Some(KeyId(id))
            }
            _ => None,
        }
    }

    /// Seals under the current key with a fresh random nonce (96 bits from the OS; a collision
    /// needs ~2^48 seals under one key, and rotation resets the count).
    pub fn seal(&self, sink_id: &str, secrets: &Secrets) -> Result<Vec<u8>, SecretsError> {
        let plain = serde_json::to_vec(secrets).map_err(|_| SecretsError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(V2_HEADER + NONCE_LEN + plain.len() + 16);
        out.push(V2);
        out.extend_from_slice(&self.current.id.0);
        let aad = [&out[..V2_HEADER], sink_id.as_bytes()].concat();
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| SecretsError::Seal)?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sink_id: &str, sealed: &[u8]) -> Result<Secrets, SecretsError> {
        let plain = match sealed.first() {
            Some(&V2) if sealed.len() >= V2_HEADER + NONCE_LEN => {
                let id = Self::sealed_key_id(sealed).ok_or(SecretsError::Open)?;
                let key = self.key(id).ok_or(SecretsError::UnknownKey(id))?;
                let (header, rest) = sealed.split_at(V2_HEADER);
                let (nonce, body) = rest.split_at(NONCE_LEN);
                let aad = [header, sink_id.as_bytes()].concat();
                key.cipher
                    .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad })
                    .map_err(|_| SecretsError::Open)?
            }
            Some(&V1) if sealed.len() > NONCE_LEN => {
                let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
                let payload = || Payload {
                    msg: body,
                    aad: sink_id.as_bytes(),
                };
                self.keys()
                    .find_map(|k| k.cipher.decrypt(Nonce::from_slice(nonce), payload()).ok())
                    .ok_or(SecretsError::Open)?
            }
            _ => return Err(SecretsError::Open),
        };
        serde_json::from_slice(&plain).map_err(|_| SecretsError::Open)
    }

    /// True when `sealed` is already a version 2 blob under the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        Self::sealed_key_id(sealed) == Some(self.current.id)
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.retired)
    }

    fn key(&self, id: KeyId) -> Option<&MasterKey> {
        self.keys().find(|k| k.id == id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids only: they name keys without revealing them.
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("retired", &self.retired_ids())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Secrets {
        let mut s = Secrets::new();
        s.insert("signing_secret".into(), "whsec_abc".into());
        s
    }

    #[test]
    fn round_trip_and_binding() {
        let key = Keyring::new(&[7; 32]);
        let s = sample();
        let sealed = key.seal("snk_1", &s).unwrap();
        assert!(
            !sealed.windows(9).any(|w| w == b"whsec_abc"),
            "plaintext must not appear"
        );
        assert_eq!(sealed[0], V2);
        assert_eq!(Keyring::sealed_key_id(&sealed), Some(key.current_id()));
        assert!(key.is_current(&sealed));
        assert_eq!(key.open("snk_1", &sealed).unwrap(), s);
        assert!(key.open("snk_2", &sealed).is_err(), "bound to its sink id");
        assert!(
            matches!(
                Keyring::new(&[8; 32]).open("snk_1", &sealed),
                Err(SecretsError::UnknownKey(_))
            ),
            "bound to its key"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("snk_1", &tampered).is_err());
        assert_ne!(key.seal("snk_1", &s).unwrap(), sealed, "fresh nonce each time");
        assert!(key.open("snk_1", &[]).is_err());
        assert!(key.open("snk_1", &[V2, 1, 2]).is_err());
    }

    #[test]
    fn a_header_naming_another_known_key_does_not_open() {
        let old = [1u8; 32];
        let new = [2u8; 32];
        let ring = Keyring::new(&new).with_retired([&old]);
        let mut sealed = ring.seal("snk_1", &sample()).unwrap();
        // Point the header at the retired key: the authenticated header no longer matches.
        sealed[1..V2_HEADER].copy_from_slice(&KeyId::of(&old).0);
        assert!(matches!(ring.open("snk_1", &sealed), Err(SecretsError::Open)));
    }

    #[test]
    fn rotation_keeps_old_blobs_readable_and_ids_stable() {
        let old = [1u8; 32];
        let new = [2u8; 32];
        let before = Keyring::new(&old).seal("snk_1", &sample()).unwrap();
        let ring = Keyring::new(&new).with_retired([&old, &old, &new]);
        assert_eq!(
            ring.retired_ids(),
            vec![KeyId::of(&old)],
            "repeats and the current key skipped"
        );
        assert!(!ring.is_current(&before));
        assert_eq!(ring.open("snk_1", &before).unwrap(), sample());
        let after = ring.seal("snk_1", &sample()).unwrap();
        assert!(ring.is_current(&after));
        assert_eq!(Keyring::new(&new).open("snk_1", &after).unwrap(), sample());
        assert_eq!(KeyId::of(&old).to_string().len(), 16);
        assert_eq!(KeyId::of(&old), KeyId::of(&[1u8; 32]), "an id depends only on the key");
    }

    #[test]
    fn version_1_blobs_still_open() {
        // A blob as the first release wrote it: 0x01 ‖ nonce ‖ AES-GCM(sink id as AAD).
        let key = [9u8; 32];
        let nonce = [3u8; NONCE_LEN];
        let body = Aes256Gcm::new((&key).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: br#"{"token":"t0k"}"#,
                    aad: b"snk_9",
                },
            )
            .unwrap();
        let blob = [&[V1][..], &nonce, &body].concat();
        let ring = Keyring::new(&[5u8; 32]).with_retired([&key]);
        assert_eq!(ring.open("snk_9", &blob).unwrap().get("token").unwrap(), "t0k");
        assert_eq!(Keyring::sealed_key_id(&blob), None);
        assert!(!ring.is_current(&blob));
        assert!(ring.open("snk_8", &blob).is_err());
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = Keyring::new(&[7; 32]);
        let shown = format!("{ring:?}");
        assert!(shown.contains(&ring.current_id().to_string()), "{shown}");
        assert!(!shown.contains("0707"), "{shown}");
    }
}
