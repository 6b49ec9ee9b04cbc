//! Feature `cluster`: a fleet on a Redis (or Valkey) Cluster.
//!
//! - Commands go through redis-rs's cluster connection, which routes each by its key's slot.
//!   Every key of one circuit shares the hash tag `{<provider>:<tenant>}` (see `keys.rs`), so a
//!   pipeline about one circuit, and the quorum script's two keys, are served by one node.
//! - A pipeline is split by slot, and its `PUBLISH` sent after the rest ([`pipeline`]): redis-rs
//!   sends a pipeline to one node, and routes a channel like a key, to the channel's slot,
//!   which is not the circuit's; a classic PUBLISH is broadcast to every node of the cluster
//!   whichever node receives it.
//! - Announcements are received on a plain pub/sub connection to one seed at a time
//!   ([`Cluster::pubsub`]): since PUBLISH is broadcast, one node hears every replica. Each new
//!   session tries the seed after the last one used, so a dead node is left behind; the task
//!   pings it like the command connection, so a hung one is left too.
//! - redis-rs's fan-out commands skip nodes it holds no connection to, so PING does not notice
//!   a dead master: the first write to its slots does (it fails, and the session restarts).
//! - SCAN walks one node's keys, so a resync scans every master ([`masters`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, PubSub};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Arg, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::error::FleetError;
use crate::timeout::within;
use crate::tls::{self, TlsSettings};

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
        tls: &TlsSettings,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Cluster, FleetError> {
        if seeds.is_empty() {
            return Err(FleetError::new(
                "seeds",
                "give at least one node of the cluster (`redis://host:port/`)",
            ));
        }
        // Each seed checked as one server's URL is (TLS settings included), its fault named by
        // position, not quoted: a URL may hold a password.
        let clients = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                tls::client(seed, tls).map_err(|e| match e.field {
                    "url" => FleetError::new("seeds", &format!("seed {i}: {}", e.message)),
                    _ => e,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout);
        #[cfg(feature = "tls")]
        let builder = if tls.root.is_some() || tls.client.is_some() {
            builder.certs(redis::TlsCertificates {
                client_tls: tls
                    .client
                    .as_ref()
                    .map(|(cert, key)| redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }),
                root_cert: tls.root.clone(),
            })
        } else {
            builder
        };
        let client = builder
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
pub(crate) async fn masters(conn: &mut ClusterConnection) -> Result<Vec<u16>, RedisError> {
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
            masters.push(first);
        }
    }
    Ok(masters)
}

/// A pipeline through the cluster connection, which sends a pipeline to one node: its commands
/// grouped by their keys' slot (a group per circuit: its keys share one), the groups sent at
/// once, its `PUBLISH`es after them all; the replies in the pipeline's order.
pub(crate) fn pipeline<'a>(
    conn: &'a mut ClusterConnection,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
) -> RedisFuture<'a, Vec<Value>> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut groups: Vec<(Option<Route>, Vec<usize>)> = Vec::new();
    // A batch of races holds thousands of circuits: groups found by route, not by a scan.
    let mut group_of: HashMap<Option<Route>, usize> = HashMap::new();
    let mut publishes = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        if is_publish(cmd) {
            publishes.push(i);
            continue;
        }
        let route = match first_key(cmd) {
            Some(Arg::Simple(key)) => Some(Route::with_key(key, SlotAddr::Master)),
            _ => None,
        };
        let group = *group_of.entry(route).or_insert_with(|| {
            groups.push((route, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(i);
    }
    if pipeline.is_transaction() || (groups.len() <= 1 && publishes.is_empty()) {
        return conn.req_packed_commands(pipeline, offset, count);
    }
    Box::pin(async move {
        let sent = groups.iter().map(|(route, group)| {
            let mut part = redis::pipe();
            for &i in group {
                part.add_command(cmds[i].clone());
            }
            // A handle on the same connection (redis-rs multiplexes them).
            let mut conn = conn.clone();
            let to = route.map_or(SingleNodeRoutingInfo::Random, to);
            async move { conn.route_pipeline(part, 0, group.len(), to).await }
        });
        // Written first, announced after: a replica that hears of it finds the keys written.
        let written = futures_util::future::try_join_all(sent).await?;
        let mut replies = vec![Value::Nil; pipeline.len()];
        for ((_, group), values) in groups.iter().zip(written) {
            for (&i, value) in group.iter().zip(values) {
                replies[i] = value;
            }
        }
        for i in publishes {
            replies[i] = conn.req_packed_command(cmds[i]).await?;
        }
        Ok(replies.into_iter().skip(offset).take(count).collect())
    })
}

/// The first key of a command: its first argument, or for a script (`EVAL`, `EVALSHA`) the
/// first after the script and the key count.
fn first_key(cmd: &Cmd) -> Option<Arg<&[u8]>> {
    let script = matches!(
        cmd.args_iter().next(),
        Some(Arg::Simple(name)) if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA")
    );
    cmd.args_iter().nth(if script { 3 } else { 1 })
}

fn is_publish(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(Arg::Simple(name)) if name.eq_ignore_ascii_case(b"PUBLISH"))
}

fn to(route: Route) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(route)
}

fn master(slot: u16) -> SingleNodeRoutingInfo {
    to(Route::new(slot, SlotAddr::Master))
}

/// `cmd` on the master of `slot`, whatever its keys.
pub(crate) fn command_on<'a>(
    conn: &'a mut ClusterConnection,
    slot: u16,
    cmd: &'a Cmd,
) -> RedisFuture<'a, Value> {
    Box::pin(conn.route_command(cmd.clone(), RoutingInfo::SingleNode(master(slot))))
}

/// `pipeline` on the master of `slot`: keys of several slots of that master may meet in it.
pub(crate) fn pipeline_on<'a>(
    conn: &'a mut ClusterConnection,
    slot: u16,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
) -> RedisFuture<'a, Vec<Value>> {
    Box::pin(conn.route_pipeline(pipeline.clone(), offset, count, master(slot)))
}
