//! MCP sign-in across the two services: the approval service's
//! authorization server issues a token after a human's consent, and the
//! gateway — which knows the issuer only by its JWKS URL — lets the client
//! list tools and draft with it, refuses it for approving, and refuses
//! it at once (measured) when the human revokes the grant. A key the issuer
//! rotates to is picked up from its JWKS without a gateway restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Gateway, PREFIX, embedded_log};
use spend_core::events::EventData;
use spend_core::{Actor, Envelope, Secret};
use spend_eventlog::EventLog;
use spend_gateway::GatewayConfig;
use spend_gateway::oauth::{Keys, OAuthConfig};
use spend_testkit::events::append_all;
use spend_testkit::mcp_signin::{authorize_query, consent, csrf_of, grant_and_redeem, http, param, pkce, refresh, sign_in, token, trusted_admin};

const ORIGIN: &str = "http://localhost:7200";
const RESOURCE: &str = "https://spend.example/mcp";

async fn approval_service(
    log: &Arc<dyn EventLog>,
    key_file: &std::path::Path,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let mut c = spend_approval::ApprovalConfig::new("127.0.0.1:0");
    c.origin = Some(ORIGIN.into());
    let app = spend_approval::Application::build(
        c,
        spend_approval::Deps {
            log: log.clone(),
            prefix: PREFIX.into(),
            policy: Arc::new(spend_policy::spendmd::parse("spend:\n  daily_limit: 100 USD\n").unwrap()),
            accounts: None,
        },
    )
    .await
    .unwrap();
    let config = spend_mcp_signin::OAuthConfig {
        resource: RESOURCE.into(),
        signer: Arc::new(spend_signer::LocalSigner::load_or_create(key_file).unwrap()),
        registration_secret: Secret::new("a-registration-secret-of-32-characters!"),
        allow_private_metadata: false,
        lifetimes: Default::default(),
    };
    let m = spend_mcp_signin::mount(app.signed_in(), &app.origin(), log.clone(), PREFIX, config)
        .await
        .unwrap();
    let runner = m.runner(log.clone());
    let app = app.with_routes(m.pages, m.public).with_companion(runner);
    let base = format!("http://{}", app.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (base, stop, task)
}

/// An MCP session with `token`: (initialize status, session id).
async fn mcp_session(gw: &Gateway, token: &str) -> (u16, Option<String>) {
    let r = http()
        .post(gw.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ide","version":"1"}}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let id = r.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
    let _ = r.bytes().await;
    if let Some(id) = &id {
        let r = http()
            .post(gw.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", id)
            .json(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    (status, id)
}

async fn rpc(gw: &Gateway, token: &str, session: &str, method: &str, params: serde_json::Value) -> (u16, String) {
    let r = http()
        .post(gw.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .json(&serde_json::json!({"jsonrpc":"2.0","id":7,"method":method,"params":params}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_humans_consent_drafts_at_the_gateway_and_dies_with_its_grant_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let log = embedded_log(dir.path()).await;
    let (mut ada, events) = trusted_admin("acme", "ada", "ada@acme.example");
    append_all(log.as_ref(), PREFIX, events).await;
    let (base, stop_approval, approval_task) = approval_service(&log, &dir.path().join("token-key.pem")).await;

    let mut config = GatewayConfig::new("");
    config.resource_url = Some(RESOURCE.into());
    config.authorization_servers = vec![ORIGIN.into()];
    config.oauth = Some(OAuthConfig {
        issuer: ORIGIN.into(),
        audience: RESOURCE.into(),
        keys: Keys::jwks(format!("{base}/oauth/jwks.json")),
    });
    let gw = Gateway::start(log.clone(), "spend:\n  per_transaction: 10 USD\n  allowlist: [openai.com]\n", config).await;

    // Discovery from the gateway's 401 to the authorization server.
    let r = http().post(gw.url("/mcp")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let meta: serde_json::Value = http()
        .get(gw.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["authorization_servers"][0], ORIGIN);
    let as_meta: serde_json::Value = http()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_meta["issuer"], ORIGIN);

    // Registration, a human's consent, the code for tokens.
    let reg: serde_json::Value = http()
        .post(format!("{base}/oauth/register"))
        .json(&serde_json::json!({"client_name": "IDE", "redirect_uris": ["http://127.0.0.1/callback"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let session = sign_in(&base, ORIGIN, "ada@acme.example", &mut ada).await;
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:50123/callback";
    let q = authorize_query(&client_id, redirect, &challenge, "mcp.read mcp.draft", RESOURCE);
    let code = param(&consent(&base, &session, &q, "allow", &["grant_read", "grant_draft"]).await, "code").unwrap();
    let (status, t) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();

    // The token reads and drafts; it never approves.
    let (status, sid) = mcp_session(&gw, &access).await;
    assert_eq!(status, 200);
    let sid = sid.unwrap();
    let (status, tools) = rpc(&gw, &access, &sid, "tools/list", serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert!(tools.contains("propose_change") && !tools.contains("approve_"), "{tools}");
    let draft = serde_json::json!({"name": "propose_change", "arguments": {"account_id": "card_1", "rationale": "API credits", "payment": {"amount_minor": 500, "currency": "USD", "merchant": "openai.com", "card_id": "crd_1"}}});
    let (status, body) = rpc(&gw, &access, &sid, "tools/call", draft).await;
    assert_eq!(status, 200);
    assert!(body.contains("draft_id") && !body.contains("\"isError\":true"), "{body}");

    // The human revokes the grant on the Clients page: every request with
    // the token is refused from the moment the gateway's view applies it.
    let page = http()
        .get(format!("{base}/clients"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("IDE") && page.contains("Revoke"), "{page}");
    let grant_id = {
        let at = page.find("/clients/gr_").unwrap() + "/clients/".len();
        page[at..].split('/').next().unwrap().to_string()
    };
    let r = http()
        .post(format!("{base}/clients/{grant_id}/revoke"))
        .header("cookie", &session.cookie)
        .header("origin", ORIGIN)
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let revoked_at = Instant::now();
    loop {
        let (status, _) = mcp_session(&gw, &access).await;
        if status == 401 {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "the revoked token still passes after a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "a revoked grant was refused by the gateway {} ms after the revocation was recorded",
        revoked_at.elapsed().as_millis()
    );
    let (status, e) = refresh(&base, &client_id, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let alerts = crate::common::alerts(&log, 1).await;
    assert!(alerts.iter().any(|a| a["data"]["reason"] == "oauth.revoked"), "{alerts:?}");

    // The operator's `spend api-key revoke --all` revokes every client's
    // grant with the keys.
    let (_, t) = grant_and_redeem(&base, &session, &client_id, redirect, "mcp.read", &["grant_read"], RESOURCE).await;
    let second = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(mcp_session(&gw, &second).await.0, 200);
    let all = spend_core::events::ApiKeyRevoked {
        key_id: "*".into(),
        org: "acme".into(),
        reason: "incident".into(),
    };
    append_all(
        log.as_ref(),
        PREFIX,
        vec![Envelope::new(
            "spendsignoff/cli",
            "acme",
            Actor::human("operator"),
            "apikey/all",
            EventData::ApiKeyRevoked(all),
        )],
    )
    .await;
    let revoked_at = Instant::now();
    while mcp_session(&gw, &second).await.0 != 401 {
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "a token outlived revoke --all by a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "revoke --all: the token was refused {} ms after the operator's event",
        revoked_at.elapsed().as_millis()
    );
    let (status, e) = refresh(&base, &client_id, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");

    let _ = stop_approval.send(());
    approval_task.await.unwrap().unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_learns_a_rotated_key_from_the_jwks_without_a_restart() {
    use axum::routing::get;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    let key = |seed: u8| SigningKey::from_slice(&[seed; 32]).unwrap();
    let jwk = |k: &SigningKey, kid: &str| {
        let p = k.verifying_key().to_sec1_point(false);
        serde_json::json!({"kty":"EC","crv":"P-256","kid":kid,"use":"sig","alg":"ES256","x":URL_SAFE_NO_PAD.encode(p.x().unwrap()),"y":URL_SAFE_NO_PAD.encode(p.y().unwrap())})
    };
    let (a, b) = (key(7), key(9));
    let published = Arc::new(std::sync::Mutex::new(serde_json::json!({"keys": [jwk(&a, "k-a")]})));
    let p = published.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route("/jwks.json", get(move || async move { axum::Json(p.lock().unwrap().clone()) }));
        axum::serve(listener, app).await.unwrap();
    });
    let sign = |k: &SigningKey, kid: &str| {
        let now = chrono::Utc::now().timestamp();
        let h = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg":"ES256","typ":"at+jwt","kid":kid}).to_string());
        let c = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iss":ORIGIN,"aud":RESOURCE,"sub":"ada","client_id":"c","org":"acme","scope":"mcp.read","grant_id":"gr_1","exp":now+60})
                .to_string(),
        );
        let sig: p256::ecdsa::Signature = k.sign(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    let config = OAuthConfig {
        issuer: ORIGIN.into(),
        audience: RESOURCE.into(),
        keys: Keys::jwks_every(&url, Duration::from_millis(200)),
    };
    let now = || chrono::Utc::now().timestamp();
    let validate = |t: &str| spend_gateway::oauth::validate(&config, t, now());
    assert!(
        matches!(validate(&sign(&a, "k-a")), Err(spend_gateway::oauth::TokenError::UnknownKey(_))),
        "nothing fetched yet"
    );
    config.keys.refresh().await.unwrap();
    assert_eq!(validate(&sign(&a, "k-a")).unwrap().grant_id.as_deref(), Some("gr_1"));
    // The issuer rotates to key b.
    *published.lock().unwrap() = serde_json::json!({"keys": [jwk(&b, "k-b")]});
    assert!(validate(&sign(&b, "k-b")).is_err());
    config.keys.refresh().await.unwrap();
    assert!(validate(&sign(&b, "k-b")).is_err(), "no second fetch within the interval");
    tokio::time::sleep(Duration::from_millis(250)).await;
    config.keys.refresh().await.unwrap();
    assert!(validate(&sign(&b, "k-b")).is_ok(), "the rotated key, fetched again");
    assert!(validate(&sign(&a, "k-a")).is_err(), "the retired key is gone");
    // A key signing under another's kid does not pass.
    assert!(matches!(validate(&sign(&a, "k-b")), Err(spend_gateway::oauth::TokenError::Signature)));
    server.abort();
}
