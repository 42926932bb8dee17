//! `spend rollback`: an operator asks to undo pushed changes — named
//! drafts, or everything one agent pushed since a date — as one
//! `spend.rollback.requested.v1` on the operator's `rollback_request`
//! subject. It moves nothing by itself: the approval service opens an
//! approval request (the approvers are notified with a link), a human
//! approves the request's exact bytes with a passkey, and only then does
//! the executor restore each change, refusing any whose live state moved
//! since its push.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use spend_core::events::{EventData, MAX_ROLLBACK_CHANGES, RollbackItem, RollbackRequested};
use spend_draft::DraftStatus;

use crate::RollbackArgs;
use crate::config::SpendConfig;

/// `--since` as a date (midnight UTC) or an RFC 3339 time.
fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("--since {s:?} is neither a date (2026-11-30) nor an RFC 3339 time"))?;
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

pub async fn run(config: SpendConfig, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let RollbackArgs {
        drafts,
        agent,
        since,
        org,
        reason,
        expires_minutes,
        data_dir,
    } = args;
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is on the record and on the approver's page)");
    }
    if !(5..=7 * 24 * 60).contains(&expires_minutes) {
        anyhow::bail!("--expires-minutes must be between 5 and 10080 (a week)");
    }
    let since = since.as_deref().map(parse_since).transpose()?;
    let prefix = config.nats.subject_prefix.clone();
    let log = super::operator::open_log(&config, data_dir.as_deref()).await?;
    let book = super::operator::replay(log.clone(), &config, data_dir.as_deref()).await?;
    let mut chosen: Vec<String> = Vec::new();
    for d in &drafts {
        match book.entry(&org, d) {
            Some(e) if e.draft.status() == DraftStatus::Pushed => chosen.push(d.clone()),
            Some(e) => anyhow::bail!("draft {d} is {}, not pushed: there is nothing to roll back", e.draft.status().as_str()),
            None => anyhow::bail!("no draft {d} of {org} is on the log"),
        }
    }
    if agent.is_some() || since.is_some() {
        for e in book.pushed(&org, usize::MAX) {
            let by_agent = agent.as_deref().is_none_or(|a| e.agent == a);
            let in_time = since.is_none_or(|t| e.pushed_at.is_some_and(|p| p >= t));
            if by_agent && in_time && e.draft.status() == DraftStatus::Pushed && !chosen.iter().any(|c| c == e.draft.id()) {
                chosen.push(e.draft.id().to_string());
            }
        }
        if chosen.is_empty() {
            anyhow::bail!("no change of {org} that is still live matches: nothing to roll back");
        }
    }
    if chosen.is_empty() {
        anyhow::bail!("name the drafts to roll back, or choose them with --agent and/or --since");
    }
    if chosen.len() > MAX_ROLLBACK_CHANGES {
        anyhow::bail!(
            "{} changes match; one request undoes at most {MAX_ROLLBACK_CHANGES}: narrow --since or name the drafts",
            chosen.len()
        );
    }
    let rollback_id = format!("rb_{}", uuid::Uuid::now_v7().simple());
    let expires_at = (Utc::now() + chrono::Duration::minutes(expires_minutes)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let request = RollbackRequested {
        rollback_id: rollback_id.clone(),
        changes: chosen
            .iter()
            .map(|d| RollbackItem {
                change_id: format!("ch_{d}"),
                draft_id: d.clone(),
            })
            .collect(),
        reason: reason.trim().chars().take(1_000).collect(),
        requested_by: "operator".into(),
        expires_at: expires_at.clone(),
    };
    super::operator::record_as_operator(
        log,
        &prefix,
        &org,
        "rollback_request",
        &rollback_id,
        EventData::RollbackRequested(request),
        Some(0),
    )
    .await?;
    for d in &chosen {
        eprintln!("  {d}");
    }
    eprintln!(
        "asked to roll back {} change(s) of {org}; an approver approves it with a passkey before {expires_at} (the approvers are notified; the app's queue lists it)",
        chosen.len()
    );
    println!("{rollback_id}");
    Ok(ExitCode::SUCCESS)
}
