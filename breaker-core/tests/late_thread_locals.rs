//! Calls from a thread-local destructor that runs after the crate's own thread-locals are gone
//! (a pool's or a logger's, at thread exit): the permit takes its slot from a shared pool instead
//! of aborting the process. Covered: a handle's `try_acquire`, and a warm call site's
//! `acquire_cached` (what `#[circuit_breaker]` expands to). `Registry::acquire`, `get` and
//! `circuit` look the provider up in papaya's map, whose pin needs seize's thread-local: not
//! covered yet.

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
