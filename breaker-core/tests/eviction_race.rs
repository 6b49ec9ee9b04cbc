//! Lookups and permits racing the registry's idle sweeps, table rebuilds and removals: every
//! permit keeps reading its own circuit (the registry frees what it drops only once no permit or
//! lookup that could see it is alive), and the registry keeps one circuit per tenant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use breaker_core::{ManualClock, Permit, Registry};

const TENANTS: usize = 2_000;

fn check(permit: &Permit, tenant: &str) {
    // The permit reads its circuit's provider and tenant: freed memory would show here.
    let shown = format!("{permit:?}");
    assert!(
        shown.contains(&format!("tenant: \"{tenant}\"")) && shown.contains("provider: \"p\""),
        "{shown} for {tenant}"
    );
}

#[test]
fn permits_and_lookups_survive_sweeps_and_removals() {
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .clock(clock.clone())
        .idle_ttl(Duration::from_secs(1))
        .build();
    let names: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i}")).collect();
    let done = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(Permit, usize)>();
    std::thread::scope(|s| {
        // Records permits handed over by the workers, on another thread than took them.
        s.spawn(|| {
            for (permit, i) in rx {
                check(&permit, &names[i]);
                permit.success();
            }
        });
        for w in 0..2u64 {
            let (registry, names, done, tx) = (&registry, &names, &done, tx.clone());
            s.spawn(move || {
                let mut x = w * 7919 + 1;
                let mut held: Vec<(Permit, usize)> = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x % TENANTS as u64) as usize;
                    let permit = registry.acquire("p", &names[i], None).unwrap();
                    check(&permit, &names[i]);
                    match x % 4 {
                        0 => tx.send((permit, i)).unwrap(),
                        1 => held.push((permit, i)),
                        _ => permit.success(),
                    }
                    if held.len() > 64 {
                        for (permit, i) in held.drain(..) {
                            check(&permit, &names[i]);
                            permit.success();
                        }
                    }
                    if let Some(c) = registry.get("p", &names[(i + 1) % TENANTS]) {
                        assert_eq!(c.tenant(), names[(i + 1) % TENANTS]);
                    }
                }
                for (permit, i) in held {
                    check(&permit, &names[i]);
                    permit.success();
                }
            });
        }
        drop(tx);
        // Sweeps (which evict and shrink the table), removals (which unlink one by one) and
        // the growth the workers cause, all while permits are out.
        for round in 0..300 / scale() as usize {
            clock.advance(Duration::from_secs(1));
            registry.evict_idle();
            for i in (round % 7..TENANTS).step_by(97) {
                registry.remove("p", &names[i]);
            }
            std::thread::yield_now();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(registry.len() <= TENANTS);
    registry.for_each(|c| assert!(c.tenant().starts_with("tenant-")));
}

/// `BREAKER_SCALE=n` divides the work by `n` (valgrind runs these at a tenth or less).
fn scale() -> u32 {
    std::env::var("BREAKER_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u32)
        .max(1)
}
