//! Approve in two steps, and reject: "Approve" arms (the server fixes the
//! approval id) and sends the person to the passkey page; what comes back
//! is checked with the verifier every consumer runs before the approval is
//! recorded. Reject records a reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ApprovalGranted, ApprovalProof, ApprovalRejected, EventData, RollbackApproved};

use crate::passkeys::PostedAssertion;
use spend_approvals::book::{Book, Target};

use super::app::*;

pub async fn arm(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    Ok(Json(arm_target(&app, &s, &draft_id).await?))
}

/// Arms an approval of `id` (a draft, a policy proposal, a rollback
/// request) by the signed-in approver: the approval id and the pinned
/// challenge their passkey signs, and where to post the assertion.
pub(crate) async fn arm_target(app: &App, s: &Session, id: &str) -> Answer<serde_json::Value> {
    let book = app.book.read().await;
    let t = book.target(&s.org, id).ok_or_else(|| Refusal::not_found("nothing to approve under that id"))?;
    let r = ready_to_approve(&t, s)?;
    if let Some(e) = book.entry(&s.org, id)
        && let Some(why) = spend_draft::display::inconsistency(e.draft.proposal())
    {
        drop(book);
        app.alert(&s.org, spend_draft::display::INCONSISTENT, None, why.clone()).await;
        return Err(Refusal::conflict("what this draft shows is not what it would push: refused"));
    }
    let approval_id = format!("apr_{}", uuid::Uuid::now_v7().simple());
    let credential_id = own_credential(&book, s)?;
    drop(book);
    // The passkey page reads the approved event itself, renders it and
    // computes the challenge from its bytes; it is told only which.
    let back = if t.kind == "rollback" {
        "/audit".to_string()
    } else {
        format!("/approvals/{id}")
    };
    let redirect = app.passkey_url(
        "/approve",
        &[
            ("org", &s.org),
            ("kind", t.kind),
            ("id", id),
            ("approval_id", &approval_id),
            ("policy_version", &r.policy_version),
            ("expires_at", &r.expires_at),
            ("credential", &credential_id),
            ("back", &back),
        ],
    );
    app.armed.lock().await.insert_new(
        approval_id.clone(),
        Armed {
            org: s.org.clone(),
            draft_id: id.to_string(),
            approver_id: s.approver_id.clone(),
            started: Instant::now(),
        },
    );
    Ok(serde_json::json!({
        "approval_id": approval_id,
        "redirect": redirect,
        "confirm": format!("/approvals/{id}/confirm"),
    }))
}

/// The signed-in approver's passkey credential, as the registry holds it.
pub(crate) fn own_credential(book: &Book, s: &Session) -> Answer<String> {
    book.approvers
        .approver(&s.org, &s.approver_id)
        .filter(|a| a.removed_at.is_none())
        .map(|a| a.credential_id.clone())
        .ok_or_else(|| Refusal::sign_in_first("you are no longer a trusted approver"))
}

pub(crate) fn ready_to_approve(t: &Target, s: &Session) -> Answer<spend_core::events::ApprovalRequested> {
    if !t.waiting {
        return Err(Refusal::conflict("it no longer waits for a human: nothing to approve"));
    }
    let r = t
        .request
        .clone()
        .ok_or_else(|| Refusal::conflict("the approval request is not open yet: reload in a moment"))?;
    let expired = DateTime::parse_from_rfc3339(&r.expires_at).map_or(true, |x| x.with_timezone(&Utc) <= Utc::now());
    if expired {
        return Err(Refusal::conflict("the approval expired"));
    }
    if r.approved_hash != t.approved_hash {
        return Err(Refusal::conflict("the approval request names other bytes than the log holds: refused"));
    }
    if t.approvers.contains(&s.approver_id) {
        return Err(Refusal::conflict("you approved this already: dual control needs a second, distinct approver"));
    }
    Ok(r)
}

#[derive(Deserialize)]
pub struct Confirm {
    approval_id: String,
    assertion: PostedAssertion,
}

pub async fn confirm(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
    Json(body): Json<Confirm>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    let armed = app.armed.lock().await.remove(&body.approval_id);
    let Some(armed) = armed.filter(|a| fresh(a.started) && a.org == s.org && a.draft_id == draft_id && a.approver_id == s.approver_id) else {
        return Err(Refusal::bad_input(
            "this approval was not armed here, or the dialog waited too long: press Approve again",
        ));
    };
    let book = app.book.read().await;
    let t = book
        .target(&s.org, &draft_id)
        .ok_or_else(|| Refusal::not_found("nothing to approve under that id"))?;
    let r = ready_to_approve(&t, &s)?;
    let a = body.assertion.unpadded();
    let proof = ApprovalProof {
        approval_id: body.approval_id.clone(),
        draft_id: draft_id.clone(),
        approved_hash: r.approved_hash.clone(),
        policy_version: r.policy_version.clone(),
        expires_at: r.expires_at.clone(),
        approver_id: armed.approver_id.clone(),
        credential_id: a.credential_id.clone(),
        authenticator_data: a.authenticator_data,
        client_data_json: a.client_data_json,
        signature: a.signature,
    };
    // The same verifier every consumer runs, on a copy of the registry
    // (the log's copy counts it when the event arrives).
    let mut registry = book.approvers.clone();
    if let Err(err) = registry.verify(&s.org, &proof, &t.approved_hash, Utc::now(), book.seq + 1) {
        drop(book);
        app.alert(
            &s.org,
            "approval.refused",
            Some(peer),
            format!("approval of draft {draft_id} by {} refused: {err}", s.approver_id),
        )
        .await;
        return Err(Refusal::sign_in_first(format!("your passkey's approval does not verify: {err}")));
    }
    let granted = ApprovalGranted {
        draft_id: draft_id.clone(),
        approval_id: body.approval_id.clone(),
        step: t.approvers.len() as u32 + 1,
        credential_id: proof.credential_id.clone(),
        approver_id: s.approver_id.clone(),
        approved_hash: r.approved_hash.clone(),
        proof,
    };
    let expected = t.approval_seq;
    let rollback = t.kind == "rollback";
    drop(book);
    // A rollback's approval is its own type: it can never count as the
    // approval of a draft, nor the reverse.
    let data = if rollback {
        EventData::RollbackApproved(RollbackApproved(granted))
    } else {
        EventData::ApprovalGranted(granted)
    };
    // Agents read approval subjects (get_audit_log): the approver appears
    // by their stable id, never by their e-mail address.
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.approver_id), "approval", &draft_id, data)
        .expect_seq(expected)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    let book = app.book.read().await;
    if rollback {
        return Ok(Json(serde_json::json!({
            "ok": true,
            "status": "approved",
            "message": "Rollback approved: the executor restores the recorded state now.",
        })));
    }
    let status = match book.entry(&s.org, &draft_id) {
        Some(e) => e.draft.status().as_str().to_string(),
        None if book.versions.is_approved(&s.org, &draft_id) => "approved".into(),
        None => "recorded".into(),
    };
    Ok(Json(
        serde_json::json!({"ok": true, "status": status, "message": format!("Approved: {status}.")}),
    ))
}

#[derive(Deserialize)]
pub struct RejectForm {
    csrf: String,
    reason: String,
}

pub async fn reject(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(draft_id): Path<String>,
    Form(f): Form<RejectForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    let reason = f.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(Refusal::bad_input(format!("a rejection needs a reason of 1 to {MAX_REASON} characters")));
    }
    let expected = {
        let book = app.book.read().await;
        let t = book
            .target(&s.org, &draft_id)
            .ok_or_else(|| Refusal::not_found("nothing to reject under that id"))?;
        if !t.waiting {
            return Err(Refusal::conflict("it no longer waits for a human: nothing to reject"));
        }
        t.approval_seq
    };
    let rejected = ApprovalRejected {
        draft_id: draft_id.clone(),
        approval_id: format!("rej_{}", uuid::Uuid::now_v7().simple()),
        approver_id: s.approver_id.clone(),
        reason: reason.to_string(),
    };
    let rec = app
        .recorder
        .event(
            &s.org,
            Actor::human(&s.approver_id),
            "approval",
            &draft_id,
            EventData::ApprovalRejected(rejected),
        )
        .expect_seq(expected)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Redirect::to(&format!("/approvals/{draft_id}")).into_response())
}
