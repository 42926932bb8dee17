//! The sandbox platform's OAuth 2.0 authorization server, shaped like a real
//! ad or card platform's, so the executor's connection code meets what it
//! will meet there:
//!
//! - `GET /oauth/authorize` — the authorization code flow with PKCE (S256
//!   only), a consent page naming what is asked (and what was granted
//!   before), the account to connect, Allow and Deny;
//! - `POST /oauth/token` — `authorization_code` (the code once, its
//!   redirect URI, its verifier) and `refresh_token` (rotated: each refresh
//!   token works once, and a second use revokes the whole grant, as a
//!   stolen one would be);
//! - `POST /oauth/revoke` (RFC 7009) — revokes the grant a token belongs to;
//! - incremental consent: `include_granted_scopes=true` keeps what the
//!   account granted before (asking for write later keeps read);
//! - the errors a real provider gives: `invalid_request`, `invalid_client`,
//!   `invalid_grant` (unknown, expired, used or mismatched code; bad
//!   verifier; used refresh token), `invalid_scope`, `access_denied`,
//!   `unsupported_grant_type`.
//!
//! Tokens are bound to one account: an access token for `act_1001` reads
//! nothing of `act_1002`. The platform keeps only tokens' SHA-256.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Sandbox;

/// The scopes the sandbox grants, and what each lets a client do.
pub const SCOPES: &[(&str, &str)] = &[
    ("ads.read", "see your ad accounts, campaigns and their performance"),
    ("ads.write", "change your campaigns' budgets, bids and status"),
    ("cards.read", "see your cards and their transactions"),
    ("cards.write", "charge your cards, freeze them and refund charges"),
];

/// A client registered with the platform (SpendSignoff's executor).
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// Redirect URIs matched exactly; a loopback `http://127.0.0.1/…` or
    /// `http://localhost/…` one matches on any port (RFC 8252, native apps).
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// Lifetimes of what the server issues.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub code: Duration,
    pub access: Duration,
    pub refresh: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: Duration::minutes(1),
            access: Duration::hours(1),
            refresh: Duration::days(60),
        }
    }
}

/// What one account granted one client; tokens belong to a grant, and
/// revoking any of them revokes it.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    account_id: String,
    scopes: BTreeSet<String>,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Code {
    grant: usize,
    scopes: BTreeSet<String>,
    redirect_uri: String,
    challenge: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Access {
    grant: usize,
    pub(super) scopes: BTreeSet<String>,
    pub(super) expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Refresh {
    grant: usize,
    scopes: BTreeSet<String>,
    expires_at: DateTime<Utc>,
    used: bool,
}

/// The authorization server's state.
#[derive(Debug, Default)]
pub(super) struct OAuth {
    clients: Vec<OAuthClient>,
    lifetimes: Lifetimes,
    grants: Vec<Grant>,
    /// By SHA-256 of the code / token.
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    /// Every code and token issued, in the clear: the sandbox is a test
    /// platform, and tests search everything SpendSignoff wrote for them
    /// (`GET /sandbox/oauth/issued`). At most [`ISSUED_KEPT`].
    issued: std::collections::VecDeque<String>,
}

/// Codes and tokens the sandbox remembers for leak tests.
const ISSUED_KEPT: usize = 10_000;

/// An access token the API accepts: its account and scopes.
#[derive(Debug, Clone)]
pub(super) struct Bound {
    pub(super) account_id: String,
    pub(super) scopes: BTreeSet<String>,
    pub(super) expires_at: DateTime<Utc>,
}

fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// Why the API refuses an OAuth access token.
pub(super) enum Refused {
    Unknown,
    Expired,
    Revoked,
}

impl OAuth {
    pub(super) fn new(clients: Vec<OAuthClient>, lifetimes: Lifetimes) -> Self {
        Self {
            clients,
            lifetimes,
            ..Self::default()
        }
    }

    /// The account and scopes of an access token the API is presented.
    pub(super) fn bound(&self, token: &str) -> Result<Bound, Refused> {
        let a = self.access.get(&hash(token)).ok_or(Refused::Unknown)?;
        let g = &self.grants[a.grant];
        if g.revoked {
            return Err(Refused::Revoked);
        }
        if a.expires_at <= Utc::now() {
            return Err(Refused::Expired);
        }
        Ok(Bound {
            account_id: g.account_id.clone(),
            scopes: a.scopes.clone(),
            expires_at: a.expires_at,
        })
    }

    fn client(&self, id: &str) -> Option<&OAuthClient> {
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// Revokes every grant of `account_id` (its owner did, in the
    /// platform's settings).
    pub(super) fn revoke_account(&mut self, account_id: &str) -> usize {
        let mut n = 0;
        for g in self.grants.iter_mut().filter(|g| g.account_id == account_id && !g.revoked) {
            g.revoked = true;
            n += 1;
        }
        n
    }

    fn grant_of(&mut self, client_id: &str, account_id: &str) -> usize {
        if let Some(i) = self
            .grants
            .iter()
            .position(|g| g.client_id == client_id && g.account_id == account_id && !g.revoked)
        {
            return i;
        }
        self.grants.push(Grant {
            client_id: client_id.into(),
            account_id: account_id.into(),
            scopes: BTreeSet::new(),
            revoked: false,
        });
        self.grants.len() - 1
    }

    fn remember(&mut self, secret: &str) {
        if self.issued.len() >= ISSUED_KEPT {
            self.issued.pop_front();
        }
        self.issued.push_back(secret.to_string());
    }

    /// Every code and token issued (test control).
    pub(super) fn issued(&self) -> Vec<String> {
        self.issued.iter().cloned().collect()
    }

    fn issue(&mut self, grant: usize, scopes: BTreeSet<String>) -> serde_json::Value {
        let now = Utc::now();
        let (access, refresh) = (random_token("sbx_at_"), random_token("sbx_rt_"));
        self.remember(&access);
        self.remember(&refresh);
        self.access.insert(
            hash(&access),
            Access {
                grant,
                scopes: scopes.clone(),
                expires_at: now + self.lifetimes.access,
            },
        );
        self.refresh.insert(
            hash(&refresh),
            Refresh {
                grant,
                scopes: scopes.clone(),
                expires_at: now + self.lifetimes.refresh,
                used: false,
            },
        );
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.lifetimes.access.num_seconds(),
            "refresh_token": refresh,
            "refresh_token_expires_in": self.lifetimes.refresh.num_seconds(),
            "scope": scopes.into_iter().collect::<Vec<_>>().join(" "),
            "account_id": self.grants[grant].account_id,
        })
    }
}

/// Whether `uri` is one the client registered (a loopback one on any port).
fn redirect_allowed(client: &OAuthClient, uri: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    let Ok(u) = reqwest::Url::parse(uri) else { return false };
    let loopback = u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    loopback
        && client.redirect_uris.iter().any(|r| {
            reqwest::Url::parse(r).is_ok_and(|reg| {
                reg.scheme() == "http" && matches!(reg.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]")) && reg.path() == u.path()
            })
        })
}

fn scopes_of(s: &str) -> Result<BTreeSet<String>, String> {
    let set: BTreeSet<String> = s.split_whitespace().map(str::to_string).collect();
    if set.is_empty() {
        return Err("no scope requested".into());
    }
    match set.iter().find(|s| !SCOPES.iter().any(|(k, _)| k == s)) {
        Some(bad) => Err(format!("unknown scope {bad:?}")),
        None => Ok(set),
    }
}

/// An OAuth error as JSON (the token and revocation endpoints).
fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"error": error, "error_description": description.into()})),
    )
        .into_response()
}

/// An error on the authorization page that must not redirect (an unknown
/// client or redirect URI: the redirect could go anywhere).
fn page_error(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(page("Cannot authorize", maud::html! { p { (message) } }))).into_response()
}

fn page(title: &str, body: maud::Markup) -> String {
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) " — Sandbox platform" } }
            body { h1 { (title) } (body) }
        }
    }
    .into_string()
}

#[derive(Debug, Deserialize, Clone)]
pub(super) struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    #[serde(default)]
    include_granted_scopes: Option<String>,
    /// The account to preselect (a hint, as `login_hint` is).
    account: Option<String>,
}

/// The checked request, or where to say what is wrong.
enum Checked {
    Ok {
        client: OAuthClient,
        redirect_uri: String,
        scopes: BTreeSet<String>,
        state: String,
        challenge: String,
        incremental: bool,
    },
    /// Said on the page (client or redirect URI unknown).
    Page(String),
    /// Said to the client at its redirect URI.
    Redirect {
        redirect_uri: String,
        state: String,
        error: &'static str,
        description: String,
    },
}

fn check(oauth: &OAuth, q: &AuthorizeRequest) -> Checked {
    let Some(client) = q.client_id.as_deref().and_then(|c| oauth.client(c)).cloned() else {
        return Checked::Page("Unknown client_id.".into());
    };
    let Some(redirect_uri) = q.redirect_uri.clone().filter(|r| redirect_allowed(&client, r)) else {
        return Checked::Page("The redirect_uri is not one this client registered.".into());
    };
    let state = q.state.clone().unwrap_or_default();
    let fail = |error, description: String| Checked::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    if q.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "response_type must be code".into());
    }
    let challenge = match (q.code_challenge.as_deref(), q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if c.len() == 43 => c.to_string(),
        (Some(_), Some("S256")) => return fail("invalid_request", "code_challenge must be 43 characters of base64url".into()),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256".into()),
        (None, _) => return fail("invalid_request", "PKCE is required: code_challenge and code_challenge_method=S256".into()),
    };
    let scopes = match scopes_of(q.scope.as_deref().unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => return fail("invalid_scope", e),
    };
    Checked::Ok {
        client,
        redirect_uri,
        scopes,
        state,
        challenge,
        incremental: q.include_granted_scopes.as_deref() == Some("true"),
    }
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut u = match reqwest::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return page_error("The redirect_uri is not a URL."),
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
    }
    Redirect::to(u.as_str()).into_response()
}

/// `GET /oauth/authorize`: the consent page.
pub(super) async fn authorize(State(sb): State<Sandbox>, Query(q): Query<AuthorizeRequest>) -> Response {
    let oauth = sb.inner.oauth.lock().expect("oauth lock");
    let (client, scopes, incremental) = match check(&oauth, &q) {
        Checked::Page(m) => return page_error(&m),
        Checked::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => return redirect_with(&redirect_uri, &[("error", error), ("error_description", &description), ("state", &state)]),
        Checked::Ok {
            client, scopes, incremental, ..
        } => (client, scopes, incremental),
    };
    let accounts = &sb.inner.accounts;
    let chosen = q.account.clone().filter(|a| accounts.iter().any(|x| &x.id == a));
    let granted: Vec<(String, BTreeSet<String>)> = oauth
        .grants
        .iter()
        .filter(|g| g.client_id == client.client_id && !g.revoked)
        .map(|g| (g.account_id.clone(), g.scopes.clone()))
        .collect();
    let hidden = [
        ("response_type", "code".to_string()),
        ("client_id", client.client_id.clone()),
        ("redirect_uri", q.redirect_uri.clone().unwrap_or_default()),
        ("scope", scopes.iter().cloned().collect::<Vec<_>>().join(" ")),
        ("state", q.state.clone().unwrap_or_default()),
        ("code_challenge", q.code_challenge.clone().unwrap_or_default()),
        ("code_challenge_method", "S256".into()),
        ("include_granted_scopes", if incremental { "true" } else { "false" }.into()),
    ];
    let body = maud::html! {
        p { strong { (client.client_id) } " asks to:" }
        ul {
            @for s in &scopes {
                li { (SCOPES.iter().find(|(k, _)| k == s).map(|(_, d)| *d).unwrap_or("")) " (" code { (s) } ")" }
            }
        }
        @for (account, had) in &granted {
            @if incremental && chosen.as_deref() == Some(account.as_str()) {
                p { "It already has, on " (account) ": " (had.iter().cloned().collect::<Vec<_>>().join(", ")) "; that stays." }
            }
        }
        form method="post" action="/oauth/authorize" {
            @for (k, v) in &hidden { input type="hidden" name=(k) value=(v); }
            fieldset {
                legend { "Account" }
                @for a in accounts.iter() {
                    label {
                        input type="radio" name="account" value=(a.id) checked[chosen.as_deref() == Some(a.id.as_str())];
                        " " (a.name) " (" (a.id) ")"
                    }
                    br;
                }
            }
            button type="submit" name="decision" value="allow" { "Allow" }
            " "
            button type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    Html(page("Connect your account", body)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct Decision {
    #[serde(flatten)]
    request: AuthorizeRequest,
    decision: String,
}

/// `POST /oauth/authorize`: the account owner's answer.
pub(super) async fn decide(State(sb): State<Sandbox>, Form(d): Form<Decision>) -> Response {
    let mut oauth = sb.inner.oauth.lock().expect("oauth lock");
    let (client, redirect_uri, mut scopes, state, challenge, incremental) = match check(&oauth, &d.request) {
        Checked::Page(m) => return page_error(&m),
        Checked::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => return redirect_with(&redirect_uri, &[("error", error), ("error_description", &description), ("state", &state)]),
        Checked::Ok {
            client,
            redirect_uri,
            scopes,
            state,
            challenge,
            incremental,
        } => (client, redirect_uri, scopes, state, challenge, incremental),
    };
    if d.decision != "allow" {
        return redirect_with(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the account owner denied the request"),
                ("state", &state),
            ],
        );
    }
    let Some(account) = d.request.account.clone().filter(|a| sb.inner.accounts.iter().any(|x| &x.id == a)) else {
        return redirect_with(
            &redirect_uri,
            &[("error", "invalid_request"), ("error_description", "no account chosen"), ("state", &state)],
        );
    };
    let grant = oauth.grant_of(&client.client_id, &account);
    if incremental {
        scopes.extend(oauth.grants[grant].scopes.iter().cloned());
    }
    oauth.grants[grant].scopes = scopes.clone();
    let code = random_token("sbx_code_");
    oauth.remember(&code);
    let expires_at = Utc::now() + oauth.lifetimes.code;
    oauth.codes.insert(
        hash(&code),
        Code {
            grant,
            scopes,
            redirect_uri: redirect_uri.clone(),
            challenge,
            expires_at,
            used: false,
        },
    );
    redirect_with(&redirect_uri, &[("code", &code), ("state", &state)])
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The client a request authenticates as: HTTP Basic, or the form's
/// `client_id` and `client_secret`.
fn authenticate<'a>(oauth: &'a OAuth, headers: &HeaderMap, form_id: Option<&str>, form_secret: Option<&str>) -> Option<&'a OAuthClient> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    let (id, secret) = match basic {
        Some((id, secret)) => (id, secret),
        None => (form_id?.to_string(), form_secret?.to_string()),
    };
    let client = oauth.client(&id)?;
    subtle_eq(client.client_secret.as_bytes(), secret.as_bytes()).then_some(client)
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /oauth/token`.
pub(super) async fn token(State(sb): State<Sandbox>, headers: HeaderMap, Form(t): Form<TokenRequest>) -> Response {
    let mut oauth = sb.inner.oauth.lock().expect("oauth lock");
    let Some(client) = authenticate(&oauth, &headers, t.client_id.as_deref(), t.client_secret.as_deref()).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    };
    let now = Utc::now();
    match t.grant_type.as_deref() {
        Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (t.code.as_deref(), t.code_verifier.as_deref()) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code and code_verifier are required");
            };
            let key = hash(code);
            let Some(c) = oauth.codes.get(&key).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the authorization code is not valid");
            };
            if c.used {
                // A code used twice was stolen: revoke what it issued.
                oauth.grants[c.grant].revoked = true;
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the authorization code was already used; its grant is revoked",
                );
            }
            oauth.codes.get_mut(&key).expect("present").used = true;
            if oauth.grants[c.grant].client_id != client.client_id {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the code was issued to another client");
            }
            if c.expires_at <= now {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the authorization code has expired");
            }
            if t.redirect_uri.as_deref() != Some(c.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri does not match the authorization request",
                );
            }
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !subtle_eq(computed.as_bytes(), c.challenge.as_bytes()) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the code_verifier does not match the code_challenge");
            }
            if oauth.grants[c.grant].revoked {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the grant was revoked");
            }
            let body = oauth.issue(c.grant, c.scopes);
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Some("refresh_token") => {
            let Some(refresh) = t.refresh_token.as_deref() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
            };
            let key = hash(refresh);
            let Some(r) = oauth.refresh.get(&key).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the refresh token is not valid");
            };
            if oauth.grants[r.grant].client_id != client.client_id {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the refresh token was issued to another client");
            }
            if r.used {
                // Rotation: a used refresh token presented again was copied.
                oauth.grants[r.grant].revoked = true;
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the refresh token was already used; the grant is revoked",
                );
            }
            if oauth.grants[r.grant].revoked {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the grant was revoked");
            }
            if r.expires_at <= now {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the refresh token has expired");
            }
            let scopes = match t.scope.as_deref() {
                None => r.scopes.clone(),
                Some(s) => match scopes_of(s) {
                    Ok(s) if s.is_subset(&r.scopes) => s,
                    Ok(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "a refresh cannot widen the scopes granted"),
                    Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", e),
                },
            };
            oauth.refresh.get_mut(&key).expect("present").used = true;
            let body = oauth.issue(r.grant, scopes);
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {other:?} is not supported"),
        ),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeRequest {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub(super) async fn revoke(State(sb): State<Sandbox>, headers: HeaderMap, Form(r): Form<RevokeRequest>) -> Response {
    let mut oauth = sb.inner.oauth.lock().expect("oauth lock");
    let Some(client) = authenticate(&oauth, &headers, r.client_id.as_deref(), r.client_secret.as_deref()).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    };
    let Some(token) = r.token else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let key = hash(&token);
    let grant = oauth.access.get(&key).map(|a| a.grant).or_else(|| oauth.refresh.get(&key).map(|r| r.grant));
    if let Some(g) = grant
        && oauth.grants[g].client_id == client.client_id
    {
        oauth.grants[g].revoked = true;
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_others_exactly() {
        let c = OAuthClient {
            client_id: "spendsignoff".into(),
            client_secret: "s".into(),
            redirect_uris: vec!["http://127.0.0.1/callback".into(), "https://approvals.example.com/accounts/callback".into()],
        };
        assert!(redirect_allowed(&c, "http://127.0.0.1:53111/callback"));
        assert!(!redirect_allowed(&c, "http://127.0.0.1:53111/other"));
        assert!(redirect_allowed(&c, "https://approvals.example.com/accounts/callback"));
        assert!(!redirect_allowed(&c, "https://approvals.example.com:8443/accounts/callback"));
        assert!(!redirect_allowed(&c, "https://evil.example/accounts/callback"));
        assert!(!redirect_allowed(&c, "http://127.0.0.1.evil.example/callback"));
    }
}
