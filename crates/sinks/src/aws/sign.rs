//! SigV4 over one request, with the maintained `aws-sigv4` crate (the AWS SDK's signer).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign as sigv4_sign, SignableBody, SignableRequest, SigningSettings};
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
        .settings(SigningSettings::default())
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
