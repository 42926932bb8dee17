//! `spend breaker reset`: a human resumes drafts on an account whose
//! circuit breaker tripped. The reset is an event on the log, so every
//! gateway replica resumes the account.

use std::process::ExitCode;

use spend_core::events::{BreakerReset, EventData};

use crate::BreakerCommand;
use crate::config::SpendConfig;

pub async fn run(config: SpendConfig, command: BreakerCommand) -> anyhow::Result<ExitCode> {
    let BreakerCommand::Reset { org, account, note, data_dir } = command;
    if note.trim().is_empty() {
        anyhow::bail!("--note must say why it is safe to resume");
    }
    let prefix = config.nats.subject_prefix.clone();
    let log = super::operator::open_log(&config, data_dir.as_deref()).await?;
    let subject = spend_core::subject::aggregate_subject(&prefix, &org, "breaker", &account)?;
    let last = log.last_on_subject(&subject).await?;
    let tripped = last
        .as_ref()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
        .is_some_and(|v| v["type"] == spend_core::events::BreakerTripped::TYPE);
    if !tripped {
        eprintln!("the breaker of {account} in {org} is not tripped; nothing to reset");
        return Ok(ExitCode::from(1));
    }
    let data = EventData::BreakerReset(BreakerReset {
        account_id: account.clone(),
        note,
    });
    super::operator::record_as_operator(log, &prefix, &org, "breaker_reset", &account, data, None).await?;
    eprintln!("reset the breaker of {account} in {org}; drafts on it resume");
    Ok(ExitCode::SUCCESS)
}
