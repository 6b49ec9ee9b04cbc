use breaker::circuit_breaker;

#[circuit_breaker(provider = "p")]
async fn count() -> u32 {
    1
}

#[circuit_breaker(provider = "p")]
fn nothing() {}

fn fallback(_open: breaker::CircuitOpen) -> Option<u32> {
    None
}

#[circuit_breaker(provider = "p", fallback = fallback)]
fn with_fallback() -> Option<u32> {
    Some(1)
}

fn main() {
    let _ = count();
    nothing();
    let _ = with_fallback();
}
