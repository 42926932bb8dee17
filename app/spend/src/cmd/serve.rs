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
        callers: config.internal.callers()?,
        passkey: passkey(&config),
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

/// The gateway's settings from configuration.
/// The relying party approval passkeys are made on (the passkey page's),
/// as every verifier of this deployment pins it (from its own
/// configuration, never an event).
pub fn passkey(config: &SpendConfig) -> spend_draft::proof::RelyingParty {
    config.passkey.relying_party()
}

pub fn gateway_config(settings: &crate::config::GatewaySettings) -> anyhow::Result<spend_gateway::GatewayConfig> {
    let mut config = spend_gateway::GatewayConfig::new(settings.listen.clone());
    config.trusted_proxies = settings
        .trusted_proxies
        .iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("gateway.trusted_proxies: {p:?} is not an IP address or CIDR block"))
        })
        .collect::<anyhow::Result<_>>()?;
    config.resource_url = (!settings.resource_url.is_empty()).then(|| settings.resource_url.clone());
    config.allowed_hosts = settings.allowed_hosts.iter().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
    config.authorization_servers = settings.authorization_servers.clone();
    if !settings.oauth_issuer.is_empty() {
        use p256::pkcs8::DecodePublicKey as _;
        let audience = config
            .resource_url
            .clone()
            .context("gateway.oauth_issuer needs gateway.resource_url: tokens must name this gateway as their audience")?;
        // One key file, or the issuer's JWKS (keys by kid, so it can rotate).
        let keys = if settings.oauth_public_key_file.is_empty() {
            let url = if settings.oauth_jwks_url.is_empty() {
                format!("{}/oauth/jwks.json", settings.oauth_issuer.trim_end_matches('/'))
            } else {
                settings.oauth_jwks_url.clone()
            };
            spend_gateway::oauth::Keys::jwks(url)
        } else {
            let pem = std::fs::read_to_string(&settings.oauth_public_key_file)
                .with_context(|| format!("gateway.oauth_public_key_file: reading {:?}", settings.oauth_public_key_file))?;
            let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
                .map_err(|e| anyhow::anyhow!("gateway.oauth_public_key_file: not a P-256 public key (SPKI PEM): {e}"))?;
            spend_gateway::oauth::Keys::fixed(key)
        };
        if !config.authorization_servers.contains(&settings.oauth_issuer) {
            config.authorization_servers.push(settings.oauth_issuer.clone());
        }
        config.oauth = Some(spend_gateway::oauth::OAuthConfig {
            issuer: settings.oauth_issuer.clone(),
            audience,
            keys,
        });
    }
    Ok(config)
}

pub async fn gateway(config: SpendConfig) -> anyhow::Result<ExitCode> {
    if config.gateway.policy_file.is_empty() {
        anyhow::bail!("no SPEND.md configured: set SPEND__GATEWAY__POLICY_FILE or gateway.policy_file in the config file");
    }
    let (policy, _) = super::load_policy(std::path::Path::new(&config.gateway.policy_file))?;
    let events = JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?;
    let reads = spend_platform::grpc::ExecutorClient::connect_lazy(&config.gateway.executor_url, config.internal.token())
        .map_err(|e| anyhow::anyhow!("gateway.executor_url: {e}"))?;
    let decider = spend_policy_service::grpc::PolicyClient::connect_lazy(&config.gateway.policy_url, config.internal.token())
        .map_err(|e| anyhow::anyhow!("gateway.policy_url: {e}"))?;
    let deps = spend_gateway::Deps {
        log: Arc::new(events),
        prefix: config.nats.subject_prefix.clone(),
        policy,
        policy_approved_by_human: config.gateway.policy_approved_by_human,
        reads: Arc::new(reads),
        decider: Arc::new(decider),
    };
    let mut gw_config = gateway_config(&config.gateway)?;
    gw_config.passkey = passkey(&config);
    let app = spend_gateway::Application::build(gw_config, deps).await?;
    tracing::info!(addr = %app.local_addr(), executor = %config.gateway.executor_url, "gateway serving MCP at /mcp and gRPC AgentGateway");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn policy(config: SpendConfig) -> anyhow::Result<ExitCode> {
    let file = if config.policy.policy_file.is_empty() {
        &config.gateway.policy_file
    } else {
        &config.policy.policy_file
    };
    if file.is_empty() {
        anyhow::bail!("no SPEND.md configured: set SPEND__POLICY__POLICY_FILE (or SPEND__GATEWAY__POLICY_FILE)");
    }
    let (policy, source) = super::load_policy(std::path::Path::new(file))?;
    let events = JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?;
    let version = policy.version.clone();
    let app = spend_policy_service::Application::build(
        spend_policy_service::PolicyConfig {
            listen: config.policy.listen.clone(),
            consumer: config.policy.consumer.clone(),
            callers: config.internal.callers()?,
        },
        spend_policy_service::Deps {
            log: Arc::new(events),
            prefix: config.nats.subject_prefix.clone(),
            bootstrap: spend_policy_service::decide::Bootstrap {
                policy: Arc::new(policy),
                source,
                approved_by_human: config.policy.policy_approved_by_human,
                passkey: passkey(&config),
            },
        },
    )
    .await?;
    tracing::info!(addr = %app.local_addr(), %version, "policy service serving gRPC");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The executor's connected accounts on production backends: the vault
/// in PostgreSQL with its data keys wrapped by KMS, the platform's OAuth.
pub async fn connections(
    config: &SpendConfig,
    log: std::sync::Arc<dyn spend_eventlog::EventLog>,
) -> anyhow::Result<std::sync::Arc<spend_executor::accounts::Connections>> {
    let e = &config.executor;
    let secret = e
        .oauth_client_secret
        .clone()
        .filter(|s| !s.is_empty())
        .context("no OAuth client secret configured: set SPEND__EXECUTOR__OAUTH_CLIENT_SECRET (the platform registered it for executor.oauth_client_id)")?;
    let url = match &e.database_url {
        Some(u) if !u.is_empty() => u.expose().to_string(),
        _ => config.database.url.clone(),
    };
    if url.is_empty() {
        anyhow::bail!("no database for the vault: set SPEND__EXECUTOR__DATABASE_URL (or SPEND__DATABASE__URL)");
    }
    let keys = spend_executor::vault::keys::KmsKeys::connect(&e.vault_key_id, config.kms.region.as_deref(), config.kms.endpoint.as_deref())
        .await
        .context("the vault's KMS key (executor.vault_key_id)")?;
    let store = spend_executor::vault::store::PgConnections::connect(&url)
        .await
        .with_context(|| format!("the vault's database {}", spend_core::secret::redact_url(&url)))?;
    let recorder = spend_eventlog::Recorder::new(log, config.nats.subject_prefix.clone(), spend_core::authority::Writer::Executor);
    let c = spend_executor::accounts::Connections::new(
        spend_executor::accounts::PlatformOAuth::sandbox(&e.platform_url, &e.oauth_client_id, secret),
        spend_executor::vault::Vault::new(std::sync::Arc::new(keys)),
        std::sync::Arc::new(store),
        recorder,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .with_refresh_margin(chrono::Duration::seconds(e.refresh_margin_seconds as i64));
    Ok(std::sync::Arc::new(c))
}

pub async fn executor(config: SpendConfig) -> anyhow::Result<ExitCode> {
    let file = [&config.executor.policy_file, &config.policy.policy_file, &config.gateway.policy_file]
        .into_iter()
        .find(|f| !f.is_empty())
        .context("no SPEND.md configured for the executor's re-checks: set SPEND__EXECUTOR__POLICY_FILE (or the policy service's or gateway's policy_file)")?;
    let (bootstrap, _) = super::load_policy(std::path::Path::new(file))?;
    let events: Arc<dyn spend_eventlog::EventLog> = Arc::new(JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?);
    let connections = connections(&config, events.clone()).await?;
    let connector =
        spend_executor::connector::PlatformConnector::new(&config.executor.platform_url, connections.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let recorder = spend_eventlog::Recorder::new(events, config.nats.subject_prefix.clone(), spend_core::authority::Writer::Executor);
    let alerts = recorder.clone();
    let pusher = spend_executor::push::Pusher::new(
        recorder,
        connections.clone(),
        &config.executor.platform_url,
        config.executor.push(Arc::new(bootstrap), passkey(&config)),
    )
    .map_err(anyhow::Error::msg)?;
    let app = spend_executor::Application::build(
        spend_executor::ExecutorConfig {
            listen: config.executor.listen.clone(),
            callers: config.internal.callers()?,
        },
        spend_executor::Deps {
            reads: Arc::new(connector),
            connections: Some(connections),
            pusher: Some(pusher),
            alerts: Some(spend_eventlog::alerts::AlertSink::spawn(alerts)),
        },
    )
    .await?;
    tracing::info!(addr = %app.local_addr(), platform = %spend_core::secret::redact_url(&config.executor.platform_url), "executor serving gRPC");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn approval(config: SpendConfig) -> anyhow::Result<ExitCode> {
    // Configuration first: a mistake there is reported before any connection.
    let (service, notify) = config.approval.service(config.approval.listen.clone(), passkey(&config), None, None)?;
    let mcp_sign_in = config.approval.mcp_sign_in(&config.kms, None).await?;
    let file = if config.approval.policy_file.is_empty() {
        &config.gateway.policy_file
    } else {
        &config.approval.policy_file
    };
    if file.is_empty() {
        anyhow::bail!("no SPEND.md configured for its approval timeouts: set SPEND__APPROVAL__POLICY_FILE (or the gateway's policy_file)");
    }
    let (policy, _) = super::load_policy(std::path::Path::new(file))?;
    let events: Arc<dyn spend_eventlog::EventLog> = Arc::new(JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?);
    let app = spend_approval::Application::build(
        service,
        spend_approval::Deps {
            log: events.clone(),
            prefix: config.nats.subject_prefix.clone(),
            policy: Arc::new(policy),
            // The Accounts page asks the executor, which alone holds tokens.
            accounts: Some(Arc::new(
                spend_platform::grpc::ExecutorClient::connect_lazy(&config.gateway.executor_url, config.internal.token())
                    .map_err(|e| anyhow::anyhow!("gateway.executor_url: {e}"))?,
            )),
        },
    )
    .await?;
    let app = with_notifications(app, events.clone(), &config.nats.subject_prefix, notify, passkey(&config))?;
    let app = with_mcp_sign_in(app, events, &config.nats.subject_prefix, mcp_sign_in).await?;
    tracing::info!(addr = %app.local_addr(), origin = %app.origin(), "approval service serving the approval app");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The approval app with its notifications beside it: Slack and email for
/// the requests it opens (the same links) and SPEND.md's events, recorded
/// with the approval service's authority.
pub(crate) fn with_notifications(
    app: spend_approval::Application,
    log: Arc<dyn spend_eventlog::EventLog>,
    prefix: &str,
    config: spend_notify::NotifyConfig,
    passkey: spend_draft::proof::RelyingParty,
) -> anyhow::Result<spend_approval::Application> {
    let recorder = spend_eventlog::Recorder::new(log.clone(), prefix, spend_core::authority::Writer::Approval);
    let notifier = spend_notify::Notifier::new(config, app.links(), recorder, app.bootstrap(), passkey).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(app.with_companion(notifier.runner(log)))
}

/// The approval app with MCP sign-in's authorization server on its origin
/// and in its process (when `config` is set): its pages behind the app's
/// gate, its clients' routes outside it, its follower beside the app's.
pub(crate) async fn with_mcp_sign_in(
    app: spend_approval::Application,
    log: Arc<dyn spend_eventlog::EventLog>,
    prefix: &str,
    config: Option<spend_mcp_signin::OAuthConfig>,
) -> anyhow::Result<spend_approval::Application> {
    let Some(config) = config else { return Ok(app) };
    let m = spend_mcp_signin::mount(app.signed_in(), &app.origin(), log.clone(), prefix, config).await?;
    let runner = m.runner(log);
    Ok(app.with_routes(m.pages, m.public).with_companion(runner))
}

/// The passkey page: reads the log as its own read-only NATS user; holds no
/// secret.
pub async fn passkey_page(config: SpendConfig) -> anyhow::Result<ExitCode> {
    let page = spend_passkey::PasskeyConfig {
        listen: config.passkey.listen.clone(),
        rp: passkey(&config),
        app_origin: config.passkey.app_origin(&config.approval, &config.approval.listen),
    };
    let events = JetStreamLog::connect(config.nats.clone()).await.context("connecting the event log")?;
    let app = spend_passkey::Application::build(
        page.clone(),
        spend_passkey::Deps {
            log: Arc::new(events),
            prefix: config.nats.subject_prefix.clone(),
        },
    )
    .await?;
    tracing::info!(addr = %app.local_addr(), rp_id = %page.rp.rp_id, origin = %page.rp.origin, app = %page.app_origin, "passkey page serving");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn sandbox(config: SpendConfig) -> anyhow::Result<ExitCode> {
    let secret = config
        .sandbox
        .oauth_client_secret
        .clone()
        .filter(|s| !s.is_empty())
        .context("no OAuth client secret configured: set SPEND__SANDBOX__OAUTH_CLIENT_SECRET (the executor presents the same)")?;
    let sandbox = spend_sandbox::Sandbox::with_oauth(vec![], vec![config.sandbox.client(secret)], config.sandbox.lifetimes());
    let control = config.sandbox.control_token.as_ref().filter(|t| !t.is_empty());
    if let Some(token) = control {
        sandbox.enable_control(token.expose());
    }
    let listener = tokio::net::TcpListener::bind(&config.sandbox.listen)
        .await
        .with_context(|| format!("binding the sandbox platform on {}", config.sandbox.listen))?;
    tracing::info!(addr = %listener.local_addr()?, test_control = control.is_some(), "sandbox platform serving");
    sandbox.serve(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
