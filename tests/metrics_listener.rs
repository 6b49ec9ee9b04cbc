//! Feature `metrics`: counters and gauges labelled by provider and state, never by tenant.
//! Captured by a minimal in-memory recorder.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{Config, ManualClock, Registry};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Every series as `name{label=value,...}` (labels in the order given) with its value.
#[derive(Default)]
struct Capture(Mutex<BTreeMap<String, Arc<Value>>>);

#[derive(Default)]
struct Value(AtomicU64);

impl CounterFn for Value {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.fetch_max(n, Ordering::Relaxed);
    }
}

/// Gauges are kept as f64 bits; the test only moves them by whole steps.
impl GaugeFn for Value {
    fn increment(&self, d: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + d);
    }
    fn decrement(&self, d: f64) {
        GaugeFn::increment(self, -d);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// Histograms keep the sum of their samples (as f64 bits, like gauges).
impl HistogramFn for Value {
    fn record(&self, v: f64) {
        GaugeFn::increment(self, v);
    }
}

impl Capture {
    fn series(&self, key: &Key) -> Arc<Value> {
        let labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap();
        map.iter()
            .filter(|(k, _)| k.contains("_total"))
            .map(|(k, v)| (k.clone(), v.0.load(Ordering::Relaxed)))
            .collect()
    }

    fn histogram_sums(&self) -> Vec<(String, f64)> {
        let map = self.0.lock().unwrap();
        map.iter()
            .filter(|(k, _)| k.contains("_seconds"))
            .map(|(k, v)| (k.clone(), f64::from_bits(v.0.load(Ordering::Relaxed))))
            .collect()
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        let map = self.0.lock().unwrap();
        map.iter()
            .filter(|(k, _)| !k.contains("_total"))
            .filter(|(k, _)| !k.contains("_seconds"))
            .map(|(k, v)| (k.clone(), f64::from_bits(v.0.load(Ordering::Relaxed))))
            .collect()
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.series(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.series(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.series(key))
    }
}

#[test]
fn events_become_counters_and_gauges_without_tenant_labels() {
    let capture = Capture::default();
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .slow_calls(Duration::from_secs(2), 1.0)
                .minimum_calls(5)
                .open_for(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .listener(breaker::metrics::listener)
        .build();
    metrics::with_local_recorder(&capture, || {
        breaker::metrics::describe();
        for tenant in ["acme", "globex"] {
            let c = registry.circuit("openai", tenant);
            let slow = c.try_acquire().unwrap();
            clock.advance(Duration::from_secs(3));
            slow.success();
            c.try_acquire().unwrap().failure();
            assert!(c.try_acquire().is_err());
        }
        clock.advance(Duration::from_secs(10));
        let probe = registry.circuit("openai", "acme").try_acquire().unwrap();
        assert!(registry.circuit("openai", "acme").try_acquire().is_err());
        probe.success();
    });
    assert_eq!(
        capture.counters(),
        [
            (
                "breaker_rejections_total{provider=openai,state=half_open}".into(),
                1
            ),
            (
                "breaker_rejections_total{provider=openai,state=open}".into(),
                2
            ),
            ("breaker_slow_calls_total{provider=openai}".into(), 2),
            (
                "breaker_transitions_total{provider=openai,from=closed,to=open}".into(),
                2
            ),
            (
                "breaker_transitions_total{provider=openai,from=half_open,to=closed}".into(),
                1
            ),
            (
                "breaker_transitions_total{provider=openai,from=open,to=half_open}".into(),
                1
            ),
        ]
    );
    assert_eq!(
        capture.gauges(),
        [
            (
                "breaker_circuits{provider=openai,state=half_open}".into(),
                0.0
            ),
            ("breaker_circuits{provider=openai,state=open}".into(), 1.0),
        ],
        "globex is still open; acme went open -> half-open -> closed"
    );
    assert_eq!(
        capture.histogram_sums(),
        [("breaker_open_period_seconds{provider=openai}".into(), 20.0)],
        "two trips of 10 s"
    );
}

#[test]
fn opens_for_the_providers_time_are_counted() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .listener(breaker::metrics::listener)
        .build();
    metrics::with_local_recorder(&capture, || {
        for tenant in ["acme", "globex"] {
            registry
                .circuit("openai", tenant)
                .try_acquire()
                .unwrap()
                .record(breaker::Outcome::RetryAfter(Duration::from_secs(90)));
        }
    });
    assert_eq!(
        capture.counters(),
        [
            ("breaker_retry_after_total{provider=openai}".into(), 2),
            (
                "breaker_transitions_total{provider=openai,from=closed,to=open}".into(),
                2
            ),
        ]
    );
}

#[test]
fn a_retry_after_cut_to_max_open_for_is_counted() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .default_config(
            breaker::Config::builder()
                .open_for(Duration::from_secs(2))
                .max_open_for(Duration::from_secs(4))
                .build()
                .unwrap(),
        )
        .listener(breaker::metrics::listener)
        .build();
    metrics::with_local_recorder(&capture, || {
        for (tenant, secs) in [("acme", 3), ("globex", 7)] {
            registry
                .circuit("openai", tenant)
                .try_acquire()
                .unwrap()
                .record(breaker::Outcome::RetryAfter(Duration::from_secs(secs)));
        }
    });
    assert!(
        capture.counters().contains(&(
            "breaker_retry_after_capped_total{provider=openai}".into(),
            1
        )),
        "{:?}",
        capture.counters()
    );
}

#[test]
fn timeouts_are_counted() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .listener(breaker::metrics::listener)
        .build();
    metrics::with_local_recorder(&capture, || {
        for _ in 0..2 {
            let permit = registry.circuit("openai", "acme").try_acquire().unwrap();
            let _ = permit.time_out();
        }
    });
    assert!(
        capture
            .counters()
            .contains(&("breaker_timeouts_total{provider=openai}".into(), 2)),
        "{:?}",
        capture.counters()
    );
}

#[test]
fn a_provider_wide_opening_records_its_evidence() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .provider_wide(
            "openai",
            breaker::ProviderWide::builder()
                .minimum_calls(4)
                .build()
                .unwrap(),
        )
        .listener(breaker::metrics::listener)
        .build();
    metrics::with_local_recorder(&capture, || {
        for tenant in ["a", "b", "c", "d"] {
            registry.acquire("openai", tenant, None).unwrap().failure();
        }
        assert!(registry.acquire("openai", "e", None).is_err());
    });
    let counters = capture.counters();
    assert!(counters.contains(&(
        "breaker_provider_wide_trips_total{provider=openai}".into(),
        1
    )));
    assert!(counters.contains(&(
        "breaker_rejections_total{provider=openai,state=open}".into(),
        1
    )));
    let gauges = capture.gauges();
    assert!(gauges.contains(&(
        "breaker_provider_wide_failure_rate{provider=openai}".into(),
        1.0
    )));
    assert!(gauges.contains(&(
        "breaker_provider_wide_failing_tenants{provider=openai}".into(),
        4.0
    )));
}
