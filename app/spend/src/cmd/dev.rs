//! `spend dev`: every service in one process on embedded defaults (an
//! embedded durable event log, SQLite, a local signing key), persisting
//! under a data folder, like `vault server -dev`. Every service is built
//! with the same `Application::build(config, deps)` that `spend serve`
//! uses, on embedded dependencies, and stopped with the same drain.
//!
//! On first start it writes a restrictive `SPEND.md` (edit it and restart)
//! and a development agent key, kept in a 0600 file and never printed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use spend_core::Actor;
use spend_core::events::EventData;
use spend_credentials::{AgentScope, generate};
use spend_eventlog::EventLog;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_executor::accounts::Connections;
use spend_executor::connector::PlatformConnector;
use spend_ledger::store::{SqliteStore, Store};
use spend_signer::LocalSigner;

use crate::DevArgs;
use crate::config::{DevPaths, SpendConfig};

/// The policy `spend dev` starts with: small limits, a human approves
/// everything (no auto_approve_under).
const DEFAULT_SPEND_MD: &str = "\
# SPEND.md for `spend dev` - edit and restart; `spend policy validate` checks it
## Spending - Start Restrictive
spend:
  monthly_limit: 50 USD
  daily_limit: 10 USD
  per_transaction: 5 USD
  allowlist:
    - openai.com
    - anthropic.com
  allowed_categories: []
  require_https: true
## Approval - Human in the Loop
approval:
  require_confirmation_over: 25 USD
  notify_on_all: true
  timeout_action: deny
  timeout_minutes: 15
## Security
security:
  api_key_rotation_days: 90
";

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The approval links' secret of `spend dev`: created once, kept in a
/// 0600 file, so links printed before a restart still open after it.
/// A random secret kept in `path` (0600), made on first start.
fn dev_secret(path: &Path) -> anyhow::Result<spend_core::Secret> {
    if !path.exists() {
        write_private(path, &format!("{}\n", spend_credentials::random_hex(32)?))?;
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(spend_core::Secret::new(text.trim()))
}

/// The development agent key: created once, recorded on the log, kept in a file.
async fn dev_agent_key(log: Arc<dyn EventLog>, path: &Path, prefix: &str) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let key = generate("dev", "dev-agent", &[AgentScope::Read, AgentScope::Draft], chrono::Utc::now())?;
    // Keys are the operator's to record; `spend dev` is its own operator.
    let recorder = spend_eventlog::Recorder::new(log, prefix, spend_core::authority::Writer::Operator);
    recorder
        .event(
            "dev",
            Actor::service("spend-dev"),
            "apikey",
            &key.created.key_id,
            EventData::ApiKeyCreated(key.created.clone()),
        )
        .record()
        .await?;
    write_private(path, &format!("{}\n", key.secret))
}

pub async fn run(config: SpendConfig, args: DevArgs) -> anyhow::Result<ExitCode> {
    let paths = DevPaths::new(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating the data folder {}", args.data_dir.display()))?;
    let prefix = config.nats.subject_prefix.clone();
    let events = EmbeddedLog::open(EmbeddedConfig::new(&paths.events))
        .await
        .context("opening the embedded event log")?;

    // The policy, created on first start.
    if !paths.policy.exists() {
        std::fs::write(&paths.policy, DEFAULT_SPEND_MD).with_context(|| format!("writing {}", paths.policy.display()))?;
    }
    let (policy, source) = super::load_policy(&paths.policy)?;
    let log: Arc<dyn EventLog> = Arc::new(events);
    dev_agent_key(log.clone(), &paths.agent_key, &prefix)
        .await
        .context("creating the development agent key")?;

    // Every verifier pins the passkey page's relying party, as configured
    // (its default origin names the page's port, and the page gives
    // assertions back to the app's origin: a port 0 is chosen now).
    let approval_listen = port_now(
        args.approval_listen.clone().unwrap_or_else(|| config.approval.listen.clone()),
        "the approval app",
    )?;
    let passkey_listen = port_now(args.passkey_listen.clone().unwrap_or_else(|| config.passkey.listen.clone()), "the passkey page")?;
    let passkey = config.passkey.relying_party_at(&passkey_listen);
    std::fs::write(
        &paths.relying_party,
        serde_json::json!({"rp_id": passkey.rp_id, "origin": passkey.origin}).to_string(),
    )
    .with_context(|| format!("writing {}", paths.relying_party.display()))?;
    let (ledger, key_id) = start_ledger(&config, &args, &paths, &log, &prefix, &passkey).await?;
    let (sandbox, sandbox_listener, client_secret) = start_sandbox(&config, &args, &paths).await?;
    let sandbox_addr = sandbox_listener.local_addr()?;
    let sandbox_url = format!("http://{sandbox_addr}");
    let (executor, connections, connector) = start_executor(&config, &args, &paths, &log, &prefix, &sandbox_url, client_secret, &policy, &passkey).await?;
    let executor_addr = executor.local_addr();

    let mut gateway_config = super::serve::gateway_config(&config.gateway)?;
    gateway_config.passkey = passkey.clone();
    // A flag wins; else `gateway.listen` (SPEND__GATEWAY__LISTEN), which
    // gateway_config already took from the configuration.
    if let Some(listen) = &args.gateway_listen {
        gateway_config.listen = listen.clone();
    }
    let prefix_for_approval = prefix.clone();
    let policy_service = start_policy(&config, &args, &log, &prefix, &policy, &source, &passkey).await?;
    let policy_addr = policy_service.local_addr();
    let gateway_deps = spend_gateway::Deps {
        log: log.clone(),
        prefix,
        policy,
        policy_approved_by_human: false,
        reads: Arc::new(connector),
        decider: Arc::new(policy_service.decider()),
    };
    // MCP sign-in: the gateway's one canonical MCP URL, which the approval
    // service issues tokens for and the gateway checks them against.
    // A port chosen now, so both know the URL before either serves.
    gateway_config.listen = port_now(gateway_config.listen, "the gateway")?;
    let gateway_port = gateway_config.listen.rsplit(':').next().unwrap_or("7100").to_string();
    let resource = gateway_config
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{gateway_port}/mcp"));
    gateway_config.resource_url = Some(resource.clone());
    let mut approval_settings = config.approval.clone();
    if approval_settings.mcp.resource.is_empty() {
        approval_settings.mcp.resource = resource.clone();
        // Clients in development run on this machine: their metadata
        // documents may be served from loopback.
        approval_settings.mcp.allow_private_metadata = true;
    }
    let (approval, passkey_page) = start_approval(
        &config,
        &paths,
        &log,
        &prefix_for_approval,
        approval_settings,
        approval_listen,
        passkey_listen,
        &passkey,
        connections.clone(),
    )
    .await?;
    let approval_addr = approval.local_addr();
    if gateway_config.oauth.is_none() {
        signed_in_at(&mut gateway_config, approval.origin(), &resource);
    }
    let gateway = spend_gateway::Application::build(gateway_config, gateway_deps).await?;

    banner(&Banner {
        args: &args,
        paths: &paths,
        gateway: gateway.local_addr(),
        resource: &resource,
        ledger: ledger.local_addr(),
        policy: policy_addr,
        sandbox: sandbox_addr,
        executor: executor_addr,
        approval: (approval.origin(), approval_addr),
        passkey: (&passkey, passkey_page.local_addr()),
        version: spend_policy::spendmd::version_of(&source),
        key_id: &key_id,
    });

    let running = Running {
        ledger,
        gateway,
        sandbox: (sandbox, sandbox_listener, sandbox_url),
        executor: (executor, connections),
        policy: policy_service,
        approval,
        passkey: passkey_page,
    };
    running.until_signal(log, prefix_for_approval).await?;
    Ok(ExitCode::SUCCESS)
}

/// The executor on the sandbox platform, with its vault (SQLite and a
/// local key in the data folder): the application, its connections and the
/// connector the gateway reads through.
#[allow(clippy::too_many_arguments)]
async fn start_executor(
    config: &SpendConfig,
    args: &DevArgs,
    paths: &DevPaths,
    log: &Arc<dyn EventLog>,
    prefix: &str,
    sandbox_url: &str,
    client_secret: spend_core::Secret,
    policy: &spend_policy::spendmd::SpendMd,
    passkey: &spend_draft::proof::RelyingParty,
) -> anyhow::Result<(spend_executor::Application, Arc<Connections>, PlatformConnector)> {
    let vault_keys = spend_executor::vault::keys::LocalKeys::load_or_create(&paths.vault_key).context("the vault's local key")?;
    let vault_store = spend_executor::vault::store::SqliteConnections::open(&paths.vault_database)
        .await
        .context("opening the vault's SQLite database")?;
    let connections = Arc::new(
        spend_executor::accounts::Connections::new(
            spend_executor::accounts::PlatformOAuth::sandbox(sandbox_url, &config.sandbox.oauth_client_id, client_secret),
            spend_executor::vault::Vault::new(Arc::new(vault_keys)),
            Arc::new(vault_store),
            spend_eventlog::Recorder::new(log.clone(), prefix, spend_core::authority::Writer::Executor),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let connector = spend_executor::connector::PlatformConnector::new(sandbox_url, connections.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pusher = spend_executor::push::Pusher::new(
        spend_eventlog::Recorder::new(log.clone(), prefix, spend_core::authority::Writer::Executor),
        connections.clone(),
        sandbox_url,
        config.executor.push(Arc::new(policy.clone()), passkey.clone()),
    )
    .map_err(anyhow::Error::msg)?;
    let executor = spend_executor::Application::build(
        spend_executor::ExecutorConfig {
            listen: args.executor_listen.clone().unwrap_or_else(|| config.executor.listen.clone()),
            // One process on loopback: no callers to tell apart.
            callers: None,
        },
        spend_executor::Deps {
            reads: Arc::new(connector.clone()),
            connections: Some(connections.clone()),
            pusher: Some(pusher),
            alerts: None,
        },
    )
    .await?;
    Ok((executor, connections, connector))
}

/// Where `spend dev` serves what, for its banner.
struct Banner<'a> {
    args: &'a DevArgs,
    paths: &'a DevPaths,
    gateway: std::net::SocketAddr,
    resource: &'a str,
    ledger: std::net::SocketAddr,
    policy: std::net::SocketAddr,
    sandbox: std::net::SocketAddr,
    executor: std::net::SocketAddr,
    approval: (String, std::net::SocketAddr),
    passkey: (&'a spend_draft::proof::RelyingParty, std::net::SocketAddr),
    version: String,
    key_id: &'a str,
}

fn banner(b: &Banner<'_>) {
    let Banner {
        args,
        paths,
        gateway,
        resource,
        ledger,
        policy,
        sandbox,
        executor,
        version,
        key_id,
        ..
    } = b;
    let ((approval_origin, approval_addr), (passkey, passkey_addr)) = (&b.approval, b.passkey);
    eprintln!("SpendSignoff dev: embedded defaults, data in {}", args.data_dir.display());
    eprintln!("  gateway MCP     http://{gateway}/mcp  (agent key in {})", paths.agent_key.display());
    eprintln!("  gateway gRPC    http://{gateway}  (AgentGateway, same key)");
    eprintln!("  MCP sign-in     {resource}  (an MCP client given this URL signs in through the approvals app)");
    eprintln!("  ledger gRPC     http://{ledger}  (health, reflection)");
    eprintln!("  policy gRPC     http://{policy}  (decide, validate, version in force, dry-run evaluation)");
    eprintln!(
        "  sandbox         http://{sandbox}  (ad and card platform, with its OAuth consent pages; test control with the token in {})",
        paths.sandbox_control.display()
    );
    eprintln!("  executor gRPC   http://{executor}  (reads, connected accounts: `spend account …`)");
    eprintln!(
        "  approvals       {approval_origin}/approvals  (on {approval_addr}; links and the outbox folder {})",
        paths.outbox.display()
    );
    eprintln!(
        "  passkey page    {}  (on {passkey_addr}; RP ID {}: the only page where approval passkeys are created and sign)",
        passkey.origin, passkey.rp_id
    );
    eprintln!("  policy          {} ({version})", paths.policy.display());
    eprintln!("  event log       {}", paths.events.display());
    eprintln!("  projection      {}", paths.database.display());
    eprintln!("  signing key     {} ({key_id}; development only)", paths.signing_key.display());
    eprintln!("Ctrl-C stops; a restart keeps history.");
}

/// `listen`, with a port chosen now when it asks for any (`:0`), so that
/// the URLs that name it are known before anything serves.
fn port_now(listen: String, what: &str) -> anyhow::Result<String> {
    if !listen.ends_with(":0") {
        return Ok(listen);
    }
    let probe = std::net::TcpListener::bind(&listen).with_context(|| format!("binding {what} on {listen}"))?;
    Ok(probe.local_addr()?.to_string())
}

/// The approval app with notifications and MCP sign-in mounted on it, and
/// the passkey page (which reads the same log, in production as a NATS user
/// that may only read, and gives assertions back to the app).
#[allow(clippy::too_many_arguments)]
async fn start_approval(
    config: &SpendConfig,
    paths: &DevPaths,
    log: &Arc<dyn EventLog>,
    prefix_for_approval: &str,
    approval_settings: crate::config::ApprovalSettings,
    approval_listen: String,
    passkey_listen: String,
    passkey: &spend_draft::proof::RelyingParty,
    connections: Arc<Connections>,
) -> anyhow::Result<(spend_approval::Application, spend_passkey::Application)> {
    let link_secret = dev_secret(&paths.link_secret).context("the approval links' secret")?;
    let (approval_config, notify_config) =
        approval_settings.service(approval_listen, passkey.clone(), Some(paths.outbox.clone()), Some(link_secret.clone()))?;
    let mcp_sign_in = approval_settings
        .mcp_sign_in(&config.kms, Some((&paths.mcp_token_key, link_secret)))
        .await
        .context("MCP sign-in")?;
    let approval = spend_approval::Application::build(
        approval_config,
        spend_approval::Deps {
            log: log.clone(),
            prefix: prefix_for_approval.to_string(),
            policy: Arc::new(super::load_policy(&paths.policy)?.0),
            accounts: Some(connections),
        },
    )
    .await?;
    let approval = super::serve::with_notifications(approval, log.clone(), prefix_for_approval, notify_config, passkey.clone())?;
    let approval = super::serve::with_mcp_sign_in(approval, log.clone(), prefix_for_approval, mcp_sign_in).await?;
    let passkey_page = spend_passkey::Application::build(
        spend_passkey::PasskeyConfig {
            listen: passkey_listen,
            rp: passkey.clone(),
            app_origin: approval.origin(),
        },
        spend_passkey::Deps {
            log: log.clone(),
            prefix: prefix_for_approval.to_string(),
        },
    )
    .await?;
    Ok((approval, passkey_page))
}

/// Every service of `spend dev`, built and not yet serving.
struct Running {
    ledger: spend_ledger::Application,
    gateway: spend_gateway::Application,
    sandbox: (spend_sandbox::Sandbox, tokio::net::TcpListener, String),
    executor: (spend_executor::Application, Arc<Connections>),
    policy: spend_policy_service::Application,
    approval: spend_approval::Application,
    passkey: spend_passkey::Application,
}

impl Running {
    /// Serves every service until Ctrl-C (or SIGTERM), then stops them all
    /// with their drain and reports the first that failed.
    async fn until_signal(self, log: Arc<dyn EventLog>, prefix_for_approval: String) -> anyhow::Result<()> {
        let Running {
            ledger,
            gateway,
            sandbox: (sandbox, sandbox_listener, sandbox_url),
            executor: (executor, connections),
            policy: policy_service,
            approval,
            passkey: passkey_page,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let sandbox_task = tokio::spawn(sandbox.serve(sandbox_listener, stopped(stop_rx.clone())));
        // `spend dev` is its own platform user: it connects the sandbox's
        // accounts for `dev`, read access only (the sandbox forgets grants when
        // it stops, so on every start).
        match connect_dev_accounts(&connections, &sandbox_url).await {
            Ok(ids) => eprintln!(
                "  accounts        {} connected for {DEV_ORG}, read access only (development only)",
                ids.join(", ")
            ),
            Err(e) => eprintln!("  accounts        could not connect the sandbox's accounts: {e}"),
        }
        let executor_task = tokio::spawn(executor.run_until_stopped(stopped(stop_rx.clone())));
        let policy_task = tokio::spawn(policy_service.run_until_stopped(stopped(stop_rx.clone())));
        let (approval_origin, approval_book) = (approval.origin(), approval.book());
        let approval_task = tokio::spawn(approval.run_until_stopped(stopped(stop_rx.clone())));
        let passkey_task = tokio::spawn(passkey_page.run_until_stopped(stopped(stop_rx.clone())));
        let ledger_task = tokio::spawn(ledger.run_until_stopped(stopped(stop_rx.clone())));
        let anchor_task = tokio::spawn(first_admin(log.clone(), prefix_for_approval, approval_origin, approval_book, stop_rx.clone()));
        let gateway_task = tokio::spawn(gateway.run_until_stopped(stopped(stop_rx)));
        super::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
        let (l, g, s, a, p, _, x, k) = tokio::join!(
            ledger_task,
            gateway_task,
            sandbox_task,
            approval_task,
            policy_task,
            anchor_task,
            executor_task,
            passkey_task
        );
        k.context("the passkey page's task")??;
        x.context("the executor task")??;
        p.context("the policy task")??;
        a.context("the approval task")??;
        s.context("the sandbox task")??;
        l.context("the ledger task")??;
        g.context("the gateway task")??;
        Ok(())
    }
}

/// The ledger on the data folder's ledger stream, SQLite projection and
/// local signing key; and that key's id.
async fn start_ledger(
    config: &SpendConfig,
    args: &DevArgs,
    paths: &DevPaths,
    log: &Arc<dyn EventLog>,
    prefix: &str,
    passkey: &spend_draft::proof::RelyingParty,
) -> anyhow::Result<(spend_ledger::Application, String)> {
    let checkpoints = EmbeddedLog::open(EmbeddedConfig::new(&paths.ledger_stream))
        .await
        .context("opening the embedded ledger stream")?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&paths.database).await.context("opening the SQLite projection")?);
    let signer = LocalSigner::load_or_create(&paths.signing_key).context("loading the dev signing key")?;
    let key_id = spend_signer::Signer::key_id(&signer).to_string();
    let ledger_config = spend_ledger::LedgerConfig {
        listen: args.ledger_listen.clone().unwrap_or_else(|| config.ledger.listen.clone()),
        subject_prefix: prefix.to_string(),
        passkey: passkey.clone(),
        ..config.ledger.clone()
    };
    let ledger = spend_ledger::Application::build(
        ledger_config,
        spend_ledger::Deps {
            events: log.clone(),
            checkpoints: Arc::new(checkpoints),
            store,
            signer: Arc::new(signer),
        },
    )
    .await?;
    Ok((ledger, key_id))
}

/// The policy service, in this process: the gateway's decisions are its
/// calls, and it decides drafts left undecided on its own. A dev policy
/// file is the developer's own: it counts as approved only for what it can
/// do without a mandate, so auto-approval stays off.
async fn start_policy(
    config: &SpendConfig,
    args: &DevArgs,
    log: &Arc<dyn EventLog>,
    prefix: &str,
    policy: &spend_policy::spendmd::SpendMd,
    source: &str,
    passkey: &spend_draft::proof::RelyingParty,
) -> anyhow::Result<spend_policy_service::Application> {
    spend_policy_service::Application::build(
        spend_policy_service::PolicyConfig {
            listen: args.policy_listen.clone().unwrap_or_else(|| config.policy.listen.clone()),
            consumer: spend_policy_service::decide::CONSUMER.to_string(),
            // One process on loopback: no callers to tell apart.
            callers: None,
        },
        spend_policy_service::Deps {
            log: log.clone(),
            prefix: prefix.to_string(),
            bootstrap: spend_policy_service::decide::Bootstrap {
                policy: Arc::new(policy.clone()),
                source: source.to_string(),
                approved_by_human: false,
                passkey: passkey.clone(),
            },
        },
    )
    .await
}

/// The gateway accepts access tokens the approval app at `issuer` signs for
/// `resource`, with the keys it publishes.
fn signed_in_at(gateway_config: &mut spend_gateway::GatewayConfig, issuer: String, resource: &str) {
    gateway_config.authorization_servers = vec![issuer.clone()];
    gateway_config.oauth = Some(spend_gateway::oauth::OAuthConfig {
        keys: spend_gateway::oauth::Keys::jwks(format!("{issuer}/oauth/jwks.json")),
        issuer,
        audience: resource.to_string(),
    });
}

/// The sandbox platform, in-process but over a real socket (bound now, not
/// yet serving); its OAuth client (the executor) has a fresh secret each
/// start, returned with it.
async fn start_sandbox(
    config: &SpendConfig,
    args: &DevArgs,
    paths: &DevPaths,
) -> anyhow::Result<(spend_sandbox::Sandbox, tokio::net::TcpListener, spend_core::Secret)> {
    let client_secret = spend_core::Secret::new(spend_credentials::random_hex(32).context("generating the sandbox client secret")?);
    let sandbox = spend_sandbox::Sandbox::with_oauth(vec![], vec![config.sandbox.client(client_secret.clone())], config.sandbox.lifetimes());
    // Its test-control routes answer this machine only, with the token
    // kept in the data folder (0600).
    let control = dev_secret(&paths.sandbox_control).context("the sandbox's control token")?;
    sandbox.enable_control(control.expose());
    let sandbox_listen = args.sandbox_listen.clone().unwrap_or_else(|| config.sandbox.listen.clone());
    let sandbox_listener = tokio::net::TcpListener::bind(&sandbox_listen)
        .await
        .with_context(|| format!("binding the sandbox platform on {sandbox_listen}"))?;
    Ok((sandbox, sandbox_listener, client_secret))
}

/// The organisation `spend dev` serves.
const DEV_ORG: &str = "dev";

/// Connects every sandbox account for [`DEV_ORG`] with read access, as a
/// human would: the consent page's Allow, then the callback's code.
async fn connect_dev_accounts(connections: &spend_executor::accounts::Connections, sandbox_url: &str) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut ids = Vec::new();
    for account in ["act_1001", "act_1002", "card_1"] {
        let begun = connections
            .begin(
                DEV_ORG,
                spend_executor::accounts::Access::Read,
                Some(account),
                "http://127.0.0.1/callback",
                "spend dev (development only)",
            )
            .await?;
        let url = reqwest::Url::parse(&begun.authorize_url)?;
        let mut form: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        form.push(("decision".into(), "allow".into()));
        let answer = http.post(format!("{sandbox_url}/oauth/authorize")).form(&form).send().await?;
        let back = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| reqwest::Url::parse(l).ok())
            .context("the sandbox's consent page did not send us back")?;
        let param = |k: &str| back.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        let state = param("state").context("no state in the callback")?;
        let code = param("code").context("no code in the callback")?;
        connections.complete(&state, Ok(&code)).await?;
        ids.push(account.to_string());
    }
    Ok(ids)
}

/// `spend dev` is its own operator for its organisation `dev`, reading the
/// approval service's own book (no second replay of the log). Once the
/// book has caught up: if `dev` has no first admin yet, it invites one (a
/// fresh link each start: links are stored hashed, so an earlier one cannot
/// be printed again) and prints the link; then it anchors the first admin
/// who enrolls, and says so. In production the operator runs
/// `spend approver anchor` with the fingerprint the admin read out.
async fn first_admin(
    log: Arc<dyn EventLog>,
    prefix: String,
    origin: String,
    book: Arc<tokio::sync::RwLock<spend_approvals::book::Book>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut invited = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        let Ok(info) = log.info().await else { continue };
        let waiting = {
            let b = book.read().await;
            if b.seq < info.last_seq {
                continue;
            }
            if b.approvers.bootstrapped(DEV_ORG) {
                return;
            }
            b.approvers.awaiting_anchor(DEV_ORG).into_iter().next()
        };
        if !invited {
            match super::approver::invite(log.clone(), &prefix, DEV_ORG, "admin@dev.localhost", "admin", &origin, 24).await {
                Ok(inv) => {
                    eprintln!("  first admin     enroll with a passkey at {}", inv.link);
                    eprintln!("                  (development only: `spend dev` anchors the first admin who enrolls itself)");
                    invited = true;
                }
                Err(e) => tracing::error!(error = %e, "spend dev could not invite its first admin"),
            }
            continue;
        }
        let Some((approver_id, fingerprint)) = waiting else { continue };
        let anchored = spend_core::events::ApproverAnchored {
            org: DEV_ORG.into(),
            fingerprint: fingerprint.clone(),
        };
        let recorder = spend_eventlog::Recorder::new(log.clone(), &prefix, spend_core::authority::Writer::Operator);
        match recorder
            .event(DEV_ORG, Actor::service("spend-dev"), "anchor", DEV_ORG, EventData::ApproverAnchored(anchored))
            .record()
            .await
        {
            Ok(_) => {
                eprintln!("spend dev anchored {approver_id} as the first admin of {DEV_ORG} (key {fingerprint}; development only)");
                return;
            }
            Err(e) => tracing::error!(error = %e, "spend dev could not anchor its first admin"),
        }
    }
}
