//! Code generation: the function is re-emitted with its signature untouched, token for token, and
//! only its body replaced by one that takes a permit, runs the original body once inside an inner
//! block, classifies the result and records it.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, Expr, FnArg, GenericArgument, Pat, PathArguments, ReturnType, Signature,
    Stmt, Type, TypeParamBound, Visibility,
};

use crate::attr::{self, Args, Provider, Setting};

/// Expands `#[circuit_breaker(args)] item`. Never panics; on any error the item is emitted
/// unchanged next to the errors, so the rest of the crate (and the IDE) still sees the function.
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = Func::parse(item.clone());
    let args = attr::parse(args);
    match (args, func) {
        (Ok(args), Ok(func)) => match expand(&args, &func) {
            Ok(tokens) => tokens,
            Err(e) => error_beside(e, item),
        },
        (Err(mut e), Err(f)) => {
            e.combine(f);
            error_beside(e, item)
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => error_beside(e, item),
    }
}

fn error_beside(e: syn::Error, item: TokenStream) -> TokenStream {
    let errors = e.to_compile_error();
    quote!(#errors #item)
}

/// The annotated function, split so that everything before the body is re-emitted verbatim.
struct Func {
    /// Attributes, visibility and signature, exactly as written.
    head: TokenStream,
    sig: Signature,
    /// The body `{ ... }`, exactly as written.
    body: Group,
}

impl Func {
    fn parse(item: TokenStream) -> syn::Result<Func> {
        let mut trees: Vec<TokenTree> = item.into_iter().collect();
        let last = trees.pop();
        let head: TokenStream = trees.into_iter().collect();
        let sig = (|input: ParseStream| {
            input.call(Attribute::parse_outer)?;
            input.parse::<Visibility>()?;
            input.parse::<Option<syn::Token![default]>>()?;
            let sig: Signature = input.parse()?;
            Ok(sig)
        })
        .parse2(head.clone());
        match (sig, last) {
            (Ok(sig), Some(TokenTree::Group(body))) if body.delimiter() == Delimiter::Brace => {
                Ok(Func { head, sig, body })
            }
            (Ok(sig), _) => Err(syn::Error::new(
                sig.ident.span(),
                "`#[circuit_breaker]` needs a function body: put it on the `fn` in the `impl`, not on the trait's declaration",
            )),
            (Err(_), last) => {
                let all: TokenStream = head.into_iter().chain(last).collect();
                Err(syn::Error::new(
                    item_keyword_span(all),
                    "`#[circuit_breaker]` can only be applied to a function",
                ))
            }
        }
    }
}

/// The span of the item's first token after its attributes and visibility (`struct`, `mod`, ...).
fn item_keyword_span(item: TokenStream) -> Span {
    let parser = |input: ParseStream| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let span = input.span();
        input.parse::<TokenStream>()?;
        Ok(span)
    };
    parser.parse2(item).unwrap_or_else(|_| Span::call_site())
}

/// What the generated body needs to know about the function.
struct Site<'a> {
    args: &'a Args,
    krate: TokenStream,
    /// The return type with every `impl Trait` replaced by `_`, used to pin the inner block's type
    /// so that `?` and `return` inside it convert to the function's error type. `None` when not
    /// known (async-trait output without a recognisable `Output = ..`).
    pin: Option<Type>,
    /// Where type errors about the return type should point.
    ret_span: Span,
    /// Whether the body is awaited (an `async fn`, or async-trait's boxed future).
    is_async: bool,
    /// The signature a `fallback` must have, as the error about a wrong one shows it.
    fallback_sig: String,
    /// With `stream`: whether the `Ok` type is written `impl Trait` (the guard is returned as
    /// it is) rather than named (the guard is boxed into it).
    ok_is_impl: bool,
}

fn expand(args: &Args, func: &Func) -> syn::Result<TokenStream> {
    let sig = &func.sig;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    if let Some(c) = &sig.constness {
        push(syn::Error::new(
            c.span,
            "`#[circuit_breaker]` cannot be used on a `const fn`: circuits are checked at run time",
        ));
    }
    if let Some(v) = &sig.variadic {
        push(syn::Error::new_spanned(
            v,
            "`#[circuit_breaker]` cannot be used on a variadic function",
        ));
    }
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => Some(&**ty),
        ReturnType::Default => {
            push(syn::Error::new(
                sig.ident.span(),
                "`#[circuit_breaker]` functions must return `Result<T, E>`; this one returns `()`",
            ));
            None
        }
    };
    let fallback_args = match &args.fallback {
        Some(_) => match forwarded_args(sig) {
            Ok(a) => a,
            Err(e) => {
                push(e);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    if let (Some(key), Some(_)) = (args.timeout_key, &args.fallback) {
        push(syn::Error::new(
            key,
            "`timeout` cannot be combined with `fallback` yet: when the deadline passes, the \
             arguments the fallback takes were moved into the call; return `Err` and handle \
             `CircuitOpen::is_timeout()` at the caller",
        ));
    }
    if let (Some(key), None) = (args.timeout_key, &sig.asyncness) {
        if async_trait_output(sig).is_none() {
            push(syn::Error::new(
                key,
                "`timeout` needs an `async fn`: a blocking call cannot be stopped at its \
                 deadline; bound it in its client (a socket or HTTP timeout), and use \
                 `slow_call` to count slow calls",
            ));
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    let Some(ret) = ret else {
        return Err(syn::Error::new(sig.ident.span(), "missing return type"));
    };

    let krate = match &args.krate {
        Some(path) => path.to_token_stream(),
        None => quote!(::breaker),
    };
    let head = &func.head;

    if sig.asyncness.is_some() {
        let site = Site {
            args,
            krate,
            pin: Some(infer_impl_trait(ret)),
            ret_span: ret.span(),
            is_async: true,
            fallback_sig: expected_fallback(sig, Some(ret), true),
            ok_is_impl: ok_is_impl(ret),
        };
        let body = wrapped_body(&site, &fallback_args, func.body.to_token_stream());
        return Ok(quote!(#head { #body }));
    }

    if let Some(tokens) = async_trait_body(args, sig, &func.body, &krate, &fallback_args) {
        return Ok(quote!(#head #tokens));
    }

    let site = Site {
        args,
        krate,
        pin: Some(infer_impl_trait(ret)),
        ret_span: ret.span(),
        is_async: false,
        fallback_sig: expected_fallback(sig, Some(ret), false),
        ok_is_impl: ok_is_impl(ret),
    };
    let body = wrapped_body(&site, &fallback_args, func.body.to_token_stream());
    Ok(quote!(#head { #body }))
}

/// The expressions that pass the function's arguments on to the fallback: `self` for a receiver,
/// the name for a named argument. A destructuring pattern cannot be passed on and is an error.
fn forwarded_args(sig: &Signature) -> syn::Result<Vec<TokenStream>> {
    let mut out = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => out.push(r.self_token.to_token_stream()),
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    out.push(p.ident.to_token_stream())
                }
                other => {
                    let e = syn::Error::new_spanned(
                        other,
                        "`fallback` receives every argument, so this one needs a plain name: write `name: Type` and destructure it in the body",
                    );
                    match &mut errors {
                        Some(all) => all.combine(e),
                        None => errors = Some(e),
                    }
                }
            },
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `ty` with every `impl Trait` replaced by `_`: usable inside the body, where `impl Trait` is
/// not allowed, and still precise enough for `?` to know the error type.
fn infer_impl_trait(ty: &Type) -> Type {
    struct Replace;
    impl VisitMut for Replace {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(t) = ty {
                let span = t.impl_token.span;
                *ty = syn::parse_quote_spanned!(span=> _);
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    Replace.visit_type_mut(&mut ty);
    ty
}

/// Whether the first type argument of `ty` (the `T` of `Result<T, E>` or of an alias such as
/// `io::Result<T>`) is written `impl Trait`.
fn ok_is_impl(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return false;
    };
    matches!(
        a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        Some(Type::ImplTrait(_))
    )
}

/// The statements of the new body. `run` is the original body (a block), quoted exactly once.
fn wrapped_body(site: &Site, fallback_args: &[TokenStream], run: TokenStream) -> TokenStream {
    let k = &site.krate;
    let acquire = acquire(site, fallback_args);
    let pin = site.pin.as_ref().map(|ty| {
        quote! {
            if let ::core::option::Option::Some(__breaker_ret) = ::core::option::Option::None::<#ty> {
                #[allow(unreachable_code)]
                return __breaker_ret;
            }
        }
    });
    // `probe = name`: read from the permit before the body runs (an async body must not
    // capture the permit), bound inside it, where the user's name is in scope.
    let (probe, bind) = match &site.args.probe {
        Some(name) => (
            Some(quote! {
                let __breaker_probe: bool = #k::__private::Permit::is_probe(&__breaker_permit);
            }),
            Some(quote!(let #name: bool = __breaker_probe;)),
        ),
        None => (None, None),
    };
    let leading = match (pin, bind) {
        (None, None) => None,
        (pin, bind) => Some(quote!(#pin #bind)),
    };
    let run = with_leading(leading, run);
    let call = if site.is_async && site.args.timeout_key.is_some() {
        // A site that declares `timeout` is raced against the circuit's deadline (the
        // attribute's, or the registry's if `configure` retuned it); past it the body is dropped
        // and the caller gets the timeout as a `CircuitOpen`. Other sites await the body as
        // before: a deadline costs every call a few instructions, so only sites that ask for one
        // pay them. (`timeout` with `fallback` is rejected above: the fallback's arguments are
        // moved into the body.)
        let rejected = {
            let k = respan(k, site.ret_span);
            quote_spanned!(site.ret_span=> #k::__private::timed_out(__breaker_permit))
        };
        quote! {
            match #k::__private::bounded(&__breaker_permit, async move #run).await {
                ::core::result::Result::Ok(__breaker_ret) => __breaker_ret,
                ::core::result::Result::Err(#k::__private::Late) => return #rejected,
            }
        }
    } else if site.is_async {
        quote!(async move #run.await)
    } else {
        quote!(#k::__private::call_once(move || #run))
    };
    // `timeout = ..` runs on tokio's timer: without breaker's `tokio` feature, one error here.
    let timer = site.args.timeout_key.map(|key| {
        let k = respan(k, key);
        quote_spanned!(key=> #k::__private::needs_timer::<#k::__private::Timer>();)
    });
    let outcome = match &site.args.classify {
        Some(classify) => quote_spanned!(classify.span()=> #classify(&__breaker_ret)),
        None => {
            let k = respan(k, site.ret_span);
            quote_spanned! {site.ret_span=>
            {
                #[allow(unused_imports)]
                use #k::__private::{ViaAny as _, ViaBoth as _, ViaClassify as _, ViaOk as _, ViaResult as _};
                (&&&&&#k::__private::Classifier(&__breaker_ret)).__breaker_outcome()
            }
            }
        }
    };
    // Without a fallback, `reject` checks the return type; with one, this does.
    let check = site.args.fallback.as_ref().map(|_| {
        let k = respan(k, site.ret_span);
        quote_spanned!(site.ret_span=> #k::__private::returns_result(&__breaker_ret);)
    });
    if let Some(flag) = site.args.stream {
        let finish = stream_finish(site, flag, &outcome);
        return quote! {
            #acquire
            #probe
            let __breaker_ret = #call;
            #check
            #finish
        };
    }
    quote! {
        #timer
        #acquire
        #probe
        let __breaker_ret = #call;
        #check
        #k::__private::Permit::record(__breaker_permit, #outcome);
        __breaker_ret
    }
}

/// With `stream`: the call's `Err` is classified and recorded now (`outcome`); its `Ok` stream
/// is returned guarded by the permit, which records when the stream ends. Type errors (an `Ok`
/// that is not a stream, items that cannot be classified) point at the return type, or at
/// `classify_item`.
fn stream_finish(site: &Site, flag: Span, outcome: &TokenStream) -> TokenStream {
    let k = &site.krate;
    let classify = match &site.args.classify_item {
        Some(path) => quote_spanned!(path.span()=> #path),
        None => quote_spanned!(flag=> #k::__private::stream::ByClassify),
    };
    let guard = if site.ok_is_impl {
        quote!(guard)
    } else {
        quote!(guard_boxed)
    };
    let kr = respan(k, site.ret_span);
    quote_spanned! {site.ret_span=>
        let __breaker_err = if ::core::result::Result::is_err(&__breaker_ret) {
            ::core::option::Option::Some(#outcome)
        } else {
            ::core::option::Option::None
        };
        #kr::__private::stream::#guard(__breaker_permit, __breaker_ret, __breaker_err, #classify)
    }
}

/// The block `run` with `first` as its first statements, keeping its braces and span: a block
/// nested in a block of ours would draw `unused_braces` on a one-line body, which the user can
/// neither fix nor silence. A body with inner attributes (`#![allow(..)]`) is nested all the
/// same, since an async block or a closure may not start with them.
fn with_leading(first: Option<TokenStream>, run: TokenStream) -> TokenStream {
    let mut trees = run.clone().into_iter();
    let block = match (trees.next(), trees.next()) {
        (Some(TokenTree::Group(block)), None) if block.delimiter() == Delimiter::Brace => block,
        _ => return quote!({ #first #run }),
    };
    let mut body = block.stream().into_iter();
    if let (Some(TokenTree::Punct(hash)), Some(TokenTree::Punct(bang))) = (body.next(), body.next())
    {
        if hash.as_char() == '#' && bang.as_char() == '!' {
            return quote!({ #first #run });
        }
    }
    let stmts = block.stream();
    let mut out = Group::new(Delimiter::Brace, quote!(#first #stmts));
    out.set_span(block.span());
    out.into_token_stream()
}

/// `let __breaker_permit = ...;`: evaluates the registry and the tenant (before the body moves
/// anything), takes a permit, or returns the rejection (or the fallback's result).
fn acquire(site: &Site, fallback_args: &[TokenStream]) -> TokenStream {
    let k = &site.krate;
    let args = site.args;
    let provider = match &args.provider {
        Provider::Literal(name) => name.to_token_stream(),
        // Evaluated when the crate is compiled: a constant of another type is a type error at the
        // path, an empty one fails the build like an empty literal.
        Provider::Const(path) => quote_spanned! {path.span()=>
            const {
                let __breaker_provider: &'static str = #path;
                ::core::assert!(!__breaker_provider.is_empty(), "`provider` must not be empty");
                __breaker_provider
            }
        },
    };
    let registry = match &args.registry {
        Some(r) => quote_spanned!(r.span()=> #r),
        None => quote!(#k::__private::Registry::global()),
    };
    let tenant = match &args.tenant {
        Some(t) => quote_spanned!(t.span()=> &(#t)),
        None => quote!(#k::__private::DEFAULT_TENANT),
    };
    let (site_static, site_config) = if args.settings.is_empty() {
        (quote!(), quote!(::core::option::Option::None))
    } else {
        let calls = args.settings.iter().map(|s| builder_call(k, *s));
        (
            quote! {
                // Checked by the same builder when the attribute was expanded; if it could still
                // fail, the registry's default config would apply.
                static __BREAKER_SITE: #k::__private::LazyLock<
                    ::core::option::Option<#k::__private::Config>,
                > = #k::__private::LazyLock::new(|| {
                    #k::__private::Config::builder() #(#calls)* .build().ok()
                });
            },
            quote!(::core::option::Option::as_ref(&*__BREAKER_SITE)),
        )
    };
    let rejected = match &args.fallback {
        Some(fallback) => fallback_call(site, fallback, fallback_args),
        None => {
            let k = respan(k, site.ret_span);
            quote_spanned!(site.ret_span=> #k::__private::reject(__breaker_open))
        }
    };
    quote! {
        let __breaker_permit = match {
            #site_static
            // Where this site's provider lives in the registry, found once.
            static __BREAKER_PROVIDER: #k::__private::ProviderCache = #k::__private::ProviderCache::new();
            let __breaker_acquired = #k::__private::acquire(&__BREAKER_PROVIDER, #registry, #provider, #tenant, #site_config);
            __breaker_acquired
        } {
            ::core::result::Result::Ok(__breaker_permit) => __breaker_permit,
            ::core::result::Result::Err(__breaker_open) => return #rejected,
        };
    }
}

/// `fallback(args.., open)`, through a trait of this call site's own whose only impl is for the
/// expected signature: a fallback of another shape is one error at the `fallback` argument that
/// states the signature required (`#[diagnostic::do_not_recommend]` keeps rustc from reporting
/// the impl's `FnOnce` bound instead, with its misleading suggestions).
fn fallback_call(site: &Site, fallback: &syn::Path, fallback_args: &[TokenStream]) -> TokenStream {
    let k = &site.krate;
    let span = fallback.span();
    let message = format!(
        "`fallback = {}` must be `{}`",
        pretty(&fallback.to_token_stream()),
        site.fallback_sig
    );
    let label = format!("expected `{}`", site.fallback_sig);
    let note = if site.is_async {
        "the fallback gets this function's arguments (`self` first) and the `CircuitOpen`, returns its return type, and is awaited: an `async fn`"
    } else {
        "the fallback gets this function's arguments (`self` first) and the `CircuitOpen`, and returns its return type"
    };
    let params: Vec<proc_macro2::Ident> = (0..fallback_args.len())
        .map(|i| proc_macro2::Ident::new(&format!("__BreakerA{i}"), Span::call_site()))
        .collect();
    let values: Vec<proc_macro2::Ident> = (0..fallback_args.len())
        .map(|i| proc_macro2::Ident::new(&format!("__breaker_a{i}"), Span::call_site()))
        .collect();
    // The call's type comes from the trait's signature, not from an impl, so a fallback that does
    // not fit is this one error, not also a mismatch at the `.await` or the `return`. The second
    // impl never applies: it only leaves rustc two candidates to reject, so that it reports the
    // trait's own message even for a wrong number of arguments (which it would otherwise report,
    // past `do_not_recommend`, as "function is expected to take 3 arguments").
    let (bounds, out, never) = if site.is_async {
        (
            quote! {
                __BreakerF: ::core::ops::FnOnce(#(#params,)* #k::CircuitOpen) -> __BreakerFut,
                __BreakerFut: ::core::future::Future<Output = __BreakerRet>,
            },
            quote!(impl ::core::future::Future<Output = __BreakerRet>),
            quote!(::core::future::ready(__BreakerNever::__breaker_never(self))),
        )
    } else {
        (
            quote!(__BreakerF: ::core::ops::FnOnce(#(#params,)* #k::CircuitOpen) -> __BreakerRet,),
            quote!(__BreakerRet),
            quote!(__BreakerNever::__breaker_never(self)),
        )
    };
    let fut_param = site.is_async.then(|| quote!(__BreakerFut,));
    let ret = match &site.pin {
        Some(ty) => ty.to_token_stream(),
        None => quote!(_),
    };
    let forwarded = fallback_args.iter().map(|a| respan(a, span));
    let wait = site.is_async.then(|| quote!(.await));
    let call = quote_spanned! {span=>
        <_ as __BreakerFallback<_, #ret, _>>::__breaker_call(#fallback, (#(#forwarded,)*), __breaker_open)
    };
    quote! {
        {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            trait __BreakerFallback<__BreakerArgs, __BreakerRet, __BreakerShape> {
                fn __breaker_call(
                    self,
                    args: __BreakerArgs,
                    open: #k::CircuitOpen,
                ) -> #out;
            }
            #[diagnostic::do_not_recommend]
            impl<__BreakerF, #fut_param __BreakerRet, #(#params,)*>
                __BreakerFallback<(#(#params,)*), __BreakerRet, ()> for __BreakerF
            where
                #bounds
            {
                #[inline(always)]
                fn __breaker_call(
                    self,
                    (#(#values,)*): (#(#params,)*),
                    open: #k::CircuitOpen,
                ) -> #out {
                    self(#(#values,)* open)
                }
            }
            trait __BreakerNever<__BreakerRet> {
                fn __breaker_never(self) -> __BreakerRet;
            }
            #[diagnostic::do_not_recommend]
            impl<__BreakerF, __BreakerRet, #(#params,)*>
                __BreakerFallback<(#(#params,)*), __BreakerRet, ::core::convert::Infallible>
                for __BreakerF
            where
                __BreakerF: __BreakerNever<__BreakerRet>,
            {
                fn __breaker_call(
                    self,
                    _: (#(#params,)*),
                    _: #k::CircuitOpen,
                ) -> #out {
                    #never
                }
            }
            #call #wait
        }
    }
}

/// The signature a fallback must have, written as a user would: `async fn(&Self, u32,
/// CircuitOpen) -> Result<String, ApiError>`.
fn expected_fallback(sig: &Signature, ret: Option<&Type>, is_async: bool) -> String {
    let mut params: Vec<String> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(r) => {
                // `&self` is `&Self`, `mut self` is `Self`, `self: Arc<Self>` is `Arc<Self>`.
                let mut r = r.clone();
                r.attrs.clear();
                let text = pretty(&r.to_token_stream());
                match text.split_once(':') {
                    Some((_, ty)) => ty.trim().to_owned(),
                    None => text.replace("mut self", "self").replace("self", "Self"),
                }
            }
            FnArg::Typed(t) => pretty(&t.ty.to_token_stream()),
        })
        .collect();
    params.push("CircuitOpen".to_owned());
    let ret = ret.map_or_else(
        || "Result<T, E>".to_owned(),
        |t| pretty(&t.to_token_stream()),
    );
    let asyncness = if is_async { "async " } else { "" };
    format!("{asyncness}fn({}) -> {ret}", params.join(", "))
}

/// Tokens as a person writes them (`Result<u32, E>`, not `Result < u32 , E >`).
fn pretty(tokens: &TokenStream) -> String {
    let mut s = tokens.to_string();
    for (from, to) in [
        (" ,", ","),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        ("& ", "&"),
        (" ::", "::"),
        (":: ", "::"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        ("' ", "'"),
        (" ;", ";"),
    ] {
        while s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

/// `tokens` reported at `span`'s location, keeping their own name resolution: so that a type
/// error in generated code points at what the user wrote (the return type, the fallback path).
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut inner = Group::new(g.delimiter(), respan(&g.stream(), span));
                inner.set_span(g.span().located_at(span));
                tt = TokenTree::Group(inner);
            } else {
                tt.set_span(tt.span().located_at(span));
            }
            tt
        })
        .collect()
}

/// One `ConfigBuilder` call as code, with the values validated at expansion time.
fn builder_call(k: &TokenStream, s: Setting) -> TokenStream {
    use proc_macro2::Literal;
    let f = |v: f64| {
        // Validated values are finite, which `f64_suffixed` requires; a non-finite one would have
        // been rejected by the builder, so `1.0` is never used.
        Literal::f64_suffixed(if v.is_finite() { v } else { 1.0 })
    };
    let d = |d: std::time::Duration| {
        let ms = Literal::u64_suffixed(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        quote!(#k::__private::Duration::from_millis(#ms))
    };
    let w = |w: breaker_core::Window| match w {
        breaker_core::Window::Calls(n) => {
            let n = Literal::u32_suffixed(n);
            quote!(#k::__private::Window::Calls(#n))
        }
        breaker_core::Window::Time(t) => {
            let t = d(t);
            quote!(#k::__private::Window::Time(#t))
        }
    };
    let n = Literal::u32_suffixed;
    match s {
        Setting::ConsecutiveFailures(x) => {
            let x = n(x);
            quote!(.consecutive_failures(#x))
        }
        Setting::FailureRate(r, win) => {
            let (r, win) = (f(r), w(win));
            quote!(.failure_rate(#r, #win))
        }
        Setting::Window(win) => {
            let win = w(win);
            quote!(.window(#win))
        }
        Setting::MinimumCalls(x) => {
            let x = n(x);
            quote!(.minimum_calls(#x))
        }
        Setting::SlowCalls(t, r) => {
            let (t, r) = (d(t), f(r));
            quote!(.slow_calls(#t, #r))
        }
        Setting::OpenFor(t) => {
            let t = d(t);
            quote!(.open_for(#t))
        }
        Setting::MaxOpenFor(t) => {
            let t = d(t);
            quote!(.max_open_for(#t))
        }
        Setting::BackoffMultiplier(m) => {
            let m = f(m);
            quote!(.backoff_multiplier(#m))
        }
        Setting::Jitter(j) => {
            let j = f(j);
            quote!(.jitter(#j))
        }
        Setting::HalfOpenProbes(x) => {
            let x = n(x);
            quote!(.half_open_probes(#x))
        }
        Setting::HalfOpenSuccesses(x) => {
            let x = n(x);
            quote!(.half_open_successes(#x))
        }
        Setting::OnAbandoned(o) => {
            let o = outcome_path(k, o, d);
            quote!(.on_abandoned(#o))
        }
        Setting::Timeout(t) => {
            let t = d(t);
            quote!(.timeout(#t))
        }
        Setting::MaxInFlight(x) => {
            let x = n(x);
            quote!(.max_in_flight(#x))
        }
        Setting::ProbeTimeout(t) => {
            let t = d(t);
            quote!(.probe_timeout(#t))
        }
        Setting::FirstItemTimeout(t) => {
            let t = d(t);
            quote!(.first_item_timeout(#t))
        }
        Setting::IdleTimeout(t) => {
            let t = d(t);
            quote!(.idle_timeout(#t))
        }
        Setting::OnCancel(o) => {
            let o = outcome_path(k, o, d);
            quote!(.on_cancel(#o))
        }
    }
}

/// `Outcome::Failure` and the like, as code.
fn outcome_path(
    k: &TokenStream,
    o: breaker_core::Outcome,
    d: impl Fn(std::time::Duration) -> TokenStream,
) -> TokenStream {
    let o = match o {
        breaker_core::Outcome::Success => quote!(Success),
        breaker_core::Outcome::Failure => quote!(Failure),
        breaker_core::Outcome::Ignored => quote!(Ignored),
        // The attribute spells only the three above.
        breaker_core::Outcome::RetryAfter(t) => {
            let t = d(t);
            quote!(RetryAfter(#t))
        }
    };
    quote!(#k::__private::Outcome::#o)
}

/// Recognises the body that `#[async_trait]` gives an `async fn` (its last statement is
/// `Box::pin(async move { .. })`) and wraps only that async block, keeping every other statement.
fn async_trait_body(
    args: &Args,
    sig: &Signature,
    body: &Group,
    krate: &TokenStream,
    fallback_args: &[TokenStream],
) -> Option<TokenStream> {
    let mut block: Block = syn::parse2(body.to_token_stream()).ok()?;
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last_mut() else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = func
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    let inner = call.args.first_mut()?;
    let Expr::Async(future) = &*inner else {
        return None;
    };
    future.capture?;
    let output = async_trait_output(sig);
    let site = Site {
        args,
        krate: krate.clone(),
        pin: output.map(infer_impl_trait),
        ret_span: output.map_or_else(|| sig.output.span(), Spanned::span),
        is_async: true,
        fallback_sig: expected_fallback(sig, output, true),
        ok_is_impl: output.is_some_and(ok_is_impl),
    };
    // The async block written by async-trait already pins its own output type; awaiting it as a
    // whole keeps its `__self` renaming and argument moves intact.
    let wrapped = wrapped_body(&site, fallback_args, quote!({ #future.await }));
    *inner = Expr::Verbatim(quote!(async move { #wrapped }));
    Some(block.into_token_stream())
}

/// `T` in async-trait's `Pin<Box<dyn Future<Output = T> + Send + 'async_trait>>`.
fn async_trait_output(sig: &Signature) -> Option<&Type> {
    fn last_generic<'t>(ty: &'t Type, name: &str) -> Option<&'t Type> {
        let Type::Path(p) = ty else { return None };
        let last = p.path.segments.last()?;
        if last.ident != name {
            return None;
        }
        let PathArguments::AngleBracketed(a) = &last.arguments else {
            return None;
        };
        a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
    }
    let ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    let boxed = last_generic(ty, "Pin")?;
    let Type::TraitObject(object) = last_generic(boxed, "Box")? else {
        return None;
    };
    object.bounds.iter().find_map(|b| {
        let TypeParamBound::Trait(t) = b else {
            return None;
        };
        let last = t.path.segments.last()?;
        let PathArguments::AngleBracketed(a) = &last.arguments else {
            return None;
        };
        if last.ident != "Future" {
            return None;
        }
        a.args.iter().find_map(|g| match g {
            GenericArgument::AssocType(at) if at.ident == "Output" => Some(&at.ty),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        circuit_breaker(args, item).to_string()
    }

    #[test]
    fn the_body_is_quoted_once() {
        let out = expand_str(
            quote!(provider = "p"),
            quote!(
                async fn f(x: u32) -> Result<u32, E> {
                    unique_marker(x)
                }
            ),
        );
        assert_eq!(out.matches("unique_marker").count(), 1, "{out}");
        assert!(out.contains("__breaker_permit"), "{out}");
    }

    /// The pieces the rustdoc's "Expansion" section shows are what the macro writes.
    #[test]
    fn the_documented_expansion_matches() {
        let out = expand_str(
            quote!(
                provider = "anthropic",
                tenant = scope.tenant_id.as_str(),
                open_for = "10s"
            ),
            quote!(
                async fn complete(scope: &TenantScope, prompt: String) -> Result<String, ApiError> {
                    body()
                }
            ),
        );
        for piece in [
            "static __BREAKER_SITE",
            "static __BREAKER_PROVIDER : :: breaker :: __private :: ProviderCache",
            "acquire (& __BREAKER_PROVIDER , :: breaker :: __private :: Registry :: global ()",
            ". open_for (:: breaker :: __private :: Duration :: from_millis (10000u64))",
            "& (scope . tenant_id . as_str ())",
            "return :: breaker :: __private :: reject (__breaker_open)",
            ":: core :: option :: Option :: None :: < Result < String , ApiError > >",
            "& :: breaker :: __private :: Classifier (& __breaker_ret)) . __breaker_outcome ()",
        ] {
            assert!(out.contains(piece), "missing {piece:?} in {out}");
        }
        assert!(
            !out.contains("bounded"),
            "no deadline without `timeout`: {out}"
        );
    }

    #[test]
    fn a_site_with_a_timeout_races_its_deadline() {
        let out = expand_str(
            quote!(provider = "p", timeout = "2s"),
            quote!(
                async fn complete(prompt: String) -> Result<String, ApiError> {
                    body()
                }
            ),
        );
        for piece in [
            ":: breaker :: __private :: needs_timer :: < :: breaker :: __private :: Timer > ()",
            ". timeout (:: breaker :: __private :: Duration :: from_millis (2000u64))",
            "match :: breaker :: __private :: bounded (& __breaker_permit , async move",
            "return :: breaker :: __private :: timed_out (__breaker_permit)",
        ] {
            assert!(out.contains(piece), "missing {piece:?} in {out}");
        }
        assert_eq!(
            out.matches("body ()").count(),
            1,
            "the body is quoted once: {out}"
        );
    }

    /// The pieces the docs' stream expansion shows are what the macro writes.
    #[test]
    fn the_documented_stream_expansion_matches() {
        let item = quote!(
            async fn complete(
                prompt: &str,
            ) -> Result<impl Stream<Item = Result<String, E2>> + Send, Error> {
                body()
            }
        );
        let out = expand_str(quote!(provider = "anthropic", stream), item);
        for piece in [
            "let __breaker_err = if :: core :: result :: Result :: is_err (& __breaker_ret)",
            ":: breaker :: __private :: Classifier (& __breaker_ret)) . __breaker_outcome ()",
            ":: breaker :: __private :: stream :: guard (__breaker_permit , __breaker_ret , __breaker_err , :: breaker :: __private :: stream :: ByClassify)",
        ] {
            assert!(out.contains(piece), "missing {piece:?} in {out}");
        }
        assert!(
            !out.contains("Permit :: record"),
            "recorded by the guard: {out}"
        );

        let boxed = expand_str(
            quote!(provider = "p", stream, classify_item = by_kind),
            quote!(
                fn f<'a>() -> Result<Pin<Box<dyn Stream<Item = Result<u8, E2>> + Send + 'a>>, E> {
                    body()
                }
            ),
        );
        assert!(
            boxed.contains(":: breaker :: __private :: stream :: guard_boxed (__breaker_permit , __breaker_ret , __breaker_err , by_kind)"),
            "{boxed}"
        );
    }

    #[test]
    fn the_item_is_kept_beside_errors() {
        let out = expand_str(
            quote!(provider = 5),
            quote!(
                fn keep_me() -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn keep_me"), "{out}");
    }

    #[test]
    fn non_functions_are_rejected_and_kept() {
        let out = expand_str(
            quote!(provider = "p"),
            quote!(
                struct S;
            ),
        );
        assert!(out.contains("can only be applied to a function"), "{out}");
        assert!(out.contains("struct S"), "{out}");
    }

    #[test]
    fn declarations_without_body_are_rejected() {
        let out = expand_str(
            quote!(provider = "p"),
            quote!(
                async fn f(&self) -> Result<(), E>;
            ),
        );
        assert!(out.contains("needs a function body"), "{out}");
    }

    #[test]
    fn impl_trait_in_the_return_type_is_inferred_in_the_pin() {
        let ty: Type = syn::parse_quote!(Result<impl Iterator<Item = u32>, E>);
        let pinned = infer_impl_trait(&ty);
        assert_eq!(pinned.to_token_stream().to_string(), "Result < _ , E >");
    }

    #[test]
    fn async_trait_shape_is_recognised() {
        let out = expand_str(
            quote!(provider = "p"),
            quote! {
                fn f<'life0, 'async_trait>(&'life0 self) -> ::core::pin::Pin<Box<
                    dyn ::core::future::Future<Output = Result<u32, E>> + ::core::marker::Send + 'async_trait
                >> {
                    Box::pin(async move { let __self = self; inner_marker() })
                }
            },
        );
        assert_eq!(out.matches("inner_marker").count(), 1, "{out}");
        assert!(out.contains(". await"), "{out}");
    }

    #[test]
    fn garbage_never_panics() {
        for item in [
            quote!(),
            quote!(fn),
            quote!({}),
            quote!(
                fn f() {}
            ),
            quote!(
                const fn f() -> Result<(), E> {
                    Ok(())
                }
            ),
            quote!(
                fn f((a, b): (u8, u8)) -> Result<(), E> {
                    Ok(())
                }
            ),
            quote!(impl X {}),
            quote!(fn f() -> Result<(), E> where),
        ] {
            let _ = expand_str(quote!(provider = "p", fallback = fb), item);
            let _ = expand_str(
                quote!(),
                quote!(
                    fn f() -> R {
                        x
                    }
                ),
            );
        }
    }
}
