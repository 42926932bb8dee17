//! The token endpoint: an authorization code redeemed once, refresh
//! tokens rotated with reuse detection, and access tokens signed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ClientTokensIssued, EventData};
use spend_eventlog::LogError;

use crate::core::{self, OAuthError};
use crate::{Server, TOKEN_REQUESTS_PER_MINUTE, error_json, grants, jwt, no_store};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

pub(crate) fn bad(error: &'static str, description: impl Into<String>) -> Response {
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    error_json(status, &OAuthError::new(error, description))
}

pub(crate) async fn token(State(s): State<Arc<Server>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(t): Form<TokenRequest>) -> Response {
    if let Some(refused) = s
        .over_quota(&s.token_requests, peer, "oauth.rate_limited", "token requests", TOKEN_REQUESTS_PER_MINUTE)
        .await
    {
        return refused;
    }
    let Some(client_id) = t.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return bad("invalid_client", "client_id is required (clients are public and prove themselves with PKCE)");
    };
    match t.grant_type.as_deref() {
        Some("authorization_code") => redeem(&s, peer, client_id, &t).await,
        Some("refresh_token") => refresh(&s, peer, client_id, &t).await,
        Some(other) => bad(
            "unsupported_grant_type",
            format!("grant_type {other:?} is not offered: authorization_code or refresh_token"),
        ),
        None => bad("invalid_request", "grant_type is required"),
    }
}

async fn redeem(s: &Server, peer: SocketAddr, client_id: &str, t: &TokenRequest) -> Response {
    let (Some(code), Some(verifier)) = (t.code.as_deref(), t.code_verifier.as_deref()) else {
        return bad("invalid_request", "code and code_verifier are required");
    };
    let sha = core::sha256_hex(code);
    let mut grant = s.book.read().await.grants.by_code(&sha).cloned();
    if grant.is_none() {
        s.catch_up().await;
        grant = s.book.read().await.grants.by_code(&sha).cloned();
    }
    let Some(g) = grant else {
        s.audit("unknown", "oauth.code_refused", peer, "an unknown authorization code was presented".into())
            .await;
        return bad("invalid_grant", "unknown authorization code");
    };
    let org = g.org.clone();
    if g.granted.client_id != client_id {
        s.audit(
            &org,
            "oauth.code_refused",
            peer,
            format!("grant {}'s code was presented by another client", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "this code was issued to another client");
    }
    if g.revoked.is_some() {
        return bad("invalid_grant", "this grant was revoked");
    }
    if g.generation > 0 {
        s.revoke_recorded(&org, &g.granted.grant_id, "its authorization code was presented a second time")
            .await;
        s.audit(
            &org,
            "oauth.code_reused",
            peer,
            format!("grant {}'s authorization code was used twice: the grant is revoked", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "this code was used already; the tokens issued for it are revoked");
    }
    if g.code_expired(Utc::now()) {
        return bad("invalid_grant", "this code expired: authorize again");
    }
    if t.redirect_uri.as_deref() != Some(g.granted.redirect_uri.as_str()) {
        s.audit(
            &org,
            "oauth.code_refused",
            peer,
            format!("grant {}'s code was presented with another redirect URI", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "redirect_uri does not match the authorization request's");
    }
    if !core::verifier_matches(verifier, &g.granted.code_challenge) {
        s.audit(
            &org,
            "oauth.pkce_refused",
            peer,
            format!("grant {}'s code was presented with a code_verifier that does not match", g.granted.grant_id),
        )
        .await;
        return bad("invalid_grant", "the code_verifier does not match the code_challenge");
    }
    if let Err(e) = core::check_resource(t.resource.as_deref(), &g.granted.resource) {
        s.audit(&org, "oauth.resource_refused", peer, format!("grant {}: {}", g.granted.grant_id, e.description))
            .await;
        return error_json(StatusCode::BAD_REQUEST, &e);
    }
    let scopes: BTreeSet<String> = g.granted.scopes.iter().cloned().collect();
    issue(s, &g, 1, &scopes).await
}

async fn refresh(s: &Server, peer: SocketAddr, client_id: &str, t: &TokenRequest) -> Response {
    let Some(presented) = t.refresh_token.as_deref() else {
        return bad("invalid_request", "refresh_token is required");
    };
    let sha = core::sha256_hex(presented);
    let what = s.book.read().await.grants.by_refresh(&sha);
    let (org, grant_id, spent) = match what {
        Some(grants::Presented::Current(o, g)) => (o, g, false),
        Some(grants::Presented::Spent(o, g)) => (o, g, true),
        None => {
            s.audit("unknown", "oauth.refresh_refused", peer, "an unknown refresh token was presented".into())
                .await;
            return bad("invalid_grant", "unknown refresh token");
        }
    };
    let Some(g) = s.book.read().await.grants.get(&org, &grant_id).cloned() else {
        return bad("invalid_grant", "unknown refresh token");
    };
    if g.granted.client_id != client_id {
        s.audit(
            &org,
            "oauth.refresh_refused",
            peer,
            format!("grant {grant_id}'s refresh token was presented by another client"),
        )
        .await;
        return bad("invalid_grant", "this refresh token was issued to another client");
    }
    if g.revoked.is_some() {
        return bad("invalid_grant", "this grant was revoked");
    }
    // A grant lives no longer than its grantor's place among the approvers.
    let grantor_stands = s.humans.stands(&org, &g.granted.approver_id).await;
    if !grantor_stands {
        s.revoke_recorded(&org, &grant_id, "the approver who granted it is no longer an approver").await;
        s.audit(
            &org,
            "oauth.grantor_removed",
            peer,
            format!(
                "grant {grant_id}'s approver {} is no longer an approver: refreshed no more, revoked",
                g.granted.approver_id
            ),
        )
        .await;
        return bad("invalid_grant", "the approver who granted this is no longer an approver; the grant is revoked");
    }
    if spent {
        s.revoke_recorded(&org, &grant_id, "a rotated refresh token was presented again").await;
        s.audit(
            &org,
            "oauth.refresh_reused",
            peer,
            format!("grant {grant_id}'s spent refresh token was presented again: the grant is revoked"),
        )
        .await;
        return bad("invalid_grant", "this refresh token was used already; the grant is revoked");
    }
    if g.refresh_expires_at.is_none_or(|t| Utc::now() >= t) {
        return bad("invalid_grant", "this refresh token expired: authorize again");
    }
    let granted: BTreeSet<String> = g.granted.scopes.iter().cloned().collect();
    let scopes = match t.scope.as_deref() {
        None => granted,
        Some(asked) => match core::requested_scopes(Some(asked)) {
            Ok(a) if a.is_subset(&granted) => a,
            Ok(_) => return bad("invalid_scope", "a refresh can only narrow the scopes granted"),
            Err(e) => {
                let reason = core::scope_refusal(asked);
                s.audit(&org, reason, peer, format!("grant {grant_id}'s client asked for {asked:?} on refresh: refused"))
                    .await;
                return error_json(StatusCode::BAD_REQUEST, &e);
            }
        },
    };
    if let Err(e) = core::check_resource(t.resource.as_deref(), &g.granted.resource) {
        s.audit(&org, "oauth.resource_refused", peer, format!("grant {grant_id}: {}", e.description))
            .await;
        return error_json(StatusCode::BAD_REQUEST, &e);
    }
    issue(s, &g, g.generation + 1, &scopes).await
}

/// Signs an access token and records the next refresh token's hash,
/// expecting the grant's last sequence: if another request spent the code
/// or the refresh token first, this one gets nothing.
async fn issue(s: &Server, g: &grants::Grant, generation: u32, scopes: &BTreeSet<String>) -> Response {
    let now = Utc::now();
    let access_expires = now + s.config.lifetimes.access;
    let refresh_expires = now + s.config.lifetimes.refresh;
    let scope = scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let claims = jwt::AccessClaims {
        iss: s.issuer.clone(),
        aud: jwt::Audience::One(g.granted.resource.clone()),
        sub: g.granted.approver_id.clone(),
        client_id: g.granted.client_id.clone(),
        org: g.org.clone(),
        scope: scope.clone(),
        grant_id: Some(g.granted.grant_id.clone()),
        iat: Some(now.timestamp()),
        nbf: Some(now.timestamp()),
        exp: Some(access_expires.timestamp()),
        jti: Some(spend_credentials::random_hex(12).expect("the operating system's random source")),
    };
    let access = match jwt::sign(s.config.signer.as_ref(), &s.kid, &claims).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not sign an access token");
            return error_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &OAuthError::new("temporarily_unavailable", "the token signing key is unavailable: try again"),
            );
        }
    };
    let refresh = core::random_secret("srt_");
    let issued = ClientTokensIssued {
        grant_id: g.granted.grant_id.clone(),
        generation,
        refresh_sha256: core::sha256_hex(&refresh),
        refresh_expires_at: refresh_expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        access_expires_at: access_expires.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let recorded = s
        .recorder
        .event(
            &g.org,
            Actor::service("approval"),
            "client",
            &g.granted.grant_id,
            EventData::ClientTokensIssued(issued),
        )
        .expect_seq(g.last_seq)
        .record()
        .await;
    match recorded {
        Ok(r) => s.wait_for(r.seq).await,
        Err(LogError::WrongLastSequence { .. }) => {
            return bad("invalid_grant", "this code or refresh token was just used by another request");
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record issued tokens");
            return error_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &OAuthError::new("temporarily_unavailable", "the event log is unavailable: try again"),
            );
        }
    }
    no_store(
        Json(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": s.config.lifetimes.access.as_secs(),
            "refresh_token": refresh,
            "scope": scope,
        }))
        .into_response(),
    )
}
