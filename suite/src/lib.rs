//! Nothing to use: this package holds `breaker`'s benchmarks, its heavy demos (`outage`, `retry`)
//! and the tests that need their dependencies, so that `breaker`'s own examples build only
//! `breaker`. Its library exists to run the README's examples as doctests with those
//! dependencies at hand.

/// The README's examples, compiled and run by the `--all-features` doc tests of `.ci/run` (some
/// of them use the `tracing`, `metrics`, `axum`, `redis` and `dashboard` features, backon, tower and toml).
#[cfg(all(
    doctest,
    feature = "tracing",
    feature = "metrics",
    feature = "serde",
    feature = "axum",
    feature = "redis",
    feature = "dashboard"
))]
#[doc = include_str!("../../README.md")]
struct ReadmeDocs;
