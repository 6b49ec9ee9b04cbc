//! What a tenant circuit does for the provider-wide circuit above it (`provider/wide.rs`), and
//! what that circuit needs of a circuit's internals: admission through it while it is not
//! closed, outcomes pooled through the policy's [`PoolHook`](super::PoolHook), trips on the
//! pooled evidence. The state machine itself is the same for both.

use std::time::Duration;

use super::admit::Ticket;
use super::inner::{pooled, Inner, POOLED};
use super::{Circuit, Held, Permit, Policy};
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::event::Reason;
use crate::state;
use crate::sync::Ordering;

impl Inner {
    /// Tells the provider's pooled window `outcome`; `false` when this circuit must not record
    /// it. Only for circuits with the `POOLED` flag.
    #[cold]
    #[inline(never)]
    pub(super) fn pool(&self, outcome: Outcome) -> bool {
        match self.head.pool.get() {
            Some(pool) => pool.record(self.tenant.as_str(), outcome),
            None => true,
        }
    }
}

impl Permit {
    /// Admission of a call of the tenant circuit `tenant` while the provider-wide circuit
    /// `above` is not closed: rejected by it, or its probe (a permit of `above`, so the outcome
    /// decides for the whole provider and the tenant circuit records nothing), or, if `above`
    /// closed meanwhile, the tenant's own admission. A tenant whose own circuit is not closed
    /// (its key revoked, say) never probes for the provider.
    #[cold]
    #[inline(never)]
    pub(crate) fn admit_under(above: &Circuit, tenant: Held) -> Result<Permit, CircuitOpen> {
        let own = state::tag(tenant.state.load(Ordering::Acquire));
        let inner = &*above.inner;
        let ticket = if matches!(own, state::CLOSED | state::METRICS_ONLY | state::DISABLED) {
            inner.admit()
        } else {
            // Turned away without taking the provider's probe slot.
            let s = inner.state.load(Ordering::Acquire);
            match state::tag(s) {
                state::CLOSED | state::METRICS_ONLY | state::DISABLED => {
                    return Permit::admit(tenant)
                }
                state::OPEN => match inner.head.time.until(state::deadline(s)) {
                    Some(left) => Ticket::rejection(state::OPEN, left),
                    None => Ticket::rejection(state::HALF_OPEN, CircuitOpen::UNKNOWN),
                },
                tag => Ticket::rejection(tag, CircuitOpen::UNKNOWN),
            }
        };
        if ticket.is_rejection() {
            return Err(inner.reject(ticket).provider_wide(tenant.tenant.clone()));
        }
        if ticket.is_probe() {
            return Ok(Permit {
                circuit: above.inner.clone().into_held(),
                ticket,
            });
        }
        // Closed (or switched off by an operator) meanwhile: the ticket holds nothing.
        Permit::admit(tenant)
    }
}

impl Circuit {
    /// The state word, for the provider-wide circuit's checks.
    #[inline]
    pub(crate) fn state_word(&self) -> u64 {
        self.inner.state.load(Ordering::Acquire)
    }

    /// Trips the circuit from the closed word `s` for `reason`: for the config's open period,
    /// or for `asked` (a `Retry-After`, capped at `max_open_for`). Only the CAS winner trips.
    pub(crate) fn open_from(&self, s: u64, reason: Reason, asked: Option<Duration>) -> bool {
        match asked {
            Some(d) => {
                let period = self.inner.asked_period(d);
                self.inner.trip_for(s, 0, period, reason)
            }
            None => self.inner.trip(s, 0, reason),
        }
    }

    /// Brings the circuit's `POOLED` flag in line with its policy's pool hook.
    pub(crate) fn repool(&self) {
        if pooled(&self.inner.head) != 0 {
            self.inner.flags.fetch_or(POOLED, Ordering::Relaxed);
        } else {
            self.inner.flags.fetch_and(!POOLED, Ordering::Relaxed);
        }
    }

    /// Whether the `POOLED` flag differs from what the policy's pool hook says.
    pub(crate) fn pool_flag_is_stale(&self) -> bool {
        (self.inner.flags.load(Ordering::Relaxed) & POOLED) != pooled(&self.inner.head)
    }

    /// Links `policy` at the end of the circuit's chain and runs on it (a retuning of a circuit
    /// that no provider table holds: the provider-wide one).
    pub(crate) fn retune_to(&self, policy: &std::sync::Arc<Policy>) {
        self.inner.head.supersede(policy);
        self.inner.retune();
    }
}
