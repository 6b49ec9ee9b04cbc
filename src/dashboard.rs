//! A live page of a registry's circuits, for the engineer on call (feature `dashboard`).
//!
//! [`router`] (or [`Dashboard`], for the live feed and operator actions) is an axum
//! [`Router`] to nest under a path of the service's own, with
//! [`nest_service`](axum::Router::nest_service) so that the page answers at both `/breaker` and
//! `/breaker/` (axum 0.8's [`nest`](axum::Router::nest) serves a nested router's `/` at
//! `/breaker` only, and `/breaker/` is a 404 that no route of the nested router can answer; the
//! page works at either). It serves one HTML page with its
//! JavaScript embedded in the crate (no CDN, works offline, no build step), a JSON API that
//! scripts may use as well, and server-sent events:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page: per provider, its provider-wide circuit if any, counts of closed, open and half-open tenants, and the tenants, open first, with their rates, time left until a probe, backoff level, last transition and timeline |
//! | `GET /providers` | `{"providers": [{"provider", "total", "closed", "open", "half_open", "forced_open", "disabled", "metrics_only", "provider_wide"}], "live", "actions", "dropped", "fleet", "fleet_circuits"}`: tenant circuits counted; `provider_wide` is the provider-wide circuit (`{"state", "retry_after_ms", "times_opened", "rejected", "pooled"}`) or `null`; a provider with a provider-wide circuit and no tenant yet is listed too |
//! | `GET /circuits?provider=&state=&q=&page=&per_page=` | every open, forced-open and half-open circuit that matches (at most 5,000), then one page of the others: `{"total", "tripped", "tripped_sent", "page", "per_page", "pages", "circuits": [..]}` |
//! | `GET /events` | server-sent events: `hello`, `transition`, `action`, `dropped` |
//! | `GET /actions` | whether operator actions are on, and the last 100 that were asked |
//! | `POST /circuits/{provider}/{tenant}/{action}` | `force_open`, `reset`, `disable`, `metrics_only`; tenant `*` is the provider-wide circuit: 403 unless the [`actions`](Dashboard::actions) hook allows it |
//! | `GET /providers/{provider}/config` | the settings a retune may change, as they are |
//! | `GET /fleet`, `GET /fleet/circuits?provider=` | feature `redis`: the store's health ([`fleet`](Dashboard::fleet)); which replica opened each open circuit and holds its probe lease ([`fleet_inspector`](Dashboard::fleet_inspector)) |
//! | `POST /providers/{provider}/retune` | a JSON [`Retune`]: [`Registry::configure`](crate::Registry::configure) with those settings changed, every circuit keeping its state; 400 naming a bad field; 403 unless the hook allows it |
//!
//! The dashboard reads the registry through its public API only: [`Registry::for_each`](crate::Registry::for_each) and
//! circuit handles for the lists, the listener of a [`Feed`] for transitions (the backoff level
//! and the reason of a circuit's last transition come from there: they are shown for circuits
//! that moved since the feed was registered).
//!
//! ```
//! use std::sync::Arc;
//! use breaker::dashboard::{Dashboard, Feed};
//! use breaker::Registry;
//!
//! let feed = Feed::new();
//! let registry = Arc::new(Registry::builder().listener(feed.listener()).build());
//! let app: axum::Router = axum::Router::new().nest_service(
//!     "/breaker", // the page at /breaker and /breaker/
//!     Dashboard::new(registry)
//!         .feed(feed)
//!         // Operators may switch circuits when a trusted proxy says who they are.
//!         .actions(|req: &http::request::Parts, _action: &breaker::dashboard::Action| {
//!             req.headers.get("x-operator").is_some()
//!         })
//!         .router(),
//! );
//! // axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await?;
//! ```

mod actions;
mod api;
mod feed;
mod page;
mod retune;
mod sse;

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;

pub use crate::registry_ref::RegistryRef;
pub use actions::{Action, ActionKind};
pub use feed::Feed;
pub use retune::Retune;

use actions::Record;

/// The read-only dashboard of `registry`, without a live feed: `Dashboard::new(registry).router()`.
///
/// Without a feed the page shows no backoff level, no reason of the last transition and no
/// timeline, and reloads its lists every 5 seconds instead of following transitions. The router
/// cannot attach a feed of its own: a registry's listeners are fixed when it is built (so that a
/// registry without one spends nothing on events). For the live page, register
/// [`Feed::listener`] on the registry's builder and pass the feed with [`Dashboard::feed`]; for
/// the global registry, build it with [`RegistryBuilder::install_global`](crate::RegistryBuilder::install_global)
/// before its first use.
///
/// ```
/// use breaker::Registry;
///
/// let app: axum::Router = axum::Router::new()
///     .nest_service("/breaker", breaker::dashboard::router(Registry::global()));
/// ```
pub fn router(registry: impl Into<RegistryRef>) -> Router {
    Dashboard::new(registry).router()
}

type Hook = Box<dyn Fn(&Parts, &Action) -> bool + Send + Sync + 'static>;

/// A dashboard being set up: the registry, and optionally its [`Feed`], the operators'
/// [`actions`](Self::actions) hook and (feature `redis`) the fleet's health.
pub struct Dashboard {
    registry: RegistryRef,
    feed: Option<Feed>,
    hook: Option<Hook>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::FleetHealth>,
    #[cfg(feature = "redis")]
    inspector: Option<crate::fleet::FleetInspector>,
}

impl Dashboard {
    /// A read-only dashboard of `registry`: a `&'static Registry` ([`Registry::global()`], a
    /// `static`), a `&'static LazyLock<Registry>` or an `Arc<Registry>`.
    ///
    /// [`Registry::global()`]: crate::Registry::global
    ///
    /// ```
    /// use std::sync::Arc;
    /// use breaker::dashboard::Dashboard;
    /// use breaker::Registry;
    ///
    /// let app: axum::Router = Dashboard::new(Arc::new(Registry::default())).router();
    /// ```
    pub fn new(registry: impl Into<RegistryRef>) -> Dashboard {
        Dashboard {
            registry: registry.into(),
            feed: None,
            hook: None,
            #[cfg(feature = "redis")]
            fleet: None,
            #[cfg(feature = "redis")]
            inspector: None,
        }
    }

    /// Streams `feed`'s transitions to the page (server-sent events), and keeps the timelines
    /// of the circuits that moved. `feed`'s [`listener`](Feed::listener) must be registered on
    /// this dashboard's registry.
    pub fn feed(mut self, feed: Feed) -> Dashboard {
        self.feed = Some(feed);
        self
    }

    /// Turns operator actions on (force open, reset, disable, metrics only, and
    /// [retune](ActionKind::Retune)): each one is done only when `hook` returns `true` for the
    /// request and the action; refused ones answer 403.
    /// A hook that panics refuses. Without a hook, every action answers 403 and the page hides
    /// its buttons.
    ///
    /// Every action asked is logged with the hook's answer: as a `tracing` event (target
    /// `breaker::dashboard`, feature `tracing`), in `GET /actions` (the last 100), and as an
    /// `action` event of the feed. The transitions it makes reach the registry's listeners
    /// with reason `operator`.
    ///
    /// ```
    /// use breaker::dashboard::{Action, ActionKind, Dashboard};
    /// use breaker::Registry;
    ///
    /// let app: axum::Router = Dashboard::new(Registry::global())
    ///     // On-call may reset circuits; forcing one open takes the admin token.
    ///     .actions(|req: &http::request::Parts, action: &Action| {
    ///         let token = req.headers.get("authorization").and_then(|v| v.to_str().ok());
    ///         match action.kind {
    ///             ActionKind::Reset => token.is_some(),
    ///             _ => token == Some("Bearer admin-secret"),
    ///         }
    ///     })
    ///     .router();
    /// ```
    pub fn actions(
        mut self,
        hook: impl Fn(&Parts, &Action) -> bool + Send + Sync + 'static,
    ) -> Dashboard {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Shows the fleet's health (connected, able to publish, changes shared and applied) in a
    /// panel of the page and at `GET /fleet` (feature `redis`).
    #[cfg(feature = "redis")]
    pub fn fleet(mut self, health: crate::fleet::FleetHealth) -> Dashboard {
        self.fleet = Some(health);
        self
    }

    /// Shows, for each open and half-open circuit, which replica's opening the fleet runs on and
    /// which replica holds its probe lease (feature `redis`): read from the store by `inspector`
    /// when the page asks (`GET /fleet/circuits?provider=`), on a connection of its own, never
    /// on the call path.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use breaker::dashboard::Dashboard;
    /// use breaker::Registry;
    ///
    /// let fleet = breaker::fleet::RedisFleet::builder("redis://127.0.0.1:6379/").build().await?;
    /// let (health, inspector) = (fleet.health(), fleet.inspector());
    /// let registry = Arc::new(Registry::builder().fleet(fleet).build());
    /// let app: axum::Router = Dashboard::new(registry)
    ///     .fleet(health)
    ///     .fleet_inspector(inspector)
    ///     .router();
    /// # let _ = app; Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    pub fn fleet_inspector(mut self, inspector: crate::fleet::FleetInspector) -> Dashboard {
        self.inspector = Some(inspector);
        self
    }

    /// The router: nest it under a path of your own (`app.nest_service("/breaker", ..)`, which
    /// serves the page at `/breaker` and `/breaker/`; `nest` serves `/breaker` only).
    pub fn router(self) -> Router {
        let state = App(Arc::new(Shared {
            registry: self.registry,
            feed: self.feed,
            hook: self.hook,
            log: Mutex::default(),
            #[cfg(feature = "redis")]
            fleet: self.fleet,
            #[cfg(feature = "redis")]
            inspector: self.inspector,
        }));
        let router = Router::new()
            .route("/", get(page::index))
            .route("/dashboard.js", get(page::script))
            .route("/providers", get(api::providers))
            .route("/circuits", get(api::circuits))
            .route("/events", get(sse::events))
            .route("/actions", get(actions::log))
            .route("/circuits/{provider}/{tenant}/{action}", post(actions::act))
            .route("/providers/{provider}/config", get(retune::config))
            .route("/providers/{provider}/retune", post(retune::retune));
        #[cfg(feature = "redis")]
        let router = router
            .route("/fleet", get(api::fleet))
            .route("/fleet/circuits", get(api::fleet_circuits));
        router.with_state(state)
    }
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("registry", &self.registry)
            .field("feed", &self.feed)
            .field("actions", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// The routes' shared state.
#[derive(Clone)]
struct App(Arc<Shared>);

struct Shared {
    registry: RegistryRef,
    feed: Option<Feed>,
    hook: Option<Hook>,
    /// The last actions asked, newest last.
    log: Mutex<VecDeque<Record>>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::FleetHealth>,
    #[cfg(feature = "redis")]
    inspector: Option<crate::fleet::FleetInspector>,
}

impl Shared {
    /// The hook's answer; `None` without a hook, `Some(false)` when it panicked.
    fn allows(&self, req: &Parts, action: &Action) -> Option<bool> {
        let hook = self.hook.as_ref()?;
        Some(catch_unwind(AssertUnwindSafe(|| hook(req, action))).unwrap_or(false))
    }
}
