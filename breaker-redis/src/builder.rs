//! [`RedisFleetBuilder`]: the settings, checked by `build`, which chooses the store (one node or
//! a cluster) and spawns the fleet's background task.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

#[cfg(feature = "cluster")]
use crate::cluster::Cluster;
use crate::error::FleetError;
use crate::fleet::RedisFleet;
use crate::health::{FleetHealth, Health};
use crate::inspect::FleetInspector;
use crate::keys::Layout;
use crate::pending::Pending;
use crate::redact::redact;
use crate::store::Store;
use crate::task::Task;
use crate::tls::{self, TlsSettings};

impl RedisFleet {
    /// Starts a builder for the store at `url` (`redis://host:port/db`,
    /// `redis://user:password@host:port/`, `redis+unix:///path?user=u&pass=p&db=0` (or
    /// `unix://`), or with feature `tls` `rediss://user:password@host:port/`; `valkey`,
    /// `valkeys` and `valkey+unix` schemes alike). Namespace `default` unless set.
    ///
    /// The builder's `Debug` hides every password (user info, `pass`), and anything else in
    /// the URL that might be one: a path that is no database number, a fragment other than
    /// `#insecure`, query parameters other than `db` and `protocol`, a username given without a
    /// password, or the whole of a string that is not a Redis URL.
    pub fn builder(url: impl Into<String>) -> RedisFleetBuilder {
        RedisFleetBuilder {
            url: url.into(),
            #[cfg(feature = "cluster")]
            seeds: None,
            namespace: "default".to_owned(),
            queue_capacity: 1024,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            margin: Duration::from_secs(60),
            operator_ttl: Duration::from_secs(24 * 3600),
            probe_lease: Duration::from_secs(10),
            quorum: 1,
            pool_evidence: true,
            tls: TlsSettings::default(),
        }
    }

    /// Starts a builder for a Redis (or Valkey) Cluster reached through `seeds`, some of its
    /// nodes (`redis://host:port/`; one is enough, more survive a seed that is down). Feature
    /// `redis-cluster` of `breaker`. Namespace `default` unless set.
    ///
    /// Every key of one circuit shares a hash tag, so it lives in one slot: the quorum and the
    /// probe lease are decided by one node, as on a single server. Announcements are received
    /// through one node at a time (PUBLISH reaches every node of a cluster), tried from the
    /// seeds in turn; a resync after every (re)connection scans every master. A master that
    /// dies fails the writes to its slots until the cluster fails over to its replica: such a
    /// change is kept, and the fleet reconnects and writes it, as when a single server fails.
    /// Connecting to a cluster (the seeds, then every node) may take up to twice
    /// `connect_timeout` plus `command_timeout`.
    ///
    /// ```no_run
    /// # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
    /// use breaker::fleet::RedisFleet;
    /// use breaker::Registry;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = RedisFleet::cluster_builder([
    ///     "redis://10.0.0.1:6379/",
    ///     "redis://10.0.0.2:6379/",
    ///     "redis://10.0.0.3:6379/",
    /// ])
    /// .namespace("checkout")
    /// .build()
    /// .await?; // Err for an invalid seed URL or config; no seed reachable is a degraded start
    /// let registry = Registry::builder().fleet(fleet).build();
    /// # let _ = registry; Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    pub fn cluster_builder<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> RedisFleetBuilder {
        RedisFleetBuilder {
            seeds: Some(seeds.into_iter().map(Into::into).collect()),
            ..RedisFleet::builder("")
        }
    }
}

/// Builds a [`RedisFleet`]; see [`RedisFleet::builder`]. Its `Debug` output hides passwords
/// (of every URL form, seeds included) and TLS keys and certificates.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisFleetBuilder {
    url: String,
    /// A cluster's seed nodes, instead of `url`.
    #[cfg(feature = "cluster")]
    seeds: Option<Vec<String>>,
    namespace: String,
    queue_capacity: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    margin: Duration,
    operator_ttl: Duration,
    probe_lease: Duration,
    quorum: u32,
    pool_evidence: bool,
    tls: TlsSettings,
}

impl fmt::Debug for RedisFleetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisFleetBuilder");
        d.field("url", &redact(&self.url));
        #[cfg(feature = "cluster")]
        d.field(
            "seeds",
            &self
                .seeds
                .as_ref()
                .map(|seeds| seeds.iter().map(|s| redact(s)).collect::<Vec<_>>()),
        );
        d.field("namespace", &self.namespace)
            .field("queue_capacity", &self.queue_capacity)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("margin", &self.margin)
            .field("operator_ttl", &self.operator_ttl)
            .field("probe_lease", &self.probe_lease)
            .field("quorum", &self.quorum)
            .field("pool_evidence", &self.pool_evidence)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisFleetBuilder {
    /// The key prefix: replicas of one service share it, other services use their own. Any
    /// string of 1 to 256 bytes; it is encoded, so no namespace can reach another's keys.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How many local changes may wait for the store (default 1024, at most 2^20). Beyond that
    /// they are dropped and counted ([`FleetHealth::dropped`]), never waited for.
    ///
    /// While the store is unreachable, the latest change of up to twice as many circuits (the
    /// queue's worth, and as many again) is kept and written when it returns (an opening still
    /// running, a close, an operator's switch), so what this replica learnt during an outage
    /// still reaches the others; beyond, changes are dropped and counted.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// How long a connection attempt may take before the fleet counts the store as down
    /// (default 1 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long one command may take before the connection is dropped and made again
    /// (default 1 s). A slow store delays sharing, never a call.
    pub fn command_timeout(mut self, d: Duration) -> Self {
        self.command_timeout = d;
        self
    }

    /// How long an opening's key outlives its open period (default 60 s), so that a replica
    /// can still see the backoff level while the first probe runs.
    pub fn margin(mut self, d: Duration) -> Self {
        self.margin = d;
        self
    }

    /// How long an operator's `force_open`, `disable` or `metrics_only` stays in the store for
    /// replicas that start (or reconnect) later (default 24 h, at most 30 days). Replicas
    /// connected at the time apply it at once and keep it until a `reset` anywhere in the fleet.
    pub fn operator_ttl(mut self, d: Duration) -> Self {
        self.operator_ttl = d;
        self
    }

    /// How long the replica whose probe of an ended open period started may take to publish its
    /// outcome, when its circuit's config cannot be read (default 10 s); otherwise its
    /// circuit's `probe_timeout` is the lease. (Only replicas with a circuit and calls for that
    /// tenant race; a winner's lease lasts a short claim until its probe starts.) Meanwhile the
    /// other replicas keep the circuit open; if the outcome never comes (the prober died), the
    /// lease lapses and they race for the probe again.
    pub fn probe_lease(mut self, d: Duration) -> Self {
        self.probe_lease = d;
        self
    }

    /// Shares an opening with the fleet only once `k` distinct replicas have reported one of that
    /// circuit within their open periods (default 1: every opening is shared at once), so one
    /// sick replica (a bad network path, a broken local dependency) cannot open the fleet. Until
    /// then each reporting replica is open on its own; the `k`-th report opens every replica
    /// with its period and level. A failed probe's reopening is shared at once: the fleet was
    /// open already. Every replica of a namespace should use the same `k`.
    pub fn quorum(mut self, k: u32) -> Self {
        self.quorum = k;
        self
    }

    /// Whether the replicas pool their closed circuits' failures (default `true`), so that the
    /// fleet trips on the fleet's failures: with N replicas sharing a tenant's traffic, its
    /// first trip costs about one threshold of failing calls, not N, and a tenant too thin on
    /// each replica to fill `minimum_calls` still trips on the fleet's calls. Each replica
    /// writes, behind its calls, the failure streak and window of the circuits that failed
    /// lately (a healthy circuit writes nothing); the store adds them up and trips the fleet
    /// (README: what is pooled, its lag and its overshoot). With the quorum, `k` distinct
    /// replicas must have failures in the pool. A replica still trips alone on its own calls if
    /// that comes first. `false`: only openings are shared, as before.
    ///
    /// ```no_run
    /// # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
    /// use breaker::fleet::RedisFleet;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = RedisFleet::builder("redis://127.0.0.1:6379/")
    ///     .pool_evidence(false) // each replica trips on its own failures alone
    ///     .build()
    ///     .await?;
    /// # let _ = fleet; Ok(()) }
    /// ```
    pub fn pool_evidence(mut self, pool: bool) -> Self {
        self.pool_evidence = pool;
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks)
    /// instead of the system's roots, for a `rediss://` store whose certificate a private CA
    /// signed. Without it, `rediss://` checks the store against the system's roots. The store's
    /// certificate must name the URL's host.
    ///
    /// Needs feature `redis-tls` of `breaker`; without it, or with a plain `redis://` URL, or
    /// with a PEM that holds no usable certificate, [`build`](Self::build) returns an `Err`
    /// naming `tls_root_certificate`. A store that the certificates do not vouch for is not an
    /// error: the fleet starts degraded and the `tracing` warning gives the handshake's reason.
    ///
    /// ```no_run
    /// # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
    /// use breaker::fleet::RedisFleet;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = RedisFleet::builder("rediss://breaker:s3cret@redis.internal:6380/")
    ///     .tls_root_certificate(std::fs::read("/etc/breaker/redis-ca.pem")?)
    ///     .build()
    ///     .await?;
    /// # let _ = fleet; Ok(()) }
    /// ```
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root = Some(pem.into());
        self
    }

    /// Presents `cert_pem` (the client's certificate, then any intermediates) with its private
    /// key `key_pem` (PKCS#8, PKCS#1 or SEC1) to a `rediss://` store that authenticates clients
    /// by certificate (`tls-auth-clients yes`).
    ///
    /// Needs feature `redis-tls` of `breaker`; without it, with a plain `redis://` URL, with an
    /// invalid PEM, or with a key that is not the certificate's, [`build`](Self::build) returns
    /// an `Err` naming `tls_client_certificate`. The key is never printed (`Debug` included).
    ///
    /// ```no_run
    /// # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
    /// use breaker::fleet::RedisFleet;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let fleet = RedisFleet::builder("rediss://redis.internal:6380/")
    ///     .tls_root_certificate(std::fs::read("/etc/breaker/redis-ca.pem")?)
    ///     .tls_client_certificate(
    ///         std::fs::read("/etc/breaker/client.pem")?,
    ///         std::fs::read("/etc/breaker/client-key.pem")?,
    ///     )
    ///     .build()
    ///     .await?;
    /// # let _ = fleet; Ok(()) }
    /// ```
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Checks the URL and settings and starts the background task on the current tokio
    /// runtime. It does not wait for the store: an unreachable one is a degraded start
    /// ([`FleetHealth::is_connected`] stays `false` and the task keeps trying). The task
    /// connects once the fleet is attached to a registry (`RegistryBuilder::fleet(..).build()`).
    pub async fn build(self) -> Result<RedisFleet, FleetError> {
        if self.namespace.is_empty() || self.namespace.len() > 256 {
            return Err(FleetError::new("namespace", "must be 1 to 256 bytes"));
        }
        if self.queue_capacity == 0 || self.queue_capacity > 1 << 20 {
            return Err(FleetError::new(
                "queue_capacity",
                "must be between 1 and 1048576",
            ));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(FleetError::new(field, "must be between 1 ns and 1 hour"));
            }
        }
        if self.margin > Duration::from_secs(24 * 3600) {
            return Err(FleetError::new("margin", "must be at most 24 hours"));
        }
        if self.probe_lease < Duration::from_millis(1)
            || self.probe_lease > Duration::from_secs(3600)
        {
            return Err(FleetError::new(
                "probe_lease",
                "must be between 1 ms and 1 hour",
            ));
        }
        if self.quorum == 0 || self.quorum > 1000 {
            return Err(FleetError::new("quorum", "must be between 1 and 1000"));
        }
        if self.operator_ttl < Duration::from_millis(1)
            || self.operator_ttl > Duration::from_secs(30 * 24 * 3600)
        {
            return Err(FleetError::new(
                "operator_ttl",
                "must be between 1 ms and 30 days",
            ));
        }
        let store = self.store()?;
        let replica = format!("{:016x}", fastrand::u64(..));
        // The dashboard's reads: a store of their own, connected only if they are made.
        let inspector = FleetInspector(Arc::new(crate::inspect::Inner {
            store: self.store()?,
            layout: Layout::new(&self.namespace),
            replica: replica.clone(),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            conn: tokio::sync::Mutex::default(),
        }));
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| FleetError::new("runtime", "build the fleet inside a tokio runtime"))?;
        let health = FleetHealth(Arc::new(Health {
            connected: AtomicBool::new(false),
            publishing: AtomicBool::new(true),
            unannounced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            evidence: Default::default(),
            namespace: self.namespace.clone(),
        }));
        health.0.set_connected(false);
        let (queue, queued) = mpsc::channel(self.queue_capacity);
        // Failures merge per circuit in the task (`evidence.rs`): the channel only bridges
        // the calls' threads and the task, and drops (never waits) when the task is behind.
        let (failed, failures) = mpsc::channel(self.queue_capacity.max(1024));
        let (link, linked) = oneshot::channel();
        let (stop, stopped) = oneshot::channel();
        let task = Task {
            store,
            layout: Layout::new(&self.namespace),
            replica,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            margin: self.margin,
            operator_ttl: self.operator_ttl,
            probe_lease: self.probe_lease,
            quorum: self.quorum,
            probes: Mutex::default(),
            // While the store is away the task takes every change off the queue at once, so
            // the queue holds nothing then: what an outage keeps is this, the queue's worth and
            // as many circuits again (the latest change of each).
            pending: Mutex::new(Pending::new(2 * self.queue_capacity)),
            known: Mutex::default(),
            store_run: Mutex::default(),
            health: health.0.clone(),
            tally: Mutex::default(),
        };
        runtime.spawn(task.run(queued, failures, linked, stopped));
        Ok(RedisFleet {
            health,
            inspector,
            queue,
            failed: self.pool_evidence.then_some(failed),
            link: Mutex::new(Some(link)),
            _stop: stop,
        })
    }
}

impl RedisFleetBuilder {
    /// The store the settings name: a cluster's seeds, or one node's URL.
    fn store(&self) -> Result<Store, FleetError> {
        #[cfg(feature = "cluster")]
        if let Some(seeds) = &self.seeds {
            return Cluster::new(seeds, &self.tls, self.connect_timeout, self.command_timeout)
                .map(Store::Cluster);
        }
        tls::client(&self.url, &self.tls).map(Store::Node)
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        for (url, shown) in [
            ("redis://app:s3cret@127.0.0.1:6379/", "app:***@127.0.0.1"),
            (
                "redis+unix:///run/redis.sock?user=app&pass=s3cret",
                "redis.sock?user=app&pass=***",
            ),
        ] {
            let printed = format!(
                "{:?}",
                RedisFleet::builder(url)
                    .namespace("checkout")
                    .tls_root_certificate(b"s3cret-root".to_vec())
                    .tls_client_certificate(b"s3cret-cert".to_vec(), b"s3cret-key".to_vec())
            );
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(printed.contains(shown), "{printed}");
        }
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn debug_output_hides_the_passwords_of_every_seed() {
        let printed = format!(
            "{:?}",
            RedisFleet::cluster_builder([
                "redis://app:s3cret@10.0.0.1:6379/",
                "redis://:s3cret@10.0.0.2:6379/",
                "valkey+unix:///run/valkey.sock?pass=s3cret",
            ])
        );
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("app:***@10.0.0.1"), "{printed}");
    }
}
