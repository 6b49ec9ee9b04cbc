//! The parts of the outage demo that `tests/outage.rs` runs too: an HTTP server on the loopback
//! whose failure mode changes at run time, a reqwest client whose calls go through
//! `#[circuit_breaker]`, and a timeline that prints and counts what happens.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use breaker::{
    circuit_breaker, CircuitOpen, Classify, ErrorClass, Event, Outcome, Reason, Registry, State,
};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The provider of every circuit here (the attribute below spells it as a literal).
pub const PROVIDER: &str = "inference";

/// The demo's tenants.
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// Which tenant a request is for.
const TENANT_HEADER: &str = "x-tenant";
/// The state of the tenant's circuit when the client sent the request: `closed`, or `half_open`
/// for a probe. Anything else reaching the server is a request the breaker should have stopped.
const STATE_HEADER: &str = "x-circuit-state";

/// How the server answers one tenant's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 at once.
    Healthy,
    /// 503 at once.
    Unavailable,
    /// Never answers: the client's timeout ends the call.
    Hang,
}

/// What the server received for one tenant, by the state the client stamped on each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Sent while the circuit was closed.
    pub closed: u64,
    /// Sent as half-open probes.
    pub probes: u64,
    /// Sent in any other state (open): the breaker let through a call it should have rejected.
    pub while_open: u64,
}

impl Received {
    /// Every request of the tenant that reached the server.
    pub fn total(&self) -> u64 {
        self.closed + self.probes + self.while_open
    }
}

#[derive(Default)]
struct ServerState {
    modes: Mutex<HashMap<String, Mode>>,
    received: Mutex<HashMap<String, Received>>,
}

/// An HTTP/1 server on 127.0.0.1 that counts the requests it receives per tenant.
pub struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
    /// The accept loop while listening; `None` while connections are refused.
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Listens on an ephemeral port of the loopback, healthy for every tenant.
    pub fn start() -> io::Result<Server> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let server = Server {
            addr: listener.local_addr()?,
            state: Arc::default(),
            accepting: Mutex::new(None),
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&self, listener: TcpListener) {
        let task = tokio::spawn(accept(listener, self.state.clone()));
        *lock(&self.accepting) = Some(task);
    }

    /// The URL the client calls.
    pub fn url(&self) -> String {
        format!("http://{}/v1/complete", self.addr)
    }

    /// From now on, answers `tenant`'s requests this way.
    pub fn set_mode(&self, tenant: &str, mode: Mode) {
        lock(&self.state.modes).insert(tenant.to_owned(), mode);
    }

    /// Healthy for every tenant again.
    pub fn heal(&self) {
        lock(&self.state.modes).clear();
    }

    /// Stops listening and drops every open connection (hung requests included): from now on
    /// connections to the port are refused.
    pub async fn refuse(&self) {
        let task = lock(&self.accepting).take();
        if let Some(task) = task {
            task.abort();
            // Returns once the task is dropped, and with it the listening socket.
            let _ = task.await;
        }
    }

    /// Listens on the same port again, after [`refuse`](Self::refuse).
    pub async fn listen_again(&self) -> io::Result<()> {
        let mut attempts = 0;
        loop {
            match bind(self.addr) {
                Ok(listener) => {
                    self.serve(listener);
                    return Ok(());
                }
                // While nothing listened, the kernel may have lent the port to an outgoing
                // connection for a moment; wait for it to go, a bounded number of times.
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// What the server received for `tenant` so far.
    pub fn received(&self, tenant: &str) -> Received {
        lock(&self.state.received)
            .get(tenant)
            .copied()
            .unwrap_or_default()
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Rebinding the port after `refuse` must not wait for its old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn accept(listener: TcpListener, state: Arc<ServerState>) {
    // The connections live in this set, so aborting this task (`refuse`) aborts them too: no
    // request can still get in through a connection opened before.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| respond(state.clone(), req));
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn respond(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<String>, Infallible> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let tenant = header(TENANT_HEADER);
    {
        let mut received = lock(&state.received);
        let counts = received.entry(tenant.to_owned()).or_default();
        match header(STATE_HEADER) {
            "closed" => counts.closed += 1,
            "half_open" => counts.probes += 1,
            _ => counts.while_open += 1,
        }
    }
    let mode = lock(&state.modes)
        .get(tenant)
        .copied()
        .unwrap_or(Mode::Healthy);
    let (status, body) = match mode {
        Mode::Healthy => (StatusCode::OK, "completion"),
        Mode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        Mode::Hang => std::future::pending().await,
    };
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    Ok(response)
}

/// Why a call failed, as the client sees it.
#[derive(Debug)]
pub enum CallError {
    /// The breaker rejected the call: no request was sent.
    Rejected(CircuitOpen),
    /// The server answered with an error status.
    Status(u16),
    /// No answer within the client's timeout.
    Timeout,
    /// The connection was refused (nothing listens).
    Refused,
    /// The connection broke mid-request.
    Network(String),
}

impl From<CircuitOpen> for CallError {
    fn from(open: CircuitOpen) -> Self {
        CallError::Rejected(open)
    }
}

impl From<reqwest::Error> for CallError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            CallError::Timeout
        } else if e.is_connect() {
            CallError::Refused
        } else {
            CallError::Network(e.to_string())
        }
    }
}

/// Statuses count by `ErrorClass::from_status` (a 503 trips); timeouts and broken or refused
/// connections trip; a rejection says nothing new about the server. (The `reqwest` feature of
/// `breaker` classifies `reqwest::Error` the same way; the demo keeps its own error type so that
/// it runs without features.)
impl Classify for CallError {
    fn classify(&self) -> Outcome {
        match self {
            CallError::Rejected(_) => Outcome::Ignored,
            CallError::Status(code) => ErrorClass::from_status(*code).outcome(),
            CallError::Timeout | CallError::Refused | CallError::Network(_) => Outcome::Failure,
        }
    }
}

/// The reqwest client, each call guarded by the (`inference`, tenant) circuit of its registry.
pub struct Client {
    http: reqwest::Client,
    url: String,
    registry: Arc<Registry>,
    timeline: Arc<Timeline>,
}

impl Client {
    /// A client of `url` whose calls give up after `timeout` (so a hang is a timeout).
    pub fn new(
        url: String,
        registry: Arc<Registry>,
        timeline: Arc<Timeline>,
        timeout: Duration,
    ) -> reqwest::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // One connection per request: a refused port is seen by the next call, and no
            // request is retried on a fresh connection behind the breaker's back.
            .pool_max_idle_per_host(0)
            // Straight to 127.0.0.1, whatever HTTP_PROXY says.
            .no_proxy()
            .build()?;
        Ok(Client {
            http,
            url,
            registry,
            timeline,
        })
    }

    /// One call for `tenant`, printed on the timeline.
    pub async fn call(&self, tenant: &str) -> Result<u16, CallError> {
        let result = self.complete(tenant).await;
        self.timeline.called(tenant, &result);
        result
    }

    /// Trips after 3 failures in a row; open for 1 s, then 2 s, then 4 s while probes fail.
    /// (`Registry::configure` overrides this, as the test does to run faster.)
    #[circuit_breaker(
        provider = "inference",
        tenant = tenant,
        registry = &self.registry,
        consecutive_failures = 3,
        open_for = "1s",
        max_open_for = "4s",
    )]
    async fn complete(&self, tenant: &str) -> Result<u16, CallError> {
        // The breaker admitted this call: its circuit is closed, or half-open with this call as
        // the probe. The request carries that state, so the server can count requests that got
        // through while the circuit was open (there must be none).
        let state = self
            .registry
            .get(PROVIDER, tenant)
            .map_or(State::Closed, |c| c.state());
        self.timeline.sent(tenant, state);
        let response = self
            .http
            .get(&self.url)
            .header(TENANT_HEADER, tenant)
            .header(STATE_HEADER, state.as_str())
            .send()
            .await?;
        match response.status().as_u16() {
            status @ 400.. => Err(CallError::Status(status)),
            status => Ok(status),
        }
    }
}

/// What the client did for one tenant.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Calls made.
    pub calls: u64,
    /// Calls admitted by the breaker, which sent a request.
    pub sent: u64,
    /// ... of which half-open probes.
    pub probes: u64,
    /// ... of which the server answered (with any status): these surely reached it.
    pub answered: u64,
    /// ... of which timed out or broke: they may or may not have reached it.
    pub lost: u64,
    /// ... of which were refused: they did not reach it.
    pub refused: u64,
    /// Calls rejected by the breaker.
    pub rejected: u64,
    /// Rejections that came without a retry-after.
    pub rejected_without_retry_after: u64,
    /// The circuit's transitions, in order, as its listener saw them.
    pub transitions: Vec<(State, State, Reason)>,
    /// The state of the request in flight.
    in_flight: Option<State>,
}

/// Prints what happens, with the time since the start, and counts it per tenant.
pub struct Timeline {
    start: Instant,
    tallies: Mutex<HashMap<String, Tally>>,
}

impl Timeline {
    /// Starts the clock.
    pub fn new() -> Arc<Timeline> {
        Arc::new(Timeline {
            start: Instant::now(),
            tallies: Mutex::default(),
        })
    }

    /// A registry whose listener puts every transition on this timeline.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let timeline = self.clone();
        Registry::builder()
            .listener(move |event: &Event<'_>| timeline.event(event))
            .build()
    }

    /// Prints a line about the scenario itself.
    pub fn note(&self, text: &str) {
        self.print("", &format!("-- {text} --"));
    }

    /// What the client did for `tenant` so far.
    pub fn tally(&self, tenant: &str) -> Tally {
        self.tallies(|t| t.get(tenant).cloned().unwrap_or_default())
    }

    fn print(&self, tenant: &str, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        println!("t={t:>6.3}s  {tenant:<8} {text}");
    }

    fn tallies<R>(&self, f: impl FnOnce(&mut HashMap<String, Tally>) -> R) -> R {
        f(&mut lock(&self.tallies))
    }

    fn update(&self, tenant: &str, f: impl FnOnce(&mut Tally)) {
        self.tallies(|t| f(t.entry(tenant.to_owned()).or_default()));
    }

    fn event(&self, event: &Event<'_>) {
        if let Event::Transition {
            tenant,
            from,
            to,
            reason,
            ..
        } = *event
        {
            self.update(tenant, |t| t.transitions.push((from, to, reason)));
            let what = match to {
                State::Open => "circuit OPEN",
                State::HalfOpen => "circuit half-open: one probe goes through",
                State::Closed => "circuit CLOSED: recovered",
                _ => "circuit switched by hand",
            };
            self.print(tenant, &format!("== {what} ({from} -> {to}, {reason}) =="));
        }
    }

    fn sent(&self, tenant: &str, state: State) {
        self.update(tenant, |t| {
            t.sent += 1;
            t.probes += u64::from(state == State::HalfOpen);
            t.in_flight = Some(state);
        });
    }

    fn called(&self, tenant: &str, result: &Result<u16, CallError>) {
        let mut line = String::new();
        self.update(tenant, |t| {
            t.calls += 1;
            let probe = t.in_flight.take() == Some(State::HalfOpen);
            let _ = write!(line, "{}", if probe { "probe " } else { "GET " });
            let _ = match result {
                Ok(status) => {
                    t.answered += 1;
                    write!(line, "-> {status}")
                }
                Err(CallError::Rejected(open)) => {
                    t.rejected += 1;
                    line.clear();
                    match open.retry_after() {
                        Some(d) => write!(line, "rejected, retry after {}ms", d.as_millis()),
                        None => {
                            t.rejected_without_retry_after += 1;
                            write!(line, "rejected ({})", open.state())
                        }
                    }
                }
                Err(CallError::Status(status)) => {
                    t.answered += 1;
                    write!(line, "-> {status} (failure)")
                }
                Err(CallError::Refused) => {
                    t.refused += 1;
                    write!(line, "-> connection refused (failure)")
                }
                Err(CallError::Timeout) => {
                    t.lost += 1;
                    write!(line, "-> timed out (failure)")
                }
                Err(CallError::Network(e)) => {
                    t.lost += 1;
                    write!(line, "-> {e} (failure)")
                }
            };
        });
        self.print(tenant, &line);
    }

    /// One line per tenant: what the client did, what the server received, the final state.
    pub fn summary(&self, server: &Server, registry: &Registry) {
        println!();
        println!(
            "{:<8} {:>5} {:>8} {:>5} {:>6} {:>10} {:>19}  state",
            "tenant", "calls", "rejected", "sent", "probes", "server got", "of which while open"
        );
        for tenant in TENANTS {
            let t = self.tally(tenant);
            let r = server.received(tenant);
            let state = registry
                .get(PROVIDER, tenant)
                .map_or(State::Closed, |c| c.state());
            println!(
                "{tenant:<8} {:>5} {:>8} {:>5} {:>6} {:>10} {:>19}  {state}",
                t.calls,
                t.rejected,
                t.sent,
                t.probes,
                r.total(),
                r.while_open
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
