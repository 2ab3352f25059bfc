//! The routes: login and logout, the pages, their live fragments (Server-Sent Events), the
//! commands, `/metrics` and the embedded assets. Every route but the login page, the assets and
//! (when public) `/metrics` needs a session; every state-changing request needs the session's
//! CSRF token and, when the browser sends one, an `Origin` of this host.

use super::auth::{self, Failures, Session, Sessions};
use super::history::{self, HistoryDb, Refused, Rows};
use super::{pages, Live, WebCommand};
use crate::config::{WebConfig, WebRole, WebUser};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{info, warn};

/// Largest request body accepted, bytes (a command is a few fields and a note).
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Shortest interval between two live updates of one page.
const UPDATE_EVERY: Duration = Duration::from_millis(250);
/// How long a command waits for the core's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler shares.
pub struct AppState {
    site: String,
    users: Vec<WebUser>,
    metrics_public: bool,
    /// `; Secure` on the session cookie when serving HTTPS, else empty.
    secure: &'static str,
    sessions: Mutex<Sessions>,
    failures: Mutex<Failures>,
    /// Password checks running at once, at most (each is tens of milliseconds of CPU).
    checks: Semaphore,
    live: watch::Receiver<Arc<Live>>,
    commands: mpsc::Sender<WebCommand>,
    history: Arc<HistoryDb>,
    host: super::host::Host,
    rendered: Mutex<Rendered>,
}

/// Fragments rendered from one snapshot, shared by every stream of the same page and role: 20
/// open pages cost one rendering per update, not 20.
#[derive(Default)]
struct Rendered {
    /// The snapshot they were rendered from (held, so its address is not reused).
    snapshot: Option<Arc<Live>>,
    /// The host health they show.
    health: super::host::Health,
    fragments: std::collections::HashMap<(pages::Page, bool), Arc<str>>,
}

/// Distinct fragments kept per snapshot, at most (point pages are many).
const RENDERED_MAX: usize = 64;

impl AppState {
    /// The fragment of `which` for `session` from `snapshot`, rendered once per snapshot.
    fn fragment(&self, which: &pages::Page, snapshot: &Arc<Live>, session: &Session) -> Arc<str> {
        let health = self.host.health();
        let mut r = lock(&self.rendered);
        let current = r
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot));
        if !current || r.health != health || r.fragments.len() >= RENDERED_MAX {
            r.fragments.clear();
            r.snapshot = Some(Arc::clone(snapshot));
            r.health = health.clone();
        }
        let key = (which.clone(), session.role == WebRole::Engineer);
        if let Some(html) = r.fragments.get(&key) {
            return Arc::clone(html);
        }
        let html: Arc<str> = pages::fragment(which, snapshot, session, &health).into();
        r.fragments.insert(key, Arc::clone(&html));
        html
    }
}

impl AppState {
    /// The state for `config`.
    pub fn new(
        config: &WebConfig,
        site: &str,
        state_dir: &std::path::Path,
        live: watch::Receiver<Arc<Live>>,
        commands: mpsc::Sender<WebCommand>,
    ) -> Arc<Self> {
        Arc::new(Self {
            site: site.to_string(),
            users: config.users.clone(),
            metrics_public: config.metrics_public,
            secure: if config.tls.is_some() { "; Secure" } else { "" },
            sessions: Mutex::new(Sessions::new(Duration::from_secs(
                config.session_idle_min.saturating_mul(60),
            ))),
            failures: Mutex::new(Failures::default()),
            checks: Semaphore::new(2),
            live,
            commands,
            history: HistoryDb::new(state_dir.to_path_buf()),
            host: super::host::Host::new(state_dir),
            rendered: Mutex::new(Rendered::default()),
        })
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, auth::COOKIE)?;
        let session = lock(&self.sessions).get(&token, Instant::now())?;
        Some((token, session))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/alarms", get(page))
        .route("/thresholds", get(page))
        .route("/points", get(page))
        .route("/history", get(history_page))
        .route("/point/*rest", get(page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/live/*page", get(live))
        .route("/api/:command", post(command))
        .route("/metrics", get(metrics))
        .route("/assets/:name", get(asset))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(protective_headers))
        .with_state(state)
}

/// Scripts and styles from this gateway only, no framing by another site, no type sniffing.
async fn protective_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a state-changing request comes from a page of this host: its `Origin`, when the
/// browser sends one, names the `Host` it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

async fn page(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let Some((_, session)) = state.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let Some(which) = pages::Page::from_path(uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let live = state.live.borrow().clone();
    let known = match &which {
        pages::Page::Point { device, point } => live
            .view
            .points
            .iter()
            .any(|p| &p.device == device && &p.name == point),
        _ => true,
    };
    let status = if known {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (
        status,
        Html(pages::page(which, &live, &session, &state.host.health())),
    )
        .into_response()
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let address = peer.ip();
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin login refused").into_response();
    }
    if let Some(wait) = lock(&state.failures).wait(address, Instant::now()) {
        warn!(%address, wait_s = wait.as_secs(), "Dashboard login refused: too many failed logins from this address.");
        let text = format!(
            "Too many failed logins from this address; try again in {} s.",
            wait.as_secs().max(1)
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Html(pages::login(Some(&text))),
        )
            .into_response();
    }
    let user = state.users.iter().find(|u| u.name == form.user).cloned();
    // A missing user costs the same check as a wrong password, so names cannot be probed.
    let hash = user
        .as_ref()
        .map_or_else(dummy_hash, |u| u.password_hash.clone());
    let password = form.password;
    let Ok(_permit) = state.checks.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let good = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    match user.filter(|_| good) {
        Some(user) => {
            lock(&state.failures).succeeded(address);
            let token = lock(&state.sessions).open(&user, Instant::now());
            info!(user = %user.name, %address, "Dashboard login.");
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                auth::COOKIE,
                state.secure
            );
            let mut response = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        None => {
            lock(&state.failures).failed(address, Instant::now());
            warn!(user = %form.user.escape_debug(), %address, "Dashboard login failed.");
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some("Wrong user name or password."))),
            )
                .into_response()
        }
    }
}

/// A hash of no one's password, checked when the user name is unknown.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("no such user here").unwrap_or_default())
        .clone()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some((token, session)) = state.session(&headers) {
        if form.csrf != session.csrf || !same_origin(&headers) {
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
        }
        lock(&state.sessions).close(&token);
    }
    let mut response = Redirect::to("/login").into_response();
    let expired = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        auth::COOKIE,
        state.secure
    );
    if let Ok(v) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The live part of a page, again on every change of the gateway's state (at most every
/// [`UPDATE_EVERY`]).
async fn live(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((_, session)) = state.session(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(which) = pages::Page::from_path(&name).filter(|p| *p != pages::Page::History) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    Sse::new(fragments(Arc::clone(&state), which, session))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn fragments(
    state: Arc<AppState>,
    which: pages::Page,
    session: Session,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let mut live = state.live.clone();
    live.mark_changed();
    futures::stream::unfold((live, true), move |(mut live, first)| {
        let session = session.clone();
        let which = which.clone();
        let state = Arc::clone(&state);
        async move {
            if !first {
                tokio::time::sleep(UPDATE_EVERY).await;
            }
            live.changed().await.ok()?;
            let snapshot = live.borrow_and_update().clone();
            let html = state.fragment(&which, &snapshot, &session);
            Some((
                Ok(Event::default().event("fragment").data(&*html)),
                (live, false),
            ))
        }
    })
}

async fn command(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some((_, session)) = state.session(&headers) else {
        return refusal(StatusCode::UNAUTHORIZED, "log in first");
    };
    let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if csrf != Some(session.csrf.as_str()) || !same_origin(&headers) {
        return refusal(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token; reload the page",
        );
    }
    if session.role != WebRole::Engineer {
        return refusal(
            StatusCode::FORBIDDEN,
            "a viewer cannot acknowledge, answer or shelve alarms",
        );
    }
    if !["ack", "confirm", "refute", "shelve", "unshelve"].contains(&name.as_str()) {
        return refusal(
            StatusCode::NOT_FOUND,
            "unknown command; known: ack, confirm, refute, shelve, unshelve",
        );
    }
    let payload = match with_user(&body, &session.user) {
        Ok(p) => p,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, &e),
    };
    let (reply, answer) = oneshot::channel();
    let request = WebCommand {
        topic: format!("qis/{}/cmd/{name}", state.site),
        payload,
        reply,
    };
    if state.commands.try_send(request).is_err() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is busy; send it again",
        );
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
        Ok(Ok(Ok(()))) => Json(serde_json::json!({"ok": true})).into_response(),
        Ok(Ok(Err(reason))) => refusal(StatusCode::UNPROCESSABLE_ENTITY, &reason),
        _ => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway did not answer in time",
        ),
    }
}

/// The command's JSON object with `by` set to the logged-in user.
fn with_user(body: &[u8], user: &str) -> Result<Vec<u8>, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the request is not JSON: {e}"))?;
    let object = value
        .as_object_mut()
        .ok_or("the request must be a JSON object")?;
    object.insert("by".into(), user.into());
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

fn refusal(status: StatusCode, reason: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"ok": false, "error": reason})),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.metrics_public && state.session(&headers).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "log in, or set [web] metrics_public = true for a scraper",
        )
            .into_response();
    }
    let live = state.live.borrow().clone();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::metrics::render(&live),
    )
        .into_response()
}

async fn history_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<history::Query>,
) -> Response {
    let Some((_, session)) = state.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let (csv, rows, filter) = match state.history.read(&q).await {
        Ok(read) => read,
        Err(Refused::Bad(why)) => return (StatusCode::BAD_REQUEST, why).into_response(),
        Err(Refused::Unavailable(why)) => {
            warn!(error = %why, "The dashboard cannot read the history.");
            return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        }
    };
    if !csv {
        return Html(history::page(&state.site, &session, &q, &rows, &filter)).into_response();
    }
    let name = match rows {
        Rows::Events(_) => "alarm-transitions",
        Rows::Outcomes(_) => "alarms-and-answers",
    };
    match history::csv(&rows) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"qis-edge-{}-{name}.csv\"",
                        state.site
                    ),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// The embedded assets, by exact name: nothing else is served, so no path can reach a file.
async fn asset(Path(name): Path<String>) -> Response {
    let (kind, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", pages::APP_JS),
        "style.css" => ("text/css; charset=utf-8", pages::STYLE_CSS),
        "uplot.js" => ("text/javascript; charset=utf-8", pages::UPLOT_JS),
        "uplot.css" => ("text/css; charset=utf-8", pages::UPLOT_CSS),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}
