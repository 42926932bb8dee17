//! The `spend` command line: `spend dev` (everything on embedded defaults),
//! `spend serve <service>` (one service on production backends), and the
//! operator's and auditor's commands (`spend ledger …`,
//! `spend transactions …`). Each command lives in `cmd/`; this file holds
//! the argument definitions and the shared configuration.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod cmd;
pub mod config;

pub use config::SpendConfig;

#[derive(Debug, Parser)]
#[command(name = "spend", version, about = "SpendSignoff: AI agents read and draft; only a signed-in human spends.")]
pub struct Cli {
    /// Configuration file (TOML); `SPEND__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "SPEND_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter: `-v` as asked, else the configured `log.level`,
    /// else the command's default.
    pub fn log_filter_with(&self, configured: &str) -> String {
        if self.verbose == 0 && !configured.trim().is_empty() {
            configured.trim().to_string()
        } else {
            self.log_filter().to_string()
        }
    }

    pub fn log_filter(&self) -> &'static str {
        let serving = matches!(self.command, Command::Dev(_) | Command::Serve { .. });
        match (self.verbose, serving) {
            (0, true) => "info,sqlx=warn,async_nats=warn",
            (0, false) => "warn",
            (1, _) => "info,sqlx=warn",
            _ => "debug",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on embedded defaults (no external service),
    /// persisting under a data folder.
    Dev(DevArgs),
    /// Run one service with production backends from configuration.
    Serve {
        #[command(subcommand)]
        service: Service,
    },
    /// Ledger tools for operators and auditors.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Drafts and payments from the ledger's projection, by current status.
    Transactions(TransactionsArgs),
    /// Agent API keys: create (shown once), rotate, revoke.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// SPEND.md policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// NATS set-up: `spend nats init` creates the streams and consumers
    /// (as the NATS admin user; services cannot).
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
    /// Circuit breakers: reset a tripped one (a human decision).
    Breaker {
        #[command(subcommand)]
        command: BreakerCommand,
    },
    /// Approvers: invite (an enrollment link), anchor a first admin, list, remove.
    Approver {
        #[command(subcommand)]
        command: ApproverCommand,
    },
    /// Connected ad and card accounts: connect (the platform's consent,
    /// read access only), list with their health, disconnect.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Kill switch: freeze a card, or every card (charges refused).
    Card {
        #[command(subcommand)]
        command: CardCommand,
    },
    /// Kill switch: pause an organisation's agents (no reads or drafts),
    /// and resume them.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Ask to undo pushed changes (named drafts, or an agent's since a
    /// date) as one request a human approves with a passkey.
    Rollback(RollbackArgs),
    /// Credentials between services: each caller of the policy service,
    /// the executor and the ledger holds its own.
    Internal {
        #[command(subcommand)]
        command: InternalCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum InternalCommand {
    /// Make a credential for one caller: its token (give it to that caller
    /// only, as SPEND__INTERNAL__TOKEN) and the token's digest (give it to
    /// the services it calls, as SPEND__INTERNAL__CALLERS__<CALLER>).
    Credential {
        /// Who will hold it.
        #[arg(value_enum)]
        caller: InternalCaller,
    },
}

/// The callers of the internal services (`spend_proto::internal::Caller`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InternalCaller {
    /// The agent gateway (reads the executor, asks the policy service).
    Gateway,
    /// The approval app (connects and disconnects accounts at the executor).
    Approval,
    /// The operator's CLI.
    Operator,
    /// An auditor's tools against the ledger.
    Auditor,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The drafts whose pushed changes to undo.
    pub drafts: Vec<String>,
    /// Every change this agent key (its id) pushed that is still live.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only changes pushed since this date (2026-11-30, midnight UTC) or
    /// RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub org: String,
    /// Why (on the record, and on the approver's page).
    #[arg(long)]
    pub reason: String,
    /// How long the request waits for an approver.
    #[arg(long, default_value_t = 24 * 60)]
    pub expires_minutes: i64,
    /// Write to a stopped `spend dev` data folder instead of JetStream.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Freeze a card, or with --all every card of the organisation.
    Freeze {
        #[arg(required_unless_present = "all")]
        card_id: Option<String>,
        #[arg(long, conflicts_with = "card_id")]
        all: bool,
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "frozen by an operator")]
        reason: String,
        /// Write to a stopped `spend dev` data folder instead of JetStream.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// No reads or drafts for the organisation's agents until resumed.
    Pause {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Let the organisation's agents read and draft again.
    Resume {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "resumed by an operator")]
        reason: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Connect an account over the platform's OAuth, read access only:
    /// prints the consent page to open, and waits for the platform to send
    /// the browser back to a loopback port.
    Connect {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "sandbox")]
        platform: String,
        /// The account to preselect on the consent page.
        #[arg(long)]
        account: Option<String>,
        /// The executor's gRPC URL (default: `gateway.executor_url`).
        #[arg(long)]
        executor_url: Option<String>,
        /// How long to wait for the consent.
        #[arg(long, default_value_t = 10)]
        timeout_minutes: u32,
    },
    /// The organisation's connected accounts: scopes and health.
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        executor_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Disconnect an account: revokes its grant at the platform.
    Disconnect {
        account_id: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        executor_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApproverCommand {
    /// Make a single-use enrollment link for EMAIL (printed once; only its
    /// hash is recorded).
    Invite {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// approver or admin.
        #[arg(long, default_value = "approver")]
        role: String,
        /// How long the link works.
        #[arg(long, default_value_t = cmd::approver::INVITE_HOURS)]
        hours: u32,
        /// Write to a stopped `spend dev` data folder instead of JetStream.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Trust an organisation's first admin: the key fingerprint their
    /// enrollment page showed them (once per organisation, ever).
    Anchor {
        #[arg(long)]
        org: String,
        /// Hex SHA-256 of the admin's public key (64 characters).
        #[arg(long)]
        fingerprint: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The organisation's approvers, who vouched for each, and who waits.
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Remove an approver: their approvals from now on do not verify.
    Remove {
        approver_id: String,
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "removed by an operator")]
        reason: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Create (or check) the event and ledger streams and every durable
    /// consumer the services use. Idempotent.
    Init,
}

#[derive(Debug, Subcommand)]
pub enum BreakerCommand {
    /// Resume drafts on an account whose breaker tripped.
    Reset {
        #[arg(long)]
        org: String,
        #[arg(long)]
        account: String,
        /// Why it is safe to resume, for the audit trail.
        #[arg(long)]
        note: String,
        /// Write to a stopped `spend dev` data folder instead of JetStream.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and only its hash is kept.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// mcp.read and/or mcp.draft (mcp.approve is never granted to an agent).
        #[arg(long, default_value = "mcp.read,mcp.draft")]
        scopes: String,
        /// Write to a stopped `spend dev` data folder instead of JetStream.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Replace a key; the old one keeps working for the overlap window.
    Rotate {
        key_id: String,
        #[arg(long)]
        org: String,
        /// How long the old key keeps working, in hours.
        #[arg(long, default_value_t = 24)]
        overlap_hours: u32,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Revoke one key, or with --all every agent credential of the
    /// organisation: every key and every MCP client's grant.
    Revoke {
        /// The key id (the 12 hex characters after `ssk_`).
        #[arg(required_unless_present = "all")]
        key_id: Option<String>,
        #[arg(long)]
        org: String,
        #[arg(long, conflicts_with = "key_id")]
        all: bool,
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a SPEND.md file; reports every error with its line and field.
    Validate {
        /// The SPEND.md file (`-` for stdin).
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Propose a new SPEND.md version as a draft; it applies once a human
    /// approves it through the approval flow.
    Propose {
        file: PathBuf,
        #[arg(long)]
        org: String,
        /// Write to a stopped `spend dev` data folder instead of JetStream.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where `spend dev` keeps its data; a restart keeps history.
    #[arg(long, env = "SPEND_DATA_DIR", default_value = ".spend")]
    pub data_dir: PathBuf,
    /// The ledger's gRPC address (default: `ledger.listen`, i.e.
    /// `SPEND__LEDGER__LISTEN`, 127.0.0.1:7105).
    #[arg(long)]
    pub ledger_listen: Option<String>,
    /// The gateway's HTTP address, MCP at /mcp (default: `gateway.listen`,
    /// i.e. `SPEND__GATEWAY__LISTEN`, 127.0.0.1:7100).
    #[arg(long)]
    pub gateway_listen: Option<String>,
    /// Address of the sandbox ad and card platform (default:
    /// `sandbox.listen`, i.e. `SPEND__SANDBOX__LISTEN`, 127.0.0.1:7400).
    #[arg(long)]
    pub sandbox_listen: Option<String>,
    /// Address of the human approval pages (default: `approval.listen`,
    /// i.e. `SPEND__APPROVAL__LISTEN`, 127.0.0.1:7200).
    #[arg(long)]
    pub approval_listen: Option<String>,
    /// Address of the passkey page (default: `passkey.listen`, i.e.
    /// `SPEND__PASSKEY__LISTEN`, 127.0.0.1:7500); it is opened as
    /// `http://passkey.localhost:<port>` unless `passkey.origin` says
    /// otherwise.
    #[arg(long)]
    pub passkey_listen: Option<String>,
    /// Address of the policy service's gRPC (default: `policy.listen`,
    /// i.e. `SPEND__POLICY__LISTEN`, 127.0.0.1:7102).
    #[arg(long)]
    pub policy_listen: Option<String>,
    /// Address of the executor's gRPC, for `spend account …` (default:
    /// `executor.listen`, i.e. `SPEND__EXECUTOR__LISTEN`, 127.0.0.1:7300).
    #[arg(long)]
    pub executor_listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Service {
    /// The ledger: Merkle tree, KMS-signed checkpoints, projection, proofs.
    Ledger,
    /// The agents' gateway: MCP over Streamable HTTP at /mcp and the gRPC
    /// AgentGateway, on one port.
    Gateway,
    /// The policy core's gRPC service: validate, version in force, dry-run evaluation.
    Policy,
    /// The executor: connected accounts and their vault, the platform
    /// connectors (gRPC, for the gateway's reads and `spend account`).
    Executor,
    /// The approval service: the human approval routes (agent credentials
    /// refused and audited; every passkey ceremony goes to the passkey page).
    Approval,
    /// The passkey page: the one page where approvers' passkeys are created
    /// and sign (reads the log only; holds no secret).
    Passkey,
    /// The sandbox ad and card platform, standing in for a real one.
    Sandbox,
}

/// Where the ledger's data is: a `spend dev` data folder, or the configured
/// production database and KMS key.
#[derive(Debug, Args, Clone)]
pub struct Source {
    /// Read a `spend dev` data folder instead of the configured database.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write the export (JSON Lines, docs/export-format.md) to stdout or a file.
    Export {
        #[command(flatten)]
        source: Source,
        /// First leaf index, or a date/time (2026-01-01, RFC 3339) to start at.
        #[arg(long)]
        from: Option<String>,
        /// Last leaf index (inclusive), or a date/time to end before; the
        /// export ends at the last signed checkpoint in range.
        #[arg(long)]
        to: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the checkpoint verifying key (SPKI PEM, with its key id).
    PublicKey {
        #[command(flatten)]
        source: Source,
    },
    /// Verify an export offline: leaves, roots, signatures.
    Verify {
        /// The export file (`-` for stdin).
        export: PathBuf,
        /// Verifying key(s), SPKI PEM, as `spend ledger public-key` prints.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replay the event stream from JetStream, recompute the tree, and check
    /// it against the latest signed checkpoint.
    Replay {
        /// Start at this stream sequence (default: the beginning).
        #[arg(long, conflicts_with = "from_time")]
        from_seq: Option<u64>,
        /// Start at the first event stored at or after this date/time.
        #[arg(long)]
        from_time: Option<String>,
        /// Write every replayed event as JSON Lines here.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Verify checkpoint signatures with this key (SPKI PEM).
        #[arg(long = "public-key")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct TransactionsArgs {
    #[command(flatten)]
    pub source: Source,
    /// proposed, pending_approval, approved, declined, completed, rolled_back.
    #[arg(long)]
    pub status: Option<String>,
    /// Only those whose status changed on or after this date/time.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub org: Option<String>,
    /// Print JSON Lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cli`'s command with `config` (loaded by the caller, which also
/// set up logging from it).
pub async fn run(cli: Cli, config: SpendConfig) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dev(args) => cmd::dev::run(config, args).await,
        Command::Serve { service: Service::Ledger } => cmd::serve::ledger(config).await,
        Command::Serve { service: Service::Gateway } => cmd::serve::gateway(config).await,
        Command::Serve { service: Service::Policy } => cmd::serve::policy(config).await,
        Command::Serve { service: Service::Executor } => cmd::serve::executor(config).await,
        Command::Serve { service: Service::Approval } => cmd::serve::approval(config).await,
        Command::Serve { service: Service::Passkey } => cmd::serve::passkey_page(config).await,
        Command::Serve { service: Service::Sandbox } => cmd::serve::sandbox(config).await,
        Command::ApiKey { command } => cmd::apikey::run(config, command).await,
        Command::Ledger { command } => cmd::ledger::run(config, command).await,
        Command::Transactions(args) => cmd::transactions::run(config, args).await,
        Command::Policy {
            command: PolicyCommand::Validate { file, json },
        } => cmd::policy::validate(&file, json),
        Command::Policy {
            command: PolicyCommand::Propose { file, org, data_dir },
        } => cmd::policy::propose(config, &file, &org, data_dir.as_deref()).await,
        Command::Breaker { command } => cmd::breaker::run(config, command).await,
        Command::Approver { command } => cmd::approver::run(config, command).await,
        Command::Account { command } => cmd::account::run(config, command).await,
        Command::Card { command } => cmd::killswitch::card(config, command).await,
        Command::Agents { command } => cmd::killswitch::agents(config, command).await,
        Command::Rollback(args) => cmd::rollback::run(config, args).await,
        Command::Nats { command: NatsCommand::Init } => cmd::nats::init(config).await,
        Command::Internal {
            command: InternalCommand::Credential { caller },
        } => cmd::internal::credential(caller),
    }
}
