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

/// A striped window's part (a time window's bucket, a count window's stripe) below the
/// failure-rate threshold checks the rates after one failure in this many.
pub(crate) const FAILURE_CHECK: u32 = 4;

impl Trips {
    /// Every record checks (what a window's own tests and the in-flight scan ask for).
    pub(crate) const ALWAYS: Trips = Trips {
        minimum_calls: u32::MAX,
        failure_rate: None,
    };

    /// Whether a plain success recorded into a striped window's part that held `calls_before`
    /// calls may trip it: only one that may bring the window to `minimum_calls`. A part that
    /// held them proves the window held them, so the success lowers both rates.
    #[inline]
    pub(crate) fn success_may_trip(self, calls_before: u64) -> bool {
        calls_before < u64::from(self.minimum_calls.max(1))
    }

    /// Whether a failure, the `nth` (from 0) of its part, which holds `failures` of `calls`
    /// with it, should check a striped window: always when the part is at the failure-rate
    /// threshold, one failure in [`FAILURE_CHECK`] otherwise. The window's rate is its parts'
    /// rates averaged by their calls, so a window at the threshold has a part at it; a crossing
    /// made only by parts below it is caught a few failures late (missed, if the rates fall back
    /// first). Without a failure-rate policy, always.
    #[inline]
    pub(crate) fn failure_may_trip(self, nth: u64, failures: u64, calls: u64) -> bool {
        let Some(threshold) = self.failure_rate else {
            return true;
        };
        nth % u64::from(FAILURE_CHECK) == 0 || failures as f64 >= threshold * calls as f64
    }
}
