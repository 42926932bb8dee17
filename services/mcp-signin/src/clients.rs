//! Revocation: RFC 7009 for clients, and the Clients page where a human
//! sees the clients connected in their organisation and revokes one (its
//! grantor or an admin) or every one (an admin).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::SecondsFormat;
use maud::html;
use serde::Deserialize;

use crate::authorize::error_page;
use crate::core::{self, OAuthError};
use crate::token::bad;
use crate::{Server, TOKEN_REQUESTS_PER_MINUTE, error_json, grants, jwt, no_store};

#[derive(Deserialize)]
pub(crate) struct RevokeRequest {
    token: Option<String>,
    client_id: Option<String>,
    // `token_type_hint` is not read: the token's own shape says what it is.
}

/// RFC 7009: revokes the grant a refresh or access token belongs to. An
/// unknown token is answered 200 as the RFC asks (nothing to revoke).
pub(crate) async fn revoke(State(s): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(r): Form<RevokeRequest>) -> Response {
    if let Some(refused) = s
        .over_quota(&s.token_requests, peer, "oauth.rate_limited", "token requests", TOKEN_REQUESTS_PER_MINUTE)
        .await
    {
        return refused;
    }
    let Some(token) = r.token.as_deref().filter(|t| !t.is_empty()) else {
        return bad("invalid_request", "token is required");
    };
    let found = if token.starts_with("srt_") {
        match s.book.read().await.grants.by_refresh(&core::sha256_hex(token)) {
            Some(grants::Presented::Current(o, g) | grants::Presented::Spent(o, g)) => Some((o, g)),
            None => None,
        }
    } else {
        jwt::verify(&s.spki, token).and_then(|c| Some((c["org"].as_str()?.to_string(), c["grant_id"].as_str()?.to_string())))
    };
    let Some((org, grant_id)) = found else {
        return no_store(StatusCode::OK.into_response());
    };
    let owner = s
        .book
        .read()
        .await
        .grants
        .get(&org, &grant_id)
        .map(|g| (g.granted.client_id.clone(), g.revoked.is_some()));
    let Some((client_id, already)) = owner else {
        return no_store(StatusCode::OK.into_response());
    };
    if r.client_id.as_deref().is_some_and(|c| c != client_id) {
        return bad("invalid_client", "this token was issued to another client");
    }
    if !already && !s.revoke_recorded(&org, &grant_id, "revoked by the client").await {
        return error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &OAuthError::new("temporarily_unavailable", "the event log is unavailable: try again"),
        );
    }
    no_store(StatusCode::OK.into_response())
}

pub(crate) async fn clients_page(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let Some(session) = s.humans.human(&headers).await else {
        return spend_pages::sign_in_first("/clients");
    };
    let book = s.book.read().await;
    let grants = book.grants.of_org(&session.org);
    let admin = session.admin;
    spend_pages::page(
        "Connected clients",
        Some(&session.csrf),
        Some(&session.label),
        html! {
            p { "MCP clients a human of " strong { (session.org) } " connected with their sign-in. Each acts as an agent: it reads and drafts, never approves. Revoking one stops it at every gateway within a second." }
            @if grants.is_empty() {
                p { "No client is connected." }
            } @else {
                table {
                    thead { tr { th { "Client" } th { "Granted by" } th { "Scopes" } th { "Since" } th { "Last token" } th { "Action" } } }
                    tbody {
                        @for g in &grants {
                            tr {
                                td { (if g.granted.client_name.is_empty() { "(unnamed)" } else { g.granted.client_name.as_str() }) }
                                td { (g.granted.approver_id) }
                                td { (g.granted.scopes.join(", ")) }
                                td { (g.granted_at.to_rfc3339_opts(SecondsFormat::Secs, true)) }
                                td { (g.refreshed_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "not redeemed".into())) }
                                td {
                                    @if admin || g.granted.approver_id == session.approver_id {
                                        form.inline method="post" action={"/clients/" (g.granted.grant_id) "/revoke"} {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" aria-label={"Revoke " (g.granted.client_name)} { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if admin {
                    form method="post" action="/clients/revoke-all" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Revoke every client" }
                    }
                }
            }
        },
    )
}

pub(crate) async fn clients_revoke(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(grant_id): Path<String>,
    Form(f): Form<spend_pages::CsrfForm>,
) -> Response {
    let session = match s.humans.checked(&headers, peer, Some(&f.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let grant = s.book.read().await.grants.get(&session.org, &grant_id).cloned();
    let Some(g) = grant.filter(|g| g.revoked.is_none()) else {
        return Redirect::to("/clients").into_response();
    };
    if !session.admin && g.granted.approver_id != session.approver_id {
        s.audit(
            &session.org,
            "oauth.revoke_refused",
            peer,
            format!("{} tried to revoke {}'s grant {grant_id}", session.approver_id, g.granted.approver_id),
        )
        .await;
        return error_page("only an admin or the human who granted it can revoke this client");
    }
    s.revoke_recorded(
        &session.org,
        &grant_id,
        &format!("revoked by {} on the connected clients page", session.approver_id),
    )
    .await;
    Redirect::to("/clients").into_response()
}

pub(crate) async fn clients_revoke_all(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<spend_pages::CsrfForm>,
) -> Response {
    let session = match s.humans.checked(&headers, peer, Some(&f.csrf)).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    if !session.admin {
        return error_page("only an admin can revoke every client");
    }
    let ids: Vec<String> = s
        .book
        .read()
        .await
        .grants
        .of_org(&session.org)
        .iter()
        .map(|g| g.granted.grant_id.clone())
        .collect();
    for id in ids {
        s.revoke_recorded(&session.org, &id, &format!("every client revoked by {}", session.approver_id))
            .await;
    }
    Redirect::to("/clients").into_response()
}
