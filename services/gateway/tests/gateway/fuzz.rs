//! Random input into both agent surfaces: random bytes as MCP request
//! bodies, random JSON as every tool's arguments, and random bytes as the
//! protobuf message of every gRPC method. The gateway never answers with a
//! server error, never panics, and keeps serving valid requests.

use crate::common::{Gateway, embedded_log};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use spend_gateway::GatewayConfig;

const TOOLS: &[&str] = &[
    "list_accounts",
    "list_campaigns",
    "get_performance",
    "list_cards",
    "list_transactions",
    "get_audit_log",
    "check_token_health",
    "propose_change",
    "get_draft_status",
    "list_pending_drafts",
    "approve_draft",
];

const METHODS: &[&str] = &[
    "ListAccounts",
    "ListCampaigns",
    "GetPerformance",
    "ListCards",
    "ListTransactions",
    "GetAuditLog",
    "CheckTokenHealth",
    "ProposeChange",
    "GetDraftStatus",
    "ListPendingDrafts",
];

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        "\\PC{0,24}".prop_map(serde_json::Value::from),
        prop_oneof![Just("act_1001"), Just("cmp_1"), Just("USD"), Just("openai.com"), Just("card_1")].prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("account_id".to_string()),
                    Just("payment".to_string()),
                    Just("budget".to_string()),
                    Just("amount_minor".to_string()),
                    Just("draft_id".to_string()),
                    Just("limit".to_string()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn random_input_into_mcp_and_grpc_never_breaks_the_gateway() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = rt.block_on(async {
        let log = embedded_log(dir.path()).await;
        Gateway::start(log, "security:\n  rate_limit_per_minute: 1000000\n", GatewayConfig::new("")).await
    });
    let key = gw.key.secret.clone();
    let http = reqwest::Client::new();
    let grpc = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mcp = gw.url("/mcp");

    // One MCP session for the tool calls.
    let session = rt.block_on(async {
        let r = http
            .post(&mcp)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let id = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        let _ = r.bytes().await;
        let r = http
            .post(&mcp)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &id)
            .json(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        id
    });

    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let strategy = (prop::collection::vec(any::<u8>(), 0..1024), json(), 0..TOOLS.len(), 0..METHODS.len());
    let n = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&strategy, |(bytes, args, tool, method)| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rt.block_on(async {
                // Random bytes as an MCP request body.
                let r = http
                    .post(&mcp)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &session)
                    .body(bytes.clone())
                    .send()
                    .await
                    .unwrap();
                prop_assert!(r.status().as_u16() < 500, "MCP body {:?} → {}", bytes, r.status());
                let _ = r.bytes().await;
                // Random JSON as a tool's arguments.
                let call = serde_json::json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{"name":TOOLS[tool],"arguments":args}});
                let r = http
                    .post(&mcp)
                    .bearer_auth(&key)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &session)
                    .json(&call)
                    .send()
                    .await
                    .unwrap();
                prop_assert!(r.status().as_u16() < 500, "tool call {call} → {}", r.status());
                let body = String::from_utf8_lossy(&r.bytes().await.unwrap()).to_string();
                prop_assert!(body.contains("\"jsonrpc\""), "tool call {call} answered {body}");
                // Random bytes as a gRPC message (length-prefixed frame).
                let mut frame = vec![0u8];
                frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                frame.extend_from_slice(&bytes);
                let r = grpc
                    .post(gw.url(&format!("/spendsignoff.v1.AgentGateway/{}", METHODS[method])))
                    .bearer_auth(&key)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(frame)
                    .send()
                    .await
                    .unwrap();
                prop_assert_eq!(r.status().as_u16(), 200, "gRPC {} with {:?}", METHODS[method], bytes);
                let _ = r.bytes().await;
                Ok(())
            })
        })
        .unwrap();

    // Still serving: health, and a valid tool call over gRPC-free MCP.
    rt.block_on(async {
        assert_eq!(http.get(gw.url("/healthz")).send().await.unwrap().status(), 200);
        let who = gw.identity(&gw.key);
        assert_eq!(gw.state.list_accounts(&who).await.unwrap().len(), 3);
        gw.stop().await;
    });
}
