//! The passkey page: the one page where an approver's passkey is created
//! or signs.
//!
//! Why a service of its own: whoever serves the page that calls
//! `navigator.credentials.get` chooses what the passkey signs. Were that
//! the approval app, a compromised approval service could hand an admin,
//! at an ordinary sign-in, the countersignature challenge of a key of its
//! own, and approve anything from then on. So approval credentials live on
//! this page's RP ID, which no page of the app can use (WebAuthn refuses
//! an RP ID that is not the page's own domain or a suffix of it), and this
//! page:
//! - computes every challenge itself, one domain-separated formula per
//!   purpose ([`spend_draft::proof`]: sign-in to the app, creating a
//!   passkey, an approval, an enrollment's countersignature), from inputs
//!   it reads or shows; it never signs a challenge handed to it;
//! - for an approval, reads the exact bytes of the approved event from the
//!   log, renders the change from them ([`render`]) and hands the same
//!   bytes to the browser, which hashes them for the challenge;
//! - for a countersignature, reads the new approver's registration from
//!   the log and shows who, which role and which key the admin vouches for;
//! - gives the assertion back to the approval app (`<app>/passkey/return`,
//!   in the URL's fragment, which no server sees), which records it: the
//!   app can drop a proof, never make one.
//!
//! It holds no secret and reads the log only (its NATS user publishes
//! nothing: k8s/nats/auth.conf). It keeps no state between requests, so
//! any number of replicas serve it. It serves no `/.well-known/webauthn`.

pub mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use spend_core::events::{ApproverRegistered, EventData};
use spend_core::subject::is_valid_token;
use spend_draft::proof::RelyingParty;
use spend_eventlog::EventLog;

pub use render::{Kind, Refused, Shown};

/// What the passkey page is configured with.
#[derive(Debug, Clone)]
pub struct PasskeyConfig {
    /// HTTP address (`127.0.0.1:0` for any port).
    pub listen: String,
    /// The relying party approval credentials are made on: this page's
    /// own domain and origin (`spend dev`: `passkey.localhost`,
    /// `http://passkey.localhost:<port>`).
    pub rp: RelyingParty,
    /// The approval app's origin: the only place assertions are given
    /// back to, and what a sign-in challenge binds.
    pub app_origin: String,
}

/// What the page is given.
pub struct Deps {
    /// The event log, as a user that may only read it.
    pub log: Arc<dyn EventLog>,
    /// The stream's subject prefix.
    pub prefix: String,
}

struct Page {
    log: Arc<dyn EventLog>,
    prefix: String,
    rp: RelyingParty,
    app_origin: String,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
}

/// How far ahead an approval's expiry may lie for the page to ask for a
/// signature over it: the longest approval timeout SPEND.md allows, with
/// room for one escalation.
const LONGEST_EXPIRY: chrono::Duration = chrono::Duration::days(8);

/// Most changes of a rollback request described one by one.
const DESCRIBED: usize = 200;

/// Scripts and styles from this origin only; no form posts, no frames,
/// nothing fetched.
const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

impl Application {
    pub async fn build(config: PasskeyConfig, deps: Deps) -> anyhow::Result<Self> {
        if config.rp.rp_id.parse::<std::net::IpAddr>().is_ok() {
            anyhow::bail!(
                "the passkey page's RP ID {:?} is an IP address, which WebAuthn refuses: give it a domain",
                config.rp.rp_id
            );
        }
        let app_origin = config.app_origin.trim_end_matches('/').to_string();
        if !(app_origin.starts_with("https://") || app_origin.starts_with("http://")) {
            anyhow::bail!("the approval app's origin {app_origin:?} is not an http(s) origin");
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the passkey page on {}: {e}", config.listen))?;
        let page = Arc::new(Page {
            log: deps.log,
            prefix: deps.prefix,
            rp: config.rp,
            app_origin,
        });
        let router = Router::new()
            .route("/", get(index))
            .route("/healthz", get(|| async { "ok" }))
            .route("/static/passkey.js", get(script))
            .route("/static/passkey.css", get(style))
            .route("/signin", get(signin))
            .route("/enroll", get(enroll))
            .route("/approve", get(approve))
            .route("/countersign", get(countersign))
            .with_state(page)
            .layer(axum::middleware::map_response(security_headers));
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, letting in-flight requests end.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await?;
        Ok(())
    }
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/passkey.js")).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/passkey.css")).into_response()
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — SpendSignoff passkey" }
                link rel="stylesheet" href="/static/passkey.css";
                script src="/static/passkey.js" defer {}
            }
            body {
                header { p { strong { "SpendSignoff" } " passkey · the only page that uses your approval passkey" } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page that asks for nothing: why the request was refused, and the way
/// back to the app.
fn refusal(p: &Page, status: StatusCode, why: &str) -> Response {
    let body = html! {
        p role="alert" { (why) }
        p { a href=(format!("{}/approvals", p.app_origin)) { "Back to the approval app" } }
    };
    (status, Html(document("Nothing to sign", body).into_string())).into_response()
}

async fn index(State(p): State<Arc<Page>>) -> Response {
    let body = html! {
        p { "Your approval passkey signs here, and only here. Start from the approval app: it sends you to this page when your passkey is needed." }
        p { a href=(format!("{}/approvals", p.app_origin)) { "Open the approval app" } }
    };
    Html(document("SpendSignoff passkey", body).into_string()).into_response()
}

/// A token the app chose (a nonce, a ceremony id): URL-safe and short.
fn ceremony_token(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Unpadded base64url credential ids, comma-separated, at most 16.
fn credential_ids(s: &str) -> Option<Vec<String>> {
    let ids: Vec<String> = s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect();
    let ok = !ids.is_empty()
        && ids.len() <= 16
        && ids
            .iter()
            .all(|id| id.len() <= 1400 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    ok.then_some(ids)
}

/// A path on the app to go back to (`/approvals/d_1`): visible ASCII, no
/// `//host`, no backslash.
fn app_path(s: Option<&str>) -> String {
    match s {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && n.len() <= 512 && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\') => n.to_string(),
        _ => "/approvals".into(),
    }
}

/// Printable text for display only, at most `max` characters.
fn shown_text(s: &str, max: usize) -> Option<String> {
    (!s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)).then(|| s.to_string())
}

#[derive(Deserialize)]
pub struct SignIn {
    nonce: Option<String>,
    email: Option<String>,
    credentials: Option<String>,
}

/// Sign-in to the app: "Sign in with passkey" signs
/// `SHA-256("spendsignoff-signin-v1\n" + app_origin + "\n" + nonce)`.
async fn signin(State(p): State<Arc<Page>>, Query(q): Query<SignIn>) -> Response {
    let (Some(nonce), Some(email), Some(ids)) = (
        q.nonce.filter(|n| ceremony_token(n)),
        q.email.as_deref().and_then(|e| shown_text(e, 320)),
        q.credentials.as_deref().and_then(credential_ids),
    ) else {
        return refusal(
            &p,
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete: start again from the approval app.",
        );
    };
    let body = html! {
        p { "Sign in to " strong { (p.app_origin) } " as " strong { (email) } "." }
        p { "Your passkey signs a sign-in to that app and nothing else: it cannot approve a change or vouch for anyone." }
        p { "If your browser offers no passkey, check the email you typed; a new approver can sign in once an admin has countersigned their passkey." }
        div #ceremony data-purpose="signin" data-app=(p.app_origin) data-nonce=(nonce) data-credentials=(ids.join(",")) data-back="/signin" {
            p { button #sign .primary type="button" { "Sign in with passkey" } }
        }
        p #passkey-status role="status" aria-live="polite" {}
    };
    Html(document("Sign in", body).into_string()).into_response()
}

#[derive(Deserialize)]
pub struct Enroll {
    nonce: Option<String>,
    email: Option<String>,
    org: Option<String>,
    role: Option<String>,
}

/// Creating a passkey on this page's RP ID, over
/// `SHA-256("spendsignoff-create-v1\n" + app_origin + "\n" + nonce)`.
async fn enroll(State(p): State<Arc<Page>>, Query(q): Query<Enroll>) -> Response {
    let (Some(nonce), Some(email), Some(org), Some(role)) = (
        q.nonce.filter(|n| ceremony_token(n)),
        q.email.as_deref().and_then(|e| shown_text(e, 320)),
        q.org.filter(|o| is_valid_token(o)),
        q.role.filter(|r| matches!(r.as_str(), "admin" | "approver")),
    ) else {
        return refusal(&p, StatusCode::BAD_REQUEST, "This enrollment link is incomplete: open your invitation again.");
    };
    let body = html! {
        p { "Create the passkey you will approve spend with for " strong { (org) } " as " strong { (role) } " (" (email) ")." }
        p { "Your passkey must verify you (a PIN, fingerprint or face); a tap alone is not enough. It belongs to " strong { (p.rp.rp_id) } ": only this page can ask it to sign." }
        div #ceremony data-purpose="create" data-app=(p.app_origin) data-nonce=(nonce) data-rp=(p.rp.rp_id) data-email=(email) data-back="/signin" {
            p { button #sign .primary type="button" { "Create passkey" } }
        }
        p #passkey-status role="status" aria-live="polite" {}
    };
    Html(document("Create your passkey", body).into_string()).into_response()
}

#[derive(Deserialize)]
pub struct Approve {
    org: Option<String>,
    kind: Option<String>,
    id: Option<String>,
    approval_id: Option<String>,
    policy_version: Option<String>,
    expires_at: Option<String>,
    credential: Option<String>,
    back: Option<String>,
}

fn approval_id_ok(s: &str) -> bool {
    s.strip_prefix("apr_")
        .is_some_and(|h| (16..=64).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The first event on `<prefix>.<org>.<aggregate>.<id>`.
async fn first_on(p: &Page, org: &str, aggregate: &str, id: &str) -> Result<Option<spend_eventlog::StoredMessage>, Response> {
    p.log.first_on_subject(&format!("{}.{org}.{aggregate}.{id}", p.prefix)).await.map_err(|e| {
        tracing::warn!(error = %e, "the passkey page could not read the log");
        refusal(
            p,
            StatusCode::SERVICE_UNAVAILABLE,
            "The event log cannot be read right now: nothing was signed. Try again in a moment.",
        )
    })
}

/// An approval: the change rendered from the approved event's bytes, and
/// an alertdialog whose button signs
/// `SHA-256("spendsignoff-approval-v1\n" + approval_id + "\n" + hex(SHA-256(bytes)) + "\n" + policy_version + "\n" + expires_at)`.
async fn approve(State(p): State<Arc<Page>>, Query(q): Query<Approve>) -> Response {
    let now = Utc::now();
    let expiry = q
        .expires_at
        .as_deref()
        .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
        .map(|e| e.with_timezone(&Utc));
    let (Some(org), Some(kind), Some(id), Some(approval_id), Some(policy_version), Some(expires_at), Some(credential), Some(expiry)) = (
        q.org.filter(|o| is_valid_token(o)),
        q.kind.as_deref().and_then(Kind::parse),
        q.id.filter(|i| is_valid_token(i)),
        q.approval_id.filter(|a| approval_id_ok(a)),
        q.policy_version.filter(|v| v.len() <= 100 && v.bytes().all(|b| b.is_ascii_graphic())),
        q.expires_at.clone(),
        q.credential.as_deref().and_then(credential_ids).filter(|c| c.len() == 1),
        expiry,
    ) else {
        return refusal(
            &p,
            StatusCode::BAD_REQUEST,
            "This approval link is incomplete: press Approve again in the approval app.",
        );
    };
    if expiry <= now {
        return refusal(&p, StatusCode::CONFLICT, "This approval expired: nothing to sign.");
    }
    if expiry > now + LONGEST_EXPIRY {
        return refusal(
            &p,
            StatusCode::BAD_REQUEST,
            "This approval would stay valid far longer than any approval may: refused.",
        );
    }
    let mut found = None;
    for aggregate in kind.aggregates() {
        match first_on(&p, &org, aggregate, &id).await {
            Ok(Some(m)) => {
                found = Some(m);
                break;
            }
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    let Some(message) = found else {
        return refusal(&p, StatusCode::NOT_FOUND, &Refused::Missing(kind_name(kind)).to_string());
    };
    let drafts = match rollback_drafts(&p, &org, kind, &message.payload).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let shown = match render::approvable(kind, &org, &id, &message.payload, &drafts) {
        Ok(s) => s,
        Err(e) => return refusal(&p, StatusCode::CONFLICT, &format!("Nothing to sign: {e}.")),
    };
    let back = app_path(q.back.as_deref());
    let body = html! {
        div.dialog role="alertdialog" aria-modal="true" aria-labelledby="ask" aria-describedby="what" {
            h2 #ask { (if kind == Kind::Rollback { "Roll back?" } else { "Approve and push live?" }) }
            p #what .what { (shown.headline) }
            dl {
                @for (label, value) in &shown.rows {
                    dt { (label) }
                    dd { @if value.contains('\n') { pre { (value) } } @else { (value) } }
                }
                dt { "Organisation" } dd { (org) }
                dt { "Valid until" } dd { time datetime=(expires_at) { (expires_at) } }
            }
            @if let Some(w) = &shown.warning { p { strong { (w) } } }
            p { "Your passkey signs exactly this, read from the event log; the approval app only records what you sign." }
            div #ceremony data-purpose="approve" data-app=(p.app_origin) data-nonce=(approval_id) data-approval-id=(approval_id)
                data-policy-version=(policy_version) data-expires-at=(expires_at) data-credentials=(credential.join(","))
                data-bytes=(STANDARD.encode(&message.payload)) data-back=(back) {
                p.actions {
                    button #sign .primary type="button" { (shown.confirm) }
                    " "
                    button #cancel type="button" { "Cancel" }
                }
            }
            p #passkey-status role="status" aria-live="polite" {}
        }
    };
    Html(document("Your approval", body).into_string()).into_response()
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Draft => "draft",
        Kind::Policy => "SPEND.md proposal",
        Kind::Rollback => "rollback request",
    }
}

/// Each draft a rollback request names, in words, read from the log.
async fn rollback_drafts(p: &Page, org: &str, kind: Kind, bytes: &[u8]) -> Result<HashMap<String, String>, Response> {
    let mut out = HashMap::new();
    if kind != Kind::Rollback {
        return Ok(out);
    }
    let Ok(env) = spend_core::RawEnvelope::parse(bytes) else { return Ok(out) };
    let Ok(EventData::RollbackRequested(r)) = EventData::from_json(&env.event_type, env.data.get()) else {
        return Ok(out);
    };
    for item in r.changes.iter().take(DESCRIBED) {
        if out.contains_key(&item.draft_id) || !is_valid_token(&item.draft_id) {
            continue;
        }
        if let Some(m) = first_on(p, org, "draft", &item.draft_id).await?
            && let Some(words) = render::draft_words(&m.payload)
        {
            out.insert(item.draft_id.clone(), words);
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
pub struct Countersign {
    org: Option<String>,
    approver: Option<String>,
    credential: Option<String>,
    ceremony: Option<String>,
    back: Option<String>,
}

/// An admin vouches for a new approver: who, which role and which key,
/// read from the registration on the log; the button signs the pinned
/// enrollment challenge of exactly those.
async fn countersign(State(p): State<Arc<Page>>, Query(q): Query<Countersign>) -> Response {
    let (Some(org), Some(approver), Some(credential), Some(ceremony)) = (
        q.org.filter(|o| is_valid_token(o)),
        q.approver.filter(|a| is_valid_token(a)),
        q.credential.as_deref().and_then(credential_ids).filter(|c| c.len() == 1),
        q.ceremony.filter(|c| ceremony_token(c)),
    ) else {
        return refusal(
            &p,
            StatusCode::BAD_REQUEST,
            "This countersignature link is incomplete: start again on the Approvers page.",
        );
    };
    let registered = match first_on(&p, &org, "approver", &approver).await {
        Ok(Some(m)) => registration(&m.payload),
        Ok(None) => None,
        Err(r) => return r,
    };
    let Some(r) = registered.filter(|r| r.org == org && r.approver_id == approver) else {
        return refusal(&p, StatusCode::NOT_FOUND, "No passkey waits for a countersignature under that id.");
    };
    let Ok(der) = STANDARD.decode(&r.public_key_spki_b64) else {
        return refusal(&p, StatusCode::CONFLICT, "That passkey's public key does not decode: nothing to sign.");
    };
    if r.rp_id != p.rp.rp_id || r.origin != p.rp.origin {
        return refusal(
            &p,
            StatusCode::CONFLICT,
            "That passkey was not created on this page: it can never approve, so there is nothing to vouch for.",
        );
    }
    let fingerprint = spend_draft::proof::fingerprint(&der);
    let back = app_path(q.back.as_deref());
    let body = html! {
        p #what .what { "Vouch for " strong { (r.email) } " as " strong { (r.role) } " of " strong { (org) } "." }
        dl {
            dt { "Approver" } dd { (r.approver_id) }
            dt { "Email" } dd { (r.email) }
            dt { "Role" } dd { (r.role) }
            dt { "Key fingerprint" } dd { code { (fingerprint) } }
        }
        p { "Compare the fingerprint with the one " (r.email) " sees on their enrollment page. Once you countersign, their passkey approves spend for " (org) "." }
        div #ceremony data-purpose="countersign" data-app=(p.app_origin) data-nonce=(ceremony) data-org=(org) data-approver=(r.approver_id)
            data-role=(r.role) data-credential-id=(r.credential_id) data-fingerprint=(fingerprint) data-credentials=(credential.join(",")) data-back=(back) {
            p.actions {
                button #sign .primary type="button" { "Countersign " (r.email) }
                " "
                button #cancel type="button" { "Cancel" }
            }
        }
        p #passkey-status role="status" aria-live="polite" {}
    };
    Html(document("Countersign an approver", body).into_string()).into_response()
}

fn registration(bytes: &[u8]) -> Option<ApproverRegistered> {
    let env = spend_core::RawEnvelope::parse(bytes).ok()?;
    match EventData::from_json(&env.event_type, env.data.get()).ok()? {
        EventData::ApproverRegistered(r) if env.org == r.org => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_and_paths_of_the_app_are_taken() {
        assert!(ceremony_token("abcdefghijklmnop_-12"));
        assert!(!ceremony_token("short"));
        assert!(!ceremony_token("abcdefghijklmnop\"><script>"));
        assert_eq!(app_path(Some("//evil.example/x")), "/approvals");
        assert_eq!(app_path(Some("/approvals/d_1")), "/approvals/d_1");
        assert_eq!(app_path(Some("/a\\b")), "/approvals");
        assert_eq!(credential_ids("abc,d-_e"), Some(vec!["abc".to_string(), "d-_e".to_string()]));
        assert_eq!(credential_ids("a+b"), None);
        assert!(approval_id_ok("apr_0123456789abcdef0123456789abcdef"));
        assert!(!approval_id_ok("apr_xyz"));
    }
}
