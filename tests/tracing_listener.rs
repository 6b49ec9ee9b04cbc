//! Feature `tracing`: transitions at WARN (opened) and INFO (closed), rejections and slow calls
//! at DEBUG, with the circuit's names as structured fields. Captured by a minimal subscriber.
#![cfg(feature = "tracing")]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{Config, ManualClock, Registry};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

/// Each event as `LEVEL target message field=value ...`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 += &format!(" {value:?}:");
        } else {
            self.0 += &format!(" {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut line = Line(format!("{} {}", meta.level(), meta.target()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn transitions_rejections_and_slow_calls_are_logged_at_their_levels() {
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
        .listener(breaker::tracing::listener)
        .build();
    tracing::subscriber::with_default(capture.clone(), || {
        let c = registry.circuit("openai", "acme");
        let slow = c.try_acquire().unwrap();
        clock.advance(Duration::from_secs(3));
        slow.success();
        c.try_acquire().unwrap().failure();
        assert!(c.try_acquire().is_err());
        clock.advance(Duration::from_secs(10));
        c.try_acquire().unwrap().success();
    });
    assert_eq!(
        *capture.0.lock().unwrap(),
        [
            r#"DEBUG breaker slow call: provider="openai" tenant="acme" elapsed_ms=3000 threshold_ms=2000"#,
            r#"WARN breaker circuit opened for 10s: provider="openai" tenant="acme" from="closed" to="open" reason="consecutive_failures" open_for_ms=10000"#,
            r#"DEBUG breaker call rejected: provider="openai" tenant="acme" state="open" retry_after_ms=10000"#,
            r#"INFO breaker circuit state changed: provider="openai" tenant="acme" from="open" to="half_open" reason="open_period_elapsed""#,
            r#"INFO breaker circuit closed: provider="openai" tenant="acme" from="half_open" to="closed" reason="probes_succeeded""#,
        ]
    );
}

#[test]
fn an_open_for_the_providers_time_logs_that_time() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .listener(breaker::tracing::listener)
        .build();
    tracing::subscriber::with_default(capture.clone(), || {
        registry
            .circuit("openai", "acme")
            .try_acquire()
            .unwrap()
            .record(breaker::Outcome::RetryAfter(Duration::from_secs(90)));
    });
    assert_eq!(
        *capture.0.lock().unwrap(),
        [
            r#"WARN breaker circuit opened for 90s: provider="openai" tenant="acme" from="closed" to="open" reason="retry_after" retry_after_ms=90000 open_for_ms=90000"#,
        ]
    );
}

#[test]
fn a_retry_after_cut_to_max_open_for_is_a_warning() {
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
        .listener(breaker::tracing::listener)
        .build();
    tracing::subscriber::with_default(capture.clone(), || {
        registry
            .circuit("openai", "acme")
            .try_acquire()
            .unwrap()
            .record(breaker::Outcome::RetryAfter(Duration::from_secs(7)));
    });
    assert_eq!(
        capture.0.lock().unwrap()[1],
        r#"WARN breaker the provider's Retry-After was cut to max_open_for: provider="openai" tenant="acme" asked_ms=7000 applied_ms=4000"#,
    );
}

#[test]
fn a_timeout_is_a_warning_before_the_trip_it_causes() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .default_config(
            breaker::Config::builder()
                .consecutive_failures(1)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .listener(breaker::tracing::listener)
        .build();
    tracing::subscriber::with_default(capture.clone(), || {
        let permit = registry.circuit("openai", "acme").try_acquire().unwrap();
        assert!(permit.time_out().is_timeout());
    });
    let lines = capture.0.lock().unwrap();
    assert_eq!(
        lines[0],
        r#"WARN breaker call timed out: provider="openai" tenant="acme" timeout_ms=2000"#
    );
    assert!(
        lines[1].starts_with("WARN breaker circuit opened"),
        "{}",
        lines[1]
    );
}

#[test]
fn a_provider_wide_opening_logs_its_evidence() {
    let capture = Capture::default();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .provider_wide(
            "openai",
            breaker::ProviderWide::builder()
                .minimum_calls(4)
                .distinct_tenants(3)
                .build()
                .unwrap(),
        )
        .listener(breaker::tracing::listener)
        .build();
    tracing::subscriber::with_default(capture.clone(), || {
        for tenant in ["a", "b", "c", "d"] {
            registry.acquire("openai", tenant, None).unwrap().failure();
        }
        assert!(registry.acquire("openai", "e", None).is_err());
    });
    assert_eq!(
        *capture.0.lock().unwrap(),
        [
            r#"WARN breaker circuit opened for 30s: provider="openai" tenant="*" from="closed" to="open" reason="provider_wide" provider_wide=true pooled_failure_rate=1.0 pooled_calls=4 failing_tenants=4 open_for_ms=30000"#,
            r#"DEBUG breaker call rejected: provider="openai" tenant="e" state="open" retry_after_ms=30000 provider_wide=true"#,
        ]
    );
}
