//! MCP at the host names agents really use. rmcp refuses any `Host` but
//! loopback by default (DNS rebinding); a deployed gateway answers the host
//! of its resource URL and the names it is configured with (an in-cluster
//! service name), and still refuses every other name.

use crate::common::{Gateway, embedded_log};
use spend_gateway::GatewayConfig;

const POLICY: &str = "spend:\n  daily_limit: 100 USD\n  per_transaction: 10 USD\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_its_public_and_configured_host_names_and_refuses_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let mut config = GatewayConfig::new("");
    config.resource_url = Some("https://spend.example.com/mcp".into());
    config.allowed_hosts = vec!["spend-gateway.spendsignoff.svc".into()];
    let gw = Gateway::start(log, POLICY, config).await;
    let port = gw.addr.port();
    // Every name resolves to this gateway, as DNS (or a rebinding attacker)
    // would make it.
    let names = [
        "spend.example.com",
        "spend-gateway.spendsignoff.svc",
        "evil.example",
        "spend.example.com.evil.example",
    ];
    let mut http = reqwest::Client::builder();
    for n in names {
        http = http.resolve(n, gw.addr);
    }
    let http = http.build().unwrap();
    let initialize = |host: &str| {
        http.post(format!("http://{host}:{port}/mcp"))
            .bearer_auth(&gw.key.secret)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hosts-test", "version": "1"}}
            }))
            .send()
    };
    for host in ["spend.example.com", "spend-gateway.spendsignoff.svc", "localhost", "127.0.0.1"] {
        let r = initialize(host).await.unwrap();
        assert_eq!(r.status(), 200, "{host}: {:?}", r.text().await);
    }
    for host in ["evil.example", "spend.example.com.evil.example"] {
        let r = initialize(host).await.unwrap();
        assert_eq!(r.status(), 403, "{host} is refused");
    }
    gw.stop().await;
}
