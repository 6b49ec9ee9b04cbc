//! A real three-master Redis Cluster per test, on free loopback ports, killed on drop with its
//! temporary directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use breaker_core::{Config, Registry};
use breaker_redis::{FleetHealth, RedisFleet, RedisFleetBuilder};

use crate::support::{config, eventually, free_port, poll, RedisServer, BOUND};

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts three masters on free ports and joins them, or `None` when `redis-server` or
    /// `redis-cli` is not installed outside CI.
    pub fn start() -> Option<RedisCluster> {
        RedisCluster::start_on([free_port(), free_port(), free_port()])
    }

    pub fn start_on(ports: [u16; 3]) -> Option<RedisCluster> {
        RedisCluster::start_with(&ports, 0, &[])
    }

    /// Three masters, each with `replicas` replicas (`ports` names them all, masters first),
    /// every node started with `args` too.
    pub fn start_with(ports: &[u16], replicas: usize, args: &[&str]) -> Option<RedisCluster> {
        let dir = std::env::temp_dir().join(format!(
            "breaker-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for &port in ports {
            let config_file = cluster.dir.join(format!("nodes-{port}.conf"));
            // The bus port too is a free one (port + 10000, the default, may not be).
            let bus = free_port().to_string();
            let mut node_args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--cluster-config-file",
                config_file.to_str().unwrap(),
                "--dir",
                cluster.dir.to_str().unwrap(),
            ];
            node_args.extend_from_slice(args);
            let node = RedisServer::start_with(port, &node_args)?;
            cluster.nodes.push(node);
        }
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match created {
            Ok(out) => assert!(
                out.status.success(),
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() =>
            {
                eprintln!("skipped: redis-cli is not on PATH (apt-get install redis-tools)");
                return None;
            }
            Err(e) => panic!("cannot run redis-cli: {e}"),
        }
        // Every node sees every slot served and every other node, over a bus link that is up:
        // PUBLISH reaches the other nodes only over their links, and a node still connecting
        // one drops what it would have sent there (an opening a replica subscribed there then
        // never hears of). `CLUSTER NODES`' eighth field is the link's state.
        let ready = poll(Duration::from_secs(60), || {
            cluster.nodes.iter().all(|node| {
                let Ok(mut c) = node.client().get_connection() else {
                    return false;
                };
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut c)
                    .unwrap_or_default();
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query(&mut c)
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", ports.len()))
                    && nodes
                        .lines()
                        .all(|line| line.split(' ').nth(7) == Some("connected"))
            })
        });
        assert!(ready, "the cluster never reached cluster_state:ok");
        // A replica that has not synced with its master yet would not be promoted.
        let synced = poll(Duration::from_secs(60), || {
            cluster.nodes.iter().all(|node| {
                let info: String = node
                    .client()
                    .get_connection()
                    .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
                    .unwrap_or_default();
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        });
        assert!(synced, "the replicas never synced with their masters");
        Some(cluster)
    }

    /// Kills the node on `port` (its keys go with it: no persistence).
    pub fn kill(&mut self, port: u16) {
        let node = self.ports().iter().position(|&p| p == port).unwrap();
        self.nodes.remove(node).kill();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the node on `port`.
    pub fn signal(&self, port: u16, signal: &str) {
        let node = self.ports().iter().position(|&p| p == port).unwrap();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.nodes[node].pid().to_string())
            .status()
            .expect("kill(1)");
        assert!(sent.success());
    }

    /// Whether the node on `port` is a master.
    pub fn is_master(&self, port: u16) -> bool {
        let node = self.ports().iter().position(|&p| p == port).unwrap();
        let role: Vec<redis::Value> = self.query(node, &redis::cmd("ROLE"));
        matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
    }

    /// `CLUSTER NODES` as the first node sees it, for failure messages.
    pub fn describe(&self) -> String {
        self.query(0, &redis::cmd("CLUSTER").arg("NODES").clone())
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn query<T: redis::FromRedisValue>(&self, node: usize, cmd: &redis::Cmd) -> T {
        let mut conn = self.nodes[node].client().get_connection().unwrap();
        cmd.query(&mut conn).unwrap()
    }

    /// The port of the master that serves `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = self.query(0, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key));
        let ranges: Vec<(u16, u16, (String, u16))> = self
            .query::<Vec<redis::Value>>(0, redis::cmd("CLUSTER").arg("SLOTS"))
            .into_iter()
            .map(|range| {
                let redis::Value::Array(items) = range else {
                    panic!("CLUSTER SLOTS: {range:?}")
                };
                let node: Vec<redis::Value> = redis::from_redis_value(items[2].clone()).unwrap();
                (
                    redis::from_redis_value(items[0].clone()).unwrap(),
                    redis::from_redis_value(items[1].clone()).unwrap(),
                    (
                        redis::from_redis_value(node[0].clone()).unwrap(),
                        redis::from_redis_value(node[1].clone()).unwrap(),
                    ),
                )
            })
            .collect();
        ranges
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, (_, port))| port)
            .expect("every slot is served")
    }

    /// The keys held by the node on `port` (sorted).
    pub fn keys_on(&self, port: u16) -> Vec<String> {
        let node = self.ports().iter().position(|&p| p == port).unwrap();
        let mut keys: Vec<String> = self.query(node, redis::cmd("KEYS").arg("*"));
        keys.sort();
        keys
    }

    /// The keys of every node (sorted).
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .ports()
            .into_iter()
            .flat_map(|p| self.keys_on(p))
            .collect();
        keys.sort();
        keys
    }

    /// One tenant per master (of three): tenants `t0`, `t1`, ... whose circuits of `provider` under
    /// `namespace` are served by a master none of the others is served by.
    pub fn tenant_per_master(&self, namespace: &str, provider: &str) -> Vec<(String, u16)> {
        let mut picked: Vec<(String, u16)> = Vec::new();
        for i in 0.. {
            if picked.len() == 3 {
                break;
            }
            assert!(i < 1000, "no tenant for some master");
            let tenant = format!("t{i}");
            let master = self.master_of(&format!(
                "breaker:v1:{namespace}:{{{provider}:{tenant}}}:open"
            ));
            if picked.iter().all(|(_, m)| *m != master) {
                picked.push((tenant, master));
            }
        }
        picked
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A replica on a cluster: a registry with its own fleet (its own connections) reached through
/// `seeds`, under `namespace`.
pub async fn replica(
    seeds: &[String],
    namespace: &str,
    config: Config,
    settings: impl FnOnce(RedisFleetBuilder) -> RedisFleetBuilder,
) -> (Registry, FleetHealth) {
    crate::support::replica_of(
        settings(RedisFleet::cluster_builder(seeds).namespace(namespace)),
        Registry::builder().default_config(config),
    )
    .await
}

/// A replica on `cluster` that is connected and resynced, its circuits tripping on one failure
/// and staying open `open_for`.
pub async fn connected(
    cluster: &RedisCluster,
    namespace: &str,
    open_for: Duration,
) -> (Registry, FleetHealth) {
    let (registry, health) = replica(&cluster.seeds(), namespace, config(open_for), |b| b).await;
    assert!(
        eventually(BOUND, || health.is_connected()).await,
        "replica did not connect to the cluster"
    );
    (registry, health)
}
