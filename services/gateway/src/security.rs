//! The guard in front of every agent request, MCP and gRPC alike, applying
//! the organisation's SPEND.md `security:` section. In order:
//!
//! 1. **API key** (`Authorization: Bearer ssk_…`): unknown, revoked or
//!    expired keys get 401.
//! 2. **Client address**: the socket's peer, or — only when that peer is a
//!    configured trusted proxy — the right-most address in
//!    `X-Forwarded-For` that is not itself a trusted proxy (the left part
//!    of the header is whatever the client chose to send).
//! 3. **`ip_allowlist`**: an address outside it gets 403.
//! 4. **Rate limit** per key (`rate_limit_per_minute`, a token bucket
//!    refilled continuously): 429.
//! 5. **Size** (`max_request_bytes`): 413.
//! 6. **Signed requests** (`require_signed_requests`): `X-Spend-Timestamp`
//!    (unix seconds, within ±5 minutes), `X-Spend-Nonce` (8–64 of
//!    `[A-Za-z0-9_-]`) and `X-Spend-Signature` = hex HMAC-SHA256, keyed
//!    with the API key itself, over
//!    `timestamp \n nonce \n METHOD \n path \n hex(SHA-256(body))`.
//!    A nonce is recorded on the event log with an expected last subject
//!    sequence of 0, so a replay is refused by every replica: 401.
//!
//! Every refusal is a `spend.security.alert.v1` event naming the key id
//! (never the key), the address and the reason. gRPC callers get the same
//! refusals as gRPC statuses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use spend_core::Actor;
use spend_core::events::{EventData, NonceUsed};
use spend_eventlog::LogError;

use crate::{GatewayState, Identity, credentials};

/// How far a signed request's timestamp may be from the gateway's clock.
pub const SIGNATURE_SKEW_SECS: i64 = 300;

/// Per-key token buckets.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket of `per_minute` (burst the
    /// same); false when it is empty.
    pub fn admit(&self, key: &str, per_minute: u32) -> bool {
        let cap = per_minute.max(1) as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * cap / 60.0).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub use spend_core::alert_gate::{ALERT_WINDOW, AlertGate, Repeats};

/// The client's address: the peer, unless the peer is a trusted proxy.
/// Then `X-Forwarded-For` is walked from the right (the hops our own
/// proxies appended) to the first address that is not a trusted proxy;
/// whatever lies left of it was written by the client and is ignored.
/// `None` when a hop our proxies vouch for is not an address: the client
/// is then unknown, and an allowlist refuses it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = hop.parse().ok()?;
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// The string a signed request's HMAC covers.
pub fn signing_string(timestamp: &str, nonce: &str, method: &str, path: &str, body: &[u8]) -> String {
    format!("{timestamp}\n{nonce}\n{method}\n{path}\n{}", hex::encode(Sha256::digest(body)))
}

/// Signs a request the way agents must (used by clients and tests).
pub fn sign(api_key: &str, timestamp: &str, nonce: &str, method: &str, path: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_string(timestamp, nonce, method, path, body).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A refusal: status, alert reason, and the message the caller sees.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

fn refusal(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason,
        message: message.into(),
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The refusal as the caller's protocol expects it.
fn respond(state: &GatewayState, grpc: bool, r: &Refusal) -> Response {
    if grpc {
        let code = match r.status {
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::InvalidArgument,
        };
        return tonic::Status::new(code, r.message.clone()).into_http();
    }
    let mut resp = (r.status, r.message.clone()).into_response();
    if r.status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&crate::oauth::challenge(state))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The guard: see the module documentation.
pub async fn guard(State(state): State<Arc<GatewayState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request, next: Next) -> Response {
    let grpc = is_grpc(req.headers());
    let address = client_address(peer.ip(), req.headers(), &state.config.trusted_proxies).map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string());
    let Some(secret) = secret else {
        let r = refusal(
            StatusCode::UNAUTHORIZED,
            "apikey.missing",
            "an agent API key is required (Authorization: Bearer ssk_…)",
        );
        state.alert(None, None, Some(&address), r.reason, &r.message).await;
        return respond(&state, grpc, &r);
    };
    // An OAuth access token (interactive MCP clients) or an API key.
    if crate::oauth::looks_like_jwt(&secret) {
        let claims = match &state.config.oauth {
            Some(config) => {
                let mut c = crate::oauth::validate(config, &secret, chrono::Utc::now().timestamp());
                // A key the issuer published since the last fetch (a rotation).
                if matches!(c, Err(crate::oauth::TokenError::UnknownKey(_))) {
                    if let Err(e) = config.keys.refresh().await {
                        tracing::warn!(error = %e, "could not fetch the authorization server's keys");
                    }
                    c = crate::oauth::validate(config, &secret, chrono::Utc::now().timestamp());
                }
                match c {
                    Ok(c) => {
                        let revoked = state
                            .view
                            .read()
                            .await
                            .grant_revoked(&c.org, c.grant_id.as_deref().unwrap_or_default(), c.issued_at, &c.subject);
                        if revoked { Err(crate::oauth::TokenError::Revoked) } else { Ok(c) }
                    }
                    e => e,
                }
            }
            None => Err(crate::oauth::TokenError::NotConfigured),
        };
        let claims = match claims {
            Ok(c) => c,
            Err(e) => {
                state.alert(None, None, Some(&address), e.code(), &e.to_string()).await;
                let status = match e {
                    crate::oauth::TokenError::Scope(_) => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                return respond(&state, grpc, &refusal(status, "oauth", e.to_string()));
            }
        };
        let who = Identity {
            key_id: claims.caller_id(),
            org: claims.org.clone(),
            scopes: claims.scopes.clone(),
            address,
        };
        let policy = state.active_policy(&who.org).await.0;
        return admit_and_run(&state, who, &secret, &policy.security, grpc, req, next).await;
    }
    // The key id names the organisation whose SPEND.md applies.
    let org = match credentials::key_id_of(&secret) {
        Some(id) => state.keys.read().await.org_of(id),
        None => None,
    };
    let policy = match org {
        Some(org) => state.active_policy(&org).await.0,
        None => state.bootstrap_policy().0,
    };
    let rotation = policy.security.api_key_rotation_days;
    let authenticated = state
        .keys
        .read()
        .await
        .authenticate(&secret, rotation, chrono::Utc::now())
        .map(|k| (k.key_id.clone(), k.org.clone(), k.scopes.clone()));
    let (key_id, org, scopes) = match authenticated {
        Ok(k) => k,
        Err(e) => {
            let key_id = credentials::key_id_of(&secret).map(str::to_string);
            state.alert(None, key_id.as_deref(), Some(&address), e.code(), &e.to_string()).await;
            return respond(&state, grpc, &refusal(StatusCode::UNAUTHORIZED, "apikey", e.to_string()));
        }
    };
    let who = Identity { key_id, org, scopes, address };
    admit_and_run(&state, who, &secret, &policy.security, grpc, req, next).await
}

/// Checks 3–6, then the request with the caller's identity attached, or
/// the refusal (audited).
async fn admit_and_run(
    state: &GatewayState,
    who: Identity,
    secret: &str,
    sec: &spend_policy::spendmd::Security,
    grpc: bool,
    req: Request,
    next: Next,
) -> Response {
    match admit(state, &who, secret, sec, req).await {
        Ok(mut req) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(r) => {
            state.alert(Some(&who.org), Some(&who.key_id), Some(&who.address), r.reason, &r.message).await;
            respond(state, grpc, &r)
        }
    }
}

/// Checks 3–6 for an authenticated caller; the request, body buffered
/// (reflection's stream excepted), when all pass.
async fn admit(state: &GatewayState, who: &Identity, secret: &str, sec: &spend_policy::spendmd::Security, req: Request) -> Result<Request, Refusal> {
    if !sec.ip_allowlist.is_empty() {
        let ip: Option<IpAddr> = who.address.parse().ok();
        if !ip.is_some_and(|ip| sec.ip_allowlist.iter().any(|n| n.contains(&ip))) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "ip.not_allowed",
                format!("address {} is not in the organisation's ip_allowlist", who.address),
            ));
        }
    }
    if !state.rate.admit(&who.key_id, sec.rate_limit_per_minute()) {
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "rate.limited",
            format!("key {} is over its limit of {} requests per minute", who.key_id, sec.rate_limit_per_minute()),
        ));
    }
    let limit = sec.max_request_bytes();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Reflection (the schema, public anyway) is a bidirectional stream whose
    // body never ends: it cannot be buffered (that waited for the client's
    // deadline) or signed. The limit applies as it streams.
    if req.uri().path().starts_with("/grpc.reflection.") {
        let (parts, body) = req.into_parts();
        return Ok(Request::from_parts(parts, Body::new(http_body_util::Limited::new(body, limit))));
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    if sec.require_signed_requests {
        verify_signature(state, who, secret, &parts.method, parts.uri.path(), &parts.headers, &body).await?;
    }
    Ok(Request::from_parts(parts, Body::from(body)))
}

async fn verify_signature(
    state: &GatewayState,
    who: &Identity,
    secret: &str,
    method: &axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (Some(ts), Some(nonce), Some(sig)) = (get("x-spend-timestamp"), get("x-spend-nonce"), get("x-spend-signature")) else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "signature.missing",
            "this organisation requires signed requests: X-Spend-Timestamp, X-Spend-Nonce and X-Spend-Signature",
        ));
    };
    let Ok(t) = ts.parse::<i64>() else {
        return Err(refusal(StatusCode::UNAUTHORIZED, "signature.invalid", "X-Spend-Timestamp is not unix seconds"));
    };
    let skew = chrono::Utc::now().timestamp() - t;
    if skew.abs() > SIGNATURE_SKEW_SECS {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "signature.expired",
            format!("X-Spend-Timestamp is {skew} s from the gateway's clock (at most ±{SIGNATURE_SKEW_SECS} s)"),
        ));
    }
    if !(8..=64).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "signature.invalid",
            "X-Spend-Nonce must be 8 to 64 letters, digits, _ or -",
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_string(&ts, &nonce, method.as_str(), path, body).as_bytes());
    let presented = hex::decode(sig.trim()).unwrap_or_default();
    if mac.verify_slice(&presented).is_err() {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "signature.invalid",
            "X-Spend-Signature does not match the request (HMAC-SHA256 over timestamp, nonce, method, path and body hash)",
        ));
    }
    // Recording the nonce with "no message on this subject yet" is atomic
    // on the log: exactly one replica can succeed.
    let id = hex::encode(&Sha256::digest(format!("{}\n{nonce}", who.key_id).as_bytes())[..16]);
    let recorded = state
        .recorder
        .event(
            &who.org,
            Actor::agent(&who.key_id),
            "nonce",
            &id,
            EventData::NonceUsed(NonceUsed {
                key_id: who.key_id.clone(),
                nonce: nonce.clone(),
                method: method.to_string(),
                path: path.to_string(),
            }),
        )
        .expect_seq(0)
        .record()
        .await;
    match recorded {
        Ok(_) => Ok(()),
        Err(LogError::WrongLastSequence { .. }) => Err(refusal(
            StatusCode::UNAUTHORIZED,
            "signature.replayed",
            format!("nonce {nonce} was already used with this key"),
        )),
        Err(e) => Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "signature.unverifiable",
            format!("cannot record the nonce: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_only_from_the_right() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not behind a trusted proxy: the header is the client's invention.
        assert_eq!(client_address("192.0.2.1".parse().unwrap(), &xff("10.0.0.9"), &trusted), ip("192.0.2.1"));
        assert_eq!(client_address(proxy, &xff("203.0.113.9"), &trusted), ip("203.0.113.9"));
        // Left of the first untrusted hop is ignored, garbage included.
        assert_eq!(client_address(proxy, &xff("garbage, 10.0.0.7, 203.0.113.9"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(proxy, &xff("198.51.100.1, 203.0.113.9, 10.0.0.7"), &trusted), ip("203.0.113.9"));
        // A hop our proxies vouch for that is not an address: unknown.
        assert_eq!(client_address(proxy, &xff("203.0.113.9, garbage"), &trusted), None);
        // No header: the proxy itself.
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), Some(proxy));
    }

    #[test]
    fn token_buckets_are_per_key() {
        let r = RateLimiter::default();
        assert!((0..3).all(|_| r.admit("a", 3)));
        assert!(!r.admit("a", 3));
        assert!(r.admit("b", 3));
    }
}
