//! The approvers page: invitations, countersignatures (an admin's passkey
//! vouches for a new approver, role in the signed challenge) and removal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ApproverRemoved, Countersignature, EventData};
use spend_draft::approvers::{Enrollment, Role};
use spend_draft::proof::fingerprint;

use spend_pages::{CsrfForm, page};

use crate::passkeys::PostedAssertion;

use super::app::*;
use super::approve::own_credential;
use super::enroll::enrolled_from;

pub async fn approvers_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/approvers");
    };
    let book = app.book.read().await;
    let reg = &book.approvers;
    let trusted = reg.approvers(&s.org);
    let pending: Vec<_> = book
        .registrations(&s.org)
        .into_iter()
        .filter(|r| reg.approver(&s.org, &r.approver_id).is_none())
        .collect();
    let admin = s.role == Role::Admin;
    let email_of = |id: &str| book.registered(&s.org, id).map(|r| r.email.clone()).unwrap_or_default();
    page(
        "Approvers",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p #approvers-status role="status" aria-live="polite" {}
            table {
                caption { "Trusted approvers of " (s.org) }
                thead { tr { th scope="col" { "Approver" } th scope="col" { "Role" } th scope="col" { "Key fingerprint" } th scope="col" { "Vouched for by" } th scope="col" { "State" } @if admin { th scope="col" { "Action" } } } }
                tbody {
                    @for a in &trusted {
                        tr {
                            td { (email_of(&a.approver_id)) " " code { (a.approver_id) } }
                            td { (a.role.as_str()) }
                            td { code { (fingerprint(&a.public_key_der)) } }
                            td { @match &a.vouched_by { spend_draft::approvers::Voucher::Anchor => { "the operator's anchor" } spend_draft::approvers::Voucher::Admin(x) => { "admin " code { (x) } } } }
                            td { @if a.removed_at.is_some() { "removed" } @else { "trusted" } }
                            @if admin {
                                td {
                                    @if a.removed_at.is_none() && a.approver_id != s.approver_id {
                                        form method="post" action={ "/approvers/" (a.approver_id) "/remove" } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            button.danger type="submit" aria-label={ "Remove " (a.approver_id) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Waiting for a countersignature" }
            @if pending.is_empty() { p { "No passkey waits." } } @else {
                table {
                    thead { tr { th scope="col" { "Invitee" } th scope="col" { "Role" } th scope="col" { "Key fingerprint" } @if admin { th scope="col" { "Action" } } } }
                    tbody {
                        @for r in &pending {
                            tr {
                                td { (r.email) " " code { (r.approver_id) } }
                                td { (r.role) }
                                td { code { (r.fingerprint) } }
                                @if admin {
                                    td {
                                        button.primary type="button" data-countersign="1"
                                            data-start={ "/approvers/" (r.approver_id) "/countersign/start" }
                                            data-finish={ "/approvers/" (r.approver_id) "/countersign/finish" }
                                            aria-label={ "Review " (r.email) " to countersign" } { "Review and countersign" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if admin {
                h2 { "Invite an approver" }
                form method="post" action="/approvers/invite" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label for="invite-email" { "Email" }
                    input #invite-email type="email" name="email" required maxlength="320";
                    label for="invite-role" { "Role" }
                    select #invite-role name="role" { option value="approver" selected { "approver" } option value="admin" { "admin" } }
                    p { button.primary type="submit" { "Invite" } }
                }
            } @else {
                p { "Only admins invite, countersign and remove approvers." }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

/// How long an invitation made in the app works.
pub(crate) const INVITE_HOURS: i64 = 72;

pub async fn invite(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<InviteForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    let email = f.email.trim();
    if email.len() > 320 || !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(Refusal::bad_input("that is not an email address"));
    }
    if Role::parse(&f.role).is_none() {
        return Err(Refusal::bad_input("the role is approver or admin"));
    }
    let token = random_token();
    let invite_id = format!("inv_{}", &random_token()[..16]);
    let expires = Utc::now() + chrono::Duration::hours(INVITE_HOURS);
    let invited = spend_core::events::ApproverInvited {
        invite_id: invite_id.clone(),
        org: s.org.clone(),
        email: email.to_string(),
        role: f.role.clone(),
        token_sha256: sha256_hex(&token),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &invite_id, EventData::ApproverInvited(invited))
        .expect_seq(0)
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    let link = format!("{}/enroll/{token}", app.origin());
    Ok(page(
        "Invitation created",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p { "Send this link to " (email) ". It works once, for " (INVITE_HOURS) " hours, and is shown only now:" }
            p { code #invite-link { (link) } }
            p { "Once they create their passkey, countersign it on the " a href="/approvers" { "Approvers" } " page." }
        },
    ))
}

pub async fn countersign_start(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    need_admin(&s)?;
    let book = app.book.read().await;
    if book.approvers.approver(&s.org, &approver_id).is_some() {
        return Err(Refusal::conflict("that approver is enrolled already"));
    }
    let target = book
        .registered(&s.org, &approver_id)
        .cloned()
        .ok_or_else(|| Refusal::not_found("no such passkey waits for a countersignature"))?;
    let credential_id = own_credential(&book, &s)?;
    drop(book);
    let ceremony = random_token();
    // The passkey page reads the registration from the log, shows who the
    // admin vouches for and computes the enrollment challenge itself.
    let redirect = app.passkey_url(
        "/countersign",
        &[
            ("org", &s.org),
            ("approver", &approver_id),
            ("credential", &credential_id),
            ("ceremony", &ceremony),
            ("back", "/approvers"),
        ],
    );
    app.countersigns.lock().await.insert_new(
        ceremony.clone(),
        Countersigning {
            org: s.org.clone(),
            admin_id: s.approver_id.clone(),
            target,
            started: Instant::now(),
        },
    );
    Ok(Json(serde_json::json!({"ceremony": ceremony, "redirect": redirect})))
}

#[derive(Deserialize)]
pub struct CountersignFinish {
    ceremony: String,
    assertion: PostedAssertion,
}

pub async fn countersign_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
    Json(body): Json<CountersignFinish>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    need_admin(&s)?;
    let c = app.countersigns.lock().await.remove(&body.ceremony);
    let Some(c) = c.filter(|c| fresh(c.started) && c.org == s.org && c.admin_id == s.approver_id && c.target.approver_id == approver_id) else {
        return Err(Refusal::bad_input("this countersignature was not started here, or it waited too long"));
    };
    // The registry recomputes the enrollment challenge from the
    // enrollment itself: what the admin signed is what is recorded.
    let a = body.assertion.unpadded();
    let cs = Countersignature {
        approver_id: s.approver_id.clone(),
        credential_id: a.credential_id.clone(),
        authenticator_data: a.authenticator_data,
        client_data_json: a.client_data_json,
        signature: a.signature,
    };
    let enrolled = enrolled_from(&c.target, Some(cs));
    // Checked as every reader will check it, on a copy of the registry.
    {
        let book = app.book.read().await;
        let mut registry = book.approvers.clone();
        let checked = Enrollment::from_event(&enrolled).and_then(|e| registry.enroll(e));
        if let Err(err) = checked {
            drop(book);
            app.alert(
                &s.org,
                "countersignature.refused",
                Some(peer),
                format!("{}'s countersignature of {approver_id} refused: {err}", s.approver_id),
            )
            .await;
            return Err(Refusal::sign_in_first(format!("the countersignature does not verify: {err}")));
        }
    }
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &approver_id, EventData::ApproverEnrolled(enrolled))
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Json(
        serde_json::json!({"ok": true, "message": format!("{} is a trusted {} now.", c.target.email, c.target.role)}),
    ))
}

pub async fn remove(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(approver_id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Answer<Response> {
    let s = app.checked(&headers, peer, Some(&f.csrf)).await?;
    need_admin(&s)?;
    if approver_id == s.approver_id {
        return Err(Refusal::bad_input("an admin cannot remove themselves: ask another admin"));
    }
    let known = app.book.read().await.approvers.approver(&s.org, &approver_id).is_some();
    if !known {
        return Err(Refusal::not_found("no such approver"));
    }
    let removed = ApproverRemoved {
        org: s.org.clone(),
        approver_id: approver_id.clone(),
        reason: format!("removed by admin {}", s.approver_id),
    };
    let rec = app
        .recorder
        .event(&s.org, Actor::human(&s.email), "approver", &approver_id, EventData::ApproverRemoved(removed))
        .record()
        .await
        .map_err(log_refusal)?;
    app.wait_for(rec.seq).await;
    Ok(Redirect::to("/approvers").into_response())
}
