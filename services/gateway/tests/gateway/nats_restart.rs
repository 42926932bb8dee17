//! The event log's server goes away and comes back: a running gateway
//! keeps following the log (it resubscribes after the last event it
//! applied), so a key revoked after the restart is refused.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::Gateway;
use spend_core::events::{ApiKeyRevoked, EventData};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::{JetStreamConfig, JetStreamLog};
use spend_eventlog::{Append, EventLog};
use spend_gateway::GatewayConfig;

fn nats_bin() -> &'static str {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
}

async fn start(port: u16, store: &std::path::Path) -> tokio::process::Child {
    let child = tokio::process::Command::new(nats_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "nats-server did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_keeps_following_the_log_across_a_nats_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nats = start(port, dir.path()).await;
    let config = JetStreamConfig {
        url: format!("nats://127.0.0.1:{port}"),
        // An unrestricted server of the test's own: it creates the stream.
        manage: true,
        ..JetStreamConfig::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(config).await.unwrap());
    let gw = Gateway::start_with(log.clone(), "spend.evt", "spend:\n  per_transaction: 10 USD\n", GatewayConfig::new("")).await;
    let secret = gw.key.secret.clone();
    let ok = |gw: &Gateway| {
        gw.state
            .keys
            .try_read()
            .map(|k| k.authenticate(&secret, None, chrono::Utc::now()).is_ok())
            .unwrap_or(true)
    };
    assert!(ok(&gw));

    // The server goes away and comes back on the same port and store.
    nats.kill().await.unwrap();
    let _ = nats.wait().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _nats = start(port, dir.path()).await;

    // Revoke the key once the log accepts writes again.
    let revoked = Envelope::new(
        "spendsignoff/cli",
        "acme",
        Actor::human("ops"),
        format!("apikey/{}", gw.key.created.key_id),
        EventData::ApiKeyRevoked(ApiKeyRevoked {
            key_id: gw.key.created.key_id.clone(),
            org: "acme".into(),
            reason: "incident".into(),
        }),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = Append::new(
            format!("spend.evt.acme.apikey.{}", gw.key.created.key_id),
            revoked.id.to_string(),
            revoked.to_bytes(),
        );
        match log.append(a).await {
            Ok(_) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the log never came back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ok(&gw) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never learned of the revocation after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
}
