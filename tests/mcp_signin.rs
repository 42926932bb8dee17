//! MCP sign-in for tests: a human signing in to the approval app with a
//! software passkey (the bytes a browser's authenticator would send), and
//! an MCP client's side of OAuth (PKCE, the authorization request, the
//! consent form a human answers, the token endpoint), over plain HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;
use spend_draft::humans::Human;

/// A signed-in human's session in the approval app.
pub struct Session {
    /// `__Host-spend_session=…`, for the Cookie header.
    pub cookie: String,
    /// The origin the app expects in `Origin` (its configured origin).
    pub origin: String,
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs `human` in at the app on `base` (its address) whose origin is
/// `origin`, as `email`.
pub async fn sign_in(base: &str, origin: &str, email: &str, human: &mut Human) -> Session {
    let http = http();
    // The app may not have read the human's enrollment from the log yet.
    let mut tries = 0;
    let start: serde_json::Value = loop {
        let r = http
            .post(format!("{base}/signin/start"))
            .header("origin", origin)
            .json(&serde_json::json!({"email": email}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        // The app answers alike for an email it does not know (yet): a
        // ceremony for this human's passkey names their credential.
        if status.is_success()
            && body["credential_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|i| *i == human.credential_id.as_str()))
        {
            break body;
        }
        tries += 1;
        assert!(tries < 50, "sign-in start: {status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // What the passkey page computes: the app names only the nonce.
    assert!(start.get("challenge").is_none(), "the app hands out no challenge: {start}");
    let challenge = spend_draft::proof::signin_challenge(origin, start["ceremony"].as_str().expect("a sign-in nonce"));
    let (ad, cdj, sig) = human.key.assert(&challenge);
    let r = http
        .post(format!("{base}/signin/finish"))
        .header("origin", origin)
        .json(&serde_json::json!({
            "ceremony": start["ceremony"],
            "assertion": {
                "credential_id": human.credential_id,
                "authenticator_data": URL_SAFE_NO_PAD.encode(ad),
                "client_data_json": URL_SAFE_NO_PAD.encode(cdj),
                "signature": URL_SAFE_NO_PAD.encode(sig),
            }
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "sign-in: {} {}", r.status(), r.text().await.unwrap_or_default());
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    // `__Host-`: this origin's only, every path, Secure, never a domain's.
    assert!(
        set_cookie.starts_with("__Host-spend_session=")
            && set_cookie.contains("; Path=/;")
            && set_cookie.contains("Secure")
            && !set_cookie.to_lowercase().contains("domain="),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Session { cookie, origin: origin.into() }
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", uuid::Uuid::new_v4().simple()) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The query of an authorization request.
pub fn authorize_query(client_id: &str, redirect_uri: &str, challenge: &str, scope: &str, resource: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", scope),
        ("state", "st-123"),
        ("resource", resource),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The value of a page's hidden `csrf` field.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The human answers the consent page of `query`: `decision` (`allow` or
/// `deny`) granting `grants` (`grant_read`, `grant_draft`). Returns where
/// the browser is sent (the client's redirect URI with a code or error).
pub async fn consent(base: &str, session: &Session, query: &[(String, String)], decision: &str, grants: &[&str]) -> reqwest::Url {
    let http = http();
    let page = http
        .get(format!("{base}/oauth/authorize"))
        .query(query)
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the consent page");
    let csp = page.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    let body = page.text().await.unwrap();
    assert!(!body.contains("mcp.approve"), "approve is not on the page");
    let redirect = &query.iter().find(|(k, _)| k == "redirect_uri").unwrap().1;
    if let Ok(u) = reqwest::Url::parse(redirect)
        && matches!(u.scheme(), "http" | "https")
    {
        assert!(csp.contains(&u.origin().ascii_serialization()), "the form may go on to the client: {csp}");
    }
    let mut form = query.to_vec();
    form.push(("csrf".into(), csrf_of(&body)));
    form.push(("decision".into(), decision.into()));
    for g in grants {
        form.push((g.to_string(), "on".into()));
    }
    let r = http
        .post(format!("{base}/oauth/authorize"))
        .header("cookie", &session.cookie)
        .header("origin", &session.origin)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection(),
        "the consent answer: {} {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
    reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

/// A query parameter of a URL.
pub fn param(u: &reqwest::Url, k: &str) -> Option<String> {
    u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned())
}

/// POSTs a form to the token endpoint: (status, JSON answer).
pub async fn token(base: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = http().post(format!("{base}/oauth/token")).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    (status, r.json().await.unwrap())
}

/// A client's whole authorization: PKCE, the authorization request for
/// `scope`, the human allowing `grants` on the consent page, the code
/// redeemed. Returns the token endpoint's answer.
pub async fn grant_and_redeem(
    base: &str,
    session: &Session,
    client_id: &str,
    redirect: &str,
    scope: &str,
    grants: &[&str],
    resource: &str,
) -> (u16, serde_json::Value) {
    let (verifier, challenge) = pkce();
    let q = authorize_query(client_id, redirect, &challenge, scope, resource);
    let code = param(&consent(base, session, &q, "allow", grants).await, "code").expect("a code");
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", &verifier),
            ("resource", resource),
        ],
    )
    .await
}

/// A refresh at the token endpoint: its answer.
pub async fn refresh(base: &str, client_id: &str, refresh_token: &str) -> (u16, serde_json::Value) {
    token(
        base,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)],
    )
    .await
}

/// `name`, an admin of `org` with a software passkey who signs in as
/// `email`, and the events that make her trusted (her enrollment and the
/// operator's anchor), to append before the app reads the log.
pub fn trusted_admin(org: &str, name: &str, email: &str) -> (Human, Vec<spend_core::Envelope>) {
    use spend_core::events::EventData;
    use spend_core::{Actor, Envelope};
    let human = Human::new(name, spend_draft::approvers::Role::Admin);
    let mut enrolled = human.enrolled(org, None);
    enrolled.email = Some(email.into());
    let events = vec![
        Envelope::new(
            "spendsignoff/approval",
            org,
            Actor::human(name),
            format!("approver/{name}"),
            EventData::ApproverEnrolled(enrolled),
        ),
        Envelope::new(
            "spendsignoff/cli",
            org,
            Actor::human("operator"),
            format!("anchor/{org}"),
            EventData::ApproverAnchored(human.anchored(org)),
        ),
    ];
    (human, events)
}
