use breaker::circuit_breaker;

// `std::fmt::Error` comes from another crate: `impl From<CircuitOpen> for std::fmt::Error` is not
// allowed here, so the message must not suggest it alone.
#[circuit_breaker(provider = "p")]
async fn call() -> Result<u32, std::fmt::Error> {
    Ok(1)
}

fn main() {
    let _ = call();
}
