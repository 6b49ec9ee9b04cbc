//! What a closed circuit's failure tells the fleet (`fleet.rs`): the evidence the replicas pool,
//! handed over from the failure path, never from a success.

use super::inner::Inner;
use crate::sync::Ordering;

impl Inner {
    /// Tells the registry's fleet, if it has one, that this closed circuit recorded a failure,
    /// with its failure streak after it. Cold: a success never comes here, so a clean circuit
    /// pays nothing, fleet or not; a failure pays one test without a fleet.
    #[cold]
    #[inline(never)]
    pub(super) fn share_failure(&self) {
        if let Some(events) = &self.head.events {
            events.failed(
                self.head.provider,
                self.tenant.as_str(),
                self.consecutive.load(Ordering::Relaxed),
            );
        }
    }
}
