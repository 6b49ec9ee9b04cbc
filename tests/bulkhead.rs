//! `max_in_flight`: a circuit lets at most n calls run at once; a call beyond them is refused at
//! once with a `CircuitOpen` whose `is_full()` is true, which is no outcome of the provider's
//! (nothing recorded, nothing tripped); a place comes back when its permit is recorded, dropped,
//! unwound by a panic or cancelled with its future. Issue 20.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use breaker::{Circuit, Config, Event, ManualClock, Outcome, Registry, State};

fn limited(n: u32) -> Config {
    Config::builder()
        .consecutive_failures(1)
        .max_in_flight(n)
        .build()
        .unwrap()
}

#[test]
fn a_call_beyond_max_in_flight_is_refused_at_once_and_not_recorded() {
    let circuit = Circuit::new(limited(2));
    let a = circuit.try_acquire().unwrap();
    let b = circuit.try_acquire().unwrap();
    let full = circuit.try_acquire().unwrap_err();
    assert!(full.is_full());
    assert!(!full.is_timeout());
    assert_eq!(full.state(), State::Closed);
    assert_eq!(full.retry_after(), None);
    assert_eq!(
        full.to_string(),
        "circuit full: max_in_flight calls in flight"
    );
    // Not a failure of the provider: one failure trips this circuit, and it is still closed.
    assert_eq!(circuit.state(), State::Closed);
    let m = circuit.metrics();
    assert_eq!(m.consecutive_failures, 0);
    assert_eq!(m.rejected, 0, "the state refused nothing");
    a.success();
    let c = circuit.try_acquire().unwrap();
    assert!(circuit.try_acquire().unwrap_err().is_full());
    b.ignore();
    c.success();
    assert!(circuit.try_acquire().is_ok());
}

#[test]
fn every_way_a_permit_ends_gives_its_place_back() {
    let circuit = Circuit::new(
        Config::builder()
            .consecutive_failures(100)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    let ends: [&dyn Fn(breaker::Permit); 5] = [
        &|p| p.success(),
        &|p| p.failure(),
        &|p| p.record(Outcome::Ignored),
        &drop,
        &|p| drop(p.time_out()),
    ];
    for end in ends {
        let p = circuit.try_acquire().unwrap();
        assert!(circuit.try_acquire().unwrap_err().is_full());
        end(p);
    }
    // A panic unwinding past the permit.
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _p = circuit.try_acquire().unwrap();
        panic!("the call panicked");
    }));
    assert!(unwound.is_err());
    // Scoped permits too.
    let p = circuit.try_acquire_scoped().unwrap();
    assert!(circuit.try_acquire_scoped().unwrap_err().is_full());
    drop(p);
    assert!(circuit.try_acquire().is_ok());
}

#[test]
fn listeners_hear_of_a_full_circuit() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = Registry::builder()
        .default_config(limited(1))
        .listener(move |e: &Event<'_>| {
            if let Event::Full {
                provider,
                tenant,
                max_in_flight,
                ..
            } = e
            {
                log.lock()
                    .unwrap()
                    .push(format!("{provider}/{tenant}: {max_in_flight}"));
            }
        })
        .build();
    let held = registry.acquire("llm", "acme", None).unwrap();
    assert!(registry.acquire("llm", "acme", None).unwrap_err().is_full());
    // Another tenant has a circuit, and a bulkhead, of its own.
    let other = registry.acquire("llm", "globex", None).unwrap();
    drop((held, other));
    assert_eq!(*seen.lock().unwrap(), ["llm/acme: 1"]);
}

#[test]
fn half_open_probes_are_not_limited_and_hold_no_place() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(limited(1), clock.clone());
    circuit.try_acquire().unwrap().failure();
    clock.advance(std::time::Duration::from_secs(30));
    let probe = circuit.try_acquire().unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(circuit.state(), State::Closed);
    let p = circuit.try_acquire().unwrap();
    assert!(circuit.try_acquire().unwrap_err().is_full());
    p.success();
}

#[test]
fn a_retuning_that_sets_or_lifts_the_limit_never_loses_a_place() {
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(100).build().unwrap())
        .build();
    // Admitted without a limit: holds no place, and gives none back.
    let before = registry.acquire("llm", "acme", None).unwrap();
    registry.configure(
        "llm",
        Config::builder()
            .consecutive_failures(100)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    let limited = registry.acquire("llm", "acme", None).unwrap();
    before.success();
    assert!(
        registry.acquire("llm", "acme", None).unwrap_err().is_full(),
        "the old permit gave back no place it did not take"
    );
    // Lifted while a place is held, then set again: the place still comes back.
    registry.configure(
        "llm",
        Config::builder().consecutive_failures(100).build().unwrap(),
    );
    let unlimited = registry.acquire("llm", "acme", None).unwrap();
    limited.success();
    unlimited.success();
    registry.configure(
        "llm",
        Config::builder()
            .consecutive_failures(100)
            .max_in_flight(1)
            .build()
            .unwrap(),
    );
    let p = registry.acquire("llm", "acme", None).unwrap();
    assert!(registry.acquire("llm", "acme", None).unwrap_err().is_full());
    p.success();
}

#[test]
fn max_in_flight_is_validated() {
    let err = Config::builder().max_in_flight(0).build().unwrap_err();
    assert_eq!(err.field(), "max_in_flight");
    assert_eq!(
        err.to_string(),
        "invalid `max_in_flight` = 0: must be at least 1"
    );
    assert_eq!(limited(3).max_in_flight(), Some(3));
    assert_eq!(Config::default().max_in_flight(), None);
}

/// The attribute: `max_in_flight = n`, and a cancelled call's future gives its place back.
#[cfg(feature = "tokio")]
mod attribute {
    use std::time::Duration;

    use breaker::{circuit_breaker, CircuitOpen, Registry};

    #[derive(Debug)]
    enum Error {
        Open(CircuitOpen),
    }

    impl From<CircuitOpen> for Error {
        fn from(open: CircuitOpen) -> Self {
            Error::Open(open)
        }
    }

    #[circuit_breaker(provider = "slow", registry = registry, max_in_flight = 2)]
    async fn call(registry: &Registry, answer_after: Duration) -> Result<u32, Error> {
        tokio::time::sleep(answer_after).await;
        Ok(1)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_max_in_flight_are_refused_until_one_ends_or_is_cancelled() {
        // Leaked: the spawned calls borrow it for the test's life.
        let registry: &'static Registry = Box::leak(Box::new(Registry::default()));
        let hour = Duration::from_secs(3600);
        let a = tokio::spawn(async move { call(registry, hour).await });
        let b = tokio::spawn(async move { call(registry, Duration::from_secs(1)).await });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        match call(registry, Duration::ZERO).await {
            Err(Error::Open(open)) => assert!(open.is_full()),
            Ok(v) => panic!("a third call ran: {v}"),
        }
        // `b` answers: its place is free.
        assert_eq!(b.await.unwrap().unwrap(), 1);
        assert_eq!(call(registry, Duration::ZERO).await.unwrap(), 1);
        // `a` is cancelled (its task aborted, its future dropped): its place is free.
        a.abort();
        assert!(a.await.unwrap_err().is_cancelled());
        let c = tokio::spawn(async move { call(registry, hour).await });
        let d = tokio::spawn(async move { call(registry, hour).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(matches!(
            call(registry, Duration::ZERO).await,
            Err(Error::Open(open)) if open.is_full()
        ));
        c.abort();
        d.abort();
    }
}
