//! What the executor's push tests share: the sandbox platform on a real
//! socket with SpendSignoff's OAuth client, a vault on PostgreSQL and
//! moto's KMS, a human's consent on the platform's page, and drafts as the
//! gateway records them.
#![allow(dead_code)] // each test binary uses its part

use std::sync::Arc;

use spend_core::events::{DraftChange, EventData};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::{EventLog, Recorder};
use spend_executor::accounts::{Access, Connections, PlatformOAuth};
use spend_executor::vault::Vault;
use spend_executor::vault::keys::KmsKeys;
use spend_executor::vault::store::PgConnections;
use spend_sandbox::Sandbox;
use spend_sandbox::oauth::{Lifetimes, OAuthClient};

/// Where the platform's consent page sends the human back.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The sandbox platform, serving on a loopback port.
pub struct Platform {
    pub sandbox: Sandbox,
    pub base: String,
    /// SpendSignoff's client secret at the platform.
    pub secret: String,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Platform {
    pub async fn start() -> Self {
        let secret = format!("client-secret-{}", spend_testkit::unique());
        let sandbox = Sandbox::with_oauth(
            vec![],
            vec![OAuthClient {
                client_id: "spendsignoff".into(),
                client_secret: secret.clone(),
                redirect_uris: vec!["http://127.0.0.1/callback".into()],
            }],
            Lifetimes::default(),
        );
        sandbox.enable_control(spend_testkit::sandbox_control::token());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(sandbox.clone().serve(listener, std::future::pending()));
        Self {
            sandbox,
            base,
            secret,
            _task: task,
        }
    }

    /// A replica's vault: its own handle on the database `db` and the KMS
    /// key `key` (a fresh key when `None`), recording as the executor on
    /// `log`.
    pub async fn connections(&self, log: Arc<dyn EventLog>, prefix: &str, db: &str, key: Option<&str>) -> Arc<Connections> {
        let kms = spend_testkit::kms_client().await;
        let key = match key {
            Some(k) => k.to_string(),
            None => spend_testkit::kms_vault_key(&kms).await,
        };
        Arc::new(
            Connections::new(
                PlatformOAuth::sandbox(&self.base, "spendsignoff", spend_core::Secret::new(self.secret.clone())),
                Vault::new(Arc::new(KmsKeys::from_client(kms, &key).await.unwrap())),
                Arc::new(PgConnections::connect(db).await.unwrap()),
                Recorder::new(log, prefix, spend_core::authority::Writer::Executor),
            )
            .unwrap(),
        )
    }

    /// What the platform applied (`GET /sandbox/applied`).
    pub async fn applied(&self) -> serde_json::Value {
        spend_testkit::sandbox_control::get(&self.base, "/sandbox/applied").await
    }

    /// Faults for the platform to inject (`POST /sandbox/faults`).
    pub async fn faults(&self, f: serde_json::Value) {
        let r = spend_testkit::sandbox_control::post(&self.base, "/sandbox/faults", f).await;
        assert!(r.status().is_success(), "faults: {}", r.status());
    }
}

/// A human of `acme` consents to `access` on `account` on the platform's
/// page, and the callback completes it.
pub async fn consent(connections: &Connections, access: Access, account: &str) {
    let begun = connections.begin("acme", access, Some(account), REDIRECT, "test").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, account, "allow").await;
    let u = reqwest::Url::parse(&back).unwrap();
    let p = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    connections.complete(&p("state"), Ok(&p("code"))).await.unwrap();
}

/// Read access, then write access (for no draft in particular), on each
/// of `accounts`.
pub async fn writable(connections: &Connections, accounts: &[&str]) {
    for a in accounts {
        consent(connections, Access::Read, a).await;
        let write = Access::Write {
            account_id: a.to_string(),
            draft_id: "d_setup".into(),
        };
        consent(connections, write, a).await;
    }
}

/// A campaign's daily budget raised to `after` minor units, drafted
/// against its live state, as the gateway records it.
pub fn raise(sandbox: &Sandbox, id: &str, account: &str, campaign: &str, after: i64) -> Envelope {
    let usd = |m| Money::new(m, "USD").unwrap();
    let c = sandbox.campaign(campaign).unwrap();
    Envelope::new(
        "spendsignoff/gateway",
        "acme",
        Actor::agent("k_test"),
        format!("draft/{id}"),
        EventData::DraftProposed(
            spend_draft::display::proposed(
                id,
                account,
                "scale the winner",
                Some(c.updated_at.to_rfc3339()),
                DraftChange::Campaign {
                    campaign_id: campaign.into(),
                    field: "budget".into(),
                    daily_budget_before: usd(c.daily_budget_minor),
                    daily_budget_after: usd(after),
                    status_before: c.status.clone(),
                    status_after: c.status,
                    bid_before: None,
                    bid_after: None,
                },
            )
            .expect("a campaign change"),
        ),
    )
}
