//! The attribute's arguments: `#[circuit_breaker(provider = "...", tenant = ..., ...)]`.
//!
//! Every argument remembers the span of its key so that errors point at what the user wrote. Parse
//! errors are collected and reported together; config values are checked by the runtime's own
//! `ConfigBuilder::build`, so the attribute accepts exactly what a runtime config accepts.

use std::time::Duration;

use breaker_core::{Config, ConfigBuilder, Outcome, Window};
use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, UnOp};

use crate::duration;

/// Every key the attribute accepts, in the order the docs list them.
const KEYS: &[&str] = &[
    "provider",
    "tenant",
    "registry",
    "consecutive_failures",
    "failure_rate",
    "window",
    "minimum_calls",
    "slow_call",
    "slow_call_rate",
    "open_for",
    "max_open_for",
    "backoff",
    "jitter",
    "half_open_probes",
    "half_open_successes",
    "on_abandoned",
    "probe_timeout",
    "timeout",
    "first_item_timeout",
    "idle_timeout",
    "on_cancel",
    "max_in_flight",
    "classify",
    "fallback",
    "probe",
    "stream",
    "classify_item",
    "crate",
];

/// The slow-call rate used when `slow_call` is given without `slow_call_rate`: the circuit trips
/// when every call in the window (at least `minimum_calls` of them) was slow.
pub(crate) const DEFAULT_SLOW_CALL_RATE: f64 = 1.0;

/// The circuit's provider name: a literal, or the path of a `&'static str` constant (checked for
/// its type and emptiness when the crate is compiled, since its value is not known here).
#[derive(Clone)]
pub(crate) enum Provider {
    Literal(LitStr),
    Const(Path),
}

/// The parsed arguments of one `#[circuit_breaker(...)]`.
pub(crate) struct Args {
    pub(crate) provider: Provider,
    pub(crate) tenant: Option<Expr>,
    pub(crate) registry: Option<Expr>,
    pub(crate) krate: Option<Path>,
    pub(crate) classify: Option<Path>,
    pub(crate) fallback: Option<Path>,
    /// `probe = name`: a `bool` the body sees, true when the call is the circuit's half-open
    /// probe.
    pub(crate) probe: Option<Ident>,
    /// Where `timeout = ..` was written, if it was (it needs an async fn, no fallback, and the
    /// `tokio` feature).
    pub(crate) timeout_key: Option<Span>,
    /// `stream`: the `Ok` is a stream, judged when it ends (the span of the flag).
    pub(crate) stream: Option<Span>,
    /// `classify_item = path`: `fn(&E2) -> Outcome` for the `Err` items of the stream.
    pub(crate) classify_item: Option<Path>,
    /// Builder calls of the site's config, in a fixed order; empty when no config argument was
    /// given (the site then passes `None` and the registry's default applies).
    pub(crate) settings: Vec<Setting>,
}

/// One `ConfigBuilder` call. The same list is applied to a real builder at expansion time (to
/// validate it) and emitted as code (to build the same config at run time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Setting {
    ConsecutiveFailures(u32),
    FailureRate(f64, Window),
    Window(Window),
    MinimumCalls(u32),
    SlowCalls(Duration, f64),
    OpenFor(Duration),
    MaxOpenFor(Duration),
    BackoffMultiplier(f64),
    Jitter(f64),
    HalfOpenProbes(u32),
    HalfOpenSuccesses(u32),
    OnAbandoned(Outcome),
    ProbeTimeout(Duration),
    Timeout(Duration),
    FirstItemTimeout(Duration),
    IdleTimeout(Duration),
    OnCancel(Outcome),
    MaxInFlight(u32),
}

impl Setting {
    pub(crate) fn apply(self, b: ConfigBuilder) -> ConfigBuilder {
        match self {
            Setting::ConsecutiveFailures(n) => b.consecutive_failures(n),
            Setting::FailureRate(r, w) => b.failure_rate(r, w),
            Setting::Window(w) => b.window(w),
            Setting::MinimumCalls(n) => b.minimum_calls(n),
            Setting::SlowCalls(d, r) => b.slow_calls(d, r),
            Setting::OpenFor(d) => b.open_for(d),
            Setting::MaxOpenFor(d) => b.max_open_for(d),
            Setting::BackoffMultiplier(m) => b.backoff_multiplier(m),
            Setting::Jitter(j) => b.jitter(j),
            Setting::HalfOpenProbes(n) => b.half_open_probes(n),
            Setting::HalfOpenSuccesses(n) => b.half_open_successes(n),
            Setting::OnAbandoned(o) => b.on_abandoned(o),
            Setting::ProbeTimeout(d) => b.probe_timeout(d),
            Setting::Timeout(d) => b.timeout(d),
            Setting::FirstItemTimeout(d) => b.first_item_timeout(d),
            Setting::IdleTimeout(d) => b.idle_timeout(d),
            Setting::OnCancel(o) => b.on_cancel(o),
            Setting::MaxInFlight(n) => b.max_in_flight(n),
        }
    }
}

/// A value with the span of the key that introduced it.
struct Keyed<T> {
    key: Span,
    value: T,
}

/// Arguments as written, before they are combined into [`Args`].
#[derive(Default)]
struct Raw {
    provider: Option<Keyed<Provider>>,
    tenant: Option<Keyed<Expr>>,
    registry: Option<Keyed<Expr>>,
    krate: Option<Keyed<Path>>,
    classify: Option<Keyed<Path>>,
    fallback: Option<Keyed<Path>>,
    probe: Option<Keyed<Ident>>,
    consecutive_failures: Option<Keyed<u32>>,
    failure_rate: Option<Keyed<f64>>,
    window: Option<Keyed<Window>>,
    minimum_calls: Option<Keyed<u32>>,
    slow_call: Option<Keyed<Duration>>,
    slow_call_rate: Option<Keyed<f64>>,
    open_for: Option<Keyed<Duration>>,
    max_open_for: Option<Keyed<Duration>>,
    backoff: Option<Keyed<f64>>,
    jitter: Option<Keyed<f64>>,
    half_open_probes: Option<Keyed<u32>>,
    half_open_successes: Option<Keyed<u32>>,
    on_abandoned: Option<Keyed<Outcome>>,
    probe_timeout: Option<Keyed<Duration>>,
    timeout: Option<Keyed<Duration>>,
    first_item_timeout: Option<Keyed<Duration>>,
    idle_timeout: Option<Keyed<Duration>>,
    on_cancel: Option<Keyed<Outcome>>,
    max_in_flight: Option<Keyed<u32>>,
    stream: Option<Keyed<()>>,
    classify_item: Option<Keyed<Path>>,
    /// `provider = ..` was written, even if its value was rejected: no "missing" error then.
    provider_written: bool,
    errors: Option<syn::Error>,
}

/// Records `e` beside the errors found so far.
fn push(errors: &mut Option<syn::Error>, e: syn::Error) {
    match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    }
}

/// Stores a parsed value, or reports the key as a duplicate.
fn set<T>(
    slot: &mut Option<Keyed<T>>,
    errors: &mut Option<syn::Error>,
    key: &Path,
    name: &str,
    value: syn::Result<T>,
) {
    match value {
        Err(e) => push(errors, e),
        Ok(_) if slot.is_some() => push(
            errors,
            syn::Error::new_spanned(
                key,
                format!("duplicate `{name}` argument: give it only once"),
            ),
        ),
        Ok(value) => {
            *slot = Some(Keyed {
                key: key.span(),
                value,
            })
        }
    }
}

/// Parses the attribute's argument list.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Args> {
    let mut raw = Raw::default();
    let parser = syn::meta::parser(|meta| raw.parse_one(meta));
    parser.parse2(args)?;
    raw.finish()
}

impl Raw {
    fn parse_one(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let name = match meta.path.get_ident() {
            Some(ident) => ident.to_string(),
            None => String::new(),
        };
        if !KEYS.contains(&name.as_str()) {
            // Consume the value, if any, so that the next argument is still checked.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<Expr>()?;
            }
            push(
                &mut self.errors,
                syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown `circuit_breaker` argument; expected one of: {}",
                        KEYS.join(", ")
                    ),
                ),
            );
            return Ok(());
        }
        if name == "stream" {
            // A flag: `stream`, not `stream = ..`.
            if meta.input.peek(syn::Token![=]) {
                let value: Expr = meta.value()?.parse()?;
                push(
                    &mut self.errors,
                    syn::Error::new_spanned(
                        value,
                        "`stream` takes no value: write `stream` to judge the returned stream when it ends",
                    ),
                );
                return Ok(());
            }
            set(
                &mut self.stream,
                &mut self.errors,
                &meta.path,
                &name,
                Ok(()),
            );
            return Ok(());
        }
        if !meta.input.peek(syn::Token![=]) {
            push(
                &mut self.errors,
                meta.error(format!(
                    "`{name}` needs a value: write `{name} = {}`",
                    example(&name)
                )),
            );
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        self.provider_written |= name == "provider";
        let key = &meta.path;
        let e = &mut self.errors;
        match name.as_str() {
            "provider" => set(&mut self.provider, e, key, &name, provider(&value)),
            "tenant" => set(&mut self.tenant, e, key, &name, Ok(value)),
            "registry" => set(&mut self.registry, e, key, &name, Ok(value)),
            "crate" => set(&mut self.krate, e, key, &name, path(&value, &name)),
            "classify" => set(&mut self.classify, e, key, &name, path(&value, &name)),
            "fallback" => set(&mut self.fallback, e, key, &name, path(&value, &name)),
            "probe" => set(&mut self.probe, e, key, &name, ident(&value, &name)),
            "classify_item" => set(&mut self.classify_item, e, key, &name, path(&value, &name)),
            "consecutive_failures" => set(
                &mut self.consecutive_failures,
                e,
                key,
                &name,
                count(&value, &name),
            ),
            "failure_rate" => set(&mut self.failure_rate, e, key, &name, number(&value, &name)),
            "window" => set(&mut self.window, e, key, &name, window(&value)),
            "minimum_calls" => set(&mut self.minimum_calls, e, key, &name, count(&value, &name)),
            "slow_call" => set(&mut self.slow_call, e, key, &name, dur(&value, &name)),
            "slow_call_rate" => set(
                &mut self.slow_call_rate,
                e,
                key,
                &name,
                number(&value, &name),
            ),
            "open_for" => set(&mut self.open_for, e, key, &name, dur(&value, &name)),
            "max_open_for" => set(&mut self.max_open_for, e, key, &name, dur(&value, &name)),
            "backoff" => set(&mut self.backoff, e, key, &name, number(&value, &name)),
            "jitter" => set(&mut self.jitter, e, key, &name, number(&value, &name)),
            "half_open_probes" => set(
                &mut self.half_open_probes,
                e,
                key,
                &name,
                count(&value, &name),
            ),
            "half_open_successes" => set(
                &mut self.half_open_successes,
                e,
                key,
                &name,
                count(&value, &name),
            ),
            "on_abandoned" => set(
                &mut self.on_abandoned,
                e,
                key,
                &name,
                outcome(&value, &name),
            ),
            "probe_timeout" => set(&mut self.probe_timeout, e, key, &name, dur(&value, &name)),
            "timeout" => set(&mut self.timeout, e, key, &name, dur(&value, &name)),
            "first_item_timeout" => set(
                &mut self.first_item_timeout,
                e,
                key,
                &name,
                dur(&value, &name),
            ),
            "idle_timeout" => set(&mut self.idle_timeout, e, key, &name, dur(&value, &name)),
            "on_cancel" => set(&mut self.on_cancel, e, key, &name, outcome(&value, &name)),
            "max_in_flight" => set(&mut self.max_in_flight, e, key, &name, count(&value, &name)),
            // KEYS and this match list the same names.
            _ => {}
        }
        Ok(())
    }

    /// Checks what needs every argument at once: `provider` present, the slow-call pair, and the
    /// config as a whole (through the runtime's builder).
    fn finish(mut self) -> syn::Result<Args> {
        if let (Some(rate), None) = (&self.slow_call_rate, &self.slow_call) {
            push(
                &mut self.errors,
                syn::Error::new(
                    rate.key,
                    "`slow_call_rate` needs `slow_call = \"2s\"`, the duration above which a call is slow",
                ),
            );
        }
        if let (Some(c), None) = (&self.classify_item, &self.stream) {
            push(
                &mut self.errors,
                syn::Error::new(
                    c.key,
                    "`classify_item` classifies the items of a returned stream: add `stream`",
                ),
            );
        }
        let settings = self.settings();
        if let Err(e) = validate(&settings) {
            let span = self.span_of(e.field());
            let arg = argument_of(e.field());
            push(
                &mut self.errors,
                syn::Error::new(
                    span,
                    format!("invalid `{arg}` = {}: {}", e.value(), e.reason()),
                ),
            );
        }
        let provider = match self.provider {
            Some(p) => Some(p.value),
            None if self.provider_written => None,
            None => {
                push(
                    &mut self.errors,
                    syn::Error::new(
                        Span::call_site(),
                        "missing `provider`: write `#[circuit_breaker(provider = \"name\")]`",
                    ),
                );
                None
            }
        };
        match (self.errors, provider) {
            (Some(errors), _) => Err(errors),
            (None, None) => Err(syn::Error::new(Span::call_site(), "missing `provider`")),
            (None, Some(provider)) => Ok(Args {
                provider,
                tenant: self.tenant.map(|t| t.value),
                registry: self.registry.map(|r| r.value),
                krate: self.krate.map(|k| k.value),
                classify: self.classify.map(|c| c.value),
                fallback: self.fallback.map(|f| f.value),
                probe: self.probe.map(|p| p.value),
                timeout_key: self.timeout.as_ref().map(|t| t.key),
                stream: self.stream.map(|s| s.key),
                classify_item: self.classify_item.map(|c| c.value),
                settings,
            }),
        }
    }

    /// The builder calls for the config arguments given, in a fixed order.
    fn settings(&self) -> Vec<Setting> {
        let mut s = Vec::new();
        if let Some(n) = &self.consecutive_failures {
            s.push(Setting::ConsecutiveFailures(n.value));
        }
        let window = self.window.as_ref().map(|w| w.value);
        match (&self.failure_rate, window) {
            (Some(r), w) => s.push(Setting::FailureRate(r.value, w.unwrap_or_default())),
            (None, Some(w)) => s.push(Setting::Window(w)),
            (None, None) => {}
        }
        if let Some(n) = &self.minimum_calls {
            s.push(Setting::MinimumCalls(n.value));
        }
        if let Some(d) = &self.slow_call {
            let rate = self
                .slow_call_rate
                .as_ref()
                .map_or(DEFAULT_SLOW_CALL_RATE, |r| r.value);
            s.push(Setting::SlowCalls(d.value, rate));
        }
        let durations = [
            (&self.open_for, Setting::OpenFor as fn(Duration) -> Setting),
            (&self.max_open_for, Setting::MaxOpenFor),
        ];
        for (slot, make) in durations {
            if let Some(d) = slot {
                s.push(make(d.value));
            }
        }
        if let Some(m) = &self.backoff {
            s.push(Setting::BackoffMultiplier(m.value));
        }
        if let Some(j) = &self.jitter {
            s.push(Setting::Jitter(j.value));
        }
        if let Some(n) = &self.half_open_probes {
            s.push(Setting::HalfOpenProbes(n.value));
        }
        if let Some(n) = &self.half_open_successes {
            s.push(Setting::HalfOpenSuccesses(n.value));
        }
        if let Some(o) = &self.on_abandoned {
            s.push(Setting::OnAbandoned(o.value));
        }
        if let Some(d) = &self.probe_timeout {
            s.push(Setting::ProbeTimeout(d.value));
        }
        if let Some(d) = &self.timeout {
            s.push(Setting::Timeout(d.value));
        }
        if let Some(d) = &self.first_item_timeout {
            s.push(Setting::FirstItemTimeout(d.value));
        }
        if let Some(d) = &self.idle_timeout {
            s.push(Setting::IdleTimeout(d.value));
        }
        if let Some(o) = &self.on_cancel {
            s.push(Setting::OnCancel(o.value));
        }
        if let Some(n) = &self.max_in_flight {
            s.push(Setting::MaxInFlight(n.value));
        }
        s
    }

    /// The span of the argument that set the builder field `field`; the attribute itself when the
    /// value came from a default.
    fn span_of(&self, field: &str) -> Span {
        let key = match field {
            "consecutive_failures" => self.consecutive_failures.as_ref().map(|a| a.key),
            "failure_rate" => self.failure_rate.as_ref().map(|a| a.key),
            "window" => self.window.as_ref().map(|a| a.key),
            "minimum_calls" => self.minimum_calls.as_ref().map(|a| a.key),
            "slow_call_threshold" => self.slow_call.as_ref().map(|a| a.key),
            "slow_call_rate" => (self.slow_call_rate.as_ref().map(|a| a.key))
                .or(self.slow_call.as_ref().map(|a| a.key)),
            "open_for" => self.open_for.as_ref().map(|a| a.key),
            "max_open_for" => self.max_open_for.as_ref().map(|a| a.key),
            "backoff_multiplier" => self.backoff.as_ref().map(|a| a.key),
            "jitter" => self.jitter.as_ref().map(|a| a.key),
            "half_open_probes" => self.half_open_probes.as_ref().map(|a| a.key),
            "half_open_successes" => self.half_open_successes.as_ref().map(|a| a.key),
            "probe_timeout" => self.probe_timeout.as_ref().map(|a| a.key),
            "timeout" => self.timeout.as_ref().map(|a| a.key),
            "first_item_timeout" => self.first_item_timeout.as_ref().map(|a| a.key),
            "idle_timeout" => self.idle_timeout.as_ref().map(|a| a.key),
            "max_in_flight" => self.max_in_flight.as_ref().map(|a| a.key),
            _ => None,
        };
        key.unwrap_or_else(Span::call_site)
    }
}

/// Runs the runtime's own validation on the site's settings.
pub(crate) fn validate(settings: &[Setting]) -> Result<Config, breaker_core::ConfigError> {
    settings
        .iter()
        .fold(Config::builder(), |b, s| s.apply(b))
        .build()
}

/// The attribute argument that sets the builder field `field`.
fn argument_of(field: &str) -> &str {
    match field {
        "slow_call_threshold" => "slow_call",
        "backoff_multiplier" => "backoff",
        other => other,
    }
}

/// An example value for `key`, for "needs a value" errors.
fn example(key: &str) -> &'static str {
    match key {
        "provider" => "\"name\"",
        "tenant" => "expr",
        "registry" => "&REGISTRY",
        "crate" => "::breaker",
        "classify" | "fallback" | "classify_item" => "path::to::function",
        "probe" => "is_probe",
        "failure_rate" | "slow_call_rate" => "0.5",
        "backoff" => "2.0",
        "jitter" => "0.1",
        "window" => "100",
        "slow_call" => "\"2s\"",
        "open_for" => "\"30s\"",
        "max_open_for" => "\"5m\"",
        "probe_timeout" => "\"30s\"",
        "timeout" => "\"2s\"",
        "first_item_timeout" => "\"10s\"",
        "idle_timeout" => "\"30s\"",
        "on_abandoned" => "\"failure\"",
        "on_cancel" => "\"ignored\"",
        _ => "5",
    }
}

fn lit(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        // `$value` from a `macro_rules!` arrives wrapped in an invisible group.
        Expr::Group(g) => lit(&g.expr),
        Expr::Paren(p) => lit(&p.expr),
        _ => None,
    }
}

fn provider(value: &Expr) -> syn::Result<Provider> {
    match (lit(value), value) {
        (Some(Lit::Str(s)), _) if s.value().is_empty() => {
            Err(syn::Error::new_spanned(s, "`provider` must not be empty"))
        }
        (Some(Lit::Str(s)), _) => Ok(Provider::Literal(s.clone())),
        (_, Expr::Path(p)) if p.qself.is_none() && p.attrs.is_empty() => {
            Ok(Provider::Const(p.path.clone()))
        }
        _ => Err(syn::Error::new_spanned(
            value,
            "`provider` must be a string literal or a `&'static str` constant, e.g. `provider = \"anthropic\"` or `provider = providers::ANTHROPIC`",
        )),
    }
}

/// A path, or a string literal holding one (`crate = "::breaker"`, as serde and tokio accept).
/// A plain name to bind (`probe = is_probe`).
fn ident(value: &Expr, key: &str) -> syn::Result<Ident> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p
            .path
            .get_ident()
            .cloned()
            .ok_or_else(|| bad_ident(value, key)),
        Expr::Group(g) => ident(&g.expr, key),
        _ => Err(bad_ident(value, key)),
    }
}

fn bad_ident(value: &Expr, key: &str) -> syn::Error {
    syn::Error::new_spanned(
        value,
        format!(
            "`{key}` must be a name for the body to read, e.g. `{key} = {}`",
            example(key)
        ),
    )
}

fn path(value: &Expr, key: &str) -> syn::Result<Path> {
    match value {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => Ok(p.path.clone()),
        Expr::Group(g) => path(&g.expr, key),
        _ => match lit(value) {
            Some(Lit::Str(s)) => s.parse::<Path>().map_err(|_| {
                syn::Error::new_spanned(
                    s,
                    format!("`{key}` must be a path, e.g. `{key} = {}`", example(key)),
                )
            }),
            _ => Err(syn::Error::new_spanned(
                value,
                format!("`{key}` must be a path, e.g. `{key} = {}`", example(key)),
            )),
        },
    }
}

fn count(value: &Expr, key: &str) -> syn::Result<u32> {
    match lit(value) {
        Some(Lit::Int(i)) => i.base10_parse::<u32>().map_err(|_| {
            syn::Error::new_spanned(
                i,
                format!("`{key}` must be a whole number from 1 to {}", u32::MAX),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` must be a whole number, e.g. `{key} = {}`",
                example(key)
            ),
        )),
    }
}

fn number(value: &Expr, key: &str) -> syn::Result<f64> {
    let (negative, inner) = match value {
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => (true, &**expr),
        other => (false, other),
    };
    let parsed = match lit(inner) {
        Some(Lit::Float(f)) => f.base10_parse::<f64>().ok(),
        Some(Lit::Int(i)) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(v) if negative => Ok(-v),
        Some(v) => Ok(v),
        None => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` must be a number, e.g. `{key} = {}`", example(key)),
        )),
    }
}

fn dur(value: &Expr, key: &str) -> syn::Result<Duration> {
    match lit(value) {
        Some(Lit::Str(s)) => duration::parse(&s.value()).ok_or_else(|| {
            syn::Error::new_spanned(
                s,
                format!(
                    "invalid duration {:?} for `{key}`: {}",
                    s.value(),
                    duration::EXPECTED
                ),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` must be a duration string, e.g. `{key} = {}`",
                example(key)
            ),
        )),
    }
}

fn window(value: &Expr) -> syn::Result<Window> {
    match lit(value) {
        Some(Lit::Int(_)) => count(value, "window").map(Window::Calls),
        Some(Lit::Str(_)) => dur(value, "window").map(Window::Time),
        _ => Err(syn::Error::new_spanned(
            value,
            "`window` must be a number of calls (`window = 100`) or a duration (`window = \"60s\"`)",
        )),
    }
}

fn outcome(value: &Expr, key: &str) -> syn::Result<Outcome> {
    let err = || {
        syn::Error::new_spanned(
            value,
            format!("`{key}` must be \"failure\", \"ignored\" or \"success\""),
        )
    };
    match lit(value) {
        Some(Lit::Str(s)) => match s.value().as_str() {
            "failure" => Ok(Outcome::Failure),
            "ignored" => Ok(Outcome::Ignored),
            "success" => Ok(Outcome::Success),
            _ => Err(err()),
        },
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn ok(tokens: TokenStream) -> Args {
        match parse(tokens) {
            Ok(args) => args,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(tokens: TokenStream) -> String {
        match parse(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn provider_alone_has_no_site_config() {
        let args = ok(quote!(provider = "openai"));
        assert!(matches!(&args.provider, Provider::Literal(s) if s.value() == "openai"));
        assert!(args.settings.is_empty());
    }

    #[test]
    fn config_arguments_become_builder_calls() {
        let args = ok(quote!(
            provider = "p",
            failure_rate = 0.5,
            window = "60s",
            slow_call = "2s",
            open_for = "1m30s",
            backoff = 3,
            on_abandoned = "ignored"
        ));
        assert_eq!(
            args.settings,
            vec![
                Setting::FailureRate(0.5, Window::Time(Duration::from_secs(60))),
                Setting::SlowCalls(Duration::from_secs(2), DEFAULT_SLOW_CALL_RATE),
                Setting::OpenFor(Duration::from_secs(90)),
                Setting::BackoffMultiplier(3.0),
                Setting::OnAbandoned(Outcome::Ignored),
            ]
        );
    }

    #[test]
    fn window_alone_sets_the_window() {
        let args = ok(quote!(
            provider = "p",
            window = 20,
            slow_call = "1s",
            slow_call_rate = 0.5
        ));
        assert_eq!(args.settings[0], Setting::Window(Window::Calls(20)));
    }

    #[test]
    fn errors_are_collected() {
        let msg = err(quote!(
            provider = 5,
            colour = "red",
            jitter = "x",
            jitter = 0.1
        ));
        assert!(
            msg.contains("`provider` must be a string literal or a `&'static str` constant"),
            "{msg}"
        );
        assert!(
            msg.contains("unknown `circuit_breaker` argument; expected one of: provider"),
            "{msg}"
        );
        assert!(msg.contains("`jitter` must be a number"), "{msg}");
        assert!(
            !msg.contains("missing `provider`"),
            "no follow-on error: {msg}"
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        let msg = err(quote!(provider = "a", provider = "b"));
        assert_eq!(msg, "duplicate `provider` argument: give it only once");
    }

    #[test]
    fn the_runtime_builder_validates_the_config() {
        let msg = err(quote!(provider = "p", failure_rate = 1.5));
        assert_eq!(msg, "invalid `failure_rate` = 1.5: must be in (0, 1]");
        let msg = err(quote!(provider = "p", backoff = 0.5));
        assert_eq!(
            msg,
            "invalid `backoff` = 0.5: must be a finite number of at least 1"
        );
        let msg = err(quote!(provider = "p", open_for = "0s"));
        assert_eq!(msg, "invalid `open_for` = 0s: must be longer than zero");
    }

    #[test]
    fn slow_call_rate_needs_a_threshold() {
        let msg = err(quote!(provider = "p", slow_call_rate = 0.5));
        assert!(
            msg.starts_with("`slow_call_rate` needs `slow_call"),
            "{msg}"
        );
    }

    #[test]
    fn stream_is_a_flag_with_its_settings() {
        let args = ok(quote!(
            provider = "p",
            stream,
            classify_item = by_code,
            first_item_timeout = "10s",
            idle_timeout = "30s",
            on_cancel = "failure"
        ));
        assert!(args.stream.is_some());
        assert!(args.classify_item.is_some());
        assert_eq!(
            args.settings,
            vec![
                Setting::FirstItemTimeout(Duration::from_secs(10)),
                Setting::IdleTimeout(Duration::from_secs(30)),
                Setting::OnCancel(Outcome::Failure),
            ]
        );
        assert!(ok(quote!(provider = "p")).stream.is_none());
    }

    #[test]
    fn stream_misuse_is_reported_at_the_argument() {
        assert_eq!(
            err(quote!(provider = "p", stream = true)),
            "`stream` takes no value: write `stream` to judge the returned stream when it ends"
        );
        assert_eq!(
            err(quote!(provider = "p", stream, stream)),
            "duplicate `stream` argument: give it only once"
        );
        assert_eq!(
            err(quote!(provider = "p", classify_item = f)),
            "`classify_item` classifies the items of a returned stream: add `stream`"
        );
        assert_eq!(
            err(quote!(provider = "p", stream, on_cancel = "maybe")),
            "`on_cancel` must be \"failure\", \"ignored\" or \"success\""
        );
        assert_eq!(
            err(quote!(provider = "p", stream, idle_timeout = "0s")),
            "invalid `idle_timeout` = 0s: must be longer than zero"
        );
    }

    #[test]
    fn crate_accepts_a_path_or_a_string() {
        let a = ok(quote!(provider = "p", crate = ::my::breaker));
        let b = ok(quote!(provider = "p", crate = "::my::breaker"));
        let show = |a: Args| a.krate.map(|k| quote!(#k).to_string());
        assert_eq!(show(a), show(b));
    }

    #[test]
    fn garbage_never_panics() {
        for tokens in [
            quote!(=),
            quote!(provider),
            quote!(provider =),
            quote!(, ,),
            quote!(provider = "p" tenant),
            quote!(a::b = 1),
            quote!(window = -1),
            quote!(window = 99999999999),
            quote!(jitter = -0.5),
            quote!(provider = "p", crate = 1 + 1),
        ] {
            assert!(parse(tokens).is_err());
        }
    }
}
