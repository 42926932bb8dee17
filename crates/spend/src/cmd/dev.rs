//! `spend dev`: every service in one process on embedded defaults (an
//! embedded durable event log, SQLite, a local signing key), persisting
//! under a data folder, like `vault server -dev`. As services land, they
//! join here.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_ledger::store::{SqliteStore, Store};
use spend_signer::LocalSigner;

use crate::DevArgs;
use crate::config::{DevPaths, SpendConfig};

pub async fn run(config: SpendConfig, args: DevArgs) -> anyhow::Result<ExitCode> {
    let paths = DevPaths::new(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating the data folder {}", args.data_dir.display()))?;
    let events = EmbeddedLog::open(EmbeddedConfig::new(&paths.events))
        .await
        .context("opening the embedded event log")?;
    let checkpoints = EmbeddedLog::open(EmbeddedConfig::new(&paths.ledger_stream))
        .await
        .context("opening the embedded ledger stream")?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&paths.database).await.context("opening the SQLite projection")?);
    let signer = LocalSigner::load_or_create(&paths.signing_key).context("loading the dev signing key")?;
    let key_id = spend_signer::Signer::key_id(&signer).to_string();
    let ledger_config = spend_ledger::LedgerConfig {
        listen: args.ledger_listen.clone().unwrap_or_else(|| config.ledger.listen.clone()),
        subject_prefix: config.nats.subject_prefix.clone(),
        ..config.ledger.clone()
    };
    let app = spend_ledger::Application::build(
        ledger_config,
        spend_ledger::Deps {
            events: Arc::new(events),
            checkpoints: Arc::new(checkpoints),
            store,
            signer: Arc::new(signer),
        },
    )
    .await?;
    eprintln!("SpendSignoff dev: embedded defaults, data in {}", args.data_dir.display());
    eprintln!("  ledger gRPC     http://{}  (health, reflection)", app.local_addr());
    eprintln!("  event log       {}", paths.events.display());
    eprintln!("  projection      {}", paths.database.display());
    eprintln!("  signing key     {} ({key_id}; development only)", paths.signing_key.display());
    eprintln!("Ctrl-C stops; a restart keeps history.");
    app.run_until_stopped(super::serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
