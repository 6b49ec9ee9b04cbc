//! After a store restart or failover (or any reconnection where the store's `run_id` cannot
//! tell): the openings this replica knew are written back, so that a store that lost its keys
//! has the fleet's incidents again.
//!
//! Without this, every replica kept the period it knew, found no opening to race for when it
//! ended (the race stops when the store has neither an opening nor a lease), and probed on its
//! own: one probe per replica instead of one per fleet. Written back, the opening is raced for
//! as before, and replicas that start later see it.
//!
//! Every replica that knew an opening tries; the first one writes it, the others find it there
//! and leave it (one script each, atomic in the store). A restored opening is the weakest fact
//! in the store: it never replaces an opening or a lease (written since the restart, by a replica
//! that knows better), it carries its age from the original trip (so a close made after that trip
//! ends it), and it is refused when the incident ended after that trip (a close or a reset
//! written since): then it has ended here too.

use std::time::{Duration, Instant};

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::keys::Layout;
use crate::known::{Key, Opening};
use crate::scripts::RESTORE;
use crate::store::Conn;
use crate::timeout::within;

/// An opening known before a session, that the store may have lost.
pub(crate) type Lost = (Key, Opening);

/// Openings written back per pipeline.
const CHUNK: usize = 500;

/// The age, in store time, of the opening stored as `value` with `pttl` ms to live: the TTL it
/// was written with (its last field, `level:margin_ms:replica:ttl_ms`) less what is left. An
/// opening without one is taken to be as old again as what is left of its key: old enough that
/// a close made since ends it.
pub(crate) fn age(value: &str, pttl: i64) -> Duration {
    let pttl = u64::try_from(pttl).unwrap_or(0);
    let written = value
        .split(':')
        .nth(3)
        .and_then(|ttl| ttl.parse::<u64>().ok());
    Duration::from_millis(written.map_or(pttl, |ttl| ttl.saturating_sub(pttl)))
}

/// Writes back the openings of `lost` whose keys should still be there (in their periods or
/// margins): `value(level, ttl_ms)` is an opening's value (`ttl_ms`, the TTL it would have
/// been written with at its trip), `message(provider, tenant)` its announcement. Returns the
/// openings in the store again (this write, or another replica's: what a later reconnection
/// checks), and the circuits whose incidents ended since they opened, while this replica could
/// not hear it (they close).
pub(crate) async fn write_back(
    conn: &mut Conn,
    layout: &Layout,
    limit: Duration,
    lost: Vec<Lost>,
    value: impl Fn(u32, u64) -> String,
    message: impl Fn(&str, &str) -> String,
) -> Result<(Vec<Lost>, Vec<Key>), RedisError> {
    let now = Instant::now();
    let lost: Vec<Lost> = lost.into_iter().filter(|(_, o)| o.until > now).collect();
    let (mut back, mut ended) = (Vec::new(), Vec::new());
    if !lost.is_empty() {
        within(limit, RESTORE.load(conn)).await?;
    }
    for chunk in lost.chunks(CHUNK) {
        // By the script's digest; a store that lacks it (it restarted: what this is for) is
        // sent its text.
        let pipeline = |by_digest: bool| {
            let mut pipe = redis::pipe();
            for ((provider, tenant), opening) in chunk {
                // The key lives as long as it would have (replicas of a namespace share their
                // margin, which the value carries: what is left of the period reads the same).
                let ttl_ms = millis(opening.until.saturating_duration_since(now)).max(1);
                let age_ms = millis(now.saturating_duration_since(opening.since));
                let mut restore = RESTORE.call(
                    &[
                        layout.open_key(provider, tenant),
                        layout.probe_key(provider, tenant),
                        layout.ended_key(provider, tenant),
                    ],
                    by_digest,
                );
                restore
                    .arg(ttl_ms)
                    .arg(value(opening.level, age_ms + ttl_ms))
                    .arg(layout.channel())
                    .arg(message(provider, tenant))
                    .arg(age_ms);
                pipe.add_command(restore);
            }
            pipe
        };
        let restored: Vec<i64> = match within(limit, pipeline(true).query_async(conn)).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                within(limit, pipeline(false).query_async(conn)).await?
            }
            restored => restored?,
        };
        for ((key, opening), restored) in chunk.iter().zip(restored) {
            if restored < 0 {
                ended.push(key.clone());
            } else {
                back.push((key.clone(), *opening));
            }
        }
    }
    Ok((back, ended))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openings_age_is_its_written_ttl_less_what_is_left() {
        assert_eq!(age("2:60000:cafe:90000", 80_000), Duration::from_secs(10));
        assert_eq!(age("2:60000:cafe", 80_000), Duration::from_secs(80));
        assert_eq!(age("2:60000:cafe:junk", -2), Duration::ZERO);
        assert_eq!(age("", 5), Duration::from_millis(5));
    }
}
