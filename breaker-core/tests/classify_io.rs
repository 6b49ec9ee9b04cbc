//! Feature `io`: `std::io::Error`s from real sockets classified by kind.
#![cfg(feature = "io")]

use std::io::{Error, ErrorKind};
use std::net::{TcpListener, TcpStream};

use breaker_core::{Circuit, Classify, Config, ErrorClass, Outcome, State};

#[test]
fn connection_failures_and_timeouts_trip_other_kinds_prove_nothing() {
    for kind in [
        ErrorKind::ConnectionRefused,
        ErrorKind::ConnectionReset,
        ErrorKind::ConnectionAborted,
        ErrorKind::BrokenPipe,
        ErrorKind::UnexpectedEof,
    ] {
        assert_eq!(
            ErrorClass::from(&Error::from(kind)),
            ErrorClass::Network,
            "{kind:?}"
        );
    }
    assert_eq!(
        ErrorClass::from(&Error::from(ErrorKind::TimedOut)),
        ErrorClass::Timeout
    );
    for kind in [
        ErrorKind::NotFound,
        ErrorKind::InvalidInput,
        ErrorKind::Interrupted,
    ] {
        assert_eq!(Error::from(kind).classify(), Outcome::Ignored, "{kind:?}");
    }
    assert_eq!(Error::other("custom").classify(), Outcome::Ignored);
}

#[test]
fn a_refused_loopback_connection_trips_the_circuit() {
    // A port that was just free: nothing listens on it any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let circuit = Circuit::new(Config::builder().consecutive_failures(2).build().unwrap());
    for _ in 0..2 {
        let permit = circuit.try_acquire().unwrap();
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        permit.record(err.classify());
    }
    assert_eq!(circuit.state(), State::Open);
}
