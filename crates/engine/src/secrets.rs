//! Sink secrets at rest: a JSON map sealed with AES-256-GCM under the master key.
//!
//! Layout: `0x01 ‖ nonce (12 bytes) ‖ ciphertext+tag`. The sink id is the associated data, so a
//! sealed blob copied onto another sink's row fails to open instead of leaking into the wrong
//! receiver.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use auditrelay_sinks::Secrets;
use rand::RngCore;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("sealed secrets are malformed or were sealed under another master key")]
    Open,
    #[error("sealing secrets failed")]
    Seal,
}

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl MasterKey {
    pub fn new(key: &[u8; 32]) -> Self {
        MasterKey(Aes256Gcm::new(key.into()))
    }

    pub fn seal(&self, sink_id: &str, secrets: &Secrets) -> Result<Vec<u8>, SecretsError> {
        let plain = serde_json::to_vec(secrets).map_err(|_| SecretsError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: sink_id.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sink_id: &str, sealed: &[u8]) -> Result<Secrets, SecretsError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SecretsError::Open);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: sink_id.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Open)?;
        serde_json::from_slice(&plain).map_err(|_| SecretsError::Open)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = MasterKey::new(&[7; 32]);
        let mut s = Secrets::new();
        s.insert("signing_secret".into(), "whsec_abc".into());
        let sealed = key.seal("snk_1", &s).unwrap();
        assert!(
            !sealed.windows(9).any(|w| w == b"whsec_abc"),
            "plaintext must not appear"
        );
        assert_eq!(key.open("snk_1", &sealed).unwrap(), s);
        assert!(key.open("snk_2", &sealed).is_err(), "bound to its sink id");
        assert!(
            MasterKey::new(&[8; 32]).open("snk_1", &sealed).is_err(),
            "bound to its key"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("snk_1", &tampered).is_err());
        assert_ne!(key.seal("snk_1", &s).unwrap(), sealed, "fresh nonce each time");
    }
}
