//! The hang demo (`examples/hang.rs`) against its real upstream on the loopback: the circuit
//! opens while every call into the hang is still pending (the clients wait 30 s), and no more
//! than `max_in_flight` requests ever reach the hung upstream. Bounds are generous (a loaded
//! machine): the demo opens in about 0.75 s.

#[path = "../examples/hang/common.rs"]
mod common;

use std::time::Duration;

use common::{run, CLIENT_TIMEOUT, MAX_IN_FLIGHT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_opens_the_circuit_long_before_any_client_gives_up_and_holds_max_in_flight() {
    let report = run(48, Duration::from_millis(500), Duration::from_secs(20))
        .await
        .unwrap();
    let opened_after = report
        .opened_after
        .expect("the circuit opened during the hang");
    assert!(
        opened_after < CLIENT_TIMEOUT / 2,
        "opened {opened_after:?} after the hang began, with every call still pending"
    );
    assert!(report.found_overdue > 0, "{report:?}");
    assert!(report.answered > 0 && report.refused_full > 0, "{report:?}");
    assert!(report.client_error.is_none(), "{report:?}");
    assert!(
        report.sent_into_the_hang <= MAX_IN_FLIGHT,
        "{} requests reached the hung upstream, max_in_flight = {MAX_IN_FLIGHT}",
        report.sent_into_the_hang
    );
}
