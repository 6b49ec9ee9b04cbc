//! Feature `cluster`: a fleet on a Redis (or Valkey) Cluster.
//!
//! - Commands go through redis-rs's cluster connection, which routes each by its key's slot.
//!   Every key of one circuit shares the hash tag `{<provider>:<tenant>}` (see `keys.rs`), so a
//!   pipeline about one circuit, and the quorum script's two keys, are served by one node.
//! - A pipeline's `PUBLISH` is sent after the rest of it ([`pipeline`]): redis-rs routes a
//!   channel like a key, to the channel's slot, which is not the circuit's; a classic PUBLISH is
//!   broadcast to every node of the cluster whichever node receives it.
//! - Announcements are received on a plain pub/sub connection to one seed at a time
//!   ([`Cluster::pubsub`]): since PUBLISH is broadcast, one node hears every replica. Each new
//!   session tries the seed after the last one used, so a dead node is left behind; the task
//!   pings it like the command connection, so a hung one is left too.
//! - redis-rs's fan-out commands skip nodes it holds no connection to, so PING does not notice
//!   a dead master: the first write to its slots does (it fails, and the session restarts).
//! - SCAN walks one node's keys, so a resync scans every master ([`masters`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, PubSub};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Arg, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::store::{within, Master};
use crate::FleetError;

pub(crate) struct Cluster {
    client: ClusterClient,
    /// One client per seed, for the pub/sub connection.
    seeds: Vec<Client>,
    /// The seed the next pub/sub connection tries first.
    next: AtomicUsize,
}

impl Cluster {
    /// Checks the seeds' URLs (an `Err` for field `seeds`); connects to nothing.
    pub(crate) fn new(
        seeds: &[String],
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Cluster, FleetError> {
        if seeds.is_empty() {
            return Err(FleetError::new(
                "seeds",
                "give at least one node of the cluster (`redis://host:port/`)",
            ));
        }
        // Named by position, not quoted: a URL may hold a password.
        let clients = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                Client::open(seed.as_str())
                    .map_err(|e| FleetError::new("seeds", &format!("seed {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout)
            .build()
            .map_err(|e| FleetError::new("seeds", &e.to_string()))?;
        Ok(Cluster {
            client,
            seeds: clients,
            next: AtomicUsize::new(0),
        })
    }

    /// The cluster connection: to the seeds, then (from the slot map one of them gives) to every
    /// node, each step bounded by the client's own timeouts, so the whole by twice both.
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<ClusterConnection, RedisError> {
        within(
            (connect_timeout + command_timeout) * 2,
            self.client.get_async_connection(),
        )
        .await
    }

    /// A pub/sub connection to the first seed that answers, from the one after the last used.
    pub(crate) async fn pubsub(&self, connect_timeout: Duration) -> Result<PubSub, RedisError> {
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..self.seeds.len() {
            let i = (start + k) % self.seeds.len();
            match within(connect_timeout, self.seeds[i].get_async_pubsub()).await {
                Ok(pubsub) => {
                    self.next.store(i + 1, Ordering::Relaxed);
                    return Ok(pubsub);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no seed to connect to").into()))
    }
}

/// One slot of each master, from `CLUSTER SLOTS` (as redis-rs reads the topology itself).
pub(crate) async fn masters(conn: &mut ClusterConnection) -> Result<Vec<Master>, RedisError> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let reply = conn
        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        .await?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
    let mut seen: Vec<(String, u16)> = Vec::new();
    let mut masters = Vec::new();
    for range in ranges {
        // [first slot, last slot, [master host, port, id, ...], replicas...]
        let (Some(first), Some(node)) = (range.first(), range.get(2)) else {
            continue;
        };
        let first: u16 = redis::from_redis_value(first.clone())?;
        let node: Vec<Value> = redis::from_redis_value(node.clone())?;
        let (Some(host), Some(port)) = (node.first(), node.get(1)) else {
            continue;
        };
        let address: (String, u16) = (
            redis::from_redis_value(host.clone())?,
            redis::from_redis_value(port.clone())?,
        );
        if !seen.contains(&address) {
            seen.push(address);
            masters.push(Master { slot: Some(first) });
        }
    }
    Ok(masters)
}

/// A pipeline through the cluster connection: its `PUBLISH`es after the rest, which is routed by
/// its keys' slot; the replies in the pipeline's order.
pub(crate) fn pipeline<'a>(
    conn: &'a mut ClusterConnection,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
) -> RedisFuture<'a, Vec<Value>> {
    let publishes = pipeline.cmd_iter().filter(|c| is_publish(c)).count();
    if publishes == 0 || publishes == pipeline.len() || pipeline.is_transaction() {
        return conn.req_packed_commands(pipeline, offset, count);
    }
    Box::pin(async move {
        let mut rest = redis::pipe();
        for cmd in pipeline.cmd_iter().filter(|c| !is_publish(c)) {
            rest.add_command(cmd.clone());
        }
        // Written first, announced after: a replica that hears of it finds the keys written.
        let mut written = conn
            .req_packed_commands(&rest, 0, rest.len())
            .await?
            .into_iter();
        let mut replies = Vec::with_capacity(pipeline.len());
        for cmd in pipeline.cmd_iter() {
            let reply = if is_publish(cmd) {
                conn.req_packed_command(cmd).await?
            } else {
                written.next().unwrap_or(Value::Nil)
            };
            replies.push(reply);
        }
        Ok(replies.into_iter().skip(offset).take(count).collect())
    })
}

fn is_publish(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(Arg::Simple(name)) if name.eq_ignore_ascii_case(b"PUBLISH"))
}

fn to(slot: u16) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
}

/// `cmd` on the master of `slot`, whatever its keys.
pub(crate) fn command_on<'a>(
    conn: &'a mut ClusterConnection,
    slot: u16,
    cmd: &'a Cmd,
) -> RedisFuture<'a, Value> {
    Box::pin(conn.route_command(cmd.clone(), RoutingInfo::SingleNode(to(slot))))
}

/// `pipeline` on the master of `slot`: keys of several slots of that master may meet in it.
pub(crate) fn pipeline_on<'a>(
    conn: &'a mut ClusterConnection,
    slot: u16,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(conn.route_pipeline(pipeline.clone(), offset, count, to(slot)))
}
