//! Connected accounts on the real parts: the sandbox platform's OAuth over
//! a socket, the vault's data keys on moto's KMS, the vault in PostgreSQL,
//! events on JetStream.
//!
//! - connect read-only → reads work (that organisation's, that account's
//!   only) → a write needs the write scope → the consent step (keeping
//!   read) → the write scope is held; refresh before expiry (rotated); a
//!   token revoked at the platform is reported and refused cleanly; a
//!   disconnect revokes at the platform;
//! - the platform's refusals (a denied consent, a reused code) end the
//!   attempt with a clear error and change nothing;
//! - a tampered ciphertext, another account's ciphertext, and another KMS
//!   key fail to decrypt with a clear error and an alert;
//! - a consent the approval app refused (it came back in a browser that
//!   did not begin it) is burned and audited under the organisation that
//!   began it; an account another organisation holds is never connected
//!   into a second one (refused, the new tokens not kept, both audited).

use std::sync::Arc;
use std::time::Duration;

use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{EventLog, Recorder};
use spend_executor::accounts::{Access, Connections, PlatformOAuth};
use spend_executor::connector::{PlatformConnector, Tokens, Want};
use spend_executor::vault::Vault;
use spend_executor::vault::keys::KmsKeys;
use spend_executor::vault::store::PgConnections;
use spend_platform::{Connect as _, ReadError, Reads};
use spend_sandbox::Sandbox;
use spend_sandbox::oauth::{Lifetimes, OAuthClient};
use spend_testkit::{Streams, TestDatabase};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct World {
    sandbox: Sandbox,
    base: String,
    connections: Arc<Connections>,
    log: Arc<dyn EventLog>,
    db: TestDatabase,
    _streams: Streams,
    secret: String,
    kms_key: String,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn world(lifetimes: Lifetimes, margin: chrono::Duration) -> World {
    let secret = format!("client-secret-{}", spend_testkit::unique());
    let sandbox = Sandbox::with_oauth(
        vec![],
        vec![OAuthClient {
            client_id: "spendsignoff".into(),
            client_secret: secret.clone(),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
        }],
        lifetimes,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    sandbox.enable_control(spend_testkit::sandbox_control::token());
    let task = tokio::spawn(sandbox.clone().serve(listener, std::future::pending()));
    let streams = Streams::new();
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(streams.events.clone()).await.unwrap());
    let db = TestDatabase::create().await;
    let kms = spend_testkit::kms_client().await;
    let kms_key = spend_testkit::kms_vault_key(&kms).await;
    let connections = connections(&base, &secret, &kms_key, &db, &log, &streams.events.subject_prefix, margin).await;
    World {
        sandbox,
        base,
        connections,
        log,
        db,
        secret,
        kms_key,
        _streams: streams,
        _task: task,
    }
}

async fn connections(
    base: &str,
    secret: &str,
    key: &str,
    db: &TestDatabase,
    log: &Arc<dyn EventLog>,
    prefix: &str,
    margin: chrono::Duration,
) -> Arc<Connections> {
    let keys = KmsKeys::from_client(spend_testkit::kms_client().await, key).await.unwrap();
    let store = PgConnections::connect(&db.url).await.unwrap();
    Arc::new(
        Connections::new(
            PlatformOAuth::sandbox(base, "spendsignoff", spend_core::Secret::new(secret)),
            Vault::new(Arc::new(keys)),
            Arc::new(store),
            Recorder::new(log.clone(), prefix, spend_core::authority::Writer::Executor),
        )
        .unwrap()
        .with_refresh_margin(margin),
    )
}

/// Connects `account` of `org` as a human would: the consent page's Allow.
async fn connect(c: &Connections, org: &str, access: Access, account: &str) -> Result<spend_platform::AccountHealth, spend_platform::ConnectError> {
    let begun = c.begin(org, access, Some(account), REDIRECT, "connect").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, account, "allow").await;
    let (state, code) = callback(&back);
    c.complete(&state, Ok(&code)).await
}

fn callback(location: &str) -> (String, String) {
    let u = reqwest::Url::parse(location).unwrap();
    let p = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap_or_default();
    (p("state"), p("code"))
}

/// The events on the log: (type, data).
async fn events(log: &Arc<dyn EventLog>) -> Vec<(String, serde_json::Value)> {
    spend_testkit::events::on_log(log.as_ref())
        .await
        .into_iter()
        .map(|(_, e)| (e["type"].as_str().unwrap_or_default().to_string(), e["data"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_first_then_write_on_consent_refreshed_before_expiry_and_revocation_reported() {
    let w = world(
        Lifetimes {
            access: chrono::Duration::seconds(6),
            ..Lifetimes::default()
        },
        chrono::Duration::seconds(4),
    )
    .await;
    let reads = PlatformConnector::new(&w.base, w.connections.clone()).unwrap();

    // Connect read-only.
    let a = connect(&w.connections, "acme", Access::Read, "act_1001").await.unwrap();
    assert_eq!((a.account_id.as_str(), a.status.as_str()), ("act_1001", "valid"));
    assert_eq!(a.scopes, ["ads.read", "cards.read"]);

    // Reads work: this organisation's, this account's.
    let campaigns = reads.campaigns("acme", "act_1001").await.unwrap();
    assert_eq!(campaigns.len(), 3);
    assert_eq!(
        reads.accounts("acme").await.unwrap().iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["act_1001"]
    );
    assert!(matches!(reads.campaigns("acme", "act_1002").await, Err(ReadError::NotConnected(_))));
    assert!(
        matches!(reads.campaigns("globex", "act_1001").await, Err(ReadError::NotConnected(_))),
        "one organisation's token never serves another"
    );

    // A write needs the write scope: a human consents, read is kept.
    assert!(!w.connections.holds("acme", "act_1001", "ads.write").await.unwrap());
    let begun = w
        .connections
        .begin(
            "acme",
            Access::Write {
                account_id: "act_1001".into(),
                draft_id: "d_1".into(),
            },
            Some("act_1001"),
            REDIRECT,
            "draft d_1",
        )
        .await
        .unwrap();
    assert!(begun.authorize_url.contains("scope=ads.write") && begun.authorize_url.contains("include_granted_scopes=true"));
    let page = reqwest::get(&begun.authorize_url).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("change your campaigns") && page.contains("that stays"),
        "the consent page says what changes: {page}"
    );
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1001", "allow").await;
    let (state, code) = callback(&back);
    let a = w.connections.complete(&state, Ok(&code)).await.unwrap();
    assert_eq!(a.scopes, ["ads.read", "ads.write", "cards.read"]);
    assert!(w.connections.holds("acme", "act_1001", "ads.write").await.unwrap());
    // The vaulted token now writes at the platform.
    let token = w.connections.token("acme", Want::Account("act_1001"), Some("ads.write")).await.unwrap();
    let r = reqwest::Client::new()
        .patch(format!("{}/v1/campaigns/cmp_1", w.base))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({"daily_budget_minor": 5_100}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Completing the same authorization again is refused.
    let again = w.connections.complete(&state, Ok(&code)).await.unwrap_err();
    assert!(again.to_string().contains("completed already"), "{again}");

    // Refreshed before the access token expires (and rotated): reads go on
    // past the first token's lifetime.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.connections.refresh_due().await, 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(reads.campaigns("acme", "act_1001").await.unwrap().len(), 3, "past the first token's expiry");
    let on_log = events(&w.log).await;
    assert!(on_log.iter().any(|(t, d)| t == "spend.account.refreshed.v1" && d["account_id"] == "act_1001"));

    // Revoked at the platform by the account's owner: reported, refused.
    spend_testkit::sandbox_control::post(&w.base, "/sandbox/revoke", serde_json::json!({"account_id": "act_1001"})).await;
    let h = reads.token_health("acme", Some("act_1001")).await.unwrap();
    assert!(!h.healthy);
    assert_eq!(h.accounts[0].status, "revoked", "{h:?}");
    let e = reads.campaigns("acme", "act_1001").await.unwrap_err();
    assert!(matches!(e, ReadError::TokenRefused(_)) && e.to_string().contains("revoked"), "{e}");

    // A disconnect revokes at the platform.
    connect(&w.connections, "acme", Access::Read, "card_1").await.unwrap();
    assert_eq!(reads.cards("acme").await.unwrap().len(), 3);
    let token = w.connections.token("acme", Want::Cards, Some("cards.read")).await.unwrap();
    let d = spend_platform::Connect::disconnect(w.connections.as_ref(), "acme", "card_1", "ada")
        .await
        .unwrap();
    assert_eq!(d.status, "disconnected");
    assert!(d.problem.unwrap().contains("revoked at the platform"));
    let r = reqwest::Client::new()
        .get(format!("{}/v1/cards", w.base))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the platform no longer honours it");
    assert!(matches!(reads.cards("acme").await, Err(ReadError::NotConnected(_))));

    let types: Vec<String> = events(&w.log).await.into_iter().map(|(t, _)| t).collect();
    for t in ["spend.account.connected.v1", "spend.account.refreshed.v1", "spend.account.disconnected.v1"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let _ = (&w.secret, &w.kms_key, &w.sandbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_refusals_end_an_attempt_clearly_and_change_nothing() {
    let w = world(Lifetimes::default(), chrono::Duration::minutes(5)).await;
    // The owner says no.
    let begun = w.connections.begin("acme", Access::Read, Some("act_1001"), REDIRECT, "connect").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1001", "deny").await;
    let u = reqwest::Url::parse(&back).unwrap();
    let p = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let e = w
        .connections
        .complete(&p("state"), Err((&p("error"), &p("error_description"))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("access_denied"), "{e}");
    // A code presented twice (a replayed callback): the platform refuses
    // the second and revokes what the first issued.
    let begun = w.connections.begin("acme", Access::Read, Some("act_1002"), REDIRECT, "connect").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1002", "allow").await;
    let (state, code) = callback(&back);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "not-the-verifier-not-the-verifier-not-the-ver"),
    ];
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", w.base))
        .basic_auth("spendsignoff", Some(&w.secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant",
        "a verifier that does not match"
    );
    let e = w.connections.complete(&state, Ok(&code)).await.unwrap_err();
    assert!(e.to_string().contains("invalid_grant"), "the code was used: {e}");
    // Consent for another account than the one asked for changes nothing.
    let begun = w.connections.begin("acme", Access::Read, Some("act_1001"), REDIRECT, "connect").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1002", "allow").await;
    let (state, code) = callback(&back);
    let e = w.connections.complete(&state, Ok(&code)).await.unwrap_err();
    assert!(e.to_string().contains("act_1001 was asked for"), "{e}");
    // Write access for an account that is not connected: refused up front.
    let e = w
        .connections
        .begin(
            "acme",
            Access::Write {
                account_id: "act_1001".into(),
                draft_id: "d_1".into(),
            },
            Some("act_1001"),
            REDIRECT,
            "d",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("connect it (read access) first"), "{e}");
    assert!(
        spend_platform::Connect::list(w.connections.as_ref(), "acme").await.unwrap().is_empty(),
        "nothing connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_misbound_or_foreign_key_ciphertexts_fail_clearly_and_are_audited() {
    use sqlx::Connection as _;
    let w = world(Lifetimes::default(), chrono::Duration::minutes(5)).await;
    connect(&w.connections, "acme", Access::Read, "act_1001").await.unwrap();
    connect(&w.connections, "acme", Access::Read, "act_1002").await.unwrap();
    let reads = PlatformConnector::new(&w.base, w.connections.clone()).unwrap();
    assert!(reads.campaigns("acme", "act_1001").await.is_ok());
    let mut db = sqlx::PgConnection::connect(&w.db.url).await.unwrap();

    // Another account's ciphertext copied into act_1001's row.
    sqlx::query(
        "UPDATE executor_connections AS a SET access_ct = b.access_ct, access_nonce = b.access_nonce, access_key = b.access_key \
         FROM executor_connections AS b WHERE a.account_id = 'act_1001' AND b.account_id = 'act_1002'",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let e = reads.campaigns("acme", "act_1001").await.unwrap_err();
    assert!(matches!(e, ReadError::TokenRefused(_)) && e.to_string().contains("does not decrypt"), "{e}");

    // A tampered ciphertext (act_1002's own).
    sqlx::query("UPDATE executor_connections SET access_ct = set_byte(access_ct, 0, get_byte(access_ct, 0) # 1) WHERE account_id = 'act_1002'")
        .execute(&mut db)
        .await
        .unwrap();
    let e = reads.campaigns("acme", "act_1002").await.unwrap_err();
    assert!(e.to_string().contains("does not decrypt"), "{e}");

    // Another KMS key: a vault whose key is not the one that wrapped.
    let other = spend_testkit::kms_vault_key(&spend_testkit::kms_client().await).await;
    let stranger = connections(
        &w.base,
        &w.secret,
        &other,
        &w.db,
        &w.log,
        &w._streams.events.subject_prefix,
        chrono::Duration::minutes(5),
    )
    .await;
    connect(&w.connections, "acme", Access::Read, "card_1").await.unwrap();
    let e = stranger.token("acme", Want::Cards, Some("cards.read")).await.unwrap_err();
    assert!(e.to_string().contains("does not decrypt"), "{e}");

    // Each refusal is audited, and no error names a token.
    let alerts: Vec<serde_json::Value> = events(&w.log)
        .await
        .into_iter()
        .filter(|(t, d)| t == "spend.security.alert.v1" && d["reason"] == "vault.decrypt_refused")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    let issued = w.sandbox.issued();
    for alert in &alerts {
        let s = alert.to_string();
        assert!(issued.iter().all(|t| !s.contains(t.as_str())), "{s}");
    }
}

/// The security alerts on the log: (org, reason, detail).
async fn alerts(log: &Arc<dyn EventLog>) -> Vec<(String, String, String)> {
    spend_testkit::events::on_log(log.as_ref())
        .await
        .into_iter()
        .filter(|(_, e)| e["type"] == "spend.security.alert.v1")
        .map(|(_, e)| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (s(&e["org"]), s(&e["data"]["reason"]), s(&e["data"]["detail"]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organisation_never_connects_anothers_account() {
    let w = world(Lifetimes::default(), chrono::Duration::seconds(60)).await;
    // evil's admin begins a connection and sends the consent link to the
    // person who manages acme's account; they consent; the callback comes
    // back in their browser, without evil's binding: the app abandons it.
    let begun = w.connections.begin("evil", Access::Read, None, REDIRECT, "connect").await.unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1001", "allow").await;
    let (state, code) = callback(&back);
    w.connections.abandon(&state, "no binding cookie").await.unwrap();
    let later = w.connections.complete(&state, Ok(&code)).await.unwrap_err();
    assert!(later.to_string().contains("unknown, expired, or was completed"), "{later}");
    assert!(w.connections.list("evil").await.unwrap().is_empty(), "nothing connected into evil");
    let audited = alerts(&w.log).await;
    assert!(
        audited
            .iter()
            .any(|(org, reason, detail)| org == "evil" && reason == spend_executor::accounts::CALLBACK_UNBOUND && detail.contains("no binding cookie")),
        "{audited:?}"
    );

    // acme connects its own account; evil, even completing its own
    // consent for the same account, is refused, and keeps nothing.
    connect(&w.connections, "acme", Access::Read, "act_1001").await.unwrap();
    let refused = connect(&w.connections, "evil", Access::Read, "act_1001").await.unwrap_err();
    assert!(refused.to_string().contains("connected to another organisation"), "{refused}");
    assert!(w.connections.list("evil").await.unwrap().is_empty());
    assert_eq!(w.connections.list("acme").await.unwrap().len(), 1, "acme's connection stands");
    let audited = alerts(&w.log).await;
    for org in ["acme", "evil"] {
        assert!(
            audited
                .iter()
                .any(|(o, reason, _)| o == org && reason == spend_executor::accounts::ACCOUNT_HELD),
            "{org} is told: {audited:?}"
        );
    }
    // acme still reads its account.
    let reads = PlatformConnector::new(&w.base, w.connections.clone()).unwrap();
    reads.campaigns("acme", "act_1001").await.unwrap();
    // And each organisation connects its own.
    connect(&w.connections, "evil", Access::Read, "act_1002").await.unwrap();
}
