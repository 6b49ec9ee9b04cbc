//! What the store says, applied here: other replicas' announcements (every key they name read
//! in one pipeline, as the store has it now: an announcement only says where to look) and the
//! resync of the whole namespace after every (re)connection. A key the store holds as another
//! type, or as bytes that are no text, costs its own circuit (warned, naming it), never the
//! others' or the session.

use std::time::{Duration, Instant};

use breaker_core::fleet::FleetLink;
use breaker_core::State;
use redis::aio::ConnectionLike;
use tokio::time::timeout;

use crate::health::Count;
use crate::keys::{self, Kind, VERSION};
use crate::known::Opening;
use crate::restore;
use crate::scripts::parse_value;
use crate::store::Conn;
use crate::task::{server_error, End, Task, SCAN_COUNT};

impl Task {
    /// Applies other replicas' announcements, in order, as the store has them now (an
    /// announcement only says where to look: the key decides), reading every key they name in
    /// one pipeline.
    pub(crate) async fn receive(
        &self,
        conn: &mut Conn,
        link: &FleetLink,
        messages: &[redis::Msg],
    ) -> Result<(), End> {
        for message in messages {
            // A trip of pooled evidence says what it wrote: applied without a read (its
            // `open` announcement follows, for replicas that do not know trips, and re-reads
            // the key: the same opening, applied again).
            if let Some((provider, tenant, value)) = self.trip(message) {
                let pttl = value
                    .rsplit(':')
                    .next()
                    .and_then(|ttl| crate::scripts::decimal(ttl, u64::MAX))
                    .and_then(|ttl| i64::try_from(ttl).ok())
                    .unwrap_or(0);
                if !self.apply_open(link, &provider, &tenant, Some(&value), pttl) {
                    return Err(End::Done);
                }
            }
        }
        let announced: Vec<(&str, String, String)> = messages
            .iter()
            .filter_map(|message| self.announcement(message))
            .collect();
        if announced.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (op, provider, tenant) in &announced {
            let key = self.layout.open_key(provider, tenant);
            match *op {
                "open" => {
                    pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
                }
                // A close that arrives after a newer opening was written must not undo it.
                "close" => {
                    pipe.cmd("EXISTS").arg(&key);
                }
                _ => {
                    let switch = self.layout.operator_key(provider, tenant);
                    pipe.cmd("GET").arg(&switch).cmd("PTTL").arg(&switch);
                    pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
                }
            }
        }
        // A key of another type costs its own circuit, never the others' (see `read`).
        pipe.ignore_errors();
        let read: Vec<redis::Value> =
            timeout(self.command_timeout, pipe.query_async(conn)).await??;
        let mut read = read.into_iter();
        let mut next = || -> Result<redis::Value, End> {
            read.next()
                .ok_or_else(|| End::Failed("a pipeline answered short".to_owned()))
        };
        for (op, provider, tenant) in &announced {
            let key = self.layout.open_key(provider, tenant);
            let alive = match *op {
                "open" => match pair(&key, next()?, next()?)? {
                    Some((opening, pttl)) => {
                        self.apply_open(link, provider, tenant, opening.as_deref(), pttl)
                    }
                    None => true,
                },
                "close" => {
                    let exists = match next()? {
                        redis::Value::ServerError(e) => return Err(server_error(e)),
                        v => redis::from_redis_value::<i64>(v)
                            .map_err(|e| End::Failed(e.to_string()))?,
                    };
                    if exists > 0 {
                        true
                    } else {
                        self.health.count(Count::Applied);
                        let key = (provider.clone(), tenant.clone());
                        self.probes().untrack(&key);
                        self.known().ended(&key);
                        link.close(provider, tenant)
                    }
                }
                _ => {
                    let switch = self.layout.operator_key(provider, tenant);
                    let switch = pair(&switch, next()?, next()?)?;
                    let opening = pair(&key, next()?, next()?)?;
                    match switch {
                        // A reset that gave way to a newer opening: the circuit resets, then
                        // takes it.
                        Some((value, pttl)) => {
                            self.apply_operator(link, provider, tenant, value.as_deref(), pttl)
                                && (value.is_some()
                                    || opening.is_none_or(|(opening, open_pttl)| {
                                        self.apply_open(
                                            link,
                                            provider,
                                            tenant,
                                            opening.as_deref(),
                                            open_pttl,
                                        )
                                    }))
                        }
                        // A switch key of another type says nothing, not "reset".
                        None => true,
                    }
                }
            };
            if !alive {
                return Err(End::Done);
            }
        }
        Ok(())
    }

    /// (op, provider, tenant) of another replica's announcement: `open`, `close` or
    /// `operator`; `None` for this replica's own, and for anything else.
    fn announcement(&self, message: &redis::Msg) -> Option<(&'static str, String, String)> {
        let text = std::str::from_utf8(message.get_payload_bytes()).ok()?;
        let mut parts = text.split(' ');
        let (Some(VERSION), Some(op), Some(replica), Some(provider), Some(tenant), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if replica == self.replica {
            return None;
        }
        let op = ["open", "close", "operator"]
            .into_iter()
            .find(|o| *o == op)?;
        Some((op, keys::decode(provider)?, keys::decode(tenant)?))
    }

    /// (provider, tenant, the opening's value) of another replica's trip of pooled evidence
    /// (`<version> trip <replica> <provider> <tenant> <value>`); `None` for anything else.
    fn trip(&self, message: &redis::Msg) -> Option<(String, String, String)> {
        let text = std::str::from_utf8(message.get_payload_bytes()).ok()?;
        let mut parts = text.split(' ');
        let (
            Some(VERSION),
            Some("trip"),
            Some(replica),
            Some(provider),
            Some(tenant),
            Some(value),
            None,
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        if replica == self.replica {
            return None;
        }
        Some((
            keys::decode(provider)?,
            keys::decode(tenant)?,
            value.to_owned(),
        ))
    }

    /// The value and `PTTL` of each of `keys` (strings the fleet wrote), read in one pipeline; per
    /// key `None` when it holds another type, or bytes that are no text (warned here, naming
    /// it): one such key costs its own circuit, never the read of the others or the session.
    pub(crate) async fn read(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        keys: &[&str],
    ) -> Result<Vec<Option<(Option<String>, i64)>>, End> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("GET").arg(*key).cmd("PTTL").arg(*key);
        }
        pipe.ignore_errors();
        let replies: Vec<redis::Value> =
            timeout(self.command_timeout, pipe.query_async(conn)).await??;
        let mut replies = replies.into_iter();
        let mut read = Vec::with_capacity(keys.len());
        for key in keys {
            let (Some(value), Some(pttl)) = (replies.next(), replies.next()) else {
                return Err(End::Failed("a pipeline's reply came short".to_owned()));
            };
            read.push(pair(key, value, pttl)?);
        }
        Ok(read)
    }

    /// Opens (provider, tenant) for what is left of the opening stored as `value` with `pttl` ms
    /// to live. Returns whether the registry is still there.
    pub(crate) fn apply_open(
        &self,
        link: &FleetLink,
        provider: &str,
        tenant: &str,
        value: Option<&str>,
        pttl: i64,
    ) -> bool {
        let Some((level, margin_ms)) = value.and_then(parse_value) else {
            return link.is_alive();
        };
        let left_ms = pttl.saturating_sub(i64::try_from(margin_ms).unwrap_or(i64::MAX));
        if left_ms <= 0 {
            return link.is_alive();
        }
        self.health.count(Count::Applied);
        let left = Duration::from_millis(left_ms as u64);
        // The circuit here holds it no longer than its own longest period (`adopt_open`): the
        // race for its probe runs before that ends, not when the store says.
        let held = link
            .config(provider, tenant)
            .map_or(left, |config| left.min(config.longest_open_for()));
        let now = Instant::now();
        let expires = now + Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
        self.probes().track(
            (provider.to_owned(), tenant.to_owned()),
            now + held,
            level,
            expires,
            link.rejected(provider, tenant),
        );
        self.known().opened(
            (provider.to_owned(), tenant.to_owned()),
            // Written back after a restart no longer than held here.
            Opening::new(
                now,
                held,
                Duration::from_millis(margin_ms),
                restore::age(value.unwrap_or_default(), pttl),
                level,
            ),
        );
        link.open(provider, tenant, left, level)
    }

    /// Makes the operator's switch stored as `value` with `pttl` ms to live (none: a reset).
    /// Returns whether the registry is still there.
    pub(crate) fn apply_operator(
        &self,
        link: &FleetLink,
        provider: &str,
        tenant: &str,
        value: Option<&str>,
        pttl: i64,
    ) -> bool {
        let state = match value {
            None => State::Closed,
            Some(value) => match value.split(':').next() {
                Some("forced_open") => State::ForcedOpen,
                Some("disabled") => State::Disabled,
                Some("metrics_only") => State::MetricsOnly,
                _ => return link.is_alive(),
            },
        };
        self.health.count(Count::Applied);
        let key = (provider.to_owned(), tenant.to_owned());
        self.probes().untrack(&key);
        if state == State::Closed {
            self.known().reset(&key);
        } else {
            let left = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
            self.known().switched(key, Instant::now() + left);
        }
        link.operate(provider, tenant, state)
    }

    /// Applies every opening and operator's switch of the namespace (at start and after every
    /// reconnection).
    pub(crate) async fn resync(&self, conn: &mut Conn, link: &FleetLink) -> Result<(), End> {
        // SCAN walks one node: in a cluster each master holds a share of the namespace.
        let masters = timeout(self.command_timeout, conn.masters()).await??;
        for master in &masters {
            self.resync_on(&mut conn.on(master), link).await?;
        }
        Ok(())
    }

    /// [`resync`](Self::resync) of the keys held by the node `conn` sends to.
    async fn resync_on(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        link: &FleetLink,
    ) -> Result<(), End> {
        let pattern = self.layout.circuit_pattern();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = timeout(
                self.command_timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(conn),
            )
            .await??;
            // Only openings and switches are read: the pattern also matches leases, markers and
            // a quorum's reports, a sorted set that GET would fail on (and the whole pipeline
            // with it).
            let keys: Vec<(Kind, String, String, &String)> = keys
                .iter()
                .filter_map(|key| {
                    let (kind, provider, tenant) = self.layout.parse_key(key)?;
                    Some((kind, provider, tenant, key))
                })
                .collect();
            if !keys.is_empty() {
                let names: Vec<&str> = keys.iter().map(|(.., key)| key.as_str()).collect();
                let found = self.read(conn, &names).await?;
                for ((kind, provider, tenant, _), found) in keys.iter().zip(found) {
                    // A key of another type (warned about): skipped, the rest applied.
                    let Some((value, pttl)) = found else { continue };
                    let alive = match kind {
                        Kind::Open => {
                            self.apply_open(link, provider, tenant, value.as_deref(), pttl)
                        }
                        // A key gone between SCAN and GET is no reset: skip it.
                        Kind::Operator if value.is_some() => {
                            self.apply_operator(link, provider, tenant, value.as_deref(), pttl)
                        }
                        Kind::Operator => true,
                    };
                    if !alive {
                        return Err(End::Done);
                    }
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// The replies to `GET key` and `PTTL key` in a pipeline that ignores errors: `None` when the
/// key holds another type, or bytes that are no text (warned here, naming it), so that one such
/// key costs its own circuit; any other error is the store failing.
fn pair(
    key: &str,
    value: redis::Value,
    pttl: redis::Value,
) -> Result<Option<(Option<String>, i64)>, End> {
    let error = match (value, pttl) {
        (redis::Value::ServerError(e), _) | (_, redis::Value::ServerError(e)) => {
            if e.code() != "WRONGTYPE" {
                // Not this key's doing (a store refusing reads): the store failing.
                return Err(server_error(e));
            }
            format!("{}: {}", e.code(), e.details().unwrap_or_default())
        }
        (value, pttl) => match (
            redis::from_redis_value::<Option<String>>(value),
            redis::from_redis_value::<i64>(pttl),
        ) {
            (Ok(value), Ok(pttl)) => return Ok(Some((value, pttl))),
            (Err(e), _) | (_, Err(e)) => e.to_string(),
        },
    };
    tracing::warn!(
        target: "breaker::fleet", key, %error,
        "a fleet key holds another type or no text: its circuit is not shared until that key is deleted"
    );
    Ok(None)
}
