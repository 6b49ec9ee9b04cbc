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
/// use breaker_core::{Clock, SystemClock};
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
/// use std::time::Duration;
/// use breaker_core::{Clock, ManualClock};
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
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use breaker_core::{Clock, TokioClock};
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

/// A clock shared by all circuits of one policy, with the instant all their times are measured
/// from. Circuits keep times as microseconds since `origin` so they fit in atomics.
pub(crate) struct Timebase {
    clock: Box<dyn Clock>,
    origin: Instant,
}

impl Timebase {
    pub(crate) fn new(clock: Box<dyn Clock>) -> Self {
        let origin = clock.now();
        Timebase { clock, origin }
    }

    /// Microseconds since the origin; a clock reading before the origin counts as the origin.
    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        let d = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for Timebase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timebase").finish_non_exhaustive()
    }
}
