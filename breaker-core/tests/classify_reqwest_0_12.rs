//! Feature `reqwest-0-12`: reqwest 0.12's errors and responses classify as 0.13's do
//! (`classify_reqwest.rs`), for services that have not upgraded.
#![cfg(feature = "reqwest-0-12")]

use std::io::{Read, Write};
use std::net::TcpListener;

use breaker_core::{Classify, ErrorClass, Outcome};
use reqwest_0_12 as reqwest;

#[tokio::test]
async fn a_refused_connection_is_a_network_failure_with_reqwest_0_12() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
    assert!(err.is_connect());
    assert_eq!(ErrorClass::from(&err), ErrorClass::Network);
    assert_eq!(err.classify(), Outcome::Failure);
}

#[tokio::test]
async fn a_503_fails_as_a_response_and_as_an_error_with_reqwest_0_12() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let _ = stream.read(&mut [0; 1024]);
            let _ =
                stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let response = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(response.classify(), Outcome::Failure);
    let err = response.error_for_status().unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::ServerError);
}
