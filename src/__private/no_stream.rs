//! `#[circuit_breaker(stream)]` without the `stream` feature: one error that says which feature
//! to turn on, instead of a missing path.

use breaker_core::{Outcome, Permit};

/// Never implemented: the `stream` feature is off.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker(stream)]` needs the `stream` feature of `breaker`",
    label = "guarded streams are behind a feature",
    note = "enable it: `breaker = {{ version = \"0.1\", features = [\"stream\"] }}`"
)]
pub trait StreamFeature {}

/// The default item classifier, for the expansion to name.
pub struct ByClassify;

/// Stands in for the `stream` feature's `guard`; cannot be called (no `StreamFeature` impl).
pub fn guard<S, E, C, R>(_: Permit, _: Result<S, E>, _: Option<Outcome>, _: C) -> R
where
    C: StreamFeature,
{
    unreachable!("`StreamFeature` has no impl")
}

/// Stands in for the `stream` feature's `guard_boxed`.
pub fn guard_boxed<S, E, C, R>(_: Permit, _: Result<S, E>, _: Option<Outcome>, _: C) -> R
where
    C: StreamFeature,
{
    unreachable!("`StreamFeature` has no impl")
}
