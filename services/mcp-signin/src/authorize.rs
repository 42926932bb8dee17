//! The authorization endpoint: a client's request checked (client,
//! redirect URI, PKCE, scopes, resource), the consent page a signed-in
//! human answers, and the grant recorded with its code's hash.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{SecondsFormat, Utc};
use maud::html;
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ClientGranted, EventData};

use crate::core::{self, Client, OAuthError, SCOPES};
use crate::{Server, no_store};

/// An authorization request, as the client sends it (the consent form
/// posts the same fields back, with the human's answer).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    resource: Option<String>,
}

/// An authorization request that passed every check.
struct Checked {
    client: Client,
    redirect_uri: String,
    challenge: String,
    scopes: BTreeSet<String>,
}

/// Why an authorization request fails: on a page of ours when the client
/// or its redirect URI cannot be trusted (never redirect there), else back
/// to the client with an OAuth error.
enum Failed {
    Page(String),
    Back { redirect_uri: String, error: OAuthError },
}

async fn check(s: &Server, q: &AuthorizeRequest, peer: SocketAddr, org: &str) -> Result<Checked, Failed> {
    let Some(client_id) = q.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Failed::Page("the client sent no client_id".into()));
    };
    let client = match s.client(client_id).await {
        Ok(c) => c,
        Err(e) => {
            s.audit(
                org,
                "oauth.client_refused",
                peer,
                format!("an authorization request from an unusable client: {}", e.description),
            )
            .await;
            return Err(Failed::Page(e.description));
        }
    };
    let Some(redirect_uri) = q.redirect_uri.clone() else {
        return Err(Failed::Page("the client sent no redirect_uri".into()));
    };
    if !core::redirect_matches(&client.redirect_uris, &redirect_uri) {
        s.audit(
            org,
            "oauth.redirect_refused",
            peer,
            format!(
                "an authorization request for client {:?} named a redirect URI it did not register",
                client.client_name
            ),
        )
        .await;
        return Err(Failed::Page(format!("the redirect URI {redirect_uri:?} is not one this client registered")));
    }
    let back = |error: OAuthError| Failed::Back {
        redirect_uri: redirect_uri.clone(),
        error,
    };
    if q.response_type.as_deref() != Some("code") {
        return Err(back(OAuthError::new("unsupported_response_type", "only response_type=code is offered")));
    }
    let challenge = match (q.code_challenge.as_deref(), q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if core::valid_challenge(c) => c.to_string(),
        (Some(_), Some("S256")) => return Err(back(OAuthError::new("invalid_request", "code_challenge must be 43 characters of base64url"))),
        (Some(_), _) => return Err(back(OAuthError::new("invalid_request", "code_challenge_method must be S256"))),
        (None, _) => {
            return Err(back(OAuthError::new(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            )));
        }
    };
    let scopes = match core::requested_scopes(q.scope.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let reason = core::scope_refusal(q.scope.as_deref().unwrap_or_default());
            s.audit(
                org,
                reason,
                peer,
                format!(
                    "client {:?} asked for {:?}: refused",
                    client.client_name,
                    q.scope.as_deref().unwrap_or_default()
                ),
            )
            .await;
            return Err(back(e));
        }
    };
    if let Err(e) = core::check_resource(q.resource.as_deref(), &s.config.resource) {
        s.audit(
            org,
            "oauth.resource_refused",
            peer,
            format!("client {:?}: {}", client.client_name, e.description),
        )
        .await;
        return Err(back(e));
    }
    Ok(Checked {
        client,
        redirect_uri,
        challenge,
        scopes,
    })
}

fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match reqwest::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            no_store(Redirect::to(u.as_str()).into_response())
        }
        Err(_) => error_page("the client's redirect URI is not a URL"),
    }
}

pub(crate) fn error_page(message: &str) -> Response {
    let mut r = spend_pages::page(
        "Sign-in refused",
        None,
        None,
        html! {
            p role="alert" { (message) }
            p { "Nothing was granted. Return to the application that sent you here." }
        },
    );
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

fn failed(s: &Server, f: Failed, state: Option<&str>) -> Response {
    match f {
        Failed::Page(m) => error_page(&m),
        Failed::Back { redirect_uri, error } => {
            let mut p = vec![
                ("error", error.error),
                ("error_description", error.description.as_str()),
                ("iss", s.issuer.as_str()),
            ];
            if let Some(st) = state {
                p.push(("state", st));
            }
            back_to(&redirect_uri, &p)
        }
    }
}

pub(crate) async fn authorize_page(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    Query(q): Query<AuthorizeRequest>,
) -> Response {
    // Attempts are limited per address, and nothing is checked, fetched
    // or redirected for a visitor without a session: they sign in first.
    // So an anonymous caller can neither make this server fetch client
    // metadata documents nor bounce a browser to a redirect URI that
    // anyone registered.
    if let Err(refused) = s.humans.throttle(peer, "authorization").await {
        return refused.into_response();
    }
    let Some(session) = s.humans.human(&headers).await else {
        return spend_pages::sign_in_first(&uri.to_string());
    };
    let checked = match check(&s, &q, peer, &session.org).await {
        Ok(c) => c,
        Err(f) => return failed(&s, f, q.state.as_deref()),
    };
    let host = reqwest::Url::parse(&checked.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let name = if checked.client.client_name.is_empty() {
        "An unnamed client"
    } else {
        checked.client.client_name.as_str()
    };
    let form_action = form_action(&checked.redirect_uri);
    let hidden = |k: &'static str, v: Option<&str>| html! { @if let Some(v) = v { input type="hidden" name=(k) value=(v); } };
    let mut r = spend_pages::page(
        "Connect an MCP client",
        Some(&session.csrf),
        Some(&session.label),
        html! {
            p { strong { (name) } " asks to act for " strong { (session.org) } " as an agent, on your authority." }
            dl {
                dt { "Client" }
                dd {
                    @if checked.client.client_id.starts_with(core::DYNAMIC_PREFIX) {
                        "registered itself: its name is its own claim"
                    } @else {
                        "described at " code { (checked.client.client_id) }
                    }
                }
                dt { "Returns to" } dd { code { (host) } }
                dt { "Gateway" } dd { code { (s.config.resource) } }
            }
            form method="post" action="/oauth/authorize" {
                input type="hidden" name="csrf" value=(session.csrf);
                (hidden("response_type", q.response_type.as_deref()))
                (hidden("client_id", q.client_id.as_deref()))
                (hidden("redirect_uri", q.redirect_uri.as_deref()))
                (hidden("code_challenge", q.code_challenge.as_deref()))
                (hidden("code_challenge_method", q.code_challenge_method.as_deref()))
                (hidden("scope", q.scope.as_deref()))
                (hidden("state", q.state.as_deref()))
                (hidden("resource", q.resource.as_deref()))
                fieldset {
                    legend { "It may" }
                    @for (scope, what) in SCOPES {
                        @if checked.scopes.contains(*scope) {
                            @let field = if *scope == "mcp.read" { "grant_read" } else { "grant_draft" };
                            label { input type="checkbox" name=(field) value="on" checked; " " (what) " (" code { (scope) } ")" }
                            br;
                        }
                    }
                }
                p { "It can never approve or push a change: only a signed-in human does, with a passkey. You can revoke it at any time under Clients." }
                button type="submit" name="decision" value="allow" { "Allow" }
                " "
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    );
    // The answer redirects to the client: the page's form may go there.
    if let Ok(v) = HeaderValue::from_str(&spend_pages::CSP.replace("form-action 'self'", &format!("form-action 'self' {form_action}"))) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The CSP source of a redirect URI: its origin, or its scheme for a
/// native app's private-use scheme.
fn form_action(redirect_uri: &str) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Answer {
    csrf: String,
    decision: String,
    #[serde(default)]
    grant_read: Option<String>,
    #[serde(default)]
    grant_draft: Option<String>,
    #[serde(flatten)]
    request: AuthorizeRequest,
}

pub(crate) async fn authorize_answer(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(a): Form<Answer>,
) -> Response {
    let session = match s.humans.checked(&headers, peer, Some(&a.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let q = a.request;
    let checked = match check(&s, &q, peer, &session.org).await {
        Ok(c) => c,
        Err(f) => return failed(&s, f, q.state.as_deref()),
    };
    let state = q.state.as_deref();
    let mut params = vec![("iss", s.issuer.clone())];
    if let Some(st) = state {
        params.push(("state", st.to_string()));
    }
    let mut chosen = BTreeSet::new();
    if a.grant_read.is_some() {
        chosen.insert("mcp.read".to_string());
    }
    if a.grant_draft.is_some() {
        chosen.insert("mcp.draft".to_string());
    }
    let chosen: BTreeSet<String> = chosen.intersection(&checked.scopes).cloned().collect();
    if a.decision != "allow" || chosen.is_empty() {
        tracing::info!(org = %session.org, by = %session.approver_id, client = %checked.client.client_name, "an MCP client was denied");
        params.push(("error", "access_denied".into()));
        let why = if a.decision != "allow" {
            "the human denied the request"
        } else {
            "no scope was granted"
        };
        params.push(("error_description", why.into()));
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return back_to(&checked.redirect_uri, &p);
    }
    let code = core::random_secret("src_");
    let grant_id = format!("gr_{}", spend_credentials::random_hex(12).expect("the operating system's random source"));
    let code_expires_at = (Utc::now() + s.config.lifetimes.code).to_rfc3339_opts(SecondsFormat::Secs, true);
    let granted = ClientGranted {
        grant_id: grant_id.clone(),
        client_id: checked.client.client_id.clone(),
        client_name: checked.client.client_name.clone(),
        approver_id: session.approver_id.clone(),
        scopes: chosen.iter().cloned().collect(),
        resource: s.config.resource.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.challenge.clone(),
        code_sha256: core::sha256_hex(&code),
        code_expires_at,
    };
    let recorded = s
        .recorder
        .event(
            &session.org,
            Actor::human(&session.approver_id),
            "client",
            &grant_id,
            EventData::ClientGranted(granted),
        )
        .expect_seq(0)
        .record()
        .await;
    match recorded {
        Ok(r) => s.wait_for(r.seq).await,
        Err(e) => {
            tracing::error!(error = %e, "could not record an MCP client grant");
            return error_page("the grant could not be recorded: try again in a moment");
        }
    }
    tracing::info!(org = %session.org, by = %session.approver_id, grant_id, client = %checked.client.client_name, scopes = ?chosen, "an MCP client was granted access");
    params.push(("code", code));
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    back_to(&checked.redirect_uri, &p)
}
