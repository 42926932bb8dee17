//! Authentication between services. The policy, executor and ledger gRPC
//! services are internal: agents reach only the gateway. Each caller holds
//! a credential of its own (`SPEND__INTERNAL__TOKEN`, sent in the
//! `x-spend-internal-token` metadata), and each server knows its callers
//! only by the SHA-256 digest of theirs (`SPEND__INTERNAL__CALLERS__<CALLER>`),
//! so a compromised server holds nothing it could call another with.
//!
//! Why per caller and per RPC: one shared token let the gateway — the most
//! exposed service — connect and disconnect any organisation's accounts
//! at the executor. Now every RPC names the callers it serves ([`Rules`]),
//! the [`Guard`] in front of a service refuses anyone else (audited by the
//! service through [`Guard::audit`]), and an RPC without a rule serves no
//! one. A server with no callers configured listens on loopback only
//! ([`check_exposure`]): `spend dev`, one process. Health and reflection
//! stay open for probes and tools.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::server::NamedService;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata a caller's credential travels in.
pub const HEADER: &str = "x-spend-internal-token";
/// The metadata naming the organisation a call is about
/// (`spend_platform::grpc::org_of` reads it for the RPC); read here only to
/// file an alert.
pub const ORG_HEADER: &str = "spend-org";
/// The prefix of a credential's digest in configuration.
const DIGEST_PREFIX: &str = "sha256:";

/// Who calls the internal services. Each holds its own credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// The agent gateway: reads and policy decisions for agents.
    Gateway,
    /// The approval app: its Accounts page connects and disconnects.
    Approval,
    /// The operator's CLI (`spend account …`, `spend ledger …`).
    Operator,
    /// An auditor's tools against the ledger (queries, proofs, export).
    Auditor,
}

impl Caller {
    pub const ALL: [Caller; 4] = [Caller::Gateway, Caller::Approval, Caller::Operator, Caller::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            Caller::Gateway => "gateway",
            Caller::Approval => "approval",
            Caller::Operator => "operator",
            Caller::Auditor => "auditor",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The digest a server is given for a caller's credential
/// (`sha256:<64 hex digits>`).
pub fn digest(token: &str) -> String {
    format!("{DIGEST_PREFIX}{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// The callers a server serves, each known by its credential's digest.
#[derive(Clone, Default)]
pub struct Callers(Vec<(Caller, [u8; 32])>);

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(c, _)| c.name())).finish()
    }
}

impl Callers {
    /// From configuration: caller name → `sha256:<hex>`. An unknown caller,
    /// a value that is not a digest (a token pasted where its digest
    /// belongs), or two callers sharing one credential is an error naming
    /// the key.
    pub fn from_digests<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut out: Vec<(Caller, [u8; 32])> = Vec::new();
        for (name, value) in entries {
            let key = format!("internal.callers.{name}");
            let caller = Caller::parse(name).ok_or_else(|| format!("{key}: no such caller (the callers are {})", Caller::ALL.map(Caller::name).join(", ")))?;
            let hex_digits = value
                .trim()
                .strip_prefix(DIGEST_PREFIX)
                .ok_or_else(|| format!("{key}: expected the credential's digest, sha256:<64 hex digits> (`spend internal credential {caller}` prints both)"))?;
            let mut d = [0u8; 32];
            hex::decode_to_slice(hex_digits, &mut d).map_err(|_| format!("{key}: expected sha256:<64 hex digits>"))?;
            if out.iter().any(|(c, _)| *c == caller) {
                return Err(format!("{key}: given twice"));
            }
            if let Some((other, _)) = out.iter().find(|(_, o)| *o == d) {
                return Err(format!("{key}: the same credential as internal.callers.{other}: each caller needs its own"));
            }
            out.push((caller, d));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Which caller holds `token`, if any (constant time per entry).
    pub fn identify(&self, token: &[u8]) -> Option<Caller> {
        let d: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (caller, expected) in &self.0 {
            if bool::from(d.ct_eq(expected)) {
                found = Some(*caller);
            }
        }
        found
    }
}

/// Which callers each RPC of a service serves: `(method, callers)`.
/// A method missing here serves no one.
pub type Rules = &'static [(&'static str, &'static [Caller])];

/// The methods `service` (fully qualified, `spendsignoff.v1.Executor`)
/// declares that `rules` does not name, and the rules that name no
/// method of it: both empty when every RPC says who may call it.
pub fn uncovered(service: &str, rules: Rules) -> (Vec<String>, Vec<String>) {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).expect("the compiled descriptor set decodes");
    let methods: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            let package = f.package().to_string();
            f.service
                .iter()
                .filter(move |s| format!("{package}.{}", s.name()) == service)
                .flat_map(|s| s.method.iter().map(|m| m.name().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let missing = methods.iter().filter(|m| !rules.iter().any(|(r, _)| r == m)).cloned().collect();
    let stray = rules
        .iter()
        .filter(|(r, _)| !methods.iter().any(|m| m == r))
        .map(|(r, _)| r.to_string())
        .collect();
    (missing, stray)
}

/// Panics unless every RPC of `service` has a rule in `rules`, and every
/// rule an RPC: each service's test that no RPC is left without one.
pub fn assert_rules_cover(service: &str, rules: Rules) {
    let (missing, stray) = uncovered(service, rules);
    assert!(
        missing.is_empty() && stray.is_empty(),
        "{service}: RPCs without a rule: {missing:?}; rules for no RPC: {stray:?}"
    );
}

/// A call the guard refused, for the service to audit.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub service: &'static str,
    pub method: String,
    /// The caller whose credential was presented; `None`: no known one.
    pub caller: Option<Caller>,
    /// The organisation the call named, when it named a valid one.
    pub org: Option<String>,
    pub peer: Option<SocketAddr>,
}

impl Refusal {
    /// The alert's reason.
    pub fn reason(&self) -> &'static str {
        if self.caller.is_some() {
            "internal.caller_refused"
        } else {
            "internal.unauthenticated"
        }
    }

    /// What happened, without the credential.
    pub fn detail(&self) -> String {
        match self.caller {
            Some(c) => format!("the {c} asked {}.{}, which does not serve it", self.service, self.method),
            None => format!("{}.{} was called without a known caller's credential", self.service, self.method),
        }
    }
}

type Audit = Arc<dyn Fn(Refusal) + Send + Sync>;

/// Stands in front of one generated gRPC server: identifies the caller by
/// its credential and serves only the RPCs whose rule names it. Without
/// callers (loopback only, see [`check_exposure`]) it lets every call
/// through. The identified [`Caller`] is in the request's extensions.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    service: &'static str,
    rules: Rules,
    callers: Option<Arc<Callers>>,
    audit: Option<Audit>,
}

impl<S: NamedService> Guard<S> {
    pub fn new(inner: S, rules: Rules, callers: Option<Callers>) -> Self {
        Self {
            inner,
            service: S::NAME,
            rules,
            callers: callers.filter(|c| !c.is_empty()).map(Arc::new),
            audit: None,
        }
    }

    /// Called (on the request path: keep it cheap) for every refusal.
    pub fn audit(mut self, f: impl Fn(Refusal) + Send + Sync + 'static) -> Self {
        self.audit = Some(Arc::new(f));
        self
    }

    /// [`Guard::audit`] for a recorder of alerts that takes their fields:
    /// (organisation, reason, the caller's name, its address, detail).
    pub fn audited_by(self, record: impl Fn(Option<&str>, &str, Option<&str>, Option<String>, String) + Send + Sync + 'static) -> Self {
        self.audit(move |r| {
            record(
                r.org.as_deref(),
                r.reason(),
                r.caller.map(Caller::name),
                r.peer.map(|p| p.ip().to_string()),
                r.detail(),
            )
        })
    }
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Guard<S> {
    /// `Ok(caller)` to serve; `Err` with the status to answer.
    fn check<B>(&self, req: &http::Request<B>) -> Result<Option<Caller>, (Status, Refusal)> {
        let Some(callers) = &self.callers else { return Ok(None) };
        // The caller's own words: bounded before they reach a log or an alert.
        let method: String = req.uri().path().rsplit('/').next().unwrap_or_default().chars().take(64).collect();
        let given = req.headers().get(HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        let caller = (!given.is_empty()).then(|| callers.identify(given)).flatten();
        let refusal = |caller| Refusal {
            service: self.service,
            method: method.clone(),
            caller,
            org: req
                .headers()
                .get(ORG_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|o| !o.is_empty() && o.len() <= 64 && o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                .map(str::to_string),
            peer: req.extensions().get::<tonic::transport::server::TcpConnectInfo>().and_then(|i| i.remote_addr()),
        };
        let Some(caller) = caller else {
            return Err((
                Status::unauthenticated(format!("this is an internal SpendSignoff service: send your own credential in {HEADER}")),
                refusal(None),
            ));
        };
        let allowed = self.rules.iter().find(|(m, _)| *m == method).map(|(_, c)| *c).unwrap_or_default();
        if allowed.contains(&caller) {
            return Ok(Some(caller));
        }
        let who = if allowed.is_empty() {
            "no caller".to_string()
        } else {
            format!("the {}", allowed.iter().map(|c| c.name()).collect::<Vec<_>>().join(" and the "))
        };
        Err((
            Status::permission_denied(format!("{}.{method} serves {who}, not the {caller}", self.service)),
            refusal(Some(caller)),
        ))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.check(&req) {
            Ok(caller) => {
                if let Some(c) = caller {
                    req.extensions_mut().insert(c);
                }
                Box::pin(self.inner.call(req))
            }
            Err((status, refusal)) => {
                tracing::warn!(
                    method = %refusal.method,
                    caller = refusal.caller.map(Caller::name).unwrap_or("-"),
                    peer = ?refusal.peer,
                    "internal gRPC call refused"
                );
                if let Some(audit) = &self.audit {
                    audit(refusal);
                }
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// Client side: sends this process's own credential when it has one.
#[derive(Clone, Default)]
pub struct Attach(Option<MetadataValue<Ascii>>);

impl Attach {
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        token
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<MetadataValue<Ascii>>()
                    .map_err(|_| "the internal token must be printable ASCII".to_string())
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for Attach {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert(HEADER, v.clone());
        }
        Ok(req)
    }
}

/// Refuses to serve `service` beyond loopback without callers to check.
pub fn check_exposure(service: &str, addr: SocketAddr, callers: Option<&Callers>) -> Result<(), String> {
    if addr.ip().is_loopback() || callers.is_some_and(|c| !c.is_empty()) {
        return Ok(());
    }
    Err(format!(
        "{service} would listen on {addr} without authentication: give it the digest of each caller's credential \
         (SPEND__INTERNAL__CALLERS__GATEWAY=sha256:…, from `spend internal credential gateway`), or listen on 127.0.0.1"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = &[("Read", &[Caller::Gateway, Caller::Operator]), ("Connect", &[Caller::Approval])];

    fn callers() -> Callers {
        Callers::from_digests([("gateway", digest("gw-token").as_str()), ("approval", digest("ap-token").as_str())]).unwrap()
    }

    fn request(method: &str, token: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri(format!("http://x/spendsignoff.v1.Executor/{method}"));
        if let Some(t) = token {
            b = b.header(HEADER, t);
        }
        b.header(ORG_HEADER, "acme").body(()).unwrap()
    }

    fn guard(callers: Option<Callers>) -> Guard<()> {
        Guard {
            inner: (),
            service: "spendsignoff.v1.Executor",
            rules: RULES,
            callers: callers.map(Arc::new),
            audit: None,
        }
    }

    #[test]
    fn each_caller_reaches_only_the_rpcs_that_name_it() {
        let g = guard(Some(callers()));
        assert_eq!(g.check(&request("Read", Some("gw-token"))).unwrap(), Some(Caller::Gateway));
        assert_eq!(g.check(&request("Connect", Some("ap-token"))).unwrap(), Some(Caller::Approval));

        let (status, refusal) = g.check(&request("Connect", Some("gw-token"))).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(refusal.caller, Some(Caller::Gateway));
        assert_eq!(refusal.org.as_deref(), Some("acme"));
        assert_eq!(refusal.reason(), "internal.caller_refused");
        assert!(status.message().contains("serves the approval"), "{}", status.message());

        // A method without a rule serves no one.
        let (status, _) = g.check(&request("Unlisted", Some("gw-token"))).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);

        // A method name of the caller's own is bounded before it is logged.
        let (_, refusal) = g.check(&request(&"X".repeat(10_000), Some("gw-token"))).unwrap_err();
        assert_eq!(refusal.method.len(), 64);

        for bad in [None, Some("gw-tokeN"), Some(""), Some(digest("gw-token").as_str())] {
            let (status, refusal) = g.check(&request("Read", bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert_eq!(refusal.reason(), "internal.unauthenticated");
            assert!(!refusal.detail().contains("gw-token"));
        }
    }

    #[test]
    fn without_callers_every_call_passes_but_only_on_loopback() {
        assert_eq!(guard(None).check(&request("Connect", None)).unwrap(), None);
        assert!(check_exposure("the executor", "0.0.0.0:7103".parse().unwrap(), None).is_err());
        assert!(check_exposure("the executor", "0.0.0.0:7103".parse().unwrap(), Some(&Callers::default())).is_err());
        assert!(check_exposure("the executor", "127.0.0.1:7103".parse().unwrap(), None).is_ok());
        assert!(check_exposure("the executor", "0.0.0.0:7103".parse().unwrap(), Some(&callers())).is_ok());
    }

    #[test]
    fn configuration_names_the_key_it_refuses() {
        let e = Callers::from_digests([("gatewy", digest("t").as_str())]).unwrap_err();
        assert!(e.contains("internal.callers.gatewy") && e.contains("gateway, approval"), "{e}");
        let e = Callers::from_digests([("gateway", "a-raw-token")]).unwrap_err();
        assert!(e.contains("internal.callers.gateway") && e.contains("digest"), "{e}");
        let same = digest("shared");
        let e = Callers::from_digests([("gateway", same.as_str()), ("approval", same.as_str())]).unwrap_err();
        assert!(e.contains("its own"), "{e}");
        let e = Callers::from_digests([("gateway", "sha256:abc")]).unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        assert_eq!(format!("{:?}", callers()), r#"["gateway", "approval"]"#);
    }

    #[test]
    fn attach_sends_the_token_that_identifies_its_caller() {
        let mut attach = Attach::new(Some("ap-token")).unwrap();
        let req = attach.call(Request::new(())).unwrap();
        let sent = req.metadata().get(HEADER).unwrap().as_bytes();
        assert_eq!(callers().identify(sent), Some(Caller::Approval));
        assert!(Attach::new(Some("bad\ntoken")).is_err());
    }
}
