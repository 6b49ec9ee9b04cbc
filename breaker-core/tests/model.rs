//! Model-based test of the circuit: random sequences of acquire / success / failure / ignore / drop
//! / clock advance / force-open / reset / retuning (`Registry::configure`) run against the real lock-free [`Circuit`] and against a
//! tiny sequential model written here from the documented behaviour. After every step the state,
//! the rejection (its state and `retry_after`) and every metric must agree.
//!
//! The model is deliberately naive (a `VecDeque` for the count window, a list of timestamped
//! records for the time window, an unbounded episode counter) so that it is obviously right and
//! shares no code with the packed, bucketed, atomic implementation.

use std::collections::VecDeque;
use std::time::Duration;

use breaker_core::{Config, ManualClock, Outcome, Permit, Registry, State, Window};
use proptest::prelude::*;

/// The policy under test, in the model's own terms.
#[derive(Debug, Clone)]
struct Spec {
    consecutive: Option<u32>,
    failure_rate: Option<f64>,
    /// (threshold µs, rate)
    slow: Option<(u64, f64)>,
    window: Window,
    minimum_calls: Option<u32>,
    open_for_ms: u64,
    max_factor: u64,
    probes: u32,
    successes: Option<u32>,
    on_abandoned: Outcome,
    probe_timeout_ms: u64,
}

impl Spec {
    fn config(&self) -> Config {
        let mut b = Config::builder()
            .open_for(Duration::from_millis(self.open_for_ms))
            .max_open_for(Duration::from_millis(self.open_for_ms * self.max_factor))
            .backoff_multiplier(2.0)
            .half_open_probes(self.probes)
            .on_abandoned(self.on_abandoned)
            .probe_timeout(Duration::from_millis(self.probe_timeout_ms))
            .window(self.window);
        if let Some(n) = self.consecutive {
            b = b.consecutive_failures(n);
        }
        if let Some(r) = self.failure_rate {
            b = b.failure_rate(r, self.window);
        }
        if let Some((t, r)) = self.slow {
            b = b.slow_calls(Duration::from_micros(t), r);
        }
        if let Some(m) = self.minimum_calls {
            b = b.minimum_calls(m);
        }
        if let Some(s) = self.successes {
            b = b.half_open_successes(s);
        }
        b.build().expect("strategies only generate valid configs")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    Closed,
    Open {
        deadline: u64,
        level: u32,
    },
    HalfOpen {
        level: u32,
        in_flight: u32,
        successes: u32,
    },
    ForcedOpen,
}

#[derive(Debug, Clone, Copy)]
struct MPermit {
    episode: u64,
    /// When it was admitted, if slow calls were a policy then.
    started: Option<u64>,
    /// Its number among the calls in flight, when it is one of them (admitted closed with the
    /// slow-call policy: see `Model::in_flight`).
    tracked: Option<u64>,
}

/// The reference: one thread, plain fields, behaviour as documented in issue 2 and the rustdoc.
struct Model {
    spec: Spec,
    config: Config,
    now: u64,
    state: MState,
    /// Bumped on every transition; a permit belongs to the episode it was issued in.
    episode: u64,
    consecutive: u32,
    /// Count window: the last n outcomes as (failure, slow).
    calls: VecDeque<(bool, bool)>,
    /// Time window: (bucket index, failure, slow) of every outcome since the last clear.
    timed: Vec<(u64, bool, bool)>,
    rejected: u64,
    times_opened: u32,
    /// When the latest probe of the current half-open stay was admitted.
    latest_probe: u64,
    /// In-flight detection (issue 20): the epoch length, fixed by the first tracked admission
    /// (half the slow-call threshold).
    epoch_us: Option<u64>,
    /// Calls in flight admitted closed with the slow-call policy: (number, start epoch).
    in_flight: Vec<(u64, u64)>,
    /// Calls counted while in flight (found overdue) or forgotten by a clear: their own
    /// outcome is not recorded.
    spent: Vec<u64>,
    next_id: u64,
    /// The epoch of the latest tracked admission, and an epoch whose later admissions go
    /// untracked: one that a clear forgot after some of its calls started.
    last_entered: Option<u64>,
    dead_epoch: Option<u64>,
}

#[derive(Debug, PartialEq)]
struct Rejection {
    state: State,
    retry_after: Option<Duration>,
}

impl Model {
    fn new(spec: Spec) -> Self {
        let config = spec.config();
        Model {
            spec,
            config,
            now: 0,
            state: MState::Closed,
            episode: 0,
            consecutive: 0,
            calls: VecDeque::new(),
            timed: Vec::new(),
            rejected: 0,
            times_opened: 0,
            latest_probe: 0,
            epoch_us: None,
            in_flight: Vec::new(),
            spent: Vec::new(),
            next_id: 0,
            last_entered: None,
            dead_epoch: None,
        }
    }

    /// A closed admission with the slow-call policy: calls started at least `n` epochs ago
    /// (certainly older than the threshold) and still in flight are counted as slow now, once;
    /// this call joins them.
    fn admit_in_flight(&mut self, p: &mut MPermit) {
        let (Some((threshold, _)), Some(started)) = (self.spec.slow, p.started) else {
            return;
        };
        let epoch_us = *self.epoch_us.get_or_insert((threshold / 2).max(1));
        let e = started / epoch_us;
        let n = (threshold.div_ceil(epoch_us) + 1).min(7);
        let (overdue, young): (Vec<_>, Vec<_>) =
            self.in_flight.iter().partition(|&&(_, k)| e - k >= n);
        self.in_flight = young;
        self.spent.extend(overdue.iter().map(|&(id, _)| id));
        if self.dead_epoch != Some(e) {
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.push((id, e));
            p.tracked = Some(id);
            self.last_entered = Some(e);
        }
        if !overdue.is_empty() && self.has_window() {
            for _ in 0..overdue.len() {
                self.push_outcome(false, true);
            }
            if self.rates_exceeded() {
                self.trip(0);
            }
        }
    }

    fn push_outcome(&mut self, failure: bool, slow: bool) {
        match self.spec.window {
            Window::Calls(n) => {
                self.calls.push_back((failure, slow));
                if self.calls.len() > n as usize {
                    self.calls.pop_front();
                }
            }
            Window::Time(_) => {
                let b = self.now / self.bucket_width();
                self.timed.push((b, failure, slow));
            }
        }
    }

    fn rates_exceeded(&self) -> bool {
        let (calls, failures, slows) = self.totals();
        let rate = |x: u32| x as f64 / calls as f64;
        calls >= self.config.minimum_calls()
            && (self.spec.failure_rate.is_some_and(|r| rate(failures) >= r)
                || self.spec.slow.is_some_and(|(_, r)| rate(slows) >= r))
    }

    /// A retuning: everything is kept but a window of another kind or size, which restarts, and
    /// the failure streak when the new config has no consecutive policy (successes do not break
    /// a streak nobody counts, so one kept would come back stale with a later policy).
    fn retune(&mut self, spec: Spec) {
        let window = |s: &Spec| (s.failure_rate.is_some() || s.slow.is_some()).then_some(s.window);
        if window(&self.spec) != window(&spec) {
            self.calls.clear();
            self.timed.clear();
        }
        if spec.consecutive.is_none() {
            self.consecutive = 0;
        }
        self.config = spec.config();
        self.spec = spec;
    }

    fn has_window(&self) -> bool {
        self.spec.failure_rate.is_some() || self.spec.slow.is_some()
    }

    fn goto(&mut self, s: MState) {
        self.state = s;
        self.episode += 1;
    }

    fn clear(&mut self) {
        self.consecutive = 0;
        self.calls.clear();
        self.timed.clear();
        // The calls in flight are forgotten (their stay is over); so is the current epoch, if
        // some of them started in it.
        self.spent
            .extend(self.in_flight.drain(..).map(|(id, _)| id));
        if let Some(epoch_us) = self.epoch_us {
            if self.last_entered == Some(self.now / epoch_us) {
                self.dead_epoch = self.last_entered;
            }
        }
    }

    /// `open_for × 2^level`, capped: whole milliseconds, so exact in any arithmetic.
    fn period_us(&self, level: u32) -> u64 {
        let max = self.spec.open_for_ms * self.spec.max_factor;
        (self.spec.open_for_ms << level.min(20)).min(max) * 1000
    }

    fn trip(&mut self, level: u32) {
        self.trip_for(level, self.period_us(level));
    }

    /// A provider's `Retry-After`, capped at `max_open_for`, in µs.
    fn asked(&self, d: Duration) -> u64 {
        (d.as_micros() as u64).min(self.spec.open_for_ms * self.spec.max_factor * 1000)
    }

    fn trip_for(&mut self, level: u32, period_us: u64) {
        let deadline = self.now + period_us;
        self.goto(MState::Open { deadline, level });
        self.times_opened += 1;
        self.consecutive = 0;
    }

    fn acquire(&mut self) -> Result<MPermit, Rejection> {
        let permit = |m: &Model| MPermit {
            episode: m.episode,
            started: m.spec.slow.is_some().then_some(m.now),
            tracked: None,
        };
        match self.state {
            MState::Closed => {
                let mut p = permit(self);
                self.admit_in_flight(&mut p);
                Ok(p)
            }
            MState::Open { deadline, level } => {
                if self.now < deadline {
                    self.rejected += 1;
                    return Err(Rejection {
                        state: State::Open,
                        retry_after: Some(Duration::from_micros(deadline - self.now)),
                    });
                }
                self.goto(MState::HalfOpen {
                    level,
                    in_flight: 1,
                    successes: 0,
                });
                self.latest_probe = self.now;
                Ok(permit(self))
            }
            MState::HalfOpen {
                level,
                in_flight,
                successes,
            } => {
                if in_flight >= self.spec.probes
                    && self.now - self.latest_probe >= self.spec.probe_timeout_ms * 1000
                {
                    // Every probe out started no later than the latest: all are let go, each
                    // counted as `on_abandoned`, in a new episode.
                    match self.spec.on_abandoned {
                        Outcome::Success
                            if successes + in_flight >= self.config.half_open_successes() =>
                        {
                            self.clear();
                            self.goto(MState::Closed);
                        }
                        Outcome::Success => self.goto(MState::HalfOpen {
                            level,
                            in_flight: 0,
                            successes: successes + in_flight,
                        }),
                        Outcome::Ignored => self.goto(MState::HalfOpen {
                            level,
                            in_flight: 0,
                            successes,
                        }),
                        Outcome::RetryAfter(d) if !d.is_zero() => {
                            self.trip_for((level + 1).min(31), self.asked(d))
                        }
                        _ => self.trip((level + 1).min(31)),
                    }
                    return self.acquire();
                }
                if in_flight >= self.spec.probes {
                    self.rejected += 1;
                    return Err(Rejection {
                        state: State::HalfOpen,
                        retry_after: None,
                    });
                }
                self.state = MState::HalfOpen {
                    level,
                    in_flight: in_flight + 1,
                    successes,
                };
                self.latest_probe = self.now;
                Ok(permit(self))
            }
            MState::ForcedOpen => {
                self.rejected += 1;
                Err(Rejection {
                    state: State::ForcedOpen,
                    retry_after: None,
                })
            }
        }
    }

    fn bucket_width(&self) -> u64 {
        match self.spec.window {
            Window::Time(d) => (d.as_micros() as u64 / 16).max(1),
            Window::Calls(_) => 1,
        }
    }

    /// (calls, failures, slow) in the window now.
    fn totals(&self) -> (u32, u32, u32) {
        if !self.has_window() {
            return (0, 0, 0);
        }
        let sum = |it: &mut dyn Iterator<Item = (bool, bool)>| {
            it.fold((0, 0, 0), |(c, f, s), (fl, sl)| {
                (c + 1, f + u32::from(fl), s + u32::from(sl))
            })
        };
        match self.spec.window {
            Window::Calls(_) => sum(&mut self.calls.iter().copied()),
            Window::Time(_) => {
                let newest = self.now / self.bucket_width();
                let oldest = newest.saturating_sub(15);
                sum(&mut self
                    .timed
                    .iter()
                    .filter(|(b, _, _)| *b >= oldest && *b <= newest)
                    .map(|&(_, f, s)| (f, s)))
            }
        }
    }

    fn record(&mut self, p: MPermit, outcome: Outcome) {
        if let Some(id) = p.tracked {
            if let Some(i) = self.spent.iter().position(|&s| s == id) {
                // Counted while in flight (or forgotten): not again.
                self.spent.swap_remove(i);
                return;
            }
            self.in_flight.retain(|&(t, _)| t != id);
        }
        if p.episode != self.episode {
            return; // the stay it was issued in is over
        }
        let slow = self
            .spec
            .slow
            .zip(p.started)
            .is_some_and(|((t, _), started)| self.now - started > t);
        match self.state {
            MState::Closed => {
                let failure = match outcome {
                    Outcome::Ignored => return,
                    Outcome::Success => false,
                    Outcome::Failure | Outcome::RetryAfter(_) => true,
                };
                let mut trip = false;
                if let Some(n) = self.config.consecutive_failures() {
                    if failure {
                        self.consecutive += 1;
                        trip = self.consecutive >= n;
                    } else {
                        self.consecutive = 0;
                    }
                }
                if self.has_window() {
                    match self.spec.window {
                        Window::Calls(n) => {
                            self.calls.push_back((failure, slow));
                            if self.calls.len() > n as usize {
                                self.calls.pop_front();
                            }
                        }
                        Window::Time(_) => {
                            let b = self.now / self.bucket_width();
                            self.timed.push((b, failure, slow));
                        }
                    }
                    let (calls, failures, slows) = self.totals();
                    let rate = |x: u32| x as f64 / calls as f64;
                    if calls >= self.config.minimum_calls() {
                        trip |= self.spec.failure_rate.is_some_and(|r| rate(failures) >= r);
                        trip |= self.spec.slow.is_some_and(|(_, r)| rate(slows) >= r);
                    }
                }
                match outcome {
                    Outcome::RetryAfter(d) if !d.is_zero() => self.trip_for(0, self.asked(d)),
                    _ if trip => self.trip(0),
                    _ => {}
                }
            }
            MState::HalfOpen {
                level,
                in_flight,
                successes,
            } => {
                let outcome = if slow && outcome == Outcome::Success {
                    Outcome::Failure
                } else {
                    outcome
                };
                match outcome {
                    Outcome::RetryAfter(d) if !d.is_zero() => {
                        self.trip_for((level + 1).min(31), self.asked(d))
                    }
                    Outcome::Failure | Outcome::RetryAfter(_) => self.trip((level + 1).min(31)),
                    Outcome::Ignored => {
                        self.state = MState::HalfOpen {
                            level,
                            in_flight: in_flight - 1,
                            successes,
                        }
                    }
                    Outcome::Success if successes + 1 >= self.config.half_open_successes() => {
                        self.clear();
                        self.goto(MState::Closed);
                    }
                    Outcome::Success => {
                        self.state = MState::HalfOpen {
                            level,
                            in_flight: in_flight - 1,
                            successes: successes + 1,
                        }
                    }
                }
            }
            // No permit is ever issued in these states.
            MState::Open { .. } | MState::ForcedOpen => unreachable!("permit issued while open"),
        }
    }

    fn state(&self) -> State {
        match self.state {
            MState::Closed => State::Closed,
            MState::Open { deadline, .. } if self.now >= deadline => State::HalfOpen,
            MState::Open { .. } => State::Open,
            MState::HalfOpen { .. } => State::HalfOpen,
            MState::ForcedOpen => State::ForcedOpen,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self.state {
            MState::Open { deadline, .. } => {
                Some(Duration::from_micros(deadline.saturating_sub(self.now)))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Reports on the live permit at this index (modulo the number held).
    Record(usize, Outcome),
    Drop(usize),
    Advance(u64),
    ForceOpen,
    Reset,
    /// `Registry::configure` with another config: state, streak and probes kept, the window
    /// restarted when its kind or size changes.
    Retune(Spec),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignored),
        // The provider's time: zero (a plain failure), shorter and longer than the cap.
        Just(Outcome::RetryAfter(Duration::ZERO)),
        Just(Outcome::RetryAfter(Duration::from_micros(700_001))),
        Just(Outcome::RetryAfter(Duration::from_secs(100))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Acquire),
        6 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        // Mostly short steps (inside one time-window bucket, around the slow threshold), sometimes
        // whole open periods; exactly the slow threshold and the bucket width to hit the edges.
        3 => prop_oneof![
            Just(50_000u64),
            Just(10_000),
            0u64..20_000,
            0u64..200_000,
            0u64..5_000_000
        ]
        .prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
        1 => spec().prop_map(Op::Retune),
    ]
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)]
}

fn breaker_common() -> impl Strategy<Value = (u64, u64, u32, Option<u32>, Outcome, u64)> {
    (
        prop_oneof![Just(100u64), Just(1000), Just(2500)],
        1u64..6,
        1u32..4,
        proptest::option::of(1u32..4),
        outcome(),
        // Probe timeouts a few steps long, so that runs let probes go.
        prop_oneof![Just(50u64), Just(1000), Just(4000)],
    )
}

fn spec() -> impl Strategy<Value = Spec> {
    let count_window = (1u32..7).prop_flat_map(|n| (Just(Window::Calls(n)), 1..=n));
    // 160 ms in 16 buckets of 10 ms.
    let time_window = (Just(Window::Time(Duration::from_millis(160))), 1u32..6);
    let window = prop_oneof![count_window, time_window];
    let policy = prop_oneof![
        // Consecutive failures only.
        (1u32..5).prop_map(|n| (Some(n), None, None, Window::Calls(1), None)),
        // Failure rate, either window, sometimes with the consecutive policy beside it.
        (window.clone(), rate(), proptest::option::of(1u32..5)).prop_map(|((w, m), r, c)| (
            c,
            Some(r),
            None,
            w,
            Some(m)
        )),
        // Slow calls (threshold 50 ms), with or without a failure rate.
        (window, rate(), proptest::option::of(rate())).prop_map(|((w, m), r, f)| (
            None,
            f,
            Some((50_000, r)),
            w,
            Some(m)
        )),
    ];
    (policy, breaker_common()).prop_map(
        |((consecutive, failure_rate, slow, window, minimum_calls), common)| {
            let (open_for_ms, max_factor, probes, successes, on_abandoned, probe_timeout_ms) =
                common;
            Spec {
                consecutive,
                failure_rate,
                slow,
                window,
                minimum_calls,
                open_for_ms,
                max_factor,
                probes,
                successes,
                on_abandoned,
                probe_timeout_ms,
            }
        },
    )
}

fn check(spec: Spec, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    // A registry's circuit, so that `Op::Retune` can retune it as operations would.
    let registry = Registry::builder().clock(clock.clone()).build();
    registry.configure("p", spec.config());
    let circuit = registry.circuit("p", "t");
    let mut model = Model::new(spec);
    let mut held: Vec<(Permit, MPermit)> = Vec::new();

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire => match (circuit.try_acquire(), model.acquire()) {
                (Ok(p), Ok(m)) => {
                    let probe = matches!(model.state, MState::HalfOpen { .. });
                    prop_assert_eq!(p.is_probe(), probe, "step {}: probe", step);
                    held.push((p, m));
                }
                (Err(e), Err(r)) => {
                    let got = Rejection {
                        state: e.state(),
                        retry_after: e.retry_after(),
                    };
                    prop_assert_eq!(got, r, "step {}: rejection", step);
                }
                (real, model) => {
                    return Err(TestCaseError::fail(format!(
                        "step {step}: circuit {:?} but model {:?}",
                        real.map(|_| ()),
                        model.map(|_| ())
                    )))
                }
            },
            Op::Record(i, outcome) if !held.is_empty() => {
                let (p, m) = held.swap_remove(i % held.len());
                p.record(outcome);
                model.record(m, outcome);
            }
            Op::Drop(i) if !held.is_empty() => {
                let (p, m) = held.swap_remove(i % held.len());
                drop(p);
                let abandoned = model.config.on_abandoned();
                model.record(m, abandoned);
            }
            Op::Record(..) | Op::Drop(_) => {}
            Op::Advance(us) => {
                clock.advance(Duration::from_micros(us));
                model.now += us;
            }
            Op::ForceOpen => {
                circuit.force_open();
                model.goto(MState::ForcedOpen);
            }
            Op::Reset => {
                circuit.reset();
                model.clear();
                model.goto(MState::Closed);
            }
            Op::Retune(spec) => {
                registry.configure("p", spec.config());
                model.retune(spec);
            }
        }

        let m = circuit.metrics();
        let (calls, failures, slow) = model.totals();
        prop_assert_eq!(circuit.state(), model.state(), "step {}: state", step);
        prop_assert_eq!(m.state, model.state(), "step {}: metrics.state", step);
        prop_assert_eq!(
            circuit.retry_after(),
            model.retry_after(),
            "step {}: retry_after",
            step
        );
        prop_assert_eq!(m.retry_after, model.retry_after(), "step {}", step);
        prop_assert_eq!(m.rejected, model.rejected, "step {}: rejected", step);
        prop_assert_eq!(m.times_opened, model.times_opened, "step {}", step);
        prop_assert_eq!(
            m.consecutive_failures,
            model.consecutive,
            "step {}: consecutive",
            step
        );
        prop_assert_eq!(
            (m.calls_in_window, m.failures_in_window, m.slow_in_window),
            (calls, failures, slow),
            "step {}: window",
            step
        );
    }
    Ok(())
}

proptest! {
    // Each case is up to 80 steps on one circuit; 512 cases run in about a second in debug.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn circuit_agrees_with_the_sequential_model(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        check(spec, ops)?;
    }
}
