//! `spend transactions`: drafts and payments by their current status, from
//! the ledger's projection.

use std::process::ExitCode;

use crate::TransactionsArgs;
use crate::config::SpendConfig;

const STATUSES: &[&str] = &["proposed", "pending_approval", "approved", "declined", "completed", "rolled_back"];

pub async fn run(config: SpendConfig, args: TransactionsArgs) -> anyhow::Result<ExitCode> {
    if let Some(s) = &args.status
        && !STATUSES.contains(&s.as_str())
    {
        anyhow::bail!("--status {s:?} is not a status; use one of {}", STATUSES.join(", "));
    }
    let from = args.from.as_deref().map(|f| super::parse_time("--from", f)).transpose()?;
    let store = super::open_store(&config, args.source.data_dir.as_deref()).await?;
    let rows = store.transactions(args.status.as_deref(), from, args.org.as_deref()).await?;
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
