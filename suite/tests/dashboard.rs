//! Feature `dashboard`: the dashboard's router, asked with `oneshot`: its JSON API (open
//! circuits first, paging, search, filters), operator actions (403 without a hook or when it
//! refuses, done and logged when it allows), names escaped in the server-rendered page, and the
//! server-sent events' bounded queue.
#![cfg(feature = "dashboard")]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::body::{Body, HttpBody};
use axum::http::{Request, StatusCode};
use axum::Router;
use breaker::dashboard::{Action, ActionKind, Dashboard, Feed};
use breaker::{Config, ManualClock, Registry, State};
use serde_json::Value;
use tower::ServiceExt;

fn registry(feed: &Feed) -> Arc<Registry> {
    Arc::new(
        Registry::builder()
            .clock(ManualClock::new())
            .default_config(Config::builder().consecutive_failures(1).build().unwrap())
            .listener(feed.listener())
            .build(),
    )
}

fn trip(registry: &Registry, provider: &str, tenant: &str) {
    registry
        .circuit(provider, tenant)
        .try_acquire()
        .unwrap()
        .failure();
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_json(router: &Router, uri: &str) -> Value {
    let (status, body) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn post(router: &Router, uri: &str, operator: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::post(uri);
    if let Some(name) = operator {
        request = request.header("x-operator", name);
    }
    let (status, body) = send(router, request.body(Body::empty()).unwrap()).await;
    (status, serde_json::from_str(&body).unwrap())
}

fn tenants(page: &Value) -> Vec<(String, String)> {
    page["circuits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["tenant"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn providers_count_their_tenants_by_state() {
    let feed = Feed::new();
    let r = registry(&feed);
    for t in ["a", "b", "c"] {
        r.circuit("openai", t);
    }
    trip(&r, "openai", "b");
    r.circuit("anthropic", "a").force_open();
    let router = Dashboard::new(r.clone()).feed(feed).router();

    let summary = get_json(&router, "/providers").await;
    assert_eq!(summary["live"], true);
    assert_eq!(summary["actions"], false);
    let providers = summary["providers"].as_array().unwrap();
    assert_eq!(providers[0]["provider"], "anthropic");
    assert_eq!(providers[0]["forced_open"], 1);
    assert_eq!(providers[1]["provider"], "openai");
    assert_eq!(
        (
            &providers[1]["total"],
            &providers[1]["open"],
            &providers[1]["closed"]
        ),
        (&Value::from(3), &Value::from(1), &Value::from(2))
    );
}

#[tokio::test]
async fn providers_show_their_provider_wide_circuit_apart_from_the_tenants() {
    let feed = Feed::new();
    let r = Arc::new(
        Registry::builder()
            .clock(ManualClock::new())
            .provider_wide(
                "p",
                breaker::ProviderWide::builder()
                    .minimum_calls(4)
                    .build()
                    .unwrap(),
            )
            .listener(feed.listener())
            .build(),
    );
    r.circuit("q", "acme");
    let router = Dashboard::new(r.clone()).feed(feed).router();

    // Four distinct tenants fail: the pooled window trips the provider circuit.
    for tenant in ["a", "b", "c", "d"] {
        r.acquire("p", tenant, None).unwrap().failure();
    }
    assert!(r.acquire("p", "e", None).unwrap_err().is_provider_wide());
    assert_eq!(r.provider_circuit("p").unwrap().state(), State::Open);

    let summary = get_json(&router, "/providers").await;
    let providers = summary["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    let p = &providers[0];
    assert_eq!(p["provider"], "p");
    let wide = &p["provider_wide"];
    assert_eq!(wide["state"], "open", "{summary}");
    assert!(wide["retry_after_ms"].as_u64().unwrap() > 0, "{wide}");
    assert_eq!(wide["times_opened"], 1);
    assert_eq!(wide["pooled"]["failing_tenants"], 4, "{wide}");
    assert_eq!(wide["pooled"]["failures"], 4, "{wide}");
    // The provider circuit (tenant `*`) is not one of the tenants counted or listed.
    let listed = get_json(&router, "/circuits?provider=p&per_page=500").await;
    assert!(
        tenants(&listed)
            .iter()
            .all(|(t, _)| t != breaker::PROVIDER_WIDE_TENANT),
        "{listed}"
    );
    assert_eq!(p["total"], listed["total"]);
    assert_eq!(p["open"], 0, "the tenants' own circuits stay closed: {p}");
    // A provider without one shows `null`.
    assert_eq!(providers[1]["provider"], "q");
    assert!(providers[1]["provider_wide"].is_null());
}

#[tokio::test]
async fn circuits_come_open_first_paged_and_searchable() {
    let feed = Feed::new();
    let r = registry(&feed);
    for i in 0..120 {
        r.circuit("openai", &format!("t{i:03}"));
    }
    trip(&r, "openai", "t100");
    trip(&r, "openai", "t007");
    r.circuit("anthropic", "t000");
    let router = Dashboard::new(r.clone()).feed(feed).router();

    // The open circuits come with every page, before a page of the others.
    let first = get_json(&router, "/circuits?provider=openai&per_page=10").await;
    assert_eq!(
        (
            first["total"].as_u64(),
            first["tripped"].as_u64(),
            first["tripped_sent"].as_u64(),
            first["pages"].as_u64()
        ),
        (Some(120), Some(2), Some(2), Some(12))
    );
    let rows = tenants(&first);
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0], ("t007".into(), "open".into()));
    assert_eq!(rows[1], ("t100".into(), "open".into()));
    assert_eq!(rows[2], ("t000".into(), "closed".into()));
    let open = &first["circuits"][0];
    assert_eq!(open["retry_after_ms"], 30_000, "the default open period");
    assert_eq!(open["level"], 0);
    assert_eq!(open["timeline"][0]["reason"], "consecutive_failures");
    assert_eq!(open["failure_rate"], 0.0, "no rate policy: no window");

    // The last page holds the rest, in name order, after the open ones again.
    let last = get_json(&router, "/circuits?provider=openai&per_page=10&page=11").await;
    let rows = tenants(&last);
    assert_eq!(rows.len(), 2 + 8);
    assert_eq!(rows[1], ("t100".into(), "open".into()));
    assert_eq!(rows[2].0, "t112");
    assert_eq!(rows.last().unwrap().0, "t119");
    let past = get_json(&router, "/circuits?provider=openai&per_page=10&page=99").await;
    assert_eq!(tenants(&past).len(), 2, "only the open ones: {past}");

    // Search by tenant name, state filter, and both providers without a provider filter.
    let found = get_json(&router, "/circuits?provider=openai&q=t10").await;
    assert_eq!(found["total"], 10);
    assert_eq!(tenants(&found)[0], ("t100".into(), "open".into()));
    let open = get_json(&router, "/circuits?state=open").await;
    assert_eq!(
        tenants(&open),
        [
            ("t007".into(), "open".into()),
            ("t100".into(), "open".into())
        ]
    );
    assert_eq!(get_json(&router, "/circuits?q=t000").await["total"], 2);

    // A bad state names the field and the names that would do.
    let (status, body) = get(&router, "/circuits?state=shut").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("state: unknown circuit state \\\"shut\\\""),
        "{body}"
    );
}

#[tokio::test]
async fn a_hundred_thousand_circuits_page_without_sending_them_all() {
    let feed = Feed::new();
    let r = registry(&feed);
    for i in 0..100_000 {
        r.circuit("openai", &format!("tenant-{i:06}"));
    }
    trip(&r, "openai", "tenant-099999");
    let router = Dashboard::new(r.clone()).feed(feed).router();
    let (status, body) = get(&router, "/circuits?provider=openai").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.len() < 64 * 1024,
        "one page, not 100,000 rows: {} bytes",
        body.len()
    );
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["total"], 100_000);
    assert_eq!(tenants(&page)[0], ("tenant-099999".into(), "open".into()));
    assert_eq!(tenants(&page)[1], ("tenant-000000".into(), "closed".into()));
}

#[tokio::test]
async fn actions_are_refused_without_a_hook() {
    let feed = Feed::new();
    let r = registry(&feed);
    trip(&r, "openai", "acme");
    let router = Dashboard::new(r.clone()).feed(feed).router();

    for action in ["force_open", "reset", "disable", "metrics_only"] {
        let (status, body) = post(&router, &format!("/circuits/openai/acme/{action}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no authorization hook"),
            "{body}"
        );
    }
    assert_eq!(r.circuit("openai", "acme").state(), State::Open);
    let log = get_json(&router, "/actions").await;
    assert_eq!(log["enabled"], false);
    assert_eq!(log["log"].as_array().unwrap().len(), 4);
    assert_eq!(log["log"][1]["action"], "reset");
    assert_eq!(log["log"][1]["allowed"], false);
    assert_eq!(log["log"][1]["outcome"], "refused");
}

#[tokio::test]
async fn the_hook_decides_and_every_action_is_logged() {
    let feed = Feed::new();
    let r = registry(&feed);
    trip(&r, "openai", "acme");
    r.circuit("openai", "<b>globex</b>");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let router = Dashboard::new(r.clone())
        .feed(feed)
        .actions(move |req: &http::request::Parts, action: &Action| {
            seen.lock().unwrap().push(action.clone());
            // Anyone named may reset; only "root" may switch a circuit off.
            match req.headers.get("x-operator").and_then(|v| v.to_str().ok()) {
                Some("root") => true,
                Some(_) => action.kind == ActionKind::Reset,
                None => false,
            }
        })
        .router();

    let (status, _) = post(&router, "/circuits/openai/acme/reset", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&router, "/circuits/openai/acme/disable", Some("ann")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(r.circuit("openai", "acme").state(), State::Open);

    let (status, body) = post(&router, "/circuits/openai/acme/reset", Some("ann")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "closed");
    assert_eq!(r.circuit("openai", "acme").state(), State::Closed);
    // Names with markup and slashes travel percent-encoded in the path.
    let uri = "/circuits/openai/%3Cb%3Eglobex%3C%2Fb%3E/force_open";
    let (status, body) = post(&router, uri, Some("root")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        r.circuit("openai", "<b>globex</b>").state(),
        State::ForcedOpen
    );

    // Allowed, but no such circuit (the dashboard never creates one); an unknown action.
    let (status, _) = post(&router, "/circuits/openai/nobody/reset", Some("root")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = post(&router, "/circuits/openai/acme/explode", Some("root")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("expected one of"));

    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked.len(),
        5,
        "the hook is not asked about an unknown action"
    );
    assert_eq!(asked[3].tenant, "<b>globex</b>");
    let log = get_json(&router, "/actions").await;
    assert_eq!(log["enabled"], true);
    let outcomes: Vec<(bool, &str)> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["allowed"].as_bool().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (false, "refused"),
            (false, "refused"),
            (true, "done"),
            (true, "done"),
            (true, "not_found")
        ]
    );
}

#[tokio::test]
async fn a_panicking_hook_refuses() {
    let r = Arc::new(Registry::default());
    r.circuit("openai", "acme");
    let router = Dashboard::new(r.clone())
        .actions(|_: &http::request::Parts, _: &Action| panic!("the hook's own bug"))
        .router();
    let (status, _) = post(&router, "/circuits/openai/acme/force_open", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(r.circuit("openai", "acme").state(), State::Closed);
}

#[tokio::test]
async fn names_are_escaped_in_the_served_page() {
    let feed = Feed::new();
    let r = registry(&feed);
    let evil = "<script>alert('tenant')</script>";
    let provider = "<img src=x onerror=alert(1)>";
    trip(&r, provider, evil);
    let router = breaker::dashboard::router(r.clone());
    let (status, html) = get(&router, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(evil), "the tenant's name came out as markup");
    assert!(
        !html.contains(provider),
        "the provider's name came out as markup"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;tenant&#39;)&lt;/script&gt;"),
        "the server-rendered list shows the open circuit as text"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    // The script is inlined, and builds the page with textContent only.
    assert!(html.contains("textContent"));
    assert!(!html.contains("innerHTML"));
    let (status, js) = get(&router, "/dashboard.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML"));
}

#[tokio::test]
async fn without_a_feed_the_page_is_not_live() {
    let r = Arc::new(Registry::default());
    let router = breaker::dashboard::router(r);
    assert_eq!(get_json(&router, "/providers").await["live"], false);
    let response = router
        .oneshot(Request::get("/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let hello = next_frame(&mut body).await.unwrap();
    assert!(
        hello.starts_with("event: hello\ndata: {\"capacity\":0,\"live\":false}"),
        "{hello}"
    );
}

/// The next frame of a streamed body, waiting for it.
async fn next_frame(body: &mut Body) -> Option<String> {
    let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(String::from_utf8(frame.unwrap().into_data().unwrap().to_vec()).unwrap())
}

/// The next frame of a streamed body if it is ready now.
fn ready_frame(body: &mut Body) -> Option<String> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(Some(frame)) => {
            Some(String::from_utf8(frame.unwrap().into_data().unwrap().to_vec()).unwrap())
        }
        _ => None,
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_loses_the_oldest_and_holds_no_more() {
    let feed = Feed::with_capacity(16);
    let r = registry(&feed);
    let router = Dashboard::new(r.clone()).feed(feed.clone()).router();
    let response = router
        .clone()
        .oneshot(Request::get("/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let hello = next_frame(&mut body).await.unwrap();
    assert!(
        hello.contains("\"live\":true") && hello.contains("\"capacity\":16"),
        "{hello}"
    );

    // The browser reads nothing while 1,000 transitions happen: none of them waits for it.
    let circuit = r.circuit("openai", "acme");
    for _ in 0..500 {
        circuit.force_open();
        circuit.reset();
    }
    // It is told what it lost, then gets the newest 16, then nothing more is queued.
    let dropped = ready_frame(&mut body).unwrap();
    assert!(
        dropped.starts_with("event: dropped\ndata: {\"dropped\":984,\"total\":984}"),
        "{dropped}"
    );
    let mut kept = Vec::new();
    while let Some(frame) = ready_frame(&mut body) {
        kept.push(frame);
    }
    assert_eq!(kept.len(), 16);
    assert!(kept.iter().all(|f| f.starts_with("event: transition\n")));
    assert!(
        kept[15].contains("\"from\":\"forced_open\",\"to\":\"closed\""),
        "{}",
        kept[15]
    );
    assert_eq!(feed.dropped(), 984);

    // A subscriber that goes away leaves nothing behind.
    assert!(format!("{feed:?}").contains("subscribers: 1"), "{feed:?}");
    drop(body);
    assert!(format!("{feed:?}").contains("subscribers: 0"), "{feed:?}");
    circuit.force_open();

    // A live subscriber gets each transition as JSON, names escaped by JSON only.
    let response = router
        .oneshot(Request::get("/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    next_frame(&mut body).await.unwrap();
    trip(&r, "openai", "</script><b>");
    let frame = next_frame(&mut body).await.unwrap();
    let data = frame
        .strip_prefix("event: transition\ndata: ")
        .unwrap()
        .trim_end();
    let transition: Value = serde_json::from_str(data).unwrap();
    assert_eq!(transition["tenant"], "</script><b>");
    assert_eq!(transition["to"], "open");
    assert_eq!(transition["open_for_ms"], 30_000);
}

#[tokio::test]
async fn every_open_circuit_comes_with_each_page_however_many() {
    let feed = Feed::new();
    let r = registry(&feed);
    for i in 0..200 {
        r.circuit("openai", &format!("t{i:03}"));
    }
    // 50 open tenants, more than a page of 20 (what the page asks for), and one forced open.
    for i in (0..200).step_by(4) {
        trip(&r, "openai", &format!("t{i:03}"));
    }
    r.circuit("openai", "t001").force_open();
    let router = Dashboard::new(r.clone()).feed(feed).router();
    for page in 0..3 {
        let answer = get_json(
            &router,
            &format!("/circuits?provider=openai&per_page=20&page={page}"),
        )
        .await;
        assert_eq!(answer["tripped"], 51, "{page}");
        assert_eq!(answer["tripped_sent"], 51);
        assert_eq!(answer["total"], 200);
        assert_eq!(answer["pages"], 8, "149 others, 20 a page");
        let rows = tenants(&answer);
        assert_eq!(rows.len(), 51 + 20);
        assert!(rows[..50].iter().all(|(_, s)| s == "open"), "{rows:?}");
        assert_eq!(rows[50], ("t001".into(), "forced_open".into()));
        assert!(rows[51..].iter().all(|(_, s)| s == "closed"));
        assert_eq!(rows[51].0, ["t002", "t029", "t055"][page]);
    }
    // A state filter on `open` gets them all in one answer, and no page of others.
    let open = get_json(&router, "/circuits?state=open&per_page=5").await;
    assert_eq!(tenants(&open).len(), 50);
    assert_eq!(open["pages"], 0);
}

#[tokio::test]
async fn open_circuits_past_the_bound_are_counted_not_sent() {
    let feed = Feed::new();
    let r = registry(&feed);
    for i in 0..5_010 {
        trip(&r, "openai", &format!("t{i:05}"));
    }
    let router = Dashboard::new(r.clone()).feed(feed).router();
    let answer = get_json(&router, "/circuits?provider=openai").await;
    assert_eq!(answer["tripped"], 5_010);
    assert_eq!(answer["tripped_sent"], 5_000, "the bound of one answer");
    let rows = tenants(&answer);
    assert_eq!(rows.len(), 5_000);
    assert_eq!(rows[4_999].0, "t04999", "the first by name");
}

#[tokio::test]
async fn a_provider_with_only_a_provider_wide_circuit_is_listed() {
    let r = Arc::new(
        Registry::builder()
            .provider_wide("quiet", breaker::ProviderWide::default())
            .build(),
    );
    r.configure_provider_wide("later", breaker::ProviderWide::default());
    r.circuit("busy", "acme");
    let router = breaker::dashboard::router(r.clone());
    let summary = get_json(&router, "/providers").await;
    let providers = summary["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["busy", "later", "quiet"]);
    assert_eq!(providers[2]["total"], 0);
    assert_eq!(providers[2]["provider_wide"]["state"], "closed");
    assert!(providers[0]["provider_wide"].is_null());
}

#[tokio::test]
async fn actions_on_tenant_star_reach_the_provider_wide_circuit() {
    let r = Arc::new(
        Registry::builder()
            .clock(ManualClock::new())
            .provider_wide("p", breaker::ProviderWide::default())
            .build(),
    );
    let router = Dashboard::new(r.clone())
        .actions(|req: &http::request::Parts, _: &Action| req.headers.contains_key("x-operator"))
        .router();
    let wide = r.provider_circuit("p").unwrap();
    let (status, _) = post(&router, "/circuits/p/*/force_open", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(wide.state(), State::Closed);
    let (status, body) = post(&router, "/circuits/p/*/force_open", Some("ann")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "forced_open");
    assert_eq!(wide.state(), State::ForcedOpen);
    assert!(r.acquire("p", "acme", None).unwrap_err().is_provider_wide());
    let summary = get_json(&router, "/providers").await;
    assert_eq!(
        summary["providers"][0]["provider_wide"]["state"],
        "forced_open"
    );
    // Percent-encoded as the page sends it.
    let (status, body) = post(&router, "/circuits/p/%2A/reset", Some("ann")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(wide.state(), State::Closed);
    r.acquire("p", "acme", None).unwrap().success();
    // No tenant circuit named `*` was made on the way.
    assert!(r.get("p", "*").is_none());
    // A provider without one: no circuit.
    r.circuit("q", "acme");
    let (status, _) = post(&router, "/circuits/q/*/reset", Some("ann")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn post_json(
    router: &Router,
    uri: &str,
    operator: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(name) = operator {
        request = request.header("x-operator", name);
    }
    let (status, body) = send(router, request.body(Body::from(body.to_owned())).unwrap()).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn retune_changes_a_providers_settings_and_keeps_its_circuits_state() {
    let feed = Feed::new();
    let r = registry(&feed);
    trip(&r, "openai", "acme");
    let globex = r.circuit("openai", "globex");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let router = Dashboard::new(r.clone())
        .feed(feed)
        .actions(move |req: &http::request::Parts, action: &Action| {
            seen.lock().unwrap().push(action.clone());
            req.headers.get("x-operator").and_then(|v| v.to_str().ok()) == Some("root")
        })
        .router();

    let before = get_json(&router, "/providers/openai/config").await;
    assert_eq!(before["config"]["consecutive_failures"], 1);
    assert_eq!(before["config"]["open_for_ms"], 30_000);

    // Refused: nothing changes.
    let body = r#"{"consecutive_failures": 3, "open_for_ms": 5000}"#;
    let (status, _) = post_json(&router, "/providers/openai/retune", Some("ann"), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(r.configured("openai"), None);

    // Allowed: every circuit of the provider takes the new settings, keeping its state.
    let (status, answer) = post_json(&router, "/providers/openai/retune", Some("root"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["config"]["consecutive_failures"], 3);
    assert_eq!(answer["config"]["open_for_ms"], 5_000);
    assert_eq!(answer["config"]["half_open_probes"], 1, "left alone");
    let configured = r.configured("openai").unwrap();
    assert_eq!(configured.consecutive_failures(), Some(3));
    assert_eq!(configured.open_for(), std::time::Duration::from_secs(5));
    assert_eq!(
        r.circuit("openai", "acme").state(),
        State::Open,
        "state kept"
    );
    assert_eq!(
        r.circuit("openai", "acme").retry_after(),
        Some(std::time::Duration::from_secs(30)),
        "a running open period keeps its deadline"
    );
    for _ in 0..2 {
        globex.try_acquire().unwrap().failure();
    }
    assert_eq!(globex.state(), State::Closed, "3 failures trip it now");
    globex.try_acquire().unwrap().failure();
    assert_eq!(globex.state(), State::Open);
    assert_eq!(
        get_json(&router, "/providers/openai/config").await["config"]["open_for_ms"],
        5_000
    );

    // The hook saw what was asked.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].kind, ActionKind::Retune);
    assert_eq!(asked[1].provider, "openai");
    let changes = asked[1].retune.clone().unwrap();
    assert_eq!(
        (changes.consecutive_failures, changes.open_for_ms),
        (Some(3), Some(5_000))
    );
    let log = get_json(&router, "/actions").await;
    let last = &log["log"][1];
    assert_eq!(
        (&last["action"], &last["outcome"], &last["allowed"]),
        (
            &Value::from("retune"),
            &Value::from("done"),
            &Value::from(true)
        )
    );
    assert_eq!(last["retune"]["open_for_ms"], 5_000);
}

#[tokio::test]
async fn retune_rejects_bad_values_naming_the_field() {
    let feed = Feed::new();
    let r = registry(&feed);
    r.circuit("openai", "acme");
    let router = Dashboard::new(r.clone())
        .feed(feed)
        .actions(|_: &http::request::Parts, _: &Action| true)
        .router();
    for (body, field) in [
        (r#"{"failure_rate": 1.5}"#, "failure_rate"),
        (r#"{"open_for_ms": 0}"#, "open_for_ms"),
        (r#"{"backoff_multiplier": 0.5}"#, "backoff_multiplier"),
        (r#"{"half_open_probes": 0}"#, "half_open_probes"),
    ] {
        let (status, answer) = post_json(&router, "/providers/openai/retune", None, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }
    // A field that is no setting, and a value of the wrong type, name the field too.
    let (status, answer) = post_json(
        &router,
        "/providers/openai/retune",
        None,
        r#"{"open_for": 5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("unknown field `open_for`") && message.contains("open_for_ms"),
        "{message}"
    );
    let (status, answer) = post_json(
        &router,
        "/providers/openai/retune",
        None,
        r#"{"minimum_calls": -1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("-1"), "{answer}");
    assert_eq!(r.configured("openai"), None, "nothing applied");
    // A provider the registry does not know, and the retune asked of one circuit.
    let (status, _) = post_json(&router, "/providers/nobody/retune", None, "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = post(&router, "/circuits/openai/acme/retune", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer["error"].as_str().unwrap().contains("/providers/"));
    let outcomes: Vec<String> = get_json(&router, "/actions").await["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        ["invalid"; 6]
            .into_iter()
            .chain(["not_found"])
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn retune_is_refused_without_a_hook() {
    let r = Arc::new(Registry::default());
    r.circuit("openai", "acme");
    let router = breaker::dashboard::router(r.clone());
    let (status, answer) = post_json(
        &router,
        "/providers/openai/retune",
        None,
        r#"{"consecutive_failures": 2}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("no authorization hook"));
    assert_eq!(r.configured("openai"), None);
}

#[tokio::test]
async fn the_page_is_served_with_and_without_a_trailing_slash() {
    let r = Arc::new(Registry::default());
    r.circuit("openai", "acme");
    // `nest_service`, as the docs say: `nest` would answer 404 at `/breaker/`.
    let app: Router = Router::new().nest_service("/breaker", breaker::dashboard::router(r));
    for uri in ["/breaker", "/breaker/"] {
        let (status, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(html.contains("<title>breaker: circuits</title>"), "{uri}");
    }
    let providers = get_json(&app, "/breaker/providers").await;
    assert_eq!(providers["providers"][0]["provider"], "openai");
}

/// With a fleet attached, `/fleet` gives its store's health: here a store nobody listens on, so a
/// degraded fleet (it keeps retrying in the background).
#[cfg(feature = "redis")]
#[tokio::test]
async fn the_fleet_panel_shows_the_stores_health() {
    let fleet = breaker::fleet::RedisFleet::builder("redis://127.0.0.1:1/")
        .build()
        .await
        .unwrap();
    let health = fleet.health();
    let r = Arc::new(Registry::builder().fleet(fleet).build());
    let router = Dashboard::new(r.clone()).fleet(health).router();
    let summary = get_json(&router, "/providers").await;
    assert_eq!(summary["fleet"], true);
    let fleet = get_json(&router, "/fleet").await;
    assert_eq!(fleet["attached"], true);
    assert_eq!(fleet["connected"], false);
    let without = breaker::dashboard::router(r);
    assert_eq!(get_json(&without, "/fleet").await["attached"], false);
}

/// A `redis-server` on a free loopback port, killed on drop; `None` when none is installed
/// outside CI (`.ci/run` installs it).
#[cfg(feature = "redis")]
struct RedisServer(std::process::Child, u16);

#[cfg(feature = "redis")]
impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = match std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(_) if std::env::var_os("CI").is_none() => {
                eprintln!("redis-server is not installed: the test did not run");
                return None;
            }
            Err(e) => panic!("redis-server: {e}"),
        };
        let server = RedisServer(child, port);
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.1)
    }
}

#[cfg(feature = "redis")]
impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` (async) every 10 ms for at most 20 s; returns whether it held.
#[cfg(feature = "redis")]
async fn within_bound<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if cond().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Two replicas on a real store: the page of either says which replica opened the circuit
/// and, once its open period ended, which one holds the probe lease.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_says_which_replica_opened_a_circuit_and_holds_its_probe_lease() {
    use std::time::Duration;
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(800))
        .probe_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let fleet = breaker::fleet::RedisFleet::builder(server.url())
            .namespace("dashboard")
            .build()
            .await
            .unwrap();
        let (health, inspector) = (fleet.health(), fleet.inspector());
        let registry = Arc::new(
            Registry::builder()
                .default_config(config.clone())
                .fleet(fleet)
                .build(),
        );
        registry.circuit("openai", "warm-up");
        assert!(
            within_bound(|| {
                let h = health.clone();
                async move { h.is_connected() }
            })
            .await
        );
        let router = Dashboard::new(registry.clone())
            .fleet(health)
            .fleet_inspector(inspector.clone())
            .router();
        replicas.push((registry, inspector, router));
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    assert_ne!(a.1.replica(), b.1.replica());
    assert_eq!(get_json(&b.2, "/providers").await["fleet_circuits"], true);

    // A trips acme; B opens its own from the fleet, and B's page says A opened it.
    b.0.circuit("openai", "acme");
    a.0.circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    let b_router = b.2.clone();
    let a_id = a.1.replica().to_owned();
    let shown = within_bound(|| {
        let router = b_router.clone();
        let a_id = a_id.clone();
        async move {
            let f = get_json(&router, "/fleet/circuits?provider=openai").await;
            f["available"] == true
                && f["circuits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["tenant"] == "acme" && c["opened_by"] == a_id.as_str())
        }
    })
    .await;
    assert!(shown, "{}", get_json(&b.2, "/fleet/circuits").await);
    let f = get_json(&b.2, "/fleet/circuits").await;
    assert_eq!(f["replica"], b.1.replica());
    assert_eq!(f["circuits"][0]["level"], 0);
    assert!(f["circuits"][0]["probe_lease"].is_null(), "{f}");

    // Only A has calls for acme: at the period's end it races for the lease, wins and probes.
    let a_registry = a.0.clone();
    let probe = within_bound(|| {
        let r = a_registry.clone();
        async move {
            match r.acquire("openai", "acme", None) {
                Ok(permit) => {
                    // Held, not recorded: the lease stays A's while it probes.
                    std::mem::forget(permit);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(probe, "A never probed");
    let b_router = b.2.clone();
    let leased = within_bound(|| {
        let router = b_router.clone();
        let a_id = a_id.clone();
        async move {
            let f = get_json(&router, "/fleet/circuits?provider=openai").await;
            f["circuits"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["probe_lease"] == a_id.as_str()))
        }
    })
    .await;
    assert!(leased, "{}", get_json(&b.2, "/fleet/circuits").await);
    // A page without an inspector says so.
    let without = Dashboard::new(a.0.clone()).router();
    assert_eq!(
        get_json(&without, "/fleet/circuits").await["attached"],
        false
    );
    drop(server);
}
