//! A [`Fleet`] on Redis or Valkey: the replicas of a service share their circuits' openings, and
//! no call ever waits on the store.
//!
//! Users reach it as `breaker::fleet::RedisFleet` (feature `redis` of `breaker`).
//!
//! ```no_run
//! # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
//! use breaker::fleet::RedisFleet;
//! use breaker::Registry;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = RedisFleet::builder("redis://127.0.0.1:6379/")
//!     .namespace("checkout") // replicas of one service share it, other services do not
//!     .build()
//!     .await?; // Err for an invalid URL or config; an unreachable store is a degraded start
//! let health = fleet.health();
//! let registry = Registry::builder().fleet(fleet).build();
//! # let _ = (registry, health); Ok(()) }
//! ```
//!
//! # How it works
//! When a circuit opens, the thread that tripped it queues the opening (a bounded queue: when
//! full, the change is dropped and counted, never waited for; while the store is away, the latest
//! change of each circuit is kept for its return). A background task writes it as a
//! key whose TTL is the open period plus a margin, and announces it on the namespace's pub/sub
//! channel. Every other replica reads the key's remaining TTL (`PTTL`, the store's clock, never a
//! replica's wall clock) and opens its circuit for what is left of that period, at the same
//! backoff level; a replica that has no circuit for that tenant yet keeps the fact for when it
//! creates one. A replica that starts, or reconnects, scans the namespace's openings first. A
//! success after the open period deletes the key and closes the circuit everywhere.
//!
//! With the store gone, calls run on local circuits as if no fleet were attached; the task
//! reconnects with backoff and resyncs by itself. [`FleetHealth`], `tracing` events (target
//! `breaker::fleet`: `WARN` when degraded, `INFO` when restored) and, with feature `metrics`,
//! the gauge `breaker_fleet_connected` and counters `breaker_fleet_changes_dropped_total`,
//! `breaker_fleet_changes_published_total`, `breaker_fleet_facts_applied_total` and
//! `breaker_fleet_store_failures_total` (all labelled by `namespace`) tell operators.
//!
//! # TLS
//! With feature `tls` (`redis-tls` of `breaker`), `rediss://` URLs connect through rustls, with
//! the system's roots or a private CA ([`RedisFleetBuilder::tls_root_certificate`]) and
//! optionally a client certificate ([`RedisFleetBuilder::tls_client_certificate`]); the store's
//! certificate is always checked (a `#insecure` URL is refused). Unless the
//! application installed a rustls `CryptoProvider` first, `build` installs ring's as the process
//! default: rustls panics when two providers are compiled in and none is installed.
//!
//! Keys are described in the `keys` module: `breaker:v1:<namespace>:{<provider>:<tenant>}:open`,
//! every name percent-encoded.

#[cfg(feature = "cluster")]
mod cluster;
mod keys;
mod known;
mod pending;
mod probes;
mod store;
mod task;
mod tls;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use breaker_core::fleet::{Change, Fleet, FleetLink};
use breaker_core::{Reason, State};
use tokio::sync::{mpsc, oneshot};

/// Shares circuit openings and closings between the replicas of a service through Redis or
/// Valkey; attach it with `RegistryBuilder::fleet`. Built by [`RedisFleet::builder`].
pub struct RedisFleet {
    health: FleetHealth,
    queue: mpsc::Sender<Queued>,
    link: Mutex<Option<oneshot::Sender<FleetLink>>>,
    /// Dropping the fleet (with the last circuit of its registry) ends its background task.
    _stop: oneshot::Sender<()>,
}

/// A local change waiting for the background task.
#[derive(Debug)]
pub(crate) enum Queued {
    Open {
        provider: &'static str,
        tenant: Box<str>,
        open_for: Duration,
        level: u32,
        /// When it opened: what is left of the period is written, not the whole of it.
        at: Instant,
        /// A failed probe's reopening: the fleet was open already, no quorum needed.
        reopened: bool,
    },
    Close {
        provider: &'static str,
        tenant: Box<str>,
        /// When it closed: an opening written after that (by another replica) must outlive it.
        at: Instant,
    },
    Operator {
        provider: &'static str,
        tenant: Box<str>,
        state: State,
        /// When the operator acted: a reset written late must not end what came after it.
        at: Instant,
    },
}

impl Queued {
    pub(crate) fn provider(&self) -> &'static str {
        match self {
            Queued::Open { provider, .. }
            | Queued::Close { provider, .. }
            | Queued::Operator { provider, .. } => provider,
        }
    }

    pub(crate) fn tenant(&self) -> &str {
        match self {
            Queued::Open { tenant, .. }
            | Queued::Close { tenant, .. }
            | Queued::Operator { tenant, .. } => tenant,
        }
    }

    /// Whether this is an opening whose period is over at `now`: nothing left to share.
    pub(crate) fn ended(&self, now: Instant) -> bool {
        matches!(self, Queued::Open { open_for, at, .. } if now.saturating_duration_since(*at) >= *open_for)
    }
}

impl RedisFleet {
    /// Starts a builder for the store at `url` (`redis://host:port/db`,
    /// `redis://user:password@host:port/`, `redis+unix:///path`, or with feature `tls`
    /// `rediss://user:password@host:port/`; `valkey` and `valkeys` schemes alike). Namespace
    /// `default` unless set.
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
            tls: tls::TlsSettings::default(),
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

    /// A handle on the fleet's connection state and counters, usable after the fleet has moved
    /// into its registry.
    pub fn health(&self) -> FleetHealth {
        self.health.clone()
    }
}

impl Fleet for RedisFleet {
    fn attach(&self, link: FleetLink) {
        let sender = self
            .link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(link);
        }
    }

    fn publish(&self, change: &Change<'_>) {
        let queued = match *change {
            Change::Opened {
                provider,
                tenant,
                open_for,
                level,
                reason,
                ..
            } => Queued::Open {
                provider,
                tenant: tenant.into(),
                open_for,
                level,
                at: Instant::now(),
                reopened: matches!(reason, Reason::ProbeFailed | Reason::ProbeTimedOut),
            },
            Change::Closed {
                provider, tenant, ..
            } => Queued::Close {
                provider,
                tenant: tenant.into(),
                at: Instant::now(),
            },
            Change::Operator {
                provider,
                tenant,
                state,
                ..
            } => Queued::Operator {
                provider,
                tenant: tenant.into(),
                state,
                at: Instant::now(),
            },
            _ => return,
        };
        if self.queue.try_send(queued).is_err() {
            let dropped = self.health.0.count(Count::Dropped);
            // One line per power of two, so a full queue cannot flood the logs.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    target: "breaker::fleet",
                    dropped,
                    "fleet queue full or closed: a circuit change was not shared"
                );
            }
        }
    }
}

impl fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleet")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisFleet`]; see [`RedisFleet::builder`]. Its `Debug` output hides passwords.
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
    tls: tls::TlsSettings,
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
            .field("tls", &self.tls)
            .finish()
    }
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or("");
    let hidden = if rest[..at].contains(':') {
        format!("{user}:***")
    } else {
        // `redis://password@host` form: the whole user info is the secret.
        "***".to_owned()
    };
    format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
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
    /// While the store is unreachable, the latest change of up to as many circuits more is kept
    /// and written when it returns (an opening still running, a close, an operator's switch), so
    /// what this replica learnt during an outage still reaches the others.
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

    /// How long the replica that won the probe of an ended open period may take to publish its
    /// outcome, when it has no circuit of that tenant yet (default 10 s); otherwise its
    /// circuit's `probe_timeout` is the lease. Meanwhile the other replicas keep the circuit
    /// open; if the outcome never comes (the prober died), the lease lapses and they race for
    /// the probe again.
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
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| FleetError::new("runtime", "build the fleet inside a tokio runtime"))?;
        let health = FleetHealth(Arc::new(Health {
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            namespace: self.namespace.clone(),
        }));
        health.0.set_connected(false);
        let (queue, queued) = mpsc::channel(self.queue_capacity);
        let (link, linked) = oneshot::channel();
        let (stop, stopped) = oneshot::channel();
        let task = task::Task {
            store,
            layout: keys::Layout::new(&self.namespace),
            replica: format!("{:016x}", fastrand::u64(..)),
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            margin: self.margin,
            operator_ttl: self.operator_ttl,
            probe_lease: self.probe_lease,
            quorum: self.quorum,
            probes: Mutex::default(),
            pending: Mutex::new(pending::Pending::new(self.queue_capacity)),
            known: Mutex::default(),
            store_run: Mutex::default(),
            health: health.0.clone(),
        };
        runtime.spawn(task.run(queued, linked, stopped));
        Ok(RedisFleet {
            health,
            queue,
            link: Mutex::new(Some(link)),
            _stop: stop,
        })
    }
}

impl RedisFleetBuilder {
    /// The store the settings name: a cluster's seeds, or one node's URL.
    fn store(&self) -> Result<store::Store, FleetError> {
        #[cfg(feature = "cluster")]
        if let Some(seeds) = &self.seeds {
            return cluster::Cluster::new(
                seeds,
                &self.tls,
                self.connect_timeout,
                self.command_timeout,
            )
            .map(store::Store::Cluster);
        }
        tls::client(&self.url, &self.tls).map(store::Store::Node)
    }
}

/// An invalid [`RedisFleetBuilder`] setting: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    field: &'static str,
    message: String,
}

impl FleetError {
    pub(crate) fn new(field: &'static str, message: &str) -> Self {
        FleetError {
            field,
            message: message.to_owned(),
        }
    }

    /// The setting at fault: `url`, `seeds` (of a cluster), `namespace`, `queue_capacity`,
    /// `connect_timeout`, `command_timeout`, `margin`, `operator_ttl`, `probe_lease`, `quorum`,
    /// `tls_root_certificate`, `tls_client_certificate`, or `runtime` (built outside a tokio
    /// runtime).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fleet `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for FleetError {}

/// The connection state and counters of a [`RedisFleet`], from [`RedisFleet::health`]. Cheap to
/// clone.
#[derive(Clone)]
pub struct FleetHealth(Arc<Health>);

pub(crate) struct Health {
    connected: AtomicBool,
    dropped: AtomicU64,
    published: AtomicU64,
    applied: AtomicU64,
    failures: AtomicU64,
    /// The `namespace` label of the fleet's metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    namespace: String,
}

/// What [`Health::count`] counts.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Dropped,
    Published,
    Applied,
    Failure,
}

impl Health {
    /// Counts one `what`, in [`FleetHealth`] and, with feature `metrics`, as
    /// `breaker_fleet_changes_dropped_total`, `breaker_fleet_changes_published_total`,
    /// `breaker_fleet_facts_applied_total` or `breaker_fleet_store_failures_total` {namespace}.
    /// Returns the new count.
    pub(crate) fn count(&self, what: Count) -> u64 {
        let (counter, _name) = match what {
            Count::Dropped => (&self.dropped, "breaker_fleet_changes_dropped_total"),
            Count::Published => (&self.published, "breaker_fleet_changes_published_total"),
            Count::Applied => (&self.applied, "breaker_fleet_facts_applied_total"),
            Count::Failure => (&self.failures, "breaker_fleet_store_failures_total"),
        };
        #[cfg(feature = "metrics")]
        metrics::counter!(_name, "namespace" => self.namespace.clone()).increment(1);
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records whether the fleet is connected (with feature `metrics`, the gauge
    /// `breaker_fleet_connected` {namespace}, 1 or 0); returns whether it was.
    pub(crate) fn set_connected(&self, connected: bool) -> bool {
        #[cfg(feature = "metrics")]
        metrics::gauge!("breaker_fleet_connected", "namespace" => self.namespace.clone())
            .set(if connected { 1.0 } else { 0.0 });
        self.connected.swap(connected, Ordering::AcqRel)
    }
}

impl FleetHealth {
    /// Whether the fleet is connected and resynced. `false` while degraded: circuits then run
    /// on what this replica sees alone.
    pub fn is_connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// Local changes not shared because the queue was full (or the task gone), or because the
    /// store failed while writing them.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Local changes written to the store.
    pub fn published(&self) -> u64 {
        self.0.published.load(Ordering::Relaxed)
    }

    /// Other replicas' facts applied to this replica (at start, on messages and on resyncs).
    pub fn applied(&self) -> u64 {
        self.0.applied.load(Ordering::Relaxed)
    }

    /// Connections that failed or were lost (each one a degraded spell, or part of one).
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for FleetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetHealth")
            .field("connected", &self.is_connected())
            .field("dropped", &self.dropped())
            .field("published", &self.published())
            .field("applied", &self.applied())
            .field("failures", &self.failures())
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        assert_eq!(
            redact("rediss://app:s3cret@cache:6380/0"),
            "rediss://app:***@cache:6380/0"
        );
        assert_eq!(redact("redis://:s3cret@cache/"), "redis://:***@cache/");
        assert_eq!(redact("redis://s3cret@cache/"), "redis://***@cache/");
        assert_eq!(
            redact("redis://cache:6379/?x=@y"),
            "redis://cache:6379/?x=@y"
        );
        assert_eq!(
            redact("redis+unix:///run/redis.sock"),
            "redis+unix:///run/redis.sock"
        );
        let shown = format!(
            "{:?}",
            RedisFleet::builder("redis://app:s3cret@127.0.0.1:6379/").namespace("checkout")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@127.0.0.1"), "{shown}");
    }
}
