//! The SSRF guard: which addresses a sink may reach, and the URL checks at save and send time.
//!
//! Sinks run inside the server, so a tenant who can point one at `http://169.254.169.254/` or
//! `http://localhost:6379/` could use the server to reach what only the server can reach. Unless
//! the operator allows private networks, three checks keep sinks on the public internet:
//! - at save time, [`check_url`] refuses a host that is, or resolves to, a forbidden address;
//! - at send time, the client's resolver ([`super::client`]) drops forbidden addresses, so a name
//!   re-pointed after the save (DNS rebinding) still cannot reach them: the address checked is
//!   the address connected to;
//! - at send time, [`check_url_literal`] covers IP-literal hosts, for which reqwest never calls
//!   the resolver.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use url::Host;

use super::ip_policy::forbidden_reason;
use crate::{ConfigError, Secrets, SinkEnv};

/// How long a save-time DNS lookup may take before the save is refused.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The sentence every refusal ends with, naming the switch that lifts it.
pub(crate) const POLICY: &str = "sinks may not reach private, loopback, link-local or metadata addresses unless the \
                                 server runs with --allow-private-networks (or --allow-private-cidrs naming the range)";

/// Why a sink under `env` may not connect to `ip`, or `None` when it may: the address policy,
/// lifted entirely by `allow_private_networks` or for the operator's allow-listed ranges.
pub fn refusal(env: &SinkEnv, ip: IpAddr) -> Option<&'static str> {
    if env.allow_private_networks || env.allowed_private_cidrs.iter().any(|c| c.contains(ip)) {
        return None;
    }
    forbidden_reason(ip)
}

/// Parses a sink URL and checks what needs no network: scheme, host, no credentials.
pub fn parse_url(raw: &str, field: &str) -> Result<Url, ConfigError> {
    // URL parsing drops these silently (spaces and controls at the ends, tabs and line breaks
    // anywhere): a pasted URL carrying them is refused instead, as the published schema says.
    if raw.starts_with(' ') || raw.ends_with(' ') || raw.chars().any(char::is_control) {
        return Err(ConfigError::new(
            field,
            "must not contain control characters or start or end with a space",
        ));
    }
    // A URI is ASCII (RFC 3986, the schema's `format: uri`): an international host name is
    // written in punycode (`xn--…`), which also keeps look-alike characters out of an address.
    if !raw.is_ascii() {
        return Err(ConfigError::new(
            field,
            "must be ASCII: write an international host name in punycode (xn--…) and percent-encode the path",
        ));
    }
    // `https:host` and backslashes are URLs to a browser's parser (which guesses), not to a
    // reader of the configuration: the server takes the unambiguous form only.
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || raw.contains('\\') {
        return Err(ConfigError::new(
            field,
            "must be an absolute http:// or https:// URL (no backslashes)",
        ));
    }
    let url = Url::parse(raw).map_err(|e| ConfigError::new(field, format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            field,
            format!("scheme must be http or https, not `{}`", url.scheme()),
        ));
    }
    if url.host().is_none() {
        return Err(ConfigError::new(field, "URL must name a host"));
    }
    // Credentials in a URL end up in logs, API answers and error messages; and this config is not
    // encrypted at rest, unlike secrets.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            field,
            "URL must not contain a user name or password (they would show in logs and API answers)",
        ));
    }
    Ok(url)
}

/// Save-time validation of a kind whose one endpoint is its `config.url` and that generates no
/// secrets (`otlp`, `generic_https`): that URL against the SSRF policy, resolving its host.
pub(crate) async fn validate_config_url(url: &Url, env: &SinkEnv) -> Result<Secrets, ConfigError> {
    check_url(url.as_str(), "config.url", env).await?;
    Ok(Secrets::new())
}

/// Save-time check of a sink URL: [`parse_url`], then (unless private networks are allowed) the
/// address policy on an IP-literal host, or on every address a host name resolves to. A name
/// with one forbidden address among public ones is refused too: which one a connection would use
/// is up to the resolver.
pub async fn check_url(raw: &str, field: &str, env: &SinkEnv) -> Result<Url, ConfigError> {
    let url = parse_url(raw, field)?;
    if env.allow_private_networks {
        return Ok(url);
    }
    check_url_literal(&url, env).map_err(|m| ConfigError::new(field, m))?;
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = resolve(name, port).await.map_err(|m| ConfigError::new(field, m))?;
        if let Some((ip, reason)) = addrs
            .iter()
            .find_map(|a| refusal(env, a.ip()).map(|reason| (a.ip(), reason)))
        {
            return Err(ConfigError::new(
                field,
                format!("`{name}` resolves to {ip}, a {reason} address; {POLICY}"),
            ));
        }
    }
    Ok(url)
}

/// `host:port` as a socket address is written: IPv6 literals in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// [`check_url`] for a non-HTTP destination (a syslog host, a Kafka broker): the same parser —
/// so `2130706433` or `0x7f.1` are judged by the address they mean — the same policy and the
/// same messages.
pub async fn check_host(host: &str, port: u16, field: &str, env: &SinkEnv) -> Result<(), ConfigError> {
    check_url(&format!("https://{}/", host_port(host, port)), field, env)
        .await
        .map(|_| ())
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await {
        Err(_) => Err(format!(
            "could not resolve `{name}` within {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("`{name}` does not resolve: {e}")),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("`{name}` resolves to no address"))
            } else {
                Ok(addrs)
            }
        }
    }
}

/// Send-time check of an IP-literal host (reqwest connects to those without calling the
/// guarding resolver). Host names pass: the resolver checks what they resolve to.
pub fn check_url_literal(url: &Url, env: &SinkEnv) -> Result<(), String> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err("URL has no host".to_owned()),
    };
    match refusal(env, ip) {
        Some(reason) => Err(format!("{ip} is a {reason} address; {POLICY}")),
        None => Ok(()),
    }
}

/// The guarding resolver's refusal: every address of `host` is forbidden. Found again in a
/// transport error's source chain, it makes the attempt `Misconfigured`, since retrying cannot
/// help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{host}` resolves only to private/loopback addresses ({addrs}); {POLICY}")]
pub struct PrivateAddressRefused {
    pub host: String,
    pub addrs: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_url_refuses_bad_shapes() {
        let err = |raw: &str| parse_url(raw, "config.url").unwrap_err();
        assert!(err("not a url").message.contains("http:// or https://"));
        assert!(err("ftp://example.com/").message.contains("http:// or https://"));
        assert!(err("file:///etc/passwd").message.contains("http:// or https://"));
        assert!(err("https:example.com").message.contains("absolute"));
        assert!(err("https://example.com\\hook").message.contains("backslash"));
        assert!(err("https://bücher.example/").message.contains("punycode"));
        assert!(err("https://[::1").message.contains("not a valid URL"));
        let e = err("https://user:pw@example.com/");
        assert_eq!(e.field, "config.url");
        assert!(e.message.contains("user name or password"), "{e}");
        assert!(!e.to_string().contains("pw"), "the password must not be echoed: {e}");
        assert!(err("https://user@example.com/").message.contains("user name"));
        assert!(parse_url("https://example.com:8443/hook?x=1", "config.url").is_ok());
    }

    #[test]
    fn literal_check_sees_through_url_normalisation() {
        let env = SinkEnv::default();
        // WHATWG URL parsing turns these into 127.0.0.1; the check runs on the parsed host.
        for raw in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0177.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://[::ffff:7f00:1]/",
        ] {
            let url = parse_url(raw, "u").unwrap();
            assert!(check_url_literal(&url, &env).is_err(), "{raw} -> {url}");
        }
        let url = parse_url("http://example.com/", "u").unwrap();
        assert!(check_url_literal(&url, &env).is_ok());
        let open = SinkEnv {
            allow_private_networks: true,
            ..SinkEnv::default()
        };
        assert!(check_url_literal(&parse_url("http://127.0.0.1/", "u").unwrap(), &open).is_ok());
    }

    #[test]
    fn the_url_parser_normalises_odd_ipv4_spellings() {
        // The check relies on this: the host is judged as the address the text means.
        for raw in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
        ] {
            let url = parse_url(raw, "u").unwrap();
            assert_eq!(url.host(), Some(Host::Ipv4(std::net::Ipv4Addr::LOCALHOST)), "{raw}");
        }
    }

    #[test]
    fn an_allow_list_lifts_the_policy_for_its_ranges_only() {
        let env = SinkEnv {
            allowed_private_cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fd00:1::/32".parse().unwrap()],
            ..SinkEnv::default()
        };
        let check = |raw: &str| check_url_literal(&parse_url(raw, "u").unwrap(), &env);
        assert!(check("http://10.1.2.3/").is_ok());
        assert!(
            check("http://[::ffff:10.0.0.1]/").is_ok(),
            "mapped form of an allowed address"
        );
        assert!(check("http://[fd00:1::5]/").is_ok());
        for refused in [
            "http://192.168.0.1/",
            "http://127.0.0.1/",
            "http://169.254.169.254/",
            "http://[fd00:2::1]/",
        ] {
            let err = check(refused).unwrap_err();
            assert!(err.contains("--allow-private-cidrs"), "{refused}: {err}");
        }
        assert_eq!(refusal(&env, "10.9.9.9".parse().unwrap()), None);
        assert_eq!(refusal(&env, "11.0.0.1".parse().unwrap()), None, "public stays allowed");
        assert_eq!(refusal(&env, "192.168.1.1".parse().unwrap()), Some("private"));
    }
}
