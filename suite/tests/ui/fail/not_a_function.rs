use breaker::circuit_breaker;

#[circuit_breaker(provider = "p")]
struct Client {
    tenant: String,
}

fn main() {
    let c = Client {
        tenant: String::new(),
    };
    let _ = c.tenant;
}
