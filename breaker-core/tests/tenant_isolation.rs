//! Tenant isolation as a property: for any interleaving of operations on several circuits of one
//! registry, tenant B's circuit behaves exactly as in a registry where only B's operations (and
//! the passing of time) ever happened. The others include a different tenant on B's provider and
//! B's own tenant name on another provider.

use std::time::Duration;

use breaker_core::{Config, ManualClock, Outcome, Permit, Registry, Window};
use proptest::prelude::*;

const B: (&str, &str) = ("llm", "tenant-b");
const OTHERS: [(&str, &str); 2] = [("llm", "tenant-a"), ("search", "tenant-b")];

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Drop(usize),
    ForceOpen,
    Reset,
}

#[derive(Debug, Clone)]
enum Step {
    /// An operation on B (`None`) or on one of the others.
    On(Option<usize>, Op),
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignored)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::Acquire),
        5 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // The others get more traffic than B: the interesting case is a noisy neighbour.
        3 => (0..OTHERS.len(), op()).prop_map(|(i, op)| Step::On(Some(i), op)),
        2 => op().prop_map(|op| Step::On(None, op)),
        1 => (0u64..3_000_000).prop_map(Step::Advance),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    let base = || {
        Config::builder()
            .open_for(Duration::from_secs(1))
            .half_open_probes(2)
    };
    prop_oneof![
        (1u32..4).prop_map(move |n| base().consecutive_failures(n).build().unwrap()),
        (1u32..6).prop_map(move |n| base()
            .failure_rate(0.5, Window::Calls(n))
            .minimum_calls(1)
            .build()
            .unwrap()),
        Just(
            base()
                .failure_rate(0.5, Window::Time(Duration::from_secs(2)))
                .slow_calls(Duration::from_millis(300), 0.5)
                .minimum_calls(2)
                .build()
                .unwrap()
        ),
    ]
}

/// One registry and the permits its test holds, per circuit.
struct World {
    registry: Registry,
    clock: ManualClock,
    held: Vec<Vec<Permit>>,
}

impl World {
    fn new(config: &Config) -> Self {
        let clock = ManualClock::new();
        let registry = Registry::builder()
            .default_config(config.clone())
            .clock(clock.clone())
            .build();
        World {
            registry,
            clock,
            held: (0..=OTHERS.len()).map(|_| Vec::new()).collect(),
        }
    }

    /// Applies `op` to circuit `key`; returns what an acquire answered, for comparison.
    fn apply(&mut self, who: Option<usize>, op: &Op) -> Option<String> {
        let (provider, tenant) = who.map_or(B, |i| OTHERS[i]);
        let held = &mut self.held[who.map_or(OTHERS.len(), |i| i)];
        let circuit = self.registry.circuit(provider, tenant);
        match *op {
            Op::Acquire => match circuit.try_acquire() {
                Ok(p) => {
                    let probe = p.is_probe();
                    held.push(p);
                    return Some(format!("admitted, probe: {probe}"));
                }
                Err(e) => return Some(format!("{:?} {:?}", e.state(), e.retry_after())),
            },
            Op::Record(i, o) if !held.is_empty() => held.swap_remove(i % held.len()).record(o),
            Op::Drop(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
            Op::Record(..) | Op::Drop(_) => {}
            Op::ForceOpen => circuit.force_open(),
            Op::Reset => circuit.reset(),
        }
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn others_never_change_tenant_b(
        config in config(),
        steps in proptest::collection::vec(step(), 1..100),
    ) {
        let mut shared = World::new(&config);
        let mut alone = World::new(&config);
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Advance(us) => {
                    shared.clock.advance(Duration::from_micros(*us));
                    alone.clock.advance(Duration::from_micros(*us));
                }
                Step::On(Some(other), op) => {
                    shared.apply(Some(*other), op);
                }
                Step::On(None, op) => {
                    let got = shared.apply(None, op);
                    let want = alone.apply(None, op);
                    prop_assert_eq!(got, want, "step {}: B's answer", n);
                }
            }
            let got = shared.registry.circuit(B.0, B.1).metrics();
            let want = alone.registry.circuit(B.0, B.1).metrics();
            prop_assert_eq!(got, want, "step {}: B's metrics", n);
        }
    }
}
