//! Rollback in the approval app: the audit view of pushed changes, where a
//! signed-in approver undoes one in two deliberate steps, and the page of
//! a rollback an operator asked for (`spend rollback`).
//!
//! "Roll back" only opens a `role="alertdialog"` that says what will be
//! restored (a payment: that the platform cannot undo it, and that its
//! rollback is a refund). "Confirm rollback" records the request
//! (`spend.rollback.requested.v1` on the approval subject of a new
//! rollback id, and its approval request), arms it, asks the passkey for a
//! fresh assertion over the pinned challenge of the request's exact bytes,
//! and records `spend.rollback.approved.v1` once the same verifier every
//! consumer runs accepts it. The executor restores nothing on a request
//! alone: it checks that proof itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use spend_core::Actor;
use spend_core::events::{ApprovalRequested, DraftChange, EventData, MAX_ROLLBACK_CHANGES, RollbackItem, RollbackRequested};
use spend_draft::DraftStatus;
use spend_eventlog::LogError;

use crate::web::app::{Answer, App, Refusal, Session, json_text, log_refusal, need_session, page, who};
use crate::web::approve::own_credential;
use spend_approvals::book::{Book, Entry, RollbackEntry};

/// Pushed changes the audit view lists.
const AUDIT_ROWS: usize = 200;
/// How long a rollback asked for in the app may wait for its passkey
/// assertion (the dialog asks at once).
const IN_APP_MINUTES: i64 = 15;
/// The longest reason.
const MAX_REASON: usize = 1_000;

/// The change id of a draft's push (as the executor names it).
fn change_id(draft_id: &str) -> String {
    format!("ch_{draft_id}")
}

fn is_payment(e: &Entry) -> bool {
    matches!(e.draft.proposal().change, DraftChange::Payment { .. })
}

/// What rolling back `e` restores, in words.
fn restores(e: &Entry) -> String {
    let pushed = e.pushed.as_ref();
    match &e.draft.proposal().change {
        DraftChange::Payment { amount, merchant, .. } => format!(
            "A payment cannot be undone by the platform: rolling back draft {} refunds its charge of {amount} to {merchant} in full.",
            e.draft.id()
        ),
        DraftChange::Campaign { campaign_id, .. } => {
            let fields: Vec<String> = pushed
                .map(|p| {
                    p.diff
                        .iter()
                        .map(|d| {
                            format!(
                                "{} back from {} to {}",
                                field_name(&d.path),
                                field_value(e, &d.path, &d.after),
                                field_value(e, &d.path, &d.before)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "Rolling back draft {} restores campaign {campaign_id} on {}: {}. It is refused if the campaign changed since the push.",
                e.draft.id(),
                e.draft.account_id(),
                if fields.is_empty() {
                    "its recorded state".to_string()
                } else {
                    fields.join(", ")
                }
            )
        }
    }
}

/// The status of a pushed change as the audit view shows it.
fn change_status(e: &Entry) -> String {
    match (e.draft.status(), &e.rollback_refused) {
        (DraftStatus::RolledBack, _) => "rolled back".into(),
        (_, Some(why)) => format!("pushed; rollback refused: {why}"),
        (s, None) => s.as_str().to_string(),
    }
}

fn diff_cell(e: &Entry) -> Markup {
    html! {
        @if let Some(p) = &e.pushed {
            ul { @for d in &p.diff { li { (field_name(&d.path)) ": " (field_value(e, &d.path, &d.before)) " → " (field_value(e, &d.path, &d.after)) } } }
        }
    }
}

/// A pushed field as people say it: `daily_budget_minor` → "daily budget".
fn field_name(path: &str) -> String {
    let field = path.rsplit('/').next().unwrap_or(path);
    field.trim_end_matches("_minor").replace('_', " ")
}

/// A pushed field's value: an amount in major units with its currency
/// (the campaign's), never minor-unit JSON.
fn field_value(e: &Entry, path: &str, v: &serde_json::Value) -> String {
    if path.ends_with("_minor")
        && let (Some(minor), DraftChange::Campaign { daily_budget_before, .. }) = (v.as_i64(), &e.draft.proposal().change)
        && let Ok(m) = spend_core::Money::new(minor, &daily_budget_before.currency)
    {
        return m.to_string();
    }
    json_text(v)
}

/// The alertdialog both pages open: the reason, then "Continue to your
/// passkey" (the passkey page shows the request read from the log, with
/// "Confirm rollback") or "Cancel".
fn dialog() -> Markup {
    html! {
        div #rollback-dialog role="alertdialog" aria-modal="true" aria-labelledby="rollback-title" aria-describedby="rollback-desc" hidden {
            h2 #rollback-title { "Roll back?" }
            p #rollback-desc {}
            p #rollback-payment .notice hidden { "A payment cannot be undone by the platform: its rollback is a refund." }
            p { "Next, the passkey page shows the rollback request as the log holds it; your passkey signs exactly that. The executor restores the recorded state only if the platform still shows what the push left." }
            label for="rollback-reason" { "Reason" }
            textarea #rollback-reason maxlength="1000" rows="2" {}
            p {
                button #confirm-rollback .danger type="button" { "Continue to your passkey" }
                " "
                button #rollback-cancel type="button" { "Cancel" }
            }
            p #rollback-status role="status" aria-live="polite" {}
        }
    }
}

/// `GET /audit`: the organisation's pushed changes, newest first, each
/// with "Roll back" while it stands.
pub async fn audit_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/audit");
    };
    let book = app.book.read().await;
    let rows = book.pushed(&s.org, AUDIT_ROWS);
    page(
        "Audit",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            p { "Changes pushed live, newest first. Every step is an event on the log; " code { "spend ledger export" } " and " code { "spend ledger verify" } " check them offline." }
            @if rows.is_empty() {
                p { "Nothing was pushed yet." }
            } @else {
                table {
                    caption { "Pushed changes" }
                    thead { tr { th scope="col" { "Draft" } th scope="col" { "What" } th scope="col" { "Change" } th scope="col" { "Agent" } th scope="col" { "Status" } th scope="col" { "Action" } } }
                    tbody {
                        @for e in &rows {
                            tr {
                                td { a href={ "/approvals/" (e.draft.id()) } { (e.draft.id()) } }
                                td { (spend_draft::display::describe(&e.draft.proposal().change, e.draft.account_id())) }
                                td { (diff_cell(e)) }
                                td { (book.agent_name(&s.org, &e.agent)) }
                                td { (change_status(e)) }
                                td {
                                    @if e.draft.status() == DraftStatus::Pushed && e.rollback_refused.is_none() {
                                        @if is_payment(e) { p.notice { "A payment cannot be undone: rolling it back refunds it." } }
                                        button type="button" data-rollback-drafts=(e.draft.id()) data-summary=(restores(e)) data-payment=(if is_payment(e) { "1" } else { "0" }) { "Roll back" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (dialog())
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackForm {
    drafts: Vec<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /audit/rollback` (the "Confirm rollback" of the audit view):
/// records the request of the signed-in approver, opens its approval and
/// arms it; the script then asks the passkey and posts the assertion to
/// the `confirm` it answers.
pub async fn request(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(form): Json<RollbackForm>,
) -> Answer<Json<serde_json::Value>> {
    let s = app.checked(&headers, peer, None).await?;
    let mut drafts = form.drafts;
    drafts.sort();
    drafts.dedup();
    if drafts.is_empty() || drafts.len() > MAX_ROLLBACK_CHANGES {
        return Err(Refusal::bad_input(format!(
            "name between 1 and {MAX_ROLLBACK_CHANGES} pushed changes to roll back"
        )));
    }
    if form.reason.chars().count() > MAX_REASON {
        return Err(Refusal::bad_input(format!("the reason is longer than {MAX_REASON} characters")));
    }
    let (changes, policy_version) = {
        let book = app.book.read().await;
        own_credential(&book, &s)?;
        let mut changes = Vec::with_capacity(drafts.len());
        for d in &drafts {
            match book.entry(&s.org, d) {
                Some(e) if e.draft.status() == DraftStatus::Pushed => changes.push(RollbackItem {
                    change_id: change_id(d),
                    draft_id: d.clone(),
                }),
                Some(e) => {
                    return Err(Refusal::conflict(format!(
                        "draft {d} is {}, not pushed: there is nothing to roll back",
                        e.draft.status().as_str()
                    )));
                }
                None => return Err(Refusal::not_found(format!("no pushed change of draft {d} is known here"))),
            }
        }
        let version = book
            .versions
            .active(&s.org)
            .map(|a| a.policy.version.clone())
            .unwrap_or_else(|| app.bootstrap.version.clone());
        (changes, version)
    };
    let rollback_id = format!("rb_{}", uuid::Uuid::now_v7().simple());
    let expires_at = (Utc::now() + chrono::Duration::minutes(IN_APP_MINUTES)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let requested = RollbackRequested {
        rollback_id: rollback_id.clone(),
        changes,
        reason: form.reason.trim().to_string(),
        requested_by: s.approver_id.clone(),
        expires_at: expires_at.clone(),
    };
    let rec = app
        .recorder
        .event(
            &s.org,
            // Agents read this subject: the approver by their id, never
            // their e-mail address.
            Actor::human(&s.approver_id),
            "approval",
            &rollback_id,
            EventData::RollbackRequested(requested),
        )
        .expect_seq(0)
        .record()
        .await
        .map_err(log_refusal)?;
    let approved_hash = spend_draft::event_hash(&rec.bytes);
    // Its approval request: the link is never sent (the human who asked
    // approves it here and now), so its token is thrown away.
    let opened = ApprovalRequested {
        draft_id: rollback_id.clone(),
        kind: "rollback".into(),
        approved_hash,
        policy_version,
        required: 1,
        expires_at,
        timeout_action: "deny".into(),
        link_token_sha256: crate::web::app::sha256_hex(crate::web::app::random_token()),
    };
    let opened = app
        .recorder
        .event(
            &s.org,
            Actor::service("approval"),
            "approval",
            &rollback_id,
            EventData::ApprovalRequested(opened),
        )
        .expect_seq(rec.seq)
        .record()
        .await;
    match opened {
        Ok(r) => app.wait_for(r.seq).await,
        // The service's own tick opened it a moment sooner: the same request.
        Err(LogError::WrongLastSequence { .. }) => {
            let last = app.recorder.log().info().await.map(|i| i.last_seq).unwrap_or(rec.seq + 1);
            app.wait_for(last).await;
        }
        Err(e) => return Err(log_refusal(e)),
    }
    tracing::info!(org = %s.org, rollback_id, by = %s.approver_id, "rollback requested in the app");
    let mut armed = crate::web::approve::arm_target(&app, &s, &rollback_id).await?;
    armed["rollback_id"] = rollback_id.into();
    Ok(Json(armed))
}

/// The page of a rollback request (`/approvals/<rollback_id>`, or its
/// emailed link): what it undoes, who asked, and "Roll back" while it
/// waits.
pub(crate) fn render_request(book: &Book, s: &Session, id: &str) -> Option<Response> {
    let r: &RollbackEntry = book.rollback(&s.org, id)?;
    let status = match (&r.approved, r.expired, &r.approval) {
        (Some((by, at)), _, _) => format!(
            "Approved by {by} at {}: the executor restores each change below.",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        (None, true, _) => "Expired before anyone approved it: nothing was rolled back.".into(),
        (None, false, None) => "Opening its approval request: reload in a moment.".into(),
        (None, false, Some(_)) => "Waiting for an approver.".into(),
    };
    let waiting = r.approved.is_none() && !r.expired && r.approval.is_some();
    let entries: Vec<(String, Option<&Entry>)> = r
        .request
        .changes
        .iter()
        .map(|c| (c.draft_id.clone(), book.entry(&s.org, &c.draft_id)))
        .collect();
    let payments = entries.iter().any(|(_, e)| e.is_some_and(is_payment));
    let summary: Vec<String> = entries.iter().filter_map(|(_, e)| e.map(restores)).collect();
    Some(page(
        &format!("Rollback {id}"),
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            p.status role="status" { (status) }
            table {
                tbody {
                    tr { th scope="row" { "Asked by" } td { (r.request.requested_by) } }
                    tr { th scope="row" { "Reason" } td { (r.request.reason) } }
                    tr { th scope="row" { "Expires" } td { (r.request.expires_at) } }
                }
            }
            table {
                caption { "Changes to undo" }
                thead { tr { th scope="col" { "Draft" } th scope="col" { "What" } th scope="col" { "Change" } th scope="col" { "Status" } } }
                tbody {
                    @for (d, e) in &entries {
                        tr {
                            td { a href={ "/approvals/" (d) } { (d) } }
                            @if let Some(e) = e {
                                td { (e.draft.kind()) " on " (e.draft.account_id()) ", " (e.draft.spend_impact().to_string()) }
                                td { (diff_cell(e)) }
                                td { (change_status(e)) }
                            } @else {
                                td colspan="3" { "not known here" }
                            }
                        }
                    }
                }
            }
            @if payments { p.notice { "A payment cannot be undone by the platform: its rollback is a refund." } }
            @if waiting {
                p { button type="button" data-rollback-arm={ "/approvals/" (id) "/arm" } data-summary=(summary.join(" ")) data-payment=(if payments { "1" } else { "0" }) { "Roll back" } }
                (dialog())
            }
        },
    ))
}
