//! STS `AssumeRole` over the Query API (`Action=AssumeRole`, form-encoded, SigV4 with the base
//! keys), sent with the sink's own guarded HTTP client.

use std::time::SystemTime;

use jiff::Timestamp;

use super::config::RoleSettings;
use super::sign::{sign, Unsigned};
use super::Keys;
use crate::http;
use crate::{AttemptReport, Outcome, SinkEnv};

/// How long assumed credentials are asked to live.
pub(crate) const DURATION_SECONDS: u32 = 3600;
/// STS answers are a few KiB.
const ANSWER_LIMIT: usize = 64 * 1024;

/// What STS granted.
pub(crate) struct Grant {
    pub keys: Keys,
    pub expiration: Timestamp,
}

/// The form body of the `AssumeRole` call.
pub(crate) fn form(role: &RoleSettings, session_name: &str) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &role.role_arn)
        .append_pair("RoleSessionName", session_name)
        .append_pair("DurationSeconds", &DURATION_SECONDS.to_string());
    if let Some(id) = &role.external_id {
        form.append_pair("ExternalId", id);
    }
    form.finish()
}

/// Assumes `role` with `base`. Failures are reports for the whole attempt: STS throttling, 5xx
/// and network failures are `Retry`; a refusal (`AccessDenied`: wrong keys, a trust policy or
/// external id that does not match) is `Misconfigured` with STS's message.
pub(crate) async fn assume_role(
    client: &reqwest::Client,
    env: &SinkEnv,
    base: &Keys,
    role: &RoleSettings,
    region: &str,
    session_name: &str,
) -> Result<Grant, AttemptReport> {
    let url = &role.sts_url;
    if let Err(message) = http::check_url_literal(url, env) {
        return Err(AttemptReport::failed(Outcome::Misconfigured, message));
    }
    let body = form(role, session_name);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signed = sign(
        &Unsigned {
            method: "POST",
            url,
            headers: &[("content-type", content_type)],
            body: body.as_bytes(),
        },
        base,
        region,
        "sts",
        SystemTime::now(),
    )
    .map_err(|e| AttemptReport::failed(Outcome::Misconfigured, e))?;
    let mut request = client.post(url.clone()).header("content-type", content_type);
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let answer = http::exchange(request.body(body), ANSWER_LIMIT).await?;
    let text = base.scrub(&String::from_utf8_lossy(&answer.body));
    let target = http::url_target(url);
    if (200..300).contains(&answer.status) {
        return parse_grant(&text).ok_or_else(|| AttemptReport {
            outcome: Outcome::Misconfigured,
            status: Some(answer.status),
            error: Some(format!("STS AssumeRole at {target} answered without credentials")),
        });
    }
    let code = xml_text(&text, "Code").unwrap_or_default();
    let message = xml_text(&text, "Message").unwrap_or_else(|| answer.snippet());
    let outcome = match (answer.status, code.as_str()) {
        (_, "Throttling" | "ThrottlingException" | "RequestLimitExceeded") | (408 | 429 | 500..=599, _) => {
            Outcome::Retry {
                after: http::retry_after(&answer.headers),
            }
        }
        _ => Outcome::Misconfigured,
    };
    Err(AttemptReport {
        outcome,
        status: Some(answer.status),
        error: Some(base.scrub(&format!(
            "STS AssumeRole of {} at {target} answered HTTP {} {code}: {message}",
            role.role_arn, answer.status
        ))),
    })
}

/// The credentials in an `AssumeRoleResponse`.
pub(crate) fn parse_grant(xml: &str) -> Option<Grant> {
    let creds = xml_text(xml, "Credentials")?;
    let keys = Keys {
        access_key_id: xml_text(&creds, "AccessKeyId")?,
        secret_access_key: xml_text(&creds, "SecretAccessKey")?,
        session_token: Some(xml_text(&creds, "SessionToken")?),
    };
    let expiration = xml_text(&creds, "Expiration")?.parse::<Timestamp>().ok()?;
    Some(Grant { keys, expiration })
}

/// The text of the first `<tag>…</tag>`, with XML's five entities decoded.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    let raw = xml[start..start + len].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_grant() {
        let role = RoleSettings {
            role_arn: "arn:aws:iam::123456789012:role/x".into(),
            external_id: Some("ext 1".into()),
            sts_url: reqwest::Url::parse("https://sts.us-east-1.amazonaws.com/").unwrap(),
        };
        assert_eq!(
            form(&role, "sink-1"),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx\
             &RoleSessionName=sink-1&DurationSeconds=3600&ExternalId=ext+1"
        );
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
          <Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s/e+c</SecretAccessKey>
          <SessionToken>tok&amp;en</SessionToken><Expiration>2026-11-23T10:00:00Z</Expiration></Credentials>
          </AssumeRoleResult></AssumeRoleResponse>"#;
        let g = parse_grant(xml).unwrap();
        assert_eq!(g.keys.access_key_id, "ASIA1");
        assert_eq!(g.keys.secret_access_key, "s/e+c");
        assert_eq!(g.keys.session_token.as_deref(), Some("tok&en"));
        assert_eq!(g.expiration, "2026-11-23T10:00:00Z".parse::<Timestamp>().unwrap());
        assert!(parse_grant("<Error/>").is_none());
    }
}
