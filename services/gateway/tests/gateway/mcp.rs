//! An agent built on the official MCP Python SDK connects over Streamable
//! HTTP with an API key, lists the tools, reads (through the executor's
//! connector, from the sandbox platform), proposes a payment and a budget
//! change, reads their status and the pending drafts; it cannot approve,
//! and a bad key is refused and audited.

use crate::common::{Gateway, alerts, embedded_log, events};
use spend_gateway::GatewayConfig;

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
async fn an_mcp_python_client_reads_proposes_and_cannot_approve() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let gw = Gateway::start(log.clone(), POLICY, GatewayConfig::new("")).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/agents/mcp_agent.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(gw.url("/mcp"))
        .arg(&gw.key.secret)
        .output()
        .await
        .expect("python3 runs");
    assert!(out.status.success(), "agent failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(seen["protocol"], "2025-11-25", "{seen}");
    assert_eq!(seen["server"], "spendsignoff");
    let tools: Vec<&str> = seen["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(
        tools,
        vec![
            "check_token_health",
            "get_audit_log",
            "get_draft_status",
            "get_performance",
            "list_accounts",
            "list_campaigns",
            "list_cards",
            "list_pending_drafts",
            "list_transactions",
            "propose_change",
        ]
    );
    assert!(tools.iter().all(|t| !t.contains("approve") && !t.contains("push") && !t.contains("apply")));
    for t in &tools {
        assert_eq!(seen["schemas"][t], true, "{t} has input and output schemas");
        let a = &seen["annotations"][t];
        assert!(a["title"].as_str().is_some_and(|s| !s.is_empty()), "{t} has a title: {a}");
        if *t == "propose_change" {
            // It only drafts: not read-only, and not destructive.
            assert_eq!(a["readOnlyHint"], false, "{a}");
            assert_eq!(a["destructiveHint"], false, "{a}");
        } else {
            assert_eq!(a["readOnlyHint"], true, "{t} only reads: {a}");
        }
    }
    // The SDK closes its session with a DELETE and accepts the answer.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Session termination failed"), "{stderr}");

    // Reads, from the sandbox platform through the connector.
    let accounts: Vec<&str> = seen["accounts"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, vec!["act_1001", "act_1002", "card_1"], "{seen}");
    assert_eq!(seen["campaigns"]["campaigns"].as_array().unwrap().len(), 3);
    assert_eq!(seen["campaigns"]["campaigns"][0]["daily_budget_minor"], 5000);
    assert!(seen["performance"]["impressions"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["performance"]["campaign_id"], "cmp_1");
    assert_eq!(seen["cards"]["cards"].as_array().unwrap().len(), 3);
    let pending = seen["transactions"]["transactions"].as_array().unwrap();
    assert_eq!(pending.len(), 3, "{seen}");
    assert!(pending.iter().all(|t| t["status"] == "pending"));
    assert_eq!(seen["token"]["healthy"], true);
    assert!(seen["token"]["granted_scopes"].as_array().unwrap().contains(&"ads.read".into()));
    assert!(seen["unknown_account"]["error"].as_str().unwrap().contains("no account act_9999"), "{seen}");

    // Drafts: a payment auto-approved under the mandate; a budget change
    // whose `before` was read live, pending a human.
    assert_eq!(seen["propose"]["decision"]["outcome"], "auto_approve", "{seen}");
    assert_eq!(seen["propose"]["spend_impact_minor"], 300);
    assert_eq!(seen["propose"]["diff"][0]["path"], "payment/api.openai.com");
    assert_eq!(seen["status"]["status"], "auto_approved", "under the standing mandate: {seen}");
    let budget = &seen["budget"];
    assert_eq!(budget["status"], "pending_approval", "{seen}");
    assert_eq!(budget["diff"][0]["before"]["minor_units"], 5000);
    assert_eq!(budget["diff"][0]["after"]["minor_units"], 6000);
    assert_eq!(budget["spend_impact_minor"], 1000);
    let pending: Vec<&str> = seen["pending"]["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["draft_id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, vec![budget["draft_id"].as_str().unwrap()], "{seen}");
    let audit: Vec<&str> = seen["audit"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(audit, vec!["spend.draft.proposed.v1", "spend.policy.evaluated.v1"], "{seen}");
    assert_eq!(seen["bad_input_is_error"], true);
    assert_ne!(seen["smuggled"], "accepted", "a smuggled `approved` field is refused: {seen}");
    assert!(seen["approve"].as_str().unwrap().starts_with("refused"), "{seen}");
    assert!(seen["bad_key"].as_str().unwrap().starts_with("refused"), "{seen}");

    // Each read is an event; the approve attempt and the bad key are alerts.
    let all = events(&log).await;
    let reads: Vec<&str> = all
        .iter()
        .filter(|e| e["type"] == "spend.read.performed.v1")
        .map(|e| e["data"]["operation"].as_str().unwrap())
        .collect();
    for op in [
        "list_accounts",
        "list_campaigns",
        "get_performance",
        "list_cards",
        "list_transactions",
        "check_token_health",
        "get_audit_log",
    ] {
        assert!(reads.contains(&op), "{op} recorded: {reads:?}");
    }
    let read = all.iter().find(|e| e["type"] == "spend.read.performed.v1").unwrap();
    assert_eq!(read["actor"]["kind"], "agent");
    assert_eq!(read["actor"]["id"], gw.key.created.key_id.as_str());
    let alerts = alerts(&log, 2).await;
    let approve = alerts
        .iter()
        .find(|a| a["data"]["reason"] == "operation.unknown")
        .expect("the approve attempt is audited");
    assert_eq!(approve["data"]["key_id"], gw.key.created.key_id.as_str());
    assert!(approve["data"]["detail"].as_str().unwrap().contains("approve_draft"));
    let smuggled = alerts
        .iter()
        .find(|a| a["data"]["reason"] == "input.smuggled")
        .expect("the smuggled field is audited");
    assert!(smuggled["data"]["detail"].as_str().unwrap().contains("approved"), "{smuggled}");
    let bad = alerts.iter().find(|a| a["data"]["reason"] == "apikey.unknown").expect("the bad key is audited");
    assert_eq!(bad["data"]["key_id"], "000000000000");
    assert_eq!(bad["data"]["address"], "127.0.0.1");
    let everything = serde_json::to_string(&all).unwrap();
    assert!(!everything.contains(&gw.key.secret), "no agent secret on the log");
    assert!(!everything.contains("sandbox-test-token"), "no platform token on the log");
    gw.stop().await;
}
