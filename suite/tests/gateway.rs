//! Features `axum`, `serde`, `reqwest`: the gateway example's router answers a rejection with the breaker's 503 and
//! `Retry-After`, without calling the upstream, while other tenants are served; its admin
//! endpoint filters by `?state=open` (a `breaker::State` from the query string).
#![cfg(all(feature = "axum", feature = "serde", feature = "reqwest"))]

#[path = "../examples/gateway/app.rs"]
mod app;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use app::Gateway;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use breaker::{ManualClock, Registry};
use tower::ServiceExt;

#[derive(serde::Deserialize)]
struct Caller {
    tenant: String,
}

/// GETs `uri` from `router`; returns the status, the `Retry-After` header and the body.
async fn get_from(router: &Router, uri: &str) -> (StatusCode, Option<String>, String) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_tripped_tenant_gets_503_with_retry_after_and_others_are_served() {
    // A real upstream on the loopback (reqwest needs one), failing for acme, counting its calls.
    let acme_calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&acme_calls);
    let upstream = Router::new().route(
        "/answer",
        get(move |Query(caller): Query<Caller>| {
            let counted = Arc::clone(&counted);
            async move {
                if caller.tenant == "acme" {
                    counted.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::SERVICE_UNAVAILABLE, String::new())
                } else {
                    (StatusCode::OK, format!("hello, {}", caller.tenant))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await.unwrap() });

    let clock = ManualClock::new();
    let gateway = Arc::new(Gateway {
        client: reqwest::Client::new(),
        upstream: format!("http://{addr}"),
        registry: Arc::new(Registry::builder().clock(clock.clone()).build()),
    });
    let router = app::router(gateway);

    for _ in 0..3 {
        let (status, retry_after, _) = get_from(&router, "/complete?tenant=acme").await;
        assert_eq!(
            status,
            StatusCode::BAD_GATEWAY,
            "the upstream's 503, passed on"
        );
        assert_eq!(retry_after, None);
    }
    assert_eq!(acme_calls.load(Ordering::SeqCst), 3);

    // Tripped: open for 5 s. 1.5 s later the client is told to come back in 4 s (3.5, rounded up).
    clock.advance(std::time::Duration::from_millis(1_500));
    let (status, retry_after, body) = get_from(&router, "/complete?tenant=acme").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("4"));
    assert!(!body.is_empty());
    assert_eq!(
        acme_calls.load(Ordering::SeqCst),
        3,
        "rejected without a call"
    );

    let (status, _, body) = get_from(&router, "/complete?tenant=globex").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello, globex"));

    let (status, _, open) = get_from(&router, "/admin/circuits?state=open").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        open.contains(r#""tenant":"acme""#) && !open.contains("globex"),
        "{open}"
    );
    let (status, _, _) = get_from(&router, "/admin/circuits?state=shut").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown state is the caller's error"
    );
}
