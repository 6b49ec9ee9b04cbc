//! What a tenant circuit does for the provider-wide circuit above it (`provider/wide.rs`), and
//! what that circuit needs of a circuit's internals: admission through it while it is not
//! closed, outcomes pooled through the policy's [`PoolHook`](super::PoolHook), trips on the
//! pooled evidence. The state machine itself is the same for both.

use std::time::Duration;

use super::admit::Ticket;
use super::inner::{pooled, unpooled, with_pool, Inner, POOLED};
use super::{Circuit, Held, Permit, Policy};
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::event::Reason;
use crate::provider::pool::Pool;
use crate::state;
use crate::sync::{AtomicU64, Ordering};

impl Inner {
    /// Tells the provider's pooled window a success that this circuit has nothing to do with
    /// (the fast path of `record`). Only for circuits with the `POOLED` flag. Inlined, and no
    /// call while the provider circuit is closed: the policy's pointer to the pool, the pool's
    /// mode, a load and a store to the thread's stripe. The hook's slow path takes the rest (a
    /// paused pool, a pointer not cached yet).
    #[inline(always)]
    pub(super) fn pool_success(&self) {
        if !self
            .head
            .pooled()
            .is_some_and(|pool| pool.success(|| self.coarse_now_us()))
        {
            self.pool_slow(Outcome::Success);
        }
    }

    /// The clock of time windows, out of line: a count window's success pays no frame for it.
    #[inline(never)]
    fn coarse_now_us(&self) -> u64 {
        self.head.time.coarse_now_us()
    }

    /// Tells the provider's pooled window `outcome`; `false` when this circuit must not record
    /// it. Only for circuits with the `POOLED` flag.
    #[inline(never)]
    pub(super) fn pool(&self, outcome: Outcome) -> bool {
        match self.head.pool.get() {
            Some(_) if outcome == Outcome::Success => {
                self.head
                    .pooled()
                    .is_some_and(|pool| pool.success(|| self.coarse_now_us()))
                    || self.pool_slow(outcome)
            }
            Some(link) => link.hook.record(self.tenant.as_str(), outcome),
            None => true,
        }
    }

    /// The hook's [`record`](crate::circuit::PoolHook::record) of `outcome`.
    #[cold]
    #[inline(never)]
    fn pool_slow(&self, outcome: Outcome) -> bool {
        match self.head.pool.get() {
            Some(link) => {
                // Caches the window for the call path, once it exists.
                self.head.cache_pool();
                link.hook.record(self.tenant.as_str(), outcome)
            }
            None => true,
        }
    }
}

impl Permit {
    /// [`Permit::admit`] of the tenant circuit `circuit` below the provider-wide circuit
    /// `above`, if its provider has one: while `above` is closed, one more load (its state
    /// word). Inlined whole; the other path is out of line and hands back a hold and a ticket
    /// (in registers, not a whole `Result` through memory).
    #[inline(always)]
    pub(crate) fn admit_below<'a>(
        above: Option<&AtomicU64>,
        wide: impl FnOnce() -> Option<(&'a Circuit, &'a Pool)>,
        circuit: Held,
    ) -> Result<Permit, CircuitOpen> {
        if let Some(state) = above {
            if state::tag(state.load(Ordering::Acquire)) != state::CLOSED {
                if let Some((above, pool)) = wide() {
                    let (circuit, ticket) = admit_under(above, pool, circuit);
                    if ticket.is_rejection() {
                        return Err(circuit.reject(ticket));
                    }
                    return Ok(Permit { circuit, ticket });
                }
            }
        }
        Permit::admit(circuit)
    }
}

/// Admission of a call of the tenant circuit `tenant` while the provider-wide circuit `above` is
/// not closed: a rejection by it (a ticket of `tenant` marked provider-wide, counted on `above`
/// too), or its probe (a ticket of `above`, whose hold comes back: the outcome decides for the
/// whole provider and the tenant circuit records nothing), or, if `above` closed meanwhile, the
/// tenant's own admission. A tenant whose own circuit is not closed (its key revoked, say) never
/// probes for the provider.
#[cold]
#[inline(never)]
fn admit_under(above: &Circuit, pool: &Pool, tenant: Held) -> (Held, Ticket) {
    let own = state::tag(tenant.state.load(Ordering::Acquire));
    let inner = &*above.inner;
    if !matches!(
        state::tag(inner.state.load(Ordering::Acquire)),
        state::CLOSED | state::METRICS_ONLY | state::DISABLED
    ) {
        // Out of its closed stay (tripped by the pool, an operator or the fleet): successes
        // take the pool's slow path, which finds out when a new stay starts.
        pool.pause();
    }
    let ticket = if matches!(own, state::CLOSED | state::METRICS_ONLY | state::DISABLED) {
        inner.admit()
    } else {
        // Turned away without taking the provider's probe slot.
        let s = inner.state.load(Ordering::Acquire);
        match state::tag(s) {
            state::CLOSED | state::METRICS_ONLY | state::DISABLED => {
                let ticket = tenant.admit();
                return (tenant, ticket);
            }
            state::OPEN => match inner.head.time.until(state::deadline(s)) {
                Some(left) => Ticket::rejection(state::OPEN, left),
                None => Ticket::rejection(state::HALF_OPEN, CircuitOpen::UNKNOWN),
            },
            tag => Ticket::rejection(tag, CircuitOpen::UNKNOWN),
        }
    };
    if ticket.is_rejection() {
        inner.cold_record().rejected.incr();
        return (tenant, ticket.provider_wide());
    }
    if ticket.is_probe() {
        return (above.inner.clone().into_held(), ticket);
    }
    // Closed (or switched off by an operator) meanwhile: the ticket holds nothing.
    let ticket = tenant.admit();
    (tenant, ticket)
}

/// [`Ticket::issued`] of a rejection made by the provider-wide circuit (above the tag bits and
/// the bulkhead's `FULL`, bit 3, in admit.rs: a provider-wide rejection is not the bulkhead's).
const WIDE: u64 = 1 << 4;

impl Ticket {
    /// This rejection, made by the provider-wide circuit.
    fn provider_wide(self) -> Ticket {
        Ticket {
            issued: self.issued | WIDE,
            ..self
        }
    }

    /// Whether this rejection was made by the provider-wide circuit.
    pub(super) fn is_provider_wide(self) -> bool {
        self.issued & WIDE != 0
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

    /// Brings the circuit's `POOLED` flag (and `PLAIN_POOLED`) in line with its policy's pool
    /// hook.
    pub(crate) fn repool(&self) {
        let pooled = pooled(&self.inner.head);
        let _ = self
            .inner
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(with_pool(unpooled(f), pooled))
            });
    }

    /// The state word itself, for the provider's pointer to it (`Provider::wide_state`).
    pub(crate) fn state_atom(&self) -> &AtomicU64 {
        &self.inner.state
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
