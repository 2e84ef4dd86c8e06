//! Cross-node wake-ups: every node LISTENs on one channel; each append transaction NOTIFYs
//! `"<head>:<tenant>"` for every tenant it moved, delivered on commit. The listener feeds the
//! node's `Notifier`, so a long-poll, SSE stream or sink lane on node B wakes within
//! milliseconds of a commit on node A, without polling.
//!
//! Notifications sent while the listening connection is down are lost, so after every
//! (re)connect the listener re-reads the heads of every tenant this node cares about.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use stop::Stop;

use crate::Notifier;

/// The NOTIFY channel for new heads.
pub(crate) const HEADS_CHANNEL: &str = "auditrelay_heads";

/// How long to wait before reconnecting after the listening connection failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// A tiny stop signal (the store crate does not depend on tokio-util).
pub(crate) mod stop {
    use tokio::sync::watch;

    #[derive(Clone)]
    pub(crate) struct Stop(watch::Receiver<bool>);

    impl Stop {
        pub(crate) fn new() -> (watch::Sender<bool>, Stop) {
            let (tx, rx) = watch::channel(false);
            (tx, Stop(rx))
        }

        pub(crate) async fn stopped(&mut self) {
            // An error means the sender is gone, which also means stop.
            let _ = self.0.wait_for(|stop| *stop).await;
        }
    }
}

/// Parses `"<head>:<tenant>"`.
fn parse(payload: &str) -> Option<(&str, u64)> {
    let (head, tenant) = payload.split_once(':')?;
    Some((tenant, head.parse().ok()?))
}

/// Re-reads the heads of every tenant the notifier knows and publishes the ones that moved.
async fn catch_up(pool: &PgPool, notifier: &Notifier) {
    let tenants = notifier.tenants();
    if tenants.is_empty() {
        return;
    }
    let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as("SELECT id, head FROM tenants WHERE id = ANY($1)")
        .bind(&tenants)
        .fetch_all(pool)
        .await;
    match rows {
        Ok(rows) => {
            for (tenant, head) in rows {
                notifier.publish(&tenant, head as u64);
            }
        }
        // The next reconnect tries again; readers still re-read on their own timers.
        Err(e) => tracing::warn!(error = %e, "could not catch up on tenant heads after reconnecting"),
    }
}

/// Runs until `stop`: listen, publish, reconnect on failure.
pub(crate) async fn run(url: String, pool: PgPool, notifier: Arc<Notifier>, mut stop: Stop) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(HEADS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.stopped() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for cross-node wake-ups; retrying");
                    tokio::select! {
                        _ = stop.stopped() => return,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                    }
                }
            },
        };
        tracing::debug!("listening for cross-node wake-ups");
        catch_up(&pool, &notifier).await;
        loop {
            let next = tokio::select! {
                _ = stop.stopped() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => match parse(notification.payload()) {
                    Some((tenant, head)) => notifier.publish(tenant, head),
                    None => tracing::warn!(
                        payload = notification.payload(),
                        "ignoring a malformed head notification"
                    ),
                },
                // The connection dropped and was re-established: what was sent meanwhile is lost.
                Ok(None) => catch_up(&pool, &notifier).await,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.stopped() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn payloads_carry_head_then_tenant() {
        assert_eq!(parse("42:acme"), Some(("acme", 42)));
        assert_eq!(parse("7:a:b"), Some(("a:b", 7)));
        assert_eq!(parse("x:acme"), None);
        assert_eq!(parse("acme"), None);
    }
}
