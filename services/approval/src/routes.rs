//! The gate in front of every route of the approval app ([`crate::web`]).
//!
//! Only a human passes the gate. A credential of any kind is
//! refused with 403 and audited, whatever carries it: `Authorization` (or
//! `Proxy-Authorization`) with any scheme in any case, or none; an API-key
//! header (`X-Api-Key`, `Api-Key`, `X-Auth-Token`, `X-Access-Token`); or an
//! agent key (`ssk_…`) anywhere else in the headers, the query or the path.
//! Each refused credential is a `spend.security.alert.v1` on the approval
//! service's own security subject, naming the key id (never the key) and
//! the address. It goes to the key's own organisation when the credential
//! is a known agent key (its secret matches a key of the key store, which
//! the gate reads from the log: [`LogKeys`]), else to `unknown`. A string
//! shaped like an agent key whose id could not be a key id is audited too,
//! with that id sanitised and truncated in the detail only. Agents never
//! reach these routes, and a request that tries is exactly the overreach
//! the audit must show. Past the gate, every change needs a signed-in
//! human's session (passkey sign-in) and its CSRF token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use spend_core::alert_gate::{AlertGate, Repeats};
use spend_core::authority::Writer;
use spend_core::events::SecurityAlert;
use spend_core::subject::is_valid_token;
use spend_credentials::{LogKeys, key_id_of};
use spend_eventlog::{EventLog, Recorder};
use tokio::sync::Mutex;

pub struct ApprovalState {
    pub log: Arc<dyn EventLog>,
    pub prefix: String,
}

/// The alert reason of every credential refused here.
pub const REASON: &str = "agent_on_human_route";

/// Headers that carry an API key by convention; any value in them is a
/// credential.
const API_KEY_HEADERS: &[&str] = &["x-api-key", "api-key", "x-auth-token", "x-access-token"];

/// Alerts recorded singly for one request; further credentials on it are
/// counted in the last one's detail.
const ALERTS_PER_REQUEST: usize = 4;

/// How long the gate waits for the key store to read the log before it
/// attributes an alert with what it knows.
const CATCH_UP: Duration = Duration::from_secs(2);

/// The gate's own state: the recorder of its alerts, the key store it
/// reads from the log to know whose key is presented, and the aggregation
/// of floods (one refusal repeated in a window is recorded three times,
/// then counted: [`AlertGate`]).
pub(crate) struct Gate {
    state: Arc<ApprovalState>,
    recorder: Recorder,
    keys: Mutex<LogKeys>,
    alerts: AlertGate,
}

/// A credential found on a request. `token` is the credential itself:
/// never logged, recorded or returned.
struct Found {
    /// Where it was, for the alert's detail (redacted).
    place: String,
    /// Where it was, from a closed set: what floods are aggregated by
    /// (the caller controls header names and scheme spellings).
    kind: &'static str,
    token: String,
}

/// `s` as printable ASCII (anything else is `?`), at most `max` characters.
fn sanitise(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Minimal percent-decoding, to find `ssk_` keys written as `ssk%5F…`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `ssk_…` token in `s` (a run of `[A-Za-z0-9_-]` from `ssk_`).
fn agent_key_tokens(s: &str) -> impl Iterator<Item = &str> {
    s.match_indices("ssk_").filter_map(move |(at, _)| {
        let run = &s[at..];
        let end = run.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(run.len());
        // Not the tail of a longer token that was already taken.
        let preceded = s[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        (!preceded).then_some(&run[..end])
    })
}

/// `s` with the secret of every `ssk_…` token in it cut out.
fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("ssk_") {
        out.push_str(&rest[..at]);
        let run = &rest[at..];
        let end = run.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(run.len());
        out.push_str("ssk_<redacted>");
        rest = &run[end..];
    }
    out.push_str(rest);
    out
}

/// The kind of an `Authorization` credential, from a closed set whatever
/// the spelling of its scheme.
fn authorization_kind(scheme: Option<&str>) -> &'static str {
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        None => "authorization without a scheme",
        Some("bearer") => "authorization bearer",
        Some("basic") => "authorization basic",
        Some(_) => "authorization with another scheme",
    }
}

/// Every credential on the request, de-duplicated, in the order found.
fn credentials(req: &Request) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut push = |place: String, kind: &'static str, token: &str| {
        if !found.iter().any(|f| f.token == token) {
            found.push(Found {
                place: redact(&place),
                kind,
                token: token.to_string(),
            });
        }
    };
    for (name, value) in req.headers() {
        let raw = String::from_utf8_lossy(value.as_bytes());
        let name = name.as_str();
        if name == "authorization" || name == "proxy-authorization" {
            let v = raw.trim();
            match v.split_once(char::is_whitespace) {
                Some((scheme, rest)) => {
                    let place = format!("in {name} (scheme {:?})", sanitise(scheme, 16));
                    let kind = authorization_kind(Some(scheme));
                    let rest = rest.trim();
                    // Basic: an agent key as the user name or password.
                    let basic = scheme
                        .eq_ignore_ascii_case("basic")
                        .then(|| base64::engine::general_purpose::STANDARD.decode(rest).ok())
                        .flatten()
                        .map(|d| String::from_utf8_lossy(&d).into_owned());
                    match basic {
                        Some(pair) if pair.contains("ssk_") => {
                            for part in pair.splitn(2, ':').filter(|p| p.starts_with("ssk_")) {
                                push(format!("{place}, as a user name or password"), kind, part);
                            }
                        }
                        _ => push(place, kind, rest),
                    }
                }
                None => push(format!("in {name} (no scheme)"), authorization_kind(None), v),
            }
        } else if API_KEY_HEADERS.contains(&name) {
            push(format!("in {name}"), "api-key header", raw.trim());
        } else {
            for t in agent_key_tokens(&raw) {
                push(format!("in the {name} header"), "other header", t);
            }
        }
    }
    let path = percent_decode(req.uri().path());
    for t in agent_key_tokens(&path) {
        push("in the path".into(), "path", t);
    }
    if let Some(q) = req.uri().query() {
        let q = percent_decode(q);
        for t in agent_key_tokens(&q) {
            push("in the query string".into(), "query", t);
        }
    }
    found
}

impl Gate {
    /// The key store, brought up to date with the log (within [`CATCH_UP`];
    /// otherwise as far as it got), so that an alert names a key's state
    /// as of now (a revocation a moment ago included). The service keeps
    /// the store current in the background as well ([`Gate::refresh`]), so
    /// this usually asks the log its last sequence and reads nothing.
    async fn keys(&self) -> tokio::sync::MutexGuard<'_, LogKeys> {
        let mut keys = self.keys.lock().await;
        match tokio::time::timeout(CATCH_UP, keys.catch_up(&*self.state.log, &self.state.prefix)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the approval gate's key store is behind the log"),
            Err(_) => tracing::warn!("the approval gate's key store did not catch up with the log in time"),
        }
        keys
    }

    /// Brings the key store up to date with the log (the service calls it
    /// every few seconds, so revocations and new keys are known before a
    /// request needs them).
    ///
    /// It reads into a copy, without holding the store, so a long first
    /// replay never keeps a request waiting beyond [`CATCH_UP`].
    pub(crate) async fn refresh(&self) {
        let mut copy = self.keys.lock().await.clone();
        if let Err(e) = copy.catch_up(&*self.state.log, &self.state.prefix).await {
            tracing::warn!(error = %e, "the approval gate's key store is behind the log");
        }
        let mut keys = self.keys.lock().await;
        if copy.position() > keys.position() {
            *keys = copy;
        }
    }

    /// Records the repeats counted in windows that ended (`all`: in every
    /// window, as the service stops).
    pub(crate) async fn flush(&self, all: bool) {
        let repeats: Vec<Repeats> = if all { self.alerts.drain() } else { self.alerts.due() };
        for r in repeats {
            if let Err(e) = self.recorder.alert(&r.org, r.alert()).record().await {
                tracing::error!(error = %e, "could not record aggregated security alerts");
            }
        }
    }

    /// The alert for one refused credential: organisation, key id, and what
    /// it was (for the detail; never the credential).
    async fn describe(&self, token: &str) -> (String, Option<String>, String) {
        let unknown = "unknown".to_string();
        if let Some(id) = key_id_of(token) {
            let keys = self.keys().await;
            let store = keys.store();
            if let Some(k) = store.identify(token) {
                let state = if k.revoked {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| chrono::Utc::now() >= t) {
                    "rotated, its overlap window ended"
                } else {
                    "active"
                };
                let org = if is_valid_token(&k.org) { k.org.clone() } else { unknown };
                return (org, Some(id.to_string()), format!("an agent API key, {id} of {} ({state}),", k.org));
            }
            let what = if store.get(id).is_some() {
                format!("an agent API key naming key {id} with a secret that is not that key's")
            } else {
                format!("an agent API key, {id}, unknown to the key store,")
            };
            return (unknown, Some(id.to_string()), what);
        }
        if token.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("ssk_")) {
            // Shaped like an agent key, with an id no key has: the id goes
            // in the detail only, sanitised and truncated (the part after
            // it may be a secret: never shown).
            let id = token[4..].split_once('_').map(|(id, _)| id);
            let what = match id {
                Some(id) => format!("a string shaped like an agent API key with an invalid key id {:?}", sanitise(id, 12)),
                None => "a string shaped like an agent API key without a key id".into(),
            };
            return (unknown, None, what);
        }
        if spend_credentials::looks_like_jwt(token) {
            return (unknown, None, "an OAuth access token".into());
        }
        (unknown, None, "an unrecognised credential".into())
    }

    /// Records one refused credential, unless one like it was refused from
    /// the same address three times in the window already: then it is
    /// counted into the window's aggregate. "Like it": the same known key
    /// presented the same kind of way — an unknown key id is no key, so a
    /// flood of invented ids is one window per address and kind.
    async fn alert(&self, org: &str, key_id: Option<String>, address: &str, kind: &str, detail: String) {
        let window_key = if org == "unknown" { None } else { key_id.as_deref() };
        if self.alerts.admit_kind(org, window_key, Some(address), REASON, kind).is_none() {
            // Counted into this window's aggregate, recorded when it ends.
            return;
        }
        let alert = SecurityAlert {
            reason: REASON.into(),
            key_id: key_id.clone(),
            address: Some(address.into()),
            detail,
        };
        let key_id = key_id.as_deref().unwrap_or("-");
        match self.recorder.alert(org, alert).record().await {
            Ok(_) => tracing::warn!(org, key_id, address, "a credential was presented on a human approval route"),
            Err(e) => tracing::error!(error = %e, org, key_id, address, "could not record a security alert"),
        }
    }
}

async fn human_only(State(gate): State<Arc<Gate>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request, next: Next) -> Response {
    let found = credentials(&req);
    if !found.is_empty() {
        let address = peer.ip().to_string();
        let route = format!("{} {}", req.method(), sanitise(&redact(&percent_decode(req.uri().path())), 200));
        let n = found.len();
        for (i, f) in found.iter().take(ALERTS_PER_REQUEST).enumerate() {
            let (org, key_id, what) = gate.describe(&f.token).await;
            let mut detail = format!(
                "{route}: {what} was presented {} on a human approval route; only a signed-in human approves or pushes",
                f.place
            );
            if n > 1 {
                detail.push_str(&format!(" (credential {} of {n} on the request", i + 1));
                if i + 1 == ALERTS_PER_REQUEST && n > ALERTS_PER_REQUEST {
                    detail.push_str(&format!("; the other {} are not recorded singly", n - ALERTS_PER_REQUEST));
                }
                detail.push(')');
            }
            gate.alert(&org, key_id, &address, f.kind, detail).await;
        }
        return (StatusCode::FORBIDDEN, "agents cannot approve or push; a signed-in human does").into_response();
    }
    next.run(req).await
}

/// `inner` behind the gate. Served by [`crate::Application`], which also
/// keeps the gate's key store current and records the alerts it counted.
pub(crate) fn gated(state: Arc<ApprovalState>, inner: Router) -> (Arc<Gate>, Router) {
    let gate = Arc::new(Gate {
        recorder: Recorder::new(state.log.clone(), state.prefix.clone(), Writer::Approval),
        keys: Mutex::new(LogKeys::default()),
        alerts: AlertGate::default(),
        state: state.clone(),
    });
    let _ = state;
    // The gate answers unknown paths too (a credential sent to a path that
    // does not exist is refused and audited like any other), and keeps doing
    // so once routes outside it (MCP sign-in's client routes) are merged in:
    // a fallback of the router's own is the one a merge keeps.
    let router = inner
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(gate.clone(), human_only));
    (gate, router)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_and_redacted_however_they_are_written() {
        let key = format!("ssk_a1b2c3d4e5f6_{}", "9".repeat(64));
        assert_eq!(agent_key_tokens(&format!("a=1; k={key}; b")).collect::<Vec<_>>(), vec![key.as_str()]);
        assert_eq!(agent_key_tokens("xssk_1").count(), 0, "inside another token");
        assert_eq!(percent_decode("ssk%5Fab%5f+c%zz"), "ssk_ab_ c%zz");
        let r = redact(&format!("/approvals/{key}/push"));
        assert_eq!(r, "/approvals/ssk_<redacted>/push");
        assert_eq!(sanitise("a\u{7}b\u{e9}", 3), "a?b…");
    }
}
