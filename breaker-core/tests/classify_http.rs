//! Feature `http`: statuses and responses count by status, even inside an `Ok`.
#![cfg(feature = "http")]

use breaker_core::{Classify, ErrorClass, Outcome};
use http::{Response, StatusCode};

#[test]
fn statuses_below_400_succeed_5xx_and_429_fail_other_4xx_are_the_callers() {
    for s in [200, 201, 204, 301, 304] {
        assert_eq!(
            StatusCode::from_u16(s).unwrap().classify(),
            Outcome::Success,
            "{s}"
        );
    }
    for s in [500, 502, 503, 504, 429, 408] {
        assert_eq!(
            StatusCode::from_u16(s).unwrap().classify(),
            Outcome::Failure,
            "{s}"
        );
    }
    for s in [400, 401, 403, 404, 413, 422] {
        assert_eq!(
            StatusCode::from_u16(s).unwrap().classify(),
            Outcome::Success,
            "{s}"
        );
    }
    assert_eq!(
        ErrorClass::from(StatusCode::BAD_GATEWAY),
        ErrorClass::ServerError
    );
}

#[test]
fn a_response_counts_as_its_status() {
    let ok = Response::builder().status(200).body("fine").unwrap();
    let unavailable = Response::builder().status(503).body("").unwrap();
    assert_eq!(ok.classify(), Outcome::Success);
    assert_eq!(unavailable.classify(), Outcome::Failure);
}
