//! `spend serve <service>`: one service on production backends.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spend_eventlog::jetstream::JetStreamLog;
use spend_ledger::store;
use spend_signer::KmsSigner;

use crate::config::SpendConfig;

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

pub async fn ledger(config: SpendConfig) -> anyhow::Result<ExitCode> {
    if config.database.url.is_empty() {
        anyhow::bail!("no database configured: set SPEND__DATABASE__URL (postgres://…) or database.url in the config file");
    }
    if config.kms.key_id.is_empty() {
        anyhow::bail!("no KMS key configured: set SPEND__KMS__KEY_ID (a key id, ARN or alias/…) or kms.key_id in the config file");
    }
    let events = JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?;
    let checkpoints = JetStreamLog::with_client(events.client().clone(), config.ledger_stream())
        .await
        .context("opening the ledger stream")?;
    let store = store::connect(&config.database.url)
        .await
        .with_context(|| format!("opening the database {}", store::redact(&config.database.url)))?;
    let signer = KmsSigner::connect(&config.kms).await.context("connecting to KMS")?;
    let ledger_config = spend_ledger::LedgerConfig {
        subject_prefix: config.nats.subject_prefix.clone(),
        ..config.ledger.clone()
    };
    let app = spend_ledger::Application::build(
        ledger_config,
        spend_ledger::Deps {
            events: Arc::new(events),
            checkpoints: Arc::new(checkpoints),
            store: Arc::from(store),
            signer: Arc::new(signer),
        },
    )
    .await?;
    tracing::info!(addr = %app.local_addr(), "ledger serving");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn gateway(config: SpendConfig) -> anyhow::Result<ExitCode> {
    if config.gateway.policy_file.is_empty() {
        anyhow::bail!("no SPEND.md configured: set SPEND__GATEWAY__POLICY_FILE or gateway.policy_file in the config file");
    }
    let (policy, _) = super::load_policy(std::path::Path::new(&config.gateway.policy_file))?;
    let events = JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?;
    let state = Arc::new(spend_gateway::GatewayState::new(
        Arc::new(events),
        config.nats.subject_prefix.clone(),
        policy,
        config.gateway.policy_approved_by_human,
    ));
    let app = spend_gateway::Application::build(
        spend_gateway::GatewayConfig {
            listen: config.gateway.listen.clone(),
        },
        state,
    )
    .await?;
    tracing::info!(addr = %app.local_addr(), "gateway serving MCP at /mcp");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
