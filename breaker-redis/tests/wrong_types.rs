//! A key of the wrong type (a list, a hash, a set where the fleet keeps a string or a sorted
//! set: another program's, an operator's mistake, a hostile client) costs its own circuit at
//! most, with a `WARN` naming it: new replicas still connect, every other circuit is still
//! shared, live and after an outage, and no session fails over it.

mod support;

#[path = "support/logs.rs"]
mod logs;

use std::time::Duration;

use breaker_core::State;
use redis::aio::MultiplexedConnection;
use support::{becomes, connected, eventually, replica, Proxy, RedisServer, BOUND};

const OPEN_FOR: Duration = Duration::from_secs(30);

/// The key of `tenant`'s circuit of kind `kind` (`open`, `operator`, `probe`, `ended`).
fn key(namespace: &str, tenant: &str, kind: &str) -> String {
    format!("breaker:v1:{namespace}:{{openai:{tenant}}}:{kind}")
}

async fn run(conn: &mut MultiplexedConnection, args: &[&str]) {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async::<redis::Value>(conn)
        .await
        .unwrap();
}

/// Announces an `op` of `tenant` as a replica named `evil` would.
async fn announce(conn: &mut MultiplexedConnection, namespace: &str, op: &str, tenant: &str) {
    let channel = format!("breaker:v1:{namespace}:changes");
    let message = format!("v1 {op} evil openai {tenant}");
    run(conn, &["PUBLISH", &channel, &message]).await;
}

fn warned_about(key: &str) -> bool {
    !logs::warnings_with(key).is_empty()
}

/// A replica that starts while `bad` holds another type (made by `wrong`, a command on it)
/// connects, applies the rest of the namespace, and survives an announcement `op` that makes it
/// read `bad` again.
async fn a_new_replica_connects_past(namespace: &str, bad: &str, wrong: &[&str], op: &str) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let (a, _) = connected(&server.url(), namespace, OPEN_FOR).await;
    a.circuit("openai", "good").try_acquire().unwrap().failure();
    assert!(
        eventually(BOUND, || exists(&server, &key(namespace, "good", "open"))).await,
        "the opening of good was not written"
    );
    let mut args = vec![wrong[0], bad];
    args.extend_from_slice(&wrong[1..]);
    run(&mut admin, &args).await;

    let (b, b_health) = replica(&server.url(), namespace, OPEN_FOR).await;
    assert!(
        eventually(BOUND, || b_health.is_connected()).await,
        "one key of the wrong type kept a new replica from connecting"
    );
    assert!(becomes(&b, "openai", "good", State::Open).await);
    assert!(warned_about(bad), "no WARN named {bad}");

    // Reading it again for an announcement does not end the session.
    announce(&mut admin, namespace, op, "bad").await;
    a.circuit("openai", "good2")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&b, "openai", "good2", State::Open).await);
    assert_eq!(b_health.failures(), 0, "a session failed over one key");
    assert_eq!(b.circuit("openai", "bad").state(), State::Closed);
}

/// Whether `key` exists, read with a blocking client (for `eventually`'s closure).
fn exists(server: &RedisServer, key: &str) -> bool {
    let mut conn = server.client().get_connection().unwrap();
    redis::cmd("EXISTS")
        .arg(key)
        .query::<bool>(&mut conn)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_one_opening_does_not_keep_new_replicas_out() {
    logs::capture();
    let namespace = "list-at-open";
    let bad = key(namespace, "bad", "open");
    a_new_replica_connects_past(namespace, &bad, &["RPUSH", "x"], "open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_at_one_switch_does_not_keep_new_replicas_out() {
    logs::capture();
    let namespace = "hash-at-operator";
    let bad = key(namespace, "bad", "operator");
    a_new_replica_connects_past(namespace, &bad, &["HSET", "x", "y"], "operator").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_at_one_opening_does_not_stop_other_openings_being_shared() {
    logs::capture();
    let Some(server) = RedisServer::start() else {
        return;
    };
    other_openings_are_shared_past_a_hash(&server, "hash-at-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_a_hash_at_one_opening_does_not_stop_other_openings_being_shared() {
    logs::capture();
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    other_openings_are_shared_past_a_hash(&server, "valkey-hash-at-open").await;
}

async fn other_openings_are_shared_past_a_hash(server: &RedisServer, namespace: &str) {
    let bad = key(namespace, "bad", "open");
    let mut admin = server.admin().await;
    let (a, a_health) = connected(&server.url(), namespace, OPEN_FOR).await;
    let (b, _) = connected(&server.url(), namespace, OPEN_FOR).await;
    run(&mut admin, &["HSET", &bad, "x", "y"]).await;

    a.circuit("openai", "bad").try_acquire().unwrap().failure();
    a.circuit("openai", "good").try_acquire().unwrap().failure();
    assert!(
        becomes(&b, "openai", "good", State::Open).await,
        "one circuit's key of the wrong type kept the next opening from being shared"
    );
    assert!(warned_about(&bad), "no WARN named {bad}");
    assert_eq!(a_health.failures(), 0, "a session failed over one key");
    assert_eq!(b.circuit("openai", "bad").state(), State::Closed);
    // Refused, not overwritten: the fleet leaves what it did not write to whoever wrote it.
    let kind: String = redis::cmd("TYPE")
        .arg(&bad)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(kind, "hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_at_one_end_marker_does_not_stop_the_replay_of_other_openings() {
    logs::capture();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let namespace = "set-at-ended";
    let bad = key(namespace, "bad", "ended");
    let mut admin = server.admin().await;
    let proxy = Proxy::start(server.port).await;
    let (a, a_health) = replica(&proxy.url(), namespace, OPEN_FOR).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    let (b, _) = connected(&server.url(), namespace, OPEN_FOR).await;
    run(&mut admin, &["SADD", &bad, "x"]).await;

    // Both openings wait for the store's return, bad's first: the replay goes past it.
    proxy.cut();
    assert!(eventually(BOUND, || !a_health.is_connected()).await);
    a.circuit("openai", "bad").try_acquire().unwrap().failure();
    a.circuit("openai", "good").try_acquire().unwrap().failure();
    proxy.heal();
    assert!(
        becomes(&b, "openai", "good", State::Open).await,
        "the replay stopped at one circuit's key of the wrong type"
    );
    assert!(warned_about(&bad), "no WARN named {bad}");
    assert_eq!(b.circuit("openai", "bad").state(), State::Closed);

    // And live, with the store there all along.
    a.circuit("openai", "good2")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&b, "openai", "good2", State::Open).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_one_probe_lease_costs_only_its_circuits_race() {
    logs::capture();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let namespace = "list-at-probe";
    let bad = key(namespace, "bad", "probe");
    let mut admin = server.admin().await;
    let open_for = Duration::from_millis(800);
    let (a, a_health) = connected(&server.url(), namespace, open_for).await;
    let (b, b_health) = connected(&server.url(), namespace, open_for).await;
    a.circuit("openai", "bad").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "bad", State::Open).await);
    run(&mut admin, &["RPUSH", &bad, "x"]).await;

    // Both race for bad's probe as its period ends, and meet the list. (Only a replica that
    // calls a tenant races for its probe: both call it, rejected until the race.)
    assert!(
        eventually(BOUND, || {
            for replica in [&a, &b] {
                let _ = replica.circuit("openai", "bad").try_acquire();
            }
            warned_about(&bad)
        })
        .await,
        "no WARN named {bad}"
    );
    a.circuit("openai", "good").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "good", State::Open).await);
    assert_eq!(a_health.failures(), 0, "a session failed over one key");
    assert_eq!(b_health.failures(), 0, "a session failed over one key");
}

/// Races go out in batches (a pipeline of scripts): a list at one lease in the batch is refused
/// for that circuit alone; the others ending with it are still raced, probed and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_one_probe_lease_in_a_batch_costs_only_its_circuits_race() {
    logs::capture();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let namespace = "list-in-batch";
    let bad = key(namespace, "bad", "probe");
    let mut admin = server.admin().await;
    let open_for = Duration::from_millis(800);
    let (a, a_health) = connected(&server.url(), namespace, open_for).await;
    let (b, b_health) = connected(&server.url(), namespace, open_for).await;
    let tenants = ["bad", "t1", "t2", "t3"];
    for tenant in tenants {
        a.circuit("openai", tenant).try_acquire().unwrap().failure();
    }
    for tenant in tenants {
        assert!(becomes(&b, "openai", tenant, State::Open).await);
    }
    run(&mut admin, &["RPUSH", &bad, "x"]).await;

    // Both replicas call every tenant; every probe admitted succeeds.
    let closed = |tenant: &str| {
        [&a, &b]
            .iter()
            .all(|r| r.circuit("openai", tenant).state() == State::Closed)
    };
    assert!(
        eventually(BOUND, || {
            for replica in [&a, &b] {
                for tenant in tenants {
                    if let Ok(probe) = replica.circuit("openai", tenant).try_acquire() {
                        probe.success();
                    }
                }
            }
            warned_about(&bad) && tenants[1..].iter().all(|t| closed(t))
        })
        .await,
        "warned: {}, closed: {:?}",
        warned_about(&bad),
        tenants.map(closed)
    );
    assert_eq!(a_health.failures(), 0, "a session failed over one key");
    assert_eq!(b_health.failures(), 0, "a session failed over one key");
}
