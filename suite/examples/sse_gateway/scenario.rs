//! The script of `examples/sse_gateway.rs`, which `tests/sse_gateway.rs` runs too: a client
//! streams answers through the gateway while the provider misbehaves one way per case, and the
//! circuit's judgement of each case is collected (and printed, for the example).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use breaker::stream::Stream;
use breaker::{Event, Metrics, Reason, Registry, State, DEFAULT_TENANT};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::gateway::{self, Gateway, FIRST_ITEM_TIMEOUT, IDLE_TIMEOUT, OPEN_FOR, PROVIDER};
use crate::upstream::{Mode, Upstream};

/// How the circuit judged one case, read from its counters and transitions (the breaker has no
/// event per outcome; a rate policy's window counts each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// A success was recorded.
    Success,
    /// A failure was recorded.
    Failure,
    /// Nothing was recorded (a rejected call).
    Nothing,
}

impl std::fmt::Display for Judged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Judged::Success => "success",
            Judged::Failure => "failure",
            Judged::Nothing => "nothing recorded",
        })
    }
}

/// What the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A `200` and an SSE stream: its tokens, in order, and the gateway's `error` event, if it
    /// ended with one.
    Streamed {
        tokens: Vec<String>,
        error: Option<String>,
    },
    /// The gateway's `503`: the circuit rejected the call; `Retry-After` in seconds.
    Rejected { retry_after: Option<String> },
    /// Any other status.
    Status(u16),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Streamed { tokens, error } => {
                write!(f, "200, {} tokens", tokens.len())?;
                match error {
                    Some(_) => f.write_str(", then an error event"),
                    None => f.write_str(", end"),
                }
            }
            Answer::Rejected { retry_after } => {
                write!(
                    f,
                    "503, Retry-After: {}",
                    retry_after.as_deref().unwrap_or("-")
                )
            }
            Answer::Status(0) => f.write_str("no answer"),
            Answer::Status(status) => write!(f, "{status}"),
        }
    }
}

/// One case of the script, as the client and the circuit saw it.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case is about.
    pub title: &'static str,
    pub answer: Answer,
    pub judged: Judged,
    /// The circuit's transitions during the case (printed as they happen; the test reads them).
    #[allow(dead_code)]
    pub transitions: Vec<(State, State, Reason)>,
    /// The states of the calls the circuit rejected during the case (as above).
    #[allow(dead_code)]
    pub rejections: Vec<State>,
    /// The circuit's state when the client had read the whole answer.
    pub state: State,
    /// Requests the provider received during the case.
    pub upstream_requests: u32,
}

/// The timeline: prints as it goes (when asked to) and keeps what the circuit's listener saw.
pub struct Log {
    start: Instant,
    print: bool,
    transitions: Mutex<Vec<(State, State, Reason)>>,
    rejections: Mutex<Vec<State>>,
}

impl Log {
    fn new(print: bool) -> Arc<Log> {
        Arc::new(Log {
            start: Instant::now(),
            print,
            transitions: Mutex::default(),
            rejections: Mutex::default(),
        })
    }

    fn line(&self, text: &str) {
        if self.print {
            println!("[{:5.2}s] {text}", self.start.elapsed().as_secs_f64());
        }
    }

    /// The circuit's listener: transitions and rejections, printed and kept.
    fn event(&self, event: &Event<'_>) {
        match *event {
            Event::Transition {
                from,
                to,
                reason,
                open_for,
                ..
            } => {
                let mut text = format!("    circuit: {from} -> {to} ({reason})");
                if let Some(d) = open_for {
                    let _ = write!(text, ", open for {d:?}");
                }
                self.line(&text);
                lock(&self.transitions).push((from, to, reason));
            }
            Event::Rejected {
                state, retry_after, ..
            } => {
                let mut text = format!("    circuit: rejects the call ({state})");
                if let Some(d) = retry_after {
                    let _ = write!(text, ", a probe may pass in {d:.1?}");
                }
                self.line(&text);
                lock(&self.rejections).push(state);
            }
            _ => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The provider, the gateway in front of it, and a client of the gateway.
pub struct Demo {
    pub upstream: Upstream,
    pub gateway_url: String,
    pub registry: Arc<Registry>,
    client: reqwest::Client,
    log: Arc<Log>,
}

impl Demo {
    /// Starts the provider and the gateway on free loopback ports.
    pub async fn start(print: bool) -> std::io::Result<Demo> {
        let log = Log::new(print);
        let upstream = Upstream::start().await?;
        let listening = log.clone();
        let registry = Arc::new(
            Registry::builder()
                .listener(move |event: &Event<'_>| listening.event(event))
                .build(),
        );
        let app = gateway::router(Arc::new(Gateway {
            client: reqwest::Client::new(),
            upstream: upstream.url().to_owned(),
            registry: registry.clone(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder()
            // Only so that a broken demo cannot hang; every case ends well before.
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        log.line(&format!("fake LLM provider on {}", upstream.url()));
        log.line(&format!(
            "gateway on {gateway_url}: circuit `{PROVIDER}` trips when 3 of 4 answers fail, \
             first_item_timeout {FIRST_ITEM_TIMEOUT:?}, idle_timeout {IDLE_TIMEOUT:?}, \
             open for {OPEN_FOR:?}; it cuts off a provider silent for {:?}",
            gateway::STALL_CUTOFF
        ));
        Ok(Demo {
            upstream,
            gateway_url,
            registry,
            client,
            log,
        })
    }

    /// Runs the whole script: four answers the circuit judges (one success, three failures,
    /// which trip it), a rejection while it is open, then a half-open probe whose stream holds
    /// the probe slot until it ends (another call meanwhile is rejected) and closes the circuit.
    pub async fn run(&self) -> Vec<Case> {
        let mut cases = vec![
            self.case("a healthy answer", Mode::Healthy).await,
            self.case("the provider fails mid-stream", Mode::FailMidStream)
                .await,
            self.case(
                "the provider stalls after the headers",
                Mode::StallAfterHeaders,
            )
            .await,
            self.case(
                "the provider is slow to the first token",
                Mode::SlowFirstToken,
            )
            .await,
            self.case("a healthy provider, behind the open circuit", Mode::Healthy)
                .await,
        ];
        let wait = self
            .metrics()
            .and_then(|m| m.retry_after)
            .unwrap_or_default()
            + Duration::from_millis(100);
        self.log
            .line(&format!("(waiting {wait:.1?} for the open period to end)"));
        tokio::time::sleep(wait).await;
        let (probe, meanwhile) = self.probe().await;
        cases.push(meanwhile);
        cases.push(probe);
        cases
    }

    /// The circuit's counters now (`None` before its first call: looking it up with
    /// `Registry::circuit` would create it with the default config, not the attribute's).
    pub fn metrics(&self) -> Option<Metrics> {
        self.registry
            .get(PROVIDER, DEFAULT_TENANT)
            .map(|c| c.metrics())
    }

    fn state(&self) -> State {
        self.metrics().map_or(State::Closed, |m| m.state)
    }

    /// One request through the gateway, read to its end.
    async fn case(&self, title: &'static str, mode: Mode) -> Case {
        let start = self.begin(title, mode);
        let answer = match self.request(mode).await {
            Ok(mut sse) => sse.read_to_end(&self.log).await,
            Err(answer) => answer,
        };
        self.end(title, start, answer)
    }

    /// The half-open probe: a healthy answer the provider holds after its first token. While
    /// it is held another request comes, and is rejected: the probe's stream holds the slot.
    async fn probe(&self) -> (Case, Case) {
        let title = "the half-open probe, a long healthy answer";
        let start = self.begin(title, Mode::Held);
        let mut sse = match self.request(Mode::Held).await {
            Ok(sse) => sse,
            Err(answer) => {
                let probe = self.end(title, start, answer.clone());
                return (probe.clone(), probe);
            }
        };
        let first = sse.next_token(&self.log).await;
        self.log.line(&format!(
            "  (the probe's stream is open, the circuit is {})",
            self.state()
        ));
        let meanwhile = self.case("meanwhile, another request", Mode::Healthy).await;
        self.upstream.release();
        let mut answer = sse.read_to_end(&self.log).await;
        if let (Some(first), Answer::Streamed { tokens, .. }) = (first, &mut answer) {
            tokens.insert(0, first);
        }
        (self.end(title, start, answer), meanwhile)
    }

    fn begin(&self, title: &str, mode: Mode) -> Mark {
        self.log.line(&format!("{title} (mode={})", mode.as_str()));
        Mark {
            metrics: self.metrics(),
            transitions: lock(&self.log.transitions).len(),
            rejections: lock(&self.log.rejections).len(),
            requests: self.upstream.requests(),
        }
    }

    fn end(&self, title: &'static str, start: Mark, answer: Answer) -> Case {
        let after = self.metrics();
        let transitions = lock(&self.log.transitions)[start.transitions..].to_vec();
        let rejections = lock(&self.log.rejections)[start.rejections..].to_vec();
        let counts =
            |m: Option<Metrics>| m.map_or((0, 0), |m| (m.calls_in_window, m.failures_in_window));
        let (calls, failures) = counts(after);
        let judged = judge(counts(start.metrics), (calls, failures), &transitions);
        let state = self.state();
        self.log.line(&format!(
            "  judged: {judged}; the circuit is {state} ({failures} of {calls} answers in its window failed)"
        ));
        Case {
            title,
            answer,
            judged,
            transitions,
            rejections,
            state,
            upstream_requests: self.upstream.requests() - start.requests,
        }
    }

    /// Sends a request; `Err` is an answer without a stream.
    async fn request(&self, mode: Mode) -> Result<Sse, Answer> {
        let url = format!("{}/chat?mode={}", self.gateway_url, mode.as_str());
        let response = match self.client.get(url).send().await {
            Ok(response) => response,
            Err(e) => {
                self.log.line(&format!("  client: no answer: {e}"));
                return Err(Answer::Status(0));
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.log.line(&format!(
                "  client: 503, Retry-After: {}",
                retry_after.as_deref().unwrap_or("-")
            ));
            return Err(Answer::Rejected { retry_after });
        }
        if !status.is_success() {
            self.log.line(&format!("  client: {status}"));
            return Err(Answer::Status(status.as_u16()));
        }
        self.log.line("  client: 200, streaming");
        Ok(Sse {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            tokens: Vec::new(),
        })
    }
}

/// The circuit's counters and the listener's logs when a case began.
struct Mark {
    metrics: Option<Metrics>,
    transitions: usize,
    rejections: usize,
    requests: u32,
}

/// What the circuit recorded between the window's counts (calls, failures) `before` and
/// `after`: a trip or a failed probe is a failure, a closing probe a success; otherwise the
/// window's counts tell.
fn judge(before: (u32, u32), after: (u32, u32), transitions: &[(State, State, Reason)]) -> Judged {
    if transitions.iter().any(|&(_, to, _)| to == State::Open) {
        return Judged::Failure;
    }
    if transitions
        .iter()
        .any(|&(from, to, _)| (from, to) == (State::HalfOpen, State::Closed))
    {
        return Judged::Success;
    }
    if after.1 > before.1 {
        Judged::Failure
    } else if after.0 > before.0 {
        Judged::Success
    } else {
        Judged::Nothing
    }
}

/// The client's side of one SSE answer.
struct Sse {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>,
    buffer: String,
    tokens: Vec<String>,
}

/// One SSE event: `data`, and its `event` name, if any.
enum Next {
    Token(String),
    Error(String),
    End,
}

impl Sse {
    async fn next(&mut self, log: &Log) -> Next {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if name.as_deref() == Some("error") {
                    log.line(&format!("  client <- error event: {data}"));
                    return Next::Error(data);
                }
                log.line(&format!("  client <- {data:?}"));
                return Next::Token(data);
            }
            match std::future::poll_fn(|cx| self.body.as_mut().poll_next(cx)).await {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(e)) => {
                    log.line(&format!("  client: the stream broke: {e}"));
                    return Next::Error(e.to_string());
                }
                None => {
                    log.line("  client: end of stream");
                    return Next::End;
                }
            }
        }
    }

    /// The next token, if the stream goes on.
    async fn next_token(&mut self, log: &Log) -> Option<String> {
        match self.next(log).await {
            Next::Token(token) => Some(token),
            _ => None,
        }
    }

    async fn read_to_end(&mut self, log: &Log) -> Answer {
        let error = loop {
            match self.next(log).await {
                Next::Token(token) => self.tokens.push(token),
                Next::Error(e) => break Some(e),
                Next::End => break None,
            }
        };
        Answer::Streamed {
            tokens: std::mem::take(&mut self.tokens),
            error,
        }
    }
}
