//! Notifications: approvers hear about what waits for them (SPEND.md's
//! `approval_channels`), and the organisation sees what its agents do
//! (`notify_on_all` / `notifications.events`: the eight events), by Slack
//! and email — or, in `spend dev`, in the outbox folder and on the console.
//!
//! A service of its own that runs in the approval service's process (it
//! records with that service's authority), beside the app
//! ([`Notifier::runner`]): it follows the log into its own copy of the
//! approval side's book (`spend-approvals`), and sends the links of the
//! requests the app opens, derived from the same link secret
//! ([`spend_approvals::links::Links`]).
//!
//! Driven by the log alone, so it is idempotent across restarts and
//! replicas: the follower hands every event to [`Notifier::observe`],
//! which plans its notices ([`plan`], pure: the same ids on every replica
//! and replay); the tick takes due ones on with an expected-sequence
//! append ([`state`]: one replica per notice, however often the event is
//! read) and hands them to a worker per destination ([`deliver`]: retries,
//! `Retry-After`, outcomes as events). Messages are rendered so that
//! nothing an agent wrote is live in them ([`render`]).
//!
//! - [`plan`]: which notices an event makes, and their messages.
//! - [`state`]: planned, taken on, ended; flood folding; leases.
//! - [`render`]: Slack Block Kit and email, escaped.
//! - [`deliver`]: Slack webhooks, SMTP (lettre), the outbox.

pub mod deliver;
pub mod plan;
pub mod render;
pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use spend_core::events::{EventData, NotificationAttempted, NotificationFailed};
use spend_core::{Actor, Secret};
use spend_draft::proof::RelyingParty;
use spend_eventlog::read::{Read, classify};
use spend_eventlog::{EventLog, LogError, Recorder, StoredMessage};
use spend_policy::spendmd::SpendMd;
use tokio::sync::watch;

use plan::{Context, Event, Notice};
use spend_approvals::book::Book;
use spend_approvals::links::Links;
use state::{Due, Notices};

/// How the SMTP relay is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: a relay on loopback or a private network only.
    None,
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where notifications go and how hard delivery tries.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Slack incoming webhooks by the name SPEND.md uses
    /// (`notifications.slack: alerts`); the URLs are secrets.
    pub slack_webhooks: BTreeMap<String, Secret>,
    pub smtp: Option<SmtpConfig>,
    /// The sender of notification emails.
    pub from: String,
    /// `spend dev`: where approval links, and messages for channels without
    /// a configured webhook or SMTP relay, are written (and printed).
    pub outbox: Option<PathBuf>,
    /// Events older than this are not notified (a replica catching up after
    /// an outage does not replay old news).
    pub max_age: Duration,
    /// How long a replica holds a notice before another may take it on.
    pub lease: Duration,
    /// How long a notice is retried before it fails (below `lease`).
    pub delivery_deadline: Duration,
    /// Of each notification event, an organisation gets three messages per
    /// window; the rest of the window's are folded into one digest.
    pub flood_window: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            slack_webhooks: BTreeMap::new(),
            smtp: None,
            from: "SpendSignoff <notifications@spendsignoff.localhost>".into(),
            outbox: None,
            max_age: Duration::from_secs(3600),
            lease: Duration::from_secs(600),
            delivery_deadline: Duration::from_secs(300),
            flood_window: Duration::from_secs(60),
        }
    }
}

impl NotifyConfig {
    /// Whether a real channel (a webhook or an SMTP relay) is configured.
    pub fn delivers(&self) -> bool {
        !self.slack_webhooks.is_empty() || self.smtp.is_some()
    }
}

/// How often due notices are taken on.
const TICK: Duration = Duration::from_millis(250);

/// The notifications of one approval service process.
pub struct Notifier {
    links: Arc<Links>,
    /// Its own fold of the log (the app keeps another).
    book: Mutex<Book>,
    /// The SPEND.md in force before an organisation approves its own.
    bootstrap: Arc<SpendMd>,
    notices: Mutex<Notices>,
    dispatcher: deliver::Dispatcher,
    recorder: Recorder,
    /// This process, in its claims (random per start).
    replica: String,
    outbox: bool,
    stop: watch::Sender<bool>,
}

impl Notifier {
    /// A notifier sending `links` (the approval app's: the same secret),
    /// recording with `recorder` (the approval service's authority), whose
    /// book checks approvals against passkeys made on `rp`.
    pub fn new(config: NotifyConfig, links: Arc<Links>, recorder: Recorder, bootstrap: Arc<SpendMd>, rp: RelyingParty) -> Result<Arc<Self>, String> {
        for (name, url) in &config.slack_webhooks {
            if !url.expose().starts_with("https://") && !url.expose().starts_with("http://") {
                return Err(format!("approval.notify.slack_webhooks.{name} is not an http(s) URL"));
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let config = Arc::new(config);
        let dispatcher = deliver::Dispatcher::new(config.clone(), recorder.clone(), stop_rx)?;
        let replica = format!("r-{}", spend_credentials::random_hex(4).map_err(|e| e.to_string())?);
        let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1));
        Ok(Arc::new(Self {
            book: Mutex::new(Book::new(rp, Some(bootstrap.clone()))),
            bootstrap,
            links,
            notices: Mutex::new(Notices::new(to_chrono(config.max_age), to_chrono(config.lease), to_chrono(config.flood_window))),
            dispatcher,
            recorder,
            replica,
            outbox: config.outbox.is_some(),
            stop,
        }))
    }

    /// [`Notifier::run`] as a task the approval app runs beside its own
    /// (`Application::with_companion`).
    pub fn runner(self: &Arc<Self>, log: Arc<dyn EventLog>) -> impl FnOnce(watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send + 'static {
        let me = self.clone();
        move |stop| Box::pin(me.run(log, stop))
    }

    /// Follows the log (each event planned right after the book applied
    /// it) and takes due notices on once the book has caught up, until
    /// `stop`; then lets each worker finish the try in hand.
    pub async fn run(self: Arc<Self>, log: Arc<dyn EventLog>, mut stop: watch::Receiver<bool>) {
        let prefix = self.recorder.prefix().to_string();
        let me = self.clone();
        let follower = tokio::spawn(spend_eventlog::follow_until(log.clone(), 1, stop.clone(), move |m| {
            let (me, prefix) = (me.clone(), prefix.clone());
            async move {
                let mut book = me.book.lock().expect("book");
                book.apply(&prefix, &m);
                me.observe(&book, &me.bootstrap, &prefix, &m);
            }
        }));
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
            let Ok(info) = log.info().await else { continue };
            if self.book.lock().expect("book").seq < info.last_seq {
                continue;
            }
            self.tick(Utc::now()).await;
        }
        let _ = follower.await;
        self.drain().await;
    }

    /// Reads one message of the log, in order, right after the book
    /// applied it (so the book describes the world as of this event).
    pub fn observe(&self, book: &Book, bootstrap: &SpendMd, prefix: &str, m: &StoredMessage) {
        let Read::Event { env, aggregate, id } = classify(prefix, m) else {
            return;
        };
        let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
            return;
        };
        let mut notices = self.notices.lock().expect("notices");
        match &data {
            EventData::NotificationAttempted(a) if aggregate == "notification" => return notices.attempted(a, m.seq, m.time),
            EventData::NotificationSent(s) if aggregate == "notification" => return notices.sent(s),
            EventData::NotificationFailed(f) if aggregate == "notification" => return notices.failed(f),
            _ => {}
        }
        let org = env.org.as_ref();
        let active = book.versions.active(org).map(|a| a.policy.clone());
        let policy = active.as_deref().unwrap_or(bootstrap);
        let draft_id = draft_id_of(&data).unwrap_or(id);
        let asks = matches!(data, EventData::ApprovalRequested(_) | EventData::ApprovalEscalated(_));
        let approvers = if asks { approver_emails(book, org) } else { Vec::new() };
        let escalation_taken = match &data {
            EventData::ApprovalEscalated(e) => book
                .target(org, id)
                .is_some_and(|t| t.escalated && t.request.is_some_and(|r| r.expires_at == e.expires_at)),
            _ => false,
        };
        let ctx = Context {
            org,
            policy,
            links: &self.links,
            draft: book.entry(org, draft_id),
            proposal: (aggregate == "approval").then(|| book.versions.proposal(org, id).map(|p| p.0)).flatten(),
            approvers,
            outbox: self.outbox,
            escalation_taken,
            rollback: (aggregate == "approval").then(|| book.rollback(org, id)).flatten(),
        };
        let event = Event {
            id: env.id.to_string(),
            aggregate,
            subject_id: id,
            at: m.time,
            data: &data,
        };
        let planned = plan::plan(&ctx, &event);
        let now = Utc::now();
        notices.plan(planned.approval, now);
        if let Some(kind) = planned.flood_kind {
            notices.plan_flood(kind, planned.events, now);
        }
    }

    /// Takes on what is due and hands it to the workers (once the book has
    /// caught up with the log).
    pub async fn tick(&self, now: DateTime<Utc>) {
        let (due, too_old) = {
            let mut n = self.notices.lock().expect("notices");
            n.close_windows(now, &self.links.queue());
            let before = n.too_old;
            let due = n.due(now, &self.dispatcher.in_flight());
            (due, n.too_old - before)
        };
        if too_old > 0 {
            tracing::warn!(
                count = too_old,
                "notifications about events older than approval.notify.max_age_minutes were not sent"
            );
        }
        for d in due {
            match d {
                Due::Take { notice, attempt, expect_seq } => self.take(notice, attempt, expect_seq).await,
                Due::GiveUp { notice, expect_seq, attempts } => {
                    let failed = NotificationFailed {
                        notice_id: notice.id.clone(),
                        channel: notice.target.channel.as_str().into(),
                        target: notice.target.to.clone(),
                        tries: 0,
                        reason: format!("taken on {attempts} times by replicas that stopped before recording an outcome; given up"),
                    };
                    let _ = self
                        .recorder
                        .event(
                            &notice.org,
                            Actor::service("approval"),
                            "notification",
                            &notice.id,
                            EventData::NotificationFailed(failed),
                        )
                        .expect_seq(expect_seq)
                        .record()
                        .await;
                }
            }
        }
    }

    async fn take(&self, notice: Notice, attempt: u32, expect_seq: u64) {
        let claim = NotificationAttempted {
            notice_id: notice.id.clone(),
            source_event_id: notice.source_event_id.clone(),
            kind: notice.kind.clone(),
            channel: notice.target.channel.as_str().into(),
            target: notice.target.to.clone(),
            attempt,
            replica: self.replica.clone(),
        };
        self.dispatcher.hold(&notice.id);
        let recorded = self
            .recorder
            .event(
                &notice.org,
                Actor::service("approval"),
                "notification",
                &notice.id,
                EventData::NotificationAttempted(claim),
            )
            .expect_seq(expect_seq)
            .record()
            .await;
        match recorded {
            Ok(r) => self.dispatcher.submit(notice, r.seq).await,
            Err(e) => {
                self.dispatcher.release_one(&notice.id);
                match e {
                    // Another replica took it on first: the follower will say.
                    LogError::WrongLastSequence { .. } => {}
                    e => tracing::warn!(notice = %notice.id, error = %e, "could not take a notification on; retrying"),
                }
            }
        }
    }

    /// Stops the workers after the try each has in hand.
    pub async fn drain(&self) {
        let _ = self.stop.send(true);
        self.dispatcher.drain().await;
    }
}

/// The draft an event is about, where its data names one.
fn draft_id_of(data: &EventData) -> Option<&str> {
    Some(match data {
        EventData::PolicyEvaluated(e) => &e.draft_id,
        EventData::ApprovalRequested(e) => &e.draft_id,
        EventData::ApprovalRejected(e) => &e.draft_id,
        EventData::ApprovalExpired(e) => &e.draft_id,
        EventData::ApprovalEscalated(e) => &e.draft_id,
        EventData::DraftStaled(e) => &e.draft_id,
        EventData::ChangePushed(e) => &e.draft_id,
        EventData::ChangeFailed(e) => &e.draft_id,
        _ => return None,
    })
}

/// The addresses of an organisation's trusted, not removed approvers.
fn approver_emails(book: &Book, org: &str) -> Vec<String> {
    let mut v: Vec<String> = book
        .approvers
        .approvers(org)
        .into_iter()
        .filter(|a| a.removed_at.is_none())
        .filter_map(|a| book.email(org, &a.approver_id).map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}
