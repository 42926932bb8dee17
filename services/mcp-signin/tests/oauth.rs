//! MCP sign-in's authorization server end to end, on JetStream, with a
//! human signing in by a software passkey:
//! - RFC 8414 metadata; dynamic registration (stored nowhere, bounded,
//!   rate-limited) and client metadata documents (fetched under an SSRF
//!   guard, with a size and a time limit);
//! - authorization with PKCE S256 → consent → code → tokens signed with
//!   the JWKS key of their `kid`; a refresh rotates; a spent refresh token
//!   or a reused code revokes the grant; RFC 7009 revocation;
//! - bad input: a PKCE verifier that does not match, a redirect URI not
//!   registered, `mcp.approve`, another resource, an oversized, slow or
//!   lying metadata document — each a clear OAuth error and an audited
//!   refusal; every grant, token issue and revocation an event, with no
//!   token on the log.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier as _;
use spend_approval::{Application, ApprovalConfig, Deps};
use spend_core::Secret;
use spend_draft::humans::Human;
use spend_eventlog::EventLog;
use spend_eventlog::jetstream::JetStreamLog;
use spend_mcp_signin::{Lifetimes, OAuthConfig};
use spend_testkit::Streams;
use spend_testkit::events::{append_all, on_log};
use spend_testkit::mcp_signin::{authorize_query, consent, grant_and_redeem, http, param, pkce, refresh, sign_in, token, trusted_admin};

const ORIGIN: &str = "http://localhost:7200";
const RESOURCE: &str = "http://localhost:7100/mcp";

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _key_dir: tempfile::TempDir,
}

async fn start(log: &Arc<dyn EventLog>, prefix: &str, allow_private: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let signer = spend_signer::LocalSigner::load_or_create(&dir.path().join("token-key.pem")).unwrap();
    start_with(log, prefix, allow_private, Arc::new(signer), dir).await
}

async fn start_with(log: &Arc<dyn EventLog>, prefix: &str, allow_private: bool, signer: Arc<dyn spend_signer::Signer>, dir: tempfile::TempDir) -> Running {
    let mut c = ApprovalConfig::new("127.0.0.1:0");
    c.origin = Some(ORIGIN.into());
    let app = Application::build(
        c,
        Deps {
            log: log.clone(),
            prefix: prefix.into(),
            policy: Arc::new(spend_policy::spendmd::parse("spend:\n  daily_limit: 100 USD\n").unwrap()),
            accounts: None,
        },
    )
    .await
    .unwrap();
    let config = OAuthConfig {
        resource: RESOURCE.into(),
        signer,
        registration_secret: Secret::new("a-registration-secret-of-32-characters!"),
        allow_private_metadata: allow_private,
        lifetimes: Lifetimes::default(),
    };
    let m = spend_mcp_signin::mount(app.signed_in(), &app.origin(), log.clone(), prefix, config)
        .await
        .unwrap();
    let runner = m.runner(log.clone());
    let app = app.with_routes(m.pages, m.public).with_companion(runner);
    let base = format!("http://{}", app.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        stop,
        task,
        _key_dir: dir,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A test's own streams, its log, and ada, acme's first admin, trusted on it.
async fn acme() -> (Streams, Arc<dyn EventLog>, String, Human) {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(streams.events.clone()).await.unwrap());
    let (ada, events) = trusted_admin("acme", "ada", "ada@acme.example");
    append_all(log.as_ref(), &prefix, events).await;
    (streams, log, prefix, ada)
}

async fn register(base: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = http().post(format!("{base}/oauth/register")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The alerts' reasons on the log.
async fn alerts(log: &Arc<dyn EventLog>) -> Vec<String> {
    on_log(log.as_ref())
        .await
        .into_iter()
        .filter(|(_, e)| e["type"] == "spend.security.alert.v1")
        .map(|(_, e)| e["data"]["reason"].as_str().unwrap().to_string())
        .collect()
}

async fn events_of(log: &Arc<dyn EventLog>, t: &str) -> Vec<serde_json::Value> {
    on_log(log.as_ref()).await.into_iter().map(|(_, e)| e).filter(|e| e["type"] == t).collect()
}

/// Checks an access token's signature with the JWKS key its `kid` names.
async fn verified_claims(base: &str, access: &str) -> serde_json::Value {
    let jwks: serde_json::Value = http().get(format!("{base}/oauth/jwks.json")).send().await.unwrap().json().await.unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    let mut sec1 = vec![4u8];
    sec1.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_registers_a_human_consents_and_its_tokens_rotate_once_and_revoke() {
    let (_streams, log, prefix, mut ada) = acme().await;
    let app = start(&log, &prefix, true).await;
    let base = app.base.clone();

    // Discovery.
    let meta: serde_json::Value = http()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], ORIGIN);
    assert_eq!(meta["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(meta["scopes_supported"], serde_json::json!(["mcp.read", "mcp.draft"]));
    assert_eq!(meta["registration_endpoint"], format!("{ORIGIN}/oauth/register"));
    for (k, v) in meta.as_object().unwrap() {
        if k == "issuer" || k.ends_with("_endpoint") || k.ends_with("_uri") || k.ends_with("_documentation") {
            assert!(
                v.as_str().is_some_and(|u| u.starts_with(ORIGIN)),
                "{k} is an absolute URL (clients refuse others): {v}"
            );
        }
    }

    // Dynamic registration: a public client.
    let (status, reg) = register(
        &base,
        serde_json::json!({"client_name": "Test IDE", "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    let redirect = "http://127.0.0.1:49152/callback";

    // Not signed in: the consent page sends the human to sign in first.
    let (verifier, challenge) = pkce();
    let q = authorize_query(&client_id, redirect, &challenge, "mcp.read mcp.draft", RESOURCE);
    let r = http().get(format!("{base}/oauth/authorize")).query(&q).send().await.unwrap();
    assert!(r.status().is_redirection());
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/signin?next=/oauth/authorize%3F"));

    let session = sign_in(&base, ORIGIN, "ada@acme.example", &mut ada).await;
    let back = consent(&base, &session, &q, "allow", &["grant_read", "grant_draft"]).await;
    assert_eq!(back.as_str().split('?').next(), Some(redirect));
    assert_eq!(param(&back, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&back, "iss").as_deref(), Some(ORIGIN));
    let code = param(&back, "code").expect("a code");

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
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "mcp.draft mcp.read");
    assert_eq!(t["expires_in"], 600);
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh1 = t["refresh_token"].as_str().unwrap().to_string();
    let claims = verified_claims(&base, &access).await;
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["iss"], ORIGIN);
    assert_eq!(claims["org"], "acme");
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["client_id"], client_id.as_str());
    let grant_id = claims["grant_id"].as_str().unwrap().to_string();

    // A refresh rotates: the new token works once, the old one never again.
    let (status, t2) = refresh(&base, &client_id, &refresh1).await;
    assert_eq!(status, 200, "{t2}");
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh1, refresh2);
    // Narrowing on refresh is allowed; approve never is.
    let (status, e) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
            ("client_id", &client_id),
            ("scope", "mcp.read mcp.approve"),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")));
    // The spent refresh token again: a replay, so the grant is revoked.
    let (status, e) = refresh(&base, &client_id, &refresh1).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    let (status, e) = refresh(&base, &client_id, &refresh2).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(e["error_description"].as_str().unwrap().contains("revoked"), "{e}");
    let revoked = events_of(&log, "spend.client.revoked.v1").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["grant_id"], grant_id.as_str());
    assert_eq!(revoked[0]["subject"], format!("client/{grant_id}"));

    // A second grant: its code used twice revokes it.
    let (verifier, challenge) = pkce();
    let q = authorize_query(&client_id, redirect, &challenge, "mcp.read", RESOURCE);
    let code = param(&consent(&base, &session, &q, "allow", &["grant_read"]).await, "code").unwrap();
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, t) = token(&base, &redeem).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["scope"], "mcp.read", "only what was asked and granted");
    let (status, e) = token(&base, &redeem).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(events_of(&log, "spend.client.revoked.v1").await.len(), 2);

    // A third: a verifier that does not match, a redirect URI that differs.
    let (_, challenge) = pkce();
    let q = authorize_query(&client_id, redirect, &challenge, "mcp.read mcp.draft", RESOURCE);
    let code = param(&consent(&base, &session, &q, "allow", &["grant_read", "grant_draft"]).await, "code").unwrap();
    let (other, _) = pkce();
    let (status, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &other),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(e["error_description"].as_str().unwrap().contains("code_verifier"), "{e}");
    let (status, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/callback"),
            ("client_id", &client_id),
            ("code_verifier", &other),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (status, e) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", "src_unknown"),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &other),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // A denial sends the client away with access_denied and records nothing.
    let grants_before = events_of(&log, "spend.client.granted.v1").await.len();
    let (_, challenge) = pkce();
    let q = authorize_query(&client_id, redirect, &challenge, "mcp.read", RESOURCE);
    let back = consent(&base, &session, &q, "deny", &["grant_read"]).await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(events_of(&log, "spend.client.granted.v1").await.len(), grants_before);

    // A fourth, revoked by the client (RFC 7009) with its access token.
    let (_, t) = grant_and_redeem(&base, &session, &client_id, redirect, "mcp.read", &["grant_read"], RESOURCE).await;
    let access = t["access_token"].as_str().unwrap();
    let r = http()
        .post(format!("{base}/oauth/revoke"))
        .form(&[("token", access), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = refresh(&base, &client_id, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "its refresh token died with it");
    assert_eq!(events_of(&log, "spend.client.revoked.v1").await.len(), 3);

    // Each grant and each issue is an event on the grant's subject.
    let granted = events_of(&log, "spend.client.granted.v1").await;
    assert_eq!(granted.len(), 4);
    assert!(granted.iter().all(|g| g["actor"]["id"] == "ada" && g["org"] == "acme"));
    assert_eq!(
        events_of(&log, "spend.client.tokens_issued.v1").await.len(),
        4,
        "three redemptions and one refresh"
    );
    let reasons = alerts(&log).await;
    for r in [
        "oauth.refresh_reused",
        "oauth.code_reused",
        "oauth.pkce_refused",
        "oauth.approve_requested",
        "oauth.code_refused",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} audited: {reasons:?}");
    }
    // No token or code is ever on the log.
    let all = serde_json::to_string(&on_log(log.as_ref()).await.into_iter().map(|(_, e)| e).collect::<Vec<_>>()).unwrap();
    for secret in [&refresh1, &refresh2, &code, &access.to_string()] {
        assert!(!all.contains(secret.as_str()));
    }
    app.stop().await;
}

/// MCP sign-in's client routes sit outside the app's gate; every other path
/// stays behind it once they are merged in: an agent key sent to a page
/// that does not exist is refused and audited, not answered a bare 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_gate_still_answers_every_path_but_the_client_routes() {
    let (_streams, log, prefix, _ada) = acme().await;
    let s = start(&log, &prefix, false).await;
    let key = format!("ssk_a1b2c3d4e5f6_{}", "7".repeat(64));
    let r = http().get(format!("{}/no/such/page", s.base)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 403, "an agent key on an unknown path");
    let r = http().get(format!("{}/.well-known/oauth-authorization-server", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "a client route is answered outside the gate");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !alerts(&log).await.iter().any(|r| r == "agent_on_human_route") {
        assert!(std::time::Instant::now() < deadline, "the refusal is audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_authorization_requests_get_clear_oauth_errors_and_are_audited() {
    let (_streams, log, prefix, mut ada) = acme().await;
    let app = start(&log, &prefix, true).await;
    let base = app.base.clone();
    let session = sign_in(&base, ORIGIN, "ada@acme.example", &mut ada).await;
    let (_, reg) = register(
        &base,
        serde_json::json!({"client_name": "Test IDE", "redirect_uris": ["https://ide.example/cb"]}),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let (_, challenge) = pkce();
    let get = |q: Vec<(String, String)>| {
        let (base, cookie) = (base.clone(), session.cookie.clone());
        async move {
            http()
                .get(format!("{base}/oauth/authorize"))
                .query(&q)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };

    // A redirect URI the client did not register: never redirected to.
    let r = get(authorize_query(&client_id, "https://evil.example/cb", &challenge, "mcp.read", RESOURCE)).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not one this client registered"));
    // A client id this server did not sign.
    let mut forged = client_id.clone();
    forged.insert(12, 'x');
    let r = get(authorize_query(&forged, "https://ide.example/cb", &challenge, "mcp.read", RESOURCE)).await;
    assert_eq!(r.status(), 400);

    let error_of = |r: reqwest::Response| {
        assert!(r.status().is_redirection(), "{}", r.status());
        let u = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(u.as_str().starts_with("https://ide.example/cb?"));
        (param(&u, "error").unwrap(), param(&u, "error_description").unwrap())
    };
    let (e, d) = error_of(
        get(authorize_query(
            &client_id,
            "https://ide.example/cb",
            &challenge,
            "mcp.read mcp.approve",
            RESOURCE,
        ))
        .await,
    );
    assert_eq!(e, "invalid_scope");
    assert!(d.contains("never granted"), "{d}");
    let (e, _) = error_of(
        get(authorize_query(
            &client_id,
            "https://ide.example/cb",
            &challenge,
            "mcp.read",
            "https://other.example/mcp",
        ))
        .await,
    );
    assert_eq!(e, "invalid_target");
    let mut plain = authorize_query(&client_id, "https://ide.example/cb", &challenge, "mcp.read", RESOURCE);
    plain.iter_mut().find(|(k, _)| k == "code_challenge_method").unwrap().1 = "plain".into();
    let (e, d) = error_of(get(plain).await);
    assert_eq!((e.as_str(), d.contains("S256")), ("invalid_request", true));
    let no_pkce: Vec<(String, String)> = authorize_query(&client_id, "https://ide.example/cb", &challenge, "mcp.read", RESOURCE)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let (e, d) = error_of(get(no_pkce).await);
    assert_eq!((e.as_str(), d.contains("PKCE")), ("invalid_request", true));

    // Registration refuses what it cannot keep.
    let (s, e) = register(&base, serde_json::json!({"redirect_uris": ["http://evil.example/cb"]})).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_redirect_uri")));
    let (s, e) = register(
        &base,
        serde_json::json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_client_metadata")));
    let (s, e) = register(
        &base,
        serde_json::json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    assert_eq!((s, e["token_endpoint_auth_method"].as_str()), (201, Some("none")), "registered public: {e}");
    let (s, e) = register(&base, serde_json::json!({"redirect_uris": ["https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4", "https://a.example/5"]})).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_redirect_uri")));
    let r = http().post(format!("{base}/oauth/register")).body(vec![b' '; 20_000]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // A flood of registrations from one address is cut off, and audited once.
    let mut refused = 0;
    for _ in 0..25 {
        let (s, _) = register(&base, serde_json::json!({"redirect_uris": ["https://a.example/cb"]})).await;
        refused += usize::from(s == 429);
    }
    assert!(refused > 0, "registrations are rate limited");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let reasons = alerts(&log).await;
    for r in [
        "oauth.redirect_refused",
        "oauth.client_refused",
        "oauth.approve_requested",
        "oauth.resource_refused",
        "oauth.registration_flood",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} audited: {reasons:?}");
    }
    let flood = reasons.iter().filter(|x| *x == "oauth.registration_flood").count();
    assert!(
        (1..=3).contains(&flood) && flood < refused,
        "a flood is recorded a few times, then counted: {flood} of {refused}"
    );
    app.stop().await;
}

/// A client's metadata document server: `/client.json` (good),
/// `/big.json` (too large), `/slow.json` (too slow), `/liar.json` (names
/// another client id).
async fn metadata_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let doc = move |name: &str, client_id: String| {
        serde_json::json!({"client_id": client_id, "client_name": name, "redirect_uris": ["http://127.0.0.1/callback"]}).to_string()
    };
    let (good, liar) = (
        doc("Metadata IDE", format!("{b}/client.json")),
        doc("Liar", "https://someone.else/client.json".into()),
    );
    let big = format!(
        "{{\"client_id\":\"{b}/big.json\",\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"pad\":\"{}\"}}",
        "x".repeat(20_000)
    );
    let app = axum::Router::new()
        .route("/client.json", get(move || async move { good }))
        .route("/liar.json", get(move || async move { liar }))
        .route("/big.json", get(move || async move { big }))
        .route(
            "/slow.json",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(8)).await;
                "{}"
            }),
        );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_metadata_document_is_fetched_within_limits_and_never_from_a_private_address_in_production() {
    let (_streams, log, prefix, mut ada) = acme().await;
    let (docs, docs_task) = metadata_server().await;
    let dev = start(&log, &prefix, true).await;
    let session = sign_in(&dev.base, ORIGIN, "ada@acme.example", &mut ada).await;

    // A document on loopback, where allowed (tests, `spend dev`): the
    // client registers by being its URL.
    let (verifier, challenge) = pkce();
    let client_id = format!("{docs}/client.json");
    let q = authorize_query(&client_id, "http://127.0.0.1:40000/callback", &challenge, "mcp.read", RESOURCE);
    let page = http()
        .get(format!("{}/oauth/authorize", dev.base))
        .query(&q)
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Metadata IDE") && page.contains("acme"), "{page}");
    let code = param(&consent(&dev.base, &session, &q, "allow", &["grant_read"]).await, "code").unwrap();
    let (status, t) = token(
        &dev.base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:40000/callback"),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");

    let refused = |id: String| {
        let (base, cookie) = (dev.base.clone(), session.cookie.clone());
        let q = authorize_query(&id, "http://127.0.0.1/callback", &challenge, "mcp.read", RESOURCE);
        async move {
            let r = http()
                .get(format!("{base}/oauth/authorize"))
                .query(&q)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
            r.text().await.unwrap()
        }
    };
    assert!(refused(format!("{docs}/big.json")).await.contains("larger than"));
    assert!(refused(format!("{docs}/liar.json")).await.contains("must name its own URL"));
    let started = std::time::Instant::now();
    assert!(refused(format!("{docs}/slow.json")).await.contains("did not arrive"));
    assert!(started.elapsed() < Duration::from_secs(7), "the fetch gave up at its time limit");
    dev.stop().await;

    // In production: a document's host must resolve to public addresses.
    let prod = start(&log, &prefix, false).await;
    let session = sign_in(&prod.base, ORIGIN, "ada@acme.example", &mut ada).await;
    let port = docs.rsplit(':').next().unwrap();
    for id in [format!("https://127.0.0.1:{port}/client.json"), format!("https://localhost:{port}/client.json")] {
        let q = authorize_query(&id, "http://127.0.0.1/callback", &challenge, "mcp.read", RESOURCE);
        let r = http()
            .get(format!("{}/oauth/authorize", prod.base))
            .query(&q)
            .header("cookie", &session.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let text = r.text().await.unwrap();
        assert!(text.contains("private, loopback or link-local"), "{text}");
    }
    // And plain http is no metadata URL there.
    let q = authorize_query(&format!("{docs}/client.json"), "http://127.0.0.1/callback", &challenge, "mcp.read", RESOURCE);
    let r = http()
        .get(format!("{}/oauth/authorize", prod.base))
        .query(&q)
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    prod.stop().await;
    docs_task.abort();
    assert!(alerts(&log).await.iter().any(|r| r == "oauth.client_refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_signs_the_access_tokens_and_its_der_becomes_a_jws_signature() {
    // moto's KMS answers Sign with DER, as AWS does; the token carries r‖s.
    let kms = spend_testkit::kms_client().await;
    let (key_id, _) = spend_testkit::kms_key(&kms).await;
    let signer = spend_signer::KmsSigner::from_client(kms, &key_id).await.unwrap();
    let (_streams, log, prefix, mut ada) = acme().await;
    let app = start_with(&log, &prefix, false, Arc::new(signer), tempfile::tempdir().unwrap()).await;
    let base = app.base.clone();
    let (_, reg) = register(
        &base,
        serde_json::json!({"client_name": "KMS IDE", "redirect_uris": ["http://127.0.0.1/callback"]}),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let session = sign_in(&base, ORIGIN, "ada@acme.example", &mut ada).await;
    let redirect = "http://127.0.0.1:41000/callback";
    for _ in 0..3 {
        let (status, t) = grant_and_redeem(&base, &session, &client_id, redirect, "mcp.read", &["grant_read"], RESOURCE).await;
        assert_eq!(status, 200, "{t}");
        let claims = verified_claims(&base, t["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["scope"], "mcp.read");
    }
    // The KMS key's ARN is not its kid: the JWKS names a fingerprint.
    let jwks = http().get(format!("{base}/oauth/jwks.json")).send().await.unwrap().text().await.unwrap();
    assert!(!jwks.contains(&key_id) && jwks.contains("es256-"), "{jwks}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_lives_no_longer_than_its_approvers_place() {
    let (_streams, log, prefix, mut ada) = acme().await;
    let app = start(&log, &prefix, true).await;
    let base = app.base.clone();
    let (status, reg) = register(
        &base,
        serde_json::json!({"client_name": "Test IDE", "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let session = sign_in(&base, ORIGIN, "ada@acme.example", &mut ada).await;
    let (status, t) = grant_and_redeem(
        &base,
        &session,
        &client_id,
        "http://127.0.0.1:49152/callback",
        "mcp.read",
        &["grant_read"],
        RESOURCE,
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let refresh_token = t["refresh_token"].as_str().unwrap().to_string();
    let grant_id = verified_claims(&base, t["access_token"].as_str().unwrap()).await["grant_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The operator removes ada: the grant she made is revoked on the
    // record, without anyone presenting a token ...
    let removed = spend_core::Envelope::new(
        "spendsignoff/cli",
        "acme",
        spend_core::Actor::human("operator"),
        "roster/ada",
        spend_core::events::EventData::ApproverRemoved(spend_core::events::ApproverRemoved {
            org: "acme".into(),
            approver_id: "ada".into(),
            reason: "left the company".into(),
        }),
    );
    append_all(log.as_ref(), &prefix, vec![removed]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let revoked = loop {
        let revoked = events_of(&log, "spend.client.revoked.v1").await;
        if !revoked.is_empty() || std::time::Instant::now() > deadline {
            break revoked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["data"]["grant_id"], grant_id.as_str());
    assert!(revoked[0]["data"]["reason"].as_str().unwrap().contains("removed"), "{}", revoked[0]);
    // ... and its refresh token is refused.
    let (status, e) = refresh(&base, &client_id, &refresh_token).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
}

/// An anonymous visitor of `/oauth/authorize` is sent to sign in before
/// anything else: no client metadata document is fetched for them and no
/// browser is bounced to a redirect URI; and the page is rate-limited per
/// address (429 past the limit, audited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visitor_signs_in_before_anything_is_fetched_or_redirected_and_is_rate_limited() {
    let (_streams, log, prefix, _ada) = acme().await;
    let app = start(&log, &prefix, true).await;
    // A metadata document server that counts what it is asked.
    let fetched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let docs = format!("http://{}", listener.local_addr().unwrap());
    let count = fetched.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = listener.accept().await else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            use tokio::io::AsyncWriteExt as _;
            let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let (_, challenge) = pkce();
    let q = authorize_query(&format!("{docs}/client.json"), "https://evil.example/cb", &challenge, "mcp.read", RESOURCE);
    let mut statuses = Vec::new();
    for _ in 0..(spend_approval::web::ATTEMPTS_PER_MINUTE + 3) {
        let r = http().get(format!("{}/oauth/authorize", app.base)).query(&q).send().await.unwrap();
        if r.status().is_redirection() {
            let to = r.headers()["location"].to_str().unwrap().to_string();
            assert!(to.starts_with("/signin?next="), "sent to sign in, never elsewhere: {to}");
        }
        statuses.push(r.status().as_u16());
    }
    let limit = spend_approval::web::ATTEMPTS_PER_MINUTE as usize;
    assert!(statuses[..limit].iter().all(|s| *s == 303 || *s == 302 || *s == 307), "{statuses:?}");
    assert!(statuses[limit..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        fetched.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no document fetched for an anonymous visitor"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !alerts(&log).await.iter().any(|r| r == "approval.rate_limited") {
        assert!(std::time::Instant::now() < deadline, "the rate limit is audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
    app.stop().await;
}
