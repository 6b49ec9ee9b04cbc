//! The page: `index.html` with `dashboard.js` inlined (so it loads from wherever the router is
//! nested, with or without a trailing slash), and a server-rendered list of the open circuits
//! for clients without JavaScript.

use std::fmt::Write;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::header;

use super::api::{self, Filter};
use super::App;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");

/// What the server renders into the page itself, at most: the first circuits not closed.
const SERVER_ROWS: usize = 50;

/// `&`, `<`, `>`, `"` and `'` as entities: text that came from a request or a registry is only
/// ever text in the page.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`.
pub(super) async fn index(State(app): State<App>) -> Response {
    let filter = Filter {
        per_page: Some(SERVER_ROWS),
        max_tripped: Some(SERVER_ROWS),
        ..Filter::default()
    };
    let mut rows = String::new();
    if let Ok(page) = api::page(&app, &filter) {
        let not_closed = page.circuits.iter().filter(|r| r.state != "closed");
        for row in not_closed.take(SERVER_ROWS) {
            let _ = write!(
                rows,
                "<li><span class=\"state {state}\">{state}</span> {provider} / {tenant}</li>",
                state = escape(row.state),
                provider = escape(&row.provider),
                tenant = escape(&row.tenant),
            );
        }
    }
    if rows.is_empty() {
        rows.push_str("<li>No circuit is open.</li>");
    }
    // The script first: it holds no placeholder, while the rows may (a tenant named so).
    let html = INDEX
        .replace("{{script}}", SCRIPT)
        .replace("{{server_rows}}", &rows);
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /dashboard.js`: the same script, for those who want it apart.
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn the_inlined_script_cannot_end_its_own_tag() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(
            !SCRIPT.contains("{{"),
            "no placeholder of the page in the script"
        );
        assert_eq!(INDEX.matches("{{script}}").count(), 1);
        assert_eq!(INDEX.matches("{{server_rows}}").count(), 1);
    }
}
