//! What a window sums to at one moment, and what its records need of the policy to tell
//! when a sum is worth taking.

/// Totals over the window at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub(crate) fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }
    pub(crate) fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part.min(whole)) as f64 / whole as f64
    }
}

/// What a window's records need of the policy to tell when a check of the rates may trip it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trips {
    /// Outcomes the window must hold before a rate can trip it.
    pub(crate) minimum_calls: u32,
    /// The failure-rate threshold, if the policy has one.
    pub(crate) failure_rate: Option<f64>,
}

impl Trips {
    /// Every record checks (what a window's own tests and the in-flight scan ask for).
    pub(crate) const ALWAYS: Trips = Trips {
        minimum_calls: u32::MAX,
        failure_rate: None,
    };
}
