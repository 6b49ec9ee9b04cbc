//! What the background task talks to: one Redis/Valkey node, or (feature `cluster`) a Redis
//! Cluster. The task's commands are the same for both; the few places where a cluster differs
//! (connecting, where pub/sub listens, which nodes a resync scans) are answered here and in
//! `cluster.rs`, so that `task.rs` reads as if there were one node.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

#[cfg(feature = "cluster")]
use crate::cluster::Cluster;
use crate::timeout::within;

/// Where a fleet's facts live.
// One per fleet, held by its task: which variant is the larger depends on the features (TLS
// makes a client larger), and neither size matters.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Store {
    Node(Client),
    #[cfg(feature = "cluster")]
    Cluster(Cluster),
}

/// The command connection: every key of one circuit goes to the node that holds its slot. A
/// clone is a handle on the same connection (redis-rs multiplexes them).
#[derive(Clone)]
pub(crate) enum Conn {
    Node(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A node whose keys a resync must scan: the only one, or one master of a cluster (named by a
/// slot it serves, so that redis-rs's own slot map finds its connection).
pub(crate) struct Master {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) slot: Option<u16>,
}

impl Store {
    /// The command connection, within `connect_timeout` (a cluster's: see `Cluster::connect`);
    /// each command then within `command_timeout`.
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Conn, RedisError> {
        match self {
            Store::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(command_timeout));
                within(
                    connect_timeout,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map(Conn::Node)
            }
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => cluster
                .connect(connect_timeout, command_timeout)
                .await
                .map(Conn::Cluster),
        }
    }

    /// A pub/sub connection (not yet subscribed), within `connect_timeout` (per node tried).
    pub(crate) async fn pubsub(&self, connect_timeout: Duration) -> Result<PubSub, RedisError> {
        match self {
            Store::Node(client) => within(connect_timeout, client.get_async_pubsub()).await,
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => cluster.pubsub(connect_timeout).await,
        }
    }
}

impl Conn {
    /// The nodes that together hold every key of the store: SCAN is per node, so a resync scans
    /// each of them.
    pub(crate) async fn masters(&mut self) -> Result<Vec<Master>, RedisError> {
        match self {
            Conn::Node(_) => Ok(vec![Master { slot: None }]),
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => Ok(crate::cluster::masters(conn)
                .await?
                .into_iter()
                .map(|slot| Master { slot: Some(slot) })
                .collect()),
        }
    }

    /// This connection with every command (and pipeline) sent to `master`, whatever its keys.
    pub(crate) fn on(&mut self, master: &Master) -> OnMaster<'_> {
        OnMaster {
            conn: self,
            slot: master.slot,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => crate::cluster::pipeline(conn, pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(conn) => conn.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// [`Conn::on`]: commands to one master, for the SCAN of a resync and the reads of what it found.
pub(crate) struct OnMaster<'a> {
    conn: &'a mut Conn,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    slot: Option<u16>,
}

impl ConnectionLike for OnMaster<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match (&mut *self.conn, self.slot) {
            #[cfg(feature = "cluster")]
            (Conn::Cluster(conn), Some(slot)) => crate::cluster::command_on(conn, slot, cmd),
            (conn, _) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match (&mut *self.conn, self.slot) {
            #[cfg(feature = "cluster")]
            (Conn::Cluster(conn), Some(slot)) => {
                crate::cluster::pipeline_on(conn, slot, pipeline, offset, count)
            }
            (conn, _) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// The `run_id` of the server that answered `INFO server`, or of every master of a cluster
/// (which answers with a map of each one's reply), sorted and joined.
pub(crate) fn run_id(info: Value) -> Option<String> {
    let replies = match info {
        Value::Map(replies) => replies.into_iter().map(|(_, reply)| reply).collect(),
        reply => vec![reply],
    };
    let mut ids = Vec::with_capacity(replies.len());
    for reply in replies {
        let text: String = redis::from_redis_value(reply).ok()?;
        let id = text.lines().find_map(|line| line.strip_prefix("run_id:"))?;
        ids.push(id.trim().to_owned());
    }
    ids.sort_unstable();
    (!ids.is_empty()).then(|| ids.join(","))
}
