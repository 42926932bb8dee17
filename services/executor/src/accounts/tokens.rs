//! Using a connection: reading its row, refreshing its tokens before they
//! expire (by whichever replica takes the row's lease), probing and
//! reporting its health, ending it, and the [`Tokens`] and [`Connect`]
//! faces the connectors and the gRPC service see.

use super::*;

impl Connections {
    /// The connection of `want` in `org`.
    async fn row(&self, org: &str, want: Want<'_>) -> Result<ConnectionRow, ReadError> {
        let found = match want {
            Want::Account(a) => self.store.get(org, &self.oauth.platform, a).await,
            Want::Cards => self
                .store
                .list(Some(org))
                .await
                .map(|rows| rows.into_iter().find(|r| r.kind == "cards" && r.status == "active")),
        }
        .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        found.ok_or_else(|| {
            ReadError::NotConnected(match want {
                Want::Account(a) => format!("{a} is not connected for organisation {org}"),
                Want::Cards => format!("no card account is connected for organisation {org}"),
            })
        })
    }

    /// Refreshes a connection's tokens (whichever replica takes the lease
    /// does; the others wait for it and read the result).
    async fn refresh(&self, row: ConnectionRow) -> Result<ConnectionRow, ReadError> {
        let now = Utc::now().timestamp();
        if !self
            .store
            .lease_refresh(&row, now, now + REFRESH_LEASE_SECS)
            .await
            .map_err(|e| ReadError::Unavailable(e.to_string()))?
        {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Some(r) = self
                    .store
                    .get(&row.org, &row.platform, &row.account_id)
                    .await
                    .map_err(|e| ReadError::Unavailable(e.to_string()))?
                    && r.version != row.version
                {
                    return Ok(r);
                }
            }
            return Err(ReadError::Unavailable(format!("another replica is refreshing {}; try again", row.account_id)));
        }
        let Some(sealed) = &row.refresh else {
            return Err(ReadError::TokenRefused(format!(
                "{} has no refresh token: a human connects it again",
                row.account_id
            )));
        };
        let refresh = match self.vault.open(&self.binding(&row.org, &row.account_id, "refresh", &row.scopes), sealed).await {
            Ok(r) => zeroize::Zeroizing::new(String::from_utf8_lossy(&r).into_owned()),
            Err(e) => {
                self.refused_decryption(&row, "refresh", &e).await;
                return Err(vault_read_error(&e));
            }
        };
        match self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await {
            Ok(t) => {
                let mut next = self
                    .seal_row(&row.org, &row.account_id, &row.kind, t, Some(row.version))
                    .await
                    .map_err(|e| ReadError::Unavailable(e.to_string()))?;
                if next.refresh.is_none() {
                    next.refresh = row.refresh.clone();
                    next.refresh_expires_at = row.refresh_expires_at;
                }
                if !self.store.replace_tokens(&next).await.map_err(|e| ReadError::Unavailable(e.to_string()))? {
                    return Err(ReadError::Unavailable(format!("{} changed while it was refreshed; try again", row.account_id)));
                }
                self.record(
                    &row.org,
                    &row.account_id,
                    EventData::AccountRefreshed(AccountRefreshed {
                        platform: row.platform.clone(),
                        account_id: row.account_id.clone(),
                        access_expires_at: rfc3339(next.access_expires_at),
                    }),
                )
                .await;
                next.version += 1;
                Ok(next)
            }
            Err(ConnectError::Platform { error, description }) => {
                let status = if row.refresh_expires_at.is_some_and(|t| t <= Utc::now().timestamp()) {
                    "expired"
                } else {
                    "revoked"
                };
                let problem = format!("the platform refused the refresh token ({error}): {description}");
                self.end(&row, status, &problem).await;
                Err(ReadError::TokenRefused(format!(
                    "the connection to {} is {status}: a human connects it again",
                    row.account_id
                )))
            }
            Err(e) => Err(ReadError::Unavailable(e.to_string())),
        }
    }

    /// Marks a connection ended, and records it.
    async fn end(&self, row: &ConnectionRow, status: &str, reason: &str) {
        let now = Utc::now().timestamp();
        if let Err(e) = self.store.set_status(&row.org, &row.platform, &row.account_id, status, Some(reason), now).await {
            tracing::error!(error = %e, "could not record a connection's status");
        }
        tracing::warn!(org = %row.org, account = %row.account_id, status, reason, "connection ended");
        self.record(
            &row.org,
            &row.account_id,
            EventData::AccountDisconnected(AccountDisconnected {
                platform: row.platform.clone(),
                account_id: row.account_id.clone(),
                status: status.into(),
                reason: reason.chars().take(500).collect(),
            }),
        )
        .await;
    }

    /// Refreshes every access token that expires within the margin.
    pub async fn refresh_due(&self) -> usize {
        let before = (Utc::now() + self.refresh_margin).timestamp();
        let due = match self.store.due_for_refresh(before).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the connections due for refresh");
                return 0;
            }
        };
        let mut n = 0;
        for row in due {
            match self.refresh(row).await {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!(error = %e, "a connection could not be refreshed"),
            }
        }
        n
    }

    /// Refreshes due tokens every `every` until `stop`.
    pub async fn run_refresher(self: Arc<Self>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
            self.refresh_due().await;
        }
    }

    /// Disconnects an account: revokes its grant at the platform and stops
    /// using it.
    pub async fn disconnect(&self, org: &str, account_id: &str, by: &str) -> Result<AccountHealth, ConnectError> {
        let row = self
            .store
            .get(org, &self.oauth.platform, account_id)
            .await?
            .ok_or_else(|| ConnectError::Invalid(format!("{account_id} is not connected for {org}")))?;
        let (kind, sealed) = match &row.refresh {
            Some(r) => ("refresh", r),
            None => ("access", &row.access),
        };
        let revoked = match self.vault.open(&self.binding(org, account_id, kind, &row.scopes), sealed).await {
            Ok(token) => self.revoke_at_platform(&String::from_utf8_lossy(&token)).await,
            Err(e) => {
                self.refused_decryption(&row, kind, &e).await;
                false
            }
        };
        let reason = if revoked {
            format!("disconnected by {by}; revoked at the platform")
        } else {
            format!("disconnected by {by}; the platform could not be told (revoke it there too)")
        };
        self.end(&row, "disconnected", &reason).await;
        let mut row = row;
        row.status = "disconnected".into();
        row.problem = Some(reason);
        Ok(account_health(&row, Utc::now()))
    }

    /// Whether the platform still honours a connection's access token:
    /// one it revoked out of band is marked so.
    async fn probe(&self, row: &ConnectionRow) -> Option<String> {
        let token = match self
            .vault
            .open(&self.binding(&row.org, &row.account_id, "access", &row.scopes), &row.access)
            .await
        {
            Ok(t) => PlatformToken::new(String::from_utf8_lossy(&t).into_owned()),
            Err(e) => {
                self.refused_decryption(row, "access", &e).await;
                return Some(format!("its token does not decrypt: {e}"));
            }
        };
        match crate::connector::get_with::<serde_json::Value>(&self.http, &self.oauth.api_base, &token, "/v1/token", &[]).await {
            Err(ReadError::TokenRefused(m)) if m.contains("revoked") => {
                self.end(row, "revoked", &format!("the platform says: {m}")).await;
                Some("revoked".into())
            }
            _ => None,
        }
    }

    /// The connections of `org` (one account's when given), probed at the
    /// platform.
    pub async fn health_of(&self, org: &str, account_id: Option<&str>) -> Result<TokenHealth, ReadError> {
        let rows = self.store.list(Some(org)).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        let mut rows: Vec<ConnectionRow> = rows.into_iter().filter(|r| account_id.is_none_or(|a| r.account_id == a)).collect();
        if let Some(a) = account_id
            && rows.is_empty()
        {
            return Err(ReadError::NotConnected(format!("{a} is not connected for organisation {org}")));
        }
        for r in rows.iter_mut().filter(|r| r.status == "active") {
            if self.probe(r).await.is_some()
                && let Ok(Some(fresh)) = self.store.get(&r.org, &r.platform, &r.account_id).await
            {
                *r = fresh;
            }
        }
        let now = Utc::now();
        let accounts: Vec<AccountHealth> = rows.iter().map(|r| account_health(r, now)).collect();
        let usable = |a: &AccountHealth| a.status == "valid" || a.status == "expiring_soon";
        let mut scopes: Vec<String> = accounts.iter().filter(|a| usable(a)).flat_map(|a| a.scopes.clone()).collect();
        scopes.sort();
        scopes.dedup();
        Ok(TokenHealth {
            healthy: !accounts.is_empty() && accounts.iter().all(usable),
            expires_at: accounts.iter().filter(|a| usable(a)).filter_map(|a| a.access_expires_at).min(),
            granted_scopes: scopes,
            problem: if accounts.is_empty() {
                Some(format!("no account is connected for organisation {org}"))
            } else {
                accounts
                    .iter()
                    .find(|a| !usable(a))
                    .map(|a| format!("{} is {}: {}", a.account_id, a.status, a.problem.clone().unwrap_or_default()))
            },
            accounts,
        })
    }

    /// Whether `account_id` of `org` holds `scope`; `Ok(false)` when a
    /// human must consent to it first.
    pub async fn holds(&self, org: &str, account_id: &str, scope: &str) -> Result<bool, ReadError> {
        let row = self.row(org, Want::Account(account_id)).await?;
        Ok(row.status == "active" && row.scopes.split_whitespace().any(|s| s == scope))
    }
}

fn vault_read_error(e: &VaultError) -> ReadError {
    match e {
        VaultError::Unavailable(m) | VaultError::Store(m) => ReadError::Unavailable(m.clone()),
        VaultError::Refused(_) => ReadError::TokenRefused("the vaulted token does not decrypt (audited): a human connects the account again".into()),
    }
}

/// A connection as agents and humans see it.
pub fn account_health(r: &ConnectionRow, now: DateTime<Utc>) -> AccountHealth {
    let at = |t: i64| DateTime::from_timestamp(t, 0);
    let consent = r.refresh_expires_at.and_then(at);
    let status = match r.status.as_str() {
        "active" if consent.is_some_and(|c| c <= now) => "expired",
        "active" if consent.is_some_and(|c| c <= now + EXPIRING_SOON) => "expiring_soon",
        "active" => "valid",
        other => other,
    };
    AccountHealth {
        account_id: r.account_id.clone(),
        platform: r.platform.clone(),
        status: status.into(),
        scopes: r.scopes.split_whitespace().map(str::to_string).collect(),
        access_expires_at: at(r.access_expires_at),
        consent_expires_at: consent,
        problem: r.problem.clone(),
    }
}

#[async_trait::async_trait]
impl Tokens for Connections {
    async fn token(&self, org: &str, want: Want<'_>, scope: Option<&str>) -> Result<PlatformToken, ReadError> {
        let mut row = self.row(org, want).await?;
        if row.status != "active" {
            return Err(ReadError::TokenRefused(format!(
                "the connection to {} is {}: a human connects it again",
                row.account_id, row.status
            )));
        }
        if let Some(s) = scope
            && !row.scopes.split_whitespace().any(|g| g == s)
        {
            return Err(ReadError::TokenRefused(format!(
                "the connection to {} does not hold {s} (it holds {})",
                row.account_id, row.scopes
            )));
        }
        if row.access_expires_at <= (Utc::now() + self.refresh_margin).timestamp() {
            row = self.refresh(row).await?;
        }
        match self.vault.open(&self.binding(org, &row.account_id, "access", &row.scopes), &row.access).await {
            Ok(t) => Ok(PlatformToken::new(String::from_utf8_lossy(&t).into_owned())),
            Err(e) => {
                self.refused_decryption(&row, "access", &e).await;
                Err(vault_read_error(&e))
            }
        }
    }

    async fn connected(&self, org: &str) -> Result<Option<Vec<String>>, ReadError> {
        let rows = self.store.list(Some(org)).await.map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok(Some(rows.into_iter().filter(|r| r.status == "active").map(|r| r.account_id).collect()))
    }

    async fn health(&self, org: &str, account_id: Option<&str>) -> Result<Option<TokenHealth>, ReadError> {
        self.health_of(org, account_id).await.map(Some)
    }

    async fn refused(&self, org: &str, want: Want<'_>, problem: &str) {
        if !problem.contains("revoked") {
            return;
        }
        if let Ok(row) = self.row(org, want).await
            && row.status == "active"
        {
            self.end(&row, "revoked", &format!("the platform says: {problem}")).await;
        }
    }
}

#[async_trait::async_trait]
impl Connect for Connections {
    async fn begin(&self, org: &str, account_id: Option<&str>, write: Option<&str>, redirect_uri: &str, purpose: &str) -> Result<Begun, ConnectError> {
        let access = match (write, account_id) {
            (None, _) => Access::Read,
            (Some(d), Some(a)) if spend_core::subject::is_valid_token(d) => Access::Write {
                account_id: a.to_string(),
                draft_id: d.to_string(),
            },
            (Some(_), Some(_)) => return Err(ConnectError::Invalid("write access is asked for one approved draft: name it by its id".into())),
            (Some(_), None) => return Err(ConnectError::Invalid("write access is asked for one account: name it".into())),
        };
        Connections::begin(self, org, access, account_id, redirect_uri, purpose).await
    }

    async fn complete(&self, state: &str, outcome: Result<&str, (&str, &str)>) -> Result<AccountHealth, ConnectError> {
        Connections::complete(self, state, outcome).await
    }

    async fn abandon(&self, state: &str, reason: &str) -> Result<(), ConnectError> {
        Connections::abandon(self, state, reason).await
    }

    async fn list(&self, org: &str) -> Result<Vec<AccountHealth>, ConnectError> {
        Ok(self.health_of(org, None).await.map_err(|e| ConnectError::Unavailable(e.to_string()))?.accounts)
    }

    async fn disconnect(&self, org: &str, account_id: &str, by: &str) -> Result<AccountHealth, ConnectError> {
        Connections::disconnect(self, org, account_id, by).await
    }
}
