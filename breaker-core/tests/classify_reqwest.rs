//! Feature `reqwest`: real client errors against a loopback server: refused connections and
//! timeouts trip, statuses count by code.
#![cfg(feature = "reqwest")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use breaker_core::{Classify, ErrorClass, Outcome};

/// A loopback server that answers every connection with `response`, or holds it unanswered
/// when `response` is `None`; returns its address.
fn server(response: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = stream.write_all(r.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_refused_connection_is_a_network_failure() {
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
async fn statuses_count_by_code_as_errors_and_as_responses() {
    let unavailable = server(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
    ));
    let response = reqwest::get(&unavailable).await.unwrap();
    assert_eq!(
        response.classify(),
        Outcome::Failure,
        "an Ok(503) is a failure"
    );
    let err = response.error_for_status().unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::ServerError);

    let not_found = server(Some("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"));
    let response = reqwest::get(&not_found).await.unwrap();
    assert_eq!(
        response.classify(),
        Outcome::Success,
        "the caller's mistake"
    );
    let err = response.error_for_status().unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::InvalidRequest);
}

#[tokio::test]
async fn a_timeout_is_a_timeout() {
    let hanging = server(None);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let err = client.get(&hanging).send().await.unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::Timeout);
    assert_eq!(err.classify(), Outcome::Failure);
}

#[tokio::test]
async fn a_body_broken_off_mid_stream_is_a_network_failure() {
    // A chunked body whose connection closes after one chunk, before the terminating one.
    let broken = server(Some(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ));
    let mut response = reqwest::get(&broken).await.unwrap();
    assert_eq!(
        response.chunk().await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    let err = response.chunk().await.unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::Network, "{err:?}");
    assert_eq!(err.classify(), Outcome::Failure);

    let err = reqwest::get(&broken)
        .await
        .unwrap()
        .text()
        .await
        .unwrap_err();
    assert_eq!(ErrorClass::from(&err), ErrorClass::Network, "{err:?}");
}
