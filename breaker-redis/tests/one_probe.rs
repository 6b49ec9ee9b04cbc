//! Behaviour 2: when the fleet's open period ends, one replica probes (it holds a lease in the
//! store that lapses after its circuit's `probe_timeout`); the others stay open until its
//! outcome is published.
//! A success closes every replica; a failure reopens every replica on the next backoff step with
//! the prober's jitter draw; a prober that dies lets its lease lapse and another one probes.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Permit, Registry, State};
use support::{becomes, eventually, replica_configured, replica_with, Proxy, RedisServer, BOUND};

async fn fleet_of(server: &RedisServer, n: usize, probe_timeout: Duration) -> Vec<Registry> {
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(800))
        // Each replica would draw its own period from ±20 %: a shared one is the prober's.
        .jitter(0.2)
        .probe_timeout(probe_timeout)
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..n {
        let (registry, health) =
            replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
    }
    fleet
}

/// Trips acme on the first replica and waits until every other one has opened it too.
async fn open_from_the_first(fleet: &[Registry]) {
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

/// Calls every replica in turn until one admits a call; returns its index and permit, after
/// checking that the others keep rejecting for a while longer.
async fn the_one_probe(fleet: &[Registry], skip: Option<usize>) -> (usize, Permit) {
    let start = Instant::now();
    let (prober, permit) = loop {
        assert!(start.elapsed() < BOUND, "no replica ever probed");
        let admitted = fleet
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .find_map(|(i, r)| r.acquire("openai", "acme", None).ok().map(|p| (i, p)));
        if let Some(found) = admitted {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(permit.is_probe());
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        for (i, r) in fleet.iter().enumerate() {
            if Some(i) != skip {
                assert!(
                    r.acquire("openai", "acme", None).is_err(),
                    "replica {i} let a second call through while {prober} probes"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (prober, permit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_fleet_and_its_success_closes_every_replica() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_secs(5)).await;
    open_from_the_first(&fleet).await;
    let (_, probe) = the_one_probe(&fleet, None).await;
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            becomes(r, "openai", "acme", State::Closed).await,
            "replica {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_reopens_every_replica_one_step_up_with_one_jitter_draw() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_secs(5)).await;
    open_from_the_first(&fleet).await;
    let (prober, probe) = the_one_probe(&fleet, None).await;
    probe.failure();
    let period = fleet[prober]
        .circuit("openai", "acme")
        .retry_after()
        .unwrap();
    assert!(
        period > Duration::from_millis(1200),
        "level 1: 1.6 s ± 20 %, got {period:?}"
    );
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(BOUND, || {
                r.circuit("openai", "acme")
                    .retry_after()
                    .is_some_and(|left| {
                        left <= period && left + Duration::from_millis(150) > period
                    })
            })
            .await,
            "replica {i} did not take the prober's period {period:?}: {:?}",
            r.circuit("openai", "acme").retry_after()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_probers_lease_lapses_and_another_replica_probes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_millis(700)).await;
    open_from_the_first(&fleet).await;
    let (prober, probe) = the_one_probe(&fleet, None).await;
    // The prober hangs forever: no outcome, ever.
    std::mem::forget(probe);
    let (next, probe) = the_one_probe(&fleet, Some(prober)).await;
    assert_ne!(next, prober);
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        if i != prober {
            assert!(
                becomes(r, "openai", "acme", State::Closed).await,
                "replica {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_race_winner_does_not_probe_beside_the_next_winner() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(800))
        .probe_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (r, health) =
            replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(r);
    }
    let tripped = Instant::now();
    open_from_the_first(&fleet).await;
    // The period ends at T = 800 ms with no call on any replica: none wants the probe, none
    // takes the lease, each holds its circuit. The first calls, long after, are rejected until
    // one replica's race is decided; then exactly one probes. (When the race ran regardless of
    // calls, the first winner, whose period ended long ago, was forgotten at its win and
    // probed as well as the next winner.)
    tokio::time::sleep_until((tripped + Duration::from_millis(1800)).into()).await;
    let (_, probe) = the_one_probe(&fleet, None).await;
    probe.success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_opening_does_not_overwrite_a_longer_one() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = |open_for| {
        Config::builder()
            .consecutive_failures(1)
            .open_for(open_for)
            .probe_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let (r, health) = replica_configured(
            &server.url(),
            "checkout",
            config(Duration::from_secs(3)),
            |b| b,
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(r);
    }
    // A third replica, cut off, trips acme with a 1 s period (its jitter draw, say) while the
    // fleet opens it for 3 s; its opening is written when it is back.
    let proxy = Proxy::start(server.port).await;
    let (third, third_health) = replica_configured(
        &proxy.url(),
        "checkout",
        config(Duration::from_secs(1)),
        |b| b,
    )
    .await;
    assert!(eventually(BOUND, || third_health.is_connected()).await);
    proxy.cut();
    assert!(eventually(BOUND, || !third_health.is_connected()).await);
    let tripped = Instant::now();
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    third
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&fleet[1], "openai", "acme", State::Open).await);
    proxy.heal();
    assert!(eventually(BOUND, || third_health.is_connected()).await);
    let mut admin = server.admin().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("breaker:v1:checkout:{openai:acme}:open")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        pttl > 60_000 + 1_000,
        "the 1 s opening replaced the 3 s one: PTTL {pttl} ms"
    );
    // Had it replaced it, the races would run at 1 s and every replica would probe on its own
    // when its 3 s end.
    tokio::time::sleep_until((tripped + Duration::from_millis(3200)).into()).await;
    fleet.push(third);
    let (_, probe) = the_one_probe(&fleet, None).await;
    probe.success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_lease_without_a_ttl_does_not_spin_the_race() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, health) = replica_configured(
        &server.url(),
        "checkout",
        Config::builder()
            .consecutive_failures(1)
            .open_for(Duration::from_millis(500))
            .build()
            .unwrap(),
        |b| b,
    )
    .await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    let mut admin = server.admin().await;
    // A lease with no TTL (another tool's, or a hand's): PTTL -1 used to read as "no time
    // left", and every replica raced for it again at once, in a loop.
    redis::cmd("SET")
        .arg("breaker:v1:checkout:{openai:acme}:probe")
        .arg("old")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    let key = "breaker:v1:checkout:{openai:acme}:probe";
    // `a` calls acme (rejected): it wants the probe, and races.
    assert!(
        eventually(BOUND, || {
            let _ = a.acquire("openai", "acme", None);
            let pttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query(&mut server.client().get_connection().unwrap())
                .unwrap();
            pttl > 0
        })
        .await,
        "the stray lease was given a TTL"
    );
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let calling = Instant::now();
    while calling.elapsed() < Duration::from_millis(500) {
        let _ = a.acquire("openai", "acme", None);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let evals = eval_calls(&mut admin).await;
    assert!(evals < 10, "{evals} races in 500 ms: the race spins");
}

/// Scripts run by the server so far, by text or by digest.
async fn eval_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    ["cmdstat_eval:", "cmdstat_evalsha:"]
        .iter()
        .filter_map(|name| {
            stats
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split("calls=").nth(1))
                .and_then(|s| s.split(',').next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_stops_once_an_incident_expired_unprobed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(300))
        .probe_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let (r, h) = replica_configured(&server.url(), "checkout", config.clone(), |b| {
            b.margin(Duration::from_millis(100))
        })
        .await;
        assert!(eventually(BOUND, || h.is_connected()).await);
        fleet.push(r);
    }
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&fleet[1], "openai", "acme", State::Open).await);
    // Nobody calls. The opening (300 ms + 100 ms margin) is long gone after 3 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = server.admin().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("breaker:v1:checkout:{openai:acme}:open")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
    let before = eval_calls(&mut conn).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = eval_calls(&mut conn).await;
    assert_eq!(
        after - before,
        0,
        "{} race scripts in 1 s for an incident that expired 2.6 s ago",
        after - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_still_in_flight_when_its_lease_lapses_is_left_to_finish() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(600))
        .probe_timeout(Duration::from_millis(2000))
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let (r, h) = replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || h.is_connected()).await);
        fleet.push(r);
    }
    let tripped = Instant::now();
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&fleet[1], "openai", "acme", State::Open).await);
    // Nobody calls until 1000 ms: then both do, until one replica's race is decided and its
    // call is the probe, which takes long (under its 2 s probe_timeout).
    tokio::time::sleep_until((tripped + Duration::from_millis(1000)).into()).await;
    let start = Instant::now();
    let mut found = None;
    while found.is_none() && start.elapsed() < BOUND {
        for (i, r) in fleet.iter().enumerate() {
            if let Ok(p) = r.acquire("openai", "acme", None) {
                assert!(p.is_probe());
                found = Some((i, p));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (w, probe) = found.expect("one replica won the race and probes");
    // Another replica takes the lease over (as after a lapse and a new race).
    let mut conn = server.admin().await;
    let _: () = redis::cmd("SET")
        .arg("breaker:v1:checkout:{openai:acme}:probe")
        .arg("cafecafecafecafe")
        .arg("PX")
        .arg(3000)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The winner looks at its claim (its probe in flight: it would keep the lease, but another
    // holds it now) and again later, with no call: its probe must be left alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let state = fleet[w].circuit("openai", "acme").state();
    probe.success();
    assert_eq!(
        state,
        State::HalfOpen,
        "the winner's circuit, probe in flight, was forced {state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_higher_level_period_does_not_refuse_a_new_trip() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_millis(300);
    let margin = |b: breaker_redis::RedisFleetBuilder| b.margin(Duration::from_secs(20));
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let (r, h) = replica_with(&server.url(), "checkout", open_for, margin).await;
        assert!(eventually(BOUND, || h.is_connected()).await);
        fleet.push(r);
    }
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&fleet[1], "openai", "acme", State::Open).await);
    // The fleet's probe fails: level 1.
    let start = Instant::now();
    let probe = 'found: loop {
        assert!(start.elapsed() < BOUND, "nobody probed");
        for r in &fleet {
            if let Ok(p) = r.acquire("openai", "acme", None) {
                break 'found p;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.failure();
    let mut conn = server.admin().await;
    assert!(
        eventually(BOUND, || {
            let v: Option<String> = server
                .client()
                .get_connection()
                .and_then(|mut c| {
                    redis::cmd("GET")
                        .arg("breaker:v1:checkout:{openai:acme}:open")
                        .query(&mut c)
                })
                .unwrap_or(None);
            v.is_some_and(|v| v.starts_with("1:"))
        })
        .await
    );
    // Its period (~600 ms) ends; nobody calls.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("breaker:v1:checkout:{openai:acme}:open")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl < 20_000, "in its margin: {pttl}");
    let (c, ch) = replica_with(&server.url(), "checkout", open_for, margin).await;
    let (d, dh) = replica_with(&server.url(), "checkout", open_for, margin).await;
    assert!(eventually(BOUND, || ch.is_connected() && dh.is_connected()).await);
    assert_eq!(d.circuit("openai", "acme").state(), State::Closed);
    c.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || ch.published() == 1).await);
    assert!(
        becomes(&d, "openai", "acme", State::Open).await,
        "c's new trip was refused by the old incident's expired level-1 opening"
    );
}
