//! The Accounts page: the organisation's connected ad and card accounts,
//! their scopes and health, for every approver; for an admin, "Connect
//! account" (read access only), "Disconnect", and "Grant write access"
//! where an approved change waits for it — each after a page that says
//! what the platform will be asked for and why.
//!
//! The approval service holds no token: it asks the executor (which alone
//! does) for the platform's consent page, and hands it the platform's
//! callback. The callback comes back from the platform's site; its `state` — random,
//! single use, expiring, made for an admin's request — is honoured only in
//! the browser that began it: beginning sets a binding cookie
//! (`SameSite=Lax`, so the platform's redirect carries it; HttpOnly; for
//! the callback path only) holding the state's hash. A consent link sent
//! to someone else (an admin of one organisation luring the manager of
//! another's account) comes back without it: the executor burns the
//! authorization and audits the refusal under the organisation that
//! began it, and nothing is connected.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use spend_platform::{AccountHealth, Connect};

use crate::web::app::{Answer, App, CsrfForm, Refusal, need_admin, need_session, page, who};

fn connector(app: &App) -> Answer<&Arc<dyn Connect>> {
    app.accounts
        .as_ref()
        .ok_or_else(|| Refusal::unavailable("accounts are not managed from this approval service"))
}

fn refused(e: spend_platform::ConnectError) -> Refusal {
    match e {
        spend_platform::ConnectError::Invalid(m) => Refusal::bad_input(m),
        spend_platform::ConnectError::Platform { .. } => Refusal::upstream(e.to_string()),
        spend_platform::ConnectError::Unavailable(m) => Refusal::unavailable(m),
    }
}

fn callback_url(app: &App) -> String {
    format!("{}/accounts/callback", app.origin())
}

fn account_row(a: &AccountHealth) -> maud::Markup {
    html! {
        td { code { (a.account_id) } }
        td { (a.platform) }
        td { (a.status) }
        td { (a.scopes.join(", ")) }
        td { (a.consent_expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()) }
        td { (a.problem.clone().unwrap_or_default()) }
    }
}

/// `GET /accounts`
pub async fn accounts_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/accounts");
    };
    let admin = s.role == spend_draft::approvers::Role::Admin;
    let listed = match &app.accounts {
        Some(c) => c.list(&s.org).await.map_err(|e| e.to_string()),
        None => Err("accounts are connected with `spend account connect` on this deployment".to_string()),
    };
    let consents = app.book.read().await.consents(&s.org);
    page(
        "Accounts",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            @match &listed {
                Err(e) => p role="status" { (e) },
                Ok(list) if list.is_empty() => p role="status" { "No account is connected for " (s.org) " yet." },
                Ok(list) => table {
                    caption { "Connected accounts of " (s.org) }
                    thead { tr {
                        th scope="col" { "Account" } th scope="col" { "Platform" } th scope="col" { "Health" }
                        th scope="col" { "Scopes" } th scope="col" { "Consent until" } th scope="col" { "Problem" }
                        @if admin { th scope="col" { "Action" } }
                    } }
                    tbody {
                        @for a in list {
                            tr {
                                (account_row(a))
                                @if admin {
                                    td {
                                        @if a.status != "disconnected" {
                                            form method="post" action={ "/accounts/" (a.account_id) "/disconnect" } {
                                                input type="hidden" name="csrf" value=(s.csrf);
                                                button.danger type="submit" aria-label={ "Disconnect " (a.account_id) } { "Disconnect" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
            h2 { "Write access asked for" }
            @if consents.is_empty() {
                p { "No approved change waits for write access." }
            } @else {
                p { "Each grant is for one approved change: only that change is pushed when you consent." }
                ul {
                    @for (account, scope, drafts) in &consents {
                        @for draft in drafts {
                            li {
                                code { (account) } ": " code { (scope) } " for " code { (draft) }
                                @if admin {
                                    form.inline method="post" action={ "/accounts/" (account) "/write" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="draft_id" value=(draft);
                                        " "
                                        button.primary type="submit" aria-label={ "Grant write access to " (account) " for " (draft) } { "Grant write access" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if admin && app.accounts.is_some() {
                h2 { "Connect an account" }
                p { "The platform asks you to sign in there and choose the account. SpendSignoff asks for read access only; write access is asked for when an approved change first needs it." }
                form method="post" action="/accounts/connect" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button.primary type="submit" { "Connect account" }
                }
            }
        },
    )
}

/// The page before the platform: what will be asked for, and the link;
/// it binds the authorization to this browser (see the module docs).
fn continue_page(s: &crate::web::app::Session, title: &str, body: maud::Markup, url: &str) -> Answer<Response> {
    let state = state_of(url).ok_or_else(|| Refusal::upstream("the executor's consent link names no state"))?;
    let mut r = page(
        title,
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            (body)
            p { a.button href=(url) rel="noreferrer" { "Continue to the platform" } }
            p { a href="/accounts" { "Back to the accounts" } }
        },
    );
    let (name, value) = binding(state);
    let cookie = format!("{name}={value}; Path=/accounts/callback; Max-Age={BINDING_SECS}; HttpOnly; SameSite=Lax");
    r.headers_mut().append(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_str(&cookie).map_err(|_| Refusal::internal("a binding cookie that cannot be sent"))?,
    );
    Ok(r)
}

/// How long a binding cookie lasts: longer than any authorization.
const BINDING_SECS: u64 = 1_800;

/// The `state` of a consent link (`…?…&state=…`).
fn state_of(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "state")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The binding cookie of `state`: its name (one per authorization, so two
/// at once do not collide) and value (the state's hash, never the state).
fn binding(state: &str) -> (String, String) {
    let h = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(state.as_bytes()));
    (format!("spend_connect_{}", &h[..16]), h)
}

/// Whether the request carries the binding cookie of `state`.
fn bound(headers: &HeaderMap, state: &str) -> bool {
    let (name, value) = binding(state);
    crate::web::app::cookie(headers, &name).is_some_and(|v| crate::web::app::subtle_eq(&v, &value))
}

/// `POST /accounts/connect`: read access, an admin.
pub async fn connect(State(app): State<Arc<App>>, headers: HeaderMap, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(f): Form<CsrfForm>) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let begun = connector(&app)?
        .begin(
            &s.org,
            None,
            None,
            &callback_url(&app),
            &format!("connected by {} in the approval app", s.email),
        )
        .await
        .map_err(refused)?;
    continue_page(
        &s,
        "Connect an account",
        html! {
            p { "The platform will ask you to choose an account of " (s.org) " and to let SpendSignoff:" }
            ul { li { "see your ad accounts, campaigns and their performance" } li { "see your cards and their transactions" } }
            p { "Nothing can be changed with this access. The link works until " (begun.expires_at.format("%H:%M UTC")) "." }
        },
        &begun.authorize_url,
    )
}

#[derive(serde::Deserialize)]
pub struct WriteForm {
    csrf: String,
    draft_id: String,
}

/// `POST /accounts/{account}/write`: the write scope an approved change
/// waits for, an admin; the page says what would change.
pub async fn write(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(account_id): Path<String>,
    Form(f): Form<WriteForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let (scope, change) = {
        let book = app.book.read().await;
        let Some((_, scope, drafts)) = book.consents(&s.org).into_iter().find(|(a, _, _)| *a == account_id) else {
            return Err(Refusal::not_found("no approved change waits for write access to this account"));
        };
        if !drafts.contains(&f.draft_id) {
            return Err(Refusal::not_found("that draft does not wait for write access to this account"));
        }
        let change: Vec<String> = book
            .entry(&s.org, &f.draft_id)
            .map(|e| vec![spend_draft::display::describe(&e.draft.proposal().change, e.draft.account_id())])
            .unwrap_or_default();
        (scope, change)
    };
    let begun = connector(&app)?
        .begin(
            &s.org,
            Some(&account_id),
            Some(&f.draft_id),
            &callback_url(&app),
            &format!("write for draft {} granted by {} in the approval app", f.draft_id, s.email),
        )
        .await
        .map_err(refused)?;
    continue_page(
        &s,
        "Grant write access",
        html! {
            p { "The approved draft " code { (f.draft_id) } " changes " code { (account_id) } ":" }
            ul { @for c in &change { li { (c) } } }
            p { "To push it, SpendSignoff needs " code { (scope) } " on " code { (account_id) } ". The platform will ask you to consent; the read access it has stays. Nothing is pushed until you consent, and only what humans approved is ever pushed." }
        },
        &begun.authorize_url,
    )
}

/// `POST /accounts/{account}/disconnect`: an admin; revokes at the platform.
pub async fn disconnect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(account_id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    connector(&app)?
        .disconnect(&s.org, &account_id, &format!("{} in the approval app", s.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to("/accounts").into_response())
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /accounts/callback`: the platform sends the admin back; the
/// executor completes the authorization `state` names (once).
pub async fn callback(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let Some(connect) = app.accounts.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "accounts are not managed from this approval service").into_response();
    };
    let Some(state) = q.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 200) else {
        return page(
            "Not connected",
            None,
            None,
            html! { p { "The platform's answer has no state: start again from the Accounts page." } },
        );
    };
    if !bound(&headers, state) {
        let refused = connect
            .abandon(state, "the callback carried no binding cookie of the browser that began it")
            .await;
        if let Err(e) = refused {
            tracing::warn!(error = %e, "could not abandon an unbound connection");
        }
        return page(
            "Not connected",
            None,
            None,
            html! {
                p role="status" { "Not connected: this consent was not started in this browser. Nothing was connected. If you manage this account, start again from the Accounts page of your own organisation, signed in." }
            },
        );
    }
    let outcome = match (&q.code, &q.error) {
        (Some(code), _) => Ok(code.as_str()),
        (None, Some(e)) => Err((e.as_str(), q.error_description.as_deref().unwrap_or_default())),
        (None, None) => Err(("invalid_request", "the platform sent neither a code nor an error")),
    };
    match connect.complete(state, outcome).await {
        Ok(a) => page(
            "Account connected",
            None,
            None,
            html! {
                p role="status" { "Connected " code { (a.account_id) } " (" (a.platform) "): " (a.scopes.join(", ")) "." }
                p { a href="/accounts" { "Back to the accounts" } }
            },
        ),
        Err(e) => page(
            "Not connected",
            None,
            None,
            html! {
                p role="status" { (e.to_string()) }
                p { a href="/accounts" { "Back to the accounts" } }
            },
        ),
    }
}
