//! Time sources. The circuit never reads the system time directly: it asks its [`Clock`], so tests
//! drive open periods, slow calls and time windows with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic time source for circuits.
///
/// Implementations must never go backwards. The circuit only measures differences between two
/// readings of the same clock, so the absolute value is irrelevant.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Clock, SystemClock};
/// let clock = SystemClock;
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock ([`Instant::now`]). The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to. Clones share one time, so a test keeps a clone and
/// advances it while the circuit (or registry) holds the other.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let handle = clock.clone();
/// let t0 = clock.now();
/// handle.advance(Duration::from_secs(30));
/// assert_eq!(clock.now() - t0, Duration::from_secs(30));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    origin: Instant,
    elapsed_ns: AtomicU64,
}

impl ManualClock {
    /// A clock frozen at the moment of its creation.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                elapsed_ns: AtomicU64::new(0),
            }),
        }
    }

    /// Moves the shared time forward by `d` (saturating at about 584 years).
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .elapsed_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_add(ns))
            });
    }

    /// How far the clock has been advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_ns.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }
}

/// A clock that follows tokio's time, so `tokio::time::pause()` and `tokio::time::advance()` in a
/// `#[tokio::test(start_paused = true)]` drive the circuit's open periods.
///
/// Outside a paused runtime it reads the same monotonic time as [`SystemClock`].
///
/// ```
/// # use breaker_core as breaker;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use breaker::{Clock, TokioClock};
/// let clock = TokioClock;
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// # }
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// The clock of a set of circuits (a registry's, or a standalone circuit's), with the instant
/// all their times are measured from. Circuits keep times as microseconds since `origin` so they
/// fit in atomics.
pub(crate) struct Timebase {
    source: Source,
    origin: Instant,
}

enum Source {
    /// The system clock, read directly (no virtual call), with a cheap coarse reading when the
    /// platform has one.
    System(Option<Coarse>),
    Custom(Box<dyn Clock>),
}

impl Timebase {
    pub(crate) fn new<C: Clock>(clock: C) -> Self {
        let origin = clock.now();
        let source = if std::any::TypeId::of::<C>() == std::any::TypeId::of::<SystemClock>() {
            Source::System(Coarse::new())
        } else {
            Source::Custom(Box::new(clock))
        };
        Timebase { source, origin }
    }

    /// Microseconds since the origin; a clock reading before the origin counts as the origin.
    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        let now = match &self.source {
            Source::System(_) => Instant::now(),
            Source::Custom(clock) => clock.now(),
        };
        let d = now.saturating_duration_since(self.origin);
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the origin, possibly up to `tolerance_us` behind: the coarse clock
    /// when its resolution is that fine (a few nanoseconds instead of a full clock read, for a
    /// time window's every record), the precise one otherwise.
    #[inline]
    pub(crate) fn now_us_within(&self, tolerance_us: u64) -> u64 {
        if let Source::System(Some(coarse)) = &self.source {
            if coarse.slack_us <= tolerance_us {
                return coarse.now_us();
            }
        }
        self.now_us()
    }

    /// Microseconds since the origin from the coarse clock when there is one (it lags by at
    /// most its resolution), else as [`now_us`](Self::now_us): for counting into time buckets,
    /// where a few milliseconds do not matter and a full clock read per call would.
    #[inline]
    pub(crate) fn coarse_now_us(&self) -> u64 {
        if let Source::System(Some(coarse)) = &self.source {
            return coarse.now_us();
        }
        self.now_us()
    }

    /// Microseconds left until `deadline_us`, or `None` once it is reached. While the deadline is
    /// clearly ahead, the coarse clock answers (a few nanoseconds instead of a full clock read);
    /// the answer then errs long by at most its resolution, never short, so a caller that waits
    /// that long is never turned away for being early. Near the deadline the precise clock
    /// decides, so a probe is admitted exactly when `now >= deadline`.
    #[inline]
    pub(crate) fn until(&self, deadline_us: u64) -> Option<u64> {
        if let Source::System(Some(coarse)) = &self.source {
            let now = coarse.now_us();
            if now.saturating_add(coarse.slack_us) < deadline_us {
                return Some(deadline_us - now);
            }
        }
        self.until_precise(deadline_us)
    }

    /// [`until`](Self::until) on the precise clock: out of line, so that the coarse answer, an
    /// open circuit's every rejection, saves no registers for a clock read it does not make.
    #[inline(never)]
    fn until_precise(&self, deadline_us: u64) -> Option<u64> {
        let now = self.now_us();
        (now < deadline_us).then(|| deadline_us - now)
    }

    /// For a wait that may last until `deadline_us`: whether it is over (`now > deadline_us`,
    /// decided exactly), and a time no earlier than now to measure the next wait from. While the
    /// deadline is clearly ahead the coarse clock answers, as for [`until`](Self::until): its
    /// reading plus its resolution, which errs late by at most that, so a wait measured from it
    /// is never judged over early (a guarded stream's gaps are read at every item: a few
    /// nanoseconds instead of a full clock read).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    #[inline]
    pub(crate) fn past(&self, deadline_us: u64) -> (bool, u64) {
        if let Source::System(Some(coarse)) = &self.source {
            let upper = coarse.now_us().saturating_add(coarse.slack_us);
            if upper <= deadline_us {
                return (false, upper);
            }
        }
        let now = self.now_us();
        (now > deadline_us, now)
    }
}

impl fmt::Debug for Timebase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::System(_) => "system",
            Source::Custom(_) => "custom",
        };
        f.debug_struct("Timebase").field("source", &source).finish()
    }
}

/// `CLOCK_MONOTONIC_COARSE`: the same clock as [`Instant`] on Linux, as of the last timer tick,
/// read from the vDSO without touching the hardware counter. It never runs ahead of the precise
/// clock and lags it by at most its resolution.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Coarse {
    /// `CLOCK_MONOTONIC` read just after the origin `Instant`, in nanoseconds.
    origin_ns: u64,
    /// How far behind the precise clock a coarse reading may be, rounded up, in µs.
    slack_us: u64,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Coarse {
    fn new() -> Option<Coarse> {
        let mut res = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `res` is a valid, writable timespec; the call only writes it.
        if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } != 0 {
            return None;
        }
        let res_ns =
            u64::try_from(res.tv_sec).ok()? * 1_000_000_000 + u64::try_from(res.tv_nsec).ok()?;
        // A clock coarser than 10 ms would make retry-after visibly long: not worth it.
        if res_ns > 10_000_000 {
            return None;
        }
        Some(Coarse {
            origin_ns: read_ns(libc::CLOCK_MONOTONIC)?,
            // +2 µs covers the gap between reading the origin `Instant` and `origin_ns`.
            slack_us: res_ns.div_ceil(1000) + 2,
        })
    }

    /// Branch-free around the call: `new` checked that the clock reads, and a reading that
    /// failed anyway leaves the zeroed timespec, the origin (as the checked version answered).
    #[inline]
    fn now_us(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        // A monotonic clock's fields are never negative; the casts cannot lose a reading.
        let ns = (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64);
        ns.saturating_sub(self.origin_ns) / 1000
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn read_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?)
}

/// Elsewhere there is no coarse clock: every reading is precise.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
struct Coarse {
    slack_us: u64,
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Coarse {
    fn new() -> Option<Coarse> {
        None
    }
    fn now_us(&self) -> u64 {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_never_runs_ahead_of_the_precise_one() {
        let t = Timebase::new(SystemClock);
        if let Source::System(Some(coarse)) = &t.source {
            for _ in 0..10_000 {
                let c = coarse.now_us();
                let p = t.now_us();
                assert!(c <= p + 1, "coarse {c} > precise {p}");
                assert!(p <= c + coarse.slack_us, "precise {p} > coarse {c} + slack");
            }
        }
    }

    #[test]
    fn until_counts_down_to_none_on_a_manual_clock() {
        let clock = ManualClock::new();
        let t = Timebase::new(clock.clone());
        assert_eq!(t.until(1_000), Some(1_000));
        clock.advance(Duration::from_micros(999));
        assert_eq!(t.until(1_000), Some(1));
        clock.advance(Duration::from_micros(1));
        assert_eq!(t.until(1_000), None);
    }

    #[test]
    fn past_is_exact_on_a_manual_clock() {
        let clock = ManualClock::new();
        let t = Timebase::new(clock.clone());
        clock.advance(Duration::from_micros(1_000));
        assert_eq!(t.past(1_000), (false, 1_000));
        clock.advance(Duration::from_micros(1));
        assert_eq!(t.past(1_000), (true, 1_001));
    }

    #[test]
    fn past_on_the_system_clock_is_never_early() {
        let t = Timebase::new(SystemClock);
        for _ in 0..10_000 {
            let before = t.now_us();
            let (over, now) = t.past(before + 1_000_000);
            assert!(!over);
            assert!(now >= before, "{now} < {before}");
            let (over, _) = t.past(before.saturating_sub(1));
            assert!(over || before == 0);
        }
    }

    #[test]
    fn until_on_the_system_clock_is_never_short() {
        let t = Timebase::new(SystemClock);
        let deadline = t.now_us() + 50_000;
        let left = t.until(deadline).unwrap();
        assert!(t.now_us() + left >= deadline);
    }
}
