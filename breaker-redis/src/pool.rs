//! Pooling evidence (issue 23): the background task writes the gauges of the circuits that
//! failed lately (`evidence.rs`), one script per circuit in one pipeline, and the store decides
//! whether the fleet's failures trip it (`EVIDENCE_SCRIPT`). A trip is written and announced
//! there as an opening; this replica applies it to its own circuit as any replica does.
//!
//! One pipeline at a time: the task awaits each, and failures that come meanwhile merge into
//! the next one, so a replica has at most one evidence write in flight however fast its
//! circuits fail, and none while they are healthy.

use std::time::Instant;

use breaker_core::fleet::FleetLink;
use breaker_core::PROVIDER_WIDE_TENANT;
use redis::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::access;
use crate::evidence::{Failed, Report, Tally, EVIDENCE_TTL};
use crate::health::Count;
use crate::scripts::EVIDENCE;
use crate::store::Conn;
use crate::task::{millis, server_error, End, Task};

/// Most reports per pipeline (each pipeline bounded by the command timeout).
const CHUNK: usize = 1000;
/// Most failures merged from the channel in one go.
const MERGE_BATCH: usize = 8192;

impl Task {
    pub(crate) fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `first` and whatever else has been queued since (up to [`MERGE_BATCH`]).
    pub(crate) fn merge(&self, first: Failed, failed: &mut mpsc::Receiver<Failed>) {
        let now = Instant::now();
        let mut tally = self.tally();
        let mut next = Some(first);
        let mut merged = 0;
        while let Some(one) = next {
            if !tally.failed(one, now) {
                self.health.count(Count::EvidenceDropped);
                tracing::debug!(target: "breaker::fleet", "evidence map full: a failure was not pooled");
            }
            merged += 1;
            if merged >= MERGE_BATCH {
                break;
            }
            next = failed.try_recv().ok();
        }
        self.health.watching(tally.len());
    }

    /// Writes the reports due (with `look`, also successes and windows that moved since the
    /// last report), in pipelines of [`CHUNK`].
    pub(crate) async fn pool(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        look: bool,
    ) -> Result<(), End> {
        let now = Instant::now();
        let reports = {
            let mut tally = self.tally();
            // Provider circuits first: one report each stands for all of a provider's tenants.
            let mut reports = tally.wide.due(now, look, |provider| {
                Some((
                    link.metrics(provider, PROVIDER_WIDE_TENANT)?,
                    link.pooled(provider)?,
                ))
            });
            reports.extend(tally.due(now, look, |provider, tenant| {
                Some((
                    link.metrics(provider, tenant)?,
                    link.config(provider, tenant)?,
                ))
            }));
            self.health.watching(tally.len());
            reports
        };
        for chunk in reports.chunks(CHUNK) {
            match self.report(conn, link, chunk).await {
                // A user refused what the script writes (or announces) is no store failure:
                // reported as every refused write is, and the session goes on.
                Err(End::Refused(error)) => access::refused(&self.health, &error),
                reported => reported?,
            }
        }
        Ok(())
    }

    /// One pipeline of reports, by the script's digest (its text after a `NOSCRIPT`); acts on
    /// each answer.
    async fn report(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        reports: &[Report],
    ) -> Result<(), End> {
        timeout(self.command_timeout, EVIDENCE.load(conn)).await??;
        let margin_ms = millis(self.margin);
        let ttl_ms = millis(EVIDENCE_TTL);
        let pipeline = |by_digest: bool| {
            let mut pipe = redis::pipe();
            for r in reports {
                let (provider, tenant) = (r.provider, &*r.tenant);
                let open_ms = millis(r.open_for).max(1);
                let mut cmd = EVIDENCE.call(
                    &[
                        self.layout.evidence_key(provider, tenant),
                        self.layout.open_key(provider, tenant),
                        self.layout.probe_key(provider, tenant),
                        self.layout.ended_key(provider, tenant),
                    ],
                    by_digest,
                );
                cmd.arg(&self.replica)
                    .arg(r.streak)
                    .arg(u8::from(r.success))
                    .arg(r.threshold)
                    .arg(r.calls)
                    .arg(r.failures)
                    .arg(r.rate)
                    .arg(r.minimum_calls)
                    .arg(r.window_ms.min(ttl_ms))
                    .arg(self.quorum)
                    .arg(millis(r.age))
                    .arg(open_ms)
                    .arg(margin_ms)
                    .arg(self.opening(0, open_ms + margin_ms))
                    .arg(self.layout.channel())
                    .arg(self.message("open", provider, tenant))
                    .arg(ttl_ms)
                    .arg(self.trip_message(provider, tenant, &self.opening(0, open_ms + margin_ms)))
                    .arg(&r.tenants)
                    .arg(r.distinct);
                pipe.add_command(cmd);
            }
            pipe
        };
        let replies = self.pipelined(conn, reports.len(), pipeline).await?;
        self.health
            .count_n(Count::EvidenceReports, reports.len() as u64);
        for (r, reply) in reports.iter().zip(replies) {
            let (provider, tenant) = (r.provider, &*r.tenant);
            match reply {
                Value::Int(1) => {
                    self.health.count(Count::Published);
                    let open_ms = millis(r.open_for).max(1);
                    let value = self.opening(0, open_ms + margin_ms);
                    let pttl = i64::try_from(open_ms + margin_ms).unwrap_or(i64::MAX);
                    // The fleet's trip is this replica's too: applied as any replica applies
                    // an opening it hears of (the announcement is not heard by its writer).
                    if !self.apply_open(link, provider, tenant, Some(&value), pttl) {
                        return Err(End::Done);
                    }
                }
                Value::Int(3) => self.tally().restart(provider, tenant, Instant::now()),
                Value::Int(_) => {}
                Value::ServerError(e) if e.code() == "WRONGTYPE" => {
                    tracing::warn!(
                        target: "breaker::fleet", provider, tenant, error = %e.details().unwrap_or_default(),
                        "a fleet key holds another type: its circuit's evidence is not pooled until that key is deleted"
                    );
                }
                Value::ServerError(e) => return Err(server_error(e)),
                other => {
                    return Err(End::Failed(format!(
                        "the evidence script answered {other:?}"
                    )))
                }
            }
        }
        Ok(())
    }
}
