//! Standard Webhooks signing: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), where
//! the key is the base64-decoded part of a `whsec_` secret.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::ConfigError;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key sizes the spec allows (24 to 64 random bytes).
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;
/// Size of a generated key: 256 bits, as HMAC-SHA256 uses at most that much of a shorter key.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Standard base64 alphabet, with or without padding: secrets from other systems come both
/// ways. Only this alphabet is accepted: the reference verifiers decode leniently and would
/// silently drop a URL-safe `-` or `_`, deriving a different key than ours.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded signing key, ready to sign. Its Debug output never shows the key.
#[derive(Clone)]
pub(crate) struct SigningKey(Hmac<Sha256>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Parses a `whsec_…` secret. The error describes the expected form, never the value.
    pub(crate) fn parse(secret: &str) -> Result<Self, String> {
        const FORM: &str = "must be `whsec_` followed by the base64 of 24 to 64 random bytes";
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("{FORM} (missing the `whsec_` prefix)"))?;
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| format!("{FORM} (the part after `whsec_` is not standard base64)"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(format!("{FORM} (it decodes to {} bytes)", key.len()));
        }
        // HMAC takes keys of any length, so this cannot fail; mapped anyway rather than unwrapped.
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("unusable key: {e}"))?;
        Ok(SigningKey(mac))
    }

    /// `v1,<base64 signature>` of `{msg_id}.{timestamp}.{body}`.
    pub(crate) fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Signs one message with a `whsec_` secret (Standard Webhooks, HMAC-SHA256): the value of the
/// `webhook-signature` header for a single secret. An invalid secret is a `ConfigError` on
/// `secrets.signing_secret`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, ConfigError> {
    let key = SigningKey::parse(secret).map_err(|m| ConfigError::new("secrets.signing_secret", m))?;
    Ok(key.sign(msg_id, timestamp, body))
}

/// A fresh secret: `whsec_` + base64 of 32 bytes from the OS's CSPRNG.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_test_vector() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn generated_secret_has_the_standard_form_and_signs() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        let encoded = a.strip_prefix("whsec_").unwrap();
        assert_eq!(encoded.len(), 44, "32 bytes in padded base64");
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        let sig = sign(&a, "msg_1", 1, b"{}").unwrap();
        assert!(sig.starts_with("v1,") && STANDARD.decode(&sig[3..]).unwrap().len() == 32);
    }

    #[test]
    fn secret_forms() {
        let b64 = |n: usize| STANDARD.encode(vec![7u8; n]);
        assert!(SigningKey::parse(&format!("whsec_{}", b64(24))).is_ok());
        assert!(SigningKey::parse(&format!("whsec_{}", b64(64))).is_ok());
        // Padding is optional.
        let unpadded = format!("whsec_{}", b64(32).trim_end_matches('='));
        assert!(SigningKey::parse(&unpadded).is_ok());
        for (bad, why) in [
            (b64(32), "missing the `whsec_` prefix"),
            (format!("whsec_{}", b64(23)), "23 bytes"),
            (format!("whsec_{}", b64(65)), "65 bytes"),
            ("whsec_".to_owned(), "0 bytes"),
            ("whsec_abc$def".to_owned(), "not standard base64"),
            // URL-safe alphabet: Python's verifier would silently derive another key.
            (
                format!(
                    "whsec_{}",
                    STANDARD.encode([0xfb; 33]).replace('+', "-").replace('/', "_")
                ),
                "not standard base64",
            ),
        ] {
            let err = SigningKey::parse(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = sign("whsec_nope", "m", 1, b"").unwrap_err();
        assert_eq!(err.field, "secrets.signing_secret");
        assert!(!err.message.contains("nope"), "the secret must not be echoed: {err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let key = SigningKey::parse(&generate_secret()).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
