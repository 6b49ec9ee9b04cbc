//! What an outage keeps: the README promises the queue's worth of changes and, while the store
//! is away, the latest change of as many circuits again. Before this was fixed the background
//! task drained the queue into the kept changes during the outage, so only `queue_capacity`
//! circuits survived it.

mod support;

use std::time::Duration;

use support::{eventually, replica_with, RedisServer, BOUND};

const CAPACITY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_twice_the_queue_capacity_of_circuits() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let (a, health) = replica_with(&server.url(), "checkout", Duration::from_secs(120), |b| {
        b.queue_capacity(CAPACITY)
    })
    .await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    server.kill();
    assert!(eventually(BOUND, || !health.is_connected()).await);

    // Twice the capacity of circuits open while the store is away, a few at a time (a burst
    // larger than the queue may be dropped before the task takes it: that is the queue's bound,
    // not what is tested here).
    for batch in 0..(2 * CAPACITY / 4) {
        for i in 0..4 {
            a.circuit("openai", &format!("t{}", batch * 4 + i))
                .try_acquire()
                .unwrap()
                .failure();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One more is beyond the promise: dropped and counted.
    a.circuit("openai", "one-too-many")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        eventually(BOUND, || health.dropped() >= 1).await,
        "nothing dropped beyond the bound"
    );

    let server = RedisServer::start_on(port).expect("restart on the same port");
    assert!(eventually(BOUND, || health.is_connected()).await);
    let mut open = 0;
    assert!(
        eventually(BOUND, || {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("breaker:v1:checkout:*:open")
                .query(&mut server.client().get_connection().unwrap())
                .unwrap();
            open = keys.len();
            open == 2 * CAPACITY
        })
        .await,
        "{open} of {} openings made during the outage reached the store (dropped: {})",
        2 * CAPACITY,
        health.dropped()
    );
    assert_eq!(health.dropped(), 1, "only the one beyond the bound");
}
