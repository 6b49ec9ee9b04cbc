//! Where a fleet's facts live in the store: the key layout, version 1.
//!
//! ```text
//! breaker:v1:<namespace>:{<provider>:<tenant>}:open     an opening (string, TTL = open period + margin)
//! breaker:v1:<namespace>:{<provider>:<tenant>}:operator an operator's switch (string, TTL = operator_ttl)
//! breaker:v1:<namespace>:{<provider>:<tenant>}:probe    the probe lease (string, TTL = probe_lease)
//! breaker:v1:<namespace>:{<provider>:<tenant>}:reports  with a quorum: who reported an opening
//!                                                       (sorted set: replica by expiry in store
//!                                                       time, TTL = the longest report's period)
//! breaker:v1:<namespace>:{<provider>:<tenant>}:ended    when the last incident ended (string:
//!                                                       its TTL when written, TTL = margin)
//! breaker:v1:<namespace>:{<provider>:<tenant>}:evidence the failures the replicas pool (hash:
//!                                                       per replica its streak, window gauges,
//!                                                       baselines and report time in store
//!                                                       time; TTL 30 s)
//! breaker:v1:<namespace>:changes                        the pub/sub channel of the namespace
//! ```
//!
//! An opening's value is `<level>:<margin ms>:<replica>:<TTL ms it was written with>`: what is
//! left of its period is its `PTTL` less the margin, and its age, `TTL - PTTL`, is store time,
//! so a close made on a replica some time ago can tell whether the opening came after it.
//!
//! Every name is percent-encoded: only `A-Z a-z 0-9 . _ -` stay as they are, every other byte
//! (`%`, `:`, `{`, `}`, spaces, newlines, `*`, `[` ...) becomes `%XX`. So the encoding is
//! injective, an encoded name never holds a separator, a hash-tag brace or a glob character,
//! and no provider, tenant or namespace can reach another circuit's key or another namespace.
//! The braces make `<provider>:<tenant>` the key's hash tag: every key of one circuit lands in
//! one Redis Cluster slot.

use std::fmt::Write;

/// The layout's version, part of every key: a new layout gets new keys, never misreads old ones.
pub(crate) const VERSION: &str = "v1";

/// Percent-encodes `name` (see the module docs).
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`encode`]; `None` for anything `encode` cannot have produced.
pub(crate) fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = encoded.get(i + 1..i + 3)?;
                // Exactly two upper-case hex digits: `from_str_radix` alone would take `+F`.
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                let b = u8::from_str_radix(hex, 16).ok()?;
                out.push(b);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// What a circuit key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Open,
    Operator,
}

/// The keys and channel of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `breaker:v1:<namespace>:`
    prefix: String,
}

impl Layout {
    pub(crate) fn new(namespace: &str) -> Self {
        Layout {
            prefix: format!("breaker:{VERSION}:{}:", encode(namespace)),
        }
    }

    /// The key of an opening of (`provider`, `tenant`).
    pub(crate) fn open_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:open",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The key of an operator's switch of (`provider`, `tenant`).
    pub(crate) fn operator_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:operator",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The key of the probe lease of (`provider`, `tenant`).
    pub(crate) fn probe_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:probe",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The key of the reports of an opening of (`provider`, `tenant`), with a quorum.
    pub(crate) fn reports_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:reports",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The key that remembers, for the margin, that (`provider`, `tenant`)'s incident ended:
    /// an opening from before the end, written late, is refused.
    pub(crate) fn ended_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:ended",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The key of the evidence the replicas pool for (`provider`, `tenant`).
    pub(crate) fn evidence_key(&self, provider: &str, tenant: &str) -> String {
        format!(
            "{}{{{}:{}}}:evidence",
            self.prefix,
            encode(provider),
            encode(tenant)
        )
    }

    /// The SCAN pattern of every circuit key of the namespace.
    pub(crate) fn circuit_pattern(&self) -> String {
        format!("{}{{*}}:*", self.prefix)
    }

    /// What a circuit key of this namespace holds, and of which (provider, tenant).
    pub(crate) fn parse_key(&self, key: &str) -> Option<(Kind, String, String)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('{')?;
        let (tag, kind) = rest.split_once('}')?;
        let kind = match kind {
            ":open" => Kind::Open,
            ":operator" => Kind::Operator,
            _ => return None,
        };
        let (provider, tenant) = tag.split_once(':')?;
        Some((kind, decode(provider)?, decode(tenant)?))
    }

    /// The namespace's pub/sub channel.
    pub(crate) fn channel(&self) -> String {
        format!("{}changes", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_leaves_no_separator_brace_or_glob() {
        let long = "é{}:*".repeat(205); // over 1 KiB
        for name in [
            "acme",
            "",
            "a:b",
            "{x}",
            "}{",
            "line\nbreak",
            "50%",
            "a b",
            "*?[]",
            &long,
        ] {
            let e = encode(name);
            assert!(
                !e.contains([':', '{', '}', '*', '?', '[', ']', '\n', ' ']),
                "{name:?} -> {e:?}"
            );
            assert_eq!(decode(&e).as_deref(), Some(name));
        }
        assert_eq!(encode("a:b"), "a%3Ab");
        assert_eq!(decode("a%3ab"), None, "only the canonical form decodes");
        assert_eq!(decode("a:b"), None);
        assert_eq!(decode("a%+Fb"), None, "a sign is no hex digit");
    }

    #[test]
    fn keys_of_one_circuit_share_a_hash_tag_and_names_cannot_cross() {
        let l = Layout::new("checkout");
        let k = l.open_key("openai", "acme");
        assert_eq!(k, "breaker:v1:checkout:{openai:acme}:open");
        assert_eq!(
            l.parse_key(&k),
            Some((Kind::Open, "openai".into(), "acme".into()))
        );
        assert_eq!(
            l.parse_key(&l.operator_key("openai", "a:b")),
            Some((Kind::Operator, "openai".into(), "a:b".into()))
        );
        // A tenant that looks like a key suffix or a provider separator stays its own circuit.
        assert_ne!(l.open_key("openai", "a:b"), l.open_key("openai:a", "b"));
        let evil = l.open_key("openai", "x}:open\nbreaker:v1:other:{openai:acme");
        assert_eq!(evil.matches('{').count(), 1);
        assert_eq!(evil.matches('}').count(), 1);
        assert!(evil.starts_with("breaker:v1:checkout:{"));
        // A namespace cannot reach another: "a" and "a:b" have disjoint key spaces.
        let (a, ab) = (Layout::new("a"), Layout::new("a:b"));
        assert!(a.parse_key(&ab.open_key("p", "t")).is_none());
        assert_ne!(a.channel(), ab.channel());
    }
}
