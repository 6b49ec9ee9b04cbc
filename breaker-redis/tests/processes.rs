//! Replicas in separate processes: this test binary runs itself again as a child replica, and
//! each process's openings reach the other.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use breaker_core::State;
use support::{becomes, connected, eventually, RedisServer, BOUND};

/// Tells the child test where the store is; its absence means the child was not started by the
/// parent test.
const CHILD_URL: &str = "BREAKER_FLEET_CHILD_URL";

/// Kills the child process on drop, so a failed assertion leaves no process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_in_separate_processes_open_together() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (parent, _) = connected(&server.url(), "processes", Duration::from_secs(30)).await;
    let mut child = Reaped(
        Command::new(std::env::current_exe().unwrap())
            .args(["child_replica", "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_URL, server.url())
            .stdout(Stdio::null())
            .spawn()
            .expect("run this test binary again"),
    );
    assert!(
        becomes(&parent, "openai", "from-child", State::Open).await,
        "the child's opening did not reach the parent"
    );
    parent
        .circuit("openai", "from-parent")
        .try_acquire()
        .unwrap()
        .failure();
    let mut status = None;
    assert!(
        eventually(BOUND, || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        })
        .await,
        "the child never saw the parent's opening"
    );
    assert!(status.unwrap().success(), "the child failed: {status:?}");
}

/// The other process of [`replicas_in_separate_processes_open_together`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child replica, started by replicas_in_separate_processes_open_together"]
async fn child_replica() {
    let url = std::env::var(CHILD_URL)
        .expect("started by replicas_in_separate_processes_open_together, which sets the URL");
    let (child, _) = connected(&url, "processes", Duration::from_secs(30)).await;
    child
        .circuit("openai", "from-child")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&child, "openai", "from-parent", State::Open).await);
}
