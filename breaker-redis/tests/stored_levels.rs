//! The numbers of a stored opening (its level, margin and written TTL) are read by one rule in
//! the store's scripts and in Rust: 1 to 15 decimal digits, a level no higher than the backoff's
//! cap, a written TTL no shorter than what is left; else the number is absent and the opening is
//! garbage. Before, Lua took `100000000000000000000` as a level (1e20) and refused every real
//! opening as older, while Rust could not parse it and ignored it; Rust took `+5` where Lua saw
//! nothing.

mod support;

use std::time::Duration;

use breaker_core::State;
use redis::aio::MultiplexedConnection;
use support::{becomes, connected, eventually, RedisServer, BOUND};

/// No decimal integer of 1 to 15 digits: each must read as absent, as a level or a margin.
const NOT_NUMBERS: [&str; 9] = [
    "1e20",
    "-1",
    "abc",
    "",
    "+5",
    " 1",
    "0x10",
    "1000000000000000",
    "100000000000000000000",
];

/// Numbers, but above the backoff's cap: absent as a level.
const TOO_HIGH: [&str; 2] = ["32", "4294967296"];

fn key(namespace: &str, tenant: &str) -> String {
    format!("breaker:v1:{namespace}:{{openai:{tenant}}}:open")
}

async fn store(conn: &mut MultiplexedConnection, namespace: &str, tenant: &str, value: &str) {
    redis::cmd("SET")
        .arg(key(namespace, tenant))
        .arg(value)
        .arg("PX")
        .arg(600_000)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_levels_and_margins_are_absent_to_rust_and_lua_alike() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let namespace = "garbage";
    let mut tenants = Vec::new();
    for (i, garbage) in NOT_NUMBERS.iter().chain(&TOO_HIGH).enumerate() {
        let tenant = format!("level{i}");
        store(
            &mut admin,
            namespace,
            &tenant,
            &format!("{garbage}:60000:evil:660000"),
        )
        .await;
        tenants.push((tenant, *garbage));
    }
    for (i, garbage) in NOT_NUMBERS.iter().enumerate() {
        let tenant = format!("margin{i}");
        store(
            &mut admin,
            namespace,
            &tenant,
            &format!("0:{garbage}:evil:660000"),
        )
        .await;
        tenants.push((tenant, *garbage));
    }
    let open_for = Duration::from_secs(30);
    // Rust: a replica's resync applies none of them.
    let (a, _) = connected(&server.url(), namespace, open_for).await;
    let (b, _) = connected(&server.url(), namespace, open_for).await;
    for (tenant, garbage) in &tenants {
        assert_eq!(
            b.circuit("openai", tenant).state(),
            State::Closed,
            "{tenant}: {garbage:?} was read as a number"
        );
    }
    // Lua: a real opening replaces each of them, and every replica takes it.
    for (tenant, _) in &tenants {
        a.circuit("openai", tenant).try_acquire().unwrap().failure();
    }
    for (tenant, garbage) in &tenants {
        assert!(
            becomes(&b, "openai", tenant, State::Open).await,
            "{tenant}: {garbage:?} refused a real opening"
        );
        let stored: String = redis::cmd("GET")
            .arg(key(namespace, tenant))
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(stored.starts_with("0:"), "{tenant}: {stored:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_ends_an_opening_whose_written_ttl_cannot_be_true() {
    // The TTL an opening says it was written with dates it in store time: one shorter than what
    // it has left (or no number) is garbage, so the opening counts as older than any end. Read
    // as a number, "1" made it younger than every reset, which could then never end it.
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let namespace = "written-ttl";
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), namespace, open_for).await;
    let (b, _) = connected(&server.url(), namespace, open_for).await;
    let mut tenants = Vec::new();
    for (i, ttl) in ["1", "59999"].iter().chain(&NOT_NUMBERS).enumerate() {
        let tenant = format!("ttl{i}");
        store(
            &mut admin,
            namespace,
            &tenant,
            &format!("0:60000:evil:{ttl}"),
        )
        .await;
        redis::cmd("PUBLISH")
            .arg(format!("breaker:v1:{namespace}:changes"))
            .arg(format!("v1 open evil openai {tenant}"))
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
        tenants.push((tenant, *ttl));
    }
    for (tenant, _) in &tenants {
        assert!(becomes(&b, "openai", tenant, State::Open).await, "{tenant}");
        a.circuit("openai", tenant).reset();
    }
    for (tenant, ttl) in &tenants {
        assert!(
            becomes(&b, "openai", tenant, State::Closed).await,
            "{tenant}: written TTL {ttl:?} outlived a reset"
        );
        let key = key(namespace, tenant);
        assert!(
            eventually(BOUND, || {
                let mut conn = server.client().get_connection().unwrap();
                !redis::cmd("EXISTS")
                    .arg(&key)
                    .query::<bool>(&mut conn)
                    .unwrap()
            })
            .await,
            "{tenant}: written TTL {ttl:?} kept the opening"
        );
    }
}
