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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use url::Host;

use crate::{ConfigError, SinkEnv};

/// How long a save-time DNS lookup may take before the save is refused.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The sentence every refusal ends with, naming the switch that lifts it.
const POLICY: &str = "sinks may not reach private, loopback, link-local or metadata addresses unless the server runs \
                      with --allow-private-networks";

/// True when a sink may not connect to `ip` (unless private networks are allowed).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// Why `ip` is forbidden (`"loopback"`, `"private"`, …), or `None` for a public address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let reason = match (a, b) {
        _ if ip.is_unspecified() => "unspecified",
        (0, _) => "this-network (0.0.0.0/8)",
        (127, _) => "loopback",
        (10, _) | (192, 168) => "private",
        (172, 16..=31) => "private",
        (100, 64..=127) => "carrier-grade NAT (100.64.0.0/10)",
        (169, 254) if (c, d) == (169, 254) => "cloud metadata",
        (169, 254) => "link-local",
        (198, 18..=19) => "benchmarking (198.18.0.0/15)",
        (224..=239, _) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // Forms that carry an IPv4 address: the connection ends up at that IPv4 address (the kernel
    // for mapped ones, a translator for NAT64/SIIT, a relay for 6to4), so the IPv4 policy
    // decides. Otherwise `::ffff:127.0.0.1` would be a way around it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let low_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-compatible `::a.b.c.d` (deprecated by RFC 4291, never a real destination): refused
        // whole rather than judged by the IPv4 part, as nothing legitimate resolves to it.
        [0, 0, 0, 0, 0, 0, _, _] => return Some("IPv4-compatible (deprecated)"),
        // SIIT IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, _, _] => return v4_reason(low_v4),
        // Well-known NAT64 prefix 64:ff9b::/96 (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return v4_reason(low_v4),
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): translates into the operator's own network.
        [0x64, 0xff9b, 1, ..] => return Some("local-use NAT64 (64:ff9b:1::/48)"),
        // 6to4 2002:AABB:CCDD::/48 embeds the IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => {
            let v4 = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            return v4_reason(v4).map(|_| "6to4 form of a forbidden IPv4 address");
        }
        _ => {}
    }
    let reason = match s[0] {
        0xfc00..=0xfdff => "unique local (private, fc00::/7)",
        0xfe80..=0xfebf => "link-local",
        // Deprecated site-local fec0::/10: private by definition, still honoured by some stacks.
        0xfec0..=0xfeff => "site-local (deprecated)",
        0xff00..=0xffff => "multicast",
        _ => return None,
    };
    Some(reason)
}

/// Parses a sink URL and checks what needs no network: scheme, host, no credentials.
pub fn parse_url(raw: &str, field: &str) -> Result<Url, ConfigError> {
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
            .find_map(|a| forbidden_reason(a.ip()).map(|reason| (a.ip(), reason)))
        {
            return Err(ConfigError::new(
                field,
                format!("`{name}` resolves to {ip}, a {reason} address; {POLICY}"),
            ));
        }
    }
    Ok(url)
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
    if env.allow_private_networks {
        return Ok(());
    }
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err("URL has no host".to_owned()),
    };
    match forbidden_reason(ip) {
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

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn forbidden_ipv4_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.0.1",
            "169.254.169.254",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "198.17.255.255",
            "198.20.0.1",
            "192.167.1.1",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "223.255.255.255",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6_ranges() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::2",
            // IPv4-mapped, IPv4-compatible, SIIT, NAT64 and 6to4 forms of forbidden IPv4.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::",
        ] {
            assert!(forbidden(ip), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6_allowed() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::1.1.1.1",
            "2002:808:808::1",
            "fbff::1",
        ] {
            assert!(!forbidden(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn reasons_name_the_range() {
        let reason = |s: &str| forbidden_reason(s.parse().unwrap()).unwrap();
        assert_eq!(reason("169.254.169.254"), "cloud metadata");
        assert_eq!(reason("127.0.0.1"), "loopback");
        assert_eq!(reason("::ffff:127.0.0.1"), "loopback");
        assert_eq!(reason("10.1.2.3"), "private");
        assert_eq!(reason("fe80::1"), "link-local");
    }

    #[test]
    fn parse_url_refuses_bad_shapes() {
        let err = |raw: &str| parse_url(raw, "config.url").unwrap_err();
        assert!(err("not a url").message.contains("not a valid URL"));
        assert!(err("ftp://example.com/").message.contains("http or https"));
        assert!(err("file:///etc/passwd").message.contains("http or https"));
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
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
        ] {
            let url = parse_url(raw, "u").unwrap();
            assert!(check_url_literal(&url, &env).is_err(), "{raw} -> {url}");
        }
        let url = parse_url("http://example.com/", "u").unwrap();
        assert!(check_url_literal(&url, &env).is_ok());
        let open = SinkEnv {
            allow_private_networks: true,
        };
        assert!(check_url_literal(&parse_url("http://127.0.0.1/", "u").unwrap(), &open).is_ok());
    }
}
