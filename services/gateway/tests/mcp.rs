//! An agent built on the official MCP Python SDK connects over Streamable
//! HTTP with an API key, lists the tools, proposes a change and reads its
//! status; a bad key is refused and audited.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{Append, EventLog, StartAt};
use spend_gateway::credentials::{AgentScope, generate};
use spend_gateway::{Application, GatewayConfig, GatewayState};

const POLICY: &str = "\
spend:
  daily_limit: 100 USD
  per_transaction: 10 USD
  allowlist: [openai.com]
  require_https: true
approval:
  auto_approve_under: 5 USD
security:
  api_key_rotation_days: 30
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_python_client_lists_tools_proposes_and_cannot_approve() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let policy = spend_policy::spendmd::parse(POLICY).unwrap();
    // The key, as `spend api-key create` records it.
    let key = generate("acme", "python-agent", &[AgentScope::Read, AgentScope::Draft], chrono::Utc::now()).unwrap();
    let created = spend_core::Envelope::new(
        "spendsignoff/cli",
        "acme",
        spend_core::Actor::human("ops"),
        "apikey/x",
        spend_core::events::EventData::ApiKeyCreated(key.created.clone()),
    );
    log.append(Append::new(
        format!("spend.evt.acme.apikey.{}", key.created.key_id),
        created.id.to_string(),
        created.to_bytes(),
    ))
    .await
    .unwrap();

    let state = Arc::new(GatewayState::new(log.clone(), "spend.evt", policy, true));
    let app = Application::build(GatewayConfig { listen: "127.0.0.1:0".into() }, state.clone()).await.unwrap();
    let url = format!("http://{}/mcp", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // The key store follows the log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.keys.read().await.authenticate(&key.secret, None, chrono::Utc::now()).is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the gateway never learned the key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/agents/mcp_agent.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&url)
        .arg(&key.secret)
        .output()
        .await
        .expect("python3 runs");
    assert!(out.status.success(), "agent failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(seen["protocol"], "2025-11-25", "{seen}");
    assert_eq!(seen["server"], "spendsignoff");
    let tools: Vec<&str> = seen["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tools, vec!["get_draft_status", "propose_change"]);
    assert!(tools.iter().all(|t| !t.contains("approve") && !t.contains("push") && !t.contains("apply")));
    assert_eq!(seen["schemas"]["propose_change"], true, "input and output schemas");
    assert_eq!(seen["propose_error"], false, "{seen}");
    assert_eq!(seen["propose"]["decision"]["outcome"], "auto_approve", "{seen}");
    assert_eq!(seen["propose"]["spend_impact_minor"], 300);
    assert_eq!(seen["propose"]["diff"][0]["path"], "payment/api.openai.com");
    assert_eq!(seen["status"]["status"], "approved", "{seen}");
    assert_eq!(seen["bad_input_is_error"], true);
    assert!(seen["bad_key"].as_str().unwrap().starts_with("refused"), "{seen}");

    // The refused key was audited, naming the key id and the address.
    let events: Vec<serde_json::Value> = log
        .subscribe(StartAt::Beginning)
        .await
        .unwrap()
        .take(log.info().await.unwrap().last_seq as usize)
        .map(|m| serde_json::from_slice(&m.unwrap().payload).unwrap())
        .collect()
        .await;
    let alert = events.iter().find(|e| e["type"] == "spend.security.alert.v1").expect("a security alert");
    assert_eq!(alert["data"]["reason"], "apikey.unknown");
    assert_eq!(alert["data"]["key_id"], "000000000000");
    assert_eq!(alert["data"]["address"], "127.0.0.1");
    assert!(!alert.to_string().contains(&key.secret), "no secret in the audit log");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
