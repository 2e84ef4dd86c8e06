//! The `webhook` sink: the batch as one JSON object, signed per Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), with signing-secret rotation.

mod config;
mod sign;
mod sink;

pub use config::{
    rotation_grace, validate, DEFAULT_ROTATION_GRACE_SECS, MAX_ROTATION_GRACE_SECS, PREVIOUS_SIGNING_SECRET,
    PREVIOUS_SIGNING_SECRET_EXPIRES_AT, SIGNING_SECRET,
};
pub use sign::{generate_secret, sign, SECRET_PREFIX};
pub use sink::{batch_body, WebhookSink};
