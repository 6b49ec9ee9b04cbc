//! Feature `cluster`: a fleet on a real three-master Redis Cluster behaves as on one server.
//! Circuits whose keys live on different masters open together, a replica started later resyncs
//! from every master, one replica probes, quorum and operators act fleet-wide, and a cluster that
//! is down at start (or a seed that is) is a degraded start, not an error; after a master's
//! failover the fleet works again, pub/sub listening through another node.

#![cfg(feature = "cluster")]

#[path = "support/cluster.rs"]
mod cluster_support;
mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Permit, Registry, State};
use breaker_redis::RedisFleet;
use cluster_support::{connected, replica, RedisCluster};
use support::{becomes, config, eventually, free_port, BOUND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuits_on_every_master_open_together_and_a_later_replica_resyncs_them_all() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let tenants = cluster.tenant_per_master("checkout", "openai");
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&cluster, "checkout", open_for).await;
    let (b, _) = connected(&cluster, "checkout", open_for).await;

    for (tenant, _) in &tenants {
        a.circuit("openai", tenant).try_acquire().unwrap().failure();
    }
    for (tenant, master) in &tenants {
        assert!(
            becomes(&b, "openai", tenant, State::Open).await,
            "b never opened {tenant} (served by {master})"
        );
        let key = format!("breaker:v1:checkout:{{openai:{tenant}}}:open");
        assert!(
            cluster.keys_on(*master).contains(&key),
            "{key} is not on its slot's master {master}"
        );
    }
    // The masters are distinct: the openings really are spread over the cluster.
    let mut masters: Vec<u16> = tenants.iter().map(|(_, m)| *m).collect();
    masters.sort_unstable();
    masters.dedup();
    assert_eq!(masters.len(), 3);

    // A replica that starts later scans every master, not just the one it asks first.
    let (c, c_health) = connected(&cluster, "checkout", open_for).await;
    for (tenant, master) in &tenants {
        assert!(
            c.acquire("openai", tenant, None).is_err(),
            "the resync missed {tenant} (on {master})"
        );
    }
    assert!(c_health.applied() >= 3);
    assert_eq!(b.circuit("openai", "untouched").state(), State::Closed);
}

fn probing(probe_timeout: Duration) -> Config {
    Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(800))
        .probe_timeout(probe_timeout)
        .build()
        .unwrap()
}

/// Calls every replica in turn until one admits a call, then checks that the others keep
/// rejecting for a while longer.
async fn the_one_probe(fleet: &[Registry], tenant: &str) -> Permit {
    let start = Instant::now();
    let (prober, permit) = loop {
        assert!(start.elapsed() < BOUND, "no replica ever probed");
        let admitted = fleet
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.acquire("openai", tenant, None).ok().map(|p| (i, p)));
        if let Some(found) = admitted {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(permit.is_probe());
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        for (i, r) in fleet.iter().enumerate() {
            assert!(
                r.acquire("openai", tenant, None).is_err(),
                "replica {i} let a second call through while {prober} probes"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    permit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_fleet_and_its_success_closes_every_replica() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (registry, health) = replica(
            &cluster.seeds(),
            "checkout",
            probing(Duration::from_secs(5)),
            |b| b,
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
    }
    // Not on the master that serves the channel's slot, for all that it matters: any.
    let (tenant, _) = &cluster.tenant_per_master("checkout", "openai")[1];
    fleet[0]
        .circuit("openai", tenant)
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", tenant, State::Open).await);
    }
    let probe = the_one_probe(&fleet, tenant).await;
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            becomes(r, "openai", tenant, State::Closed).await,
            "replica {i}"
        );
    }
    // What is left marks the incident's end for the margin.
    let keys = cluster.all_keys();
    assert!(
        keys.iter().all(|k| k.ends_with(":ended")),
        "the opening's keys went with it: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_is_counted_on_the_circuits_master() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (registry, health) = replica(
            &cluster.seeds(),
            "checkout",
            config(Duration::from_secs(30)),
            |b| b.quorum(2),
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push((registry, health));
    }
    let [(a, a_health), (b, b_health), (c, _)] = &fleet[..] else {
        unreachable!()
    };
    for (tenant, master) in cluster.tenant_per_master("checkout", "openai") {
        let published = a_health.published();
        a.circuit("openai", &tenant)
            .try_acquire()
            .unwrap()
            .failure();
        assert!(eventually(BOUND, || a_health.published() == published + 1).await);
        assert_eq!(
            cluster.keys_on(master),
            [format!("breaker:v1:checkout:{{openai:{tenant}}}:reports")],
            "one report, no opening, on {tenant}'s master"
        );
        assert_eq!(c.circuit("openai", &tenant).state(), State::Closed);

        let published = b_health.published();
        b.circuit("openai", &tenant)
            .try_acquire()
            .unwrap()
            .failure();
        assert!(eventually(BOUND, || b_health.published() == published + 1).await);
        assert!(
            becomes(c, "openai", &tenant, State::Open).await,
            "the quorum script's announcement of {tenant} (on {master}) never reached c"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_switches_reach_every_replica_whichever_master_holds_them() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let tenants = cluster.tenant_per_master("checkout", "openai");
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&cluster, "checkout", open_for).await;
    let (b, _) = connected(&cluster, "checkout", open_for).await;

    for (tenant, _) in &tenants {
        a.circuit("openai", tenant).force_open();
    }
    for (tenant, _) in &tenants {
        assert!(becomes(&b, "openai", tenant, State::ForcedOpen).await);
    }
    let (c, _) = connected(&cluster, "checkout", open_for).await;
    for (tenant, master) in &tenants {
        assert!(
            becomes(&c, "openai", tenant, State::ForcedOpen).await,
            "a replica started later did not resync the switch on {master}"
        );
    }
    for (tenant, _) in &tenants {
        b.circuit("openai", tenant).reset();
    }
    for (tenant, _) in &tenants {
        assert!(becomes(&a, "openai", tenant, State::Closed).await);
        assert!(becomes(&c, "openai", tenant, State::Closed).await);
    }
    let keys = cluster.all_keys();
    assert!(keys.iter().all(|k| k.ends_with(":ended")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_seed_is_passed_over() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    // Nothing listens on the first seed: the cluster connection and the pub/sub connection
    // both go on to the next.
    let mut seeds = vec![format!("redis://127.0.0.1:{}/", free_port())];
    seeds.extend(cluster.seeds());
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica(&seeds, "checkout", config(open_for), |b| b).await;
    let (b, _) = connected(&cluster, "checkout", open_for).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    b.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(
        becomes(&a, "openai", "acme", State::Open).await,
        "a hears announcements through a live seed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_failed_over_and_the_fleet_reconverges() {
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    // A replica per master, promoted a second after its master stops answering (and synced at
    // once, not after the 5 s wait for more replicas that a diskless sync makes by default).
    let Some(mut cluster) = RedisCluster::start_with(
        &ports,
        1,
        &[
            "--cluster-node-timeout",
            "1000",
            "--repl-diskless-sync-delay",
            "0",
        ],
    ) else {
        return;
    };
    let master = *ports.iter().find(|&&p| cluster.is_master(p)).unwrap();
    let url = |port: u16| format!("redis://127.0.0.1:{port}/");
    let others: Vec<String> = ports
        .iter()
        .filter(|&&p| p != master)
        .map(|&p| url(p))
        .collect();
    // a listens through the master that will die (its first seed).
    let mut a_seeds = vec![url(master)];
    a_seeds.extend(others.iter().cloned());
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica(&a_seeds, "checkout", config(open_for), |b| b).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    let key = |t: &str| format!("breaker:v1:checkout:{{openai:{t}}}:open");
    let tenant = (0..)
        .map(|i| format!("t{i}"))
        .find(|t| cluster.master_of(&key(t)) == master)
        .unwrap();

    let failures = a_health.failures();
    cluster.kill(master);
    assert!(
        eventually(BOUND, || a_health.failures() > failures).await,
        "a never noticed that its pub/sub node died"
    );
    // Meanwhile a write to the dead master's slots fails (and is dropped, as with any store
    // failure); once its replica serves them, the fleet works as before.
    let failover = BOUND * 3;
    assert!(
        support::poll(failover, || cluster.master_of(&key(&tenant)) != master),
        "no replica took over: {}",
        cluster.describe()
    );
    assert!(
        eventually(failover, || a_health.is_connected()).await,
        "a did not reconnect after the failover"
    );
    let (b, b_health) = replica(&others, "checkout", config(open_for), |b| b).await;
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    b.circuit("openai", &tenant)
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        becomes(&a, "openai", &tenant, State::Open).await,
        "a missed an opening after the failover: a {a_health:?}, b {b_health:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_pubsub_node_is_left_for_another() {
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let Some(cluster) = RedisCluster::start_with(&ports, 1, &["--repl-diskless-sync-delay", "0"])
    else {
        return;
    };
    // A replica: hung, it serves no slot, so only the pub/sub connection to it notices.
    let hung = *ports.iter().find(|&&p| !cluster.is_master(p)).unwrap();
    let url = |port: u16| format!("redis://127.0.0.1:{port}/");
    let others: Vec<String> = ports
        .iter()
        .filter(|&&p| p != hung)
        .map(|&p| url(p))
        .collect();
    let mut a_seeds = vec![url(hung)];
    a_seeds.extend(others.iter().cloned());
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica(&a_seeds, "checkout", config(open_for), |b| b).await;
    let (b, b_health) = replica(&others, "checkout", config(open_for), |b| b).await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);
    // Openings a knows of on two masters: after reconnecting to the same cluster it checks
    // them all in one pipeline, which spans their slots.
    let tenants = cluster.tenant_per_master("checkout", "openai");
    for (tenant, _) in &tenants[..2] {
        b.circuit("openai", tenant).try_acquire().unwrap().failure();
        assert!(becomes(&a, "openai", tenant, State::Open).await);
    }

    cluster.signal(hung, "STOP");
    assert!(
        eventually(BOUND, || a_health.failures() > 0).await,
        "a never noticed that its pub/sub node hung"
    );
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    b.circuit("openai", "acme").try_acquire().unwrap().failure();
    let heard = becomes(&a, "openai", "acme", State::Open).await;
    cluster.signal(hung, "CONT");
    assert!(heard, "a missed an opening: a {a_health:?}, b {b_health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_at_start_is_a_degraded_start_then_joined() {
    let ports = [free_port(), free_port(), free_port()];
    let seeds: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica(&seeds, "checkout", config(open_for), |b| b).await;
    assert!(
        eventually(BOUND, || a_health.failures() > 0).await,
        "the fleet never tried"
    );
    assert!(!a_health.is_connected());
    // Calls run on local circuits meanwhile.
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert_eq!(a.circuit("openai", "acme").state(), State::Open);

    let Some(cluster) = RedisCluster::start_on(ports) else {
        return;
    };
    assert!(
        eventually(BOUND, || a_health.is_connected()).await,
        "the fleet never joined the cluster that came up"
    );
    let (b, _) = connected(&cluster, "checkout", open_for).await;
    b.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&a, "openai", "globex", State::Open).await);
}

#[tokio::test]
async fn invalid_seeds_are_an_error_naming_the_field() {
    let no_seeds: [&str; 0] = [];
    let cases = [
        RedisFleet::cluster_builder(no_seeds),
        RedisFleet::cluster_builder(["not a url"]),
        RedisFleet::cluster_builder(["redis://127.0.0.1:7000/", "http://127.0.0.1:7001/"]),
        // A cluster names its nodes by IP and port: a socket path cannot be one of them.
        RedisFleet::cluster_builder(["redis+unix:///tmp/redis.sock"]),
        // Every node of a cluster is reached with the same credentials.
        RedisFleet::cluster_builder([
            "redis://:one@127.0.0.1:7000/",
            "redis://:two@127.0.0.1:7001/",
        ]),
    ];
    for (i, builder) in cases.into_iter().enumerate() {
        let err = builder.build().await.expect_err("invalid seeds");
        assert_eq!(err.field(), "seeds", "case {i}: {err}");
    }
    // A password is never quoted back.
    let err = RedisFleet::cluster_builder(["redis://:secret@127.0.0.1:7000/", "ftp://x/"])
        .build()
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    // Other settings are checked as for one server.
    let err = RedisFleet::cluster_builder(["redis://127.0.0.1:7000/"])
        .quorum(0)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.field(), "quorum");
}

/// Issue 23 on a cluster: each circuit's evidence lives in its slot (its hash tag), so one
/// master adds up the replicas' failures of circuits spread over every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_evidence_trips_circuits_on_every_master() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let tenants = cluster.tenant_per_master("checkout", "openai");
    let streak = Config::builder()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    let mut healths = Vec::new();
    for _ in 0..3 {
        let (registry, health) = replica(&cluster.seeds(), "checkout", streak.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        replicas.push(registry);
        healths.push(health);
    }
    // One failure per replica and tenant: no replica has more than one of its own.
    for r in &replicas {
        for (tenant, _) in &tenants {
            r.acquire("openai", tenant, None).unwrap().failure();
        }
    }
    for (tenant, master) in &tenants {
        for (i, r) in replicas.iter().enumerate() {
            assert!(
                eventually(EVIDENCE_BOUND, || r.circuit("openai", tenant).state()
                    == State::Open)
                .await,
                "the fleet's failures of {tenant} (on {master}) never tripped it on replica {i}; \
                 replicas' states {:?}; health {healths:#?}; keys {:?}",
                replicas
                    .iter()
                    .map(|r| r.circuit("openai", tenant).state())
                    .collect::<Vec<_>>(),
                cluster.all_keys(),
            );
        }
    }
}

/// How long the evidence tests wait for a fleet trip: evidence goes write-behind (the
/// replica's task, one pipeline in flight, a script on the circuit's master, then the trip's
/// message), and this file runs eleven clusters at once; on a 2-core CI host under
/// `--all-features` that took over [`BOUND`] (10 s) in about one run in three, while a run alone
/// takes 3 s. A bound, not a timing: the assertions are unchanged.
const EVIDENCE_BOUND: Duration = Duration::from_secs(40);

/// Issue 23, item 6 on a cluster: a provider circuit's evidence (`(provider, "*")`, one slot)
/// is pooled on its master like a tenant circuit's, and trips every replica's provider circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_provider_wide_evidence_trips_the_provider_circuit() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let wide = breaker_core::ProviderWide::builder()
        .minimum_calls(8)
        .distinct_tenants(4)
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let (registry, health) = support::replica_of(
            RedisFleet::cluster_builder(cluster.seeds()).namespace("checkout"),
            Registry::builder().provider_wide("openai", wide.clone()),
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        replicas.push(registry);
    }
    // Two tenants per replica: 2 of the 8 pooled calls a replica needs alone.
    for (i, r) in replicas.iter().enumerate() {
        for t in ["a", "b"] {
            r.acquire("openai", &format!("{t}{i}"), None)
                .unwrap()
                .failure();
        }
    }
    // Polled by its state, not by calls: a call admitted before the opening arrives would be
    // a permit dropped unrecorded, an outcome the test did not mean to add.
    for (i, r) in replicas.iter().enumerate() {
        let wide = r.provider_circuit("openai").unwrap();
        assert!(
            eventually(EVIDENCE_BOUND, || wide.state() == State::Open).await,
            "replica {i}'s provider circuit never opened"
        );
        assert!(r
            .acquire("openai", "new", None)
            .is_err_and(|e| e.is_provider_wide()));
    }
}
