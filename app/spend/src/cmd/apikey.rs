//! `spend api-key …`: agent API keys as events on the log, so every
//! gateway replica learns of a new, rotated or revoked key as soon as the
//! log delivers it. A new key's secret is printed once, to stdout; only its
//! SHA-256 is recorded.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spend_core::authority::Writer;
use spend_core::events::{ApiKeyRevoked, EventData};
use spend_credentials::{LogKeys, generate, parse_scopes};
use spend_eventlog::{EventLog, Recorder};

use super::operator::{open_log, operator, record_as_operator};
use crate::ApiKeyCommand;
use crate::config::SpendConfig;

async fn record(log: Arc<dyn EventLog>, prefix: &str, org: &str, key_id: &str, data: EventData) -> anyhow::Result<()> {
    record_as_operator(log, prefix, org, "apikey", key_id, data, None).await.map(|_| ())
}

pub async fn run(config: SpendConfig, command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    let prefix = config.nats.subject_prefix.clone();
    match command {
        ApiKeyCommand::Create { org, name, scopes, data_dir } => {
            spend_core::subject::aggregate_subject(&prefix, &org, "apikey", "x")?;
            let scopes = match parse_scopes(&scopes) {
                Ok(s) => s,
                Err(e @ spend_credentials::ScopeError::ApproveNeverGranted) => {
                    // Asking for the approve scope is itself worth an audit entry.
                    let log = open_log(&config, data_dir.as_deref()).await?;
                    let alert = spend_core::events::SecurityAlert {
                        reason: "apikey.approve_requested".into(),
                        key_id: None,
                        address: None,
                        detail: format!("{} asked for an agent key {name:?} in {org} with mcp.approve; refused", operator().id),
                    };
                    Recorder::new(log, &prefix, Writer::Operator).alert(&org, alert).record().await?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            let log = open_log(&config, data_dir.as_deref()).await?;
            let key = generate(&org, &name, &scopes, chrono::Utc::now())?;
            record(log.clone(), &prefix, &org, &key.created.key_id, EventData::ApiKeyCreated(key.created.clone())).await?;
            eprintln!(
                "created key {} for {org} ({}); the secret below is shown once and never stored:",
                key.created.key_id,
                key.created.scopes.join(", ")
            );
            println!("{}", key.secret);
            Ok(ExitCode::SUCCESS)
        }
        ApiKeyCommand::Rotate {
            key_id,
            org,
            overlap_hours,
            data_dir,
        } => {
            spend_core::subject::aggregate_subject(&prefix, &org, "apikey", &key_id)?;
            let log = open_log(&config, data_dir.as_deref()).await?;
            // The key's state is the log's: replay the API key events as
            // every gateway does (a revocation, one or `--all`, is final).
            let mut keys = LogKeys::default();
            keys.catch_up(&*log, &prefix).await.context("reading the API keys from the event log")?;
            let now = chrono::Utc::now();
            let old = keys
                .store()
                .get(&key_id)
                .filter(|k| k.org == org)
                .with_context(|| format!("no key {key_id} in {org}"))?;
            if old.revoked {
                anyhow::bail!("key {key_id} in {org} has been revoked and cannot be rotated; create a new one with `spend api-key create`");
            }
            if old.expires_at.is_some_and(|t| now >= t) {
                anyhow::bail!("key {key_id} in {org} was rotated and its overlap window has ended; rotate its replacement instead");
            }
            let (name, scopes, earlier) = (old.name.clone(), old.scopes.clone(), old.expires_at);
            let until = now + chrono::Duration::hours(overlap_hours as i64);
            let mut key = generate(&org, &name, &scopes, now)?;
            key.created.replaces = Some(key_id.clone());
            key.created.overlap_until = Some(until.to_rfc3339());
            record(log.clone(), &prefix, &org, &key.created.key_id, EventData::ApiKeyCreated(key.created.clone())).await?;
            // A window only ever shortens: an earlier rotation's end stands.
            let keeps = match earlier {
                Some(t) if t < until => format!("until {} (an earlier rotation's window)", t.to_rfc3339()),
                _ => format!("for {overlap_hours} h"),
            };
            eprintln!(
                "rotated {key_id} → {}; {key_id} keeps working {keeps}. The new secret is shown once:",
                key.created.key_id
            );
            println!("{}", key.secret);
            Ok(ExitCode::SUCCESS)
        }
        ApiKeyCommand::Revoke {
            key_id,
            org,
            all,
            reason,
            data_dir,
        } => {
            let log = open_log(&config, data_dir.as_deref()).await?;
            let target = if all {
                "*".to_string()
            } else {
                key_id.expect("clap requires a key id without --all")
            };
            let subject_id = if all { "all".to_string() } else { target.clone() };
            record(
                log.clone(),
                &prefix,
                &org,
                &subject_id,
                EventData::ApiKeyRevoked(ApiKeyRevoked {
                    key_id: target.clone(),
                    org: org.clone(),
                    reason,
                }),
            )
            .await?;
            eprintln!(
                "revoked {} in {org}; gateways refuse it as soon as they read the event",
                if all {
                    "every key and every MCP client's grant".to_string()
                } else {
                    format!("key {target}")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
