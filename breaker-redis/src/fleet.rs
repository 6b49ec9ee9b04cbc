//! [`RedisFleet`]: the [`Fleet`] a registry calls. It only queues, never waits: the background
//! task (`task.rs`) talks to the store.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use breaker_core::fleet::{Change, Evidence, Fleet, FleetLink};
use breaker_core::Reason;
use tokio::sync::{mpsc, oneshot};

use crate::evidence::Failed;
use crate::health::{Count, FleetHealth};
use crate::inspect::FleetInspector;
use crate::pending::Queued;

/// Shares circuit openings and closings between the replicas of a service through Redis or
/// Valkey; attach it with `RegistryBuilder::fleet`. Built by [`RedisFleet::builder`].
pub struct RedisFleet {
    pub(crate) health: FleetHealth,
    pub(crate) inspector: FleetInspector,
    pub(crate) queue: mpsc::Sender<Queued>,
    /// Closed circuits' failures, for the evidence the fleet pools; `None` when it pools none
    /// (`RedisFleetBuilder::pool_evidence(false)`).
    pub(crate) failed: Option<mpsc::Sender<Failed>>,
    pub(crate) link: Mutex<Option<oneshot::Sender<FleetLink>>>,
    /// Dropping the fleet (with the last circuit of its registry) ends its background task.
    pub(crate) _stop: oneshot::Sender<()>,
}

impl RedisFleet {
    /// A handle on the fleet's connection state and counters, usable after the fleet has moved
    /// into its registry.
    pub fn health(&self) -> FleetHealth {
        self.health.clone()
    }

    /// A handle that reads what the store holds of some circuits (which replica opened each,
    /// which one holds its probe lease), for an operator's page; usable after the fleet has
    /// moved into its registry. Its reads go on a connection of their own, made at the first.
    pub fn inspector(&self) -> FleetInspector {
        self.inspector.clone()
    }
}

impl Fleet for RedisFleet {
    fn attach(&self, link: FleetLink) {
        let sender = self
            .link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(link);
        }
    }

    fn publish(&self, change: &Change<'_>) {
        let queued = match *change {
            Change::Opened {
                provider,
                tenant,
                open_for,
                level,
                reason,
                ..
            } => Queued::Open {
                provider,
                tenant: tenant.into(),
                open_for,
                level,
                at: Instant::now(),
                reopened: matches!(reason, Reason::ProbeFailed | Reason::ProbeTimedOut),
            },
            Change::Closed {
                provider, tenant, ..
            } => Queued::Close {
                provider,
                tenant: tenant.into(),
                at: Instant::now(),
            },
            Change::Operator {
                provider,
                tenant,
                state,
                ..
            } => Queued::Operator {
                provider,
                tenant: tenant.into(),
                state,
                at: Instant::now(),
            },
            _ => return,
        };
        if self.queue.try_send(queued).is_err() {
            let dropped = self.health.0.count(Count::Dropped);
            // One line per power of two, so a full queue cannot flood the logs.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    target: "breaker::fleet",
                    dropped,
                    "fleet queue full or closed: a circuit change was not shared"
                );
            }
        }
    }

    fn failed(&self, evidence: &Evidence<'_>) {
        self.queue_failure(evidence);
    }
}

impl RedisFleet {
    /// [`Fleet::failed`]: queued, never waited for; when the queue is full (the task is behind,
    /// or merging an outage's worth), the failure is not pooled: this replica's circuit still
    /// counts it, and its next report carries it.
    fn queue_failure(&self, evidence: &Evidence<'_>) {
        let Some(failed) = &self.failed else {
            return;
        };
        let sent = failed.try_send(Failed {
            provider: evidence.provider,
            tenant: evidence.tenant.into(),
            streak: evidence.streak,
        });
        if sent.is_err() {
            self.health.0.count(Count::EvidenceDropped);
        }
    }
}

impl fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleet")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}
