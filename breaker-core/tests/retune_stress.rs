//! Stress: threads calling one provider's circuits (recording, abandoning, holding permits across
//! retunings) while another retunes the provider over and over between configs of every kind
//! (count and time windows, slow calls, probe counts, probe timeouts) and the clock moves.
//! Afterwards every circuit runs on the last config, nothing is wedged, and the windows hold no
//! more than they can.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Config, ManualClock, Outcome, Permit, Registry, State, Window};

const TENANTS: usize = 8;

fn configs() -> Vec<Config> {
    let ms = Duration::from_millis;
    let base = |b: breaker_core::ConfigBuilder| {
        b.open_for(ms(2))
            .max_open_for(ms(20))
            .probe_timeout(ms(10))
            .build()
            .unwrap()
    };
    vec![
        base(Config::builder().consecutive_failures(2)),
        base(
            Config::builder()
                .failure_rate(0.5, Window::Calls(8))
                .minimum_calls(4)
                .half_open_probes(3),
        ),
        base(
            Config::builder()
                .failure_rate(0.5, Window::Calls(16))
                .minimum_calls(4)
                .on_abandoned(Outcome::Ignored),
        ),
        base(
            Config::builder()
                .failure_rate(0.6, Window::Time(ms(50)))
                .slow_calls(ms(1), 0.8)
                .minimum_calls(3)
                .half_open_probes(2)
                .half_open_successes(1),
        ),
        base(
            Config::builder()
                .consecutive_failures(5)
                .slow_calls(ms(3), 1.0)
                .window(Window::Calls(4)),
        ),
    ]
}

fn outcome() -> Outcome {
    match fastrand::u8(0..10) {
        0..=4 => Outcome::Success,
        5..=7 => Outcome::Failure,
        8 => Outcome::RetryAfter(Duration::from_micros(fastrand::u64(0..3000))),
        _ => Outcome::Ignored,
    }
}

#[test]
fn retuning_under_concurrent_calls_keeps_every_circuit_sound() {
    let rounds: usize = if std::env::var_os("BREAKER_STRESS").is_some() {
        200_000
    } else {
        20_000
    };
    let clock = ManualClock::new();
    let registry = Arc::new(Registry::builder().clock(clock.clone()).build());
    let configs = configs();
    registry.configure("p", configs[0].clone());
    let done = Arc::new(AtomicBool::new(false));

    let callers: Vec<_> = (0..3)
        .map(|_| {
            let registry = registry.clone();
            std::thread::spawn(move || {
                let mut held: Vec<Permit> = Vec::new();
                for i in 0..rounds {
                    let tenant = format!("t{}", i % TENANTS);
                    if let Ok(permit) = registry.acquire("p", &tenant, None) {
                        match fastrand::u8(0..10) {
                            0 => held.push(permit),
                            1 => drop(permit),
                            _ => permit.record(outcome()),
                        }
                    }
                    if held.len() > 4 || fastrand::u8(0..20) == 0 {
                        if let Some(p) = held.pop() {
                            p.record(outcome());
                        }
                    }
                }
                drop(held);
            })
        })
        .collect();
    let tuner = {
        let (registry, configs, done, clock) = (
            registry.clone(),
            configs.clone(),
            done.clone(),
            clock.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                registry.configure("p", configs[n % configs.len()].clone());
                clock.advance(Duration::from_micros(fastrand::u64(0..700)));
                n += 1;
                std::thread::yield_now();
            }
            n
        })
    };
    for c in callers {
        c.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let retunings = tuner.join().unwrap();
    assert!(retunings > 0);
    println!("{retunings} retunings");

    let last = Config::builder().consecutive_failures(1).build().unwrap();
    registry.configure("p", last.clone());
    assert_eq!(registry.len(), TENANTS);
    registry.for_each(|c| {
        assert_eq!(c.config(), &last, "{}", c.tenant());
        assert!(c.metrics().calls_in_window == 0, "no window any more");
    });
    // Past every open period and probe timeout: each circuit lets a call through and closes.
    clock.advance(Duration::from_secs(120));
    for i in 0..TENANTS {
        let tenant = format!("t{i}");
        let circuit = registry.circuit("p", &tenant);
        let mut closed = false;
        for _ in 0..3 {
            match circuit.try_acquire() {
                Ok(p) => p.success(),
                Err(e) => {
                    assert_eq!(e.state(), State::HalfOpen, "{tenant}: {e}");
                    clock.advance(Duration::from_secs(61));
                }
            }
            if circuit.state() == State::Closed {
                closed = true;
                break;
            }
        }
        assert!(closed, "{tenant} wedged in {:?}", circuit.state());
        circuit.try_acquire().unwrap().failure();
        assert_eq!(
            circuit.state(),
            State::Open,
            "{tenant} runs on the last config"
        );
    }
}
