//! [`FleetInspector`]: what the store says of a few circuits, for an operator's page: which
//! replica's opening the fleet runs on, and which replica holds the probe lease. Reads only, on
//! a connection of its own made at its first use: never on the call path, and never in the way
//! of the background task's commands.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::Mutex;

use crate::keys::Layout;
use crate::store::{Conn, Store};
use crate::timeout::within;

/// Circuits one [`FleetInspector::circuits`] reads at most (two keys each, in one pipeline).
pub const MAX_INSPECTED: usize = 1_000;

/// Reads what the fleet's store holds of some circuits, from [`RedisFleet::inspector`]; cheap
/// to clone. Each read is one pipeline of `GET`s, within the fleet's `command_timeout`.
///
/// [`RedisFleet::inspector`]: crate::RedisFleet::inspector
#[derive(Clone)]
pub struct FleetInspector(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) layout: Layout,
    pub(crate) replica: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// Made at the first read, made again after a failed one.
    pub(crate) conn: Mutex<Option<Conn>>,
}

/// What the store holds of one circuit, from [`FleetInspector::circuits`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetCircuit {
    /// The circuit's provider.
    pub provider: String,
    /// The circuit's tenant.
    pub tenant: String,
    /// The replica whose opening every replica runs on (the one that tripped it, or the one
    /// whose failed probe reopened it), while the store holds an opening.
    pub opened_by: Option<String>,
    /// The backoff level of that opening.
    pub level: Option<u32>,
    /// The replica that holds the probe lease (it probes for the fleet), if one does.
    pub probe_lease: Option<String>,
}

impl FleetInspector {
    /// This replica's id in the store (random, made when the fleet was built): what
    /// [`FleetCircuit::opened_by`] and [`FleetCircuit::probe_lease`] say when it is this one.
    pub fn replica(&self) -> &str {
        &self.0.replica
    }

    /// What the store holds of each of `circuits` (provider, tenant), in their order: the first
    /// [`MAX_INSPECTED`] only. `None` when the store could not be reached or did not answer
    /// within the fleet's timeouts (it is tried again at the next read).
    pub async fn circuits(&self, circuits: &[(String, String)]) -> Option<Vec<FleetCircuit>> {
        let circuits = &circuits[..circuits.len().min(MAX_INSPECTED)];
        if circuits.is_empty() {
            return Some(Vec::new());
        }
        let inner = &self.0;
        let mut pipe = redis::pipe();
        for (provider, tenant) in circuits {
            pipe.cmd("GET").arg(inner.layout.open_key(provider, tenant));
            pipe.cmd("GET")
                .arg(inner.layout.probe_key(provider, tenant));
        }
        let mut slot = inner.conn.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => inner
                .store
                .connect(inner.connect_timeout, inner.command_timeout)
                .await
                .ok()?,
        };
        let replies: Vec<Value> = within(inner.command_timeout, pipe.query_async(&mut conn))
            .await
            .ok()?;
        *slot = Some(conn);
        drop(slot);
        let mut replies = replies.into_iter();
        let mut text = || match replies.next() {
            Some(value) => redis::from_redis_value::<Option<String>>(value)
                .ok()
                .flatten(),
            None => None,
        };
        Some(
            circuits
                .iter()
                .map(|(provider, tenant)| {
                    let opening = text();
                    let (level, opened_by) = opening.as_deref().map_or((None, None), parse);
                    FleetCircuit {
                        provider: provider.clone(),
                        tenant: tenant.clone(),
                        opened_by,
                        level,
                        probe_lease: text(),
                    }
                })
                .collect(),
        )
    }
}

/// An opening's value, `<level>:<margin ms>:<replica>:<TTL ms>` (`keys.rs`): its level and
/// replica.
fn parse(value: &str) -> (Option<u32>, Option<String>) {
    let mut fields = value.split(':');
    let level = fields.next().and_then(|l| l.parse().ok());
    let replica = fields.nth(1).filter(|r| !r.is_empty()).map(str::to_owned);
    (level, replica)
}

impl fmt::Debug for FleetInspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetInspector")
            .field("replica", &self.0.replica)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn an_openings_value_gives_its_level_and_replica() {
        assert_eq!(
            parse("2:60000:00ab12cd34ef5678:90000"),
            (Some(2), Some("00ab12cd34ef5678".to_owned()))
        );
        assert_eq!(parse("garbage"), (None, None));
    }
}
