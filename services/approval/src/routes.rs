//! The human approval routes and the gate in front of them.
//!
//! - `GET  /approvals/{draft_id}`          the approval page
//! - `POST /approvals/{draft_id}/approve`  step one: approve
//! - `POST /approvals/{draft_id}/push`     step two: push live
//!
//! Only a signed-in human passes the gate. A bearer credential of any
//! kind — an agent API key in particular — is refused with 403 and a
//! `spend.security.alert.v1` naming the key id (never the key) and the
//! address: agents never reach these routes, and a request that tries is
//! exactly the overreach the audit must show. Without a human session the
//! answer is 401; sessions come with passkey sign-in.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use spend_core::events::{EventData, SecurityAlert};
use spend_core::subject::{aggregate_subject, envelope_subject};
use spend_core::{Actor, Envelope};
use spend_eventlog::{Append, EventLog};

pub struct ApprovalState {
    pub log: Arc<dyn EventLog>,
    pub prefix: String,
}

/// `ssk_<key id>_<secret>` → the key id, the part that may be logged.
fn agent_key_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("ssk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

async fn human_only(State(state): State<Arc<ApprovalState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer {
        let key_id = agent_key_id(token);
        let detail = format!(
            "{} {}: an {} was presented on a human approval route; only a signed-in human approves or pushes",
            req.method(),
            req.uri().path(),
            if key_id.is_some() {
                "agent API key"
            } else {
                "unrecognised bearer credential"
            }
        );
        alert(&state, key_id, &peer.ip().to_string(), &detail).await;
        return (StatusCode::FORBIDDEN, "agents cannot approve or push; a signed-in human does").into_response();
    }
    // Human sessions come with passkey sign-in; nothing is signed in yet.
    let _ = next;
    (
        StatusCode::UNAUTHORIZED,
        "sign in with your passkey to approve (human sign-in is not available in this version)",
    )
        .into_response()
}

async fn alert(state: &ApprovalState, key_id: Option<&str>, address: &str, detail: &str) {
    // The key id names the org only through the key store; the alert goes
    // on the approval service's own security subject.
    let id = key_id.unwrap_or("anonymous");
    let Ok(subject) = aggregate_subject(&state.prefix, "unknown", "security", id) else {
        return;
    };
    let env = Envelope::new(
        "spendsignoff/approval",
        "unknown",
        Actor::service("approval"),
        envelope_subject("security", id),
        EventData::SecurityAlert(SecurityAlert {
            reason: "agent_on_human_route".into(),
            key_id: key_id.map(Into::into),
            address: Some(address.into()),
            detail: detail.into(),
        }),
    );
    tracing::warn!(key_id = id, address, "agent credential on a human approval route");
    if let Err(e) = state.log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await {
        tracing::error!(error = %e, "could not record a security alert");
    }
}

async fn unreachable_without_session() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

pub fn router(state: Arc<ApprovalState>) -> Router {
    Router::new()
        .route("/approvals/{draft_id}", get(unreachable_without_session))
        .route("/approvals/{draft_id}/approve", post(unreachable_without_session))
        .route("/approvals/{draft_id}/push", post(unreachable_without_session))
        .layer(axum::middleware::from_fn_with_state(state.clone(), human_only))
        .with_state(state)
}
