//! The open-period schedule: `open_for × multiplier^level`, capped at `max_open_for`, spread by
//! jitter. `level` counts re-trips from half-open since the circuit last closed.

use std::time::Duration;

use crate::config::{Config, MAX_DURATION};

/// The highest level the circuit remembers. Beyond it the period stops growing, which only
/// matters for multipliers so close to 1 that 31 steps do not reach `max_open_for`.
pub(crate) const MAX_LEVEL: u32 = 31;

/// The open period for `level`, before jitter.
pub(crate) fn open_period(config: &Config, level: u32) -> Duration {
    let max = config.max_open_for.as_nanos() as f64;
    let nanos = config.open_for.as_nanos() as f64 * config.backoff_multiplier.powi(level as i32);
    // `min` also maps +inf (a huge multiplier) to the cap; the result fits in u64 nanoseconds
    // because the config caps durations at a year.
    Duration::from_nanos(nanos.min(max).round() as u64)
}

/// The open period for `level`, spread uniformly by ±`jitter` when configured.
pub(crate) fn jittered_period(config: &Config, level: u32) -> Duration {
    let base = open_period(config, level);
    if config.jitter == 0.0 {
        return base;
    }
    let spread = config.jitter * (2.0 * fastrand::f64() - 1.0);
    let nanos = base.as_nanos() as f64 * (1.0 + spread);
    Duration::from_nanos(nanos.round() as u64).clamp(Duration::from_micros(1), MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn compounds_and_clamps() {
        let c = Config::default();
        let got: Vec<_> = (0..7).map(|l| open_period(&c, l)).collect();
        assert_eq!(
            got,
            [30, 60, 120, 240, 300, 300, 300].map(secs).to_vec(),
            "30/60/120/240/300/300"
        );
    }

    #[test]
    fn sub_second_periods_compound_exactly() {
        let c = Config::builder()
            .open_for(Duration::from_millis(250))
            .max_open_for(Duration::from_secs(1))
            .build()
            .unwrap();
        let got: Vec<_> = (0..4).map(|l| open_period(&c, l)).collect();
        assert_eq!(
            got,
            [250, 500, 1000, 1000].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let c = Config::builder().jitter(0.2).build().unwrap();
        for _ in 0..1000 {
            let d = jittered_period(&c, 0);
            assert!(d >= secs(24) && d <= secs(36), "{d:?}");
        }
    }

    #[test]
    fn huge_multiplier_hits_the_cap() {
        let c = Config::builder().backoff_multiplier(1e300).build().unwrap();
        assert_eq!(open_period(&c, MAX_LEVEL), secs(300));
    }
}
