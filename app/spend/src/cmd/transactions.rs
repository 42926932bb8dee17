//! `spend transactions`: drafts and payments by their current status, from
//! the ledger's projection. Statuses are the draft aggregate's
//! (`spend_draft::DraftStatus`); `--status` also takes SPEND.md's words
//! `completed`, `declined` and `pending_approval`.

use std::process::ExitCode;

use crate::TransactionsArgs;
use crate::config::SpendConfig;

pub async fn run(config: SpendConfig, args: TransactionsArgs) -> anyhow::Result<ExitCode> {
    let wanted = match &args.status {
        Some(s) => Some(spend_draft::statuses_for_filter(s).ok_or_else(|| {
            let all: Vec<&str> = spend_draft::DraftStatus::ALL.iter().map(|s| s.as_str()).collect();
            anyhow::anyhow!(
                "--status {s:?} is not a status; use one of {}, or {}",
                all.join(", "),
                spend_draft::status::NOTIFICATION_FILTERS.join(", ")
            )
        })?),
        None => None,
    };
    let from = args.from.as_deref().map(|f| super::parse_time("--from", f)).transpose()?;
    let store = super::open_store(&config, args.source.data_dir.as_deref()).await?;
    let mut rows = store.transactions(None, from, args.org.as_deref()).await?;
    if let Some(wanted) = wanted {
        rows.retain(|r| wanted.iter().any(|w| w.as_str() == r.status));
    }
    if args.json {
        for r in &rows {
            println!(
                "{}",
                serde_json::json!({"draft_id": r.draft_id, "status": r.status, "org": r.org, "account_id": r.account_id,
                    "amount_minor": r.amount_minor, "currency": r.currency, "time": r.event_time.to_rfc3339()})
            );
        }
    } else {
        println!(
            "{:<28} {:<17} {:<12} {:<14} {:>14}  TIME",
            "DRAFT", "STATUS", "ORG", "ACCOUNT", "AMOUNT (MINOR)"
        );
        for r in &rows {
            let amount = match (r.amount_minor, &r.currency) {
                (Some(m), Some(c)) => format!("{m} {c}"),
                _ => "-".into(),
            };
            println!(
                "{:<28} {:<17} {:<12} {:<14} {:>14}  {}",
                r.draft_id,
                r.status,
                r.org,
                r.account_id.as_deref().unwrap_or("-"),
                amount,
                r.event_time.to_rfc3339()
            );
        }
        eprintln!("{} transaction(s)", rows.len());
    }
    Ok(ExitCode::SUCCESS)
}
