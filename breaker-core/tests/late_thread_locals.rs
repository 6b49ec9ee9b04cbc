//! Calls from a thread-local destructor that runs after the crate's own thread-locals and
//! papaya's (seize's) are gone (a pool's or a logger's, at thread exit). Before, a registry
//! lookup there aborted the process ("thread local panicked on drop"): papaya's pin panicked on
//! seize's destroyed thread-local. Now a permit takes its slot from a shared pool, and the
//! registry contains seize's one panic and pins again (the panic hook still prints it).

use std::cell::RefCell;
use std::sync::mpsc;
use std::sync::Arc;

use breaker_core::{Circuit, Config, ProviderCache, Registry};

/// What a destructor does, and where it reports whether it worked.
type Late = Box<dyn FnOnce() -> bool>;

struct RunOnDrop(Option<Late>, mpsc::Sender<bool>);

impl Drop for RunOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = self.1.send(f());
        }
    }
}

thread_local! {
    /// Registered before anything of the crate's on the thread, so destroyed after.
    static LATE: RefCell<Option<RunOnDrop>> = const { RefCell::new(None) };
}

/// Runs `warm` on a new thread (which registers the crate's thread-locals after `LATE`'s) and
/// `late` from `LATE`'s destructor at that thread's exit; returns what `late` said.
fn at_thread_exit(
    warm: impl FnOnce() + Send + 'static,
    late: impl FnOnce() -> bool + 'static + Send,
) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        LATE.with(|l| *l.borrow_mut() = Some(RunOnDrop(Some(Box::new(late)), tx)));
        warm();
    })
    .join()
    .unwrap();
    rx.recv().unwrap()
}

#[test]
fn a_circuit_works_from_a_late_thread_local_destructor() {
    let circuit = Circuit::new(Config::default());
    let (warm, late) = (circuit.clone(), circuit);
    let ok = at_thread_exit(
        move || warm.try_acquire().unwrap().success(),
        move || match late.try_acquire() {
            Ok(p) => {
                p.success();
                true
            }
            Err(_) => false,
        },
    );
    assert!(ok, "the permit from the destructor");
}

#[test]
fn a_warm_call_site_works_from_a_late_thread_local_destructor() {
    static SITE: ProviderCache = ProviderCache::new();
    let registry = Arc::new(Registry::default());
    let (warm, late) = (registry.clone(), registry);
    let ok = at_thread_exit(
        move || {
            warm.acquire_cached(&SITE, "p", "t", None)
                .unwrap()
                .success()
        },
        move || match late.acquire_cached(&SITE, "p", "t", None) {
            Ok(p) => {
                p.success();
                true
            }
            Err(_) => false,
        },
    );
    assert!(ok, "the permit from the destructor");
}

#[test]
fn registry_lookups_work_from_a_late_thread_local_destructor() {
    let registry = Arc::new(Registry::default());
    registry.circuit("p", "t");
    let (warm, late) = (registry.clone(), registry);
    let ok = at_thread_exit(
        // Registers papaya's (seize's) thread-local and the crate's after `LATE`'s.
        move || warm.acquire("p", "t", None).unwrap().success(),
        move || {
            let acquired = late.acquire("p", "t", None).map(|p| p.success()).is_ok();
            let found = late.get("p", "t").is_some();
            let made = late.circuit("p", "new").tenant() == "new";
            acquired && found && made
        },
    );
    assert!(ok, "acquire, get and circuit from the destructor");
}
