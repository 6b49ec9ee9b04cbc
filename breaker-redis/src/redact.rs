//! A store URL as `Debug` shows it: every place redis-rs reads a credential from is hidden, and
//! so is anything that might be one written in the wrong place.
//!
//! redis-rs (1.8) takes a password from the user info of `redis://`, `rediss://`, `valkey://`
//! and `valkeys://` URLs (`user:password@`, `:password@`), and from the `pass` query parameter
//! (with `user`) of `redis+unix://`, `valkey+unix://` and `unix://` URLs. The URL is read with
//! redis-rs's own parser, so a secret is found where redis-rs will find it (a percent-encoded
//! `pa%73s` is `pass`); what redis-rs would refuse (a path that is no database number, a
//! fragment other than `#insecure`, a string that is no URL at all) may hold a mistyped secret
//! and is hidden whole. Query parameters other than `db` and `protocol` never reach the store
//! and are hidden too.

/// What stands for a hidden part.
const HIDDEN: &str = "***";

/// `url` with its secrets replaced by `***`; a username is shown only beside a password (alone,
/// it is often the password written in the wrong place: `redis://s3cret@host`).
pub(crate) fn redact(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    let Some(parsed) = redis::parse_redis_url(url) else {
        return format!("<not a Redis URL: hidden> ({} bytes)", url.len());
    };
    if parsed.cannot_be_a_base() {
        return format!("<not a Redis URL: hidden> ({} bytes)", url.len());
    }
    let scheme = parsed.scheme();
    let unix = matches!(scheme, "redis+unix" | "valkey+unix" | "unix");
    // Raw pieces (as written) beside their decoded form (as redis-rs reads them): the form
    // decoder skips empty pieces, and so does this.
    let raw: Vec<&str> = parsed
        .query()
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let password = parsed.password().is_some()
        || pairs
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "pass" | "password"));

    let mut out = format!("{scheme}://");
    let user = parsed.username();
    if parsed.password().is_some() {
        out.push_str(user);
        out.push(':');
        out.push_str(HIDDEN);
        out.push('@');
    } else if !user.is_empty() {
        out.push_str(HIDDEN);
        out.push('@');
    }
    if let Some(host) = parsed.host_str() {
        out.push_str(host);
    }
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    let path = parsed.path();
    let db = path.trim_matches('/');
    if unix || db.is_empty() || db.parse::<i64>().is_ok() {
        out.push_str(path);
    } else {
        out.push('/');
        out.push_str(HIDDEN);
    }
    if parsed.query().is_some() {
        out.push('?');
        let shown: Vec<String> = raw
            .iter()
            .zip(&pairs)
            .map(|(raw, (key, value))| {
                let raw_key = raw.split_once('=').map_or(*raw, |(k, _)| k);
                let clear = match key.as_str() {
                    "db" => value.parse::<i64>().is_ok(),
                    "protocol" => matches!(value.as_str(), "2" | "3" | "resp2" | "resp3"),
                    "user" | "username" => password,
                    _ => false,
                };
                if clear {
                    (*raw).to_owned()
                } else if value.is_empty() {
                    // A bare word: its name may be the secret.
                    HIDDEN.to_owned()
                } else {
                    format!("{raw_key}={HIDDEN}")
                }
            })
            .collect();
        out.push_str(&shown.join("&"));
    }
    match parsed.fragment() {
        None => {}
        Some("insecure") => out.push_str("#insecure"),
        Some(_) => {
            out.push('#');
            out.push_str(HIDDEN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of credential redis-rs reads, and the mistakes that put one elsewhere: the
    /// secret never shows, and what helps to tell stores apart does.
    #[test]
    fn every_credential_redis_rs_reads_is_hidden() {
        let cases = [
            // User info, in every TCP scheme redis-rs knows.
            (
                "redis://app:s3cret@cache:6379/0",
                "redis://app:***@cache:6379/0",
            ),
            (
                "rediss://app:s3cret@cache:6380/",
                "rediss://app:***@cache:6380/",
            ),
            ("valkey://app:s3cret@cache/", "valkey://app:***@cache/"),
            (
                "valkeys://app:s3cret@cache:6380/",
                "valkeys://app:***@cache:6380/",
            ),
            ("REDIS://app:s3cret@cache/", "redis://app:***@cache/"),
            ("redis://:s3cret@cache/", "redis://:***@cache/"),
            ("redis://s3cret@cache/", "redis://***@cache/"),
            ("redis://app:s3%40cret@cache/", "redis://app:***@cache/"),
            ("redis://app:s3@cret@cache/", "redis://app:***@cache/"),
            (
                "redis://app:s3cret@[::1]:6379/",
                "redis://app:***@[::1]:6379/",
            ),
            (
                "rediss://app:s3cret@cache/#insecure",
                "rediss://app:***@cache/#insecure",
            ),
            // Query parameters of Unix socket URLs, in every Unix scheme.
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "unix:///run/redis.sock?user=app&pass=s3cret&db=2",
                "unix:///run/redis.sock?user=app&pass=***&db=2",
            ),
            (
                "valkey+unix:///run/valkey.sock?db=1&user=app&pass=s3cret",
                "valkey+unix:///run/valkey.sock?db=1&user=app&pass=***",
            ),
            (
                "redis+unix:///run/redis.sock?pa%73s=s3cret",
                "redis+unix:///run/redis.sock?pa%73s=***",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret&pass=s3cret2",
                "redis+unix:///run/redis.sock?pass=***&pass=***",
            ),
            // Written where redis-rs does not read them: hidden all the same.
            (
                "redis+unix:///run/redis.sock?user=s3cret",
                "redis+unix:///run/redis.sock?user=***",
            ),
            (
                "redis://cache/?password=s3cret",
                "redis://cache/?password=***",
            ),
            (
                "redis://cache/?user=app&password=s3cret",
                "redis://cache/?user=app&password=***",
            ),
            ("redis://cache/?s3cret", "redis://cache/?***"),
            (
                "redis://cache/?token=s3cret&protocol=resp3",
                "redis://cache/?token=***&protocol=resp3",
            ),
            (
                "redis://cache/?protocol=s3cret",
                "redis://cache/?protocol=***",
            ),
            ("redis://cache/?db=s3cret", "redis://cache/?db=***"),
            ("redis://cache/#s3cret", "redis://cache/#***"),
            // A password with an unescaped `/` ends the authority early: the rest is a path.
            ("redis://app:12/s3cret@cache/", "redis://app:12/***"),
            ("redis://cache:6379/s3cret", "redis://cache:6379/***"),
            // Not a URL redis-rs takes: nothing of it is shown.
            (
                "redis:app:s3cret@cache",
                "<not a Redis URL: hidden> (22 bytes)",
            ),
            (
                "http://app:s3cret@cache/",
                "<not a Redis URL: hidden> (24 bytes)",
            ),
            (
                "redis://app:s3cret@cache:port/",
                "<not a Redis URL: hidden> (30 bytes)",
            ),
            ("s3cret", "<not a Redis URL: hidden> (6 bytes)"),
            // Nothing secret: unchanged.
            ("redis://cache:6379/?x=1", "redis://cache:6379/?x=***"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            (
                "redis+unix:///run/redis.sock",
                "redis+unix:///run/redis.sock",
            ),
            (
                "redis://cache/?protocol=resp3&db=3",
                "redis://cache/?protocol=resp3&db=3",
            ),
        ];
        for (url, shown) in cases {
            assert!(!redact(url).contains("s3"), "{url} shows its secret");
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    /// The cases above are credentials redis-rs really reads: checked against its own parser,
    /// so a new redis-rs that reads them elsewhere fails here.
    #[test]
    fn the_hidden_secrets_are_where_redis_rs_reads_them() {
        use redis::IntoConnectionInfo;
        for url in [
            "redis://app:s3cret@cache/",
            "rediss://app:s3cret@cache/",
            "valkey://app:s3cret@cache/",
            "valkeys://app:s3cret@cache/",
            "redis+unix:///run/redis.sock?user=app&pass=s3cret",
            "unix:///run/redis.sock?user=app&pass=s3cret",
            "valkey+unix:///run/valkey.sock?user=app&pass=s3cret",
            "redis+unix:///run/redis.sock?pa%73s=s3cret",
        ] {
            // `rediss` and `valkeys` need the TLS feature to parse into connection info.
            let Ok(info) = url.into_connection_info() else {
                assert!(url.contains("s://"), "{url}");
                continue;
            };
            assert_eq!(info.redis_settings().password(), Some("s3cret"), "{url}");
            assert!(!redact(url).contains("s3cret"), "{url}");
        }
    }
}
