//! A real `redis-server` per test, on a free loopback port, killed on drop; and polling with
//! generous bounds (never a fixed sleep standing in for a condition).

#![allow(dead_code)] // each test file uses part of it

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use breaker_core::{Config, Registry, RegistryBuilder};
use breaker_redis::{FleetHealth, RedisFleet, RedisFleetBuilder};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts a server on a free port, or `None` when `redis-server` is not installed outside
    /// CI (CI installs it: `.ci/run`; there a missing server fails the test).
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_free("redis-server")
    }

    /// On a free port; again on another one if the port was taken meanwhile (by a server of
    /// another test process: then ours could not bind, and exits).
    fn start_free(program: &str) -> Option<RedisServer> {
        for _ in 0..4 {
            match RedisServer::try_start(program, free_port(), &[]) {
                Ok(server) => return server,
                Err(why) => eprintln!("retrying on another port: {why}"),
            }
        }
        RedisServer::start_program(program, free_port(), &[])
    }

    pub fn start_on(port: u16) -> Option<RedisServer> {
        RedisServer::start_with(port, &[])
    }

    /// [`start_on`](Self::start_on) with more `redis-server` arguments.
    pub fn start_with(port: u16, args: &[&str]) -> Option<RedisServer> {
        RedisServer::start_program("redis-server", port, args)
    }

    /// A Valkey server instead (`valkey-server`; CI installs it: `.ci/run`).
    pub fn start_valkey() -> Option<RedisServer> {
        RedisServer::start_free("valkey-server")
    }

    fn start_program(program: &str, port: u16, args: &[&str]) -> Option<RedisServer> {
        RedisServer::try_start(program, port, args).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start(program: &str, port: u16, args: &[&str]) -> Result<Option<RedisServer>, String> {
        let spawned_at = std::time::Instant::now();
        let spawned = Command::new(program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() =>
            {
                eprintln!("skipped: {program} is not on PATH (apt-get install {program})");
                return Ok(None);
            }
            Err(e) => panic!("cannot start {program}: {e}"),
        };
        let mut server = RedisServer { child, port };
        let mut exited = None;
        assert!(
            poll(Duration::from_secs(10), || {
                exited = server.child.try_wait().ok().flatten();
                exited.is_some() || TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "{program} did not listen on {port}"
        );
        // Listening, and ours: a server that could not bind exits at once (what answered was
        // another's), so ours must outlive its first moments.
        while exited.is_none() && spawned_at.elapsed() < Duration::from_millis(150) {
            std::thread::sleep(Duration::from_millis(10));
            exited = server.child.try_wait().ok().flatten();
        }
        match exited {
            None => Ok(Some(server)),
            Some(status) => Err(format!("{program} on {port} exited: {status}")),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain client for looking at keys.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }

    /// A connection of the test's own, for looking at keys and driving the server.
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nothing listens on (as of now), never handed out before in this process:
/// tests that ask at once must not get the same one (the second server would fail to bind, and
/// its test would talk to the first one's server, or to a dying one).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `bound` passes; returns whether it held.
pub fn poll(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`poll`] for async tests: yields to the runtime between tries.
pub async fn eventually(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Generous: propagation on loopback takes milliseconds; a busy CI machine may take longer.
pub const BOUND: Duration = Duration::from_secs(10);

/// Trips on one failure, stays open `open_for`.
pub fn config(open_for: Duration) -> Config {
    Config::builder()
        .consecutive_failures(1)
        .open_for(open_for)
        .build()
        .unwrap()
}

/// A replica: a registry with its own fleet (its own connections) on `url` under `namespace`.
pub async fn replica(url: &str, namespace: &str, open_for: Duration) -> (Registry, FleetHealth) {
    replica_with(url, namespace, open_for, |b| b).await
}

/// [`replica`] with more fleet settings.
pub async fn replica_with(
    url: &str,
    namespace: &str,
    open_for: Duration,
    settings: impl FnOnce(RedisFleetBuilder) -> RedisFleetBuilder,
) -> (Registry, FleetHealth) {
    replica_configured(url, namespace, config(open_for), settings).await
}

/// [`replica_with`] with its circuits' config.
pub async fn replica_configured(
    url: &str,
    namespace: &str,
    config: Config,
    settings: impl FnOnce(RedisFleetBuilder) -> RedisFleetBuilder,
) -> (Registry, FleetHealth) {
    replica_of(
        settings(RedisFleet::builder(url).namespace(namespace)),
        Registry::builder().default_config(config),
    )
    .await
}

/// The registry `registry` builds, with the fleet `fleet` builds (its own connections).
pub async fn replica_of(
    fleet: RedisFleetBuilder,
    registry: RegistryBuilder,
) -> (Registry, FleetHealth) {
    let fleet = fleet.build().await.expect("valid fleet config");
    let health = fleet.health();
    (registry.fleet(fleet).build(), health)
}

/// A replica that is connected and resynced.
pub async fn connected(url: &str, namespace: &str, open_for: Duration) -> (Registry, FleetHealth) {
    let (registry, health) = replica(url, namespace, open_for).await;
    assert!(
        eventually(BOUND, || health.is_connected()).await,
        "replica did not connect"
    );
    (registry, health)
}

/// Whether `registry`'s circuit of (`provider`, `tenant`) reaches `state` within [`BOUND`].
pub async fn becomes(
    registry: &Registry,
    provider: &str,
    tenant: &str,
    state: breaker_core::State,
) -> bool {
    eventually(BOUND, || {
        registry.circuit(provider, tenant).state() == state
    })
    .await
}

/// The keys of the server that hold an incident (sorted): all but the `:ended` markers, which
/// an ended incident leaves for a while (checked here to have a TTL, of at most 10 minutes).
pub async fn incident_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.admin().await;
    let mut kept = Vec::new();
    for key in all_keys(server).await {
        if key.ends_with(":ended") {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(pttl > 0 && pttl <= 600_000, "{key} lives {pttl} ms");
        } else {
            kept.push(key);
        }
    }
    kept
}

/// Every key of the server (sorted).
pub async fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.admin().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// A loopback TCP proxy in front of a server that can cut a replica off from it (a network
/// partition: its connections are closed and new ones refused) and heal, while the server and
/// the other replicas go on. Messages published meanwhile never reach the cut-off replica.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(server_port: u16) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (cut, conns) = (cut.clone(), conns.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: refused
                    }
                    let forward = tokio::spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(forward);
                }
            }
        });
        Proxy {
            port,
            cut,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Closes every connection through the proxy and refuses new ones until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}
