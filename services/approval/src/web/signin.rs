//! Sign-in: an approver names their email, the passkey page asserts with
//! their passkey on its RP, and the app checks the assertion and opens a
//! session (the same answer whether or not the email is an approver's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use spend_draft::proof::signin_challenge;

use spend_pages::{CsrfForm, page};

use crate::passkeys::PostedAssertion;

use super::app::*;
use super::enroll::same_origin;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after sign-in: a path on this app only. Browsers drop tabs
/// and newlines from URLs (so `/%09/evil.example` would become
/// `//evil.example`, another site) and read `\` as `/`: any character
/// outside visible ASCII, or a backslash, refuses the path.
pub(crate) fn safe_next(next: Option<&str>) -> String {
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

pub(crate) fn signin_page(next: &str) -> Response {
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
        return Err(Refusal::bad_input("that is not an email address"));
    }
    let candidates: Vec<(String, String, String)> = {
        let book = app.book.read().await;
        book.by_email(&body.email)
            .into_iter()
            .filter_map(|(org, id)| {
                let a = book.approvers.approver(&org, &id)?;
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
        return Err(Refusal::bad_input("this sign-in expired: start again"));
    };
    let Some((org, approver_id, _)) = ceremony.candidates.iter().find(|c| c.2 == body.assertion.credential_id).cloned() else {
        return Err(Refusal::sign_in_first("that passkey is not one of this approver's"));
    };
    let (key, rp, role, last, email) = {
        let book = app.book.read().await;
        let a = book
            .approvers
            .approver(&org, &approver_id)
            .filter(|a| a.removed_at.is_none())
            .ok_or_else(|| Refusal::sign_in_first("that approver is no longer trusted"))?;
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
            return Err(Refusal::sign_in_first(format!("sign-in refused: {e}")));
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
