//! Enrollment: an invitation link opens the page; the passkey page creates
//! the passkey on its RP; the app records the enrollment (a first admin
//! waits for the operator's anchor, anyone else for an admin's
//! countersignature).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use maud::html;
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ApproverEnrolled, ApproverRegistered, Countersignature, EventData};
use spend_draft::proof::{create_challenge, fingerprint};
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use spend_pages::page;

use super::app::*;

pub async fn enroll_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let book = app.book.read().await;
    let Some(invite) = book.invite(&sha256_hex(&token)) else {
        return page(
            "Invitation not found",
            None,
            None,
            html! { p { "This enrollment link is not valid. Ask your operator for a new invitation." } },
        );
    };
    if !invite.usable(Utc::now()) {
        let why = if invite.used_by.is_some() { "was used already" } else { "expired" };
        return page(
            "Invitation no longer valid",
            None,
            None,
            html! { p { "This enrollment link " (why) ". Each link enrolls one passkey; ask your operator for a new invitation." } },
        );
    }
    let i = &invite.invite;
    page(
        "Create your passkey",
        None,
        None,
        html! {
            p { "You were invited to approve spend for " strong { (i.org) } " as " strong { (i.role) } " (" (i.email) ")." }
            p { "Your passkey must verify you (a PIN, fingerprint or face); a tap alone is not enough." }
            p { "Your passkey is created on the passkey page, the only page that ever uses it; you come back here when it is done." }
            button #create-passkey .primary type="button" data-token=(token) { "Continue to create your passkey" }
            p #enroll-status role="status" aria-live="polite" {}
        },
    )
}

pub async fn enroll_start(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "enrollment").await?;
    let hash = sha256_hex(&token);
    let invite = {
        let book = app.book.read().await;
        book.invite(&hash)
            .filter(|i| i.usable(Utc::now()))
            .ok_or_else(|| Refusal::not_found("this enrollment link is not valid any more"))?
            .invite
            .clone()
    };
    // The passkey page creates the passkey over the challenge it computes
    // from this app's origin and the nonce.
    let ceremony = random_token();
    let state = app
        .passkeys
        .start_registration(&invite.email, &create_challenge(app.origin(), &ceremony))
        .map_err(|e| Refusal::internal(e.to_string()))?;
    let mut regs = app.registrations.lock().await;
    regs.remove(&hash);
    regs.insert_new(hash, (state, ceremony.clone(), Instant::now()));
    let redirect = app.passkey_url(
        "/enroll",
        &[("nonce", &ceremony), ("email", &invite.email), ("org", &invite.org), ("role", &invite.role)],
    );
    Ok(Json(serde_json::json!({"ceremony": ceremony, "redirect": redirect})))
}

/// A passkey the passkey page created, as it gives it back (unpadded
/// base64url fields).
#[derive(Deserialize)]
pub struct EnrollFinish {
    ceremony: String,
    id: String,
    raw_id: String,
    attestation_object: String,
    client_data_json: String,
}

impl EnrollFinish {
    /// The same, in the shape webauthn-rs reads.
    fn registration(&self) -> Answer<RegisterPublicKeyCredential> {
        serde_json::from_value(serde_json::json!({
            "id": self.id,
            "rawId": self.raw_id,
            "type": "public-key",
            "response": {"attestationObject": self.attestation_object, "clientDataJSON": self.client_data_json},
            "extensions": {},
        }))
        .map_err(|e| Refusal::bad_input(format!("that is not a created passkey: {e}")))
    }
}

pub(crate) fn same_origin(app: &App, headers: &HeaderMap) -> Answer<()> {
    if headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(app.origin()) {
        Ok(())
    } else {
        Err(Refusal::forbidden("refused: the request came from another origin"))
    }
}

pub async fn enroll_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Json(body): Json<EnrollFinish>,
) -> Answer<Json<serde_json::Value>> {
    same_origin(&app, &headers)?;
    app.throttle(peer, "enrollment").await?;
    let hash = sha256_hex(&token);
    let Some((state, ceremony, started)) = app.registrations.lock().await.remove(&hash) else {
        return Err(Refusal::bad_input("start creating the passkey again"));
    };
    if !subtle_eq(&ceremony, &body.ceremony) {
        return Err(Refusal::bad_input("that passkey was created for another enrollment: start again"));
    }
    let response = body.registration()?;
    if !fresh(started) {
        return Err(Refusal::bad_input("this ceremony expired: start again"));
    }
    let (invite, bootstrapped) = {
        let book = app.book.read().await;
        let invite = book
            .invite(&hash)
            .filter(|i| i.usable(Utc::now()))
            .ok_or_else(|| Refusal::not_found("this enrollment link is not valid any more"))?
            .invite
            .clone();
        let b = book.approvers.bootstrapped(&invite.org);
        (invite, b)
    };
    let created = app
        .passkeys
        .finish_registration(&response, &state)
        .map_err(|e| Refusal::bad_input(e.to_string()))?;
    let approver_id = format!("u_{}", &random_token()[..16]);
    let fp = fingerprint(&created.public_key_der);
    let org = invite.org.clone();
    let registered = ApproverRegistered {
        invite_id: invite.invite_id.clone(),
        approver_id: approver_id.clone(),
        org: org.clone(),
        email: invite.email.clone(),
        role: invite.role.clone(),
        credential_id: created.credential_id.clone(),
        public_key_spki_b64: STANDARD.encode(&created.public_key_der),
        fingerprint: fp.clone(),
        rp_id: app.passkeys.rp.rp_id.clone(),
        origin: app.passkeys.rp.origin.clone(),
    };
    let actor = Actor::human(&invite.email);
    let rec = app
        .recorder
        .event(&org, actor.clone(), "approver", &approver_id, EventData::ApproverRegistered(registered.clone()))
        .expect_seq(0)
        .record()
        .await
        .map_err(log_refusal)?;
    let first_admin = invite.role == "admin" && !bootstrapped;
    let mut last = rec.seq;
    let message = if first_admin {
        let enrolled = enrolled_from(&registered, None);
        last = app
            .recorder
            .event(&org, actor, "approver", &approver_id, EventData::ApproverEnrolled(enrolled))
            .record()
            .await
            .map_err(log_refusal)?
            .seq;
        format!("Your passkey is enrolled as {org}'s first admin. It is trusted once your operator runs: spend approver anchor --org {org} --fingerprint {fp}")
    } else {
        "Your passkey is created. It is trusted once an admin of your organisation countersigns it on the Approvers page.".to_string()
    };
    app.wait_for(last).await;
    Ok(Json(serde_json::json!({"approver_id": approver_id, "fingerprint": fp, "message": message})))
}

pub(crate) fn enrolled_from(r: &ApproverRegistered, countersignature: Option<Countersignature>) -> ApproverEnrolled {
    ApproverEnrolled {
        approver_id: r.approver_id.clone(),
        org: r.org.clone(),
        role: r.role.clone(),
        credential_id: r.credential_id.clone(),
        public_key_spki_b64: r.public_key_spki_b64.clone(),
        rp_id: r.rp_id.clone(),
        origin: r.origin.clone(),
        countersignature,
        email: Some(r.email.clone()),
    }
}
