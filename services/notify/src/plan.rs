//! What to tell whom about one event: pure, so every replica and every
//! replay plans the same notices, with the same ids, from the same log.
//!
//! Two sources of notices:
//! - **approval channels** (SPEND.md `approval.approval_channels`): an
//!   approval request goes to approvers — Slack through the webhook
//!   `notifications.slack` names, email to every trusted approver — all
//!   channels at once, or with `timeout_action: escalate` the first one
//!   now and the next on timeout;
//! - **the eight notification events** (`notify_on_all` or
//!   `notifications.events`) go to the organisation's `notifications.email`
//!   and `notifications.slack`.
//!
//! A notice's id is derived from the event it is about and where it goes,
//! so the same event planned twice (a replay, a second replica, the same
//! request both as an approval and as `transaction.pending_approval`) is
//! one notice, delivered once.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use spend_core::events::{
    ApprovalEscalated, ApprovalRequested, CardCreated, CardFrozen, ChangeFailed, ChangePushed, DraftStaled, EventData, FieldDiff, LimitApproaching,
    LimitExceeded, Outcome, PolicyProposed, SecurityAlert,
};
use spend_policy::spendmd::{Channel as ApprovalChannel, SpendMd};

use spend_approvals::book::Entry;
use spend_approvals::links::Links;

/// Where a notice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Slack,
    Email,
    /// `spend dev`'s outbox folder and console: every approval link.
    Outbox,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Email => "email",
            Channel::Outbox => "outbox",
        }
    }
}

/// One destination: a webhook's name (never its URL), an email address, or
/// the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub channel: Channel,
    pub to: String,
}

impl Target {
    pub fn slack(name: &str) -> Self {
        Self {
            channel: Channel::Slack,
            to: name.to_string(),
        }
    }

    pub fn email(address: &str) -> Self {
        Self {
            channel: Channel::Email,
            to: address.to_lowercase(),
        }
    }

    pub fn outbox() -> Self {
        Self {
            channel: Channel::Outbox,
            to: "outbox".into(),
        }
    }
}

/// What a notice says, channel-neutral. Every value here may carry text an
/// agent wrote (a merchant, an account id, a rationale, an alert's detail):
/// renderers escape all of it; only the labels and the structure are ours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// e.g. "Approval needed".
    pub title: String,
    /// One line: a chat client's preview and the email subject.
    pub summary: String,
    /// (label, value), in order.
    pub facts: Vec<(String, String)>,
    /// (label, text) of free text someone else wrote: an agent's rationale,
    /// an alert's detail, a rejection's reason.
    pub quote: Option<(String, String)>,
    /// The policy's reasons.
    pub reasons: Vec<String>,
    /// When a waiting approval expires (RFC 3339).
    pub expires_at: Option<String>,
    /// (button label, URL) of a page in the approval app.
    pub link: Option<(String, String)>,
}

/// One message to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// 32 hex characters: see [`notice_id`].
    pub id: String,
    pub org: String,
    /// One of SPEND.md's eight notification events, `approval.requested`,
    /// `approval.escalated`, or `digest.<event>`.
    pub kind: String,
    pub target: Target,
    /// The event notified about (a digest: the last one folded into it).
    pub source_event_id: String,
    /// The draft or proposal it is about, if any.
    pub subject_id: String,
    /// When the event was stored: notices older than the notifier's
    /// `max_age` are not sent.
    pub at: DateTime<Utc>,
    pub message: Message,
}

/// The id of the notice of `source` (an event id, or a digest's key) to
/// `target`: hex of the first 16 bytes of a SHA-256.
pub fn notice_id(source: &str, target: &Target) -> String {
    let h = Sha256::digest(format!("spendsignoff-notice-v1\n{source}\n{}\n{}", target.channel.as_str(), target.to).as_bytes());
    hex::encode(&h[..16])
}

/// What the planner knows besides the event: the organisation's SPEND.md
/// in force, the draft the event is about, and who the approvers are.
pub struct Context<'a> {
    pub org: &'a str,
    pub policy: &'a SpendMd,
    pub links: &'a Links,
    /// The draft the event is about, as the book knows it.
    pub draft: Option<&'a Entry>,
    /// The SPEND.md proposal an approval request is about.
    pub proposal: Option<&'a PolicyProposed>,
    /// Emails of the organisation's trusted approvers.
    pub approvers: Vec<String>,
    /// `spend dev`: approval links also go to the outbox and the console.
    pub outbox: bool,
    /// For an escalation: whether the book applied it (its request now
    /// expires when the escalation says).
    pub escalation_taken: bool,
    /// The rollback request an approval request is about.
    pub rollback: Option<&'a spend_approvals::book::RollbackEntry>,
}

/// One event, as the planner reads it.
pub struct Event<'a> {
    pub id: String,
    pub aggregate: &'a str,
    /// The subject's id (`approval.<id>`, `security_gateway.<id>`, ...).
    pub subject_id: &'a str,
    pub at: DateTime<Utc>,
    pub data: &'a EventData,
}

/// The notices of one event: approval-channel notices, then the
/// notification-event notices (those subject to flood folding, see
/// [`Planned::flood_kind`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Planned {
    pub approval: Vec<Notice>,
    /// The notification event kind and its notices.
    pub flood_kind: Option<&'static str>,
    pub events: Vec<Notice>,
}

pub fn plan(ctx: &Context<'_>, event: &Event<'_>) -> Planned {
    let mut out = Planned::default();
    let notice = |kind: &str, target: Target, subject_id: &str, message: &Message| Notice {
        id: notice_id(&event.id, &target),
        org: ctx.org.to_string(),
        kind: kind.to_string(),
        target,
        source_event_id: event.id.clone(),
        subject_id: subject_id.to_string(),
        at: event.at,
        message: message.clone(),
    };
    // Approval channels.
    match event.data {
        EventData::ApprovalRequested(r) if event.aggregate == "approval" => {
            if let Some(message) = approval_message(ctx, r, None) {
                let channels = &ctx.policy.approval.approval_channels;
                let now: &[ApprovalChannel] = if r.timeout_action == "escalate" {
                    &channels[..channels.len().min(1)]
                } else {
                    channels
                };
                for target in approval_targets(ctx, now).into_iter().chain(ctx.outbox.then(Target::outbox)) {
                    out.approval.push(notice("approval.requested", target, &r.draft_id, &message));
                }
            }
        }
        // Only an escalation the book took (once, of a request that said it
        // would, to a later time): not one that merely sits on the log.
        EventData::ApprovalEscalated(e) if event.aggregate == "approval" && ctx.escalation_taken => {
            let request = ctx.draft.and_then(|d| d.draft.request().cloned());
            let request = request.or_else(|| ctx.proposal.map(|p| policy_request_stub(p, e)));
            if let Some(r) = request
                && let Some(message) = approval_message(ctx, &r, Some(e))
            {
                let channel = match e.channel.as_str() {
                    "slack" => ApprovalChannel::Slack,
                    _ => ApprovalChannel::Email,
                };
                for target in approval_targets(ctx, &[channel]).into_iter().chain(ctx.outbox.then(Target::outbox)) {
                    out.approval.push(notice("approval.escalated", target, &e.draft_id, &message));
                }
            }
        }
        _ => {}
    }
    // The eight notification events.
    if let Some((kind, subject_id, message)) = notification(ctx, event)
        && ctx.policy.notifies(kind)
    {
        out.flood_kind = Some(kind);
        let n = &ctx.policy.notifications;
        let targets = n.email.iter().map(|e| Target::email(e)).chain(n.slack.iter().map(|s| Target::slack(s)));
        for target in targets {
            let id = notice_id(&event.id, &target);
            // The same request to the same place as an approval already.
            if out.approval.iter().any(|a| a.id == id) {
                continue;
            }
            out.events.push(notice(kind, target, &subject_id, &message));
        }
    }
    out
}

/// Where approval channel(s) `channels` reach in this organisation.
fn approval_targets(ctx: &Context<'_>, channels: &[ApprovalChannel]) -> Vec<Target> {
    let mut out = Vec::new();
    for c in channels {
        match c {
            ApprovalChannel::Slack => out.push(Target::slack(ctx.policy.notifications.slack_webhook())),
            ApprovalChannel::Email => out.extend(ctx.approvers.iter().map(|a| Target::email(a))),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A policy proposal's request as the escalation planner needs it.
fn policy_request_stub(p: &PolicyProposed, e: &ApprovalEscalated) -> ApprovalRequested {
    ApprovalRequested {
        draft_id: p.draft_id.clone(),
        kind: "policy".into(),
        approved_hash: String::new(),
        policy_version: p.version.clone(),
        required: 1,
        expires_at: e.expires_at.clone(),
        timeout_action: "escalate".into(),
        link_token_sha256: String::new(),
    }
}

/// The message of an approval request (or its escalation).
fn approval_message(ctx: &Context<'_>, r: &ApprovalRequested, escalated: Option<&ApprovalEscalated>) -> Option<Message> {
    let expires_at = escalated.map(|e| e.expires_at.clone()).unwrap_or_else(|| r.expires_at.clone());
    let mut m = match (r.kind.as_str(), ctx.draft, ctx.proposal) {
        ("draft", Some(e), _) => {
            let mut m = draft_message(e);
            m.title = "Approval needed".into();
            m.summary = format!("Approval needed: {} until {}", draft_line(e), short_time(&expires_at));
            m.facts.push((
                "Approvals".into(),
                if r.required > 1 {
                    format!("{} people (dual control)", r.required)
                } else {
                    "1 person".into()
                },
            ));
            m.reasons = reasons(e);
            m
        }
        ("policy", _, Some(p)) => Message {
            title: "SPEND.md version needs approval".into(),
            summary: format!(
                "Approval needed: SPEND.md version {} until {}",
                short_version(&p.version),
                short_time(&expires_at)
            ),
            facts: vec![
                ("Version".into(), p.version.clone()),
                ("In force now".into(), p.previous_version.clone().unwrap_or_else(|| "none approved yet".into())),
                (
                    "Standing mandate".into(),
                    if p.enables_auto_approve { "enables auto_approve_under" } else { "none" }.into(),
                ),
            ],
            ..Message::default()
        },
        // Asked for in the app, it is approved there and then: only an
        // operator's request waits for someone to hear of it.
        ("rollback", _, _) => {
            let rb = ctx.rollback.filter(|r| !r.in_app)?;
            let drafts: Vec<&str> = rb.request.changes.iter().map(|c| c.draft_id.as_str()).collect();
            Message {
                title: "Rollback needs approval".into(),
                summary: format!("Approval needed: roll back {} pushed change(s) until {}", drafts.len(), short_time(&expires_at)),
                facts: vec![("Asked by".into(), rb.request.requested_by.clone()), ("Changes".into(), drafts.join(", "))],
                quote: Some(("Reason".to_string(), rb.request.reason.clone())).filter(|q| !q.1.is_empty()),
                ..Message::default()
            }
        }
        _ => return None,
    };
    if let Some(e) = escalated {
        m.title = format!("Still waiting: {}", m.title.to_lowercase());
        m.summary = format!("Escalated: {}", m.summary);
        m.facts.push((
            "Escalated".into(),
            format!("nobody answered by {}; extended once", short_time(&e.previous_expires_at)),
        ));
    }
    m.facts.push(("Expires".into(), short_time(&expires_at)));
    m.expires_at = Some(expires_at);
    m.link = Some(("Review".into(), ctx.links.approval(ctx.org, &r.draft_id)));
    Some(m)
}

/// The one-of-eight notification an event is, with the id of what it is
/// about and its message.
fn notification(ctx: &Context<'_>, event: &Event<'_>) -> Option<(&'static str, String, Message)> {
    let view = |e: &Entry| Some(("View".to_string(), ctx.links.draft(e.draft.id())));
    let declined = |e: &Entry, title: &str, quote: Option<(String, String)>| {
        let mut m = draft_message(e);
        m.title = title.to_string();
        m.summary = format!("{title}: {}", draft_line(e));
        m.quote = quote.or(m.quote);
        m.reasons = reasons(e);
        m.link = view(e);
        Some(("transaction.declined", e.draft.id().to_string(), m))
    };
    match (event.data, event.aggregate) {
        (EventData::PolicyEvaluated(d), "decision") if d.outcome == Outcome::Deny => declined(ctx.draft?, "Draft denied by the policy", None),
        (EventData::ApprovalRejected(r), "approval") => {
            let e = ctx.draft?;
            declined(e, "Draft rejected", Some(("Reason given".into(), r.reason.clone())))
        }
        (EventData::ApprovalExpired(_), "approval") => declined(ctx.draft?, "Approval expired: nobody approved in time", None),
        (EventData::DraftStaled(DraftStaled { detail, .. }), "draft") => declined(ctx.draft?, "Draft went stale", Some(("Why".into(), detail.clone()))),
        (EventData::ChangeFailed(ChangeFailed { reason, .. }), "change") => declined(ctx.draft?, "Push failed", Some(("Platform said".into(), reason.clone()))),
        (EventData::ChangePushed(ChangePushed { change_id, platform, diff, .. }), "change") => {
            let e = ctx.draft?;
            let mut m = draft_message(e);
            m.title = "Change pushed live".into();
            m.summary = format!("Pushed live: {}", draft_line(e));
            m.facts.retain(|(l, _)| !l.starts_with("Change "));
            m.facts.extend(diff_facts(diff));
            m.facts.push(("Platform".into(), format!("{platform} (change {change_id})")));
            m.link = view(e);
            Some(("transaction.completed", e.draft.id().to_string(), m))
        }
        (EventData::ApprovalRequested(r), "approval") if r.kind == "draft" => {
            let message = approval_message(ctx, r, None)?;
            Some(("transaction.pending_approval", r.draft_id.clone(), message))
        }
        (EventData::LimitApproaching(l), "limit") => Some(("limit.approaching", l.draft_id.clone(), limit_message("Limit approaching", l_facts(l), ctx))),
        (EventData::LimitExceeded(l), "limit") => Some((
            "limit.exceeded",
            l.draft_id.clone(),
            limit_message("Limit exceeded: draft denied", exceeded_facts(l), ctx),
        )),
        (
            EventData::CardCreated(CardCreated {
                card_id,
                account_id,
                last4,
                label,
                spend_limit,
            }),
            "card",
        ) => {
            let mut facts = vec![
                ("Card".into(), format!("{card_id} (•••• {last4})")),
                ("Account".into(), account_id.clone()),
                ("For".into(), label.clone()),
            ];
            if let Some(l) = spend_limit {
                facts.push(("Limit".into(), l.to_string()));
            }
            Some((
                "card.created",
                card_id.clone(),
                Message {
                    title: "Card created".into(),
                    summary: format!("Card created: {card_id} on {account_id}"),
                    facts,
                    ..Message::default()
                },
            ))
        }
        (EventData::CardFrozen(CardFrozen { card_id, reason }), "card") => Some((
            "card.frozen",
            card_id.clone(),
            Message {
                title: "Card frozen".into(),
                summary: format!("Card frozen: {card_id}"),
                facts: vec![("Card".into(), card_id.clone())],
                quote: Some(("Reason".into(), reason.clone())),
                ..Message::default()
            },
        )),
        (
            EventData::SecurityAlert(SecurityAlert {
                reason,
                key_id,
                address,
                detail,
            }),
            aggregate,
        ) if aggregate.starts_with("security_") => {
            let mut facts = vec![
                ("Reason".into(), reason.clone()),
                ("Raised by".into(), aggregate.trim_start_matches("security_").to_string()),
            ];
            facts.extend(key_id.iter().map(|k| ("Agent key".to_string(), k.clone())));
            facts.extend(address.iter().map(|a| ("Address".to_string(), a.clone())));
            Some((
                "security.alert",
                event.subject_id.to_string(),
                Message {
                    title: "Security alert".into(),
                    summary: format!("Security alert: {reason}"),
                    facts,
                    quote: Some(("Detail".into(), detail.clone())),
                    ..Message::default()
                },
            ))
        }
        _ => None,
    }
}

fn l_facts(l: &LimitApproaching) -> (String, Vec<(String, String)>) {
    (
        l.limit.clone(),
        vec![
            ("Limit".into(), format!("{} of {}", l.limit, l.value)),
            ("Committed with the draft".into(), l.used.to_string()),
            ("Account".into(), l.account_id.clone()),
            ("Draft".into(), l.draft_id.clone()),
        ],
    )
}

fn exceeded_facts(l: &LimitExceeded) -> (String, Vec<(String, String)>) {
    (
        l.limit.clone(),
        vec![
            ("Limit".into(), format!("{} of {}", l.limit, l.value)),
            ("Would have been".into(), l.used.to_string()),
            ("Account".into(), l.account_id.clone()),
            ("Draft".into(), l.draft_id.clone()),
        ],
    )
}

fn limit_message(title: &str, (limit, facts): (String, Vec<(String, String)>), ctx: &Context<'_>) -> Message {
    Message {
        title: title.to_string(),
        summary: format!("{title}: {limit}"),
        facts,
        link: Some(("Open the queue".into(), ctx.links.queue())),
        ..Message::default()
    }
}

/// "payment on card_1, 12.00 USD"
fn draft_line(e: &Entry) -> String {
    format!("{} on {}, {}", e.draft.kind(), e.draft.account_id(), e.draft.spend_impact())
}

/// The facts of a draft: what, how much, which account, which agent, and
/// the agent's rationale (quoted).
fn draft_message(e: &Entry) -> Message {
    let d = &e.draft;
    let mut facts = vec![
        ("Change".into(), d.kind().to_string()),
        ("Amount".into(), d.spend_impact().to_string()),
        ("Account".into(), d.account_id().to_string()),
    ];
    match &d.proposal().change {
        spend_core::events::DraftChange::Payment { merchant, .. } => facts.push(("Merchant".into(), merchant.clone())),
        spend_core::events::DraftChange::Campaign { .. } => facts.extend(diff_facts(d.diff()).into_iter().map(|(l, v)| (format!("Change {l}"), v))),
    }
    facts.push(("Agent".into(), format!("key {}", e.agent)));
    facts.push(("Draft".into(), d.id().to_string()));
    Message {
        facts,
        quote: Some(("Agent's rationale".into(), d.rationale().to_string())),
        ..Message::default()
    }
}

fn reasons(e: &Entry) -> Vec<String> {
    e.draft
        .decision()
        .map(|d| {
            let mut v: Vec<String> = d.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
            v.push(format!("decided under SPEND.md {}", short_version(&d.policy_version)));
            v
        })
        .unwrap_or_default()
}

/// A diff as facts: ("campaign/c1/daily_budget", "50.00 USD → 75.00 USD").
fn diff_facts(diff: &[FieldDiff]) -> Vec<(String, String)> {
    diff.iter()
        .take(3)
        .map(|f| (f.path.clone(), format!("{} → {}", value_text(&f.before), value_text(&f.after))))
        .collect()
}

fn value_text(v: &serde_json::Value) -> String {
    if let (Some(minor), Some(currency)) = (v.get("minor_units").and_then(|m| m.as_i64()), v.get("currency").and_then(|c| c.as_str()))
        && let Ok(m) = spend_core::Money::new(minor, currency)
    {
        return m.to_string();
    }
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// `sha256:0123456789ab…`
fn short_version(v: &str) -> String {
    v.chars().take(19).collect::<String>() + if v.chars().count() > 19 { "…" } else { "" }
}

/// "2026-12-04 15:00 UTC" from RFC 3339.
pub fn short_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}
