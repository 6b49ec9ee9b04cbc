//! The Lua scripts the background task runs in the store, each one atomic there: share an opening
//! (never over a newer one; with a quorum, once enough replicas reported it), race for the probe
//! lease, keep or give back a lease won, end an incident; and the reading of an opening's value,
//! which the scripts read too.

use std::sync::OnceLock;

use redis::aio::ConnectionLike;

/// `EVAL script` with `keys` as its KEYS, counted here so that the count cannot drift from the
/// list; the caller adds the ARGV.
pub(crate) fn eval(script: &str, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// A script sent by many at once (a batch of races): by its digest (`EVALSHA`, 40 bytes rather
/// than the text) once the store has told it.
pub(crate) struct Script {
    text: &'static str,
    /// The same for every store (SHA-1 of the text): learnt once per process.
    digest: OnceLock<String>,
}

impl Script {
    const fn new(text: &'static str) -> Script {
        Script {
            text,
            digest: OnceLock::new(),
        }
    }

    /// Loads the script into the store (`SCRIPT LOAD`) unless its digest is known already. A
    /// store that refuses (an ACL without `SCRIPT`) is sent the text every time.
    pub(crate) async fn load(
        &self,
        conn: &mut (impl ConnectionLike + Send),
    ) -> Result<(), redis::RedisError> {
        if self.digest.get().is_some() {
            return Ok(());
        }
        let loaded = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(self.text)
            .query_async::<String>(conn)
            .await;
        match loaded {
            Ok(digest) => {
                let _ = self.digest.set(digest);
                Ok(())
            }
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => Err(e),
            Err(_) => Ok(()),
        }
    }

    /// `EVALSHA` (with `by_digest`, once the digest is known) or `EVAL` of this script, with
    /// `keys`; the caller adds the ARGV. A node that lacks the script (restarted, or another
    /// master of a cluster) answers `NOSCRIPT`: send the same commands with `by_digest` false.
    pub(crate) fn call(&self, keys: &[String], by_digest: bool) -> redis::Cmd {
        match self.digest.get().filter(|_| by_digest) {
            Some(digest) => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(digest).arg(keys.len()).arg(keys);
                cmd
            }
            None => eval(self.text, keys),
        }
    }
}

/// [`RACE_SCRIPT`], sent in batches.
pub(crate) static RACE: Script = Script::new(RACE_SCRIPT);

/// [`LEASE_SCRIPT`], sent in batches.
pub(crate) static LEASE: Script = Script::new(LEASE_SCRIPT);

/// KEYS: opening, probe lease, reports, end of the last incident. ARGV: replica, period left
/// (ms), margin (ms), quorum, the opening's value, channel, message, level, 1 for a failed
/// probe's reopening, time since the trip (ms). Returns 1 when the opening was written and
/// announced, 2 for a report short of the quorum, 0 when a stored opening is newer or ends
/// later, or the incident ended after this trip (a replica that could not write meanwhile).
/// Reports expire by the store's clock (`TIME`), never a replica's.
pub(crate) const OPEN_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local left = tonumber(ARGV[2])
local level = tonumber(ARGV[8])
local ended = tonumber(redis.call('GET', KEYS[4]))
if ended then
  local pttl = redis.call('PTTL', KEYS[4])
  if pttl >= 0 and ended - pttl < tonumber(ARGV[10]) then
    return 0
  end
end
local current = redis.call('GET', KEYS[1])
if current then
  local stored_level, margin = string.match(current, '^(%d+):(%d+):')
  local pttl = redis.call('PTTL', KEYS[1])
  -- Only while the stored period runs: after it, the key lives on for the margin only so
  -- that late replicas learn of it, and a new trip at any level replaces it.
  if stored_level and pttl - tonumber(margin) > 0 then
    stored_level = tonumber(stored_level)
    if stored_level > level or (stored_level == level and pttl - tonumber(margin) >= left) then
      return 0
    end
  end
end
if tonumber(ARGV[4]) > 1 then
  local fleet_open = current or redis.call('GET', KEYS[2]) == ARGV[1]
  if ARGV[9] ~= '1' or not fleet_open then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    redis.call('ZADD', KEYS[3], now + left, ARGV[1])
    if redis.call('PTTL', KEYS[3]) < left then
      redis.call('PEXPIRE', KEYS[3], left)
    end
    if redis.call('ZCARD', KEYS[3]) < tonumber(ARGV[4]) then
      return 2
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[5], 'PX', left + tonumber(ARGV[3]))
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
";

/// KEYS: the probe lease, the opening. ARGV: replica, lease (ms). Returns {won, ms the lease
/// has left}: a replica that holds the lease already has won it; -1 when neither a lease nor
/// an opening is left (the incident expired without an outcome: racing stops). A lease without
/// a TTL (not written by a fleet) would hold every replica open for good: it is given one.
pub(crate) const RACE_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder and redis.call('EXISTS', KEYS[2]) == 0 then
  return {-1, 0}
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, tonumber(ARGV[2])}
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  pttl = tonumber(ARGV[2])
end
if holder == ARGV[1] then
  return {1, pttl}
end
return {0, pttl}
";

/// KEYS: the probe lease. ARGV: replica, lease (ms; 0: give it back). Keeps (a probe started:
/// the lease now lasts the circuit's `probe_timeout`) or gives back (no call came: another
/// replica may probe) the lease this replica holds; returns 1, or 0 when it holds it no more
/// (the incident ended, or its claim lapsed and another replica won).
pub(crate) const LEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// KEYS: opening, lease, reports, operator's switch, end of the last incident. ARGV: age of
/// the close or reset (ms), channel, message, 1 for a reset, margin (ms). An ended incident is
/// remembered for the margin, with its age, so that an opening from before it, written late, is
/// refused. An opening (or, for a reset, a switch) younger than the
/// close (by the TTL written in its value less its PTTL: store time) stays; one without a
/// written TTL is taken to be older. Returns what stayed: 1 the opening, 2 the switch (or'd).
/// The message goes out unless everything stayed.
pub(crate) const END_SCRIPT: &str = r"
local age = tonumber(ARGV[1])
local function younger(key, pattern)
  local v = redis.call('GET', key)
  if not v then
    return false
  end
  local ttl = tonumber(string.match(v, pattern))
  local pttl = redis.call('PTTL', key)
  return ttl ~= nil and pttl >= 0 and ttl - pttl < age
end
local kept = 0
if younger(KEYS[1], '^[^:]*:[^:]*:[^:]*:(%d+)$') then
  kept = 1
else
  -- Remembered as long as an opening of this incident could still be written late: the
  -- margin, and the ended opening's whole period and margin.
  local life = tonumber(ARGV[5])
  local opening = redis.call('GET', KEYS[1])
  if opening then
    life = life + (tonumber(string.match(opening, '^[^:]*:[^:]*:[^:]*:(%d+)$')) or 0)
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  local ended = tonumber(redis.call('GET', KEYS[5]))
  local pttl = redis.call('PTTL', KEYS[5])
  -- The end `age` ago, unless one more recent is remembered.
  if not ended or pttl < 0 or ended - pttl > age then
    redis.call('SET', KEYS[5], life + age, 'PX', life)
  end
end
if ARGV[4] == '1' then
  if younger(KEYS[4], '^[^:]*:[^:]*:(%d+)$') then
    kept = kept + 2
  else
    redis.call('DEL', KEYS[4])
  end
end
if (ARGV[4] == '1' and kept < 3) or (ARGV[4] ~= '1' and kept == 0) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return kept
";

/// (level, margin in ms) of an opening's value `level:margin_ms:replica[:ttl_ms]`.
pub(crate) fn parse_value(value: &str) -> Option<(u32, u64)> {
    let mut parts = value.split(':');
    let level = parts.next()?.parse().ok()?;
    let margin = parts.next()?.parse().ok()?;
    Some((level, margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_sends_what_the_hand_counted_eval_sent() {
        let keys = ["a{x}:open".to_owned(), "a{x}:probe".to_owned()];
        let folded = eval(RACE_SCRIPT, &keys)
            .arg("replica")
            .arg(1200_u64)
            .get_packed_command();
        let by_hand = redis::cmd("EVAL")
            .arg(RACE_SCRIPT)
            .arg(2)
            .arg(&keys[0])
            .arg(&keys[1])
            .arg("replica")
            .arg(1200_u64)
            .get_packed_command();
        assert_eq!(folded, by_hand);
    }

    #[test]
    fn a_script_goes_by_its_text_until_its_digest_is_known() {
        let script = Script::new("return 1");
        let keys = ["k".to_owned()];
        assert_eq!(
            script.call(&keys, true).get_packed_command(),
            eval("return 1", &keys).get_packed_command()
        );
        let _ = script
            .digest
            .set("e0e1f9fabfc9d4800c877a703b823ac0578ff8db".to_owned());
        let by_digest = redis::cmd("EVALSHA")
            .arg("e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
            .arg(1)
            .arg("k")
            .get_packed_command();
        assert_eq!(script.call(&keys, true).get_packed_command(), by_digest);
        assert_eq!(
            script.call(&keys, false).get_packed_command(),
            eval("return 1", &keys).get_packed_command(),
            "after NOSCRIPT"
        );
    }
}
