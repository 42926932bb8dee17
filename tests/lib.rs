//! Test kit: every test gets its own JetStream streams and subject prefix,
//! its own PostgreSQL database and its own KMS key, on the real servers the
//! test command starts (NATS with JetStream, PostgreSQL, moto's KMS), so
//! tests run in parallel and leave nothing behind.
//!
//! Servers are found through environment variables with loopback defaults:
//! `SPEND_TEST_NATS_URL` (nats://127.0.0.1:4222), `SPEND_TEST_DATABASE_URL`
//! (postgres://postgres@127.0.0.1:5432/postgres) and `SPEND_TEST_KMS_ENDPOINT`
//! (http://127.0.0.1:5055). scripts/test.sh sets them up.
#![forbid(unsafe_code)]

use std::time::Duration;

pub mod authnats;
pub mod consent;
pub mod events;
pub mod mcp_signin;
pub mod sandbox_control;
pub mod smtp;
pub mod webhook;

use spend_eventlog::jetstream::JetStreamConfig;

pub fn nats_url() -> String {
    std::env::var("SPEND_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn admin_database_url() -> String {
    std::env::var("SPEND_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn kms_endpoint() -> String {
    std::env::var("SPEND_TEST_KMS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// A short unique suffix for names.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_string()
}

/// Streams of one test: events and ledger, with their own subject prefixes.
/// Deleted on drop (deny_delete forbids deleting messages, not streams).
pub struct Streams {
    pub events: JetStreamConfig,
    pub ledger: JetStreamConfig,
    pub id: String,
}

impl Streams {
    pub fn new() -> Self {
        let id = unique();
        let events = JetStreamConfig {
            url: nats_url(),
            stream: format!("T_EVENTS_{id}"),
            subject_prefix: format!("t{id}.evt"),
            ack_wait: Duration::from_secs(3),
            // The shared test server is unrestricted: each test creates its
            // own streams (the authority tests run their own server with
            // k8s/nats/auth.conf and `spend nats init` instead).
            manage: true,
            ..JetStreamConfig::default()
        };
        let ledger = JetStreamConfig {
            stream: format!("T_LEDGER_{id}"),
            subject_prefix: format!("t{id}.ledger"),
            ..events.clone()
        };
        Self { events, ledger, id }
    }
}

impl Default for Streams {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        let names = [self.events.stream.clone(), self.ledger.stream.clone()];
        let url = self.events.url.clone();
        // Drop cannot await; clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(&url).await {
                    let js = async_nats::jetstream::new(client);
                    for n in names {
                        let _ = js.delete_stream(&n).await;
                    }
                }
            });
        })
        .join();
    }
}

/// A fresh PostgreSQL database, dropped (with its connections) on drop.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let name = format!("spend_test_{}", unique());
        let admin = admin_database_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {admin}: {e} (run the suite with scripts/test.sh)"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin_database_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A KMS client for moto's server (static test credentials).
pub async fn kms_client() -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(kms_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new("test", "test", None, None, "spend-testkit"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Creates a fresh ECC_NIST_P256 signing key and an alias for it; returns
/// (key id, alias).
pub async fn kms_key(client: &aws_sdk_kms::Client) -> (String, String) {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let out = client
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("spendsignoff test checkpoint key")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating a KMS key at {}: {} (run the suite with scripts/test.sh)",
                kms_endpoint(),
                aws_sdk_kms::error::DisplayErrorContext(&e)
            )
        });
    let key_id = out.key_metadata().expect("metadata").key_id().to_string();
    let alias = format!("alias/spend-test-{}", unique());
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .expect("create alias");
    (key_id, alias)
}

/// Creates a fresh symmetric (ENCRYPT_DECRYPT) KMS key: the executor's
/// vault key. Returns its id.
pub async fn kms_vault_key(client: &aws_sdk_kms::Client) -> String {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let out = client
        .create_key()
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .description("spendsignoff test vault key")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating a KMS key at {}: {} (run the suite with scripts/test.sh)",
                kms_endpoint(),
                aws_sdk_kms::error::DisplayErrorContext(&e)
            )
        });
    out.key_metadata().expect("metadata").key_id().to_string()
}
