//! The SSE gateway demo (`examples/sse_gateway.rs`), run as written: a real provider and gateway
//! on the loopback, the client streaming through them. The checks are on what the circuit judged
//! and what the client got, never on timings; the script waits only for streams to end (its
//! provider paces tokens, and the gateway's own cutoff ends a stall), and the whole run is
//! bounded so a broken build fails instead of hanging.

#[path = "../examples/sse_gateway/gateway.rs"]
mod gateway;
#[path = "../examples/sse_gateway/scenario.rs"]
mod scenario;
#[path = "../examples/sse_gateway/upstream.rs"]
mod upstream;

use std::time::Duration;

use breaker::{Reason, State};
use scenario::{Answer, Case, Demo, Judged};
use upstream::{ANSWER, TOKENS_BEFORE_FAILURE};

fn streamed(case: &Case) -> (usize, bool) {
    match &case.answer {
        Answer::Streamed { tokens, error } => {
            assert!(
                ANSWER.starts_with(&tokens.iter().map(String::as_str).collect::<Vec<_>>()[..]),
                "{}: the tokens pass in order, untouched: {tokens:?}",
                case.title
            );
            (tokens.len(), error.is_some())
        }
        other => panic!("{}: streamed, not {other:?}", case.title),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_judges_each_stream_when_it_ends() {
    let demo = Demo::start(false).await.expect("loopback servers");
    let cases = tokio::time::timeout(Duration::from_secs(60), demo.run())
        .await
        .expect("the script ends on its own");
    let [healthy, mid_stream, stall, slow, behind_open, meanwhile, probe] = &cases[..] else {
        panic!("seven cases: {cases:#?}");
    };

    // A healthy answer: every token, a success at its end.
    assert_eq!(streamed(healthy), (ANSWER.len(), false));
    assert_eq!(
        (healthy.judged, healthy.state),
        (Judged::Success, State::Closed)
    );

    // A broken body after 200 and three tokens: the client got them, the circuit a failure.
    assert_eq!(streamed(mid_stream), (TOKENS_BEFORE_FAILURE, true));
    assert_eq!(mid_stream.judged, Judged::Failure);
    assert_eq!(mid_stream.state, State::Closed, "1 of 2 failed");

    // Headers, then silence: a failure once the gateway's cutoff drops the stream.
    assert_eq!(streamed(stall), (0, true));
    assert_eq!(stall.judged, Judged::Failure);
    assert_eq!(stall.state, State::Closed, "2 of 3 failed");

    // The whole answer, its first token late: a failure all the same, the third of four: trips.
    assert_eq!(streamed(slow), (ANSWER.len(), false));
    assert_eq!(slow.judged, Judged::Failure);
    assert_eq!(
        slow.transitions,
        [(State::Closed, State::Open, Reason::FailureRate)]
    );
    assert_eq!(slow.state, State::Open);

    // Open: rejected at the gateway, the provider never called.
    assert!(
        matches!(
            &behind_open.answer,
            Answer::Rejected {
                retry_after: Some(_)
            }
        ),
        "{behind_open:?}"
    );
    assert_eq!(behind_open.judged, Judged::Nothing);
    assert_eq!(behind_open.rejections, [State::Open]);
    assert_eq!(behind_open.upstream_requests, 0);

    // The probe's stream holds the probe slot: a call while it streams is rejected...
    assert!(
        matches!(meanwhile.answer, Answer::Rejected { .. }),
        "{meanwhile:?}"
    );
    assert_eq!(meanwhile.rejections, [State::HalfOpen]);
    assert_eq!(meanwhile.upstream_requests, 0);
    // ... and its end closes the circuit.
    assert_eq!(streamed(probe), (ANSWER.len(), false));
    assert_eq!(probe.judged, Judged::Success);
    assert_eq!(
        probe.transitions,
        [
            (State::Open, State::HalfOpen, Reason::OpenPeriodElapsed),
            (State::HalfOpen, State::Closed, Reason::ProbesSucceeded),
        ]
    );
    assert_eq!(probe.state, State::Closed);
    assert_eq!(
        demo.upstream.requests(),
        5,
        "every call but the rejected two"
    );
}
