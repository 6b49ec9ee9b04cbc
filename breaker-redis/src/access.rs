//! Whether the store lets this replica share. An ACL user may connect, subscribe and read, and
//! still be refused `EVAL` (every write of the fleet is a script), `PUBLISH` on the namespace's
//! channel (a script's writes then stand while its announcement fails: Lua does not roll back),
//! or writes to the namespace's keys. Such a replica applies the others' changes and shares
//! none of its own; before this was checked, its health read connected between incidents, and
//! each refused write was taken for a store failure (a reconnection, then the same refusal).
//!
//! A refusal is not a store failure: the session goes on. It is found by a check at every
//! (re)connection (a script that deletes a key no circuit uses and publishes a message no
//! replica acts on; again every second while refused, so that an ACL fixed meanwhile is seen)
//! and by every write; it is reported in [`FleetHealth`](crate::FleetHealth) (not connected,
//! cannot publish) and by a `WARN` with the store's error. A refused write is dropped and
//! counted; an opening the store took but did not announce is counted apart.

use redis::RedisError;
use tokio::time::timeout;

use crate::health::Count;
use crate::pending::Queued;
use crate::store::Conn;
use crate::task::{End, Task};

/// KEYS: a key no circuit uses (the channel's name). ARGV: the channel, a message. What every
/// write of the fleet needs: `EVAL`, a write to a key of the namespace (deleting one that is not
/// there), and `PUBLISH` on its channel from a script.
const CHECK_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

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

impl Task {
    /// Checks that the store takes this replica's writes and announcements (see the module
    /// docs). Returns `Err` only for a store failure.
    pub(crate) async fn check_access(&self, conn: &mut Conn) -> Result<(), End> {
        let channel = self.layout.channel();
        let checked = timeout(
            self.command_timeout,
            crate::scripts::eval(CHECK_SCRIPT, std::slice::from_ref(&channel))
                .arg(&channel)
                // Three words: every replica ignores it (a change has five).
                .arg(format!("{} check {}", crate::keys::VERSION, self.replica))
                .query_async::<i64>(conn),
        )
        .await?;
        match checked.map_err(End::from) {
            Ok(_) => {
                if !self.health.set_publishing(true) {
                    tracing::info!(
                        target: "breaker::fleet",
                        "fleet store takes this replica's changes again"
                    );
                }
                Ok(())
            }
            Err(End::Refused(error)) => {
                self.refused(&error);
                Ok(())
            }
            Err(end) => Err(end),
        }
    }

    /// Reports a refusal (once, until the store takes this replica's changes again).
    pub(crate) fn refused(&self, error: &str) {
        if self.health.set_publishing(false) {
            tracing::warn!(
                target: "breaker::fleet", %error,
                "fleet store refuses this replica's changes (check the ACL user's permissions: \
                 EVAL, PUBLISH on the namespace's channel, write access to its keys): it applies \
                 the others' changes but shares none of its own"
            );
        }
    }

    /// Writes one local change and announces it (on failure the caller keeps it for the
    /// store's return); a change the store refuses is reported and dropped, and an opening it
    /// took without announcing it is told apart.
    pub(crate) async fn write(&self, conn: &mut Conn, change: &Queued) -> Result<(), End> {
        let error = match self.write_change(conn, change).await {
            Err(End::Refused(error)) => error,
            done => return done,
        };
        self.refused(&error);
        self.health.count(Count::Dropped);
        if let Queued::Open {
            provider,
            tenant,
            level,
            ..
        } = change
        {
            let key = self.layout.open_key(provider, tenant);
            let stored: Option<String> = match timeout(
                self.command_timeout,
                redis::cmd("GET").arg(&key).query_async(conn),
            )
            .await?
            {
                Ok(stored) => stored,
                Err(e) if is_refusal(&e) => None,
                Err(e) => return Err(e.into()),
            };
            // This replica's opening at this level: the script wrote it, then could not
            // announce it.
            let ours = stored.is_some_and(|value| {
                let mut fields = value.split(':');
                fields.next() == Some(level.to_string().as_str())
                    && fields.nth(1) == Some(self.replica.as_str())
            });
            if ours {
                let unannounced = self.health.count(Count::Unannounced);
                if unannounced.is_power_of_two() {
                    tracing::warn!(
                        target: "breaker::fleet", provider, tenant, %error, unannounced,
                        "fleet store took an opening but refused to announce it (no PUBLISH \
                         permission?): the other replicas learn of it only when they resync"
                    );
                }
            }
        }
        Ok(())
    }
}
