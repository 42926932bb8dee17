//! The approval app: server-rendered pages (maud escapes everything it
//! renders, so whatever an agent wrote — rationale, merchant, names — is
//! text, never markup or a link), one static script, and a strict Content
//! Security Policy. No page of the app ever asks a passkey for anything:
//! every ceremony is the passkey page's (services/passkey), on its own RP
//! ID, which computes what is signed; the app starts a ceremony, receives
//! what comes back at `/passkey/return`, and checks it with the verifier
//! every consumer runs. It can drop a proof, never make one.
//!
//! - GET never changes anything (mail scanners open links). Every change
//!   is a POST from a signed-in session carrying its CSRF token, from this
//!   app's own origin; anything else is refused and audited.
//! - Sessions: a random token in an HttpOnly, Secure, SameSite=Lax cookie
//!   (only its hash is kept), with idle and absolute expiry, for one
//!   approver of one organisation. Lax, not Strict: the way back from the
//!   passkey page (another site when it has a domain of its own) is a
//!   top-level GET that must find the session; every change is still a
//!   POST with its CSRF token from this origin.
//! - Approve is two steps: "Approve" arms (the server fixes the approval
//!   id) and sends the person to the passkey page, whose
//!   `role="alertdialog"` shows the change read from the log; "Confirm and
//!   push live" asks the passkey for a fresh assertion over the challenge
//!   that page computes, which this app checks with the same verifier
//!   every consumer uses before it records `spend.approval.granted.v1`
//!   with the proof.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use sha2::Sha256;
use spend_core::Actor;
use spend_core::bounded::FifoMap;
use spend_core::events::{
    ApprovalGranted, ApprovalProof, ApprovalRejected, ApproverEnrolled, ApproverRegistered, ApproverRemoved, Countersignature, EventData, RollbackApproved,
    SecurityAlert,
};
use spend_draft::approvers::{Enrollment, Role};
use spend_draft::proof::{create_challenge, fingerprint, signin_challenge};
use spend_eventlog::{LogError, Recorder};
use tokio::sync::{Mutex, RwLock};
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential};

use crate::book::{Book, Entry, Target, waits_for_a_human};
use crate::passkeys::{CEREMONY_TTL, Passkeys, PostedAssertion};

/// The session cookie's name.
pub const COOKIE: &str = "__Host-spend_session";
/// Sign-in and enrollment attempts an address may make per minute
/// (burst the same): enough for people, too few to guess at scale.
pub const ATTEMPTS_PER_MINUTE: u32 = 20;
/// Sessions kept at once (the oldest forgotten first).
const MAX_SESSIONS: usize = 10_000;
/// Ceremonies in flight kept at once, per kind.
const MAX_CEREMONIES: usize = 10_000;
/// The longest rejection reason.
const MAX_REASON: usize = 1_000;
/// Finished drafts the queue shows under the waiting ones.
const HISTORY: usize = 50;

pub(crate) const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Signed out after this long without a request.
    pub idle: Duration,
    /// Signed out this long after signing in, however active.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(15 * 60),
            absolute: Duration::from_secs(8 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) org: String,
    pub(crate) approver_id: String,
    pub(crate) email: String,
    pub(crate) role: Role,
    pub(crate) csrf: String,
    started: Instant,
    seen: Instant,
}

struct SignIn {
    challenge: [u8; 32],
    /// (org, approver id, credential id) the assertion may come from.
    candidates: Vec<(String, String, String)>,
    started: Instant,
}

pub(crate) struct Armed {
    pub(crate) org: String,
    pub(crate) draft_id: String,
    pub(crate) approver_id: String,
    pub(crate) started: Instant,
}

struct Countersigning {
    org: String,
    admin_id: String,
    target: ApproverRegistered,
    started: Instant,
}

pub struct App {
    pub recorder: Recorder,
    pub book: Arc<RwLock<Book>>,
    /// The app's own origin (links, same-origin checks, what a sign-in
    /// challenge binds).
    origin: String,
    /// Passkey creation checked on the passkey page's relying party: its
    /// origin is where every ceremony goes ([`passkey_url`]).
    pub passkeys: Passkeys,
    pub sessions_policy: SessionPolicy,
    /// The SPEND.md in force until a version is approved on the log.
    pub bootstrap: Arc<spend_policy::spendmd::SpendMd>,
    /// Connected accounts, through the executor (`None`: not offered).
    pub accounts: Option<Arc<dyn spend_platform::Connect>>,
    sessions: Mutex<FifoMap<String, Session>>,
    /// Enrollments under way, by invitation hash: webauthn-rs's state and
    /// the nonce the passkey page computed the challenge from.
    registrations: Mutex<FifoMap<String, (PasskeyRegistration, String, Instant)>>,
    signins: Mutex<FifoMap<String, SignIn>>,
    armed: Mutex<FifoMap<String, Armed>>,
    countersigns: Mutex<FifoMap<String, Countersigning>>,
    /// Sign counters seen at sign-in (never on the log), per credential.
    counters: Mutex<FifoMap<String, u32>>,
    /// Sign-in and enrollment attempts per address.
    attempts: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Refusals counted, not recorded singly, in a flood.
    pub alerts: spend_core::alert_gate::AlertGate,
    /// Keys the decoy credential ids of emails that are no approver's:
    /// random per process, or derived from the secret every replica shares
    /// ([`App::with_decoy_secret`]) so that all replicas answer alike.
    decoy_key: [u8; 32],
}

pub(crate) use spend_core::sha256_hex;

pub(crate) fn random_token() -> String {
    spend_credentials::random_hex(32).expect("the operating system's random source")
}

fn fresh(started: Instant) -> bool {
    started.elapsed() < CEREMONY_TTL
}

/// A refusal the page or the script shows.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"error": self.message}))).into_response()
    }
}

pub(crate) type Answer<T> = Result<T, Refusal>;

pub(crate) fn page(title: &str, csrf: Option<&str>, who: Option<&str>, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(t) = csrf { meta name="csrf-token" content=(t); }
                title { (title) " — SpendSignoff" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    p { strong { "SpendSignoff" } " approvals" }
                    @if let Some(w) = who {
                        nav aria-label="Account" {
                            a href="/approvals" { "Queue" } " · " a href="/audit" { "Audit" } " · " a href="/approvers" { "Approvers" } " · " a href="/killswitches" { "Kill switches" } " · " a href="/accounts" { "Accounts" } " · " a href="/clients" { "Clients" } " · " (w) " "
                            form.inline method="post" action="/signout" {
                                @if let Some(t) = csrf { input type="hidden" name="csrf" value=(t); }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(doc.into_string()).into_response()
}

fn with_security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    // A page that set its own (the consent page, whose form may go on to
    // the client) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    with_security_headers(next.run(req).await)
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The value of the request's cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl App {
    pub fn new(
        recorder: Recorder,
        book: Arc<RwLock<Book>>,
        origin: String,
        passkeys: Passkeys,
        sessions_policy: SessionPolicy,
        bootstrap: Arc<spend_policy::spendmd::SpendMd>,
        accounts: Option<Arc<dyn spend_platform::Connect>>,
    ) -> Self {
        Self {
            bootstrap,
            accounts,
            recorder,
            book,
            origin,
            passkeys,
            sessions_policy,
            sessions: Mutex::new(FifoMap::new(MAX_SESSIONS)),
            registrations: Mutex::new(FifoMap::new(MAX_CEREMONIES)),
            signins: Mutex::new(FifoMap::new(MAX_CEREMONIES)),
            armed: Mutex::new(FifoMap::new(MAX_CEREMONIES)),
            countersigns: Mutex::new(FifoMap::new(MAX_CEREMONIES)),
            counters: Mutex::new(FifoMap::new(MAX_SESSIONS)),
            attempts: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(ATTEMPTS_PER_MINUTE).expect("a positive quota"),
            )),
            alerts: spend_core::alert_gate::AlertGate::default(),
            decoy_key: {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).expect("the operating system's random source");
                k
            },
        }
    }

    /// Refuses an address that made too many sign-in or enrollment attempts
    /// in the last minute, with 429 and an alert (a flood of them is
    /// counted into one per window).
    pub(crate) async fn throttle(&self, peer: SocketAddr, what: &'static str) -> Answer<()> {
        let ip = peer.ip();
        if self.attempts.check_key(&ip).is_ok() {
            return Ok(());
        }
        let address = ip.to_string();
        if self.alerts.admit_kind("unknown", None, Some(&address), "approval.rate_limited", what).is_some() {
            self.alert(
                "unknown",
                "approval.rate_limited",
                Some(peer),
                format!("more than {ATTEMPTS_PER_MINUTE} {what} attempts a minute from {address}: refused"),
            )
            .await;
        }
        Err(Refusal::new(StatusCode::TOO_MANY_REQUESTS, "too many attempts: wait a minute"))
    }

    /// Forgets idle addresses' attempts, and records the refusals counted
    /// in windows that ended (`all`: every window, as the service stops).
    pub async fn housekeeping(&self, all: bool) {
        self.attempts.retain_recent();
        let repeats = if all { self.alerts.drain() } else { self.alerts.due() };
        for r in repeats {
            if let Err(e) = self.recorder.alert(&r.org, r.alert()).record().await {
                tracing::error!(error = %e, "could not record aggregated security alerts");
            }
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Keys decoy credential ids by `secret`, which every replica shares
    /// (the link secret): a random key per process would let anyone who
    /// reaches two replicas tell an unknown email (two ids) from an
    /// approver's (one).
    pub fn with_decoy_secret(mut self, secret: &[u8]) -> Self {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(b"spendsignoff-signin-decoy-v1");
        self.decoy_key = mac.finalize().into_bytes().into();
        self
    }

    /// A credential id for `email` when it is no trusted approver's: 32
    /// bytes keyed by this deployment's secret, the same for the same email.
    pub(crate) fn decoy_credential(&self, email: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.decoy_key).expect("HMAC takes a key of any length");
        mac.update(email.trim().to_lowercase().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// `path` on the passkey page, with `query` (encoded).
    pub(crate) fn passkey_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", url_escape(v))).collect();
        format!("{}{path}?{}", self.passkeys.rp.origin, q.join("&"))
    }

    /// The signed-in session of a request, if any and not expired; marks it
    /// seen. An approver removed since signing in is signed out.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let key = sha256_hex(&cookie_token(headers)?);
        let mut sessions = self.sessions.lock().await;
        let s = sessions.get_mut(&key)?;
        let p = self.sessions_policy;
        if s.seen.elapsed() >= p.idle || s.started.elapsed() >= p.absolute {
            sessions.remove(&key);
            return None;
        }
        let trusted = {
            let book = self.book.read().await;
            book.versions.approvers.approver(&s.org, &s.approver_id).is_some_and(|a| a.removed_at.is_none())
        };
        if !trusted {
            sessions.remove(&key);
            return None;
        }
        s.seen = Instant::now();
        Some(s.clone())
    }

    /// A POST's session, its CSRF token and its origin, or a refusal
    /// (audited: a forged cross-site request is an attack).
    pub(crate) async fn checked(&self, headers: &HeaderMap, peer: SocketAddr, form_token: Option<&str>) -> Answer<Session> {
        let origin_ok = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(self.origin());
        let Some(s) = self.session(headers).await else {
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, "sign in with your passkey first"));
        };
        let presented = form_token
            .map(str::to_string)
            .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string));
        let token_ok = presented.is_some_and(|t| subtle_eq(&t, &s.csrf));
        if !origin_ok || !token_ok {
            let why = if !origin_ok { "from another origin" } else { "without its CSRF token" };
            self.alert(
                &s.org,
                "csrf.refused",
                Some(peer),
                format!("a POST in {}'s session came {why}: refused", s.approver_id),
            )
            .await;
            return Err(Refusal::new(StatusCode::FORBIDDEN, format!("refused: the request came {why}")));
        }
        Ok(s)
    }

    pub(crate) async fn alert(&self, org: &str, reason: &str, peer: Option<SocketAddr>, detail: String) {
        let alert = SecurityAlert {
            reason: reason.into(),
            key_id: None,
            address: peer.map(|p| p.ip().to_string()),
            detail,
        };
        if let Err(e) = self.recorder.alert(org, alert).record().await {
            tracing::error!(error = %e, org, reason, "could not record a security alert");
        }
    }

    /// Waits (briefly) until the book has applied the log up to `seq`, so
    /// the next page shows what was just recorded.
    pub(crate) async fn wait_for(&self, seq: u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.book.read().await.seq < seq && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn subtle_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// ---- static files ----

pub async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

pub async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

// ---- sign-in ----

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after sign-in: a path on this app only. Browsers drop tabs
/// and newlines from URLs (so `/%09/evil.example` would become
/// `//evil.example`, another site) and read `\` as `/`: any character
/// outside visible ASCII, or a backslash, refuses the path.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Long enough for an authorization request's URL.
        Some(n) if n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\') && n.len() <= 4096 => {
            n.to_string()
        }
        _ => "/approvals".into(),
    }
}

pub async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.session(&headers).await.is_some() {
        Redirect::to("/approvals").into_response()
    } else {
        Redirect::to("/signin").into_response()
    }
}

fn signin_page(next: &str) -> Response {
    page(
        "Sign in",
        None,
        None,
        html! {
            p { "Approvers sign in with the passkey they enrolled." }
            form #signin-form data-next=(next) {
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required;
                p { button.primary type="submit" { "Continue" } }
            }
            p #signin-status role="status" aria-live="polite" {}
        },
    )
}

pub async fn signin(Query(q): Query<Next>) -> Response {
    signin_page(&safe_next(q.next.as_deref()))
}

#[derive(Deserialize)]
pub struct SignInStart {
    email: String,
}

pub async fn signin_start(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<SignInStart>,
) -> Answer<Json<serde_json::Value>> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "sign-in").await?;
    if body.email.len() > 320 {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "that is not an email address"));
    }
    let candidates: Vec<(String, String, String)> = {
        let book = app.book.read().await;
        book.by_email(&body.email)
            .into_iter()
            .filter_map(|(org, id)| {
                let a = book.versions.approvers.approver(&org, &id)?;
                a.removed_at.is_none().then(|| (org, id, a.credential_id.clone()))
            })
            .collect()
    };
    // An email that is no trusted approver's gets the same answer as one
    // that is (a credential id that looks like one, stable per email, and
    // a ceremony no passkey can finish): the app never tells anyone
    // whether an address is an approver's.
    let ids: Vec<String> = if candidates.is_empty() {
        vec![app.decoy_credential(&body.email)]
    } else {
        candidates.iter().map(|c| c.2.clone()).collect()
    };
    // The passkey page computes the challenge from this app's origin and
    // the nonce; it never takes one from us.
    let ceremony = random_token();
    let challenge = signin_challenge(app.origin(), &ceremony);
    app.signins.lock().await.insert_new(
        ceremony.clone(),
        SignIn {
            challenge,
            candidates,
            started: Instant::now(),
        },
    );
    let redirect = app.passkey_url("/signin", &[("nonce", &ceremony), ("email", &body.email), ("credentials", &ids.join(","))]);
    Ok(Json(serde_json::json!({
        "ceremony": ceremony,
        "credential_ids": ids,
        "redirect": redirect,
    })))
}

#[derive(Deserialize)]
pub struct SignInFinish {
    ceremony: String,
    assertion: PostedAssertion,
}

pub async fn signin_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<SignInFinish>,
) -> Answer<Response> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "sign-in").await?;
    let Some(ceremony) = app.signins.lock().await.remove(&body.ceremony).filter(|c| fresh(c.started)) else {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "this sign-in expired: start again"));
    };
    let Some((org, approver_id, _)) = ceremony.candidates.iter().find(|c| c.2 == body.assertion.credential_id).cloned() else {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "that passkey is not one of this approver's"));
    };
    let (key, rp, role, last, email) = {
        let book = app.book.read().await;
        let a = book
            .versions
            .approvers
            .approver(&org, &approver_id)
            .filter(|a| a.removed_at.is_none())
            .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "that approver is no longer trusted"))?;
        let email = book
            .registered(&org, &approver_id)
            .map(|r| r.email.clone())
            .unwrap_or_else(|| approver_id.clone());
        (a.public_key_der.clone(), a.rp.clone(), a.role, a.counter_value(), email)
    };
    let seen = app.counters.lock().await.get(&body.assertion.credential_id).copied().unwrap_or(0);
    let counter = match body.assertion.verify(&key, &rp, &ceremony.challenge, last.max(seen)) {
        Ok(c) => c,
        Err(e) => {
            app.alert(
                &org,
                "signin.refused",
                Some(peer),
                format!("a sign-in as approver {approver_id} was refused: {e}"),
            )
            .await;
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, format!("sign-in refused: {e}")));
        }
    };
    {
        let mut counters = app.counters.lock().await;
        counters.remove(&body.assertion.credential_id);
        counters.insert_new(body.assertion.credential_id.clone(), counter);
    }
    let token = random_token();
    let now = Instant::now();
    app.sessions.lock().await.insert_new(
        sha256_hex(&token),
        Session {
            org,
            approver_id,
            email,
            role,
            csrf: random_token(),
            started: now,
            seen: now,
        },
    );
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        app.sessions_policy.absolute.as_secs()
    );
    let mut r = Json(serde_json::json!({"ok": true})).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a cookie of hex"));
    Ok(r)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub(crate) csrf: String,
}

pub async fn signout(State(app): State<Arc<App>>, headers: HeaderMap, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(f): Form<CsrfForm>) -> Answer<Response> {
    app.checked(&headers, peer, Some(&f.csrf)).await?;
    if let Some(t) = cookie_token(&headers) {
        app.sessions.lock().await.remove(&sha256_hex(&t));
    }
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("__Host-spend_session=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}

/// `GET /passkey/return`: where the passkey page gives back what it
/// signed, in the URL's fragment (no server sees it). This page's script
/// posts it to the ceremony this tab began (kept in the tab's session
/// storage under its nonce) and goes on; what it posts, the app checks as
/// ever. A fragment this tab did not ask for is never posted.
pub async fn passkey_return(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = app.session(&headers).await;
    page(
        "Your passkey",
        s.as_ref().map(|s| s.csrf.as_str()),
        s.as_ref().map(who).as_deref(),
        html! {
            p #return-status role="status" aria-live="polite" { "Recording what your passkey signed…" }
            div #enrolled hidden {
                p { "Your key fingerprint:" }
                p { code #fingerprint {} }
            }
            p #return-next hidden { a href="/approvals" { "Continue" } }
        },
    )
}

// ---- enrollment ----

pub async fn enroll_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let book = app.book.read().await;
    let Some(invite) = book.invite(&sha256_hex(&token)) else {
        return page(
            "Invitation not found",
            None,
            None,
            html! { p { "This enrollment link is not valid. Ask your operator for a new invitation." } },
        );
    };
    if !invite.usable(Utc::now()) {
        let why = if invite.used_by.is_some() { "was used already" } else { "expired" };
        return page(
            "Invitation no longer valid",
            None,
            None,
            html! { p { "This enrollment link " (why) ". Each link enrolls one passkey; ask your operator for a new invitation." } },
        );
    }
    let i = &invite.invite;
    page(
        "Create your passkey",
        None,
        None,
        html! {
            p { "You were invited to approve spend for " strong { (i.org) } " as " strong { (i.role) } " (" (i.email) ")." }
            p { "Your passkey must verify you (a PIN, fingerprint or face); a tap alone is not enough." }
            p { "Your passkey is created on the passkey page, the only page that ever uses it; you come back here when it is done." }
            button #create-passkey .primary type="button" data-token=(token) { "Continue to create your passkey" }
            p #enroll-status role="status" aria-live="polite" {}
        },
    )
}

pub async fn enroll_start(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "enrollment").await?;
    let hash = sha256_hex(&token);
    let invite = {
        let book = app.book.read().await;
        book.invite(&hash)
            .filter(|i| i.usable(Utc::now()))
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "this enrollment link is not valid any more"))?
            .invite
            .clone()
    };
    // The passkey page creates the passkey over the challenge it computes
    // from this app's origin and the nonce.
    let ceremony = random_token();
    let state = app
        .passkeys
        .start_registration(&invite.email, &create_challenge(app.origin(), &ceremony))
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut regs = app.registrations.lock().await;
    regs.remove(&hash);
    regs.insert_new(hash, (state, ceremony.clone(), Instant::now()));
    let redirect = app.passkey_url(
        "/enroll",
        &[("nonce", &ceremony), ("email", &invite.email), ("org", &invite.org), ("role", &invite.role)],
    );
    Ok(Json(serde_json::json!({"ceremony": ceremony, "redirect": redirect})))
}

/// A passkey the passkey page created, as it gives it back (unpadded
/// base64url fields).
#[derive(Deserialize)]
pub struct EnrollFinish {
    ceremony: String,
    id: String,
    raw_id: String,
    attestation_object: String,
    client_data_json: String,
}

impl EnrollFinish {
    /// The same, in the shape webauthn-rs reads.
    fn registration(&self) -> Answer<RegisterPublicKeyCredential> {
        serde_json::from_value(serde_json::json!({
            "id": self.id,
            "rawId": self.raw_id,
            "type": "public-key",
            "response": {"attestationObject": self.attestation_object, "clientDataJSON": self.client_data_json},
            "extensions": {},
        }))
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("that is not a created passkey: {e}")))
    }
}

fn same_origin(app: &App, headers: &HeaderMap) -> Answer<()> {
    if headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(app.origin()) {
        Ok(())
    } else {
        Err(Refusal::new(StatusCode::FORBIDDEN, "refused: the request came from another origin"))
    }
}

pub async fn enroll_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Json(body): Json<EnrollFinish>,
) -> Answer<Json<serde_json::Value>> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "enrollment").await?;
    let hash = sha256_hex(&token);
    let Some((state, ceremony, started)) = app.registrations.lock().await.remove(&hash) else {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "start creating the passkey again"));
    };
    if !subtle_eq(&ceremony, &body.ceremony) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "that passkey was created for another enrollment: start again",
        ));
    }
    let response = body.registration()?;
    if !fresh(started) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "this ceremony expired: start again"));
    }
    let (invite, bootstrapped) = {
        let book = app.book.read().await;
        let invite = book
            .invite(&hash)
            .filter(|i| i.usable(Utc::now()))
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "this enrollment link is not valid any more"))?
            .invite
            .clone();
        let b = book.versions.approvers.bootstrapped(&invite.org);
        (invite, b)
    };
    let created = app
        .passkeys
        .finish_registration(&response, &state)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let approver_id = format!("u_{}", &random_token()[..16]);
    let fp = fingerprint(&created.public_key_der);
    let org = invite.org.clone();
    let registered = ApproverRegistered {
        invite_id: invite.invite_id.clone(),
        approver_id: approver_id.clone(),
        org: org.clone(),
        email: invite.email.clone(),
        role: invite.role.clone(),
        credential_id: created.credential_id.clone(),
        public_key_spki_b64: STANDARD.encode(&created.public_key_der),
        fingerprint: fp.clone(),
        rp_id: app.passkeys.rp.rp_id.clone(),
        origin: app.passkeys.rp.origin.clone(),
    };
    let actor = Actor::human(&invite.email);
    let rec = app
        .recorder
        .event(&org, actor.clone(), "approver", &approver_id, EventData::ApproverRegistered(registered.clone()))
        .expect_seq(0)
        .record()
        .await
        .map_err(log_refusal)?;
    let first_admin = invite.role == "admin" && !bootstrapped;
    let mut last = rec.seq;
    let message = if first_admin {
        let enrolled = enrolled_from(&registered, None);
        last = app
            .recorder
            .event(&org, actor, "approver", &approver_id, EventData::ApproverEnrolled(enrolled))
            .record()
            .await
            .map_err(log_refusal)?
            .seq;
        format!("Your passkey is enrolled as {org}'s first admin. It is trusted once your operator runs: spend approver anchor --org {org} --fingerprint {fp}")
    } else {
        "Your passkey is created. It is trusted once an admin of your organisation countersigns it on the Approvers page.".to_string()
    };
    app.wait_for(last).await;
    Ok(Json(serde_json::json!({"approver_id": approver_id, "fingerprint": fp, "message": message})))
}

fn enrolled_from(r: &ApproverRegistered, countersignature: Option<Countersignature>) -> ApproverEnrolled {
    ApproverEnrolled {
        approver_id: r.approver_id.clone(),
        org: r.org.clone(),
        role: r.role.clone(),
        credential_id: r.credential_id.clone(),
        public_key_spki_b64: r.public_key_spki_b64.clone(),
        rp_id: r.rp_id.clone(),
        origin: r.origin.clone(),
        countersignature,
        email: Some(r.email.clone()),
    }
}

pub(crate) fn log_refusal(e: LogError) -> Refusal {
    match e {
        LogError::WrongLastSequence { .. } => Refusal::new(StatusCode::CONFLICT, "someone else changed this at the same moment: reload and try again"),
        other => {
            tracing::error!(error = %other, "an approval event could not be recorded");
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the event log is unavailable: nothing was recorded, try again")
        }
    }
}

// ---- the queue and the draft page ----

pub(crate) fn who(s: &Session) -> String {
    format!("{} ({}, {})", s.email, s.role.as_str(), s.org)
}

pub(crate) fn need_session(next: &str) -> Response {
    Redirect::to(&format!("/signin?next={}", url_escape(next))).into_response()
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn queue(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/approvals");
    };
    let book = app.book.read().await;
    let (waiting, done) = book.queue(&s.org, HISTORY);
    page(
        "Approval queue",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            h2 { "Waiting for a human (" (waiting.len()) ")" }
            @if waiting.is_empty() { p { "Nothing waits for approval." } } @else { (draft_table(&book, &s.org, &waiting)) }
            @let policies = book.waiting_policies(&s.org);
            @if !policies.is_empty() {
                h2 { "SPEND.md versions waiting (" (policies.len()) ")" }
                ul { @for (id, version) in &policies { li { a href={ "/approvals/" (id) } { (id) } " — version " code { (version) } } } }
            }
            @let rollbacks = book.waiting_rollbacks(&s.org);
            @if !rollbacks.is_empty() {
                h2 { "Rollbacks waiting (" (rollbacks.len()) ")" }
                ul { @for r in &rollbacks { li { a href={ "/approvals/" (r.request.rollback_id) } { (r.request.rollback_id) } " — " (r.request.changes.len()) " change(s), asked by " (r.request.requested_by) } } }
            }
            h2 { "Recently decided" }
            @if done.is_empty() { p { "Nothing yet." } } @else { (draft_table(&book, &s.org, &done)) }
        },
    )
}

fn draft_table(book: &Book, org: &str, entries: &[&Entry]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Draft" } th scope="col" { "What" } th scope="col" { "Amount" } th scope="col" { "Agent" } th scope="col" { "Status" } th scope="col" { "Expires" } } }
            tbody {
                @for e in entries {
                    tr {
                        td { a href={ "/approvals/" (e.draft.id()) } { (e.draft.id()) } }
                        td { (spend_draft::display::describe(&e.draft.proposal().change, e.draft.account_id())) }
                        td { (e.draft.spend_impact().to_string()) }
                        td { (book.agent_name(org, &e.agent)) }
                        td { (e.draft.status().words()) }
                        td { @match e.draft.approval_expires_at() { Some(t) => { (when(t)) }, None => { "-" } } }
                    }
                }
            }
        }
    }
}

pub async fn draft_page(State(app): State<Arc<App>>, headers: HeaderMap, Path(draft_id): Path<String>) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session(&format!("/approvals/{draft_id}"));
    };
    render_draft(&app, &s, &draft_id).await
}

/// An approval link: GET only shows (sign-in first); it never changes anything.
pub async fn link(State(app): State<Arc<App>>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let found = app.book.read().await.link(&sha256_hex(&token)).cloned();
    let Some((org, draft_id)) = found else {
        return page("Approval not found", None, None, html! { p { "This approval link is not valid." } });
    };
    let Some(s) = app.session(&headers).await else {
        return need_session(&format!("/a/{token}"));
    };
    if s.org != org {
        return page(
            "Another organisation's approval",
            Some(&s.csrf),
            Some(&who(&s)),
            html! { p { "This approval belongs to another organisation. Sign in as one of its approvers." } },
        );
    }
    render_draft(&app, &s, &draft_id).await
}

/// A time on a page: `<time datetime>`, which the page's script shows
/// relative and local ("in 4 minutes"); the RFC 3339 text without script.
pub(crate) fn when(t: &str) -> Markup {
    html! { time datetime=(t) { (t) } }
}

pub(crate) fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn render_draft(app: &App, s: &Session, draft_id: &str) -> Response {
    let book = app.book.read().await;
    if let Some(r) = crate::rollback::render_request(&book, s, draft_id) {
        return r;
    }
    if book.entry(&s.org, draft_id).is_none()
        && let Some(r) = render_policy(app, &book, s, draft_id)
    {
        return r;
    }
    let Some(e) = book.entry(&s.org, draft_id) else {
        return page(
            "Draft not found",
            Some(&s.csrf),
            Some(&who(s)),
            html! { p { "No draft " code { (draft_id) } " of " (s.org) " is known here." } },
        );
    };
    let d = &e.draft;
    let decision = d.decision();
    let needed = d.approvals_needed();
    let waiting = waits_for_a_human(d.status());
    let mine = e.approvals.iter().any(|(a, _)| *a == s.approver_id);
    let expired_now = d
        .approval_expires_at()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.with_timezone(&Utc) <= Utc::now());
    // What a person reads is built from the change the executor pushes;
    // a draft whose stored display disagrees is shown as refused.
    let change = &d.proposal().change;
    let described = spend_draft::display::describe(change, d.account_id());
    let inconsistent = spend_draft::display::inconsistency(d.proposal());
    let diff = html! {
        p.change { (described) }
        @if let spend_core::events::DraftChange::Payment { merchant, category, stated_category, stated_country, .. } = change {
            table {
                tbody {
                    tr { th scope="row" { "Merchant" } td { (merchant) @if let Some(c) = category { " (" (c) ")" } } }
                    @if stated_category.is_some() || stated_country.is_some() {
                        tr { th scope="row" { "The agent says" } td { (stated_category.as_deref().unwrap_or("-")) ", " (stated_country.as_deref().unwrap_or("-")) } }
                    }
                }
            }
            p.notice { "A payment cannot be undone by a rollback: it can only be refunded." }
        }
    };
    let outcome = match d.status() {
        spend_draft::DraftStatus::Approved => "Approved by enough humans; the executor pushes it.".to_string(),
        spend_draft::DraftStatus::Rejected => match &e.rejection {
            Some((by, why)) => format!("Rejected by {by}: {why}"),
            None => "Rejected.".into(),
        },
        spend_draft::DraftStatus::Expired => "Expired before enough humans approved: it was denied (nothing is ever approved by timeout).".into(),
        other => format!("Status: {}", other.words()),
    };
    page(
        &format!("Draft {}", d.id()),
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            p.status role="status" { (outcome) }
            @if let Some(why) = &inconsistent {
                p.error role="alert" { "Refused: what this draft shows is not what it would push (" (why) "). Nothing can approve it." }
            }
            table {
                tbody {
                    tr { th scope="row" { "What" } td { (described) } }
                    tr { th scope="row" { "Spend impact" } td { (d.spend_impact().to_string()) } }
                    tr { th scope="row" { "24-hour envelope" } td { (envelope_line(app, &book, &s.org, d.spend_impact())) } }
                    tr { th scope="row" { "Agent" } td { (book.agent_name(&s.org, &e.agent)) } }
                    tr { th scope="row" { "Approvals" } td { (e.approvals.len()) " of " (needed) " required" @if needed == 2 { " (two distinct people)" } } }
                    tr { th scope="row" { "Expires" } td { @match d.approval_expires_at() { Some(t) => { (when(t)) }, None => { "no approval request yet" } } } }
                    tr { th scope="row" { "Policy version" } td { code { (decision.map(|x| x.policy_version.as_str()).unwrap_or("-")) } } }
                }
            }
            (diff)
            h2 { "Why the policy asks a human" }
            ul { @for r in decision.map(|x| x.reasons.as_slice()).unwrap_or(&[]) { li { code { (r.code) } ": " (r.message) } } }
            h2 { "The agent's rationale" }
            p.rationale { (d.rationale()) }
            @if waiting && !expired_now && d.request().is_some() && inconsistent.is_none() {
                @if mine {
                    p.notice { "You approved this draft; a second, distinct approver is needed." }
                } @else {
                    (decide(d.id(), &s.csrf))
                }
            }
        },
    )
}

/// The two-step decision: "Approve" arms and takes the person to the
/// passkey page, which shows the change again, read from the log, in an
/// alertdialog ("Confirm and push live" or "Cancel"); "Reject" asks for a
/// "Reason".
fn decide(id: &str, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="decide" {
            h2 #decide { "Decide" }
            p { button #approve .primary type="button" data-arm={ "/approvals/" (id) "/arm" } { "Approve" } }
            p #approve-status role="status" aria-live="polite" {}
            form method="post" action={ "/approvals/" (id) "/reject" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="reason" { "Reason" }
                textarea #reason name="reason" required maxlength="1000" rows="3" {}
                p { button.danger type="submit" { "Reject" } }
            }
        }
    }
}

/// The 24-hour envelope: committed now (every standing campaign rate and
/// the last 24 hours' payments, docs/spend-windows.md), what is left under
/// `daily_limit`, and what this change would leave.
fn envelope_line(app: &App, book: &Book, org: &str, impact: &spend_core::Money) -> String {
    use spend_policy::envelope::EnvelopeExt as _;
    let policy = book.versions.active(org).map(|a| a.policy.clone()).unwrap_or_else(|| app.bootstrap.clone());
    let Some(limit) = policy.spend.daily_limit.clone() else {
        return "no daily_limit in the SPEND.md in force".into();
    };
    let used = book
        .envelope(org)
        .filter(|e| e.currency == limit.currency)
        .map(|e| e.daily_committed(Utc::now()))
        .unwrap_or(0);
    let m = |minor: i64| spend_core::Money {
        minor_units: minor,
        currency: limit.currency.clone(),
    };
    let left = limit.minor_units - used;
    format!(
        "{} used of {}, {} left; {} left after this change",
        m(used),
        limit,
        m(left),
        m(left - impact.minor_units.max(0))
    )
}

fn money_text(m: &Option<spend_core::Money>) -> String {
    m.as_ref().map(|m| m.to_string()).unwrap_or_else(|| "none".into())
}

/// What a SPEND.md version changes in practice: (setting, in force, proposed).
fn policy_changes(old: &spend_policy::spendmd::SpendMd, new: &spend_policy::spendmd::SpendMd) -> Vec<(&'static str, String, String)> {
    let rows = [
        (
            "per transaction",
            money_text(&old.spend.per_transaction),
            money_text(&new.spend.per_transaction),
        ),
        (
            "24-hour envelope (daily_limit)",
            money_text(&old.spend.daily_limit),
            money_text(&new.spend.daily_limit),
        ),
        ("monthly limit", money_text(&old.spend.monthly_limit), money_text(&new.spend.monthly_limit)),
        ("allowlist", old.spend.allowlist.join(", "), new.spend.allowlist.join(", ")),
        (
            "standing mandate (auto_approve_under)",
            money_text(&old.approval.auto_approve_under),
            money_text(&new.approval.auto_approve_under),
        ),
        (
            "dual control over (require_confirmation_over)",
            money_text(&old.approval.require_confirmation_over),
            money_text(&new.approval.require_confirmation_over),
        ),
        (
            "approval timeout (minutes)",
            old.approval.timeout_minutes.to_string(),
            new.approval.timeout_minutes.to_string(),
        ),
    ];
    rows.into_iter().filter(|(_, a, b)| a != b).collect()
}

fn render_policy(app: &App, book: &Book, s: &Session, id: &str) -> Option<Response> {
    let (p, _) = book.versions.proposal(&s.org, id)?;
    let t = book.target(&s.org, id)?;
    let entry = book.policy_entry(&s.org, id).cloned().unwrap_or_default();
    let in_force = book.versions.active(&s.org);
    let old_md = in_force.map(|a| (*a.policy).clone()).unwrap_or_else(|| (*app.bootstrap).clone());
    let new_md = spend_policy::spendmd::parse(&p.source).ok();
    let changes = new_md.as_ref().map(|n| policy_changes(&old_md, n)).unwrap_or_default();
    let outcome = if book.versions.is_approved(&s.org, id) {
        "Approved: this version is in force (unless a newer one was approved since).".to_string()
    } else if let Some((by, why)) = &entry.rejection {
        format!("Rejected by {by}: {why}")
    } else if entry.expired {
        "Expired before a human approved it: the version in force stays.".into()
    } else {
        "Status: waiting for a human".into()
    };
    let needs = book.versions.needs(&s.org, id);
    let needed = needs.as_ref().map_or(1, |n| n.approvers);
    let mine = t.approvers.contains(&s.approver_id);
    let change = html! {
        table {
            caption { "What changes in practice" }
            thead { tr { th scope="col" { "Setting" } th scope="col" { "In force" } th scope="col" { "Proposed" } } }
            tbody {
                @if changes.is_empty() { tr { td colspan="3" { "No limit, allowlist or mandate changes." } } }
                @for (k, a, b) in &changes { tr { td { (k) } td { (a) } td { (b) } } }
            }
        }
    };
    let old_text = in_force.map(|a| a.proposal.source.clone());
    let expired_now = t
        .request
        .as_ref()
        .and_then(|r| DateTime::parse_from_rfc3339(&r.expires_at).ok())
        .is_some_and(|x| x.with_timezone(&Utc) <= Utc::now());
    Some(page(
        &format!("SPEND.md proposal {id}"),
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            p.status role="status" { (outcome) }
            table {
                tbody {
                    tr { th scope="row" { "Proposed version" } td { code { (p.version) } } }
                    tr { th scope="row" { "In force now" } td { code { (in_force.map(|a| a.proposal.version.as_str()).unwrap_or(old_md.version.as_str())) } } }
                    tr { th scope="row" { "Standing mandate" } td { @if p.enables_auto_approve { "enabled by this version (auto-approval applies once a human approves it)" } @else { "none" } } }
                    tr { th scope="row" { "Expires" } td { @match t.request.as_ref() { Some(r) => { (when(&r.expires_at)) }, None => { "no approval request yet" } } } }
                    tr { th scope="row" { "Approvals" } td {
                        (t.approvers.len()) " of " (needed) " required, one of them an admin"
                        @if let Some(n) = needs.as_ref().filter(|n| !n.loosens.is_empty()) { " (two distinct people: it loosens " (n.loosens.join("; ")) ")" }
                    } }
                }
            }
            (change)
            h2 { "The proposed SPEND.md" }
            pre.rationale { (p.source) }
            h2 { "The SPEND.md in force" }
            @match &old_text {
                Some(text) => { pre.rationale { (text) } }
                None => { p { "The service's bootstrap file (not on the log), version " code { (old_md.version) } "." } }
            }
            @if t.waiting && !expired_now && t.request.is_some() {
                @if mine {
                    p.notice { "You approved this version; a second, distinct approver is needed." }
                } @else {
                    (decide(id, &s.csrf))
                }
            }
        },
    ))
}

// ---- approve (two steps) and reject ----

pub async fn arm(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    Ok(Json(arm_target(&app, &s, &draft_id).await?))
}

/// Arms an approval of `id` (a draft, a policy proposal, a rollback
/// request) by the signed-in approver: the approval id and the pinned
/// challenge their passkey signs, and where to post the assertion.
pub(crate) async fn arm_target(app: &App, s: &Session, id: &str) -> Answer<serde_json::Value> {
    let book = app.book.read().await;
    let t = book
        .target(&s.org, id)
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "nothing to approve under that id"))?;
    let r = ready_to_approve(&t, s)?;
    if let Some(e) = book.entry(&s.org, id)
        && let Some(why) = spend_draft::display::inconsistency(e.draft.proposal())
    {
        drop(book);
        app.alert(&s.org, spend_draft::display::INCONSISTENT, None, why.clone()).await;
        return Err(Refusal::new(StatusCode::CONFLICT, "what this draft shows is not what it would push: refused"));
    }
    let approval_id = format!("apr_{}", uuid::Uuid::now_v7().simple());
    let credential_id = own_credential(&book, s)?;
    drop(book);
    // The passkey page reads the approved event itself, renders it and
    // computes the challenge from its bytes; it is told only which.
    let back = if t.kind == "rollback" {
        "/audit".to_string()
    } else {
        format!("/approvals/{id}")
    };
    let redirect = app.passkey_url(
        "/approve",
        &[
            ("org", &s.org),
            ("kind", t.kind),
            ("id", id),
            ("approval_id", &approval_id),
            ("policy_version", &r.policy_version),
            ("expires_at", &r.expires_at),
            ("credential", &credential_id),
            ("back", &back),
        ],
    );
    app.armed.lock().await.insert_new(
        approval_id.clone(),
        Armed {
            org: s.org.clone(),
            draft_id: id.to_string(),
            approver_id: s.approver_id.clone(),
            started: Instant::now(),
        },
    );
    Ok(serde_json::json!({
        "approval_id": approval_id,
        "redirect": redirect,
        "confirm": format!("/approvals/{id}/confirm"),
    }))
}

/// The signed-in approver's passkey credential, as the registry holds it.
pub(crate) fn own_credential(book: &Book, s: &Session) -> Answer<String> {
    book.versions
        .approvers
        .approver(&s.org, &s.approver_id)
        .filter(|a| a.removed_at.is_none())
        .map(|a| a.credential_id.clone())
        .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "you are no longer a trusted approver"))
}

pub(crate) fn ready_to_approve(t: &Target, s: &Session) -> Answer<spend_core::events::ApprovalRequested> {
    if !t.waiting {
        return Err(Refusal::new(StatusCode::CONFLICT, "it no longer waits for a human: nothing to approve"));
    }
    let r = t
        .request
        .clone()
        .ok_or_else(|| Refusal::new(StatusCode::CONFLICT, "the approval request is not open yet: reload in a moment"))?;
    let expired = DateTime::parse_from_rfc3339(&r.expires_at).map_or(true, |x| x.with_timezone(&Utc) <= Utc::now());
    if expired {
        return Err(Refusal::new(StatusCode::CONFLICT, "the approval expired"));
    }
    if r.approved_hash != t.approved_hash {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "the approval request names other bytes than the log holds: refused",
        ));
    }
    if t.approvers.contains(&s.approver_id) {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "you approved this already: dual control needs a second, distinct approver",
        ));
    }
    Ok(r)
}

#[derive(Deserialize)]
pub struct Confirm {
    approval_id: String,
    assertion: PostedAssertion,
}

pub async fn confirm(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
    Json(body): Json<Confirm>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    let armed = app.armed.lock().await.remove(&body.approval_id);
    let Some(armed) = armed.filter(|a| fresh(a.started) && a.org == s.org && a.draft_id == draft_id && a.approver_id == s.approver_id) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "this approval was not armed here, or the dialog waited too long: press Approve again",
        ));
    };
    let book = app.book.read().await;
    let t = book
        .target(&s.org, &draft_id)
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "nothing to approve under that id"))?;
    let r = ready_to_approve(&t, &s)?;
    let a = body.assertion.unpadded();
    let proof = ApprovalProof {
        approval_id: body.approval_id.clone(),
        draft_id: draft_id.clone(),
        approved_hash: r.approved_hash.clone(),
        policy_version: r.policy_version.clone(),
        expires_at: r.expires_at.clone(),
        approver_id: armed.approver_id.clone(),
        credential_id: a.credential_id.clone(),
        authenticator_data: a.authenticator_data,
        client_data_json: a.client_data_json,
        signature: a.signature,
    };
    // The same verifier every consumer runs, on a copy of the registry
    // (the log's copy counts it when the event arrives).
    let mut registry = book.versions.approvers.clone();
    if let Err(err) = registry.verify(&s.org, &proof, &t.approved_hash, Utc::now(), book.seq + 1) {
        drop(book);
        app.alert(
            &s.org,
            "approval.refused",
            Some(peer),
            format!("approval of draft {draft_id} by {} refused: {err}", s.approver_id),
        )
        .await;
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            format!("your passkey's approval does not verify: {err}"),
        ));
    }
    let granted = ApprovalGranted {
        draft_id: draft_id.clone(),
        approval_id: body.approval_id.clone(),
        step: t.approvers.len() as u32 + 1,
        credential_id: proof.credential_id.clone(),
        approver_id: s.approver_id.clone(),
        approved_hash: r.approved_hash.clone(),
        proof,
    };
    let expected = t.approval_seq;
    let rollback = t.kind == "rollback";
    drop(book);
    // A rollback's approval is its own type: it can never count as the
    // approval of a draft, nor the reverse.
    let data = if rollback {
        EventData::RollbackApproved(RollbackApproved(granted))
    } else {
        EventData::ApprovalGranted(granted)
    };
    // Agents read approval subjects (get_audit_log): the approver appears
    // by their stable id, never by their e-mail address.
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.approver_id), "approval", &draft_id, data)
        .expect_seq(expected)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    let book = app.book.read().await;
    if rollback {
        return Ok(Json(serde_json::json!({
            "ok": true,
            "status": "approved",
            "message": "Rollback approved: the executor restores the recorded state now.",
        })));
    }
    let status = match book.entry(&s.org, &draft_id) {
        Some(e) => e.draft.status().as_str().to_string(),
        None if book.versions.is_approved(&s.org, &draft_id) => "approved".into(),
        None => "recorded".into(),
    };
    Ok(Json(
        serde_json::json!({"ok": true, "status": status, "message": format!("Approved: {status}.")}),
    ))
}

#[derive(Deserialize)]
pub struct RejectForm {
    csrf: String,
    reason: String,
}

pub async fn reject(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
    Form(f): Form<RejectForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("a rejection needs a reason of 1 to {MAX_REASON} characters"),
        ));
    }
    let expected = {
        let book = app.book.read().await;
        let t = book
            .target(&s.org, &draft_id)
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "nothing to reject under that id"))?;
        if !t.waiting {
            return Err(Refusal::new(StatusCode::CONFLICT, "it no longer waits for a human: nothing to reject"));
        }
        t.approval_seq
    };
    let rejected = ApprovalRejected {
        draft_id: draft_id.clone(),
        approval_id: format!("rej_{}", uuid::Uuid::now_v7().simple()),
        approver_id: s.approver_id.clone(),
        reason: reason.to_string(),
    };
    let rec = app
        .recorder
        .event(
            &s.org,
            Actor::human(&s.approver_id),
            "approval",
            &draft_id,
            EventData::ApprovalRejected(rejected),
        )
        .expect_seq(expected)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Redirect::to(&format!("/approvals/{draft_id}")).into_response())
}

// ---- approvers ----

pub async fn approvers_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/approvers");
    };
    let book = app.book.read().await;
    let reg = &book.versions.approvers;
    let trusted = reg.approvers(&s.org);
    let pending: Vec<_> = book
        .registrations(&s.org)
        .into_iter()
        .filter(|r| reg.approver(&s.org, &r.approver_id).is_none())
        .collect();
    let admin = s.role == Role::Admin;
    let email_of = |id: &str| book.registered(&s.org, id).map(|r| r.email.clone()).unwrap_or_default();
    page(
        "Approvers",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p #approvers-status role="status" aria-live="polite" {}
            table {
                caption { "Trusted approvers of " (s.org) }
                thead { tr { th scope="col" { "Approver" } th scope="col" { "Role" } th scope="col" { "Key fingerprint" } th scope="col" { "Vouched for by" } th scope="col" { "State" } @if admin { th scope="col" { "Action" } } } }
                tbody {
                    @for a in &trusted {
                        tr {
                            td { (email_of(&a.approver_id)) " " code { (a.approver_id) } }
                            td { (a.role.as_str()) }
                            td { code { (fingerprint(&a.public_key_der)) } }
                            td { @match &a.vouched_by { spend_draft::approvers::Voucher::Anchor => { "the operator's anchor" } spend_draft::approvers::Voucher::Admin(x) => { "admin " code { (x) } } } }
                            td { @if a.removed_at.is_some() { "removed" } @else { "trusted" } }
                            @if admin {
                                td {
                                    @if a.removed_at.is_none() && a.approver_id != s.approver_id {
                                        form method="post" action={ "/approvers/" (a.approver_id) "/remove" } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            button.danger type="submit" aria-label={ "Remove " (a.approver_id) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Waiting for a countersignature" }
            @if pending.is_empty() { p { "No passkey waits." } } @else {
                table {
                    thead { tr { th scope="col" { "Invitee" } th scope="col" { "Role" } th scope="col" { "Key fingerprint" } @if admin { th scope="col" { "Action" } } } }
                    tbody {
                        @for r in &pending {
                            tr {
                                td { (r.email) " " code { (r.approver_id) } }
                                td { (r.role) }
                                td { code { (r.fingerprint) } }
                                @if admin {
                                    td {
                                        button.primary type="button" data-countersign="1"
                                            data-start={ "/approvers/" (r.approver_id) "/countersign/start" }
                                            data-finish={ "/approvers/" (r.approver_id) "/countersign/finish" }
                                            aria-label={ "Review " (r.email) " to countersign" } { "Review and countersign" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if admin {
                h2 { "Invite an approver" }
                form method="post" action="/approvers/invite" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label for="invite-email" { "Email" }
                    input #invite-email type="email" name="email" required maxlength="320";
                    label for="invite-role" { "Role" }
                    select #invite-role name="role" { option value="approver" selected { "approver" } option value="admin" { "admin" } }
                    p { button.primary type="submit" { "Invite" } }
                }
            } @else {
                p { "Only admins invite, countersign and remove approvers." }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

/// How long an invitation made in the app works.
const INVITE_HOURS: i64 = 72;

pub async fn invite(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<InviteForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let email = f.email.trim();
    if email.len() > 320 || !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "that is not an email address"));
    }
    if Role::parse(&f.role).is_none() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the role is approver or admin"));
    }
    let token = random_token();
    let invite_id = format!("inv_{}", &random_token()[..16]);
    let expires = Utc::now() + chrono::Duration::hours(INVITE_HOURS);
    let invited = spend_core::events::ApproverInvited {
        invite_id: invite_id.clone(),
        org: s.org.clone(),
        email: email.to_string(),
        role: f.role.clone(),
        token_sha256: sha256_hex(&token),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &invite_id, EventData::ApproverInvited(invited))
        .expect_seq(0)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    let link = format!("{}/enroll/{token}", app.origin());
    Ok(page(
        "Invitation created",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p { "Send this link to " (email) ". It works once, for " (INVITE_HOURS) " hours, and is shown only now:" }
            p { code #invite-link { (link) } }
            p { "Once they create their passkey, countersign it on the " a href="/approvers" { "Approvers" } " page." }
        },
    ))
}

pub(crate) fn need_admin(s: &Session) -> Answer<()> {
    if s.role == Role::Admin {
        Ok(())
    } else {
        Err(Refusal::new(StatusCode::FORBIDDEN, "only an admin does that"))
    }
}

pub async fn countersign_start(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    need_admin(&s)?;
    let book = app.book.read().await;
    if book.versions.approvers.approver(&s.org, &approver_id).is_some() {
        return Err(Refusal::new(StatusCode::CONFLICT, "that approver is enrolled already"));
    }
    let target = book
        .registered(&s.org, &approver_id)
        .cloned()
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "no such passkey waits for a countersignature"))?;
    let credential_id = own_credential(&book, &s)?;
    drop(book);
    let ceremony = random_token();
    // The passkey page reads the registration from the log, shows who the
    // admin vouches for and computes the enrollment challenge itself.
    let redirect = app.passkey_url(
        "/countersign",
        &[
            ("org", &s.org),
            ("approver", &approver_id),
            ("credential", &credential_id),
            ("ceremony", &ceremony),
            ("back", "/approvers"),
        ],
    );
    app.countersigns.lock().await.insert_new(
        ceremony.clone(),
        Countersigning {
            org: s.org.clone(),
            admin_id: s.approver_id.clone(),
            target,
            started: Instant::now(),
        },
    );
    Ok(Json(serde_json::json!({"ceremony": ceremony, "redirect": redirect})))
}

#[derive(Deserialize)]
pub struct CountersignFinish {
    ceremony: String,
    assertion: PostedAssertion,
}

pub async fn countersign_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
    Json(body): Json<CountersignFinish>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    need_admin(&s)?;
    let c = app.countersigns.lock().await.remove(&body.ceremony);
    let Some(c) = c.filter(|c| fresh(c.started) && c.org == s.org && c.admin_id == s.approver_id && c.target.approver_id == approver_id) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "this countersignature was not started here, or it waited too long",
        ));
    };
    // The registry recomputes the enrollment challenge from the
    // enrollment itself: what the admin signed is what is recorded.
    let a = body.assertion.unpadded();
    let cs = Countersignature {
        approver_id: s.approver_id.clone(),
        credential_id: a.credential_id.clone(),
        authenticator_data: a.authenticator_data,
        client_data_json: a.client_data_json,
        signature: a.signature,
    };
    let enrolled = enrolled_from(&c.target, Some(cs));
    // Checked as every reader will check it, on a copy of the registry.
    {
        let book = app.book.read().await;
        let mut registry = book.versions.approvers.clone();
        let checked = Enrollment::from_event(&enrolled).and_then(|e| registry.enroll(e));
        if let Err(err) = checked {
            drop(book);
            app.alert(
                &s.org,
                "countersignature.refused",
                Some(peer),
                format!("{}'s countersignature of {approver_id} refused: {err}", s.approver_id),
            )
            .await;
            return Err(Refusal::new(StatusCode::UNAUTHORIZED, format!("the countersignature does not verify: {err}")));
        }
    }
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &approver_id, EventData::ApproverEnrolled(enrolled))
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Json(
        serde_json::json!({"ok": true, "message": format!("{} is a trusted {} now.", c.target.email, c.target.role)}),
    ))
}

pub async fn remove(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    if approver_id == s.approver_id {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "an admin cannot remove themselves: ask another admin"));
    }
    let known = app.book.read().await.versions.approvers.approver(&s.org, &approver_id).is_some();
    if !known {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "no such approver"));
    }
    let removed = ApproverRemoved {
        org: s.org.clone(),
        approver_id: approver_id.clone(),
        reason: format!("removed by admin {}", s.approver_id),
    };
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &approver_id, EventData::ApproverRemoved(removed))
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Redirect::to("/approvers").into_response())
}

#[cfg(test)]
mod next_tests {
    use super::safe_next;

    #[test]
    fn only_a_path_on_this_app_is_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/approvals/d_1?x=1")), "/approvals/d_1?x=1");
        for evil in [
            "/\t/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "https://evil.example",
            "/\u{a0}x",
        ] {
            assert_eq!(safe_next(Some(evil)), "/approvals", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/approvals");
    }
}
