//! The human approval routes refuse every agent credential, and audit it:
//! an agent key presented on approve or push gets 403 and a
//! `spend.security.alert.v1` naming the key id (never the key) and the
//! address. Without a signed-in human session the answer is 401.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use spend_approval::routes::{ApprovalState, router};
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{EventLog, StartAt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_keys_on_human_approval_routes_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let app = router(Arc::new(ApprovalState {
        log: log.clone(),
        prefix: "spend.evt".into(),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });

    let secret = format!("ssk_a1b2c3d4e5f6_{}", "9".repeat(64));
    let http = reqwest::Client::new();
    for (method, path) in [("POST", "/approvals/d_1/approve"), ("POST", "/approvals/d_1/push"), ("GET", "/approvals/d_1")] {
        let r = http
            .request(method.parse().unwrap(), format!("http://{addr}{path}"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // No credential and no session: sign in first.
    let r = http.post(format!("http://{addr}/approvals/d_1/approve")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let n = log.info().await.unwrap().last_seq as usize;
    let events: Vec<serde_json::Value> = log
        .subscribe(StartAt::Beginning)
        .await
        .unwrap()
        .take(n)
        .map(|m| serde_json::from_slice(&m.unwrap().payload).unwrap())
        .collect()
        .await;
    assert_eq!(events.len(), 3, "one alert per agent attempt, none for the anonymous one");
    for e in &events {
        assert_eq!(e["type"], "spend.security.alert.v1");
        assert_eq!(e["data"]["reason"], "agent_on_human_route");
        assert_eq!(e["data"]["key_id"], "a1b2c3d4e5f6");
        assert_eq!(e["data"]["address"], "127.0.0.1");
        assert!(!e.to_string().contains(&secret), "never the key itself");
    }
    assert!(events[0]["data"]["detail"].as_str().unwrap().contains("POST /approvals/d_1/approve"));
}
