//! What an AWS service's error means for the engine. The JSON protocols name the error in the
//! body (`__type`, possibly prefixed with a namespace: `com.amazonaws.kinesis#…`) or in the
//! `x-amzn-ErrorType` header (possibly followed by `:` and a URL).

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::http;
use crate::Outcome;

/// The error code and message of a JSON error answer.
pub(crate) fn error_code(body: &[u8], headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let from_body = json
        .as_ref()
        .and_then(|v| v.get("__type").or_else(|| v.get("code")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let from_header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Some front ends (and moto's signature check) answer in the Query protocol's XML.
    let text = String::from_utf8_lossy(body);
    let from_xml = || super::sts::xml_text(&text, "Code");
    let code = from_body.or(from_header).or_else(from_xml).map(|c| {
        let c = c.rsplit('#').next().unwrap_or(&c);
        c.split(':').next().unwrap_or(c).trim().to_owned()
    });
    let message = json
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| super::sts::xml_text(&text, "Message"));
    (code.filter(|c| !c.is_empty()), message)
}

/// Throttling and the service's own failures: retry with backoff.
const RETRY: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalFailureException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
    "DataAlreadyAcceptedException",
    "InvalidSequenceTokenException",
    "OperationAbortedException",
    // S3 (the `security_lake` sink's PUTs).
    "SlowDown",
    "InternalError",
];

/// The sink itself is wrong — credentials, permissions, a missing stream or bus, a disabled
/// key: every batch would fail alike, so pause with the service's message.
const PAUSE: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "AccessDenied",
    "AccessDeniedException",
    "NotAuthorized",
    "NotAuthorizedException",
    "ResourceNotFoundException",
    "ResourceInUseException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSNotFoundException",
    "KMSInvalidStateException",
    "KMSOptInRequired",
    "InvalidKMSResourceException",
    "OptInRequired",
    "UnrecognizedClient",
    // S3: unknown key, no bucket, a region or endpoint that does not hold the bucket.
    "InvalidAccessKeyId",
    "NoSuchBucket",
    "InvalidBucketName",
    "AuthorizationHeaderMalformed",
    "PermanentRedirect",
    "AllAccessDisabled",
    "AccountProblem",
];

/// Expired temporary credentials: fetch new ones, then retry.
pub(crate) fn is_expired_token(code: Option<&str>) -> bool {
    matches!(code, Some("ExpiredTokenException" | "ExpiredToken" | "RequestExpired"))
}

/// An error answer: the code when it is one we know, else the status ([`http::classify`]:
/// other 4xx refuse the batch, 5xx retry).
pub(crate) fn classify(status: u16, code: Option<&str>, headers: &HeaderMap) -> Outcome {
    match code {
        Some(c) if RETRY.contains(&c) || is_expired_token(Some(c)) => Outcome::Retry {
            after: http::retry_after(headers),
        },
        Some(c) if PAUSE.contains(&c) => Outcome::Misconfigured,
        _ => http::classify(status, headers),
    }
}

/// Whether a per-record failure (`ErrorCode` of one record in a 200 answer) is worth another
/// try. Throttling and internal failures are; so is anything unknown (the engine's attempt limit
/// bounds it). Only the codes that say the record itself is bad are not.
pub(crate) fn record_retryable(code: &str) -> bool {
    !matches!(
        code,
        "InvalidArgument" | "InvalidArgumentException" | "ValidationException" | "MalformedDetail" | "MalformedEvent"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn codes() {
        let h = HeaderMap::new();
        let body =
            br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream s not found"}"#;
        let (code, message) = error_code(body, &h);
        assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(message.as_deref(), Some("Stream s not found"));
        assert_eq!(classify(400, code.as_deref(), &h), Outcome::Misconfigured);
        let mut h2 = HeaderMap::new();
        h2.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ThrottlingException:http://internal/"),
        );
        let (code, _) = error_code(b"not json", &h2);
        assert_eq!(code.as_deref(), Some("ThrottlingException"));
        assert_eq!(classify(400, code.as_deref(), &h), Outcome::Retry { after: None });
        assert_eq!(
            classify(400, Some("UnrecognizedClientException"), &h),
            Outcome::Misconfigured
        );
        assert_eq!(
            classify(403, Some("InvalidSignatureException"), &h),
            Outcome::Misconfigured
        );
        assert_eq!(
            classify(400, Some("ProvisionedThroughputExceededException"), &h),
            Outcome::Retry { after: None }
        );
        assert_eq!(
            classify(400, Some("ExpiredTokenException"), &h),
            Outcome::Retry { after: None }
        );
        assert_eq!(classify(400, Some("SerializationException"), &h), Outcome::Reject);
        assert_eq!(classify(413, None, &h), Outcome::Reject);
        assert_eq!(classify(503, None, &h), Outcome::Retry { after: None });
        let xml = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        let (code, message) = error_code(xml, &h);
        assert_eq!(code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(message.as_deref(), Some("The specified bucket does not exist"));
        assert_eq!(classify(404, code.as_deref(), &h), Outcome::Misconfigured);
        assert_eq!(classify(503, Some("SlowDown"), &h), Outcome::Retry { after: None });
        assert_eq!(classify(403, Some("InvalidAccessKeyId"), &h), Outcome::Misconfigured);
        assert!(record_retryable("ProvisionedThroughputExceededException"));
        assert!(!record_retryable("MalformedDetail"));
    }
}
