//! SPEND.md's `security:` section at the gateway: IP allowlist with
//! trusted proxies, per-key rate limits, request size limits and signed
//! requests whose nonces are refused on every replica. Every refusal is a
//! `spend.security.alert.v1` naming the key, the address and the reason.

use crate::common::{Gateway, alerts, embedded_log};
use spend_gateway::GatewayConfig;
use spend_gateway::security::sign;

const INIT: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn post(gw: &Gateway, key: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(gw.url("/mcp"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
}

fn reasons(alerts: &[serde_json::Value]) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["data"]["reason"].as_str().unwrap().to_string(),
                a["data"]["address"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_allowlist_believes_forwarded_for_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let policy = "security:\n  ip_allowlist: [10.0.0.0/8]\n";
    // Direct: the peer is 127.0.0.1, whatever X-Forwarded-For claims.
    let direct = Gateway::start(log.clone(), policy, GatewayConfig::new("")).await;
    let key = direct.key.secret.clone();
    assert_eq!(post(&direct, &key, INIT).send().await.unwrap().status(), 403);
    let spoofed = post(&direct, &key, INIT).header("x-forwarded-for", "10.1.2.3").send().await.unwrap();
    assert_eq!(spoofed.status(), 403, "X-Forwarded-For from an untrusted peer is ignored");
    direct.stop().await;

    // Behind a trusted proxy at 127.0.0.1.
    let mut config = GatewayConfig::new("");
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let proxied = Gateway::start(log.clone(), policy, config).await;
    let key = proxied.key.secret.clone();
    let ok = post(&proxied, &key, INIT).header("x-forwarded-for", "10.1.2.3").send().await.unwrap();
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    let forged_left = post(&proxied, &key, INIT)
        .header("x-forwarded-for", "10.9.9.9, 192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_left.status(), 403, "the right-most untrusted hop is the client");
    let left_ignored = post(&proxied, &key, INIT)
        .header("x-forwarded-for", "192.0.2.9, 10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(left_ignored.status(), 200);
    proxied.stop().await;

    let got = reasons(&alerts(&log, 3).await);
    assert_eq!(
        got.iter().filter(|(r, _)| r == "ip.not_allowed").map(|(_, a)| a.as_str()).collect::<Vec<_>>(),
        vec!["127.0.0.1", "127.0.0.1", "192.0.2.7"],
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_rate_and_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let policy = "security:\n  rate_limit_per_minute: 5\n  max_request_bytes: 2048\n";
    let gw = Gateway::start(log.clone(), policy, GatewayConfig::new("")).await;
    let key = gw.key.secret.clone();
    for i in 0..5 {
        assert_eq!(post(&gw, &key, INIT).send().await.unwrap().status(), 200, "request {i}");
    }
    let limited = post(&gw, &key, INIT).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    // Another key has its own bucket; its oversized body is refused.
    let other = gw.read_key.secret.clone();
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4096));
    assert_eq!(post(&gw, &other, big.clone()).send().await.unwrap().status(), 413);
    // Also without a Content-Length (a streamed body).
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(big))]);
    let streamed = post(&gw, &other, reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(streamed.status(), 413);
    assert_eq!(post(&gw, &other, INIT).send().await.unwrap().status(), 200);

    let all = alerts(&log, 3).await;
    let rate = all.iter().find(|a| a["data"]["reason"] == "rate.limited").expect("rate refusal audited");
    assert_eq!(rate["data"]["key_id"], gw.key.created.key_id.as_str());
    assert_eq!(rate["data"]["address"], "127.0.0.1");
    let size: Vec<_> = all.iter().filter(|a| a["data"]["reason"] == "request.too_large").collect();
    assert_eq!(size.len(), 2);
    assert_eq!(size[0]["data"]["key_id"], gw.read_key.created.key_id.as_str());
    gw.stop().await;
}

fn signed(gw: &Gateway, key: &str, ts: i64, nonce: &str, body: &str, signed_body: &str) -> reqwest::RequestBuilder {
    let ts = ts.to_string();
    post(gw, key, body.to_string())
        .header("x-spend-timestamp", &ts)
        .header("x-spend-nonce", nonce)
        .header("x-spend-signature", sign(key, &ts, nonce, "POST", "/mcp", signed_body.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_and_a_replayed_nonce_is_refused_on_every_replica() {
    let streams = spend_testkit::Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let connect = || async { std::sync::Arc::new(spend_eventlog::jetstream::JetStreamLog::connect(streams.events.clone()).await.unwrap()) };
    let policy = "security:\n  require_signed_requests: true\n";
    let a = Gateway::start_with(connect().await, &prefix, policy, GatewayConfig::new("")).await;
    // Replica B: its own process state and connection, the same stream,
    // and A's key (learned from the log).
    let b = Gateway::start_with(connect().await, &prefix, policy, GatewayConfig::new("")).await;
    let key = a.key.secret.clone();
    b.state.caught_up().await.unwrap();
    let now = chrono::Utc::now().timestamp();

    let ok = signed(&a, &key, now, "nonce-0001", INIT, INIT).send().await.unwrap();
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    // The same signed request, replayed against the other replica.
    let replay = signed(&b, &key, now, "nonce-0001", INIT, INIT).send().await.unwrap();
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("already used"));
    let unsigned = post(&b, &key, INIT).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let tampered = signed(&b, &key, now, "nonce-0002", INIT, "{}").send().await.unwrap();
    assert_eq!(tampered.status(), 401);
    let stale = signed(&b, &key, now - 600, "nonce-0003", INIT, INIT).send().await.unwrap();
    assert_eq!(stale.status(), 401);
    let fresh = signed(&b, &key, now, "nonce-0004", INIT, INIT).send().await.unwrap();
    assert_eq!(fresh.status(), 200);

    let got = reasons(&alerts(&a.log, 4).await);
    let got: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
    for r in ["signature.replayed", "signature.missing", "signature.invalid", "signature.expired"] {
        assert!(got.contains(&r), "{r} audited: {got:?}");
    }
    a.stop().await;
    b.stop().await;
}
