//! The queue and the draft page: what waits for a human, and one draft as
//! the log says it is (the change, the display derived from it, the
//! envelope before and after, the approvals so far).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use spend_pages::page;

use spend_approvals::book::{Book, Entry, waits_for_a_human};

use super::app::*;

pub async fn queue(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session("/approvals");
    };
    let book = app.book.read().await;
    let (waiting, done) = book.queue(&s.org, HISTORY);
    page(
        "Approval queue",
        Some(&s.csrf),
        Some(&who(&s)),
        html! {
            h2 { "Waiting for a human (" (waiting.len()) ")" }
            @if waiting.is_empty() { p { "Nothing waits for approval." } } @else { (draft_table(&book, &s.org, &waiting)) }
            @let policies = book.waiting_policies(&s.org);
            @if !policies.is_empty() {
                h2 { "SPEND.md versions waiting (" (policies.len()) ")" }
                ul { @for (id, version) in &policies { li { a href={ "/approvals/" (id) } { (id) } " — version " code { (version) } } } }
            }
            @let rollbacks = book.waiting_rollbacks(&s.org);
            @if !rollbacks.is_empty() {
                h2 { "Rollbacks waiting (" (rollbacks.len()) ")" }
                ul { @for r in &rollbacks { li { a href={ "/approvals/" (r.request.rollback_id) } { (r.request.rollback_id) } " — " (r.request.changes.len()) " change(s), asked by " (r.request.requested_by) } } }
            }
            h2 { "Recently decided" }
            @if done.is_empty() { p { "Nothing yet." } } @else { (draft_table(&book, &s.org, &done)) }
        },
    )
}

pub(crate) fn draft_table(book: &Book, org: &str, entries: &[&Entry]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "Draft" } th scope="col" { "What" } th scope="col" { "Amount" } th scope="col" { "Agent" } th scope="col" { "Status" } th scope="col" { "Expires" } } }
            tbody {
                @for e in entries {
                    tr {
                        td { a href={ "/approvals/" (e.draft.id()) } { (e.draft.id()) } }
                        td { (spend_draft::display::describe(&e.draft.proposal().change, e.draft.account_id())) }
                        td { (e.draft.spend_impact().to_string()) }
                        td { (book.agent_name(org, &e.agent)) }
                        td { (e.draft.status().words()) }
                        td { @match e.draft.approval_expires_at() { Some(t) => { (when(t)) }, None => { "-" } } }
                    }
                }
            }
        }
    }
}

pub async fn draft_page(State(app): State<Arc<App>>, headers: HeaderMap, Path(draft_id): Path<String>) -> Response {
    let Some(s) = app.session(&headers).await else {
        return need_session(&format!("/approvals/{draft_id}"));
    };
    render_draft(&app, &s, &draft_id).await
}

/// An approval link: GET only shows (sign-in first); it never changes anything.
pub async fn link(State(app): State<Arc<App>>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let found = app.book.read().await.link(&sha256_hex(&token)).cloned();
    let Some((org, draft_id)) = found else {
        return page("Approval not found", None, None, html! { p { "This approval link is not valid." } });
    };
    let Some(s) = app.session(&headers).await else {
        return need_session(&format!("/a/{token}"));
    };
    if s.org != org {
        return page(
            "Another organisation's approval",
            Some(&s.csrf),
            Some(&who(&s)),
            html! { p { "This approval belongs to another organisation. Sign in as one of its approvers." } },
        );
    }
    render_draft(&app, &s, &draft_id).await
}

pub(crate) async fn render_draft(app: &App, s: &Session, draft_id: &str) -> Response {
    let book = app.book.read().await;
    if let Some(r) = crate::console::rollback::render_request(&book, s, draft_id) {
        return r;
    }
    if book.entry(&s.org, draft_id).is_none()
        && let Some(r) = render_policy(app, &book, s, draft_id)
    {
        return r;
    }
    let Some(e) = book.entry(&s.org, draft_id) else {
        return page(
            "Draft not found",
            Some(&s.csrf),
            Some(&who(s)),
            html! { p { "No draft " code { (draft_id) } " of " (s.org) " is known here." } },
        );
    };
    let d = &e.draft;
    let decision = d.decision();
    let needed = d.approvals_needed();
    let waiting = waits_for_a_human(d.status());
    let mine = e.approvals.iter().any(|(a, _)| *a == s.approver_id);
    let expired_now = d
        .approval_expires_at()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.with_timezone(&Utc) <= Utc::now());
    // What a person reads is built from the change the executor pushes;
    // a draft whose stored display disagrees is shown as refused.
    let change = &d.proposal().change;
    let described = spend_draft::display::describe(change, d.account_id());
    let inconsistent = spend_draft::display::inconsistency(d.proposal());
    let diff = html! {
        p.change { (described) }
        @if let spend_core::events::DraftChange::Payment { merchant, category, stated_category, stated_country, .. } = change {
            table {
                tbody {
                    tr { th scope="row" { "Merchant" } td { (merchant) @if let Some(c) = category { " (" (c) ")" } } }
                    @if stated_category.is_some() || stated_country.is_some() {
                        tr { th scope="row" { "The agent says" } td { (stated_category.as_deref().unwrap_or("-")) ", " (stated_country.as_deref().unwrap_or("-")) } }
                    }
                }
            }
            p.notice { "A payment cannot be undone by a rollback: it can only be refunded." }
        }
    };
    let outcome = match d.status() {
        spend_draft::DraftStatus::Approved => "Approved by enough humans; the executor pushes it.".to_string(),
        spend_draft::DraftStatus::Rejected => match &e.rejection {
            Some((by, why)) => format!("Rejected by {by}: {why}"),
            None => "Rejected.".into(),
        },
        spend_draft::DraftStatus::Expired => "Expired before enough humans approved: it was denied (nothing is ever approved by timeout).".into(),
        other => format!("Status: {}", other.words()),
    };
    page(
        &format!("Draft {}", d.id()),
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            p.status role="status" { (outcome) }
            @if let Some(why) = &inconsistent {
                p.error role="alert" { "Refused: what this draft shows is not what it would push (" (why) "). Nothing can approve it." }
            }
            table {
                tbody {
                    tr { th scope="row" { "What" } td { (described) } }
                    tr { th scope="row" { "Spend impact" } td { (d.spend_impact().to_string()) } }
                    tr { th scope="row" { "24-hour envelope" } td { (envelope_line(app, &book, &s.org, d.spend_impact())) } }
                    tr { th scope="row" { "Agent" } td { (book.agent_name(&s.org, &e.agent)) } }
                    tr { th scope="row" { "Approvals" } td { (e.approvals.len()) " of " (needed) " required" @if needed == 2 { " (two distinct people)" } } }
                    tr { th scope="row" { "Expires" } td { @match d.approval_expires_at() { Some(t) => { (when(t)) }, None => { "no approval request yet" } } } }
                    tr { th scope="row" { "Policy version" } td { code { (decision.map(|x| x.policy_version.as_str()).unwrap_or("-")) } } }
                }
            }
            (diff)
            h2 { "Why the policy asks a human" }
            ul { @for r in decision.map(|x| x.reasons.as_slice()).unwrap_or(&[]) { li { code { (r.code) } ": " (r.message) } } }
            h2 { "The agent's rationale" }
            p.rationale { (d.rationale()) }
            @if waiting && !expired_now && d.request().is_some() && inconsistent.is_none() {
                @if mine {
                    p.notice { "You approved this draft; a second, distinct approver is needed." }
                } @else {
                    (decide(d.id(), &s.csrf))
                }
            }
        },
    )
}

/// The two-step decision: "Approve" arms and takes the person to the
/// passkey page, which shows the change again, read from the log, in an
/// alertdialog ("Confirm and push live" or "Cancel"); "Reject" asks for a
/// "Reason".
pub(crate) fn decide(id: &str, csrf: &str) -> Markup {
    html! {
        section aria-labelledby="decide" {
            h2 #decide { "Decide" }
            p { button #approve .primary type="button" data-arm={ "/approvals/" (id) "/arm" } { "Approve" } }
            p #approve-status role="status" aria-live="polite" {}
            form method="post" action={ "/approvals/" (id) "/reject" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="reason" { "Reason" }
                textarea #reason name="reason" required maxlength="1000" rows="3" {}
                p { button.danger type="submit" { "Reject" } }
            }
        }
    }
}

/// The 24-hour envelope: committed now (every standing campaign rate and
/// the last 24 hours' payments, docs/spend-windows.md), what is left under
/// `daily_limit`, and what this change would leave.
pub(crate) fn envelope_line(app: &App, book: &Book, org: &str, impact: &spend_core::Money) -> String {
    use spend_policy::envelope::EnvelopeExt as _;
    let policy = book.versions.active(org).map(|a| a.policy.clone()).unwrap_or_else(|| app.bootstrap.clone());
    let Some(limit) = policy.spend.daily_limit.clone() else {
        return "no daily_limit in the SPEND.md in force".into();
    };
    let used = book
        .envelope(org)
        .filter(|e| e.currency == limit.currency)
        .map(|e| e.daily_committed(Utc::now()))
        .unwrap_or(0);
    let m = |minor: i64| spend_core::Money {
        minor_units: minor,
        currency: limit.currency.clone(),
    };
    let left = limit.minor_units - used;
    format!(
        "{} used of {}, {} left; {} left after this change",
        m(used),
        limit,
        m(left),
        m(left - impact.minor_units.max(0))
    )
}

pub(crate) fn money_text(m: &Option<spend_core::Money>) -> String {
    m.as_ref().map(|m| m.to_string()).unwrap_or_else(|| "none".into())
}

/// What a SPEND.md version changes in practice: (setting, in force, proposed).
pub(crate) fn policy_changes(old: &spend_policy::spendmd::SpendMd, new: &spend_policy::spendmd::SpendMd) -> Vec<(&'static str, String, String)> {
    let rows = [
        (
            "per transaction",
            money_text(&old.spend.per_transaction),
            money_text(&new.spend.per_transaction),
        ),
        (
            "24-hour envelope (daily_limit)",
            money_text(&old.spend.daily_limit),
            money_text(&new.spend.daily_limit),
        ),
        ("monthly limit", money_text(&old.spend.monthly_limit), money_text(&new.spend.monthly_limit)),
        ("allowlist", old.spend.allowlist.join(", "), new.spend.allowlist.join(", ")),
        (
            "standing mandate (auto_approve_under)",
            money_text(&old.approval.auto_approve_under),
            money_text(&new.approval.auto_approve_under),
        ),
        (
            "dual control over (require_confirmation_over)",
            money_text(&old.approval.require_confirmation_over),
            money_text(&new.approval.require_confirmation_over),
        ),
        (
            "approval timeout (minutes)",
            old.approval.timeout_minutes.to_string(),
            new.approval.timeout_minutes.to_string(),
        ),
    ];
    rows.into_iter().filter(|(_, a, b)| a != b).collect()
}

pub(crate) fn render_policy(app: &App, book: &Book, s: &Session, id: &str) -> Option<Response> {
    let (p, _) = book.versions.proposal(&s.org, id)?;
    let t = book.target(&s.org, id)?;
    let entry = book.policy_entry(&s.org, id).cloned().unwrap_or_default();
    let in_force = book.versions.active(&s.org);
    let old_md = in_force.map(|a| (*a.policy).clone()).unwrap_or_else(|| (*app.bootstrap).clone());
    let new_md = spend_policy::spendmd::parse(&p.source).ok();
    let changes = new_md.as_ref().map(|n| policy_changes(&old_md, n)).unwrap_or_default();
    let outcome = if book.versions.is_approved(&s.org, id) {
        "Approved: this version is in force (unless a newer one was approved since).".to_string()
    } else if let Some((by, why)) = &entry.rejection {
        format!("Rejected by {by}: {why}")
    } else if entry.expired {
        "Expired before a human approved it: the version in force stays.".into()
    } else {
        "Status: waiting for a human".into()
    };
    let needs = book.versions.needs(&s.org, id);
    let needed = needs.as_ref().map_or(1, |n| n.approvers);
    let mine = t.approvers.contains(&s.approver_id);
    let change = html! {
        table {
            caption { "What changes in practice" }
            thead { tr { th scope="col" { "Setting" } th scope="col" { "In force" } th scope="col" { "Proposed" } } }
            tbody {
                @if changes.is_empty() { tr { td colspan="3" { "No limit, allowlist or mandate changes." } } }
                @for (k, a, b) in &changes { tr { td { (k) } td { (a) } td { (b) } } }
            }
        }
    };
    let old_text = in_force.map(|a| a.proposal.source.clone());
    let expired_now = t
        .request
        .as_ref()
        .and_then(|r| DateTime::parse_from_rfc3339(&r.expires_at).ok())
        .is_some_and(|x| x.with_timezone(&Utc) <= Utc::now());
    Some(page(
        &format!("SPEND.md proposal {id}"),
        Some(&s.csrf),
        Some(&who(s)),
        html! {
            p.status role="status" { (outcome) }
            table {
                tbody {
                    tr { th scope="row" { "Proposed version" } td { code { (p.version) } } }
                    tr { th scope="row" { "In force now" } td { code { (in_force.map(|a| a.proposal.version.as_str()).unwrap_or(old_md.version.as_str())) } } }
                    tr { th scope="row" { "Standing mandate" } td { @if p.enables_auto_approve { "enabled by this version (auto-approval applies once a human approves it)" } @else { "none" } } }
                    tr { th scope="row" { "Expires" } td { @match t.request.as_ref() { Some(r) => { (when(&r.expires_at)) }, None => { "no approval request yet" } } } }
                    tr { th scope="row" { "Approvals" } td {
                        (t.approvers.len()) " of " (needed) " required, one of them an admin"
                        @if let Some(n) = needs.as_ref().filter(|n| !n.loosens.is_empty()) { " (two distinct people: it loosens " (n.loosens.join("; ")) ")" }
                    } }
                }
            }
            (change)
            h2 { "The proposed SPEND.md" }
            pre.rationale { (p.source) }
            h2 { "The SPEND.md in force" }
            @match &old_text {
                Some(text) => { pre.rationale { (text) } }
                None => { p { "The service's bootstrap file (not on the log), version " code { (old_md.version) } "." } }
            }
            @if t.waiting && !expired_now && t.request.is_some() {
                @if mine {
                    p.notice { "You approved this version; a second, distinct approver is needed." }
                } @else {
                    (decide(id, &s.csrf))
                }
            }
        },
    ))
}
