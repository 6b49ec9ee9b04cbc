//! Bad input to the config builder: every invalid value of every field is an `Err` naming that
//! field, never a panic; the extreme values that are still valid build circuits that run without
//! overflow.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use breaker_core::{
    Circuit, Config, ConfigBuilder, ManualClock, Outcome, State, Window, MAX_DURATION, MAX_PROBES,
    MAX_WINDOW_CALLS,
};

const NANOS: [f64; 3] = [f64::NAN, -f64::NAN, f64::from_bits(0x7ff0_0000_0000_0001)];
const INFINITIES: [f64; 2] = [f64::INFINITY, f64::NEG_INFINITY];

fn b() -> ConfigBuilder {
    Config::builder()
}

/// Durations no setting accepts: zero, just past the cap, and the largest `Duration`.
fn bad_durations() -> Vec<Duration> {
    vec![
        Duration::ZERO,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ]
}

/// Rates outside (0, 1].
fn bad_rates() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        -0.5,
        -1.0,
        1.0 + f64::EPSILON,
        2.0,
        f64::MIN,
        f64::MAX,
    ];
    v.extend(NANOS);
    v.extend(INFINITIES);
    v
}

/// Every invalid input, with the field its error must name.
fn table() -> Vec<(String, ConfigBuilder, &'static str)> {
    let mut t: Vec<(String, ConfigBuilder, &'static str)> = Vec::new();
    let mut add = |what: String, builder: ConfigBuilder, field: &'static str| {
        t.push((what, builder, field));
    };

    add(
        "consecutive_failures(0)".into(),
        b().consecutive_failures(0),
        "consecutive_failures",
    );

    for r in bad_rates() {
        add(
            format!("failure_rate({r})"),
            b().failure_rate(r, Window::Calls(10)),
            "failure_rate",
        );
        add(
            format!("slow_calls(1s, {r})"),
            b().slow_calls(Duration::from_secs(1), r),
            "slow_call_rate",
        );
    }
    for d in bad_durations() {
        add(
            format!("probe_timeout({d:?})"),
            b().probe_timeout(d),
            "probe_timeout",
        );
        add(format!("timeout({d:?})"), b().timeout(d), "timeout");
        add(
            format!("slow_calls({d:?}, 0.5)"),
            b().slow_calls(d, 0.5),
            "slow_call_threshold",
        );
        add(format!("open_for({d:?})"), b().open_for(d), "open_for");
        add(
            format!("max_open_for({d:?})"),
            b().max_open_for(d),
            "max_open_for",
        );
        add(
            format!("failure_rate(0.5, Time({d:?}))"),
            b().failure_rate(0.5, Window::Time(d)),
            "window",
        );
        add(
            format!("window(Time({d:?}))"),
            b().window(Window::Time(d)),
            "window",
        );
    }
    for w in [
        Window::Calls(0),
        Window::Calls(MAX_WINDOW_CALLS + 1),
        Window::Calls(u32::MAX),
        Window::Time(Duration::from_nanos(1)),
        Window::Time(Duration::from_millis(10) - Duration::from_nanos(1)),
    ] {
        add(
            format!("failure_rate(0.5, {w:?})"),
            b().failure_rate(0.5, w),
            "window",
        );
        add(
            format!("slow_calls(1s, 0.5).window({w:?})"),
            b().slow_calls(Duration::from_secs(1), 0.5).window(w),
            "window",
        );
    }

    add(
        "minimum_calls(0)".into(),
        b().minimum_calls(0),
        "minimum_calls",
    );
    add(
        "minimum_calls(11) over Calls(10)".into(),
        b().failure_rate(0.5, Window::Calls(10)).minimum_calls(11),
        "minimum_calls",
    );
    add(
        "minimum_calls(u32::MAX) over Calls(1)".into(),
        b().failure_rate(0.5, Window::Calls(1))
            .minimum_calls(u32::MAX),
        "minimum_calls",
    );

    add(
        "max_open_for < open_for".into(),
        b().open_for(Duration::from_secs(10))
            .max_open_for(Duration::from_secs(9)),
        "max_open_for",
    );
    add(
        "max_open_for 1ns short of open_for".into(),
        b().open_for(MAX_DURATION)
            .max_open_for(MAX_DURATION - Duration::from_nanos(1)),
        "max_open_for",
    );
    add(
        "open_for above the default max without max_open_for, past the cap".into(),
        b().open_for(MAX_DURATION * 2),
        "open_for",
    );

    let mut multipliers = vec![0.0, -0.0, 0.5, 1.0 - f64::EPSILON, -1.0, -2.0, f64::MIN];
    multipliers.extend(NANOS);
    multipliers.extend(INFINITIES);
    for m in multipliers {
        add(
            format!("backoff_multiplier({m})"),
            b().backoff_multiplier(m),
            "backoff_multiplier",
        );
    }

    let mut jitters = vec![-f64::EPSILON, -0.1, -1.0, 1.0, 1.5, f64::MAX, f64::MIN];
    jitters.extend(NANOS);
    jitters.extend(INFINITIES);
    for j in jitters {
        add(format!("jitter({j})"), b().jitter(j), "jitter");
    }

    for n in [0, MAX_PROBES + 1, u32::MAX] {
        add(
            format!("half_open_probes({n})"),
            b().half_open_probes(n),
            "half_open_probes",
        );
        add(
            format!("half_open_successes({n})"),
            b().half_open_successes(n),
            "half_open_successes",
        );
    }
    t
}

#[test]
fn every_invalid_value_is_an_error_naming_its_field() {
    let table = table();
    assert!(
        table.len() > 90,
        "the table covers every field: {}",
        table.len()
    );
    for (what, builder, field) in table {
        let result = catch_unwind(AssertUnwindSafe(|| builder.build()));
        let err = match result {
            Ok(Ok(config)) => panic!("{what}: accepted as {config:?}"),
            Ok(Err(err)) => err,
            Err(_) => panic!("{what}: build panicked"),
        };
        assert_eq!(err.field(), field, "{what}: {err}");
        assert!(!err.value().is_empty(), "{what}: the error shows the value");
        let shown = err.to_string();
        assert!(
            shown.contains(field) && shown.contains(err.reason()),
            "{what}: {shown}"
        );
    }
}

/// The edges of every range are accepted, and circuits built on them run through trips,
/// backoff to the cap and recovery without an overflow.
#[test]
fn extreme_valid_configs_build_and_run() {
    let valid = [
        b().consecutive_failures(u32::MAX),
        b().consecutive_failures(1)
            .open_for(MAX_DURATION)
            .max_open_for(MAX_DURATION)
            .backoff_multiplier(f64::MAX)
            .jitter(1.0 - f64::EPSILON),
        b().consecutive_failures(1)
            .open_for(Duration::from_nanos(1))
            .max_open_for(MAX_DURATION)
            .backoff_multiplier(1.0),
        b().consecutive_failures(1)
            .open_for(Duration::from_nanos(1))
            .max_open_for(Duration::from_nanos(1))
            .jitter(0.5),
        b().failure_rate(f64::MIN_POSITIVE, Window::Calls(1))
            .minimum_calls(1),
        b().failure_rate(1.0, Window::Calls(MAX_WINDOW_CALLS))
            .minimum_calls(MAX_WINDOW_CALLS),
        b().failure_rate(0.5, Window::Time(Duration::from_millis(10))),
        b().failure_rate(0.5, Window::Time(MAX_DURATION))
            .minimum_calls(u32::MAX),
        b().slow_calls(Duration::from_nanos(1), 1.0)
            .minimum_calls(1)
            .window(Window::Calls(1)),
        b().slow_calls(MAX_DURATION, f64::MIN_POSITIVE)
            .window(Window::Time(MAX_DURATION)),
        b().consecutive_failures(1)
            .half_open_probes(MAX_PROBES)
            .half_open_successes(MAX_PROBES),
        b().consecutive_failures(1)
            .half_open_probes(1)
            .half_open_successes(MAX_PROBES)
            .on_abandoned(Outcome::Success),
        b().consecutive_failures(1)
            .probe_timeout(Duration::from_nanos(1)),
        b().consecutive_failures(1).probe_timeout(MAX_DURATION),
    ];
    for (i, builder) in valid.into_iter().enumerate() {
        let config = builder
            .clone()
            .build()
            .unwrap_or_else(|e| panic!("#{i} {builder:?}: {e}"));
        let clock = ManualClock::new();
        let c = Circuit::with_clock(config, clock.clone());
        // Eight rounds: at most eight years of manual time, inside the 8.9 years a deadline can
        // reach from the circuit's origin.
        for round in 0..8 {
            // Trip (or fail to, for the huge thresholds), then wait out whatever open period the
            // circuit chose and probe with a failure: the backoff climbs to its cap.
            for _ in 0..3 {
                if let Ok(p) = c.try_acquire() {
                    clock.advance(Duration::from_millis(1));
                    p.failure();
                }
            }
            if let Some(left) = c.retry_after() {
                assert!(left <= MAX_DURATION * 2, "#{i} round {round}: {left:?}");
                clock.advance(left);
                assert_eq!(c.state(), State::HalfOpen, "#{i} round {round}");
            }
        }
        // And it recovers.
        c.reset();
        c.try_acquire().unwrap().success();
        assert_eq!(c.state(), State::Closed, "#{i}");
    }
}

/// `max_open_for` set alone below the default `open_for` said only "must not be shorter than
/// open_for", naming a value the user never wrote (issue 25): the message gives the default.
#[test]
fn max_open_for_below_a_defaulted_open_for_names_the_default() {
    let err = Config::builder()
        .max_open_for(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_open_for");
    assert!(err.reason().contains("defaults to 30s"), "{err}");
    assert!(err.to_string().contains("set open_for too"), "{err}");
    // With `open_for` written, the message gives the value written.
    let err = Config::builder()
        .open_for(Duration::from_secs(20))
        .max_open_for(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert!(err.reason().contains("(20s)"), "{err}");
    assert!(!err.reason().contains("defaults"), "{err}");
}
