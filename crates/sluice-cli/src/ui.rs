//! `sluice run --ui ADDR`: the dashboard, served by the running process.
//!
//! A page (embedded in the binary, no CDN) and a read-only JSON API over
//! the run's [`Watch`]; live updates by Server-Sent Events. The server runs
//! on its own thread with a single-threaded tokio runtime; a second thread
//! samples the watch once a second. docs/dashboard.md documents the API.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use sluice_pipeline::Watch;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the figures are sampled and pushed to the page.
const PERIOD: Duration = Duration::from_secs(1);
/// The longest request line and headers accepted, in bytes.
const MAX_HEAD: usize = 8 * 1024;

const INDEX: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/app.js");
const STYLE: &str = include_str!("../assets/dashboard/app.css");

/// Who may ask.
#[derive(Clone)]
struct Access {
    watch: Arc<Watch>,
    token: Option<Arc<str>>,
    /// Bound to loopback without a token: only `Host`s that name this
    /// machine (a page elsewhere cannot rebind a name of its own to it).
    loopback_only: bool,
}

/// Why the dashboard cannot be served as asked.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The token is too short to guess hard.
    #[error(
        "--ui-token must be at least 16 characters (it has {0}): generate one with \
         `openssl rand -hex 16`"
    )]
    ShortToken(usize),
    /// The token holds characters a URL would mangle.
    #[error("--ui-token may hold only letters, digits and . _ ~ - (it travels in URLs)")]
    TokenCharacters,
    /// Served beyond this machine without a token.
    #[error(
        "--ui {0} is not a loopback address: anyone who can reach it would see the \
         pipeline's data. Pass --ui-token TOKEN (or set SLUICE_UI_TOKEN) to require it on \
         every request, or bind 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    /// The address cannot be bound, or a thread not started.
    #[error("cannot serve the dashboard at {addr}: {error}")]
    Serve {
        /// Where.
        addr: SocketAddr,
        /// What the operating system said.
        error: std::io::Error,
    },
}

/// Checks `--ui` and `--ui-token` before anything runs.
pub fn check(addr: SocketAddr, token: Option<&str>) -> Result<(), UiError> {
    if let Some(token) = token {
        if token.len() < 16 {
            return Err(UiError::ShortToken(token.len()));
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        {
            return Err(UiError::TokenCharacters);
        }
    } else if !addr.ip().is_loopback() {
        return Err(UiError::NotLoopback(addr));
    }
    Ok(())
}

/// Serves the dashboard at `addr` until the process exits; returns the
/// address bound (a port of 0 picks a free one).
pub fn serve(
    watch: Arc<Watch>,
    addr: SocketAddr,
    token: Option<String>,
) -> Result<SocketAddr, UiError> {
    let failed = |error| UiError::Serve { addr, error };
    let listener = std::net::TcpListener::bind(addr).map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let access = Access {
        watch: watch.clone(),
        token: token.map(Arc::from),
        loopback_only: addr.ip().is_loopback(),
    };
    let sampled = watch.clone();
    std::thread::Builder::new()
        .name("sluice-ui-sample".into())
        .spawn(move || loop {
            std::thread::sleep(PERIOD);
            sampled.sample();
        })
        .map_err(failed)?;
    std::thread::Builder::new()
        .name("sluice-ui".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: the dashboard cannot start: {error}");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        eprintln!("error: the dashboard cannot listen: {error}");
                        return;
                    }
                };
                if let Err(error) = axum::serve(listener, router(access)).await {
                    eprintln!("error: the dashboard stopped: {error}");
                }
            });
        })
        .map_err(failed)?;
    Ok(bound)
}

fn router(access: Access) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api", get(api_index))
        .route("/api/snapshot", get(snapshot))
        .route("/api/graph", get(graph))
        .route("/api/history", get(history))
        .route("/api/events", get(events))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page; see /api\n") })
        .layer(DefaultBodyLimit::max(0))
        .layer(middleware::from_fn_with_state(access.clone(), guard))
        .with_state(access)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Every request: read-only, small, from a permitted host, with the token
/// when one is set.
async fn guard(State(access): State<Access>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "the dashboard is read-only");
    }
    let head: usize = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head > MAX_HEAD {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request too large",
        );
    }
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v != "0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "requests have no body");
    }
    if access.loopback_only && access.token.is_none() && !local_host(request.headers()) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "the dashboard answers only to localhost, 127.0.0.1 or [::1]",
        );
    }
    // The page and its assets hold no data: they load without the token
    // (the page passes the token of its URL on to the API).
    let asset = matches!(request.uri().path(), "/" | "/app.js" | "/app.css");
    if let Some(token) = &access.token {
        if !asset && !token_matches(&request, token) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open /?token=TOKEN, or send \
                 `Authorization: Bearer TOKEN`",
            );
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, format!("{why}\n")).into_response()
}

fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The token from `Authorization: Bearer` or the `token` query parameter,
/// compared in constant time.
fn token_matches(request: &Request, token: &str) -> bool {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    [bearer, query]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_index() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "endpoints": {
            "/api/snapshot": "everything the page shows now",
            "/api/graph": "the dataflow: nodes and edges",
            "/api/history": "a point a second: rates, batch sizes and durations, latency",
            "/api/events": "Server-Sent Events: `snapshot` every second (with the new point)",
        },
        "docs": "docs/dashboard.md",
    }))
}

async fn snapshot(State(access): State<Access>) -> Json<serde_json::Value> {
    Json(access.watch.snapshot())
}

async fn graph(State(access): State<Access>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(access.watch.graph()).unwrap_or_default())
}

async fn history(State(access): State<Access>) -> Json<serde_json::Value> {
    Json(access.watch.history())
}

async fn events(
    State(access): State<Access>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let watch = access.watch;
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(PERIOD));
    let stream = ticks.map(move |_| {
        let mut snapshot = watch.snapshot();
        snapshot["point"] = watch.last_point();
        Ok(Event::default()
            .event("snapshot")
            .data(snapshot.to_string()))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_long_token() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(matches!(check(public, None), Err(UiError::NotLoopback(_))));
        assert!(check(public, None)
            .unwrap_err()
            .to_string()
            .contains("--ui-token"));
        assert!(matches!(
            check(public, Some("short")),
            Err(UiError::ShortToken(5))
        ));
        assert!(check(public, Some("0123456789abcdef")).is_ok());
        assert!(check(local, None).is_ok());
    }

    #[test]
    fn hosts_that_name_this_machine() {
        let mut headers = HeaderMap::new();
        for (host, ok) in [
            ("localhost:8080", true),
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("localhost", true),
            ("evil.example:8080", false),
            ("localhost.evil.example", false),
            ("127.evil.example:8080", false),
            ("127.0.0.2:8080", true),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(local_host(&headers), ok, "{host}");
        }
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
