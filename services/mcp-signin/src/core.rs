//! The pure rules of the authorization server: what a client may register,
//! which redirect URIs match, PKCE, scopes, and the errors OAuth names.
//! No I/O here; the handlers in [`super`] call these and record events.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The scopes a human can grant an MCP client, and what each lets it do,
/// as the consent page says. `mcp.approve` is not among them: it does not
/// exist for a client, and a request for it is refused.
pub const SCOPES: &[(&str, &str)] = &[
    ("mcp.read", "read your accounts, campaigns, metrics, cards and transactions"),
    ("mcp.draft", "propose changes as drafts, which a human must still approve"),
];

/// The scope no client is ever granted.
pub const APPROVE: &str = "mcp.approve";

/// Limits on a dynamic registration: it is stored nowhere (the client id
/// carries it, signed), so these bound the id's length.
pub const MAX_REDIRECT_URIS: usize = 4;
pub const MAX_REDIRECT_URI_LEN: usize = 256;
pub const MAX_CLIENT_NAME_LEN: usize = 80;

/// The prefix of client ids this server issued by dynamic registration.
pub const DYNAMIC_PREFIX: &str = "mcpc_";

/// An OAuth error: the `error` code of RFC 6749 §5.2 (and RFC 7591 §3.2.2,
/// RFC 8707 §2) with a description for the human reading the client's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }
}

/// A client, as registered (dynamically) or described by its metadata
/// document: public (no secret; PKCE is its proof), with the redirect URIs
/// it may be sent back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
}

/// What a client sends to register (RFC 7591 §2) or publishes as its
/// metadata document: the fields this server reads. Others are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// Read to be answered: every client is registered public (`none`).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
}

/// True for `http://localhost`, `http://127.0.0.1` and `http://[::1]`
/// URLs: a native client's loopback redirect, which may use any port.
fn loopback(u: &reqwest::Url) -> bool {
    u.scheme() == "http" && matches!(u.host_str(), Some("localhost") | Some("127.0.0.1") | Some("[::1]"))
}

/// Checks one redirect URI a client registers: absolute, no fragment, and
/// HTTPS or a loopback `http` one (RFC 8252 §7.3), or a private-use scheme
/// of a native app (`com.example.app:/callback`, RFC 8252 §7.1).
fn check_redirect(uri: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::new("invalid_redirect_uri", format!("redirect URI {uri:?}: {why}"));
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(bad(&format!("longer than {MAX_REDIRECT_URI_LEN} characters")));
    }
    let u = reqwest::Url::parse(uri).map_err(|e| bad(&e.to_string()))?;
    if u.fragment().is_some() {
        return Err(bad("a redirect URI has no fragment"));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback(&u) => Ok(()),
        "http" => Err(bad("plain http only to a loopback address (localhost, 127.0.0.1, [::1])")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => Err(bad("not a scheme a client can be sent back to")),
        s if s.contains('.') => Ok(()),
        _ => Err(bad("use https, a loopback http URI, or a reverse-domain private-use scheme")),
    }
}

/// Validates what a client declared, as the registration endpoint and the
/// metadata-document fetcher both must: a public client of the code flow.
pub fn validate_metadata(m: &Metadata) -> Result<(String, Vec<String>), OAuthError> {
    let meta = |why: String| OAuthError::new("invalid_client_metadata", why);
    if m.redirect_uris.is_empty() {
        return Err(OAuthError::new("invalid_redirect_uri", "redirect_uris: at least one is required"));
    }
    if m.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new("invalid_redirect_uri", format!("redirect_uris: at most {MAX_REDIRECT_URIS}")));
    }
    for uri in &m.redirect_uris {
        check_redirect(uri)?;
    }
    if let Some(g) = &m.grant_types
        && let Some(bad) = g.iter().find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(meta(format!("grant type {bad:?} is not offered: only authorization_code and refresh_token")));
    }
    if let Some(r) = &m.response_types
        && r.iter().any(|r| r != "code")
    {
        return Err(meta("only the response type \"code\" is offered".into()));
    }
    // A client asking for a secret (many SDKs ask for client_secret_post
    // by default) is registered public all the same, as RFC 7591 §3.2.1
    // lets a server decide: the answer says "none", and PKCE is its proof.
    let name = m.client_name.clone().unwrap_or_default();
    let name = name.trim();
    if name.chars().count() > MAX_CLIENT_NAME_LEN {
        return Err(meta(format!("client_name: at most {MAX_CLIENT_NAME_LEN} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(meta("client_name: no control characters".into()));
    }
    Ok((name.to_string(), m.redirect_uris.clone()))
}

/// The compact registration a dynamic client id carries.
#[derive(Serialize, Deserialize)]
struct Carried {
    n: String,
    r: Vec<String>,
}

fn mac(secret: &[u8], body: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"spendsignoff mcp client registration\n");
    m.update(body.as_bytes());
    m.finalize().into_bytes()[..16].to_vec()
}

/// Registers a client without storing anything: its id is the validated
/// registration itself, signed with the servers' shared secret, so every
/// replica knows it and a flood of registrations fills no storage.
pub fn register(secret: &[u8], m: &Metadata) -> Result<Client, OAuthError> {
    let (client_name, redirect_uris) = validate_metadata(m)?;
    let body = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&Carried {
            n: client_name.clone(),
            r: redirect_uris.clone(),
        })
        .expect("a registration serializes"),
    );
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, &body));
    Ok(Client {
        client_id: format!("{DYNAMIC_PREFIX}{body}.{tag}"),
        client_name,
        redirect_uris,
    })
}

/// The client a dynamic client id names, when this server's secret signed it.
pub fn registered(secret: &[u8], client_id: &str) -> Option<Client> {
    let (body, tag) = client_id.strip_prefix(DYNAMIC_PREFIX)?.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    use subtle::ConstantTimeEq as _;
    if !bool::from(mac(secret, body).ct_eq(&tag)) {
        return None;
    }
    let carried: Carried = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    Some(Client {
        client_id: client_id.to_string(),
        client_name: carried.n,
        redirect_uris: carried.r,
    })
}

/// True when a client id is a metadata document's URL (MCP's Client ID
/// Metadata Documents): HTTPS with a path (plain http too where
/// `insecure` allows it: tests and `spend dev`).
pub fn is_metadata_url(client_id: &str, insecure: bool) -> bool {
    reqwest::Url::parse(client_id).is_ok_and(|u| (u.scheme() == "https" || (insecure && u.scheme() == "http")) && u.path() != "/" && u.fragment().is_none())
}

/// Whether `presented` is one of the client's redirect URIs: exactly, or a
/// loopback one that differs only in its port (RFC 8252 §7.3).
pub fn redirect_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(p) = reqwest::Url::parse(presented) else { return false };
    loopback(&p)
        && registered
            .iter()
            .any(|r| reqwest::Url::parse(r).is_ok_and(|r| loopback(&r) && r.host_str() == p.host_str() && r.path() == p.path() && r.query() == p.query()))
}

/// A PKCE S256 code challenge: 43 characters of base64url (RFC 7636 §4.2).
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` answers `challenge` (S256; `plain` is not offered).
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let ok_len = (43..=128).contains(&verifier.len());
    let ok_chars = verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    use subtle::ConstantTimeEq as _;
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    ok_len && ok_chars && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// The scopes a request names (space-separated); none means both a client
/// can have. `mcp.approve` is its own error: the caller audits it.
pub fn requested_scopes(scope: Option<&str>) -> Result<BTreeSet<String>, OAuthError> {
    let asked: BTreeSet<String> = scope.unwrap_or_default().split_whitespace().map(str::to_string).collect();
    if asked.contains(APPROVE) {
        return Err(OAuthError::new(
            "invalid_scope",
            "mcp.approve is never granted to a client: only a signed-in human approves, with a passkey",
        ));
    }
    if let Some(bad) = asked.iter().find(|s| !SCOPES.iter().any(|(k, _)| k == s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("unknown scope {bad:?}: this server grants mcp.read and mcp.draft"),
        ));
    }
    if asked.is_empty() {
        return Ok(SCOPES.iter().map(|(k, _)| k.to_string()).collect());
    }
    Ok(asked)
}

/// The audit reason of a refused `scope`: asking for approve is its own.
pub fn scope_refusal(asked: &str) -> &'static str {
    if asked.split_whitespace().any(|s| s == APPROVE) {
        "oauth.approve_requested"
    } else {
        "oauth.scope_refused"
    }
}

/// The resource a request names (RFC 8707), which must be this gateway's
/// canonical MCP URL; a client that names none gets it.
pub fn check_resource(asked: Option<&str>, canonical: &str) -> Result<(), OAuthError> {
    match asked {
        None => Ok(()),
        Some(r) if r.trim_end_matches('/') == canonical.trim_end_matches('/') => Ok(()),
        Some(r) => Err(OAuthError::new(
            "invalid_target",
            format!("resource {r:?} is not served here: tokens are issued for {canonical}"),
        )),
    }
}

pub use spend_core::sha256_hex;

/// A fresh secret of 32 random bytes, base64url, with a prefix saying what
/// it is (`src_` codes, `srt_` refresh tokens): never `ssk_`, the prefix of
/// agent keys that the human routes refuse.
pub fn random_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uris: &[&str]) -> Metadata {
        Metadata {
            client_name: Some("Example IDE".into()),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_dynamic_client_id_carries_its_registration_and_only_this_servers_secret_signs_it() {
        let c = register(b"secret-one", &meta(&["http://127.0.0.1/callback", "https://ide.example/cb"])).unwrap();
        assert!(c.client_id.starts_with(DYNAMIC_PREFIX));
        assert_eq!(registered(b"secret-one", &c.client_id), Some(c.clone()));
        assert_eq!(registered(b"secret-two", &c.client_id), None, "another server's secret");
        let mut forged = c.client_id.clone();
        forged.insert(10, 'x');
        assert_eq!(registered(b"secret-one", &forged), None, "a tampered registration");
        assert!(c.client_id.len() < 2_000, "bounded: {}", c.client_id.len());
    }

    #[test]
    fn registrations_are_refused_with_the_error_rfc_7591_names() {
        let err = |m: Metadata| validate_metadata(&m).unwrap_err().error;
        assert_eq!(err(meta(&[])), "invalid_redirect_uri");
        assert_eq!(err(meta(&["http://evil.example/cb"])), "invalid_redirect_uri");
        assert_eq!(err(meta(&["javascript:alert(1)"])), "invalid_redirect_uri");
        assert_eq!(err(meta(&["https://a.example/cb#frag"])), "invalid_redirect_uri");
        assert_eq!(
            err(meta(&[
                "https://a.example/1",
                "https://a.example/2",
                "https://a.example/3",
                "https://a.example/4",
                "https://a.example/5"
            ])),
            "invalid_redirect_uri"
        );
        let long = format!("https://a.example/{}", "a".repeat(300));
        assert_eq!(err(meta(&[&long])), "invalid_redirect_uri");
        let mut m = meta(&["https://a.example/cb"]);
        m.grant_types = Some(vec!["client_credentials".into()]);
        assert_eq!(err(m), "invalid_client_metadata");
        let mut m = meta(&["https://a.example/cb"]);
        m.token_endpoint_auth_method = Some("client_secret_basic".into());
        assert!(validate_metadata(&m).is_ok(), "registered public all the same");
        let mut m = meta(&["https://a.example/cb"]);
        m.client_name = Some("x".repeat(81));
        assert_eq!(err(m), "invalid_client_metadata");
        assert!(
            validate_metadata(&meta(&["com.example.ide:/oauth"])).is_ok(),
            "a native app's private-use scheme"
        );
    }

    #[test]
    fn redirects_match_exactly_or_as_a_loopback_uri_on_another_port() {
        let reg = vec!["http://127.0.0.1/callback".to_string(), "https://ide.example/cb".to_string()];
        assert!(redirect_matches(&reg, "https://ide.example/cb"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:51234/callback"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:51234/other"));
        assert!(!redirect_matches(&reg, "http://localhost:51234/callback"), "another host");
        assert!(!redirect_matches(&reg, "https://ide.example/cb/"));
        assert!(!redirect_matches(&reg, "https://ide.example:444/cb"), "only loopback URIs may change port");
        assert!(!redirect_matches(&reg, "https://ide.example/cb?x=1"));
    }

    #[test]
    fn pkce_is_s256_and_the_verifier_must_answer_the_challenge() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!verifier_matches(challenge, challenge), "plain is not offered");
        assert!(!valid_challenge("short"));
    }

    #[test]
    fn approve_is_never_a_scope_and_no_scope_means_read_and_draft() {
        assert_eq!(requested_scopes(Some("mcp.read mcp.approve")).unwrap_err().error, "invalid_scope");
        assert!(requested_scopes(Some("mcp.approve")).unwrap_err().description.contains("never granted"));
        assert_eq!(requested_scopes(Some("admin")).unwrap_err().error, "invalid_scope");
        assert_eq!(requested_scopes(None).unwrap().into_iter().collect::<Vec<_>>(), ["mcp.draft", "mcp.read"]);
        assert_eq!(requested_scopes(Some("mcp.read")).unwrap().into_iter().collect::<Vec<_>>(), ["mcp.read"]);
        assert_eq!(scope_refusal("mcp.read mcp.approve"), "oauth.approve_requested");
        assert_eq!(scope_refusal("admin"), "oauth.scope_refused");
    }

    #[test]
    fn a_token_is_for_this_gateway_only() {
        assert!(check_resource(None, "http://localhost:7100/mcp").is_ok());
        assert!(check_resource(Some("http://localhost:7100/mcp/"), "http://localhost:7100/mcp").is_ok());
        assert_eq!(
            check_resource(Some("https://other.example/mcp"), "http://localhost:7100/mcp")
                .unwrap_err()
                .error,
            "invalid_target"
        );
    }

    #[test]
    fn metadata_document_ids_are_https_urls_with_a_path() {
        assert!(is_metadata_url("https://ide.example/oauth/client.json", false));
        assert!(!is_metadata_url("http://ide.example/oauth/client.json", false));
        assert!(is_metadata_url("http://127.0.0.1:8000/client.json", true));
        assert!(!is_metadata_url("https://ide.example/", false));
        assert!(!is_metadata_url("mcpc_abc.def", true));
    }
}
