//! The one HTTP client every HTTP sink shares, per SSRF policy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf::{refusal, PrivateAddressRefused};
use crate::SinkEnv;

/// Sent on every request, so receivers can tell auditrelay's traffic apart.
pub const USER_AGENT: &str = concat!("auditrelay/", env!("CARGO_PKG_VERSION"));

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are kept this long: batches to a busy receiver then reuse one
/// connection (and its TLS session) instead of paying a handshake per batch.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client could not be built (the TLS backend failed to initialise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not build the HTTP client: {0}")]
pub struct ClientError(String);

// One client per policy, shared by every sink, so connection pools are shared too. A server
// has one policy; tests have a few. The result is kept, not retried: building depends only on
// the policy and constants, so a failure would repeat.
type Cached = (SinkEnv, Result<reqwest::Client, ClientError>);
static CLIENTS: Mutex<Vec<Cached>> = Mutex::new(Vec::new());

/// The shared client for `env`'s policy (cheap: a clone shares the pool).
///
/// - `no_proxy()`: a system proxy (`HTTPS_PROXY`) would resolve and connect on our behalf,
///   bypassing the guarding resolver.
/// - No redirects: a 3xx is a failure (Standard Webhooks), and following one would let a public
///   receiver bounce us to a private address.
/// - HTTP/1.1 with keep-alive: what every webhook receiver speaks; one request per connection at
///   a time matches the engine's in-flight limit.
/// - Unless `env.allow_private_networks`, a resolver that drops forbidden addresses (those not
///   in `env.allowed_private_cidrs`).
///
/// Building cannot fail in practice (rustls with bundled roots and fixed settings), but the
/// error is returned rather than panicking in a server.
pub fn client(env: &SinkEnv) -> Result<reqwest::Client, ClientError> {
    // A poisoned lock only means another thread panicked while pushing; the list is still valid.
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, cached)) = clients.iter().find(|(policy, _)| policy == env) {
        return cached.clone();
    }
    let built = build(env);
    clients.push((env.clone(), built.clone()));
    built
}

fn build(env: &SinkEnv) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(60))
        .http1_only()
        .user_agent(USER_AGENT);
    if !env.allow_private_networks {
        builder = builder.dns_resolver(Arc::new(PublicOnlyResolver { env: env.clone() }));
    }
    builder.build().map_err(|e| ClientError(e.to_string()))
}

/// Resolves with the system resolver (through tokio) and keeps only addresses a sink may reach.
/// Checking here, at connect time, means the address checked is the address connected to, so a
/// name re-pointed at a private address after the save-time check (DNS rebinding) gains nothing.
#[derive(Debug, Clone)]
struct PublicOnlyResolver {
    env: SinkEnv,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let env = self.env.clone();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in afterwards.
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (refused, public): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|a| refusal(&env, a.ip()).is_some());
            if public.is_empty() && !refused.is_empty() {
                let addrs = refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(PrivateAddressRefused { host, addrs }) as Box<_>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_and_are_cached_per_policy() {
        let guarded = SinkEnv::default();
        let open = SinkEnv {
            allow_private_networks: true,
            ..SinkEnv::default()
        };
        assert!(client(&guarded).is_ok());
        assert!(client(&open).is_ok());
        assert!(client(&guarded).is_ok());
        let clients = CLIENTS.lock().unwrap();
        assert!(clients.iter().any(|(p, _)| p == &guarded), "guarded policy cached");
        assert!(clients.iter().any(|(p, _)| p == &open), "open policy cached");
        assert_eq!(clients.iter().filter(|(p, _)| p == &guarded).count(), 1, "built once");
        assert!(USER_AGENT.starts_with("auditrelay/"));
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_only_to_private_addresses() {
        let err = PublicOnlyResolver {
            env: SinkEnv::default(),
        }
        .resolve("localhost".parse().unwrap())
        .await
        .err()
        .expect("localhost must be refused");
        let refused = err.downcast_ref::<PrivateAddressRefused>().expect("typed refusal");
        assert_eq!(refused.host, "localhost");
        assert!(
            err.to_string().contains("resolves only to private/loopback addresses"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resolver_keeps_allow_listed_ranges_only() {
        let env = SinkEnv {
            allowed_private_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
            ..SinkEnv::default()
        };
        let addrs: Vec<SocketAddr> = PublicOnlyResolver { env }
            .resolve("localhost".parse().unwrap())
            .await
            .expect("127.0.0.0/8 is allow-listed")
            .collect();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "only the allow-listed family survives (::1 is not in 127.0.0.0/8): {addrs:?}"
        );
    }
}
