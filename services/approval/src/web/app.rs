//! The approval app's shell: server-rendered pages (maud escapes everything it
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
//!
//! This file holds what every page shares: the [`App`] (sessions, ceremonies
//! in flight, attempts per address), the refusal type and the static files;
//! each page's handlers live in a module named for its job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use maud::{Markup, html};
use sha2::Sha256;
use spend_core::bounded::FifoMap;
use spend_core::events::{ApproverRegistered, SecurityAlert};
use spend_draft::approvers::Role;
use spend_eventlog::{LogError, Recorder};
use tokio::sync::{Mutex, RwLock};
use webauthn_rs::prelude::PasskeyRegistration;

use spend_pages::url_escape;
pub(crate) use spend_pages::{CsrfForm, page, security_headers};

use crate::passkeys::{CEREMONY_TTL, Passkeys};
use spend_approvals::book::Book;

/// The session cookie's name.
pub const COOKIE: &str = "__Host-spend_session";
/// Sign-in and enrollment attempts an address may make per minute
/// (burst the same): enough for people, too few to guess at scale.
pub const ATTEMPTS_PER_MINUTE: u32 = 20;
/// Sessions kept at once (the oldest forgotten first).
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Ceremonies in flight kept at once, per kind.
pub(crate) const MAX_CEREMONIES: usize = 10_000;
/// The longest rejection reason.
pub(crate) const MAX_REASON: usize = 1_000;
/// Finished drafts the queue shows under the waiting ones.
pub(crate) const HISTORY: usize = 50;

pub(crate) const APP_JS: &str = include_str!("../../static/app.js");
pub(crate) const APP_CSS: &str = include_str!("../../static/app.css");

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
    pub(crate) started: Instant,
    pub(crate) seen: Instant,
}

pub(crate) struct SignIn {
    pub(crate) challenge: [u8; 32],
    /// (org, approver id, credential id) the assertion may come from.
    pub(crate) candidates: Vec<(String, String, String)>,
    pub(crate) started: Instant,
}

pub(crate) struct Armed {
    pub(crate) org: String,
    pub(crate) draft_id: String,
    pub(crate) approver_id: String,
    pub(crate) started: Instant,
}

pub(crate) struct Countersigning {
    pub(crate) org: String,
    pub(crate) admin_id: String,
    pub(crate) target: ApproverRegistered,
    pub(crate) started: Instant,
}

pub struct App {
    pub recorder: Recorder,
    pub book: Arc<RwLock<Book>>,
    /// The app's own origin (links, same-origin checks, what a sign-in
    /// challenge binds).
    pub(crate) origin: String,
    /// Passkey creation checked on the passkey page's relying party: its
    /// origin is where every ceremony goes ([`passkey_url`]).
    pub passkeys: Passkeys,
    pub sessions_policy: SessionPolicy,
    /// The SPEND.md in force until a version is approved on the log.
    pub bootstrap: Arc<spend_policy::spendmd::SpendMd>,
    /// Connected accounts, through the executor (`None`: not offered).
    pub accounts: Option<Arc<dyn spend_platform::Connect>>,
    pub(crate) sessions: Mutex<FifoMap<String, Session>>,
    /// Enrollments under way, by invitation hash: webauthn-rs's state and
    /// the nonce the passkey page computed the challenge from.
    pub(crate) registrations: Mutex<FifoMap<String, (PasskeyRegistration, String, Instant)>>,
    pub(crate) signins: Mutex<FifoMap<String, SignIn>>,
    pub(crate) armed: Mutex<FifoMap<String, Armed>>,
    pub(crate) countersigns: Mutex<FifoMap<String, Countersigning>>,
    /// Sign counters seen at sign-in (never on the log), per credential.
    pub(crate) counters: Mutex<FifoMap<String, u32>>,
    /// Sign-in and enrollment attempts per address.
    pub(crate) attempts: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Refusals counted, not recorded singly, in a flood.
    pub alerts: spend_core::alert_gate::AlertGate,
    /// Keys the decoy credential ids of emails that are no approver's:
    /// random per process, or derived from the secret every replica shares
    /// ([`App::with_decoy_secret`]) so that all replicas answer alike.
    pub(crate) decoy_key: [u8; 32],
}

pub(crate) use spend_core::sha256_hex;

pub(crate) fn random_token() -> String {
    spend_credentials::random_hex(32).expect("the operating system's random source")
}

pub(crate) fn fresh(started: Instant) -> bool {
    started.elapsed() < CEREMONY_TTL
}

/// Why a page or the script is refused, by what it means; the HTTP status
/// of each is set here once ([`Refusal::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The request itself is wrong (a missing field, a bad value).
    BadInput,
    /// Nobody is signed in (or the session ended).
    SignInFirst,
    /// Signed in, but not allowed (another origin, no CSRF token, not an
    /// admin).
    Forbidden,
    NotFound,
    /// The state moved on (already decided, expired, another request first).
    Conflict,
    /// Too many attempts from one address.
    TooMany,
    /// Something that should not happen here.
    Internal,
    /// A service behind the app (the executor) answered badly.
    Upstream,
    /// The event log or a service behind the app cannot be reached.
    Unavailable,
}

/// A refusal the page or the script shows: why, and what to tell the
/// person.
#[derive(Debug)]
pub struct Refusal {
    pub(crate) why: Why,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(why: Why, message: impl Into<String>) -> Self {
        Self { why, message: message.into() }
    }

    pub(crate) fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Why::BadInput, message)
    }

    pub(crate) fn sign_in_first(message: impl Into<String>) -> Self {
        Self::new(Why::SignInFirst, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Why::Forbidden, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(Why::NotFound, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(Why::Conflict, message)
    }

    pub(crate) fn too_many(message: impl Into<String>) -> Self {
        Self::new(Why::TooMany, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(Why::Internal, message)
    }

    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        Self::new(Why::Upstream, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Why::Unavailable, message)
    }

    /// The one place a refusal's HTTP status is chosen.
    pub fn status(&self) -> StatusCode {
        match self.why {
            Why::BadInput => StatusCode::BAD_REQUEST,
            Why::SignInFirst => StatusCode::UNAUTHORIZED,
            Why::Forbidden => StatusCode::FORBIDDEN,
            Why::NotFound => StatusCode::NOT_FOUND,
            Why::Conflict => StatusCode::CONFLICT,
            Why::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Why::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Why::Upstream => StatusCode::BAD_GATEWAY,
            Why::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status(), Json(serde_json::json!({"error": self.message}))).into_response()
    }
}

pub(crate) type Answer<T> = Result<T, Refusal>;

pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
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
        Err(Refusal::too_many("too many attempts: wait a minute"))
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
            book.approvers.approver(&s.org, &s.approver_id).is_some_and(|a| a.removed_at.is_none())
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
            return Err(Refusal::sign_in_first("sign in with your passkey first"));
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
            return Err(Refusal::forbidden(format!("refused: the request came {why}")));
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

pub(crate) fn who(s: &Session) -> String {
    format!("{} ({}, {})", s.email, s.role.as_str(), s.org)
}
pub(crate) use spend_pages::sign_in_first as need_session;
pub(crate) fn need_admin(s: &Session) -> Answer<()> {
    if s.role == Role::Admin {
        Ok(())
    } else {
        Err(Refusal::forbidden("only an admin does that"))
    }
}
pub(crate) fn log_refusal(e: LogError) -> Refusal {
    match e {
        LogError::WrongLastSequence { .. } => Refusal::conflict("someone else changed this at the same moment: reload and try again"),
        other => {
            tracing::error!(error = %other, "an approval event could not be recorded");
            Refusal::unavailable("the event log is unavailable: nothing was recorded, try again")
        }
    }
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
