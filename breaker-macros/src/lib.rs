//! Proc-macro crate of `breaker`; the attribute lands in its own issue.
