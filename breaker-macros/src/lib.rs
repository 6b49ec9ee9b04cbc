//! The `#[circuit_breaker]` attribute of the [`breaker`](https://docs.rs/breaker) crate.
//!
//! Use it through `breaker`, which re-exports it: `use breaker::circuit_breaker;`. The entry point
//! here only converts token streams; `attr.rs` parses the arguments and `expand.rs` writes the code.

mod attr;
mod duration;
mod expand;

#[doc = include_str!("circuit_breaker.md")]
#[proc_macro_attribute]
pub fn circuit_breaker(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand::circuit_breaker(args.into(), item.into()).into()
}
