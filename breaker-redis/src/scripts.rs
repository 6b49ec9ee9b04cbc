//! The Lua scripts the background task runs in the store, each one atomic there: share an opening
//! (never over a newer one; with a quorum, once enough replicas reported it), race for the probe
//! lease, keep or give back a lease won, end an incident, write back an opening a restarted
//! store lost; and the reading of an opening's value, which the scripts read too. The scripts
//! that go out by the thousand (races and leases) are [`Script`]s, sent by digest (`EVALSHA`).
//!
//! The store is not trusted to hold what the fleet wrote. Every script first checks the types of
//! its keys: one that holds another type (a list where an opening should be) makes the script
//! change nothing and reply with a `WRONGTYPE` error naming it, which costs that circuit alone
//! (the task warns and goes on; in a batch, that circuit's reply alone). Every number read back
//! from the store follows one rule, here in [`decimal`] and in the scripts' `decimal`: 1 to 15
//! decimal digits (exact in Lua's doubles, so both sides read the same value), within its bound;
//! anything else is absent.

use std::sync::OnceLock;

use breaker_core::fleet::MAX_LEVEL;
use redis::aio::ConnectionLike;

/// `EVAL script` with `keys` as its KEYS, counted here so that the count cannot drift from the
/// list; the caller adds the ARGV.
pub(crate) fn eval(script: &str, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// What every script starts with (a macro, for `concat!`): the reading of numbers and of an
/// opening's value, and the check of its keys' types.
macro_rules! prelude {
    () => {
        r"
local MAX_LEVEL = 31
-- A number the store holds: 1 to 15 decimal digits, at most `max` if given; else nil.
local function decimal(s, max)
  if type(s) ~= 'string' or #s > 15 or not string.find(s, '^%d+$') then
    return nil
  end
  local n = tonumber(s)
  if max and n > max then
    return nil
  end
  return n
end
-- The level and margin of an opening's value `level:margin:replica[:ttl]`, or nil.
local function opening(v)
  if type(v) ~= 'string' then
    return nil
  end
  local level, margin = string.match(v, '^([^:]*):([^:]*):')
  level, margin = decimal(level, MAX_LEVEL), decimal(margin)
  if level and margin then
    return level, margin
  end
  return nil
end
-- An error naming the first of KEYS that holds another type than `types` says (false: any),
-- or nil. Called before anything is written, so that such a key leaves the store unchanged.
local function wrong_type(types)
  for i, want in ipairs(types) do
    local kind = redis.call('TYPE', KEYS[i])['ok']
    if want and kind ~= 'none' and kind ~= want then
      return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. want)
    end
  end
  return nil
end
"
    };
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

/// [`RESTORE_SCRIPT`], sent in batches (every opening known, after a restart).
pub(crate) static RESTORE: Script = Script::new(RESTORE_SCRIPT);

/// KEYS: opening, probe lease, reports, end of the last incident, pooled evidence (deleted
/// when the opening is written: a new incident pools anew). ARGV: replica, period left
/// (ms), margin (ms), quorum, the opening's value, channel, message, level, 1 for a failed
/// probe's reopening, time since the trip (ms). Returns 1 when the opening was written and
/// announced, 2 for a report short of the quorum, 0 when a stored opening is newer or ends
/// later, or the incident ended after this trip (a replica that could not write meanwhile).
/// Reports expire by the store's clock (`TIME`), never a replica's.
pub(crate) const OPEN_SCRIPT: &str = concat!(
    prelude!(),
    r"
if redis.replicate_commands then redis.replicate_commands() end
local bad = wrong_type({'string', 'string', 'zset', 'string', 'hash'})
if bad then
  return bad
end
local left = tonumber(ARGV[2])
local level = tonumber(ARGV[8])
local ended = decimal(redis.call('GET', KEYS[4]))
if ended then
  local pttl = redis.call('PTTL', KEYS[4])
  if pttl >= 0 and ended - pttl < tonumber(ARGV[10]) then
    return 0
  end
end
local stored_level, margin = opening(redis.call('GET', KEYS[1]))
if stored_level then
  local pttl = redis.call('PTTL', KEYS[1])
  -- Only while the stored period runs: after it, the key lives on for the margin only so
  -- that late replicas learn of it, and a new trip at any level replaces it.
  if pttl - margin > 0 then
    if stored_level > level or (stored_level == level and pttl - margin >= left) then
      return 0
    end
  end
end
if tonumber(ARGV[4]) > 1 then
  local fleet_open = stored_level or redis.call('GET', KEYS[2]) == ARGV[1]
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
redis.call('DEL', KEYS[2], KEYS[5])
redis.call('SET', KEYS[1], ARGV[5], 'PX', left + tonumber(ARGV[3]))
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"
);

/// KEYS: the probe lease, the opening. ARGV: replica, lease (ms). Returns {won, ms the lease
/// has left}: a replica that holds the lease already has won it; -1 when neither a lease nor
/// an opening is left (the incident expired without an outcome: racing stops). A lease without
/// a TTL (not written by a fleet) would hold every replica open for good: it is given one.
pub(crate) const RACE_SCRIPT: &str = concat!(
    prelude!(),
    r"
local bad = wrong_type({'string'})
if bad then
  return bad
end
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
"
);

/// KEYS: the probe lease. ARGV: replica, lease (ms; 0: give it back). Keeps (a probe started:
/// the lease now lasts the circuit's `probe_timeout`) or gives back (no call came: another
/// replica may probe) the lease this replica holds; returns 1, or 0 when it holds it no more
/// (the incident ended, or its claim lapsed and another replica won).
pub(crate) const LEASE_SCRIPT: &str = concat!(
    prelude!(),
    r"
local bad = wrong_type({'string'})
if bad then
  return bad
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"
);

/// KEYS: opening, lease, reports, operator's switch, end of the last incident, pooled evidence
/// (deleted with the opening: a recovered fleet pools anew). ARGV: age of
/// the close or reset (ms), channel, message, 1 for a reset, margin (ms). An ended incident is
/// remembered for the margin, with its age, so that an opening from before it, written late, is
/// refused. An opening (or, for a reset, a switch) younger than the
/// close (by the TTL written in its value less its PTTL: store time) stays; one without a
/// written TTL is taken to be older. Returns what stayed: 1 the opening, 2 the switch (or'd).
/// The message goes out unless everything stayed.
pub(crate) const END_SCRIPT: &str = concat!(
    prelude!(),
    r"
local reset = ARGV[4] == '1'
local bad = wrong_type({'string', 'string', 'zset', reset and 'string', 'string', 'hash'})
if bad then
  return bad
end
local age = tonumber(ARGV[1])
-- The TTL a value says it was written with, when that can be true (no less than what is left).
local function written_ttl(v, pttl, pattern)
  local ttl = decimal(string.match(v, pattern))
  if ttl and ttl >= pttl then
    return ttl
  end
  return nil
end
local function younger(key, pattern)
  local v = redis.call('GET', key)
  if not v then
    return false
  end
  local pttl = redis.call('PTTL', key)
  local ttl = written_ttl(v, pttl, pattern)
  return ttl ~= nil and pttl >= 0 and ttl - pttl < age
end
local OPENING_TTL = '^[^:]*:[^:]*:[^:]*:([^:]*)$'
local kept = 0
if younger(KEYS[1], OPENING_TTL) then
  kept = 1
else
  -- Remembered as long as an opening of this incident could still be written late: the
  -- margin, and the ended opening's whole period and margin.
  local life = tonumber(ARGV[5])
  local opening = redis.call('GET', KEYS[1])
  if opening then
    life = life + (written_ttl(opening, redis.call('PTTL', KEYS[1]), OPENING_TTL) or 0)
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[6])
  local ended = decimal(redis.call('GET', KEYS[5]))
  local pttl = redis.call('PTTL', KEYS[5])
  -- The end `age` ago, unless one more recent is remembered.
  if not ended or pttl < 0 or ended - pttl > age then
    redis.call('SET', KEYS[5], life + age, 'PX', life)
  end
end
if reset then
  if younger(KEYS[4], '^[^:]*:[^:]*:([^:]*)$') then
    kept = kept + 2
  else
    redis.call('DEL', KEYS[4])
  end
end
if (reset and kept < 3) or (not reset and kept == 0) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return kept
"
);

/// KEYS: opening, probe lease, end of the last incident. ARGV: the key's TTL (ms: what is left
/// of the period and the margin), the opening's value, channel, message, time since the trip
/// (ms). Writes back an opening that a restarted store lost (`restore.rs`). Returns 1 when
/// written and announced; 0 when an opening or a lease is there (of any type: such a key is
/// left as it is, and costs its own circuit when another script meets it); -1 when the
/// incident ended after this trip. An end that is no number (or no string) is absent.
pub(crate) const RESTORE_SCRIPT: &str = concat!(
    prelude!(),
    r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local ended = decimal(redis.pcall('GET', KEYS[3]))
if ended then
  local pttl = redis.call('PTTL', KEYS[3])
  if pttl >= 0 and ended - pttl < tonumber(ARGV[5]) then
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"
);

/// [`EVIDENCE_SCRIPT`], sent in batches (every circuit whose evidence changed since the last
/// write, in one pipeline).
pub(crate) static EVIDENCE: Script = Script::new(EVIDENCE_SCRIPT);

/// KEYS: pooled evidence (hash), opening, probe lease, end of the last incident. ARGV: 1
/// replica, 2 its failure streak, 3 `1` if it saw a success since its last report, 4 the
/// consecutive threshold (0: none), 5 its window's calls, 6 its window's failures, 7 the
/// failure rate threshold (0: none), 8 minimum calls, 9 how long a report's window counts (ms
/// of store time: a time window's length, else the evidence TTL), 10 quorum, 11 ms since the
/// first failure this report counts, 12 open period (ms), 13 margin (ms), 14 the opening's
/// value, 15 channel, 16 message, 17 the evidence TTL (ms), 18 the trip's message (which
/// carries the opening's value, so that replicas apply it without reading the key back), 19 the
/// hashes of its distinct failing tenants, comma-separated (a provider circuit's pooled window,
/// `wide.rs`; else empty), 20 the fewest distinct failing tenants of the fleet for a trip (0:
/// no such condition, and no tenant fields).
///
/// One field per replica and gauge (`s:` streak, `c:` calls, `f:` failures, `t:` when it was
/// reported, in store time, never a replica's clock), and baselines (`b:`, `bc:`, `bf:`): how
/// much of a replica's gauge is no evidence any more. A success anywhere baselines every
/// replica's streak (the fleet's streak is its failures since the last success any replica
/// reported); an incident that ended after this report's first failure baselines all of this
/// replica's gauges (a replica cut off while the fleet recovered must not reopen it with what
/// it saw before). A report counts for the evidence TTL (its window gauges, within a time
/// window's length). Nothing pools while the fleet is open (an opening runs, or a lease is
/// held). With a distinct-tenants condition, `d:` holds each replica's failing tenants and
/// `bd:` those a stale report baselined (they count again once they left its window and came
/// back); the fleet's distinct tenants are the union of the live reports' sets.
///
/// Returns 1 when the pooled evidence tripped the fleet (the opening written and announced as
/// `OPEN_SCRIPT` writes one, the evidence spent), 2 when pooled short of a trip (or of the
/// quorum), 3 when stale (baselined), 0 while the fleet is open.
pub(crate) const EVIDENCE_SCRIPT: &str = concat!(
    prelude!(),
    r"
if redis.replicate_commands then redis.replicate_commands() end
local bad = wrong_type({'hash', 'string', 'string', 'string'})
if bad then
  return bad
end
local stored_level, margin = opening(redis.call('GET', KEYS[2]))
if stored_level and redis.call('PTTL', KEYS[2]) - margin > 0 then
  return 0
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local me = ARGV[1]
local streak, calls, fails = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl = tonumber(ARGV[17])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(v)
  return decimal(v) or 0
end
local distinct = tonumber(ARGV[20])
local function set_of(v)
  local set = {}
  for hash in string.gmatch(v or '', '[^,]+') do
    set[hash] = true
  end
  return set
end
local function list_of(set)
  local list = {}
  for hash in pairs(set) do
    list[#list + 1] = hash
  end
  return table.concat(list, ',')
end
local function put(b, bc, bf)
  redis.call('HSET', KEYS[1], 's:' .. me, streak, 'b:' .. me, b, 'c:' .. me, calls,
    'bc:' .. me, bc, 'f:' .. me, fails, 'bf:' .. me, bf, 't:' .. me, now)
  if distinct > 0 then
    redis.call('HSET', KEYS[1], 'd:' .. me, ARGV[19])
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local ended = decimal(redis.call('GET', KEYS[4]))
if ended then
  local pttl = redis.call('PTTL', KEYS[4])
  if pttl >= 0 and ended - pttl < tonumber(ARGV[11]) then
    put(streak, calls, fails)
    if distinct > 0 then
      redis.call('HSET', KEYS[1], 'bd:' .. me, ARGV[19])
    end
    return 3
  end
end
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 and streak == 0 and fails == 0 then
  -- Nothing pooled, and nothing to pool: no key for a success alone.
  return 2
end
local h = {}
for i = 1, #fields, 2 do
  h[fields[i]] = fields[i + 1]
end
if ARGV[3] == '1' then
  -- A success: every replica's streak so far is no evidence any more.
  for k, v in pairs(h) do
    local r = string.match(k, '^s:(.*)$')
    if r and r ~= me then
      h['b:' .. r] = v
      redis.call('HSET', KEYS[1], 'b:' .. r, v)
    end
  end
  h['b:' .. me] = '0'
end
-- A gauge below its baseline restarted (a success here) or slid: the baseline follows it down.
local b, bc, bf = num(h['b:' .. me]), num(h['bc:' .. me]), num(h['bf:' .. me])
if streak < b then b = 0 end
if calls < bc then bc = calls end
if fails < bf then bf = fails end
put(b, bc, bf)
if distinct > 0 and h['bd:' .. me] then
  -- A baselined tenant that left this replica's window counts again when it comes back.
  local mine, kept = set_of(ARGV[19]), {}
  for hash in pairs(set_of(h['bd:' .. me])) do
    if mine[hash] then kept[hash] = true end
  end
  h['bd:' .. me] = list_of(kept)
  redis.call('HSET', KEYS[1], 'bd:' .. me, h['bd:' .. me])
end
h['d:' .. me] = ARGV[19]
h['s:' .. me], h['b:' .. me], h['t:' .. me] = tostring(streak), tostring(b), tostring(now)
h['c:' .. me], h['bc:' .. me] = tostring(calls), tostring(bc)
h['f:' .. me], h['bf:' .. me] = tostring(fails), tostring(bf)
local counts = tonumber(ARGV[9])
local fleet_streak, fleet_calls, fleet_fails, replicas = 0, 0, 0, 0
local tenants, fleet_tenants = {}, 0
for k, v in pairs(h) do
  local r = string.match(k, '^t:(.*)$')
  if r then
    local age = now - num(v)
    if age > ttl then
      redis.call('HDEL', KEYS[1], 's:' .. r, 'b:' .. r, 'c:' .. r, 'bc:' .. r, 'f:' .. r,
        'bf:' .. r, 't:' .. r, 'd:' .. r, 'bd:' .. r)
    else
      local s = math.max(0, num(h['s:' .. r]) - num(h['b:' .. r]))
      local c, f = 0, 0
      if age <= counts then
        c = math.max(0, num(h['c:' .. r]) - num(h['bc:' .. r]))
        f = math.max(0, num(h['f:' .. r]) - num(h['bf:' .. r]))
        if distinct > 0 then
          local baselined = set_of(h['bd:' .. r])
          for hash in pairs(set_of(h['d:' .. r])) do
            if not baselined[hash] and not tenants[hash] then
              tenants[hash] = true
              fleet_tenants = fleet_tenants + 1
            end
          end
        end
      end
      fleet_streak = fleet_streak + s
      fleet_calls, fleet_fails = fleet_calls + c, fleet_fails + f
      if s > 0 or f > 0 then
        replicas = replicas + 1
      end
    end
  end
end
if replicas < tonumber(ARGV[10]) then
  return 2
end
local threshold, rate = tonumber(ARGV[4]), tonumber(ARGV[7])
local tripped = (threshold > 0 and fleet_streak >= threshold)
  or (rate > 0 and fleet_calls > 0 and fleet_calls >= tonumber(ARGV[8])
    and fleet_fails / fleet_calls >= rate and fleet_tenants >= distinct)
if not tripped then
  return 2
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SET', KEYS[2], ARGV[14], 'PX', tonumber(ARGV[12]) + tonumber(ARGV[13]))
redis.call('PUBLISH', ARGV[15], ARGV[18])
redis.call('PUBLISH', ARGV[15], ARGV[16])
return 1
"
);

/// A number the store holds: 1 to 15 decimal digits, at most `max`; else `None` (the scripts'
/// `decimal`, the same rule: a sign, an exponent, a space, hex or 16 digits are no number).
pub(crate) fn decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n <= max)
}

/// (level, margin in ms) of an opening's value `level:margin_ms:replica[:ttl_ms]`, read as the
/// scripts' `opening` reads it: `None` for garbage (a level above [`MAX_LEVEL`] included).
pub(crate) fn parse_value(value: &str) -> Option<(u32, u64)> {
    let mut parts = value.split(':');
    let level = decimal(parts.next()?, u64::from(MAX_LEVEL))?;
    let margin = decimal(parts.next()?, u64::MAX)?;
    parts.next()?; // the replica
    Some((u32::try_from(level).ok()?, margin))
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
    fn the_scripts_cap_levels_where_the_circuits_do() {
        let cap = format!("local MAX_LEVEL = {MAX_LEVEL}\n");
        for script in [
            OPEN_SCRIPT,
            RACE_SCRIPT,
            LEASE_SCRIPT,
            END_SCRIPT,
            RESTORE_SCRIPT,
            EVIDENCE_SCRIPT,
        ] {
            assert!(script.contains(&cap), "{cap:?}");
        }
    }

    #[test]
    fn garbage_numbers_are_absent() {
        for garbage in [
            "1e20",
            "-1",
            "abc",
            "",
            "+5",
            " 1",
            "1 ",
            "0x10",
            "1.5",
            "١",
            "1000000000000000",
            "100000000000000000000",
        ] {
            assert_eq!(
                parse_value(&format!("{garbage}:60000:r:90000")),
                None,
                "level {garbage:?}"
            );
            assert_eq!(
                parse_value(&format!("0:{garbage}:r:90000")),
                None,
                "margin {garbage:?}"
            );
        }
        for too_high in ["32", "4294967296"] {
            assert_eq!(
                parse_value(&format!("{too_high}:60000:r:90000")),
                None,
                "level {too_high:?} is above the cap"
            );
        }
        assert_eq!(parse_value("5:60000"), None, "no replica");
        assert_eq!(parse_value("31:60000:r:90000"), Some((31, 60_000)));
        assert_eq!(parse_value("007:0:r"), Some((7, 0)));
        assert_eq!(
            decimal("999999999999999", u64::MAX),
            Some(999_999_999_999_999)
        );
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
