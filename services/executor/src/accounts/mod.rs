//! Connected accounts: each ad or card account is connected over the
//! platform's own OAuth (authorization code with PKCE), read access first;
//! write access is asked for — on the platform's consent page, keeping
//! what was granted — only when an approved change first needs it.
//!
//! The executor is the only holder of the tokens. [`Connections::begin`]
//! makes the authorization URL a human opens (the verifier and the state
//! stay here, sealed), [`Connections::complete`] exchanges the code the
//! platform sends back and seals the tokens in the [`crate::vault`], per
//! organisation and account. A token is decrypted only for the request
//! that uses it ([`Tokens::token`]) and wiped after; tokens are refreshed
//! (and the refresh token rotated) before they expire, by whichever
//! replica takes the row's lease. A token never reaches an event, a log
//! line, an error or a response.

mod tokens;

pub use tokens::account_health;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use spend_core::bounded::FifoMap;
use spend_core::events::{AccountConnected, AccountDisconnected, AccountRefreshed, EventData, SecurityAlert};
use spend_core::{Actor, Secret, sha256_hex};
use spend_eventlog::Recorder;
use spend_platform::{AccountHealth, Connect, ReadError, TokenHealth};

use crate::connector::{PlatformToken, Tokens, Want, without_url};
use crate::vault::store::{ConnectionRow, ConnectionStore, PendingRow};
use crate::vault::{Binding, Vault, VaultError};

/// The platform's OAuth endpoints and SpendSignoff's registration there.
#[derive(Clone)]
pub struct PlatformOAuth {
    /// The platform's name on connections (`sandbox`).
    pub platform: String,
    /// The platform API's base URL.
    pub api_base: String,
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl std::fmt::Debug for PlatformOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformOAuth")
            .field("platform", &self.platform)
            .field("api_base", &self.api_base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl PlatformOAuth {
    /// The sandbox platform at `base` (its OAuth endpoints under `/oauth`).
    pub fn sandbox(base: &str, client_id: &str, client_secret: Secret) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            platform: "sandbox".into(),
            api_base: base.into(),
            authorize_url: format!("{base}/oauth/authorize"),
            token_url: format!("{base}/oauth/token"),
            revoke_url: format!("{base}/oauth/revoke"),
            client_id: client_id.into(),
            client_secret,
        }
    }
}

/// The scopes a read-first connection asks for.
pub const READ_SCOPES: &[&str] = &["ads.read", "cards.read"];
/// A connection's health turns `expiring_soon` this long before a human
/// must consent again.
const EXPIRING_SOON: chrono::Duration = chrono::Duration::days(7);
/// How long a replica holds a connection while refreshing it.
const REFRESH_LEASE_SECS: i64 = 30;

/// What a connection asks of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Read scopes: how every account is connected first.
    Read,
    /// The write scope of a connected account, keeping what it granted,
    /// for the approved draft waiting for it (its push alone goes on).
    Write { account_id: String, draft_id: String },
}

pub use spend_platform::{Begun, ConnectError};

impl From<VaultError> for ConnectError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Refused(m) => ConnectError::Invalid(format!("a vaulted value does not decrypt (audited): {m}")),
            VaultError::Unavailable(m) | VaultError::Store(m) => ConnectError::Unavailable(m),
        }
    }
}

/// The platform's token response.
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    scope: Option<String>,
    account_id: Option<String>,
}

impl Drop for TokenResponse {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access_token.zeroize();
        if let Some(r) = self.refresh_token.as_mut() {
            r.zeroize();
        }
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").field("scope", &self.scope).finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

fn random_b64(bytes: usize) -> Result<String, ConnectError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| ConnectError::Unavailable(format!("the random source: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

fn rfc3339(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sorted_scopes(s: &str) -> String {
    let mut v: Vec<&str> = s.split_whitespace().collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// The alert reason of a consent that came back in a browser that did not
/// begin it (another organisation's admin's link, say).
pub const CALLBACK_UNBOUND: &str = "accounts.callback_unbound";
/// The alert reason of a connection refused because another organisation
/// holds the account.
pub const ACCOUNT_HELD: &str = "accounts.held_by_another_org";

/// The organisations' connected accounts, their vaulted tokens, and the
/// platform's OAuth.
pub struct Connections {
    oauth: PlatformOAuth,
    vault: Vault,
    store: Arc<dyn ConnectionStore>,
    recorder: Recorder,
    http: reqwest::Client,
    /// Access tokens are refreshed this long before they expire.
    refresh_margin: chrono::Duration,
    /// How long an authorization waits for its callback.
    pending_ttl: chrono::Duration,
    /// Rows whose tokens did not decrypt, alerted once per version.
    alerted: Mutex<FifoMap<String, ()>>,
}

impl Connections {
    pub fn new(oauth: PlatformOAuth, vault: Vault, store: Arc<dyn ConnectionStore>, recorder: Recorder) -> Result<Self, ConnectError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConnectError::Unavailable(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            oauth,
            vault,
            store,
            recorder,
            http,
            refresh_margin: chrono::Duration::minutes(5),
            pending_ttl: chrono::Duration::minutes(10),
            alerted: Mutex::new(FifoMap::new(10_000)),
        })
    }

    /// Refreshes access tokens this long before they expire (default 5
    /// minutes).
    pub fn with_refresh_margin(mut self, margin: chrono::Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    pub fn platform(&self) -> &str {
        &self.oauth.platform
    }

    /// Takes (or renews) lease `name` for `holder` for `ttl`, in the
    /// executor's database: false while another replica holds it.
    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, VaultError> {
        let now = Utc::now().timestamp_millis();
        self.store.lease(name, holder, now, now + ttl.as_millis() as i64).await
    }

    /// Gives lease `name` back.
    pub async fn unlease(&self, name: &str, holder: &str) -> Result<(), VaultError> {
        self.store.unlease(name, holder).await
    }

    fn binding(&self, org: &str, account_id: &str, kind: &str, scopes: &str) -> Binding {
        Binding {
            org: org.into(),
            platform: self.oauth.platform.clone(),
            account_id: account_id.into(),
            kind: kind.into(),
            scopes: scopes.into(),
        }
    }

    /// The platform's consent page for `access`, returning to
    /// `redirect_uri` (the approval app's callback, or the CLI's loopback).
    pub async fn begin(&self, org: &str, access: Access, account_hint: Option<&str>, redirect_uri: &str, purpose: &str) -> Result<Begun, ConnectError> {
        if !spend_core::subject::is_valid_token(org) {
            return Err(ConnectError::Invalid(format!("{org:?} is not an organisation id")));
        }
        let redirect = reqwest::Url::parse(redirect_uri).map_err(|_| ConnectError::Invalid(format!("redirect_uri {redirect_uri:?} is not a URL")))?;
        if !matches!(redirect.scheme(), "http" | "https") {
            return Err(ConnectError::Invalid("redirect_uri must be http(s)".into()));
        }
        if purpose.is_empty() || purpose.len() > 200 {
            return Err(ConnectError::Invalid("purpose must be 1 to 200 characters".into()));
        }
        let (scopes, hint, incremental) = match &access {
            Access::Read => (READ_SCOPES.join(" "), account_hint.map(str::to_string), false),
            Access::Write { account_id, .. } => {
                let row = self
                    .store
                    .get(org, &self.oauth.platform, account_id)
                    .await?
                    .filter(|r| r.status == "active")
                    .ok_or_else(|| ConnectError::Invalid(format!("{account_id} is not connected for {org}: connect it (read access) first")))?;
                let write = if row.kind == "cards" { "cards.write" } else { "ads.write" };
                (write.to_string(), Some(account_id.clone()), true)
            }
        };
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_b64(32)?;
        let state_hash = sha256_hex(&state);
        let now = Utc::now();
        let expires_at = now + self.pending_ttl;
        let sealed = self.vault.seal(&self.binding(org, "pending", "pkce", &state_hash), verifier.as_bytes()).await?;
        let _ = self.store.purge_pending(now.timestamp()).await;
        self.store
            .put_pending(&PendingRow {
                state_sha256: state_hash,
                org: org.into(),
                platform: self.oauth.platform.clone(),
                account_hint: hint.clone(),
                scopes: scopes.clone(),
                redirect_uri: redirect_uri.into(),
                purpose: purpose.into(),
                draft_id: match &access {
                    Access::Write { draft_id, .. } => Some(draft_id.clone()),
                    Access::Read => None,
                },
                verifier: sealed,
                expires_at: expires_at.timestamp(),
            })
            .await?;
        let mut url = reqwest::Url::parse(&self.oauth.authorize_url).map_err(|e| ConnectError::Invalid(format!("the platform's authorize URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.oauth.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &scopes)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if incremental {
                q.append_pair("include_granted_scopes", "true");
            }
            if let Some(h) = &hint {
                q.append_pair("account", h);
            }
        }
        Ok(Begun {
            authorize_url: url.into(),
            expires_at,
        })
    }

    /// The platform's callback: `outcome` is the code, or the error it
    /// sent (`access_denied`, ...). Exchanges the code, seals the tokens,
    /// records the connection. An authorization completes once.
    /// A callback the approval app refused: the pending authorization is
    /// taken (so it can never complete), and the refusal audited under the
    /// organisation that began it. Unknown or used states change nothing.
    pub async fn abandon(&self, state: &str, reason: &str) -> Result<(), ConnectError> {
        let Some(pending) = self.store.take_pending(&sha256_hex(state)).await? else {
            return Ok(());
        };
        let alert = SecurityAlert {
            reason: CALLBACK_UNBOUND.into(),
            key_id: None,
            address: None,
            detail: format!(
                "a platform consent begun for {} ({}) came back where it was not begun: refused, nothing connected ({})",
                pending.org,
                pending.purpose,
                reason.chars().take(300).collect::<String>()
            ),
        };
        if let Err(e) = self.recorder.alert(&pending.org, alert).record().await {
            tracing::error!(error = %e, "could not record an abandoned connection");
        }
        tracing::warn!(org = %pending.org, "a platform consent came back where it was not begun: refused");
        Ok(())
    }

    pub async fn complete(&self, state: &str, outcome: Result<&str, (&str, &str)>) -> Result<AccountHealth, ConnectError> {
        let unknown = || ConnectError::Invalid("this authorization is unknown, expired, or was completed already: start again".into());
        let pending = self.store.take_pending(&sha256_hex(state)).await?.ok_or_else(unknown)?;
        if pending.expires_at < Utc::now().timestamp() {
            return Err(unknown());
        }
        let code = match outcome {
            Ok(code) => code,
            Err((error, description)) => {
                return Err(ConnectError::Platform {
                    error: error.chars().take(64).collect(),
                    description: description.chars().take(300).collect(),
                });
            }
        };
        let verifier = self
            .vault
            .open(&self.binding(&pending.org, "pending", "pkce", &pending.state_sha256), &pending.verifier)
            .await?;
        let verifier = String::from_utf8_lossy(&verifier).into_owned();
        let tokens = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &pending.redirect_uri),
                ("code_verifier", &verifier),
            ])
            .await?;
        // Which account the human connected: the platform says, and the
        // new token lists only it.
        let access = PlatformToken::new(tokens.access_token.as_str());
        let listed: serde_json::Value = crate::connector::get_with(&self.http, &self.oauth.api_base, &access, "/v1/accounts", &[])
            .await
            .map_err(|e| ConnectError::Unavailable(format!("reading the connected account: {e}")))?;
        let accounts = listed["data"].as_array().cloned().unwrap_or_default();
        let account_id = tokens
            .account_id
            .clone()
            .or_else(|| (accounts.len() == 1).then(|| accounts[0]["id"].as_str().unwrap_or_default().to_string()))
            .filter(|a| spend_core::subject::is_valid_token(a))
            .ok_or_else(|| ConnectError::Invalid("the platform did not say which account was connected".into()))?;
        if let Some(hint) = &pending.account_hint
            && hint != &account_id
        {
            self.revoke_at_platform(&tokens.access_token).await;
            return Err(ConnectError::Invalid(format!(
                "consent was given for {account_id}, but {hint} was asked for: nothing changed; start again and choose {hint}"
            )));
        }
        let platform_name = accounts
            .iter()
            .find(|a| a["id"] == account_id.as_str())
            .and_then(|a| a["platform"].as_str())
            .unwrap_or_default();
        let kind = if platform_name.contains("card") { "cards" } else { "ads" };
        // One organisation's account is never connected into another's.
        let held = self
            .store
            .list(None)
            .await?
            .into_iter()
            .find(|r| r.platform == self.oauth.platform && r.account_id == account_id && r.org != pending.org && r.status != "disconnected");
        if let Some(other) = held {
            // The tokens are dropped, not revoked: at the platform they are
            // this client's grant on the account, which the holder's
            // connection uses too.
            drop(tokens);
            let alert = SecurityAlert {
                reason: ACCOUNT_HELD.into(),
                key_id: None,
                address: None,
                detail: format!(
                    "{} asked to connect {account_id}, which {} holds: refused, the new tokens not kept",
                    pending.org, other.org
                ),
            };
            for org in [&pending.org, &other.org] {
                if let Err(e) = self.recorder.alert(org, alert.clone()).record().await {
                    tracing::error!(error = %e, "could not record a refused connection");
                }
            }
            return Err(ConnectError::Invalid(format!(
                "{account_id} is connected to another organisation: nothing changed (an account belongs to one organisation)"
            )));
        }
        let row = self.seal_row(&pending.org, &account_id, kind, tokens, None).await?;
        self.store.upsert(&row).await?;
        let scopes: Vec<String> = row.scopes.split_whitespace().map(str::to_string).collect();
        self.record(
            &pending.org,
            &account_id,
            EventData::AccountConnected(AccountConnected {
                platform: self.oauth.platform.clone(),
                account_id: account_id.clone(),
                kind: kind.into(),
                scopes,
                access_expires_at: rfc3339(row.access_expires_at),
                consent_expires_at: row.refresh_expires_at.map(rfc3339),
                purpose: pending.purpose.clone(),
                draft_id: pending.draft_id.clone(),
            }),
        )
        .await;
        tracing::info!(org = %pending.org, account = %account_id, scopes = %row.scopes, "account connected");
        Ok(account_health(&row, Utc::now()))
    }

    /// Seals a token response as a connection row (at `version`, for a
    /// replacement).
    async fn seal_row(&self, org: &str, account_id: &str, kind: &str, t: TokenResponse, version: Option<i64>) -> Result<ConnectionRow, ConnectError> {
        let scopes = sorted_scopes(t.scope.as_deref().unwrap_or_default());
        let now = Utc::now().timestamp();
        let access = self
            .vault
            .seal(&self.binding(org, account_id, "access", &scopes), t.access_token.as_bytes())
            .await?;
        let refresh = match &t.refresh_token {
            Some(r) => Some(self.vault.seal(&self.binding(org, account_id, "refresh", &scopes), r.as_bytes()).await?),
            None => None,
        };
        Ok(ConnectionRow {
            org: org.into(),
            platform: self.oauth.platform.clone(),
            account_id: account_id.into(),
            kind: kind.into(),
            scopes,
            status: "active".into(),
            access,
            access_expires_at: now + t.expires_in.clamp(0, 366 * 86_400),
            refresh,
            refresh_expires_at: t.refresh_token_expires_in.map(|s| now + s.clamp(0, 10 * 366 * 86_400)),
            problem: None,
            version: version.unwrap_or(0),
            updated_at: now,
        })
    }

    /// POSTs to the platform's token endpoint as this client.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, ConnectError> {
        let r = self
            .http
            .post(&self.oauth.token_url)
            .basic_auth(&self.oauth.client_id, Some(self.oauth.client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| ConnectError::Unavailable(format!("the platform's token endpoint: {}", without_url(e))))?;
        let status = r.status();
        if status.is_success() {
            return r
                .json::<TokenResponse>()
                .await
                .map_err(|e| ConnectError::Unavailable(format!("the platform's token response: {}", without_url(e))));
        }
        match r.json::<OAuthErrorBody>().await {
            Ok(b) => Err(ConnectError::Platform {
                error: b.error.chars().take(64).collect(),
                description: b.error_description.chars().take(300).collect(),
            }),
            Err(_) if status.is_server_error() => Err(ConnectError::Unavailable(format!("the platform's token endpoint answered {status}"))),
            Err(_) => Err(ConnectError::Platform {
                error: "invalid_response".into(),
                description: format!("HTTP {status}"),
            }),
        }
    }

    /// Revokes a token at the platform (best effort: a failure is logged).
    async fn revoke_at_platform(&self, token: &str) -> bool {
        let r = self
            .http
            .post(&self.oauth.revoke_url)
            .basic_auth(&self.oauth.client_id, Some(self.oauth.client_secret.expose()))
            .form(&[("token", token)])
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the platform refused a revocation");
                false
            }
            Err(e) => {
                tracing::warn!(error = %without_url(e), "could not reach the platform to revoke a token");
                false
            }
        }
    }

    async fn record(&self, org: &str, account_id: &str, data: EventData) {
        let id = format!("{}-{account_id}", self.oauth.platform);
        if let Err(e) = self.recorder.event(org, Actor::service("executor"), "account", &id, data).record().await {
            tracing::error!(error = %e, org, account = account_id, "could not record an account event");
        }
    }

    /// Audits a token that did not decrypt (once per row version).
    async fn refused_decryption(&self, row: &ConnectionRow, kind: &str, e: &VaultError) {
        let key = format!("{}/{}/{}/{}/{}", row.org, row.platform, row.account_id, kind, row.version);
        if !self.alerted.lock().expect("alerted").insert_new(key, ()) {
            return;
        }
        tracing::error!(org = %row.org, account = %row.account_id, kind, error = %e, "a vaulted token does not decrypt");
        let alert = SecurityAlert {
            reason: "vault.decrypt_refused".into(),
            key_id: None,
            address: None,
            detail: format!("the {kind} token of {} ({}) does not decrypt: {e}", row.account_id, row.platform),
        };
        if let Err(e) = self.recorder.alert(&row.org, alert).record().await {
            tracing::error!(error = %e, "could not record a vault alert");
        }
    }
}
