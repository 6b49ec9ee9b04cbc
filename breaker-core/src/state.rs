//! The circuit's whole state machine lives in one `u64`, so every transition is one
//! compare-and-swap and exactly one thread wins it:
//!
//! ```text
//!  63..61  60..53  52..48  47..32     31..16     15..0
//!  tag     gen     level   stay       successes  in-flight    (HalfOpen)
//!  tag     gen     level   deadline in µs since the circuit's origin  (Open)
//!  tag     gen     0       stay (low 32 bits; 47..32 unused)           (other states)
//! ```
//!
//! `gen` changes on every transition; a permit remembers the episode (tag, gen and stay) it was
//! issued under, so an outcome recorded after the circuit moved on can never touch the new state
//! (no probe-slot underflow, no stale failure reopening a fresh circuit). 8 bits of `gen` alone
//! repeat after 256 transitions, which operator flapping reaches in microseconds while a hung call
//! still holds its permit, so the stays permits are issued in (not Open) also carry a number:
//! closed-kind stays a per-circuit counter (repeats after 2^32 of them), half-open words a counter
//! of their own, bumped for the first word of each half-open stay and for each renewal by a probe
//! expiry (repeats after 2^16 half-open words, each of which waits out an open period or a probe
//! timeout). `level` is the backoff step, carried
//! from Open to HalfOpen and back so the open period compounds without a second word.

use std::fmt;

pub(crate) const CLOSED: u64 = 0;
pub(crate) const OPEN: u64 = 1;
pub(crate) const HALF_OPEN: u64 = 2;
pub(crate) const FORCED_OPEN: u64 = 3;
pub(crate) const DISABLED: u64 = 4;
pub(crate) const METRICS_ONLY: u64 = 5;
/// Never a circuit's: the tag of a ticket that stands for a rejection (`circuit/admit.rs`).
pub(crate) const REJECTED: u64 = 7;

pub(crate) const TAG_SHIFT: u32 = 61;
const GEN_SHIFT: u32 = 53;
const GEN_MASK: u64 = 0xff;
const LEVEL_SHIFT: u32 = 48;
const LEVEL_MASK: u64 = 0x1f;
/// Largest representable deadline: 2^48 µs ≈ 8.9 years after the circuit's origin.
pub(crate) const DEADLINE_MAX: u64 = (1 << LEVEL_SHIFT) - 1;
const HALF_MASK: u64 = 0xffff;
const SUCC_SHIFT: u32 = 16;
/// Tag and gen.
const EPISODE_MASK: u64 = !((1 << GEN_SHIFT) - 1);
const STAY_SHIFT: u32 = 32;
const HALF_STAY_MASK: u64 = 0xffff << STAY_SHIFT;
const OTHER_STAY_MASK: u64 = 0xffff_ffff;

#[inline]
pub(crate) fn tag(s: u64) -> u64 {
    s >> TAG_SHIFT
}
#[inline]
pub(crate) fn gen(s: u64) -> u64 {
    (s >> GEN_SHIFT) & GEN_MASK
}
#[inline]
pub(crate) fn level(s: u64) -> u32 {
    ((s >> LEVEL_SHIFT) & LEVEL_MASK) as u32
}
#[inline]
pub(crate) fn deadline(s: u64) -> u64 {
    s & DEADLINE_MAX
}
#[inline]
pub(crate) fn in_flight(s: u64) -> u32 {
    (s & HALF_MASK) as u32
}
#[inline]
pub(crate) fn successes(s: u64) -> u32 {
    ((s >> SUCC_SHIFT) & HALF_MASK) as u32
}
/// What identifies one stay in one state, and what a permit remembers: tag, gen and stay.
#[inline]
pub(crate) fn episode(s: u64) -> u64 {
    match tag(s) {
        HALF_OPEN => s & (EPISODE_MASK | HALF_STAY_MASK),
        OPEN => s & EPISODE_MASK,
        _ => s & (EPISODE_MASK | OTHER_STAY_MASK),
    }
}

/// `s` (just built by [`next`] or [`half_open`]) marked with the circuit's stay counter `stay`.
#[inline]
pub(crate) fn with_stay(s: u64, stay: u32) -> u64 {
    match tag(s) {
        HALF_OPEN => s | ((u64::from(stay) << STAY_SHIFT) & HALF_STAY_MASK),
        OPEN => s,
        _ => s | u64::from(stay),
    }
}

/// A state word for `tag`, one generation after `prev`.
#[inline]
pub(crate) fn next(prev: u64, tag: u64) -> u64 {
    let g = (gen(prev) + 1) & GEN_MASK;
    (tag << TAG_SHIFT) | (g << GEN_SHIFT)
}
#[inline]
pub(crate) fn open(prev: u64, level: u32, deadline_us: u64) -> u64 {
    next(prev, OPEN)
        | ((u64::from(level) & LEVEL_MASK) << LEVEL_SHIFT)
        | deadline_us.min(DEADLINE_MAX)
}
#[inline]
pub(crate) fn half_open(prev: u64, level: u32, in_flight: u32, successes: u32) -> u64 {
    next(prev, HALF_OPEN) | with_probes(level, in_flight, successes)
}
/// Same episode, new probe counters.
#[inline]
pub(crate) fn reprobe(s: u64, in_flight: u32, successes: u32) -> u64 {
    episode(s) | with_probes(level(s), in_flight, successes)
}
fn with_probes(level: u32, in_flight: u32, successes: u32) -> u64 {
    ((u64::from(level) & LEVEL_MASK) << LEVEL_SHIFT)
        | (u64::from(successes) & HALF_MASK) << SUCC_SHIFT
        | (u64::from(in_flight) & HALF_MASK)
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are recorded and may trip the circuit.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A limited number of probe calls pass; their outcomes close or reopen the circuit.
    HalfOpen,
    /// Rejects every call until [`reset`](crate::Circuit::reset): set by operations.
    ForcedOpen,
    /// Passes every call and records nothing.
    Disabled,
    /// Passes every call and records outcomes, but never trips.
    MetricsOnly,
}

impl State {
    pub(crate) fn from_tag(t: u64) -> State {
        match t {
            CLOSED => State::Closed,
            OPEN => State::Open,
            HALF_OPEN => State::HalfOpen,
            FORCED_OPEN => State::ForcedOpen,
            DISABLED => State::Disabled,
            _ => State::MetricsOnly,
        }
    }

    /// Lower-case name, as used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the names [`State::as_str`] gives (`"open"`, `"half_open"`, ...), in any ASCII case
/// and with `-` for `_` (`"Half-Open"`), e.g. an admin endpoint's `?state=open`.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::State;
///
/// assert_eq!("half_open".parse::<State>(), Ok(State::HalfOpen));
/// assert_eq!("Forced-Open".parse::<State>(), Ok(State::ForcedOpen));
/// let err = "shut".parse::<State>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown circuit state \"shut\": expected one of closed, open, half_open, forced_open, disabled, metrics_only"
/// );
/// ```
impl std::str::FromStr for State {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<State, ParseStateError> {
        State::ALL
            .into_iter()
            .find(|state| {
                let name = state.as_str();
                name.len() == s.len()
                    && name
                        .bytes()
                        .zip(s.bytes())
                        .all(|(n, c)| n == c.to_ascii_lowercase() || (n == b'_' && c == b'-'))
            })
            .ok_or_else(|| ParseStateError(s.into()))
    }
}

impl State {
    /// Every state, in the order of [`FromStr`](std::str::FromStr)'s list of expected names.
    const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ];
}

/// A string that names no [`State`]; says which names would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStateError(Box<str>);

impl fmt::Display for ParseStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown circuit state {:?}: expected one of ", self.0)?;
        for (i, state) in State::ALL.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{state}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseStateError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let c = next(0, CLOSED);
        let o = open(c, 7, 123_456);
        assert_eq!(
            (tag(o), gen(o), level(o), deadline(o)),
            (OPEN, 2, 7, 123_456)
        );
        let h = half_open(o, level(o), 3, 2);
        assert_eq!(
            (tag(h), gen(h), level(h), in_flight(h), successes(h)),
            (HALF_OPEN, 3, 7, 3, 2)
        );
        let h2 = reprobe(h, 1, 65535);
        assert_eq!(episode(h2), episode(h));
        let marked = with_stay(h, 0x1_2345);
        assert_eq!((in_flight(marked), successes(marked)), (3, 2));
        assert_ne!(episode(marked), episode(h));
        assert_eq!(episode(reprobe(marked, 0, 0)), episode(marked));
        let closed = with_stay(next(o, CLOSED), u32::MAX);
        assert_eq!((tag(closed), gen(closed)), (CLOSED, 3));
        assert_ne!(episode(closed), episode(next(o, CLOSED)));
        assert_eq!((in_flight(h2), successes(h2), level(h2)), (1, 65535, 7));
    }

    #[test]
    fn gen_wraps_and_deadline_saturates() {
        let mut s = 0;
        for _ in 0..256 {
            s = next(s, CLOSED);
        }
        assert_eq!(gen(s), 0);
        assert_eq!(tag(s), CLOSED);
        assert_eq!(deadline(open(s, 0, u64::MAX)), DEADLINE_MAX);
        assert_eq!(tag(open(s, 0, u64::MAX)), OPEN);
    }
}
