//! The JSON API: per-provider counts, and pages of circuits, open first.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use axum::extract::{Query, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::Json;
use breaker_core::{Circuit, Registry, State};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::feed::Step;
use super::App;

/// Circuits per page unless `per_page` says otherwise, and the most it may say.
pub(crate) const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;
/// The open, forced-open and half-open circuits one answer of `GET /circuits` carries at most,
/// before its page of the others: all of them, unless a provider has more than this many, when
/// the first (open first, then by provider and tenant) are sent and `tripped` says how many
/// there are. A row is a few hundred bytes with its timeline: a few MiB at most.
pub(crate) const MAX_TRIPPED: usize = 5_000;

/// Ranks up to this one are open, forced open or half-open: always sent, not paged.
const TRIPPED_RANK: u8 = 2;

/// Where a state sorts on the page: what needs the operator first.
fn rank(state: State) -> u8 {
    match state {
        State::Open => 0,
        State::ForcedOpen => 1,
        State::HalfOpen => 2,
        State::Disabled => 3,
        State::MetricsOnly => 4,
        _ => 5,
    }
}

/// Per-provider counts, by state.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ProviderCounts {
    pub(crate) provider: String,
    pub(crate) total: u64,
    pub(crate) closed: u64,
    pub(crate) open: u64,
    pub(crate) half_open: u64,
    pub(crate) forced_open: u64,
    pub(crate) disabled: u64,
    pub(crate) metrics_only: u64,
    /// The provider's provider-wide circuit, when it has one (`null` otherwise): the page shows
    /// it in the provider's header, before the tenants' counts. It is not one of the tenants
    /// counted above.
    pub(crate) provider_wide: Option<WideView>,
}

/// A provider's provider-wide circuit, as `GET /providers` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct WideView {
    pub(crate) state: &'static str,
    /// Time left until a probe may pass, when open.
    pub(crate) retry_after_ms: Option<u64>,
    pub(crate) times_opened: u32,
    pub(crate) rejected: u64,
    /// What its pooled window (its tenants' outcomes) holds now, when the registry tells.
    pub(crate) pooled: Option<Pooled>,
}

/// The pooled window of a provider-wide circuit.
#[derive(Debug, Serialize)]
pub(crate) struct Pooled {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) failing_tenants: u32,
}

/// `provider`'s provider-wide circuit, if it has one.
fn wide(registry: &Registry, provider: &str) -> Option<WideView> {
    let circuit = registry.provider_circuit(provider)?;
    let m = circuit.metrics();
    let pooled =
        registry
            .provider_wide_totals(provider)
            .map(|(calls, failures, failing_tenants)| Pooled {
                calls,
                failures,
                failing_tenants,
            });
    Some(WideView {
        state: m.state.as_str(),
        retry_after_ms: m.retry_after.map(millis),
        times_opened: m.times_opened,
        rejected: m.rejected,
        pooled,
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Every provider's counts, sorted by name: one pass over the registry, reading each circuit's
/// state only, then each provider's provider-wide circuit, if any.
///
/// Tenants only: [`Registry::for_each`] visits tenant circuits and never a provider-wide
/// circuit (only `Registry::snapshot` lists those, as tenant `PROVIDER_WIDE_TENANT`, `*`), so
/// the provider circuit is not counted as a tenant here nor listed by [`page`]; it is shown
/// apart, as `provider_wide`. Nothing is filtered by the name `*`: a tenant so named has a
/// circuit of its own and is counted like any. A provider that has a provider-wide circuit but
/// no tenant circuit yet is listed too, with zero tenants
/// ([`Registry::provider_wide_providers`]).
pub(crate) fn counts(registry: &Registry) -> Vec<ProviderCounts> {
    let mut by_provider: BTreeMap<String, ProviderCounts> = BTreeMap::new();
    registry.for_each(|c| {
        // Looked up by `&str`: a provider's name is allocated once, not once per circuit.
        if !by_provider.contains_key(c.provider()) {
            let counts = ProviderCounts {
                provider: c.provider().to_owned(),
                ..ProviderCounts::default()
            };
            by_provider.insert(c.provider().to_owned(), counts);
        }
        let Some(p) = by_provider.get_mut(c.provider()) else {
            return;
        };
        p.total += 1;
        *match c.state() {
            State::Closed => &mut p.closed,
            State::Open => &mut p.open,
            State::HalfOpen => &mut p.half_open,
            State::ForcedOpen => &mut p.forced_open,
            State::Disabled => &mut p.disabled,
            _ => &mut p.metrics_only,
        } += 1;
    });
    for provider in registry.provider_wide_providers() {
        by_provider
            .entry(provider)
            .or_insert_with_key(|provider| ProviderCounts {
                provider: provider.clone(),
                ..ProviderCounts::default()
            });
    }
    by_provider
        .into_values()
        .map(|mut p| {
            p.provider_wide = wide(registry, &p.provider);
            p
        })
        .collect()
}

/// `GET /providers`.
pub(super) async fn providers(AxumState(app): AxumState<App>) -> Response {
    let providers = counts(&app.0.registry);
    let feed = app.0.feed.as_ref();
    Json(json!({
        "providers": providers,
        "live": feed.is_some(),
        "actions": app.0.hook.is_some(),
        "dropped": feed.map_or(0, |f| f.dropped()),
        "fleet": cfg!(feature = "redis") && fleet_attached(&app),
        "fleet_circuits": cfg!(feature = "redis") && inspector_attached(&app),
    }))
    .into_response()
}

#[cfg(feature = "redis")]
fn fleet_attached(app: &App) -> bool {
    app.0.fleet.is_some()
}

#[cfg(not(feature = "redis"))]
fn fleet_attached(_: &App) -> bool {
    false
}

#[cfg(feature = "redis")]
fn inspector_attached(app: &App) -> bool {
    app.0.inspector.is_some()
}

#[cfg(not(feature = "redis"))]
fn inspector_attached(_: &App) -> bool {
    false
}

/// The query of `GET /circuits`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Filter {
    /// Only this provider's circuits.
    pub(crate) provider: Option<String>,
    /// Only circuits in this state (`open`, `half_open`, ... as [`State`] parses them).
    pub(crate) state: Option<String>,
    /// Only tenants whose name contains this (case-sensitive).
    pub(crate) q: Option<String>,
    /// The page, from 0.
    pub(crate) page: Option<usize>,
    /// Circuits per page: 50 unless given, at most 500.
    pub(crate) per_page: Option<usize>,
    /// Open, forced-open and half-open circuits sent at most: [`MAX_TRIPPED`] unless the server
    /// itself asks for fewer (the page rendered without JavaScript).
    #[serde(skip)]
    pub(crate) max_tripped: Option<usize>,
}

/// One circuit in a page of `GET /circuits`.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) provider: String,
    pub(crate) tenant: String,
    pub(crate) state: &'static str,
    failure_rate: f64,
    slow_rate: f64,
    calls_in_window: u32,
    failures_in_window: u32,
    slow_in_window: u32,
    consecutive_failures: u32,
    rejected: u64,
    times_opened: u32,
    /// Time left until a probe may pass, when open.
    retry_after_ms: Option<u64>,
    /// While open or half-open: the backoff level of its opening, when the feed saw it.
    level: Option<u32>,
    /// Its last transitions the feed saw, oldest first (empty without a feed).
    timeline: Vec<Step>,
}

/// An answer of `GET /circuits`: every open, forced-open and half-open circuit that matches
/// (up to [`MAX_TRIPPED`]), then one page of the others (closed, disabled, metrics-only).
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    /// Every circuit that matches, tripped or not.
    pub(crate) total: usize,
    /// The open, forced-open and half-open circuits that match: the first `tripped_sent` rows.
    pub(crate) tripped: usize,
    /// How many of them come first in `circuits`: `tripped`, unless over [`MAX_TRIPPED`].
    pub(crate) tripped_sent: usize,
    /// The page of the others, from 0.
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    /// Pages of the others (`total - tripped` circuits).
    pub(crate) pages: usize,
    pub(crate) circuits: Vec<Row>,
}

/// The page `filter` asks for, or an error naming the bad field.
pub(crate) fn page(app: &App, filter: &Filter) -> Result<Page, String> {
    let state = match filter.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<State>().map_err(|e| format!("state: {e}"))?),
        None => None,
    };
    let provider = filter.provider.as_deref().filter(|p| !p.is_empty());
    let q = filter.q.as_deref().filter(|q| !q.is_empty());
    let per_page = filter.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let page = filter.page.unwrap_or(0);

    // Handles and ranks only: metrics (windows to total) are read for the rows sent alone.
    // Tenant circuits only: `for_each` never visits a provider-wide circuit (see `counts`).
    let mut tripped: Vec<(u8, Circuit)> = Vec::new();
    let mut others: Vec<(u8, Circuit)> = Vec::new();
    app.0.registry.for_each(|c| {
        if provider.is_some_and(|p| p != c.provider()) || q.is_some_and(|q| !c.tenant().contains(q))
        {
            return;
        }
        let s = c.state();
        if state.is_none_or(|want| want == s) {
            let rank = rank(s);
            let list = if rank <= TRIPPED_RANK {
                &mut tripped
            } else {
                &mut others
            };
            list.push((rank, c.clone()));
        }
    });
    let (tripped_total, others_total) = (tripped.len(), others.len());
    let max_tripped = filter.max_tripped.unwrap_or(MAX_TRIPPED);
    first_sorted(&mut tripped, 0, max_tripped);
    let start = page.saturating_mul(per_page).min(others_total);
    first_sorted(&mut others, start, per_page);
    let tripped_sent = tripped.len();
    let feed = app.0.feed.as_ref();
    let circuits = tripped
        .into_iter()
        .chain(others)
        .map(|(_, c)| row(feed, &c))
        .collect();
    Ok(Page {
        total: tripped_total + others_total,
        tripped: tripped_total,
        tripped_sent,
        page,
        per_page,
        pages: others_total.div_ceil(per_page),
        circuits,
    })
}

/// Leaves in `found` its `len` circuits from `start` on, in page order (rank, provider,
/// tenant). Sorts only what is kept: at 100,000 closed tenants, a partition and a short sort.
fn first_sorted(found: &mut Vec<(u8, Circuit)>, start: usize, len: usize) {
    let order = |a: &(u8, Circuit), b: &(u8, Circuit)| -> Ordering {
        (a.0, a.1.provider(), a.1.tenant()).cmp(&(b.0, b.1.provider(), b.1.tenant()))
    };
    let start = start.min(found.len());
    let end = start.saturating_add(len).min(found.len());
    if end < found.len() {
        found.select_nth_unstable_by(end, order);
    }
    found.truncate(end);
    found.sort_unstable_by(order);
    found.drain(..start);
}

/// One circuit's row: its metrics now, and its timeline from the feed.
fn row(feed: Option<&super::Feed>, c: &Circuit) -> Row {
    let m = c.metrics();
    let timeline = feed.map_or_else(Vec::new, |f| f.0.timeline(c.provider(), c.tenant()));
    // The level of the opening this stay in open or half-open began with; a closed circuit has
    // none (its next trip starts over).
    let level = matches!(m.state, State::Open | State::HalfOpen)
        .then(|| timeline.iter().rev().find(|s| s.to == "open"))
        .flatten()
        .map(|s| s.level);
    Row {
        provider: c.provider().to_owned(),
        tenant: c.tenant().to_owned(),
        state: m.state.as_str(),
        failure_rate: m.failure_rate,
        slow_rate: m.slow_rate,
        calls_in_window: m.calls_in_window,
        failures_in_window: m.failures_in_window,
        slow_in_window: m.slow_in_window,
        consecutive_failures: m.consecutive_failures,
        rejected: m.rejected,
        times_opened: m.times_opened,
        retry_after_ms: m.retry_after.map(millis),
        level,
        timeline,
    }
}

/// `GET /circuits?provider=&state=&q=&page=&per_page=`.
pub(super) async fn circuits(AxumState(app): AxumState<App>, filter: Query<Filter>) -> Response {
    match page(&app, &filter) {
        Ok(page) => Json(page).into_response(),
        Err(message) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
        }
    }
}

/// `GET /fleet` (feature `redis`): the health of the fleet given to the dashboard.
#[cfg(feature = "redis")]
pub(super) async fn fleet(AxumState(app): AxumState<App>) -> Response {
    match &app.0.fleet {
        None => Json(json!({ "attached": false })).into_response(),
        Some(h) => Json(json!({
            "attached": true,
            "connected": h.is_connected(),
            "can_publish": h.can_publish(),
            "published": h.published(),
            "applied": h.applied(),
            "dropped": h.dropped(),
            "unannounced": h.unannounced(),
            "failures": h.failures(),
        }))
        .into_response(),
    }
}

/// The query of `GET /fleet/circuits`.
#[cfg(feature = "redis")]
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FleetFilter {
    provider: Option<String>,
}

/// `GET /fleet/circuits?provider=` (feature `redis`): for the open, forced-open and half-open
/// circuits (of `provider`, when given; the first [`MAX_INSPECTED`](crate::fleet::MAX_INSPECTED)
/// by provider and tenant), which replica's opening the fleet runs on and which replica holds
/// the probe lease, as the store says now.
#[cfg(feature = "redis")]
pub(super) async fn fleet_circuits(
    AxumState(app): AxumState<App>,
    filter: Query<FleetFilter>,
) -> Response {
    let Some(inspector) = &app.0.inspector else {
        return Json(json!({ "attached": false })).into_response();
    };
    let provider = filter.provider.as_deref().filter(|p| !p.is_empty());
    let mut tripped: Vec<(String, String)> = Vec::new();
    app.0.registry.for_each(|c| {
        if provider.is_none_or(|p| p == c.provider()) && rank(c.state()) <= TRIPPED_RANK {
            tripped.push((c.provider().to_owned(), c.tenant().to_owned()));
        }
    });
    tripped.sort_unstable();
    tripped.truncate(crate::fleet::MAX_INSPECTED);
    let replica = inspector.replica();
    match inspector.circuits(&tripped).await {
        None => Json(json!({ "attached": true, "replica": replica, "available": false }))
            .into_response(),
        Some(found) => {
            let circuits: Vec<_> = found
                .iter()
                .map(|c| {
                    json!({
                        "provider": c.provider,
                        "tenant": c.tenant,
                        "opened_by": c.opened_by,
                        "level": c.level,
                        "probe_lease": c.probe_lease,
                    })
                })
                .collect();
            Json(json!({
                "attached": true,
                "replica": replica,
                "available": true,
                "circuits": circuits,
            }))
            .into_response()
        }
    }
}
