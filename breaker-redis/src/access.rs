//! Whether the store lets this replica share. An ACL user may connect, subscribe and read, and
//! still be refused `EVAL` (every write of the fleet is a script), `PUBLISH` on the namespace's
//! channel (a script's writes then stand while its announcement fails: Lua does not roll back),
//! or writes to the namespace's keys. Such a replica applies the others' changes and shares
//! none of its own; before this was checked, its health read connected between incidents, and
//! each refused write was taken for a store failure (a reconnection, then the same refusal).
//!
//! A refusal is not a store failure: the session goes on. The task finds it with [`check`] at
//! every (re)connection (a script that deletes a key no circuit uses and publishes a message no
//! replica acts on; again every second while refused, so that an ACL fixed meanwhile is seen)
//! and in every write; it is reported here, in [`FleetHealth`](crate::FleetHealth) (not
//! connected, cannot publish) and by a `WARN` with the store's error. A refused write is
//! dropped and counted; an opening the store took but did not announce is counted apart.

use std::time::Duration;

use redis::RedisError;

use crate::health::{Count, Health};
use crate::keys::{Layout, VERSION};
use crate::pending::Queued;
use crate::store::Conn;
use crate::timeout::within;

/// KEYS: a key no circuit uses (the channel's name). ARGV: the channel, a message. What every
/// write of the fleet needs: `EVAL`, a write to a key of the namespace (deleting one that is not
/// there), and `PUBLISH` on its channel from a script.
const CHECK_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// What the check and the reports need of the background task.
pub(crate) struct Access<'a> {
    pub(crate) health: &'a Health,
    pub(crate) layout: &'a Layout,
    pub(crate) replica: &'a str,
    /// How long one command may take.
    pub(crate) limit: Duration,
}

impl Access<'_> {
    /// Checks that the store takes this replica's writes and announcements, and reports the
    /// outcome. `Err` only for a store failure.
    pub(crate) async fn check(&self, conn: &mut Conn) -> Result<(), RedisError> {
        let channel = self.layout.channel();
        let mut check = crate::scripts::eval(CHECK_SCRIPT, std::slice::from_ref(&channel));
        // Three words: every replica ignores it (a change has five).
        check
            .arg(&channel)
            .arg(format!("{VERSION} check {}", self.replica));
        match within(self.limit, check.query_async::<i64>(conn)).await {
            Ok(_) => accepted(self.health),
            Err(e) if is_refusal(&e) => refused(self.health, &e.to_string()),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// After the store refused this replica's write of `change` with `error`: reports it,
    /// counts the change as dropped, and tells an opening that the script wrote before its
    /// announcement was refused. `Err` only for a store failure.
    pub(crate) async fn refused_write(
        &self,
        conn: &mut Conn,
        change: &Queued,
        error: &str,
    ) -> Result<(), RedisError> {
        refused(self.health, error);
        self.health.count(Count::Dropped);
        let Queued::Open {
            provider,
            tenant,
            level,
            ..
        } = change
        else {
            return Ok(());
        };
        let mut get = redis::cmd("GET");
        get.arg(self.layout.open_key(provider, tenant));
        let stored: Option<String> = match within(self.limit, get.query_async(conn)).await {
            Ok(stored) => stored,
            Err(e) if is_refusal(&e) => None,
            Err(e) => return Err(e),
        };
        if stored.is_some_and(|v| is_ours(&v, *level, self.replica)) {
            unannounced(self.health, provider, tenant, error);
        }
        Ok(())
    }
}

/// Whether the store refused `e` for want of a permission (an ACL), rather than failed: the
/// code `NOPERM` (a command, or a key in a script on Valkey), or the wording of a command or
/// channel refused inside a script (Redis: "The user executing the script can't ...", Valkey:
/// "ACL failure in script"), which comes as a plain `ERR`.
pub(crate) fn is_refusal(e: &RedisError) -> bool {
    if e.code() == Some("NOPERM") {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    [
        "noperm",
        "no permissions",
        "acl failure",
        "user executing the script can't",
    ]
    .iter()
    .any(|words| text.contains(words))
}

/// Whether the opening stored as `value` is `replica`'s at `level`: after a refused write,
/// the script wrote it and then could not announce it.
fn is_ours(value: &str, level: u32, replica: &str) -> bool {
    let mut fields = value.split(':');
    fields.next() == Some(level.to_string().as_str()) && fields.nth(1) == Some(replica)
}

/// The check passed: reported once, if the store refused before.
fn accepted(health: &Health) {
    if !health.set_publishing(true) {
        tracing::info!(
            target: "breaker::fleet",
            "fleet store takes this replica's changes again"
        );
    }
}

/// The store refused the check or a write with `error`: reported once, until it accepts again.
pub(crate) fn refused(health: &Health, error: &str) {
    if health.set_publishing(false) {
        tracing::warn!(
            target: "breaker::fleet", %error,
            "fleet store refuses this replica's changes (check the ACL user's permissions: \
             EVAL, PUBLISH on the namespace's channel, write access to its keys): it applies \
             the others' changes but shares none of its own"
        );
    }
}

/// The store took an opening of (`provider`, `tenant`) and refused to announce it (`error`).
fn unannounced(health: &Health, provider: &str, tenant: &str, error: &str) {
    let unannounced = health.count(Count::Unannounced);
    // One line per power of two, so a storm cannot flood the logs.
    if unannounced.is_power_of_two() {
        tracing::warn!(
            target: "breaker::fleet", provider, tenant, %error, unannounced,
            "fleet store took an opening but refused to announce it (no PUBLISH permission?): \
             the other replicas learn of it only when they resync"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opening_is_ours_by_its_level_and_replica() {
        assert!(is_ours("2:60000:cafe:90000", 2, "cafe"));
        assert!(!is_ours("1:60000:cafe:90000", 2, "cafe"));
        assert!(!is_ours("2:60000:beef:90000", 2, "cafe"));
        assert!(!is_ours("garbage", 2, "cafe"));
    }
}
