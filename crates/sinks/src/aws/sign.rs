//! SigV4 over one request, with the maintained `aws-sigv4` crate (the AWS SDK's signer), for the
//! JSON services ([`sign`]) and for S3 ([`sign_s3`]: the path signed as sent, the payload hash
//! in `x-amz-content-sha256`).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign as sigv4_sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use reqwest::Url;

use super::Keys;

/// One request to sign.
pub(crate) struct Unsigned<'a> {
    pub method: &'a str,
    pub url: &'a Url,
    /// Headers to sign besides `host` (which is signed as the URL says).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers to add to `request` (`x-amz-date`, `authorization`, `x-amz-security-token`)
/// to sign it for `service` in `region` at `time`. The error never contains a secret.
pub(crate) fn sign(
    request: &Unsigned<'_>,
    keys: &Keys,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    sign_with(request, keys, region, service, time, SigningSettings::default())
}

/// [`sign`] for S3, which differs from the other services in two ways: the canonical URI is the
/// path exactly as sent (already encoded once, see [`s3_key_path`]; not encoded again, not
/// normalised), and the body's SHA-256 goes in an `x-amz-content-sha256` header (signed, and
/// returned among the headers to add).
pub(crate) fn sign_s3(
    request: &Unsigned<'_>,
    keys: &Keys,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    sign_with(request, keys, region, "s3", time, settings)
}

/// An S3 object key as a URL path: each `/`-separated segment percent-encoded as SigV4 wants
/// (everything but `A-Za-z0-9-._~`), so the path sent and the path signed are the same bytes.
pub(crate) fn s3_key_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, segment) in key.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn sign_with(
    request: &Unsigned<'_>,
    keys: &Keys,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<Vec<(&'static str, String)>, String> {
    let Unsigned {
        method,
        url,
        headers,
        body,
    } = *request;
    let credentials = Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        keys.session_token.clone(),
        None,
        "auditrelay",
    );
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let request = SignableRequest::new(method, url.as_str(), headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _signature) = sigv4_sign(request, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    let (signed, _params) = instructions.into_parts();
    Ok(signed.into_iter().map(|h| (h.name(), h.value().to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_encoded_once_per_segment() {
        assert_eq!(
            s3_key_path("ext/src/region=eu-west-1/a b+c~d.parquet"),
            "ext/src/region%3Deu-west-1/a%20b%2Bc~d.parquet"
        );
        assert_eq!(s3_key_path("é"), "%C3%A9");
    }

    /// The keys of AWS's published S3 signing examples.
    fn s3_example_keys() -> Keys {
        Keys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// AWS's published S3 example "GET Object" (header-based authentication, S3 API reference):
    /// `GET /test.txt` from examplebucket with `Range: bytes=0-9`, an empty body.
    #[test]
    fn s3_published_get_example() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let keys = s3_example_keys();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        let headers = sign_s3(
            &Unsigned {
                method: "GET",
                url: &url,
                headers: &[("range", "bytes=0-9")],
                body: b"",
            },
            &keys,
            "us-east-1",
            time,
        )
        .unwrap();
        let auth = headers.iter().find(|(n, _)| *n == "authorization").unwrap();
        assert_eq!(
            auth.1,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS's published S3 example ("Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk", PUT Object): `PUT /test$file.text` to
    /// examplebucket with `Date`, `x-amz-storage-class` and the body "Welcome to Amazon S3.".
    #[test]
    fn s3_published_put_example() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test%24file.text").unwrap();
        let keys = s3_example_keys();
        // 20130524T000000Z
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        let headers = sign_s3(
            &Unsigned {
                method: "PUT",
                url: &url,
                headers: &[
                    ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ],
                body: b"Welcome to Amazon S3.",
            },
            &keys,
            "us-east-1",
            time,
        )
        .unwrap();
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(
            get("x-amz-content-sha256"),
            Some("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        );
        assert_eq!(
            get("authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            )
        );
    }

    /// AWS's published SigV4 example (IAM `ListUsers`, "Create a signed AWS API request"):
    /// GET https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08 at 20150830T123600Z.
    #[test]
    fn aws_published_example() {
        let url = Url::parse("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08").unwrap();
        let keys = Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign(
            &Unsigned {
                method: "GET",
                url: &url,
                headers: &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                body: b"",
            },
            &keys,
            "us-east-1",
            "iam",
            time,
        )
        .unwrap();
        let auth = headers.iter().find(|(n, _)| *n == "authorization").unwrap();
        assert_eq!(
            auth.1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }
}
