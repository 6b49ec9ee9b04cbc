//! The store-load ordering between a pin and an advance (see `epoch.rs`): on Linux,
//! `membarrier(PRIVATE_EXPEDITED)` on the advancer's side and a compiler fence on the pin's;
//! elsewhere, and under loom, `SeqCst` fences on both.

use std::sync::atomic::compiler_fence;
use std::sync::Once;

use crate::sync::{fence, Ordering};

/// Whether `membarrier(PRIVATE_EXPEDITED)` is registered for this process; decided once,
/// before the first pin (every thread's first slot is taken on the slow path, which
/// decides it). Never under loom, so not one of loom's atomics.
static ASYMMETRIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static DETECT: Once = Once::new();

#[cfg(all(any(target_os = "linux", target_os = "android"), not(loom)))]
mod sys {
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_int) }
    }

    pub(super) fn register() -> bool {
        let supported = membarrier(QUERY);
        supported >= 0
            && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
            && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    pub(super) fn barrier() -> bool {
        membarrier(PRIVATE_EXPEDITED) == 0
    }
}

/// Elsewhere, and under loom (which does not model membarrier): `SeqCst` fences on both
/// sides.
#[cfg(not(all(any(target_os = "linux", target_os = "android"), not(loom))))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }
    pub(super) fn barrier() -> bool {
        false
    }
}

pub(crate) fn detect() {
    DETECT.call_once(|| ASYMMETRIC.store(sys::register(), Ordering::Relaxed));
}

#[inline(always)]
pub(crate) fn light() {
    if ASYMMETRIC.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The advancer's side; `false` if it could not be made, and then this attempt must not
/// advance. With membarrier registered, pins fence only the compiler and rely on the barrier
/// here: a fence on this side alone does not order their stores before our loads. The
/// kernel keeps a registration, but the barrier itself can fail (`ENOMEM`); the next
/// `collect` tries again.
#[must_use]
pub(crate) fn heavy() -> bool {
    detect();
    if ASYMMETRIC.load(Ordering::Relaxed) {
        return sys::barrier() || refused();
    }
    fence(Ordering::SeqCst);
    true
}

#[cold]
fn refused() -> bool {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "breaker: membarrier(PRIVATE_EXPEDITED) failed; what registries unlink is kept \
             until a later barrier succeeds"
        )
    });
    false
}
