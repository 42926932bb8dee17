//! The whole `spend` configuration: defaults, then an optional TOML file
//! (`--config`), then `SPEND__SECTION__KEY` environment variables. See
//! docs/configuration.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spend_eventlog::jetstream::JetStreamConfig;
use spend_ledger::LedgerConfig;
use spend_signer::KmsConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpendConfig {
    pub nats: JetStreamConfig,
    pub database: DatabaseConfig,
    pub kms: KmsConfig,
    pub ledger: LedgerConfig,
    pub gateway: GatewaySettings,
    pub executor: ExecutorSettings,
    pub sandbox: SandboxSettings,
    pub policy: PolicySettings,
    pub approval: ApprovalSettings,
    pub passkey: PasskeySettings,
    pub internal: InternalSettings,
    pub log: LogSettings,
}

/// Logging (`[log]` / `SPEND__LOG__…`). `RUST_LOG`, when set, filters
/// instead of `level`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` (for people) or `json` (one object per line, for log
    /// collectors).
    pub format: String,
    /// A filter in `RUST_LOG`'s syntax (`info`, `warn,spend_gateway=debug`);
    /// empty: the command's own default.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            level: String::new(),
        }
    }
}

impl LogSettings {
    /// Whether logs are JSON lines; an unknown format is an error naming
    /// the key.
    pub fn json(&self) -> anyhow::Result<bool> {
        match self.format.to_ascii_lowercase().as_str() {
            "pretty" | "" => Ok(false),
            "json" => Ok(true),
            other => anyhow::bail!("log.format (SPEND__LOG__FORMAT): {other:?} is not pretty or json"),
        }
    }
}

/// The passkey page (`[passkey]` / `SPEND__PASSKEY__…`): the one page where
/// approvers' passkeys are created and sign. Its RP ID and origin are what
/// every verifier of the deployment pins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeySettings {
    /// HTTP address of the passkey page (`spend serve passkey`).
    pub listen: String,
    /// The WebAuthn relying party ID approval passkeys are bound to: the
    /// passkey page's own domain (never an IP address), on which no page
    /// of the approval app is served, e.g. `passkey.example.com`.
    /// Changing it orphans every passkey.
    pub rp_id: String,
    /// The passkey page's origin, e.g. `https://passkey.example.com`
    /// (default `http://<rp_id>:<port of listen>`).
    pub origin: String,
    /// The approval app's origin, where the page gives assertions back
    /// (default: `approval.origin`, else `http://localhost:<port of
    /// approval.listen>`).
    pub app_origin: String,
}

impl Default for PasskeySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7500".into(),
            rp_id: "passkey.localhost".into(),
            origin: String::new(),
            app_origin: String::new(),
        }
    }
}

impl PasskeySettings {
    /// The relying party of the page listening on `listen`.
    pub fn relying_party_at(&self, listen: &str) -> spend_draft::proof::RelyingParty {
        let origin = if self.origin.is_empty() {
            format!("http://{}:{}", self.rp_id, listen.rsplit(':').next().unwrap_or("7500"))
        } else {
            self.origin.trim_end_matches('/').to_string()
        };
        spend_draft::proof::RelyingParty::new(self.rp_id.clone(), origin)
    }

    /// The relying party every verifier pins: the configured page's.
    pub fn relying_party(&self) -> spend_draft::proof::RelyingParty {
        self.relying_party_at(&self.listen)
    }

    /// The approval app's origin, as configured for `approval`.
    pub fn app_origin(&self, approval: &ApprovalSettings, approval_listen: &str) -> String {
        if !self.app_origin.is_empty() {
            self.app_origin.trim_end_matches('/').to_string()
        } else if !approval.origin.is_empty() {
            approval.origin.trim_end_matches('/').to_string()
        } else {
            format!("http://localhost:{}", approval_listen.rsplit(':').next().unwrap_or("7200"))
        }
    }
}

/// Approval service settings (`[approval]` / `SPEND__APPROVAL__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    /// HTTP address of the approval pages (`spend serve approval`).
    pub listen: String,
    /// The origin approvers open, e.g. `https://approvals.example.com`
    /// (default `http://localhost:<port>`).
    pub origin: String,
    /// The SPEND.md whose timeouts apply until a version is approved on
    /// the log (default: the gateway's `policy_file`).
    pub policy_file: String,
    /// Minutes without a request before a session ends.
    pub session_idle_minutes: u64,
    /// Hours after sign-in a session ends, however active.
    pub session_absolute_hours: u64,
    /// The secret approval links are derived from
    /// (`SPEND__APPROVAL__LINK_SECRET`, at least 32 characters, the same on
    /// every replica). Required once a webhook or an SMTP relay is
    /// configured, so a link delivered again after a restart still opens.
    #[serde(skip_serializing)]
    pub link_secret: Option<spend_core::Secret>,
    /// Slack and email (`[approval.notify]` / `SPEND__APPROVAL__NOTIFY__…`).
    pub notify: NotifySettings,
    /// MCP sign-in (`[approval.mcp]` / `SPEND__APPROVAL__MCP__…`).
    pub mcp: McpSignInSettings,
}

/// MCP sign-in: the authorization server interactive MCP clients use
/// (`[approval.mcp]`). Off until `resource` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSignInSettings {
    /// The gateway's canonical MCP URL, e.g. `https://agents.example.com/mcp`:
    /// the one resource tokens are issued for (the gateway's
    /// `resource_url`). Empty: MCP sign-in is off.
    pub resource: String,
    /// The KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs access tokens;
    /// region and endpoint from `[kms]`.
    pub token_kms_key_id: String,
    /// Or a local PKCS#8 PEM key file (created when missing): for a
    /// single-host install, never beside a KMS key.
    pub token_key_file: String,
    /// Fetch client metadata documents from private and loopback
    /// addresses, and over plain http (tests and `spend dev` only: it
    /// opens the service to server-side request forgery).
    pub allow_private_metadata: bool,
}

/// Notification delivery (`[approval.notify]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Slack incoming webhooks by the name SPEND.md's
    /// `notifications.slack` uses: `SPEND__APPROVAL__NOTIFY__SLACK_WEBHOOKS__ALERTS=https://hooks…`
    /// for `slack: alerts`. Secrets: from the environment, never logged.
    #[serde(skip_serializing)]
    pub slack_webhooks: std::collections::BTreeMap<String, spend_core::Secret>,
    /// The SMTP relay notification emails go through.
    pub smtp: SmtpSettings,
    /// The sender of notification emails.
    pub from: String,
    /// Events older than this are not notified (after an outage).
    pub max_age_minutes: u64,
    /// How long a replica holds a notification before another may take it on.
    pub lease_seconds: u64,
    /// How long a notification is retried before it is recorded as failed.
    pub delivery_deadline_seconds: u64,
    /// Of each notification event, an organisation gets three messages per
    /// window; the rest are folded into one digest at its end.
    pub flood_window_seconds: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        let d = spend_notify::NotifyConfig::default();
        Self {
            slack_webhooks: Default::default(),
            smtp: SmtpSettings::default(),
            from: d.from,
            max_age_minutes: d.max_age.as_secs() / 60,
            lease_seconds: d.lease.as_secs(),
            delivery_deadline_seconds: d.delivery_deadline.as_secs(),
            flood_window_seconds: d.flood_window.as_secs(),
        }
    }
}

/// `[approval.notify.smtp]`; no host: no email (except `spend dev`'s
/// outbox).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `starttls` (required; port 587), `tls` (port 465) or `none` (a relay
    /// on loopback or a private network only).
    pub tls: String,
    pub username: String,
    /// From the environment (`SPEND__APPROVAL__NOTIFY__SMTP__PASSWORD`).
    #[serde(skip_serializing)]
    pub password: Option<spend_core::Secret>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: None,
        }
    }
}

impl NotifySettings {
    /// The notifier's configuration; `outbox` for `spend dev`.
    /// `link_secret`: whether the approval links have a secret of their own
    /// (a real channel needs one, or its links die with the process).
    pub fn service(&self, link_secret: bool, outbox: Option<std::path::PathBuf>) -> anyhow::Result<spend_notify::NotifyConfig> {
        use spend_notify::{NotifyConfig, SmtpConfig, SmtpTls};
        let smtp = if self.smtp.host.is_empty() {
            None
        } else {
            let tls = match self.smtp.tls.as_str() {
                "starttls" => SmtpTls::StartTls,
                "tls" => SmtpTls::Tls,
                "none" => SmtpTls::None,
                other => anyhow::bail!("approval.notify.smtp.tls: {other:?} is not one of starttls, tls, none"),
            };
            Some(SmtpConfig {
                host: self.smtp.host.clone(),
                port: self.smtp.port,
                tls,
                username: (!self.smtp.username.is_empty()).then(|| self.smtp.username.clone()),
                password: self.smtp.password.clone().filter(|p| !p.is_empty()),
            })
        };
        let config = NotifyConfig {
            slack_webhooks: self
                .slack_webhooks
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            smtp,
            from: self.from.clone(),
            outbox,
            max_age: std::time::Duration::from_secs(self.max_age_minutes.max(1) * 60),
            lease: std::time::Duration::from_secs(self.lease_seconds.max(10)),
            delivery_deadline: std::time::Duration::from_secs(self.delivery_deadline_seconds.max(1)),
            flood_window: std::time::Duration::from_secs(self.flood_window_seconds.max(1)),
        };
        if config.delivery_deadline >= config.lease {
            anyhow::bail!(
                "approval.notify.delivery_deadline_seconds must be shorter than lease_seconds, or a second replica would send while the first still retries"
            );
        }
        if config.delivers() && config.outbox.is_none() && !link_secret {
            anyhow::bail!(
                "approval.link_secret is required once Slack or SMTP is configured: set SPEND__APPROVAL__LINK_SECRET to at least 32 random characters, the same on every replica"
            );
        }
        Ok(config)
    }
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7200".into(),
            origin: String::new(),
            policy_file: String::new(),
            session_idle_minutes: 15,
            session_absolute_hours: 8,
            link_secret: None,
            notify: NotifySettings::default(),
            mcp: McpSignInSettings::default(),
        }
    }
}

impl ApprovalSettings {
    /// The approval service's configuration, with `listen` and the passkey
    /// page's relying party, and for `spend dev` its outbox and link secret.
    pub fn service(
        &self,
        listen: String,
        passkey: spend_draft::proof::RelyingParty,
        outbox: Option<std::path::PathBuf>,
        dev_link_secret: Option<spend_core::Secret>,
    ) -> anyhow::Result<(spend_approval::ApprovalConfig, spend_notify::NotifyConfig)> {
        let link_secret = self.link_secret.clone().or(dev_link_secret).filter(|s| !s.is_empty());
        let notify = self.notify.service(link_secret.is_some(), outbox)?;
        let app = spend_approval::ApprovalConfig {
            listen,
            rp_id: passkey.rp_id.clone(),
            origin: (!self.origin.is_empty()).then(|| self.origin.trim_end_matches('/').to_string()),
            link_secret,
            sessions: spend_approval::web::SessionPolicy {
                idle: std::time::Duration::from_secs(self.session_idle_minutes.max(1) * 60),
                absolute: std::time::Duration::from_secs(self.session_absolute_hours.max(1) * 3600),
            },
            passkey: Some(passkey),
        };
        Ok((app, notify))
    }

    /// MCP sign-in's authorization server, when `mcp.resource` is set:
    /// its token-signing key from KMS (`kms` gives region and endpoint) or
    /// a key file; dynamic registrations are signed with the link secret.
    pub async fn mcp_sign_in(
        &self,
        kms: &spend_signer::KmsConfig,
        dev: Option<(&std::path::Path, spend_core::Secret)>,
    ) -> anyhow::Result<Option<spend_mcp_signin::OAuthConfig>> {
        use anyhow::Context as _;
        if self.mcp.resource.is_empty() {
            return Ok(None);
        }
        let resource = reqwest::Url::parse(&self.mcp.resource).with_context(|| format!("approval.mcp.resource {:?} is not a URL", self.mcp.resource))?;
        if resource.fragment().is_some() || !matches!(resource.scheme(), "http" | "https") {
            anyhow::bail!("approval.mcp.resource must be the gateway's http(s) MCP URL, without a fragment");
        }
        let signer: Arc<dyn spend_signer::Signer> = match (&self.mcp.token_kms_key_id, &self.mcp.token_key_file, &dev) {
            (k, f, _) if !k.is_empty() && !f.is_empty() => {
                anyhow::bail!("approval.mcp: set token_kms_key_id or token_key_file, not both")
            }
            (k, _, _) if !k.is_empty() => {
                let c = spend_signer::KmsConfig {
                    key_id: k.clone(),
                    ..kms.clone()
                };
                Arc::new(
                    spend_signer::KmsSigner::connect(&c)
                        .await
                        .map_err(|e| anyhow::anyhow!("approval.mcp.token_kms_key_id: {e}"))?,
                )
            }
            (_, f, _) if !f.is_empty() => {
                Arc::new(spend_signer::LocalSigner::load_or_create(std::path::Path::new(f)).map_err(|e| anyhow::anyhow!("approval.mcp.token_key_file: {e}"))?)
            }
            (_, _, Some((path, _))) => Arc::new(spend_signer::LocalSigner::load_or_create(path).map_err(|e| anyhow::anyhow!("{e}"))?),
            _ => anyhow::bail!("approval.mcp.resource is set: set approval.mcp.token_kms_key_id (or token_key_file) for the key that signs access tokens"),
        };
        let secret = self.link_secret.clone().filter(|s| !s.is_empty()).or_else(|| dev.map(|(_, s)| s)).context(
            "approval.mcp needs approval.link_secret (SPEND__APPROVAL__LINK_SECRET, the same on every replica): it signs dynamic client registrations",
        )?;
        Ok(Some(spend_mcp_signin::OAuthConfig {
            resource: self.mcp.resource.trim_end_matches('/').to_string(),
            signer,
            registration_secret: secret,
            allow_private_metadata: self.mcp.allow_private_metadata,
            lifetimes: Default::default(),
        }))
    }
}

/// Authentication between services (`[internal]` / `SPEND__INTERNAL__…`):
/// each caller holds its own credential, each server the digests of its
/// callers' (see `spend_proto::internal`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalSettings {
    /// This process's own credential, sent when it calls the policy
    /// service, the executor or the ledger (`SPEND__INTERNAL__TOKEN`, from
    /// a secret of its own): the gateway's, the approval app's, the
    /// operator's or an auditor's.
    #[serde(skip_serializing)]
    pub token: Option<spend_core::Secret>,
    /// On the policy service, the executor and the ledger: who may call,
    /// caller → `sha256:<hex>` of that caller's credential
    /// (`SPEND__INTERNAL__CALLERS__GATEWAY=sha256:…`; `spend internal
    /// credential <caller>` makes a pair). Without any, they listen on
    /// loopback only.
    pub callers: std::collections::BTreeMap<String, String>,
}

impl InternalSettings {
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose()).filter(|t| !t.is_empty())
    }

    /// The callers a server serves; `None` when none are configured. A
    /// server given only a token (the shared token of earlier releases)
    /// is told that it no longer opens anything.
    pub fn callers(&self) -> anyhow::Result<Option<spend_proto::internal::Callers>> {
        if self.callers.is_empty() && self.token().is_some() {
            tracing::warn!(
                "internal.token is this process's own credential as a caller: it opens nothing here; set internal.callers.<caller> \
                 (SPEND__INTERNAL__CALLERS__GATEWAY=sha256:…, from `spend internal credential gateway`) for each service that calls this one"
            );
        }
        let callers = spend_proto::internal::Callers::from_digests(self.callers.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(anyhow::Error::msg)?;
        Ok((!callers.is_empty()).then_some(callers))
    }
}

/// Policy service settings (`[policy]` / `SPEND__POLICY__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// gRPC address of `spend serve policy`.
    pub listen: String,
    /// The bootstrap SPEND.md (default: `gateway.policy_file`).
    pub policy_file: String,
    /// Whether that file counts as human-approved (as for the gateway).
    pub policy_approved_by_human: bool,
    /// The durable consumer that finds undecided drafts (`spend nats init`
    /// creates it).
    pub consumer: String,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7102".into(),
            policy_file: String::new(),
            policy_approved_by_human: false,
            consumer: spend_policy_service::decide::CONSUMER.into(),
        }
    }
}

/// Gateway settings (`[gateway]` / `SPEND__GATEWAY__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// HTTP address; MCP is served at `/mcp`.
    pub listen: String,
    /// The organisation's SPEND.md.
    pub policy_file: String,
    /// Whether that SPEND.md version was approved by a human (enables
    /// `auto_approve_under`). Until policy versions are approved through
    /// the approval flow, an operator states it here; default off.
    pub policy_approved_by_human: bool,
    /// The executor's gRPC URL, which serves the platform reads.
    pub executor_url: String,
    /// The policy service's gRPC URL, which decides every draft.
    pub policy_url: String,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Host names MCP answers besides loopback and `resource_url`'s host
    /// (e.g. the in-cluster service name); `*`: every host name.
    pub allowed_hosts: Vec<String>,
    /// The public MCP URL, for OAuth protected-resource metadata.
    pub resource_url: String,
    /// OAuth authorization servers that issue tokens for this gateway.
    pub authorization_servers: Vec<String>,
    /// The `iss` of accepted OAuth access tokens (empty: API keys only).
    pub oauth_issuer: String,
    /// PEM (SPKI) of the issuer's ES256 token-signing key.
    pub oauth_public_key_file: String,
    /// The issuer's JWKS (default `<oauth_issuer>/oauth/jwks.json`), used
    /// when no `oauth_public_key_file` is set: keys by `kid`, fetched
    /// again when a token names a new one.
    pub oauth_jwks_url: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7100".into(),
            policy_file: String::new(),
            policy_approved_by_human: false,
            executor_url: "http://127.0.0.1:7300".into(),
            policy_url: "http://127.0.0.1:7102".into(),
            trusted_proxies: vec![],
            allowed_hosts: vec![],
            resource_url: String::new(),
            authorization_servers: vec![],
            oauth_issuer: String::new(),
            oauth_public_key_file: String::new(),
            oauth_jwks_url: String::new(),
        }
    }
}

/// Executor settings (`[executor]` / `SPEND__EXECUTOR__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorSettings {
    /// gRPC address of the executor.
    pub listen: String,
    /// The platform API's base URL (the sandbox platform by default); its
    /// OAuth endpoints are under `/oauth`.
    pub platform_url: String,
    /// SpendSignoff's OAuth client id at the platform.
    pub oauth_client_id: String,
    /// Its client secret: from the environment
    /// (`SPEND__EXECUTOR__OAUTH_CLIENT_SECRET`), never logged.
    #[serde(skip_serializing)]
    pub oauth_client_secret: Option<spend_core::Secret>,
    /// The KMS key (symmetric, ENCRYPT_DECRYPT) that wraps the vault's data
    /// keys; `kms.region` and `kms.endpoint` apply.
    pub vault_key_id: String,
    /// The vault's database (default: `database.url`); from the
    /// environment (`SPEND__EXECUTOR__DATABASE_URL`).
    #[serde(skip_serializing)]
    pub database_url: Option<spend_core::Secret>,
    /// Access tokens are refreshed this long before they expire.
    pub refresh_margin_seconds: u64,
    /// The SPEND.md in force until a human approves a version on the log
    /// (default: the policy service's file, then the gateway's); never a
    /// standing mandate: only a human-approved version auto-approves.
    pub policy_file: String,
    /// How long one platform write is retried before the platform is
    /// asked what it did with the write's key (docs/push.md).
    pub push_deadline_seconds: u64,
    /// Pushes at once.
    pub push_concurrency: usize,
    /// The longest wait between two tries of a change whose outcome the
    /// platform has not settled (the waits double from a second).
    pub push_unknown_backoff_max_seconds: u64,
}

impl ExecutorSettings {
    /// The executor's push settings, with the bootstrap SPEND.md.
    pub fn push(
        &self,
        bootstrap: std::sync::Arc<spend_policy::spendmd::SpendMd>,
        passkey: spend_draft::proof::RelyingParty,
    ) -> spend_executor::push::PushConfig {
        let mut c = spend_executor::push::PushConfig::new(bootstrap, passkey);
        c.deadline = std::time::Duration::from_secs(self.push_deadline_seconds.max(1));
        c.concurrency = self.push_concurrency.max(1);
        c.unknown_backoff_max = std::time::Duration::from_secs(self.push_unknown_backoff_max_seconds.max(1));
        c
    }
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7300".into(),
            platform_url: "http://127.0.0.1:7400".into(),
            oauth_client_id: "spendsignoff".into(),
            oauth_client_secret: None,
            vault_key_id: String::new(),
            database_url: None,
            refresh_margin_seconds: 300,
            policy_file: String::new(),
            push_deadline_seconds: 60,
            push_concurrency: 8,
            push_unknown_backoff_max_seconds: 300,
        }
    }
}

/// Sandbox platform settings (`[sandbox]` / `SPEND__SANDBOX__…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    pub listen: String,
    /// The OAuth client the sandbox registers (SpendSignoff's executor).
    pub oauth_client_id: String,
    /// Its secret (`SPEND__SANDBOX__OAUTH_CLIENT_SECRET`): the same as the
    /// executor's.
    #[serde(skip_serializing)]
    pub oauth_client_secret: Option<spend_core::Secret>,
    /// Redirect URIs the client registered: exact, or a loopback one on
    /// any port (the CLI's). Add the approval app's
    /// `<approval.origin>/accounts/callback`.
    pub oauth_redirect_uris: Vec<String>,
    /// Lifetime of the access tokens it issues.
    pub access_token_minutes: u32,
    /// Lifetime of its refresh tokens (a human consents again after).
    pub refresh_token_days: u32,
    /// Opens the test-control routes (`/sandbox/…`: faults, revocations,
    /// what was applied, issued tokens) to loopback callers presenting it
    /// (`SPEND__SANDBOX__CONTROL_TOKEN`). Unset, as docker-compose runs it:
    /// they do not exist.
    #[serde(skip_serializing)]
    pub control_token: Option<spend_core::Secret>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7400".into(),
            oauth_client_id: "spendsignoff".into(),
            oauth_client_secret: None,
            oauth_redirect_uris: vec!["http://127.0.0.1/callback".into(), "http://localhost:7200/accounts/callback".into()],
            access_token_minutes: 60,
            refresh_token_days: 60,
            control_token: None,
        }
    }
}

impl SandboxSettings {
    /// The OAuth client it registers, with `secret`.
    pub fn client(&self, secret: spend_core::Secret) -> spend_sandbox::oauth::OAuthClient {
        spend_sandbox::oauth::OAuthClient {
            client_id: self.oauth_client_id.clone(),
            client_secret: secret.expose().to_string(),
            redirect_uris: self.oauth_redirect_uris.clone(),
        }
    }

    pub fn lifetimes(&self) -> spend_sandbox::oauth::Lifetimes {
        spend_sandbox::oauth::Lifetimes {
            access: chrono::Duration::minutes(i64::from(self.access_token_minutes.max(1))),
            refresh: chrono::Duration::days(i64::from(self.refresh_token_days.max(1))),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host/db`; keep the password in the environment
    /// (`SPEND__DATABASE__URL`), never in a file in version control.
    pub url: String,
}

impl SpendConfig {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(spend_core::config::load(
            file,
            &[
                "gateway.trusted_proxies",
                "gateway.allowed_hosts",
                "gateway.authorization_servers",
                "sandbox.oauth_redirect_uris",
            ],
        )?)
    }

    /// The JetStream settings of the ledger's checkpoint stream.
    pub fn ledger_stream(&self) -> JetStreamConfig {
        JetStreamConfig {
            stream: self.ledger.stream.clone(),
            subject_prefix: self.ledger.ledger_subject_prefix.clone(),
            ..self.nats.clone()
        }
    }
}

/// The files of a `spend dev` data folder.
pub struct DevPaths {
    pub events: PathBuf,
    pub ledger_stream: PathBuf,
    pub database: PathBuf,
    pub signing_key: PathBuf,
    /// The dev policy (SPEND.md), written on first start.
    pub policy: PathBuf,
    /// The development agent key (0600), written on first start.
    pub agent_key: PathBuf,
    /// The approval links' secret (0600), written on first start.
    pub link_secret: PathBuf,
    /// The sandbox's test-control token (0600), written on first start.
    pub sandbox_control: PathBuf,
    /// Approval links and notifications, as files.
    pub outbox: PathBuf,
    /// The executor's vault (connected accounts, sealed tokens).
    pub vault_database: PathBuf,
    /// The vault's local key (0600; AWS KMS in production).
    pub vault_key: PathBuf,
    /// The key that signs MCP clients' access tokens (0600; AWS KMS in
    /// production).
    pub mcp_token_key: PathBuf,
    /// The relying party approval passkeys are made on, as `spend dev`
    /// last ran (its approval app's origin names its port): the CLI's
    /// commands on the data folder pin the same.
    pub relying_party: PathBuf,
}

impl DevPaths {
    pub fn new(dir: &Path) -> Self {
        Self {
            events: dir.join("events"),
            relying_party: dir.join("relying-party.json"),
            ledger_stream: dir.join("ledger-stream"),
            database: dir.join("ledger.db"),
            signing_key: dir.join("keys").join("ledger-signing-key.pem"),
            policy: dir.join("SPEND.md"),
            agent_key: dir.join("keys").join("dev-agent-key"),
            link_secret: dir.join("keys").join("approval-link-secret"),
            sandbox_control: dir.join("keys").join("sandbox-control-token"),
            outbox: dir.join("outbox"),
            vault_database: dir.join("executor.db"),
            vault_key: dir.join("keys").join("vault.key"),
            mcp_token_key: dir.join("keys").join("mcp-token-key.pem"),
        }
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.database.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::Secret;

    fn settings(webhook: Option<&str>) -> NotifySettings {
        let mut n = NotifySettings::default();
        if let Some(url) = webhook {
            n.slack_webhooks.insert("ALERTS".into(), Secret::new(url));
            n.slack_webhooks.insert("unused".into(), Secret::new(""));
        }
        n
    }

    #[test]
    fn a_configured_channel_needs_the_link_secret_and_no_error_shows_a_webhook() {
        let url = "https://hooks.example/services/T0/B0/SECRETPATH";
        let e = settings(Some(url)).service(false, None).unwrap_err().to_string();
        assert!(e.contains("SPEND__APPROVAL__LINK_SECRET"), "{e}");
        assert!(!e.contains("SECRETPATH"), "{e}");
        // `spend dev` writes to its outbox with a secret of its own.
        assert!(settings(Some(url)).service(false, Some("outbox".into())).is_ok());
        let c = settings(Some(url)).service(true, None).unwrap();
        assert_eq!(
            c.slack_webhooks.keys().collect::<Vec<_>>(),
            ["alerts"],
            "names as SPEND.md writes them; empty ones dropped"
        );
        assert!(!format!("{c:?}").contains("SECRETPATH"), "Debug never shows a webhook");
        // Nothing configured: no secret needed.
        assert!(settings(None).service(false, None).is_ok());
    }

    #[test]
    fn smtp_tls_and_timing_mistakes_are_refused_with_the_key_to_fix() {
        let mut n = settings(None);
        n.smtp.host = "smtp.example.com".into();
        n.smtp.tls = "ssl".into();
        let e = n.service(true, None).unwrap_err().to_string();
        assert!(e.contains("approval.notify.smtp.tls") && e.contains("starttls, tls, none"), "{e}");
        let mut n = settings(None);
        n.delivery_deadline_seconds = n.lease_seconds;
        let e = n.service(false, None).unwrap_err().to_string();
        assert!(e.contains("delivery_deadline_seconds"), "{e}");
    }
}
