//! MCP authorization, resource-server side: protected resource metadata,
//! the `WWW-Authenticate` challenge, and validation of access tokens
//! (ES256 JWTs from the configured issuer, for this resource, unexpired,
//! with agent scopes only; a token carrying mcp.approve is refused and
//! audited).

use crate::common::{Gateway, alerts, embedded_log};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use spend_gateway::GatewayConfig;
use spend_gateway::oauth::OAuthConfig;

const ISSUER: &str = "https://auth.spend.example";
const RESOURCE: &str = "https://spend.example/mcp";
const INIT: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn random_key() -> SigningKey {
    loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        if let Ok(k) = SigningKey::from_slice(&b) {
            return k;
        }
    }
}

fn token(key: &SigningKey, alg: &str, claims: serde_json::Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg, "typ": "at+jwt"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig: Signature = key.sign(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn claims(scope: &str, exp_in: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "alice@example.com", "client_id": "claude-code",
        "org": "acme", "scope": scope, "iat": now, "exp": now + exp_in,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_clients_discover_the_server_and_their_tokens_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let issuer_key = random_key();
    let mut config = GatewayConfig::new("");
    config.resource_url = Some(RESOURCE.into());
    config.authorization_servers = vec![ISSUER.into()];
    config.oauth = Some(OAuthConfig {
        issuer: ISSUER.into(),
        audience: RESOURCE.into(),
        keys: spend_gateway::oauth::Keys::fixed(*issuer_key.verifying_key()),
    });
    let gw = Gateway::start(log.clone(), "spend:\n  per_transaction: 10 USD\n", config).await;
    let http = reqwest::Client::new();

    // Discovery: metadata at the well-known paths, pointed to by every 401.
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let m: serde_json::Value = http.get(gw.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(m["resource"], RESOURCE);
        assert_eq!(m["authorization_servers"][0], ISSUER);
        assert_eq!(m["scopes_supported"], serde_json::json!(["mcp.read", "mcp.draft"]));
    }
    let r = http.post(gw.url("/mcp")).body(INIT).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(
        challenge.contains("resource_metadata=\"https://spend.example/.well-known/oauth-protected-resource\""),
        "{challenge}"
    );

    let call = |t: String| {
        http.post(gw.url("/mcp"))
            .bearer_auth(t)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT)
            .send()
    };
    let good = token(&issuer_key, "ES256", claims("mcp.read mcp.draft", 300));
    assert_eq!(call(good).await.unwrap().status(), 200);
    // A read-only grant reads and cannot draft (checked per operation).
    let ro = token(&issuer_key, "ES256", claims("mcp.read", 300));
    assert_eq!(call(ro).await.unwrap().status(), 200);

    let other_key = random_key();
    let mut wrong_aud = claims("mcp.read", 300);
    wrong_aud["aud"] = "https://elsewhere.example/mcp".into();
    let mut no_org = claims("mcp.read", 300);
    no_org.as_object_mut().unwrap().remove("org");
    for (what, t, status) in [
        ("expired", token(&issuer_key, "ES256", claims("mcp.read", -10)), 401),
        ("forged", token(&other_key, "ES256", claims("mcp.read", 300)), 401),
        ("alg none", token(&issuer_key, "none", claims("mcp.read", 300)), 401),
        ("wrong audience", token(&issuer_key, "ES256", wrong_aud), 401),
        ("no org", token(&issuer_key, "ES256", no_org), 401),
        ("approve scope", token(&issuer_key, "ES256", claims("mcp.read mcp.approve", 300)), 403),
    ] {
        assert_eq!(call(t).await.unwrap().status(), status, "{what}");
    }
    let all = alerts(&log, 6).await;
    let reasons: Vec<&str> = all.iter().map(|a| a["data"]["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"oauth.expired"), "{reasons:?}");
    assert!(reasons.contains(&"oauth.signature"), "{reasons:?}");
    assert!(reasons.contains(&"oauth.approve_requested"), "{reasons:?}");
    assert!(reasons.iter().filter(|r| **r == "oauth.invalid").count() >= 2, "{reasons:?}");
    gw.stop().await;
}
