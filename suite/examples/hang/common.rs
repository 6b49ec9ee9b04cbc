//! The parts of the hang demo that `tests/hang.rs` runs too: an upstream on the loopback that
//! answers at once until it is told to hang (then it accepts connections, reads the request and
//! never answers), patient reqwest clients (30 s timeout) whose calls go through
//! `#[circuit_breaker]` with `slow_call` and `max_in_flight`, and the run that measures how long
//! the circuit takes to open after the hang began and how many requests reached the hung
//! upstream.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use breaker::{circuit_breaker, CircuitOpen, Event, Registry, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The provider of the circuit (the attribute below spells it as a literal).
pub const PROVIDER: &str = "upstream";
/// The bulkhead of the attribute below.
pub const MAX_IN_FLIGHT: u64 = 16;
/// How long a client waits for an answer: far longer than the hang takes to trip the circuit.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// An upstream that answers `200 ok` at once, or, once told to hang, reads each request and
/// never answers (the connection stays open).
pub struct Upstream {
    addr: SocketAddr,
    hanging: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> io::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hanging = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let (hanging, received) = (hanging.clone(), received.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (hanging, received) = (hanging.clone(), received.clone());
                    tokio::spawn(serve(stream, hanging, received));
                }
            }
        });
        Ok(Upstream {
            addr,
            hanging,
            received,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/complete", self.addr)
    }

    /// From now on, every request is read and never answered.
    pub fn hang(&self) {
        self.hanging.store(true, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One connection: one request (the answer closes the connection).
async fn serve(mut stream: TcpStream, hanging: Arc<AtomicBool>, received: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    received.fetch_add(1, Ordering::SeqCst);
    if hanging.load(Ordering::SeqCst) {
        // Accepted, read, never answered: hold the connection until the client gives up.
        let _ = stream.read(&mut buf).await;
        return;
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await;
}

#[derive(Debug)]
pub enum CallError {
    Open(CircuitOpen),
    Http(reqwest::Error),
}

impl From<CircuitOpen> for CallError {
    fn from(open: CircuitOpen) -> Self {
        CallError::Open(open)
    }
}

/// The gateway's call: slow above 500 ms, tripping when half of the last 20 calls were slow,
/// and never more than 16 calls in flight on the upstream.
#[circuit_breaker(
    provider = "upstream",
    registry = registry,
    slow_call = "500ms",
    slow_call_rate = 0.5,
    window = 20,
    minimum_calls = 10,
    max_in_flight = 16,
    open_for = "30s",
)]
pub async fn complete(
    registry: &Registry,
    client: &reqwest::Client,
    url: &str,
) -> Result<u16, CallError> {
    let response = client.get(url).send().await.map_err(CallError::Http)?;
    Ok(response.status().as_u16())
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    /// How long after the hang began the circuit opened (`None`: not within the run).
    pub opened_after: Option<Duration>,
    /// Requests that reached the upstream after it began to hang.
    pub sent_into_the_hang: u64,
    /// Calls the bulkhead refused (`max_in_flight` calls in flight).
    pub refused_full: u64,
    /// Calls found in flight past `slow_call` (counted as slow while they hung).
    pub found_overdue: u64,
    /// Calls that answered during the healthy phase.
    pub answered: u64,
    /// The first error of the HTTP client, if any (none is expected: no client gives up).
    pub client_error: Option<reqwest::Error>,
}

/// `callers` patient clients call the upstream in a loop; after `healthy_for` it hangs. Returns
/// once the circuit opens, or `give_up_after` the hang began.
pub async fn run(
    callers: usize,
    healthy_for: Duration,
    give_up_after: Duration,
) -> io::Result<Report> {
    let upstream = Upstream::start().await?;
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let registry = Arc::new(
        Registry::builder()
            .listener({
                let counts = counts.clone();
                move |e: &Event<'_>| match e {
                    Event::Full { .. } => counts.lock().unwrap().0 += 1,
                    Event::Overdue { calls, .. } => counts.lock().unwrap().1 += u64::from(*calls),
                    _ => {}
                }
            })
            .build(),
    );
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .map_err(io::Error::other)?;
    let url = upstream.url();
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(None));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (registry, client, url, answered, failed) = (
                registry.clone(),
                client.clone(),
                url.clone(),
                answered.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                loop {
                    match complete(&registry, &client, &url).await {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        // Refused (open, or full): pause a little, then again.
                        Err(CallError::Open(open)) => {
                            debug_assert!(open.is_full() || open.state() != State::Closed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(CallError::Http(e)) => {
                            failed.lock().unwrap().get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(healthy_for).await;
    let before = upstream.received();
    upstream.hang();
    let began = Instant::now();
    let circuit = registry.circuit(PROVIDER, breaker::DEFAULT_TENANT);
    let mut opened_after = None;
    while began.elapsed() < give_up_after {
        if circuit.state() == State::Open {
            opened_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for task in &tasks {
        task.abort();
    }
    let (refused_full, found_overdue) = *counts.lock().unwrap();
    let client_error = failed.lock().unwrap().take();
    Ok(Report {
        opened_after,
        sent_into_the_hang: upstream.received() - before,
        refused_full,
        found_overdue,
        answered: answered.load(Ordering::Relaxed),
        client_error,
    })
}
