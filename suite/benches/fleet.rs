//! The fleet's figures for BENCHMARKS.md (feature `redis`), against a `redis-server` of its own on
//! a free loopback port:
//!
//! - **reach**: N replicas (1, 3, 8) call one tenant of a provider that fails every call, each
//!   every 2 ms, for 5.5 s; circuits trip after 5 failures in a row and stay open 1 s (no
//!   backoff growth, no jitter, so every run has the same periods). Counted: the calls that
//!   reached the provider (closed-circuit calls and probes), and the probes per open period
//!   (probes grouped into rounds: a round is every probe within 500 ms of its first), each
//!   replica on its own ("none") and as a fleet.
//! - **first trip** (issue 23): the failing calls that reach a dead provider before every replica
//!   has rejected one: N replicas (3, 8), 5 failures in a row, each calling every 2 ms; and a
//!   thin tenant, 8 replicas each calling it once every 200 ms, `failure_rate(0.5)` over
//!   `Window::Calls(20)`, `minimum_calls(10)`. Alone ("none"), sharing openings only
//!   (`pool_evidence(false)`) and pooling evidence (the default); with the evidence scripts
//!   (EVALSHA) the store ran, per replica. A provider outage (issue 23, item 6): 8 replicas, each
//!   with the default provider-wide circuit (rate 0.5 over the last 50 calls, 20 calls, 3
//!   distinct tenants), calling 1,000 tenants of a dead provider in turn every 2 ms, until every
//!   replica rejects provider-wide. And the store's commands while 8 replicas call a
//!   healthy provider for 2 s (all but the pings: none expected).
//! - **propagation**: one replica trips a tenant; the time until another replica's handle of that
//!   tenant reads open, spun on from a thread of its own (300 tenants; p50, p90, p99, max).
//! - **ending together** (issue 18): a provider-wide outage, 10,000 circuits tripped at once on
//!   one of 8 replicas (open 5 s, one failure trips); once every replica has opened them all,
//!   every replica calls every tenant until each circuit has closed everywhere, and each probe
//!   succeeds. Counted: circuits probed more than once (and by how many replicas at most),
//!   circuits never probed, and the time from the end of the period until the last one closed.
//!
//! ```text
//! cargo bench -p breaker-suite --bench fleet --features redis
//! ```
//!
//! Not a statistics harness: the figures are counts and a latency distribution of a real server
//! over loopback, printed as a table.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker::fleet::RedisFleet;
use breaker::{Config, Registry, RegistryBuilder, State};

const PROVIDER: &str = "llm";
const EVERY: Duration = Duration::from_millis(2);
const OUTAGE: Duration = Duration::from_millis(5500);
const OPEN_FOR: Duration = Duration::from_secs(1);
const THRESHOLD: u32 = 5;
const TRIALS: usize = 300;

/// A `redis-server` of this bench's own, killed on drop.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; a name filter is ignored: this bench is one table.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    let _redis = match child {
        Ok(child) => Redis(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "this bench needs redis-server on PATH (Debian: apt-get install redis-server)"
            );
            std::process::exit(2);
        }
        Err(e) => return Err(e.into()),
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not listen".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    println!(
        "reach: a provider failing every call for {:.1} s, each replica calling every {} ms",
        OUTAGE.as_secs_f64(),
        EVERY.as_millis()
    );
    println!("replicas  store   calls reaching it  of which probes  rounds  probes/round (max)");
    for n in [1, 3, 8] {
        for fleet in [false, true] {
            let ns = format!("reach-{n}-{fleet}");
            let r = reach(n, fleet.then_some((url.as_str(), ns.as_str()))).await?;
            println!(
                "{n:>8}  {:<5}  {:>17}  {:>15}  {:>6}  {:>8.2} ({})",
                if fleet { "fleet" } else { "none" },
                r.calls,
                r.probes,
                r.rounds,
                r.probes as f64 / r.rounds.max(1) as f64,
                r.max_round
            );
        }
    }

    println!("\nfirst trip: failing calls before every replica rejects (issue 23)");
    println!("scenario                       store     failing calls  evidence scripts/replica");
    for (name, n, every, config) in [
        ("3 replicas, 5 in a row, 2 ms", 3, EVERY, config()?),
        ("8 replicas, 5 in a row, 2 ms", 8, EVERY, config()?),
        (
            "thin: 8 x 200 ms, rate 0.5/20",
            8,
            THIN_EVERY,
            thin_config()?,
        ),
    ] {
        for mode in [Mode::Alone, Mode::Openings, Mode::Pooled] {
            let ns = format!("first-{n}-{}-{mode:?}", every.as_millis());
            let before = evalsha(&url).await?;
            let calls = first_trip(n, every, &config, mode, &url, &ns).await?;
            let scripts = evalsha(&url).await? - before;
            println!(
                "{name:<30} {:<9} {calls:>13}  {:>24.1}",
                mode.name(),
                scripts as f64 / n as f64
            );
        }
    }
    for mode in [Mode::Alone, Mode::Openings, Mode::Pooled] {
        let ns = format!("wide-{mode:?}");
        let before = evalsha(&url).await?;
        let calls = wide_trip(WIDE_REPLICAS, WIDE_TENANTS, mode, &url, &ns).await?;
        let scripts = evalsha(&url).await? - before;
        println!(
            "{:<30} {:<9} {calls:>13}  {:>24.1}",
            "provider-wide: 8 x 1,000 ten.",
            mode.name(),
            scripts as f64 / WIDE_REPLICAS as f64
        );
    }
    let (healthy, pings) = healthy_writes(&url, 8).await?;
    println!(
        "healthy: 8 replicas calling every 2 ms for 2 s: {healthy} store commands besides {pings} pings"
    );

    let e = ending_together(&url, ENDING_REPLICAS, ENDING_CIRCUITS).await?;
    println!(
        "\nending together: {ENDING_CIRCUITS} circuits on {ENDING_REPLICAS} replicas: {} probed more than once (at most {} probers), {} never, all closed {:.2} s after the period, {} store failures",
        e.twice,
        e.most,
        e.never,
        e.closed.as_secs_f64(),
        e.failures
    );

    let delays = propagation(&url).await?;
    println!(
        "\npropagation on loopback ({} openings): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        delays.len(),
        ms(percentile(&delays, 0.50)),
        ms(percentile(&delays, 0.90)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}

const THIN_EVERY: Duration = Duration::from_millis(200);

fn thin_config() -> Result<Config, breaker::ConfigError> {
    Config::builder()
        .failure_rate(0.5, breaker::Window::Calls(20))
        .minimum_calls(10)
        .open_for(Duration::from_secs(30))
        .build()
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Alone,
    Openings,
    Pooled,
}

impl Mode {
    /// A replica built by `builder`: alone, or with a fleet on (`url`, `ns`) that shares
    /// openings, and evidence too when pooled.
    async fn replica(
        self,
        builder: RegistryBuilder,
        url: &str,
        ns: &str,
    ) -> Result<Registry, Box<dyn std::error::Error>> {
        let store = (!matches!(self, Mode::Alone)).then_some((url, ns));
        replica_of(builder, store, matches!(self, Mode::Pooled)).await
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Alone => "none",
            Mode::Openings => "openings",
            Mode::Pooled => "pooled",
        }
    }
}

/// `n` replicas call one failing tenant every `every` (spread over the interval), each until
/// its first rejection; the calls that reached the provider until every replica rejected.
async fn first_trip(
    n: usize,
    every: Duration,
    config: &Config,
    mode: Mode,
    url: &str,
    ns: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        let builder = Registry::builder().default_config(config.clone());
        replicas.push(Arc::new(mode.replica(builder, url, ns).await?));
    }
    let calls = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, registry) in replicas.iter().enumerate() {
        let (registry, calls) = (registry.clone(), calls.clone());
        let first = start + every * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while start.elapsed() < Duration::from_secs(60) {
                tick.tick().await;
                match registry.acquire(PROVIDER, "acme", None) {
                    Ok(permit) => {
                        calls.fetch_add(1, Ordering::Relaxed);
                        permit.failure();
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(calls.load(Ordering::Relaxed))
}

const WIDE_REPLICAS: usize = 8;
const WIDE_TENANTS: usize = 1000;

/// `n` replicas with a provider-wide circuit (the defaults: rate 0.5 over the last 50 calls, 20
/// calls, 3 distinct tenants) call `tenants` tenants of a dead provider in turn, each every 2 ms
/// (spread over the interval; replica `i` starts at tenant `i * tenants / n`), each until the
/// provider circuit rejects its call; the calls that reached the provider until every replica
/// rejected provider-wide.
async fn wide_trip(
    n: usize,
    tenants: usize,
    mode: Mode,
    url: &str,
    ns: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        let builder = Registry::builder()
            .default_config(config()?)
            .provider_wide(PROVIDER, breaker::ProviderWide::default());
        replicas.push(Arc::new(mode.replica(builder, url, ns).await?));
    }
    let names: Arc<Vec<String>> = Arc::new((0..tenants).map(|t| format!("t{t}")).collect());
    let calls = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, registry) in replicas.iter().enumerate() {
        let (registry, calls, names) = (registry.clone(), calls.clone(), names.clone());
        let first = start + EVERY * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next = i * tenants / n;
            while start.elapsed() < Duration::from_secs(60) {
                tick.tick().await;
                let tenant = &names[next % tenants];
                next += 1;
                match registry.acquire(PROVIDER, tenant, None) {
                    Ok(permit) => {
                        calls.fetch_add(1, Ordering::Relaxed);
                        permit.failure();
                    }
                    Err(e) if e.is_provider_wide() => return,
                    Err(_) => {}
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(calls.load(Ordering::Relaxed))
}

/// The store's `INFO commandstats`, over a plain socket (RESP by hand: the bench needs no
/// client of its own for one command).
fn commandstats(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header.trim().trim_start_matches('$').parse()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8(body)?)
}

/// Calls per command so far, as `INFO commandstats` counts them.
fn command_calls(url: &str) -> Result<Vec<(String, u64)>, Box<dyn std::error::Error>> {
    Ok(commandstats(url)?
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let n = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), n))
        })
        .collect())
}

/// The scripts the store ran so far (`EVALSHA` and `EVAL`).
async fn evalsha(url: &str) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(command_calls(url)?
        .iter()
        .filter(|(name, _)| name == "evalsha" || name == "eval")
        .map(|(_, n)| n)
        .sum())
}

/// Every command the store ran so far, and its pings (which every replica sends each second).
async fn all_commands(url: &str) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let calls = command_calls(url)?;
    let all = calls.iter().map(|(_, n)| n).sum();
    let pings = calls
        .iter()
        .filter(|(name, _)| name == "ping")
        .map(|(_, n)| n)
        .sum();
    Ok((all, pings))
}

/// `n` replicas call a healthy provider every 2 ms for 2 s: the store commands run meanwhile
/// besides pings (and the `INFO` that reads them), and the pings.
async fn healthy_writes(url: &str, n: usize) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(Arc::new(replica(Some((url, "healthy"))).await?));
    }
    let (all_before, pings_before) = all_commands(url).await?;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for registry in &replicas {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            while start.elapsed() < Duration::from_secs(2) {
                tick.tick().await;
                if let Ok(permit) = registry.acquire(PROVIDER, "acme", None) {
                    permit.success();
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let (all_after, pings_after) = all_commands(url).await?;
    let pings = pings_after - pings_before;
    // One INFO reads the counts before, and is counted in the after.
    Ok((all_after - all_before - pings - 1, pings))
}

struct Reach {
    calls: u64,
    probes: u64,
    rounds: usize,
    max_round: usize,
}

fn config() -> Result<Config, breaker::ConfigError> {
    Config::builder()
        .consecutive_failures(THRESHOLD)
        .open_for(OPEN_FOR)
        .backoff_multiplier(1.0)
        .build()
}

async fn replica(store: Option<(&str, &str)>) -> Result<Registry, Box<dyn std::error::Error>> {
    replica_of(Registry::builder().default_config(config()?), store, true).await
}

/// A replica built by `builder`, with a fleet on `store` (url, namespace) if any, connected.
async fn replica_of(
    builder: RegistryBuilder,
    store: Option<(&str, &str)>,
    pool_evidence: bool,
) -> Result<Registry, Box<dyn std::error::Error>> {
    Ok(match store {
        None => builder.build(),
        Some((url, ns)) => {
            let fleet = RedisFleet::builder(url)
                .namespace(ns)
                .pool_evidence(pool_evidence)
                .build()
                .await?;
            let health = fleet.health();
            let registry = builder.fleet(fleet).build();
            let start = Instant::now();
            while !health.is_connected() {
                if start.elapsed() > Duration::from_secs(10) {
                    return Err("a replica did not connect".into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            registry
        }
    })
}

/// `n` replicas call one failing tenant for [`OUTAGE`]; what reached the provider.
async fn reach(n: usize, store: Option<(&str, &str)>) -> Result<Reach, Box<dyn std::error::Error>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(Arc::new(replica(store).await?));
    }
    let calls = Arc::new(AtomicU64::new(0));
    let probes = Arc::new(Mutex::new(Vec::new()));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, registry) in replicas.iter().enumerate() {
        let (registry, calls, probes) = (registry.clone(), calls.clone(), probes.clone());
        // Spread over one interval, as behind a load balancer.
        let first = start + EVERY * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while start.elapsed() < OUTAGE {
                tick.tick().await;
                if let Ok(permit) = registry.acquire(PROVIDER, "acme", None) {
                    calls.fetch_add(1, Ordering::Relaxed);
                    if permit.is_probe() {
                        probes.lock().unwrap().push(start.elapsed());
                    }
                    permit.failure();
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let mut probes = std::mem::take(&mut *probes.lock().unwrap());
    probes.sort();
    let mut rounds: Vec<usize> = Vec::new();
    let mut round_start = None;
    for at in &probes {
        match round_start {
            Some(first) if *at < first + Duration::from_millis(500) => {
                *rounds.last_mut().unwrap() += 1;
            }
            _ => {
                round_start = Some(*at);
                rounds.push(1);
            }
        }
    }
    Ok(Reach {
        calls: calls.load(Ordering::Relaxed),
        probes: probes.len() as u64,
        rounds: rounds.len(),
        max_round: rounds.iter().copied().max().unwrap_or(0),
    })
}

const ENDING_REPLICAS: usize = 8;
const ENDING_CIRCUITS: usize = 10_000;
const ENDING_OPEN_FOR: Duration = Duration::from_secs(5);

struct Ending {
    twice: usize,
    most: usize,
    never: usize,
    closed: Duration,
    /// Store operations that failed (a timeout ends the session: the replica reconnects).
    failures: u64,
}

/// `circuits` tripped together on the first of `n` replicas; probers per circuit.
async fn ending_together(
    url: &str,
    n: usize,
    circuits: usize,
) -> Result<Ending, Box<dyn std::error::Error>> {
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(ENDING_OPEN_FOR)
        .build()?;
    let mut replicas = Vec::new();
    let mut healths = Vec::new();
    for _ in 0..n {
        let fleet = RedisFleet::builder(url)
            .namespace("ending")
            .queue_capacity(2 * circuits)
            .build()
            .await?;
        let health = fleet.health();
        healths.push(health.clone());
        replicas.push(
            Registry::builder()
                .default_config(config.clone())
                .fleet(fleet)
                .build(),
        );
        let start = Instant::now();
        while !health.is_connected() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("a replica did not connect".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let tenants: Vec<String> = (0..circuits).map(|j| format!("t{j}")).collect();
    let tripped = Instant::now();
    for t in &tenants {
        replicas[0].acquire(PROVIDER, t, None)?.failure();
    }
    for r in &replicas {
        // Open as stored: a period that ended before the check still counts.
        while !tenants
            .iter()
            .all(|t| r.circuit(PROVIDER, t).retry_after().is_some())
        {
            if tripped.elapsed() > ENDING_OPEN_FOR {
                return Err("the openings did not reach every replica within the period".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut probers = vec![0usize; circuits];
    loop {
        let mut open = 0;
        for r in &replicas {
            for (j, t) in tenants.iter().enumerate() {
                match r.acquire(PROVIDER, t, None) {
                    Ok(permit) => {
                        if permit.is_probe() {
                            probers[j] += 1;
                        }
                        permit.success();
                    }
                    Err(_) => open += 1,
                }
            }
        }
        if open == 0 || tripped.elapsed() > ENDING_OPEN_FOR + Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Ending {
        twice: probers.iter().filter(|p| **p > 1).count(),
        most: probers.iter().copied().max().unwrap_or(0),
        never: probers.iter().filter(|p| **p == 0).count(),
        closed: tripped.elapsed().saturating_sub(ENDING_OPEN_FOR),
        failures: healths.iter().map(|h| h.failures()).sum(),
    })
}

/// How long one replica's opening takes to reach another's circuit, [`TRIALS`] times, sorted.
async fn propagation(url: &str) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let a = replica(Some((url, "propagation"))).await?;
    let b = replica(Some((url, "propagation"))).await?;
    let mut delays = Vec::with_capacity(TRIALS);
    for i in 0..TRIALS {
        let tenant = format!("t{i}");
        let watched = b.circuit(PROVIDER, &tenant);
        let tripped = a.circuit(PROVIDER, &tenant);
        let spin = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while watched.state() != State::Open {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::yield_now();
            }
            Some(Instant::now())
        });
        let at = Instant::now();
        for _ in 0..THRESHOLD {
            tripped.try_acquire()?.failure();
        }
        let seen = tokio::task::spawn_blocking(move || spin.join())
            .await?
            .map_err(|_| "the spinning thread panicked")?
            .ok_or("an opening did not propagate within 10 s")?;
        delays.push(seen - at);
    }
    delays.sort();
    Ok(delays)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
