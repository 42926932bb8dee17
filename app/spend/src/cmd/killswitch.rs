//! The operator's kill switches, each an audited event that takes effect
//! as the services read it (within a second):
//! - `spend card freeze CARD|--all --org ORG`: the executor refuses every
//!   charge on the card (or any card) from then on, and freezes it at the
//!   platform where its connection may;
//! - `spend agents pause|resume --org ORG`: the gateways refuse the
//!   organisation's agents every read and draft until resumed.

use std::process::ExitCode;

use spend_core::events::{AgentsPaused, AgentsResumed, CardFreezeRequested, EventData};

use crate::config::SpendConfig;
use crate::{AgentsCommand, CardCommand};

pub async fn card(config: SpendConfig, command: CardCommand) -> anyhow::Result<ExitCode> {
    let CardCommand::Freeze {
        card_id,
        all,
        org,
        reason,
        data_dir,
    } = command;
    let card = match (card_id, all) {
        (_, true) => "*".to_string(),
        (Some(c), false) if spend_core::subject::is_valid_token(&c) => c,
        (Some(c), false) => anyhow::bail!("{c:?} is not a card id (letters, digits, _ and -)"),
        (None, false) => anyhow::bail!("name a card, or --all"),
    };
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is on the record)");
    }
    let log = super::operator::open_log(&config, data_dir.as_deref()).await?;
    let id = if card == "*" { "all".to_string() } else { card.clone() };
    let data = EventData::CardFreezeRequested(CardFreezeRequested { card_id: card.clone(), reason });
    super::operator::record_as_operator(log, &config.nats.subject_prefix, &org, "card_freeze", &id, data, None).await?;
    if card == "*" {
        eprintln!("froze every card of {org}: charges are refused from now on");
    } else {
        eprintln!("froze card {card} of {org}: charges on it are refused from now on");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn agents(config: SpendConfig, command: AgentsCommand) -> anyhow::Result<ExitCode> {
    let (org, reason, data_dir, data, what) = match command {
        AgentsCommand::Pause { org, reason, data_dir } => (
            org,
            reason.clone(),
            data_dir,
            EventData::AgentsPaused(AgentsPaused { reason }),
            "paused: no reads or drafts until resumed",
        ),
        AgentsCommand::Resume { org, reason, data_dir } => (org, reason.clone(), data_dir, EventData::AgentsResumed(AgentsResumed { reason }), "resumed"),
    };
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is on the record)");
    }
    let log = super::operator::open_log(&config, data_dir.as_deref()).await?;
    super::operator::record_as_operator(log, &config.nats.subject_prefix, &org, "pause", &org, data, None).await?;
    eprintln!("the agents of {org} are {what}");
    Ok(ExitCode::SUCCESS)
}
