//! Feature `metrics`: the fleet's connection state and counters, labelled by namespace, seen
//! through a minimal in-memory recorder installed for this test binary.
#![cfg(feature = "metrics")]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use support::{connected, eventually, RedisServer, BOUND};

/// Every series as `name{label=value}`; counters as integers, gauges as f64 bits.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<BTreeMap<String, Arc<Value>>>>);

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

impl HistogramFn for Value {
    fn record(&self, _: f64) {}
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

    fn raw(&self, name: &str) -> Option<u64> {
        let map = self.0.lock().unwrap();
        map.get(name).map(|v| v.0.load(Ordering::Relaxed))
    }

    fn counter(&self, name: &str) -> u64 {
        self.raw(name).unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.raw(name).map(f64::from_bits)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_state_and_counters_are_metrics_by_namespace() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let capture = Capture::default();
    // The fleet's task runs on the runtime's threads: a global recorder sees it.
    metrics::set_global_recorder(capture.clone()).expect("the only recorder of this binary");
    let connected_gauge = "breaker_fleet_connected{namespace=checkout}";

    let (a, _) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    assert_eq!(capture.gauge(connected_gauge), Some(1.0));
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(
        eventually(BOUND, || {
            capture.counter("breaker_fleet_changes_published_total{namespace=checkout}") == 1
        })
        .await
    );
    // A failure short of its circuit's threshold is pooled evidence: a report, a circuit watched.
    a.configure(
        "anthropic",
        breaker_core::Config::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    a.circuit("anthropic", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        eventually(BOUND, || {
            capture.counter("breaker_fleet_evidence_reports_total{namespace=checkout}") >= 1
        })
        .await
    );
    assert!(capture
        .gauge("breaker_fleet_evidence_watched{namespace=checkout}")
        .is_some_and(|n| n >= 1.0));

    server.kill();
    assert!(eventually(BOUND, || capture.gauge(connected_gauge) == Some(0.0)).await);
    assert!(capture.counter("breaker_fleet_store_failures_total{namespace=checkout}") >= 1);
}
