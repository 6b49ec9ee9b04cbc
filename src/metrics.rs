//! Circuit events as [`metrics`](https://docs.rs/metrics) counters and gauges (feature
//! `metrics`).
//!
//! Register [`listener`] on a registry and install any `metrics` exporter. Labels are the
//! provider and states only, never the tenant: a service can have millions of tenants, and one
//! time series each would swamp any metrics backend (per-tenant detail is in
//! [`Registry::snapshot`](crate::Registry::snapshot) and in the `tracing` events).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `breaker_transitions_total` | counter | `provider`, `from`, `to` | state transitions |
//! | `breaker_rejections_total` | counter | `provider`, `state` | calls refused |
//! | `breaker_slow_calls_total` | counter | `provider` | calls over the slow-call threshold |
//! | `breaker_overdue_calls_total` | counter | `provider` | calls found still in flight past the slow-call threshold (counted as slow then) |
//! | `breaker_full_total` | counter | `provider` | calls refused by a full bulkhead (`max_in_flight`) |
//! | `breaker_retry_after_total` | counter | `provider` | circuits opened for the time the provider asked for (`Retry-After`) |
//! | `breaker_retry_after_seconds` | histogram | `provider` | those open periods |
//! | `breaker_circuits` | gauge | `provider`, `state` | circuits currently in `state` |
//! | `breaker_open_period_seconds` | histogram | `provider` | the open period of each trip (compounded, jittered) |
//! | `breaker_provider_wide_trips_total` | counter | `provider` | openings of the provider-wide circuit on pooled evidence ([`Reason::ProviderWide`]) |
//! | `breaker_provider_wide_failure_rate` | gauge | `provider` | the pooled failure rate at its last such opening |
//! | `breaker_provider_wide_failing_tenants` | gauge | `provider` | the distinct failing tenants at its last such opening |
//!
//! The provider-wide circuit's own transitions and rejections are counted like any circuit's
//! (its tenant, [`PROVIDER_WIDE_TENANT`](crate::PROVIDER_WIDE_TENANT), is no label).
//!
//! `breaker_circuits` follows transitions, so it counts circuits out of `closed` (open,
//! half-open, forced open, disabled, metrics-only): new circuits start closed without an event,
//! and a circuit dropped with [`Registry::remove`](crate::Registry::remove) while not closed stays
//! counted. Idle eviction only drops closed circuits and never skews it.
//!
//! ```
//! use breaker::Registry;
//!
//! breaker::metrics::describe();
//! let registry = Registry::builder().listener(breaker::metrics::listener).build();
//! ```

use breaker_core::{Event, Reason, State};

/// Records one event; pass it to [`RegistryBuilder::listener`](crate::RegistryBuilder::listener).
///
/// ```
/// use breaker::{Config, Registry};
///
/// let registry = Registry::builder()
///     .default_config(Config::builder().consecutive_failures(1).build()?)
///     .listener(breaker::metrics::listener)
///     .build();
/// // breaker_transitions_total{provider="openai",from="closed",to="open"} += 1
/// // breaker_circuits{provider="openai",state="open"} += 1
/// // breaker_open_period_seconds{provider="openai"} records 30.0
/// registry.circuit("openai", "acme").try_acquire()?.failure();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn listener(event: &Event<'_>) {
    match *event {
        Event::Transition {
            provider,
            from,
            to,
            reason,
            open_for,
            ..
        } => {
            if let Some(period) = open_for {
                ::metrics::histogram!("breaker_open_period_seconds", "provider" => provider)
                    .record(period.as_secs_f64());
            }
            if let Reason::ProviderWide(evidence) = reason {
                ::metrics::counter!("breaker_provider_wide_trips_total", "provider" => provider)
                    .increment(1);
                ::metrics::gauge!("breaker_provider_wide_failure_rate", "provider" => provider)
                    .set(evidence.failure_rate());
                ::metrics::gauge!("breaker_provider_wide_failing_tenants", "provider" => provider)
                    .set(f64::from(evidence.failing_tenants));
            }
            if let Reason::RetryAfter(d) = reason {
                ::metrics::counter!("breaker_retry_after_total", "provider" => provider)
                    .increment(1);
                ::metrics::histogram!("breaker_retry_after_seconds", "provider" => provider)
                    .record(d.as_secs_f64());
            }
            ::metrics::counter!(
                "breaker_transitions_total",
                "provider" => provider,
                "from" => from.as_str(),
                "to" => to.as_str(),
            )
            .increment(1);
            if from != State::Closed {
                ::metrics::gauge!("breaker_circuits", "provider" => provider, "state" => from.as_str())
                    .decrement(1.0);
            }
            if to != State::Closed {
                ::metrics::gauge!("breaker_circuits", "provider" => provider, "state" => to.as_str())
                    .increment(1.0);
            }
        }
        Event::Rejected {
            provider, state, ..
        } => ::metrics::counter!(
            "breaker_rejections_total",
            "provider" => provider,
            "state" => state.as_str(),
        )
        .increment(1),
        Event::SlowCall { provider, .. } => {
            ::metrics::counter!("breaker_slow_calls_total", "provider" => provider).increment(1)
        }
        Event::TimedOut { provider, .. } => {
            ::metrics::counter!("breaker_timeouts_total", "provider" => provider).increment(1)
        }
        Event::RetryAfterCapped { provider, .. } => {
            ::metrics::counter!("breaker_retry_after_capped_total", "provider" => provider)
                .increment(1)
        }
        Event::Full { provider, .. } => {
            ::metrics::counter!("breaker_full_total", "provider" => provider).increment(1)
        }
        Event::Overdue {
            provider, calls, ..
        } => ::metrics::counter!("breaker_overdue_calls_total", "provider" => provider)
            .increment(u64::from(calls)),
        // Events added later are not recorded until this listener learns them.
        _ => {}
    }
}

/// Describes the metrics above to the installed recorder (units and help texts); call it once
/// after installing an exporter.
///
/// ```
/// breaker::metrics::describe();
/// ```
pub fn describe() {
    ::metrics::describe_counter!(
        "breaker_transitions_total",
        "Circuit state transitions, by provider, from and to"
    );
    ::metrics::describe_counter!(
        "breaker_rejections_total",
        "Calls refused by an open, half-open or forced-open circuit"
    );
    ::metrics::describe_counter!(
        "breaker_slow_calls_total",
        "Calls slower than their circuit's slow-call threshold"
    );
    ::metrics::describe_counter!(
        "breaker_retry_after_total",
        "Circuits opened for the time their provider asked for (Retry-After)"
    );
    ::metrics::describe_counter!(
        "breaker_timeouts_total",
        "Calls that ran past their deadline (timeout), each counted as a failure"
    );
    ::metrics::describe_counter!(
        "breaker_full_total",
        "Calls refused because their circuit had max_in_flight calls in flight (not recorded)"
    );
    ::metrics::describe_counter!(
        "breaker_overdue_calls_total",
        "Calls found in flight past the slow-call threshold, counted as slow while they hang"
    );
    ::metrics::describe_counter!(
        "breaker_provider_wide_trips_total",
        "Provider-wide circuits opened on the pooled outcomes of their provider's tenants"
    );
    ::metrics::describe_gauge!(
        "breaker_provider_wide_failure_rate",
        "Pooled failure rate of the provider's tenants at the provider-wide circuit's last opening"
    );
    ::metrics::describe_gauge!(
        "breaker_provider_wide_failing_tenants",
        "Distinct failing tenants at the provider-wide circuit's last opening"
    );
    ::metrics::describe_counter!(
        "breaker_retry_after_capped_total",
        "Retry-After values longer than max_open_for, cut to it"
    );
    ::metrics::describe_histogram!(
        "breaker_retry_after_seconds",
        ::metrics::Unit::Seconds,
        "Open periods asked for by providers (Retry-After), capped at max_open_for"
    );
    ::metrics::describe_gauge!(
        "breaker_circuits",
        "Circuits currently in each state other than closed"
    );
    ::metrics::describe_histogram!(
        "breaker_open_period_seconds",
        ::metrics::Unit::Seconds,
        "How long each trip keeps its circuit open before a probe may pass"
    );
}
