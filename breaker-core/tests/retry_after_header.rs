//! Features `http` and `reqwest`: a 429 or 503 whose `Retry-After` says when to come back
//! classifies as `Outcome::RetryAfter`, in both of the header's forms; without a usable header,
//! as its status.
#![cfg(feature = "http")]

use std::time::{Duration, SystemTime};

use breaker_core::{retry_after_header, Classify, Outcome};
use http::{HeaderMap, Response};

fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

#[test]
fn delay_seconds() {
    for status in [429, 503] {
        assert_eq!(
            response(status, &[("retry-after", "120")]).classify(),
            Outcome::RetryAfter(Duration::from_secs(120)),
            "{status}"
        );
    }
    assert_eq!(
        response(429, &[("retry-after", " 7 ")]).classify(),
        Outcome::RetryAfter(Duration::from_secs(7)),
        "optional whitespace around the value"
    );
    assert_eq!(
        response(503, &[("retry-after", "99999999999999999999999")]).classify(),
        Outcome::RetryAfter(Duration::from_secs(u64::MAX)),
        "longer than anything: the circuit caps it at max_open_for"
    );
}

#[test]
fn an_http_date_counts_from_the_responses_date_header() {
    // The provider's clock is what matters, not ours: its `Date` is years in our past.
    assert_eq!(
        response(
            503,
            &[
                ("date", DATE),
                ("retry-after", "Wed, 21 Oct 2015 07:30:30 GMT")
            ]
        )
        .classify(),
        Outcome::RetryAfter(Duration::from_secs(150))
    );
    // The two obsolete forms RFC 9110 still asks recipients to accept.
    for obsolete in [
        "Wednesday, 21-Oct-15 07:29:00 GMT",
        "Wed Oct 21 07:29:00 2015",
    ] {
        assert_eq!(
            response(429, &[("date", DATE), ("retry-after", obsolete)]).classify(),
            Outcome::RetryAfter(Duration::from_secs(60)),
            "{obsolete}"
        );
    }
}

#[test]
fn an_http_date_without_a_date_header_counts_from_now() {
    let in_a_year = SystemTime::now() + Duration::from_secs(366 * 24 * 3600);
    let header = httpdate::fmt_http_date(in_a_year);
    let Outcome::RetryAfter(d) = response(429, &[("retry-after", &header)]).classify() else {
        panic!("not a RetryAfter");
    };
    // Whole seconds, read against a clock that moved on since: within a minute of a year.
    assert!(
        d > Duration::from_secs(365 * 24 * 3600) && d <= Duration::from_secs(366 * 24 * 3600),
        "{d:?}"
    );
}

#[test]
fn a_date_in_the_past_is_a_plain_failure() {
    assert_eq!(
        response(
            503,
            &[
                ("date", DATE),
                ("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")
            ]
        )
        .classify(),
        Outcome::RetryAfter(Duration::ZERO)
    );
    assert_eq!(
        response(503, &[("retry-after", DATE)]).classify(),
        Outcome::RetryAfter(Duration::ZERO),
        "long past by our clock"
    );
}

#[test]
fn without_a_usable_header_a_response_counts_as_its_status() {
    for bad in [
        "",
        "-5",
        "1.5",
        "soon",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "120s",
    ] {
        assert_eq!(
            response(429, &[("retry-after", bad)]).classify(),
            Outcome::Failure,
            "{bad:?}"
        );
    }
    assert_eq!(response(503, &[]).classify(), Outcome::Failure);
    assert_eq!(
        response(503, &[("retry-after", "10"), ("retry-after", "20")]).classify(),
        Outcome::Failure,
        "two values: no single time to trust"
    );
}

#[test]
fn other_statuses_ignore_the_header() {
    assert_eq!(
        response(500, &[("retry-after", "10")]).classify(),
        Outcome::Failure
    );
    assert_eq!(
        response(301, &[("retry-after", "10")]).classify(),
        Outcome::Success
    );
    assert_eq!(
        response(413, &[("retry-after", "10")]).classify(),
        Outcome::Success,
        "the caller's request was too large"
    );
}

#[test]
fn the_parser_is_public_for_users_own_types() {
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after_header(&headers), None);
    headers.insert("retry-after", "0".parse().unwrap());
    assert_eq!(retry_after_header(&headers), Some(Duration::ZERO));
}

#[cfg(feature = "reqwest")]
#[test]
fn reqwest_responses_read_the_header_too() {
    let with =
        |headers: &[(&str, &str)]| reqwest::Response::from(response(429, headers).map(|()| ""));
    assert_eq!(
        with(&[("retry-after", "30")]).classify(),
        Outcome::RetryAfter(Duration::from_secs(30))
    );
    assert_eq!(
        with(&[
            ("date", DATE),
            ("retry-after", "Wed, 21 Oct 2015 07:28:45 GMT")
        ])
        .classify(),
        Outcome::RetryAfter(Duration::from_secs(45))
    );
    assert_eq!(with(&[]).classify(), Outcome::Failure);
}

#[cfg(feature = "reqwest-0-12")]
#[test]
fn reqwest_0_12_responses_read_the_header_too() {
    let with = |headers: &[(&str, &str)]| {
        reqwest_0_12::Response::from(response(503, headers).map(|()| ""))
    };
    assert_eq!(
        with(&[("retry-after", "30")]).classify(),
        Outcome::RetryAfter(Duration::from_secs(30))
    );
    assert_eq!(with(&[]).classify(), Outcome::Failure);
}
