//! Circuit events as [`tracing`](https://docs.rs/tracing) events (feature `tracing`).
//!
//! Register [`listener`] on a registry: transitions into `Open` or `ForcedOpen` are logged at
//! `WARN` (as are timeouts, calls found in flight past the slow-call threshold and `Retry-After`
//! values cut to `max_open_for`), every other transition (recovery to `Closed` above all) at
//! `INFO`, rejections (by the state or by a full `max_in_flight`) and slow calls at `DEBUG`,
//! all with target `breaker` and the circuit's `provider` and `tenant` as fields, so a
//! subscriber can filter them (`RUST_LOG=breaker=info`).
//!
//! ```
//! use breaker::Registry;
//!
//! let registry = Registry::builder().listener(breaker::tracing::listener).build();
//! ```

use breaker_core::{Event, Reason, State, PROVIDER_WIDE_TENANT};

/// Logs one event; pass it to [`RegistryBuilder::listener`](crate::RegistryBuilder::listener).
///
/// Fields: transitions carry `provider`, `tenant`, `from`, `to` and `reason`, and an opening its
/// `open_for_ms` (also in the message: "circuit opened for 30s") and, when the provider set the
/// period (reason `retry_after`), `retry_after_ms`; a provider-wide circuit's transitions (tenant
/// [`PROVIDER_WIDE_TENANT`]) also `provider_wide = true`, and its
/// openings on pooled evidence (reason `provider_wide`) `pooled_failure_rate`,
/// `pooled_calls` and `failing_tenants`; rejections
/// `provider`, `tenant`, `state` and `retry_after_ms` (absent when unknown); slow calls
/// `provider`, `tenant`, `elapsed_ms` and `threshold_ms`.
///
/// ```
/// use breaker::{Config, Registry};
///
/// let registry = Registry::builder()
///     .default_config(Config::builder().consecutive_failures(1).build()?)
///     .listener(breaker::tracing::listener)
///     .build();
/// // WARN breaker: circuit opened for 30s provider="openai" tenant="acme" from="closed" to="open"
/// //     reason="consecutive_failures" open_for_ms=30000
/// registry.circuit("openai", "acme").try_acquire()?.failure();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn listener(event: &Event<'_>) {
    match *event {
        Event::Transition {
            provider,
            tenant,
            from,
            to,
            reason,
            open_for,
            ..
        } => {
            let level = to;
            let retry_after_ms = match reason {
                Reason::RetryAfter(d) => Some(d.as_millis() as u64),
                Reason::ProviderWide(e) => e.retry_after.map(|d| d.as_millis() as u64),
                _ => None,
            };
            let evidence = match reason {
                Reason::ProviderWide(e) => Some(e),
                _ => None,
            };
            let provider_wide = (tenant == PROVIDER_WIDE_TENANT).then_some(true);
            let pooled_failure_rate = evidence.map(|e| e.failure_rate());
            let pooled_calls = evidence.map(|e| e.calls);
            let failing_tenants = evidence.map(|e| e.failing_tenants);
            let (from, to, reason) = (from.as_str(), to.as_str(), reason.as_str());
            match (level, open_for) {
                (State::Open | State::ForcedOpen, Some(period)) => ::tracing::warn!(
                    target: "breaker", provider, tenant, from, to, reason, retry_after_ms,
                    provider_wide, pooled_failure_rate, pooled_calls, failing_tenants,
                    open_for_ms = period.as_millis() as u64,
                    "circuit opened for {period:?}"
                ),
                (State::Open | State::ForcedOpen, None) => ::tracing::warn!(
                    target: "breaker", provider, tenant, from, to, reason, retry_after_ms,
                    provider_wide, "circuit opened"
                ),
                (State::Closed, _) => ::tracing::info!(
                    target: "breaker", provider, tenant, from, to, reason, provider_wide,
                    "circuit closed"
                ),
                _ => ::tracing::info!(
                    target: "breaker", provider, tenant, from, to, reason, provider_wide,
                    "circuit state changed"
                ),
            }
        }
        Event::Rejected {
            provider,
            tenant,
            state,
            retry_after,
            provider_wide,
            ..
        } => ::tracing::debug!(
            target: "breaker",
            provider,
            tenant,
            state = state.as_str(),
            retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
            // Only on the provider-wide circuit's rejections.
            provider_wide = provider_wide.then_some(true),
            "call rejected"
        ),
        Event::SlowCall {
            provider,
            tenant,
            elapsed,
            threshold,
            ..
        } => ::tracing::debug!(
            target: "breaker",
            provider,
            tenant,
            elapsed_ms = elapsed.as_millis() as u64,
            threshold_ms = threshold.as_millis() as u64,
            "slow call"
        ),
        Event::TimedOut {
            provider,
            tenant,
            timeout,
            ..
        } => ::tracing::warn!(
            target: "breaker",
            provider,
            tenant,
            timeout_ms = timeout.map(|d| d.as_millis() as u64),
            "call timed out"
        ),
        Event::RetryAfterCapped {
            provider,
            tenant,
            asked,
            applied,
            ..
        } => ::tracing::warn!(
            target: "breaker",
            provider,
            tenant,
            asked_ms = asked.as_millis() as u64,
            applied_ms = applied.as_millis() as u64,
            "the provider's Retry-After was cut to max_open_for"
        ),
        Event::Full {
            provider,
            tenant,
            max_in_flight,
            ..
        } => ::tracing::debug!(
            target: "breaker",
            provider,
            tenant,
            max_in_flight,
            "call refused: max_in_flight calls in flight"
        ),
        Event::Overdue {
            provider,
            tenant,
            calls,
            threshold,
            ..
        } => ::tracing::warn!(
            target: "breaker",
            provider,
            tenant,
            calls,
            threshold_ms = threshold.as_millis() as u64,
            "calls in flight past the slow-call threshold"
        ),
        // Events added later are not logged until this listener learns them.
        _ => {}
    }
}
