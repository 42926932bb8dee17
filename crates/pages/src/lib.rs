//! What every page a human opens on the approval app's origin shares, so
//! that the services serving pages there (the approval app, MCP sign-in)
//! agree without depending on each other:
//!
//! - [`security_headers`] and its [`CSP`]: no inline script or style, no
//!   framing, no referrer beyond the origin, nothing cached;
//! - [`page`]: the chrome (title, navigation, sign-out) around a body;
//! - [`SignedIn`]: the narrow view of "a human signed in with a passkey"
//!   that a service reaching humans through the app's sign-in needs — who
//!   this request's human is, a POST checked for its CSRF token and
//!   origin, attempts limited per address, and whether an approver still
//!   stands. The approval app implements it; MCP sign-in uses it.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

/// The Content-Security-Policy of every page (a page that sets its own,
/// as the consent page does for its form's target, keeps it).
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A human signed in with a passkey, as a page sees them.
#[derive(Debug, Clone)]
pub struct Human {
    pub org: String,
    pub approver_id: String,
    /// An admin of the organisation (else an approver).
    pub admin: bool,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    /// How the page names them ("ada@example.com (admin, acme)").
    pub label: String,
}

/// "A signed-in human", as the approval app knows them.
#[async_trait::async_trait]
pub trait SignedIn: Send + Sync + 'static {
    /// This request's human, if one is signed in (and still an approver).
    async fn human(&self, headers: &HeaderMap) -> Option<Human>;
    /// A POST's human, with its CSRF token (`csrf`, or the `x-csrf-token`
    /// header) and its origin checked; else the refusal to answer with
    /// (audited: a forged cross-site request is an attack).
    async fn checked(&self, headers: &HeaderMap, peer: SocketAddr, csrf: Option<&str>) -> Result<Human, Response>;
    /// Refuses (429, audited) an address over its attempts a minute.
    async fn throttle(&self, peer: SocketAddr, what: &'static str) -> Result<(), Response>;
    /// Whether `approver_id` is a trusted approver of `org` now (not
    /// removed), as the log says.
    async fn stands(&self, org: &str, approver_id: &str) -> bool;
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Sends a visitor without a session to sign in, then back to `next`.
pub fn sign_in_first(next: &str) -> Response {
    Redirect::to(&format!("/signin?next={}", url_escape(next))).into_response()
}

/// `s` percent-encoded for a query value (unreserved characters and `/`
/// kept).
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page: `body` under `title`, with the navigation and sign-out form
/// when someone (`who`) is signed in.
pub fn page(title: &str, csrf: Option<&str>, who: Option<&str>, body: Markup) -> Response {
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

/// [`page`] for a signed-in human.
pub fn page_for(title: &str, human: &Human, body: Markup) -> Response {
    page(title, Some(&human.csrf), Some(&human.label), body)
}

/// The security headers on `r` (its own CSP kept if it set one).
pub fn with_security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Middleware: [`with_security_headers`] on every answer.
pub async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    with_security_headers(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_value_is_escaped_and_a_path_kept() {
        assert_eq!(url_escape("/approvals/d_1?x=a b&c"), "/approvals/d_1%3Fx%3Da%20b%26c");
    }

    #[test]
    fn every_answer_gets_the_headers_and_a_page_keeps_its_own_csp() {
        let r = with_security_headers(page("T", None, None, html! { p { "x" } }));
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut own = page("T", None, None, html! {});
        own.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("form-action 'self' https://c.example"),
        );
        let r = with_security_headers(own);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], "form-action 'self' https://c.example");
    }
}
