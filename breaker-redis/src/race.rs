//! The race for the probe, in batches: every circuit due at once (a provider-wide outage ends
//! thousands of periods together) is looked at here first, without I/O, and the races and
//! leases that need the store go out in a few pipelines, not one script per circuit in
//! sequence. What is decided when, and why, is in `probes.rs`.

use std::time::{Duration, Instant};

use breaker_core::fleet::FleetLink;
use breaker_core::State;
use redis::{ServerErrorKind, Value};
use tokio::time::timeout;

use crate::probes::{self, Entry, Key, Step};
use crate::scripts::{LEASE, RACE};
use crate::store::Conn;
use crate::task::{millis, server_error, unless_wrong_type, End, Task};

/// Most scripts per pipeline (each pipeline bounded by the command timeout).
const CHUNK: usize = 1000;

/// What a due circuit needs of the store.
enum Op {
    /// Race for the lease, for this long.
    Race { lease_ms: u64 },
    /// This replica's probe started: keep the lease this long.
    Keep { lease_ms: u64 },
    /// No call came: give the lease back.
    GiveBack,
}

impl Task {
    /// Looks at every circuit whose turn came (see `probes.rs`) and sends what needs the store
    /// in pipelines of [`CHUNK`].
    pub(crate) async fn race(&self, conn: &mut Conn, link: &FleetLink) -> Result<(), End> {
        let now = Instant::now();
        let due = self.probes().take_due(now);
        // A circuit is held until its race is decided, however long the pipelines ahead of it
        // take (a provider-wide outage ends thousands of periods together): each is bounded by
        // the command timeout, or the session ends (and lets go of what it held for a race).
        // Every hold until a next look lasts as long past it: a look that comes late, behind
        // such a backlog, must still find the circuit held.
        let backlog = self.probes().len().max(due.len());
        let chunks = u32::try_from(backlog / CHUNK + 1).unwrap_or(u32::MAX);
        let decided_within = self.command_timeout.saturating_mul(chunks) + probes::HOLD;
        let mut ops = Vec::new();
        for (key, mut entry) in due {
            let (provider, tenant) = (key.0.as_str(), key.1.as_str());
            if entry.step != Step::Check && now >= entry.expires {
                // The incident left the store unended, with no lease: nothing to race for;
                // circuits here probe on their own when their hold ends.
                continue;
            }
            let step = entry.step;
            match step {
                Step::Hold => {
                    // Held until the race can have been decided; the winner's is let go then.
                    let until =
                        entry.ends.saturating_duration_since(now) + probes::LEAD + decided_within;
                    alive(link.hold(provider, tenant, until, entry.level))?;
                    entry.step = Step::Race;
                    entry.when = entry.ends.checked_sub(probes::LEAD).unwrap_or(entry.ends);
                    self.probes().schedule(key, entry);
                }
                Step::Race if entry.wants(link.rejected(provider, tenant)) => {
                    alive(link.hold(provider, tenant, decided_within, entry.level))?;
                    let lease = entry.ends.saturating_duration_since(now) + probes::CLAIM;
                    // The winner looks whether its probe started at the claim's end, which must
                    // come before the lapse even behind a backlog.
                    let lease_ms = millis(lease + decided_within).max(1);
                    ops.push((key, entry, Op::Race { lease_ms }));
                }
                Step::Race => {
                    // Nobody calls it here: held (a kept opening too) so that a call coming
                    // later cannot probe beside the fleet's prober; a call rejected meanwhile
                    // makes this replica race at its next look.
                    let idle = entry.next_idle();
                    alive(link.hold(provider, tenant, idle + decided_within, entry.level))?;
                    entry.when = now + idle;
                    self.probes().schedule(key, entry);
                }
                Step::Check => {
                    // Held before looking: no probe can start after the look unseen.
                    entry.idle = Duration::ZERO;
                    let idle = entry.next_idle();
                    alive(link.hold(provider, tenant, idle + decided_within, entry.level))?;
                    let op = match link.state(provider, tenant) {
                        // A probe is in flight, or succeeded and its close is on its way to the
                        // store (which ends the lease): kept, for as long as the prober's own
                        // circuit says a probe may take.
                        Some(State::HalfOpen | State::Closed) => Op::Keep {
                            lease_ms: millis(
                                link.config(provider, tenant)
                                    .map_or(self.probe_lease, |c| c.probe_timeout())
                                    + probes::LEAD,
                            )
                            .max(1),
                        },
                        Some(State::Open) => Op::GiveBack,
                        // An operator's switch, or no circuit any more.
                        _ => {
                            entry.when = now + idle;
                            self.probes().schedule(key, entry);
                            continue;
                        }
                    };
                    ops.push((key, entry, op));
                }
            }
        }
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(CHUNK));
            let replies = match self.send(conn, &ops).await {
                Ok(replies) => replies,
                Err(end) => {
                    // Undecided: let go of the circuits held for their races, which probe on
                    // their own as without a fleet (the store failed at the end of a period).
                    for (key, entry, op) in ops.iter().chain(&rest) {
                        if matches!(op, Op::Race { .. }) {
                            link.hold(&key.0, &key.1, Duration::ZERO, entry.level);
                        }
                    }
                    return Err(end);
                }
            };
            for ((key, entry, op), reply) in ops.into_iter().zip(replies) {
                self.decided(link, key, entry, &op, reply, decided_within)?;
            }
            ops = rest;
        }
        Ok(())
    }

    /// One pipeline of races and leases, by the scripts' digests (their text after a
    /// `NOSCRIPT`).
    async fn send(&self, conn: &mut Conn, ops: &[(Key, Entry, Op)]) -> Result<Vec<Value>, End> {
        for script in [&RACE, &LEASE] {
            timeout(self.command_timeout, script.load(conn)).await??;
        }
        let pipeline = |by_digest: bool| {
            let mut pipe = redis::pipe();
            for ((provider, tenant), _, op) in ops {
                let lease = self.layout.probe_key(provider, tenant);
                let cmd = match op {
                    Op::Race { lease_ms } => {
                        let open = self.layout.open_key(provider, tenant);
                        let mut cmd = RACE.call(&[lease, open], by_digest);
                        cmd.arg(&self.replica).arg(*lease_ms);
                        cmd
                    }
                    Op::Keep { lease_ms } => {
                        let mut cmd = LEASE.call(&[lease], by_digest);
                        cmd.arg(&self.replica).arg(*lease_ms);
                        cmd
                    }
                    Op::GiveBack => {
                        let mut cmd = LEASE.call(&[lease], by_digest);
                        cmd.arg(&self.replica).arg(0);
                        cmd
                    }
                };
                pipe.add_command(cmd);
            }
            pipe
        };
        // Errors come back per command: a key of another type costs its own circuit
        // (`decided`), a script the store lacks is sent again as text.
        let replies = self.pipelined(conn, ops.len(), pipeline).await?;
        for reply in &replies {
            if let Value::ServerError(e) = reply {
                if e.code() != "WRONGTYPE" {
                    return Err(server_error(e.clone()));
                }
            }
        }
        Ok(replies)
    }

    /// Acts on the store's answer for one circuit, and tracks it for its next look.
    fn decided(
        &self,
        link: &FleetLink,
        key: Key,
        mut entry: Entry,
        op: &Op,
        reply: Value,
        slack: Duration,
    ) -> Result<(), End> {
        let now = Instant::now();
        let (provider, tenant) = (key.0.as_str(), key.1.as_str());
        let reply = match reply {
            Value::ServerError(e) => Err(redis::RedisError::from(e)),
            reply => Ok(reply),
        };
        let Some(reply) = unless_wrong_type(reply, provider, tenant)? else {
            // Its lease key is not a lease: this circuit probes on each replica, as without a
            // fleet (let go of what was held for its race); the others race on.
            if matches!(op, Op::Race { .. }) {
                alive(link.hold(provider, tenant, Duration::ZERO, entry.level))?;
            }
            return Ok(());
        };
        match op {
            Op::Race { .. } => {
                let (won, left_ms): (i64, i64) =
                    redis::from_redis_value(reply).map_err(|e| End::Failed(e.to_string()))?;
                let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
                if won < 0 {
                    // The incident is gone from the store: it expired unended with nobody
                    // probing, or another replica's probe just ended it (its close on the way
                    // here). Racing stops; the hold taken for this race runs out, and the
                    // circuit probes on its own then, unless that close came first.
                    return Ok(());
                }
                entry.expires = entry.expires.max(now + left + probes::LEAD);
                entry.idle = Duration::ZERO;
                if won == 1 {
                    // The period ends as the fleet's does (now, if that was before the answer):
                    // the next call here is the fleet's probe. Before the claim lapses, a look
                    // whether it started.
                    let ends = entry.ends.saturating_duration_since(now);
                    alive(link.hold(provider, tenant, ends, entry.level))?;
                    entry.step = Step::Check;
                    entry.when = now + left.saturating_sub(slack);
                } else {
                    // Another replica probes: stay open until its outcome comes or its lease
                    // lapses, and a while longer, so that the race at the lapse is decided
                    // before any circuit here goes half-open. A probe of this replica's still
                    // in flight (a winner whose call came late in its lease) is not thrown
                    // away: it may overlap with the new winner's.
                    alive(link.hold(provider, tenant, left + slack, entry.level))?;
                    entry.when = now + left;
                }
            }
            Op::Keep { lease_ms } => {
                let kept: i64 =
                    redis::from_redis_value(reply).map_err(|e| End::Failed(e.to_string()))?;
                entry.step = Step::Race;
                // At the lapse everyone looks again, this replica too (its probe may be hung).
                entry.when = if kept == 1 {
                    now + Duration::from_millis(*lease_ms)
                } else {
                    now + entry.idle
                };
            }
            Op::GiveBack => {
                entry.step = Step::Race;
                // Calls rejected from now on want the probe.
                entry.wants(link.rejected(provider, tenant));
                entry.when = now + entry.idle;
            }
        }
        self.probes().schedule(key, entry);
        Ok(())
    }
}

/// `Err(End::Done)` when the registry is gone.
fn alive(alive: bool) -> Result<(), End> {
    if alive {
        Ok(())
    } else {
        Err(End::Done)
    }
}

impl Task {
    /// Sends the pipeline `pipeline(true)` makes (its scripts called by digest) with errors
    /// answered per command, and again as `pipeline(false)` (by text) when the store lacks a
    /// script; the replies, `len` of them, or the store's failure.
    pub(crate) async fn pipelined(
        &self,
        conn: &mut Conn,
        len: usize,
        pipeline: impl Fn(bool) -> redis::Pipeline,
    ) -> Result<Vec<Value>, End> {
        let mut replies = timeout(
            self.command_timeout,
            pipeline(true)
                .ignore_errors()
                .query_async::<Vec<Value>>(conn),
        )
        .await??;
        let lacks = |v: &Value| matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript));
        if replies.iter().any(lacks) {
            replies = timeout(
                self.command_timeout,
                pipeline(false)
                    .ignore_errors()
                    .query_async::<Vec<Value>>(conn),
            )
            .await??;
        }
        if replies.len() != len {
            return Err(End::Failed("a pipeline answered short".to_owned()));
        }
        Ok(replies)
    }
}
