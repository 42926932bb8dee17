//! Approvals: who the approvers are (passkeys, enrolled by invitation,
//! trusted through the operator's anchor and admins' countersignatures),
//! approval requests for drafts that need a human, the approval app (the
//! queue, the draft page, the two-step approve-and-push, rejection, the
//! approvers page), and timeouts, which never approve.
//!
//! The service holds no authority of its own: an approval it records
//! counts only because the approver's passkey signed the pinned challenge,
//! which every consumer checks with `spend_draft`'s verifier against the
//! registry on the log. A compromised approval service can refuse to
//! work; it cannot approve, nor add an approver.
//!
//! What the service knows from the log alone is `spend-approvals`'s
//! book (`crates/approvals`), which notifications (`services/notify`)
//! read too: they run beside the app ([`Application::with_companion`]) and
//! send the links of the requests it opens ([`Application::links`]).
//!
//! - [`passkeys`]: the WebAuthn ceremonies (webauthn-rs for enrollment).
//! - [`web`]: the pages and their POSTs.
//! - [`routes`]: the gate that refuses (and audits) agent credentials on
//!   every route.
//! - [`signed_in`]: the app as a service that reaches humans through its
//!   sign-in sees it (MCP sign-in, `services/mcp-signin`, whose pages the
//!   app serves beside its own: [`Application::with_routes`]).
#![forbid(unsafe_code)]

pub mod console;
pub mod passkeys;
pub mod routes;
pub mod signed_in;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::{SecondsFormat, Utc};
use spend_core::Actor;
use spend_core::authority::Writer;
use spend_core::events::{ApprovalEscalated, ApprovalExpired, ApprovalRequested, EventData};
use spend_draft::proof::RelyingParty;
use spend_eventlog::{EventLog, LogError, Recorder};
use spend_policy::spendmd::{Channel, SpendMd};
use tokio::sync::RwLock;

use spend_approvals::book::Book;
use spend_approvals::links::Links;

/// What the approval service needs to know.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// HTTP address of the approval pages (`127.0.0.1:0` for any port).
    pub listen: String,
    /// The WebAuthn relying party ID (a domain, never an IP address);
    /// `localhost` by default.
    pub rp_id: String,
    /// The origin approvers open (`https://approvals.example.com`); by
    /// default `http://localhost:<the bound port>`.
    pub origin: Option<String>,
    /// The secret approval links are derived from; every replica needs the
    /// same one (at least 32 characters). `None`: a random one per process
    /// (a link a restarted process delivers again would not open).
    pub link_secret: Option<spend_core::Secret>,
    pub sessions: web::SessionPolicy,
    /// The passkey page's relying party: where every ceremony goes, and
    /// what approval passkeys are created and verified on, as every other
    /// verifier of the deployment pins it (`None`, for tests of this
    /// service alone: this app's own `rp_id` and origin).
    pub passkey: Option<spend_draft::proof::RelyingParty>,
}

impl ApprovalConfig {
    pub fn new(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            rp_id: "localhost".into(),
            origin: None,
            link_secret: None,
            sessions: web::SessionPolicy::default(),
            passkey: None,
        }
    }
}

/// What the approval service is given.
pub struct Deps {
    /// The event log, as the approval service's own NATS user.
    pub log: Arc<dyn EventLog>,
    /// The stream's subject prefix.
    pub prefix: String,
    /// The SPEND.md in force until a human approves a version on the log
    /// (for `timeout_minutes` and `timeout_action`).
    pub policy: Arc<SpendMd>,
    /// Connected accounts, through the executor: the Accounts page
    /// (`None`: the page says accounts are managed elsewhere).
    pub accounts: Option<Arc<dyn spend_platform::Connect>>,
}

/// A task that runs beside the app until it stops (notifications, MCP
/// sign-in), given the app's stop signal.
type Companion = Box<dyn FnOnce(tokio::sync::watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send>;

pub struct Application {
    listener: tokio::net::TcpListener,
    /// The pages humans use, behind the gate that refuses agents.
    human: Router,
    /// Routes outside the gate (an OAuth client's own calls).
    public: Router,
    companions: Vec<Companion>,
    app: Arc<web::App>,
    log: Arc<dyn EventLog>,
    prefix: String,
    policy: Arc<SpendMd>,
    links: Arc<Links>,
}

/// How often the gate's key store is brought up to date, and counted
/// alerts of ended windows recorded.
const REFRESH: Duration = Duration::from_secs(5);
/// How often requests are opened and expiries applied.
const TICK: Duration = Duration::from_millis(250);

impl Application {
    pub async fn build(config: ApprovalConfig, deps: Deps) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding the approval pages on {}: {e}", config.listen))?;
        let port = listener.local_addr()?.port();
        let origin = config.origin.clone().unwrap_or_else(|| format!("http://localhost:{port}"));
        // Passkeys are created and used on the passkey page, on its RP;
        // without one configured (tests of this service alone), the app's
        // own domain and origin stand in for it.
        let rp = config.passkey.clone().unwrap_or_else(|| RelyingParty {
            rp_id: config.rp_id.clone(),
            origin: origin.clone(),
        });
        let passkeys = passkeys::Passkeys::new(rp.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let recorder = Recorder::new(deps.log.clone(), deps.prefix.clone(), Writer::Approval);
        // Every replica shares the link secret: keyed by it, sign-in's decoy
        // credential ids are the same on all of them (per process without).
        let shared_secret = config.link_secret.as_ref().map(|s| s.expose().to_string()).filter(|s| !s.is_empty());
        if shared_secret.as_ref().is_some_and(|s| s.len() < 32) {
            anyhow::bail!("approval.link_secret must be at least 32 characters (e.g. 64 hex digits from a random source)");
        }
        let link_secret = match &shared_secret {
            Some(s) => spend_core::Secret::new(s.clone()),
            None => spend_core::Secret::new(spend_credentials::random_hex(32).map_err(|e| anyhow::anyhow!("{e}"))?),
        };
        let links = Arc::new(Links::new(origin.clone(), link_secret));
        let book = Arc::new(RwLock::new(Book::new(rp, Some(deps.policy.clone()))));
        let mut app = web::App::new(recorder, book, origin, passkeys, config.sessions, deps.policy.clone(), deps.accounts);
        if let Some(secret) = &shared_secret {
            app = app.with_decoy_secret(secret.as_bytes());
        }
        let app = Arc::new(app);
        Ok(Self {
            listener,
            human: pages(app.clone()),
            public: Router::new(),
            companions: Vec::new(),
            app,
            log: deps.log,
            prefix: deps.prefix,
            policy: deps.policy,
            links,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The humans signed in on this app, for a service whose pages it
    /// serves ([`Application::with_routes`]).
    pub fn signed_in(&self) -> Arc<dyn spend_pages::SignedIn> {
        self.app.clone()
    }

    /// Serves `pages` beside the app's own, behind the same gate (agent
    /// credentials refused and audited), and `public` outside it (for
    /// clients that send their own `Authorization` header).
    pub fn with_routes(mut self, pages: Router, public: Router) -> Self {
        self.human = self.human.merge(pages);
        self.public = self.public.merge(public);
        self
    }

    /// Runs `task` beside the app, stopped when the app stops.
    pub fn with_companion(mut self, task: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send + 'static) -> Self {
        self.companions.push(Box::new(task));
        self
    }

    /// The approval links of the requests this app opens (for the notifier
    /// that sends them: the same secret).
    pub fn links(&self) -> Arc<Links> {
        self.links.clone()
    }

    /// The SPEND.md in force before an organisation approves its own.
    pub fn bootstrap(&self) -> Arc<SpendMd> {
        self.policy.clone()
    }

    /// What the service knows from the log (shared with `spend dev`, which
    /// anchors its own first admin from it).
    pub fn book(&self) -> Arc<RwLock<Book>> {
        self.app.book.clone()
    }

    /// The origin approvers open (and links point at).
    pub fn origin(&self) -> String {
        self.app.origin().to_string()
    }

    /// Serves until `shutdown` resolves, then drains: stops accepting,
    /// lets in-flight requests finish, and records every alert it counted.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (gate, human) = routes::gated(
            Arc::new(routes::ApprovalState {
                log: self.log.clone(),
                prefix: self.prefix.clone(),
            }),
            self.human,
        );
        let router = human.merge(self.public);
        let companions: Vec<_> = self.companions.into_iter().map(|c| tokio::spawn(c(stop_rx.clone()))).collect();
        let flushed = gate.clone();
        let housekeeping = self.app.clone();
        let mut stop = stop_rx.clone();
        let background = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                }
                // A refresh reads into a copy: stopping in the middle of a
                // long one loses nothing. A flush always runs to its end.
                tokio::select! {
                    _ = gate.refresh() => {}
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                }
                gate.flush(false).await;
                housekeeping.housekeeping(false).await;
            }
        });
        let book = self.app.book.clone();
        let prefix = self.prefix.clone();
        let recorder = self.app.recorder.clone();
        let follower = tokio::spawn(spend_eventlog::follow_until(self.log.clone(), 1, stop_rx.clone(), move |m| {
            let book = book.clone();
            let prefix = prefix.clone();
            let recorder = recorder.clone();
            async move {
                book.write().await.apply(&prefix, &m);
                audit_misplaced(&recorder, &prefix, &m).await;
            }
        }));
        let ticker = tokio::spawn(tick_loop(self.app.clone(), self.links.clone(), self.log.clone(), self.policy.clone(), stop_rx));
        axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await?;
        let _ = stop_tx.send(true);
        let _ = background.await;
        let _ = follower.await;
        let _ = ticker.await;
        for c in companions {
            let _ = c.await;
        }
        flushed.flush(true).await;
        self.app.housekeeping(true).await;
        Ok(())
    }
}

/// An event where its writer could not have put it (an approval on a
/// draft subject, a notification outcome on the gateway's subject), or one
/// republished from another stream: ignored by the book and the notifier,
/// and raised once (every replica and replay appends the same alert with
/// expected sequence 0).
async fn audit_misplaced(recorder: &Recorder, prefix: &str, m: &spend_eventlog::StoredMessage) {
    use spend_eventlog::read::{Read, classify, misplaced_alert};
    let Read::Misplaced { org, detail } = classify(prefix, m) else { return };
    let (id, alert) = misplaced_alert(m.seq, detail);
    match recorder.alert(&org, alert).on_id(&id).expect_seq(0).record().await {
        Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
        Err(e) => tracing::warn!(error = %e, seq = m.seq, "could not record an alert about a misplaced event"),
    }
}

fn pages(app: Arc<web::App>) -> Router {
    Router::new()
        .route("/", get(web::home))
        .route("/static/app.js", get(web::app_js))
        .route("/static/app.css", get(web::app_css))
        .route("/signin", get(web::signin))
        .route("/signin/start", post(web::signin_start))
        .route("/signin/finish", post(web::signin_finish))
        .route("/signout", post(web::signout))
        .route("/passkey/return", get(web::passkey_return))
        .route("/enroll/{token}", get(web::enroll_page))
        .route("/enroll/{token}/start", post(web::enroll_start))
        .route("/enroll/{token}/finish", post(web::enroll_finish))
        .route("/approvals", get(web::queue))
        .route("/approvals/{draft_id}", get(web::draft_page))
        .route("/approvals/{draft_id}/arm", post(web::arm))
        .route("/approvals/{draft_id}/confirm", post(web::confirm))
        .route("/approvals/{draft_id}/reject", post(web::reject))
        .route("/audit", get(console::rollback::audit_page))
        .route("/killswitches", get(console::killswitch::page_get))
        .route("/killswitches/pause", post(console::killswitch::pause))
        .route("/killswitches/resume", post(console::killswitch::resume))
        .route("/killswitches/freeze", post(console::killswitch::freeze))
        .route("/audit/rollback", post(console::rollback::request))
        .route("/a/{token}", get(web::link))
        .route("/approvers", get(web::approvers_page))
        .route("/approvers/invite", post(web::invite))
        .route("/approvers/{approver_id}/countersign/start", post(web::countersign_start))
        .route("/approvers/{approver_id}/countersign/finish", post(web::countersign_finish))
        .route("/approvers/{approver_id}/remove", post(web::remove))
        .route("/accounts", get(console::accounts::accounts_page))
        .route("/accounts/connect", post(console::accounts::connect))
        .route("/accounts/callback", get(console::accounts::callback))
        .route("/accounts/{account_id}/write", post(console::accounts::write))
        .route("/accounts/{account_id}/disconnect", post(console::accounts::disconnect))
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(app)
}

/// Opens approval requests and applies expiries, once the book has caught
/// up with the log (so a replay at start-up opens nothing twice: every
/// request is appended with expected sequence 0 besides).
async fn tick_loop(app: Arc<web::App>, links: Arc<Links>, log: Arc<dyn EventLog>, bootstrap: Arc<SpendMd>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    // Requests another writer holds the subject of already (a replica, or
    // a forged event there): asked once, not at every tick.
    let mut settled: spend_core::bounded::FifoMap<(String, String), ()> = spend_core::bounded::FifoMap::new(100_000);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        let Ok(info) = log.info().await else { continue };
        let due = {
            let book = app.book.read().await;
            if book.seq < info.last_seq {
                continue;
            }
            book.due(Utc::now())
        };
        let drafts = due.requests.into_iter().map(|k| (k, Kind::Draft));
        let policies = due.policy_requests.into_iter().map(|k| (k, Kind::Policy));
        let rollbacks = due.rollback_requests.into_iter().map(|k| (k, Kind::Rollback));
        for ((org, id), kind) in drafts.chain(policies).chain(rollbacks) {
            let key = (org.clone(), id.clone());
            if settled.contains_key(&key) {
                continue;
            }
            match open_request(&app, &links, &bootstrap, &org, &id, kind).await {
                Ok(()) => {
                    settled.insert_new(key, ());
                }
                Err(e) => tracing::warn!(error = %e, org, id, "could not open an approval request; retrying"),
            }
        }
        for (org, draft_id) in due.expired {
            if let Err(e) = expire(&app, &bootstrap, &org, &draft_id).await {
                tracing::warn!(error = %e, org, draft_id, "could not record an expiry; retrying");
            }
        }
    }
}

/// What an approval request is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Draft,
    Policy,
    Rollback,
}

/// Opens the request of a draft (its deciding version is what a proof
/// signs) or of a SPEND.md proposal (the proposed version), expiring after
/// the `timeout_minutes` of the version that applies.
pub(crate) async fn open_request(
    app: &web::App,
    links: &spend_approvals::links::Links,
    bootstrap: &SpendMd,
    org: &str,
    id: &str,
    kind: Kind,
) -> Result<(), LogError> {
    let is_rollback = matches!(kind, Kind::Rollback);
    let (request, line, expected) = {
        let book = app.book.read().await;
        // (kind, approved hash, signed version, approvals required, the
        // SPEND.md whose timeout applies, what it is)
        let (kind, hash, version, required, policy, line) = match kind {
            Kind::Draft => {
                let Some(e) = book.entry(org, id) else { return Ok(()) };
                let Some(decision) = e.draft.decision() else { return Ok(()) };
                let deciding = book
                    .versions
                    .active(org)
                    .filter(|a| a.proposal.version == decision.policy_version)
                    .map(|a| a.policy.clone());
                let line = spend_draft::display::describe(&e.draft.proposal().change, e.draft.account_id());
                let required = e.draft.approvals_needed() as u32;
                (
                    "draft",
                    e.draft.proposed_hash().to_string(),
                    decision.policy_version.clone(),
                    required,
                    deciding,
                    line,
                )
            }
            Kind::Policy => {
                let Some((proposal, hash)) = book.versions.proposal(org, id) else {
                    return Ok(());
                };
                let in_force = book.versions.active(org).map(|a| a.policy.clone());
                let line = format!("SPEND.md version {}", proposal.version);
                let required = book.versions.needs(org, id).map_or(1, |n| n.approvers) as u32;
                ("policy", hash.to_string(), proposal.version.clone(), required, in_force, line)
            }
            Kind::Rollback => {
                let Some(e) = book.rollback(org, id) else { return Ok(()) };
                let in_force = book.versions.active(org).map(|a| a.policy.clone());
                let version = in_force.as_deref().unwrap_or(bootstrap).version.clone();
                let line = format!("rollback of {} change(s)", e.request.changes.len());
                ("rollback", e.hash.clone(), version, 1, in_force, line)
            }
        };
        let approval = policy.as_deref().unwrap_or(bootstrap).approval.clone();
        let expires = Utc::now() + chrono::Duration::minutes(i64::from(approval.timeout_minutes.max(1)));
        // A rollback request names its own expiry: every proof signs it.
        let fixed = if is_rollback {
            book.rollback(org, id).map(|e| e.request.expires_at.clone())
        } else {
            None
        };
        // Derived, not random: any replica can deliver the link again.
        let token = links.token(org, id);
        let request = ApprovalRequested {
            draft_id: id.to_string(),
            kind: kind.into(),
            approved_hash: hash,
            policy_version: version,
            required,
            expires_at: fixed.unwrap_or_else(|| expires.to_rfc3339_opts(SecondsFormat::Secs, true)),
            // Nobody else to ask about undoing a change: it lapses.
            timeout_action: if is_rollback {
                "deny".into()
            } else {
                approval.timeout_action.as_str().into()
            },
            link_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())),
        };
        let expected = if is_rollback {
            book.rollback(org, id).map(|e| e.approval_seq).unwrap_or(0)
        } else {
            0
        };
        (request, line, expected)
    };
    record_request(app, org, id, request, expected, &line).await
}

/// Appends a request (expecting the approval subject as the book last saw
/// it: empty for a draft or proposal, the request itself for a rollback
/// asked for in the app; one request each, whatever the replicas); the
/// notifier delivers its link (to the outbox and the console in `spend
/// dev`) once it reads it back from the log.
async fn record_request(app: &web::App, org: &str, draft_id: &str, request: ApprovalRequested, expected: u64, kind_line: &str) -> Result<(), LogError> {
    let expires_at = request.expires_at.clone();
    let recorded = app
        .recorder
        .event(org, Actor::service("approval"), "approval", draft_id, EventData::ApprovalRequested(request))
        .expect_seq(expected)
        .record()
        .await;
    match recorded {
        Ok(_) => {}
        // Another replica (or an earlier run) opened it.
        Err(LogError::WrongLastSequence { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    tracing::info!(org, draft_id, expires_at, what = kind_line, "approval requested");
    Ok(())
}

/// A request nobody answered in time: escalated once if its SPEND.md
/// says `timeout_action: escalate` (the next approval channel is notified,
/// the request extended by `timeout_minutes`), otherwise — and the second
/// time — expired. Neither ever approves.
async fn expire(app: &web::App, bootstrap: &SpendMd, org: &str, id: &str) -> Result<(), LogError> {
    let (data, expected) = {
        let book = app.book.read().await;
        let Some(t) = book.target(org, id) else { return Ok(()) };
        let Some(r) = &t.request else { return Ok(()) };
        if !t.waiting {
            return Ok(());
        }
        let data = if r.timeout_action == "escalate" && !t.escalated {
            let in_force = book.versions.active(org).map(|a| a.policy.clone());
            let approval = &in_force.as_deref().unwrap_or(bootstrap).approval;
            let previous = chrono::DateTime::parse_from_rfc3339(&r.expires_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now());
            let channels = &approval.approval_channels;
            let next = channels.get(1).or(channels.first()).copied().unwrap_or(Channel::Email);
            EventData::ApprovalEscalated(ApprovalEscalated {
                draft_id: id.to_string(),
                previous_expires_at: r.expires_at.clone(),
                expires_at: (previous.max(Utc::now()) + chrono::Duration::minutes(i64::from(approval.timeout_minutes.max(1))))
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                channel: next.as_str().into(),
            })
        } else {
            EventData::ApprovalExpired(ApprovalExpired {
                draft_id: id.to_string(),
                action: "deny".into(),
                approvals: t.approvers.len() as u32,
                required: r.required,
            })
        };
        (data, t.approval_seq)
    };
    match app
        .recorder
        .event(org, Actor::service("approval"), "approval", id, data)
        .expect_seq(expected)
        .record()
        .await
    {
        Ok(_) | Err(LogError::WrongLastSequence { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
