//! Delivery: one worker per destination (each Slack webhook, the SMTP
//! relay, the outbox), so a dead channel only ever delays its own
//! messages — never an approval, never another channel.
//!
//! A worker retries what can succeed later (timeouts, connection errors,
//! 5xx, Slack's 429, SMTP's 4xx) with exponential backoff and jitter, and
//! honours `Retry-After` — pausing that whole webhook, as Slack asks —
//! until the notice's delivery deadline; what cannot (another 4xx, SMTP's
//! 5xx) fails at once. Either way the outcome is recorded on the notice's
//! subject, expecting the claim's sequence, so a replica that lost its
//! claim to another cannot record over it.
//!
//! Webhook URLs are secrets (whoever has one can post to the channel):
//! they are never logged, never recorded and never in an error; a
//! webhook is named by its configured name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use spend_core::Actor;
use spend_core::events::{EventData, NotificationFailed, NotificationSent};
use spend_eventlog::{LogError, Recorder};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::plan::{Channel, Notice, short_time};
use super::render;
use super::{NotifyConfig, SmtpTls};

/// Notices one worker holds (queued or waiting to retry); past it a notice
/// fails at once ("queue full") rather than grow memory without bound.
const QUEUE: usize = 10_000;
/// One try's limit: a Slack post or a whole SMTP conversation.
const TRY_TIMEOUT: Duration = Duration::from_secs(20);
/// Backoff between tries: 1 s, 2 s, 4 s … at most 60 s (±20% jitter).
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured (a longer one is cut to this).
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// One notice to deliver, taken on with the claim at `claim_seq`.
#[derive(Debug)]
pub struct Job {
    pub notice: Notice,
    pub claim_seq: u64,
    /// When the worker gives up retrying.
    pub deadline: Instant,
    tries: u32,
}

impl Job {
    pub fn new(notice: Notice, claim_seq: u64, deadline: Instant) -> Self {
        Self {
            notice,
            claim_seq,
            deadline,
            tries: 0,
        }
    }
}

/// What one try came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Try {
    Sent(String),
    /// Worth trying again: after `after` if the channel said so (`pause`:
    /// the whole channel waits, as after a 429).
    Again {
        after: Option<Duration>,
        pause: bool,
        reason: String,
    },
    /// Refused for good.
    Refused(String),
}

/// An SMTP relay and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &super::SmtpConfig, from: &str) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("approval.notify.from {from:?} is not an email address: {e}"))?;
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("approval.notify.smtp: STARTTLS to {}: {e}", config.host))?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(|e| format!("approval.notify.smtp: TLS to {}: {e}", config.host))?
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(Duration::from_secs(10)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    fn message(&self, notice: &Notice) -> Result<lettre::Message, String> {
        message(&self.from, notice)
    }

    async fn send(&self, notice: &Notice) -> Try {
        let message = match self.message(notice) {
            Ok(m) => m,
            Err(e) => return Try::Refused(e),
        };
        match tokio::time::timeout(TRY_TIMEOUT, self.transport.send(message)).await {
            Err(_) => Try::Again {
                after: None,
                pause: false,
                reason: "the SMTP server did not answer in time".into(),
            },
            Ok(Ok(r)) => Try::Sent(format!("SMTP {}", r.code())),
            Ok(Err(e)) if e.is_permanent() => Try::Refused(format!("the SMTP server refused it: {e}")),
            Ok(Err(e)) => Try::Again {
                after: None,
                pause: false,
                reason: format!("SMTP: {e}"),
            },
        }
    }
}

/// The email of a notice, with a Message-ID derived from the notice, so a
/// message sent twice (a replica died between the relay's 250 and the
/// record of it) is one message to mail systems that deduplicate.
fn message(from: &Mailbox, notice: &Notice) -> Result<lettre::Message, String> {
    let to: Mailbox = notice
        .target
        .to
        .parse()
        .map_err(|e| format!("{:?} is not an email address: {e}", notice.target.to))?;
    let e = render::email(&notice.message);
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(e.subject)
        .message_id(Some(format!("<{}@notify.spendsignoff>", notice.id)))
        .multipart(MultiPart::alternative_plain_html(e.text, e.html))
        .map_err(|e| format!("building the email: {e}"))
}

/// Where one worker delivers.
enum Sink {
    Slack {
        http: reqwest::Client,
        url: spend_core::Secret,
    },
    Email(Arc<Mailer>),
    /// `spend dev`: files in the outbox folder, and a console line.
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl Sink {
    async fn send(&self, notice: &Notice) -> Try {
        match self {
            Sink::Slack { http, url } => slack(http, url.expose(), notice).await,
            Sink::Email(m) => m.send(notice).await,
            Sink::Outbox { dir, from } => outbox(dir, from, notice),
        }
    }
}

/// Posts a notice to a Slack incoming webhook.
pub async fn slack(http: &reqwest::Client, url: &str, notice: &Notice) -> Try {
    let body = render::slack(&notice.message);
    let answer = http.post(url).timeout(TRY_TIMEOUT).json(&body).send().await;
    let r = match answer {
        Ok(r) => r,
        // reqwest names the URL in its errors: never let it out.
        Err(e) => {
            return Try::Again {
                after: None,
                pause: false,
                reason: format!("posting to the webhook: {}", e.without_url()),
            };
        }
    };
    let status = r.status();
    let retry_after = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| spend_core::retry::retry_after(v, std::time::SystemTime::now(), RETRY_AFTER_MAX));
    let text: String = r.text().await.unwrap_or_default().chars().take(200).collect();
    if status.is_success() {
        Try::Sent(format!("HTTP {}", status.as_u16()))
    } else if status.as_u16() == 429 {
        Try::Again {
            after: retry_after.or(Some(Duration::from_secs(30))),
            pause: true,
            reason: "Slack is rate limiting this webhook (429)".into(),
        }
    } else if status.is_server_error() {
        Try::Again {
            after: retry_after,
            pause: false,
            reason: format!("HTTP {}: {text}", status.as_u16()),
        }
    } else {
        Try::Refused(format!("Slack refused it: HTTP {}: {text}", status.as_u16()))
    }
}

/// Writes `bytes` to `path` readable by its owner only (0600 where the
/// platform has modes): an outbox file holds a live approval link.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    // A file made before this (with wider modes) is narrowed too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)
}

/// Writes a notice to `spend dev`'s outbox and prints a line about it.
fn outbox(dir: &Path, from: &Mailbox, notice: &Notice) -> Try {
    let safe = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect::<String>()
    };
    let (name, body) = match notice.target.channel {
        // The approval link itself, as `spend dev` always printed it.
        Channel::Outbox => {
            let link = notice.message.link.as_ref().map(|l| l.1.clone()).unwrap_or_default();
            let until = notice.message.expires_at.as_deref().map(short_time).unwrap_or_default();
            let suffix = if notice.kind == "approval.escalated" { "-escalated" } else { "" };
            eprintln!("{} [{} of {}]: {link}", notice.message.summary, notice.subject_id, notice.org);
            (
                format!("approval-{}-{}{suffix}.txt", safe(&notice.org), safe(&notice.subject_id)),
                format!("{}\nExpires at {until}\n{link}\n", notice.message.summary),
            )
        }
        Channel::Slack => (
            format!("slack-{}-{}.json", safe(&notice.target.to), notice.id),
            serde_json::to_string_pretty(&render::slack(&notice.message)).unwrap_or_default(),
        ),
        Channel::Email => match message(from, notice) {
            Ok(m) => (
                format!("email-{}-{}.eml", safe(&notice.target.to), notice.id),
                String::from_utf8_lossy(&m.formatted()).into_owned(),
            ),
            Err(e) => return Try::Refused(e),
        },
    };
    let path = dir.join(&name);
    match std::fs::create_dir_all(dir).and_then(|_| write_private(&path, body.as_bytes())) {
        Ok(()) => {
            if notice.target.channel != Channel::Outbox {
                eprintln!(
                    "notification {} to {} {}: {}",
                    notice.kind,
                    notice.target.channel.as_str(),
                    notice.target.to,
                    path.display()
                );
            }
            Try::Sent(format!("written to {}", path.display()))
        }
        Err(e) => Try::Again {
            after: None,
            pause: false,
            reason: format!("writing {}: {e}", path.display()),
        },
    }
}

/// The wait after try `tries` (from 1): 1 s, 2 s, 4 s … at most
/// [`BACKOFF_MAX`], with jitter (the product's one retry policy).
fn backoff(tries: u32) -> Duration {
    spend_core::retry::backoff(Duration::from_secs(1), BACKOFF_MAX)
        .nth(tries.saturating_sub(1) as usize)
        .unwrap_or(BACKOFF_MAX)
}

/// The workers, one per destination, started on first use.
pub struct Dispatcher {
    config: Arc<NotifyConfig>,
    http: reqwest::Client,
    mailer: Option<Arc<Mailer>>,
    from: Mailbox,
    recorder: Recorder,
    workers: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    /// Notices this process holds (queued, being sent, waiting to retry).
    in_flight: Arc<Mutex<HashSet<String>>>,
    stop: watch::Receiver<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Dispatcher {
    pub fn new(config: Arc<NotifyConfig>, recorder: Recorder, stop: watch::Receiver<bool>) -> Result<Self, String> {
        let mailer = match &config.smtp {
            Some(smtp) => Some(Arc::new(Mailer::new(smtp, &config.from)?)),
            None => None,
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("approval.notify.from {:?} is not an email address: {e}", config.from))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("an HTTP client for Slack: {e}"))?;
        Ok(Self {
            config,
            http,
            mailer,
            from,
            recorder,
            workers: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            stop,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The notices this process holds.
    pub fn in_flight(&self) -> HashSet<String> {
        self.in_flight.lock().expect("in-flight set").clone()
    }

    /// Marks a notice as held by this process (before its claim is even
    /// read back from the log).
    pub fn hold(&self, notice_id: &str) {
        self.in_flight.lock().expect("in-flight set").insert(notice_id.to_string());
    }

    /// Forgets a notice this process did not take on after all.
    pub fn release_one(&self, notice_id: &str) {
        Self::release(&self.in_flight, notice_id);
    }

    fn release(in_flight: &Mutex<HashSet<String>>, notice_id: &str) {
        in_flight.lock().expect("in-flight set").remove(notice_id);
    }

    /// Where a notice's target is delivered, by worker key.
    fn sink(&self, notice: &Notice) -> Result<(String, Sink), String> {
        let outbox = |key: String| self.config.outbox.clone().map(|dir| (key, Sink::Outbox { dir, from: self.from.clone() }));
        match notice.target.channel {
            Channel::Slack => match self.config.slack_webhooks.get(&notice.target.to) {
                Some(url) => Ok((
                    format!("slack:{}", notice.target.to),
                    Sink::Slack {
                        http: self.http.clone(),
                        url: url.clone(),
                    },
                )),
                None => outbox("outbox".into()).ok_or_else(|| {
                    format!(
                        "no Slack webhook named {:?} is configured (approval.notify.slack_webhooks.{0}, SPEND__APPROVAL__NOTIFY__SLACK_WEBHOOKS__{})",
                        notice.target.to,
                        notice.target.to.to_uppercase()
                    )
                }),
            },
            Channel::Email => match &self.mailer {
                Some(m) => Ok(("email".into(), Sink::Email(m.clone()))),
                None => outbox("outbox".into()).ok_or_else(|| "no SMTP server is configured (approval.notify.smtp.host)".to_string()),
            },
            Channel::Outbox => outbox("outbox".into()).ok_or_else(|| "no outbox folder (spend dev only)".to_string()),
        }
    }

    /// Hands a notice, claimed at `claim_seq`, to its destination's worker.
    pub async fn submit(&self, notice: Notice, claim_seq: u64) {
        self.hold(&notice.id);
        let deadline = Instant::now() + self.config.delivery_deadline;
        let (key, sink) = match self.sink(&notice) {
            Ok(s) => s,
            Err(reason) => {
                finish(&self.recorder, &self.in_flight, &notice, claim_seq, 0, Err(reason)).await;
                return;
            }
        };
        let sender = {
            let mut workers = self.workers.lock().expect("workers");
            workers
                .entry(key)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    let task = tokio::spawn(worker(sink, rx, self.recorder.clone(), self.in_flight.clone(), self.stop.clone()));
                    self.tasks.lock().expect("tasks").push(task);
                    tx
                })
                .clone()
        };
        if let Err(e) = sender.try_send(Job::new(notice, claim_seq, deadline)) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            let reason = format!("{} notifications are queued for this destination already", QUEUE);
            finish(&self.recorder, &self.in_flight, &job.notice, claim_seq, 0, Err(reason)).await;
        }
    }

    /// Waits for every worker to finish the try in hand (after `stop`).
    pub async fn drain(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn worker(sink: Sink, mut rx: mpsc::Receiver<Job>, recorder: Recorder, in_flight: Arc<Mutex<HashSet<String>>>, mut stop: watch::Receiver<bool>) {
    // Jobs by when they are next tried (then by arrival).
    let mut waiting: BTreeMap<(Instant, u64), Job> = BTreeMap::new();
    let mut arrivals = 0u64;
    let mut paused_until: Option<Instant> = None;
    loop {
        let next = waiting.keys().next().map(|(t, _)| paused_until.map_or(*t, |p| p.max(*t)));
        tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            job = rx.recv() => match job {
                Some(job) => {
                    arrivals += 1;
                    waiting.insert((Instant::now(), arrivals), job);
                }
                None => break,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let Some((_, mut job)) = waiting.pop_first() else { continue };
                job.tries += 1;
                match sink.send(&job.notice).await {
                    Try::Sent(detail) => finish(&recorder, &in_flight, &job.notice, job.claim_seq, job.tries, Ok(detail)).await,
                    Try::Refused(reason) => finish(&recorder, &in_flight, &job.notice, job.claim_seq, job.tries, Err(reason)).await,
                    Try::Again { after, pause, reason } => {
                        let delay = after.unwrap_or_else(|| backoff(job.tries));
                        let at = Instant::now() + delay;
                        if pause {
                            paused_until = Some(at);
                        }
                        tracing::info!(notice = %job.notice.id, kind = %job.notice.kind, channel = job.notice.target.channel.as_str(), tries = job.tries, retry_in_ms = delay.as_millis() as u64, %reason, "notification not delivered yet; retrying");
                        if at > job.deadline {
                            let reason = format!("gave up after {} tries: {reason}", job.tries);
                            finish(&recorder, &in_flight, &job.notice, job.claim_seq, job.tries, Err(reason)).await;
                        } else {
                            arrivals += 1;
                            waiting.insert((at, arrivals), job);
                        }
                    }
                }
            }
        }
    }
    // What waits to be retried stays claimed: after the lease, another
    // replica (or this one, restarted) takes it on again.
    for job in waiting.into_values() {
        Dispatcher::release(&in_flight, &job.notice.id);
    }
}

/// Records a notice's outcome on its subject, expecting its claim.
async fn finish(recorder: &Recorder, in_flight: &Mutex<HashSet<String>>, notice: &Notice, claim_seq: u64, tries: u32, outcome: Result<String, String>) {
    let (channel, target) = (notice.target.channel.as_str().to_string(), notice.target.to.clone());
    let data = match &outcome {
        Ok(detail) => EventData::NotificationSent(NotificationSent {
            notice_id: notice.id.clone(),
            channel,
            target,
            tries: tries.max(1),
            detail: detail.chars().take(500).collect(),
        }),
        Err(reason) => {
            tracing::warn!(notice = %notice.id, kind = %notice.kind, channel = notice.target.channel.as_str(), target = %notice.target.to, %reason, "notification failed");
            EventData::NotificationFailed(NotificationFailed {
                notice_id: notice.id.clone(),
                channel,
                target,
                tries,
                reason: reason.chars().take(500).collect(),
            })
        }
    };
    let mut waits = spend_core::retry::backoff(Duration::from_millis(200), Duration::from_secs(7));
    for _ in 0..6 {
        let recorded = recorder
            .event(&notice.org, Actor::service("approval"), "notification", &notice.id, data.clone())
            .expect_seq(claim_seq)
            .record()
            .await;
        match recorded {
            Ok(_) => break,
            Err(LogError::WrongLastSequence { .. }) => {
                tracing::warn!(notice = %notice.id, "another replica took this notification on meanwhile; its outcome is theirs to record");
                break;
            }
            Err(e) if e.is_transient() => tokio::time::sleep(waits.wait()).await,
            Err(e) => {
                tracing::error!(notice = %notice.id, error = %e, "could not record a notification's outcome");
                break;
            }
        }
    }
    Dispatcher::release(in_flight, &notice.id);
}

#[cfg(test)]
mod tests {

    #[cfg(unix)]
    #[test]
    fn an_outbox_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approval-acme-d_1.txt");
        std::fs::write(&path, "an older, wider file").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, b"https://approvals.example/a/secret-link").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "https://approvals.example/a/secret-link");
    }

    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter() {
        // The shared policy's jitter adds up to the wait again, capped.
        for (tries, secs) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)] {
            let b = backoff(tries).as_secs_f64();
            assert!(b >= secs && b <= f64::min(secs * 2.0, 60.0), "{tries}: {b}");
        }
    }
}
