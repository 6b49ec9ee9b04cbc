//! The fleet's background task: one connection for commands and one for pub/sub, made again with
//! backoff whenever the store fails, and a resync after every (re)connection. What the store says
//! (announcements, the resync) is applied in `receive.rs`; the probe races are in `race.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use breaker_core::fleet::FleetLink;
use breaker_core::State;
use futures_util::{FutureExt, StreamExt};
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout};

use crate::access::{self, Access};
use crate::evidence::{Failed, Tally, LOOK_EVERY};
use crate::health::{Count, Health};
use crate::keys::{self, Layout, VERSION};
use crate::known::{Key, Known, Opening};
use crate::pending::{Pending, Queued};
use crate::probes::Probes;
use crate::restore::{self, Lost};
use crate::scripts::{self, END_SCRIPT, OPEN_SCRIPT};
use crate::store::{self, Conn, Store};

/// Backoff between connection attempts: doubled from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_LAST: Duration = Duration::from_secs(2);
/// How often an idle connection is checked, so that a store that hangs (rather than closes) is
/// noticed.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Most local changes written at once.
const WRITE_BATCH: usize = 1024;
/// Most announcements read from the store in one pipeline.
const RECEIVE_BATCH: usize = 512;
/// Keys asked for per SCAN step during a resync, and per pipeline of a reconciliation.
pub(crate) const SCAN_COUNT: usize = 500;
/// Openings checked per ping for a deletion nobody announced (`Known::next_audit`): one pipeline
/// that stays well under a millisecond on a LAN, so a due probe race is never held up for long.
const AUDIT_BATCH: usize = 256;

pub(crate) struct Task {
    pub(crate) store: Store,
    pub(crate) layout: Layout,
    pub(crate) replica: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) margin: Duration,
    pub(crate) operator_ttl: Duration,
    pub(crate) probe_lease: Duration,
    pub(crate) quorum: u32,
    /// Never held across an await (a `Mutex` so the task's future is `Send`).
    pub(crate) probes: Mutex<Probes>,
    /// Local changes the store has not taken yet (it was unreachable); never held across an
    /// await either.
    pub(crate) pending: Mutex<Pending>,
    /// The keys this replica wrote or applied, for what a reconnection must end; never held
    /// across an await.
    pub(crate) known: Mutex<Known>,
    /// The `run_id` of the store last connected to: the same one after a reconnection means
    /// no restart or failover lost keys meanwhile.
    pub(crate) store_run: Mutex<Option<String>>,
    pub(crate) health: Arc<Health>,
    /// The circuits whose evidence this replica pools (`evidence.rs`, `pool.rs`); never held
    /// across an await.
    pub(crate) tally: Mutex<Tally>,
}

/// Why a session ended.
pub(crate) enum End {
    /// The fleet or its registry is gone: stop for good.
    Done,
    /// The store failed: reconnect.
    Failed(String),
    /// The store refused a command for want of a permission (see `access.rs`): reported where
    /// a write met it, the session going on; elsewhere, a failure.
    Refused(String),
}

impl From<redis::RedisError> for End {
    fn from(e: redis::RedisError) -> Self {
        if access::is_refusal(&e) {
            End::Refused(e.to_string())
        } else {
            End::Failed(e.to_string())
        }
    }
}

impl From<tokio::time::error::Elapsed> for End {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        End::Failed("timed out".to_owned())
    }
}

impl Task {
    pub(crate) async fn run(
        self,
        mut queued: mpsc::Receiver<Queued>,
        mut failed: mpsc::Receiver<Failed>,
        linked: oneshot::Receiver<FleetLink>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let link = tokio::select! {
            link = linked => match link {
                Ok(link) => link,
                Err(_) => return,
            },
            _ = &mut stopped => return,
        };
        let mut retry = RETRY_FIRST;
        let mut first = true;
        loop {
            let end = tokio::select! {
                end = self.session(&mut queued, &mut failed, &link) => end,
                _ = &mut stopped => return,
            };
            let (End::Failed(error) | End::Refused(error)) = end else {
                return;
            };
            self.health.count(Count::Failure);
            if self.health.set_connected(false) {
                retry = RETRY_FIRST;
                tracing::warn!(
                    target: "breaker::fleet", %error,
                    "fleet store lost: degraded, circuits run on this replica's calls alone"
                );
            } else if first {
                tracing::warn!(
                    target: "breaker::fleet", %error,
                    "fleet store unreachable at start: degraded, circuits run on this replica's calls alone"
                );
            }
            first = false;
            // Meanwhile local changes keep coming: kept for the store's return, not dropped
            // because nobody drained the queue.
            let backoff = sleep(retry);
            tokio::pin!(backoff);
            loop {
                tokio::select! {
                    () = &mut backoff => break,
                    _ = &mut stopped => return,
                    change = queued.recv() => match change {
                        Some(change) => self.keep(change),
                        None => return,
                    },
                    // Evidence merges (bounded) for the store's return, where what is left of
                    // it within `WATCH_FOR` is written once per circuit.
                    one = failed.recv() => match one {
                        Some(one) => self.merge(one, &mut failed),
                        None => return,
                    },
                }
            }
            retry = (retry * 2).min(RETRY_LAST);
        }
    }

    /// Connects, subscribes, resyncs, then shares local changes and applies remote ones until
    /// the store fails or the fleet ends.
    async fn session(
        &self,
        queued: &mut mpsc::Receiver<Queued>,
        failed: &mut mpsc::Receiver<Failed>,
        link: &FleetLink,
    ) -> End {
        let mut conn = match self
            .store
            .connect(self.connect_timeout, self.command_timeout)
            .await
        {
            Ok(conn) => conn,
            Err(e) => return e.into(),
        };
        let mut pubsub = match self.store.pubsub(self.connect_timeout).await {
            Ok(pubsub) => pubsub,
            Err(e) => return e.into(),
        };
        // Subscribed before the resync: an opening published meanwhile is seen by one or both.
        match timeout(
            self.command_timeout,
            pubsub.subscribe(self.layout.channel()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.into(),
            Err(e) => return e.into(),
        }
        let (mut listener, mut messages) = pubsub.split();
        if let Err(end) = self.catch_up(&mut conn, queued, link).await {
            return end;
        }
        if !self.health.set_connected(true) {
            tracing::info!(target: "breaker::fleet", "fleet store reachable: restored and resynced");
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the store may have lost or never got is reported again, once per circuit.
        self.tally().all_dirty();
        let mut look = tokio::time::interval(LOOK_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let watching = !self.tally().is_empty();
            let due = self.probes().next_due();
            let race_at = tokio::time::Instant::from_std(due.unwrap_or_else(Instant::now));
            let step = tokio::select! {
                change = queued.recv() => match change {
                    Some(change) => {
                        // What else is queued goes with it (a provider-wide outage opens, and
                        // its probes close, thousands of circuits at once): written at once,
                        // one change per circuit, so that each circuit's stay in order.
                        let mut batch = vec![change];
                        let mut circuits = HashSet::new();
                        circuits.insert((batch[0].provider(), Box::<str>::from(batch[0].tenant())));
                        while batch.len() < WRITE_BATCH {
                            let Ok(change) = queued.try_recv() else { break };
                            let circuit = (change.provider(), Box::<str>::from(change.tenant()));
                            let again = !circuits.insert(circuit);
                            batch.push(change);
                            if again {
                                break;
                            }
                        }
                        let last = (batch.len() > 1 && circuits.len() < batch.len())
                            .then(|| batch.pop())
                            .flatten();
                        let mut written = self.write_all(&conn, link, batch).await;
                        if let Some(last) = last {
                            if written.is_ok() {
                                written = self.write_all(&conn, link, vec![last]).await;
                            } else {
                                self.keep(last);
                            }
                        }
                        written
                    }
                    None => Err(End::Done),
                },
                // A failure is written as soon as the task can, with whatever came meanwhile
                // (one pipeline in flight: the next one waits for it).
                one = failed.recv() => match one {
                    Some(one) => {
                        self.merge(one, failed);
                        self.pool(&mut conn, link, false).await
                    }
                    None => Err(End::Done),
                },
                _ = look.tick(), if watching => self.pool(&mut conn, link, true).await,
                message = messages.next() => match message {
                    Some(message) => {
                        // What else has arrived goes with it: one round trip reads them all.
                        let mut batch = vec![message];
                        while batch.len() < RECEIVE_BATCH {
                            match messages.next().now_or_never() {
                                Some(Some(message)) => batch.push(message),
                                _ => break,
                            }
                        }
                        self.receive(&mut conn, link, &batch).await
                    }
                    None => Err(End::Failed("pub/sub connection closed".to_owned())),
                },
                _ = ping.tick() => match self.ping(&mut conn, &mut listener).await {
                    Ok(()) => self.audit(&mut conn, link).await,
                    failed => failed,
                },
                _ = tokio::time::sleep_until(race_at), if due.is_some() => {
                    match self.race(&mut conn, link).await {
                        // The lease is a write: without it, circuits here probe on their own.
                        Err(End::Refused(error)) => {
                            access::refused(&self.health, &error);
                            Ok(())
                        }
                        raced => raced,
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Brings a new session up to date: writes what this replica learnt while the store was
    /// away first (so that the resync reads the fleet's state with it: a close written now is
    /// not undone by the opening it ended), then applies the fleet's state, then, on the same
    /// store as before, ends what ended meanwhile.
    async fn catch_up(
        &self,
        conn: &mut Conn,
        queued: &mut mpsc::Receiver<Queued>,
        link: &FleetLink,
    ) -> Result<(), End> {
        let run = self.run_id(conn).await?;
        self.access().check(conn).await?;
        let same_store = run.is_some() && *self.store_run() == run;
        // What was known of another store (or of this one before a restart, which may have
        // lost keys) says nothing about what is missing now; its openings still running are
        // written back once this replica's own changes are.
        let lost = if same_store {
            Vec::new()
        } else {
            self.known().forget(Instant::now())
        };
        // Changes queued while this session was being set up go with the kept ones, in order.
        while let Ok(change) = queued.try_recv() {
            self.keep(change);
        }
        self.replay(conn, link).await?;
        match self.restore(conn, link, lost).await {
            Err(End::Refused(error)) => access::refused(&self.health, &error),
            restored => restored?,
        }
        self.resync(conn, link).await?;
        if same_store {
            self.reconcile(conn, link).await?;
        }
        // Only a session that got this far has seen this store: one that failed before must
        // not let the next one reconcile against what it never read.
        *self.store_run() = run;
        Ok(())
    }

    fn store_run(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.store_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn probes(&self) -> std::sync::MutexGuard<'_, Probes> {
        self.probes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store's `run_id` (a cluster's: every master's), which tells whether a reconnection
    /// reached the store this replica was connected to before: then a key it lacks was deleted,
    /// not lost. `None` when the store will not say (a user without `INFO`): every
    /// reconnection then counts as a new store, and ended incidents missed meanwhile run to
    /// the end of their periods here.
    async fn run_id(&self, conn: &mut Conn) -> Result<Option<String>, End> {
        let info = timeout(
            self.command_timeout,
            redis::cmd("INFO")
                .arg("server")
                .query_async::<redis::Value>(conn),
        )
        .await?;
        match info {
            Ok(info) => Ok(store::run_id(info)),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                Err(e.into())
            }
            Err(e) => {
                tracing::debug!(target: "breaker::fleet", error = %e, "INFO refused: missed closes are not reconciled");
                Ok(None)
            }
        }
    }

    /// After a reconnection to the same store: ends here the openings and switches that another
    /// replica ended while this one could not hear it (see `known.rs`). An opening counts as
    /// ended when neither it nor a probe lease is left; a switch, when its key is gone.
    async fn reconcile(&self, conn: &mut Conn, link: &FleetLink) -> Result<(), End> {
        let (openings, switches) = self.known().live(Instant::now());
        for chunk in openings.chunks(SCAN_COUNT) {
            self.end_missing(conn, link, chunk).await?;
        }
        for chunk in switches.chunks(SCAN_COUNT) {
            let mut pipe = redis::pipe();
            for (provider, tenant) in chunk {
                pipe.cmd("EXISTS")
                    .arg(self.layout.operator_key(provider, tenant));
            }
            let found: Vec<u32> = timeout(self.command_timeout, pipe.query_async(conn)).await??;
            for (key, found) in chunk.iter().zip(found) {
                if found == 0 && !self.apply_operator(link, &key.0, &key.1, None, 0) {
                    return Err(End::Done);
                }
            }
        }
        Ok(())
    }

    /// Writes back `lost` (see `restore.rs`): each ended since it opened closes here. Returns
    /// `Err(End::Done)` when the registry is gone.
    async fn restore(&self, conn: &mut Conn, link: &FleetLink, lost: Vec<Lost>) -> Result<(), End> {
        let value = |level, ttl_ms| self.opening(level, ttl_ms);
        let message = |provider: &str, tenant: &str| self.message("open", provider, tenant);
        let limit = self.command_timeout;
        let (back, ended) =
            restore::write_back(conn, &self.layout, limit, lost, value, message).await?;
        for (key, opening) in back {
            self.known().opened(key, opening);
        }
        for key in ended {
            self.probes().untrack(&key);
            self.health.count(Count::Applied);
            if !link.close(&key.0, &key.1) {
                return Err(End::Done);
            }
        }
        Ok(())
    }

    /// Ends here the openings of `keys` (known to this replica) that are gone from the store,
    /// neither the opening nor a probe lease left: another replica ended them, or someone
    /// deleted them, while this one could not hear it or nobody announced it.
    async fn end_missing(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        keys: &[Key],
    ) -> Result<(), End> {
        let mut pipe = redis::pipe();
        for (provider, tenant) in keys {
            pipe.cmd("EXISTS")
                .arg(self.layout.open_key(provider, tenant))
                .arg(self.layout.probe_key(provider, tenant));
        }
        let found: Vec<u32> = timeout(self.command_timeout, pipe.query_async(conn)).await??;
        for (key, found) in keys.iter().zip(found) {
            if found == 0 {
                self.known().ended(key);
                self.probes().untrack(key);
                self.health.count(Count::Applied);
                if !link.close(&key.0, &key.1) {
                    return Err(End::Done);
                }
            }
        }
        Ok(())
    }

    /// Ends the openings this replica knows whose keys were deleted without an announcement (see
    /// `known.rs`), a batch per ping: with n openings known, each is checked every n / 256
    /// pings. Within one session the store is the one this replica read them from (a restart
    /// ends the session), so a key gone early was deleted, not lost; unless the store lost it
    /// (an eviction, a `FLUSHDB`, a cluster failover that lost its last write: README).
    async fn audit(&self, conn: &mut Conn, link: &FleetLink) -> Result<(), End> {
        let batch = self.known().next_audit(Instant::now(), AUDIT_BATCH);
        if batch.is_empty() {
            return Ok(());
        }
        self.end_missing(conn, link, &batch).await
    }

    /// Keeps a change the store did not take, for its return; counts it as dropped if there
    /// is no room.
    fn keep(&self, change: Queued) {
        let kept = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keep(change);
        if !kept {
            self.health.count(Count::Dropped);
        }
    }

    /// Writes the changes kept while the store was away, oldest first; on a failure of the
    /// store, keeps what was not written. A change the store refuses over one of its circuit's
    /// keys (of another type: warned, see `unless_wrong_type`) is dropped and the replay goes
    /// on: it would be refused again, and must not hold back the others.
    async fn replay(&self, conn: &mut Conn, link: &FleetLink) -> Result<(), End> {
        let kept = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut kept = kept.into_iter();
        while let Some(change) = kept.next() {
            if let Err(end) = self.write(conn, link, &change).await {
                self.keep(change);
                kept.for_each(|change| self.keep(change));
                return Err(end);
            }
        }
        Ok(())
    }

    async fn ping(&self, conn: &mut Conn, listener: &mut PubSubSink) -> Result<(), End> {
        timeout(
            self.command_timeout,
            redis::cmd("PING").query_async::<()>(conn),
        )
        .await??;
        // The pub/sub connection may hang on its own: in a cluster it is to a node that the
        // commands may never reach.
        timeout(self.command_timeout, listener.ping::<redis::Value>()).await??;
        if !self.health.is_publishing() {
            // An ACL fixed meanwhile is seen within a ping.
            self.access().check(conn).await?;
        }
        Ok(())
    }

    /// What the ACL check and the reports of refusals need (see `access.rs`).
    fn access(&self) -> Access<'_> {
        let (health, layout, limit) = (&self.health, &self.layout, self.command_timeout);
        let replica = &self.replica;
        Access {
            health,
            layout,
            replica,
            limit,
        }
    }

    /// Writes local changes of distinct circuits at once (each its own request on the
    /// multiplexed connection), and announces them; keeps those that failed for the store's
    /// return.
    async fn write_all(
        &self,
        conn: &Conn,
        link: &FleetLink,
        changes: Vec<Queued>,
    ) -> Result<(), End> {
        let written = futures_util::future::join_all(changes.iter().map(|change| {
            let mut conn = conn.clone();
            async move { self.write(&mut conn, link, change).await }
        }))
        .await;
        let mut failed = None;
        for (change, written) in changes.into_iter().zip(written) {
            if let Err(end) = written {
                self.keep(change);
                failed.get_or_insert(end);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Writes one local change and announces it (on failure the caller keeps it for the
    /// store's return); a refusal over a key of the wrong type is no failure, and one for want
    /// of a permission is reported, not kept (see `access.rs`).
    async fn write(&self, conn: &mut Conn, link: &FleetLink, change: &Queued) -> Result<(), End> {
        match self.write_change(conn, link, change).await {
            Err(End::Refused(error)) => {
                Ok(self.access().refused_write(conn, change, &error).await?)
            }
            done => done,
        }
    }

    async fn write_change(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        change: &Queued,
    ) -> Result<(), End> {
        match change {
            Queued::Open {
                provider,
                tenant,
                open_for,
                level,
                at,
                reopened,
            } => {
                let left = open_for.saturating_sub(at.elapsed());
                if left.is_zero() {
                    // Its period ended while it waited: nothing left to share.
                    return Ok(());
                }
                self.open(
                    conn, link, provider, tenant, *open_for, left, *level, *reopened,
                )
                .await
            }
            Queued::Close {
                provider,
                tenant,
                at,
            } => self.end(conn, provider, tenant, at.elapsed(), false).await,
            // A reset anywhere resets everywhere: the switch, the opening and its lease go,
            // unless they came after it.
            Queued::Operator {
                provider,
                tenant,
                state: State::Closed,
                at,
            } => self.end(conn, provider, tenant, at.elapsed(), true).await,
            Queued::Operator {
                provider,
                tenant,
                state,
                ..
            } => self.switch(conn, provider, tenant, *state).await,
        }
    }

    /// Writes and announces an operator's switch (not a reset) of (provider, tenant).
    async fn switch(
        &self,
        conn: &mut Conn,
        provider: &str,
        tenant: &str,
        state: State,
    ) -> Result<(), End> {
        let key = (provider.to_owned(), tenant.to_owned());
        self.probes().untrack(&key);
        let ttl_ms = millis(self.operator_ttl).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.layout.operator_key(provider, tenant))
            .arg(format!("{}:{}:{ttl_ms}", state.as_str(), self.replica))
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("PUBLISH")
            .arg(self.layout.channel())
            .arg(self.message("operator", provider, tenant))
            .ignore();
        timeout(self.command_timeout, pipe.query_async::<()>(conn)).await??;
        self.health.count(Count::Published);
        self.known()
            .switched(key, Instant::now() + self.operator_ttl);
        Ok(())
    }

    /// Shares this replica's opening of (provider, tenant), with `left` of its `open_for` to
    /// run, in one script: never over a stored opening that is newer (a higher level) or ends
    /// later at its level; with a quorum, as a report until `quorum` replicas made one (a
    /// failed probe's reopening skips it only while the fleet is open: its opening is stored,
    /// or this replica holds the probe lease, so one sick replica cannot open the fleet through
    /// its own probes). The opening's value carries its whole period, so that its age in store
    /// time counts from the trip, not from the write.
    #[allow(clippy::too_many_arguments)] // one opening's facts, from one `Queued::Open`
    async fn open(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        provider: &str,
        tenant: &str,
        open_for: Duration,
        left: Duration,
        level: u32,
        reopened: bool,
    ) -> Result<(), End> {
        let left_ms = millis(left).max(1);
        let margin_ms = millis(self.margin);
        let reply = timeout(
            self.command_timeout,
            scripts::eval(
                OPEN_SCRIPT,
                &[
                    self.layout.open_key(provider, tenant),
                    self.layout.probe_key(provider, tenant),
                    self.layout.reports_key(provider, tenant),
                    self.layout.ended_key(provider, tenant),
                    self.layout.evidence_key(provider, tenant),
                ],
            )
            .arg(&self.replica)
            .arg(left_ms)
            .arg(margin_ms)
            .arg(self.quorum)
            .arg(self.opening(level, millis(open_for).max(left_ms) + margin_ms))
            .arg(self.layout.channel())
            .arg(self.message("open", provider, tenant))
            .arg(level)
            .arg(u8::from(reopened))
            .arg(millis(open_for.saturating_sub(left)))
            .query_async::<i64>(conn),
        )
        .await?;
        let key = (provider.to_owned(), tenant.to_owned());
        let Some(written) = unless_wrong_type(reply, provider, tenant)? else {
            // Not shared: whatever this replica knew of the fleet's opening is moot.
            self.known().ended(&key);
            return Ok(());
        };
        if written == 1 {
            self.health.count(Count::Published);
            let now = Instant::now();
            self.probes().track(
                key.clone(),
                now + left,
                level,
                now + left + self.margin,
                link.rejected(provider, tenant),
            );
            self.known().opened(
                key,
                Opening::new(now, left, self.margin, open_for.saturating_sub(left), level),
            );
        } else {
            if written == 2 {
                // A report, short of the quorum: written, not shared.
                self.health.count(Count::Published);
            }
            // What this replica knew of the fleet's opening says nothing about its own, now
            // open on its own calls: a reconciliation must not close it.
            self.known().ended(&key);
        }
        Ok(())
    }

    /// Ends the incident of (provider, tenant) `age` after this replica's circuit closed (or,
    /// with `reset`, after an operator reset it here): the opening, its lease and its reports
    /// go (a new incident needs a new quorum), and with `reset` the operator's switch, each
    /// unless it was written after (another replica's newer trip or switch, met while this one
    /// could not write), all in one script.
    async fn end(
        &self,
        conn: &mut Conn,
        provider: &str,
        tenant: &str,
        age: Duration,
        reset: bool,
    ) -> Result<(), End> {
        let kind = if reset { "operator" } else { "close" };
        let reply = timeout(
            self.command_timeout,
            scripts::eval(
                END_SCRIPT,
                &[
                    self.layout.open_key(provider, tenant),
                    self.layout.probe_key(provider, tenant),
                    self.layout.reports_key(provider, tenant),
                    self.layout.operator_key(provider, tenant),
                    self.layout.ended_key(provider, tenant),
                    self.layout.evidence_key(provider, tenant),
                ],
            )
            .arg(millis(age))
            .arg(self.layout.channel())
            .arg(self.message(kind, provider, tenant))
            .arg(u8::from(reset))
            .arg(millis(self.margin).max(1))
            .query_async::<i64>(conn),
        )
        .await?;
        let Some(kept) = unless_wrong_type(reply, provider, tenant)? else {
            // Nothing changed in the store: the others learn of no end.
            return Ok(());
        };
        self.health.count(Count::Published);
        let key = (provider.to_owned(), tenant.to_owned());
        if kept & 1 == 0 {
            self.probes().untrack(&key);
            self.known().ended(&key);
        } else {
            // The newer opening's own message tracks it (or has already).
            tracing::debug!(
                target: "breaker::fleet", provider, tenant,
                "an end gave way to an opening written after it"
            );
        }
        if reset && kept & 2 == 0 {
            self.known().unswitched(&key);
        }
        Ok(())
    }

    /// The value of an opening key: `level:margin_ms:replica:ttl_ms`, where `ttl_ms` is the TTL
    /// it was written with, so that its age (`ttl_ms` - `PTTL`) is known in store time.
    pub(crate) fn opening(&self, level: u32, ttl_ms: u64) -> String {
        format!("{level}:{}:{}:{ttl_ms}", millis(self.margin), self.replica)
    }

    /// The announcement of a trip of pooled evidence: an `open` one with the opening's value
    /// (`value` holds no space), which replicas that know trips apply without a read, and
    /// others ignore (six words: no announcement of theirs).
    pub(crate) fn trip_message(&self, provider: &str, tenant: &str, value: &str) -> String {
        format!("{} {value}", self.message("trip", provider, tenant))
    }

    pub(crate) fn message(&self, op: &str, provider: &str, tenant: &str) -> String {
        format!(
            "{VERSION} {op} {} {} {}",
            self.replica,
            keys::encode(provider),
            keys::encode(tenant)
        )
    }
}

/// A command's error in a pipeline that ignores errors, as the store failing (or refusing).
pub(crate) fn server_error(e: redis::ServerError) -> End {
    End::from(redis::RedisError::from(e))
}

/// A script's reply for (provider, tenant), or `None` when the store refused it because one of
/// the circuit's keys holds another type than the fleet's (warned here, naming the key): that
/// costs this circuit's sharing, not the session. Any other error is the store failing.
pub(crate) fn unless_wrong_type<T>(
    reply: redis::RedisResult<T>,
    provider: &str,
    tenant: &str,
) -> Result<Option<T>, End> {
    match reply {
        Ok(reply) => Ok(Some(reply)),
        Err(e) if e.code() == Some("WRONGTYPE") => {
            tracing::warn!(
                target: "breaker::fleet", provider, tenant, error = %e,
                "a fleet key holds another type: its circuit is not shared until that key is deleted"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
