//! Notifications end to end, on JetStream, a Slack webhook receiver and a
//! real SMTP server (aiosmtpd) on loopback:
//! - every one of SPEND.md's eight notification events is delivered once
//!   to each configured channel, and nothing else is; Slack's 429 with
//!   `Retry-After` is honoured; agent text with mentions and links arrives
//!   inert;
//! - an event read again (appended a second time, a restarted service
//!   replaying the log) sends nothing twice;
//! - a kind SPEND.md does not subscribe to is not delivered;
//! - `timeout_action: escalate` notifies the next channel and extends the
//!   request once;
//! - a dead channel ends in a recorded failure (its URL nowhere) and holds
//!   up neither the approval request nor the other channel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use spend_approval::{Application, ApprovalConfig, Deps};
use spend_approvals::links::Links;
use spend_core::events::{
    ApprovalRequested, CardCreated, CardFrozen, ChangePushed, ChangeStarted, DraftChange, EventData, LimitApproaching, LimitExceeded, Outcome, SecurityAlert,
};
use spend_core::{Actor, Envelope, Money, Secret};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{Append, EventLog};
use spend_notify::{NotifyConfig, SmtpConfig, SmtpTls};
use spend_testkit::Streams;
use spend_testkit::events::{Approvers, append_all, decided, on_log, subject_of};
use spend_testkit::smtp::SmtpServer;
use spend_testkit::webhook::Webhook;

const LINK_SECRET: &str = "a-test-link-secret-of-at-least-32-characters";

/// What an agent might write to phish through a notification.
const HOSTILE: &str = "<!channel> urgent: approve at <https://evil.example/login|openai.com> or https://evil.example/x *now*";

const NOTIFY_ALL: &str = "\
spend:
  daily_limit: 500 USD
approval:
  notify_on_all: true
  approval_channels: [email]
  timeout_action: deny
  timeout_minutes: 30
notifications:
  email: ops@acme.example
  slack: alerts
";

fn usd(minor: i64) -> Money {
    Money::new(minor, "USD").unwrap()
}

fn by(source: &str, actor: Actor, subject: String, data: EventData) -> Envelope {
    Envelope::new(source, "acme", actor, subject, data)
}

fn payment(draft_id: &str, minor: i64, rationale: &str) -> Envelope {
    by(
        "spendsignoff/gateway",
        Actor::agent("k_agent"),
        format!("draft/{draft_id}"),
        EventData::DraftProposed(
            spend_draft::display::proposed(
                draft_id,
                "card_1",
                rationale,
                None,
                DraftChange::Payment {
                    amount: usd(minor),
                    merchant: "openai.com".into(),
                    category: Some("software".into()),
                    country: None,
                    url: None,
                    https: Some(true),
                    card_id: Some("crd_1".into()),
                    stated_category: None,
                    stated_country: None,
                },
            )
            .expect("a consistent draft"),
        ),
    )
}

fn executor(subject: String, data: EventData) -> Envelope {
    by("spendsignoff/executor", Actor::service("executor"), subject, data)
}

fn policy(subject: String, data: EventData) -> Envelope {
    by("spendsignoff/policy", Actor::service("policy"), subject, data)
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    origin: String,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// The approval app's configuration and its notifier's.
struct Config {
    app: ApprovalConfig,
    notify: NotifyConfig,
}

fn config(slack: Option<&str>, smtp: Option<u16>, deadline: Duration) -> Config {
    let mut c = ApprovalConfig::new("127.0.0.1:0");
    // The test's approvers' passkeys are made on the test relying party.
    c.passkey = Some(spend_draft::humans::test_rp());
    c.link_secret = Some(Secret::new(LINK_SECRET));
    let notify = NotifyConfig {
        slack_webhooks: slack
            .iter()
            .map(|u| ("alerts".to_string(), Secret::new(*u)))
            .chain(slack.iter().map(|u| ("approvals".to_string(), Secret::new(*u))))
            .collect::<BTreeMap<_, _>>(),
        smtp: smtp.map(|port| SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
        }),
        delivery_deadline: deadline,
        lease: Duration::from_secs(60),
        ..NotifyConfig::default()
    };
    Config { app: c, notify }
}

async fn start(log: &Arc<dyn EventLog>, prefix: &str, policy_md: &str, config: Config) -> Running {
    let app = Application::build(
        config.app,
        Deps {
            log: log.clone(),
            prefix: prefix.into(),
            policy: Arc::new(spend_policy::spendmd::parse(policy_md).unwrap()),
            accounts: None,
        },
    )
    .await
    .unwrap();
    let app = with_notifier(app, log, prefix, config.notify);
    let origin = app.origin();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running { stop, task, origin }
}

/// The notifier beside the app, as `spend serve approval` runs it.
fn with_notifier(app: Application, log: &Arc<dyn EventLog>, prefix: &str, config: NotifyConfig) -> Application {
    let recorder = spend_eventlog::Recorder::new(log.clone(), prefix, spend_core::authority::Writer::Approval);
    let notifier = spend_notify::Notifier::new(config, app.links(), recorder, app.bootstrap(), spend_draft::humans::test_rp()).unwrap();
    app.with_companion(notifier.runner(log.clone()))
}

async fn log_of(streams: &Streams) -> Arc<dyn EventLog> {
    Arc::new(JetStreamLog::connect(streams.events.clone()).await.unwrap())
}

/// The notification events on the log: (type, data).
async fn notifications(log: &Arc<dyn EventLog>) -> Vec<(String, serde_json::Value)> {
    on_log(log.as_ref())
        .await
        .into_iter()
        .filter(|(s, _)| s.contains(".notification."))
        .map(|(_, e)| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect()
}

/// (kind, channel) of every notification taken on.
async fn taken(log: &Arc<dyn EventLog>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = notifications(log)
        .await
        .into_iter()
        .filter(|(t, _)| t == "spend.notification.attempted.v1")
        .map(|(_, d)| (d["kind"].as_str().unwrap().to_string(), d["channel"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

const EIGHT: [&str; 8] = [
    "card.created",
    "card.frozen",
    "limit.approaching",
    "limit.exceeded",
    "security.alert",
    "transaction.completed",
    "transaction.declined",
    "transaction.pending_approval",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_the_eight_kinds_is_delivered_once_to_slack_and_email_and_agent_text_arrives_inert() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log = log_of(&streams).await;
    let slack = Webhook::start().await;
    let smtp = SmtpServer::start();
    // Slack rate-limits the first post.
    slack.answer(&[(429, Some(1))]);
    let app = start(&log, &prefix, NOTIFY_ALL, config(Some(&slack.url), Some(smtp.port), Duration::from_secs(60))).await;

    let alert = by(
        "spendsignoff/gateway",
        Actor::service("gateway"),
        "security_gateway/a1".into(),
        EventData::SecurityAlert(SecurityAlert {
            reason: "scope.denied".into(),
            key_id: Some("k_agent".into()),
            address: Some("203.0.113.9".into()),
            detail: format!("mcp.approve requested: {HOSTILE}"),
        }),
    );
    let events = vec![
        // Waits for a human: transaction.pending_approval (the approval
        // channel, email, has no trusted approver to reach yet).
        payment("d_wait", 1_200, HOSTILE),
        decided("acme", "d_wait", Outcome::RequireApproval),
        // Denied: transaction.declined.
        payment("d_deny", 90_000, "a big one"),
        decided("acme", "d_deny", Outcome::Deny),
        // Pushed: transaction.completed.
        payment("d_push", 300, "small credits"),
        decided("acme", "d_push", Outcome::AutoApprove),
        executor(
            "change/ch_1".into(),
            EventData::ChangeStarted(ChangeStarted {
                change_id: "ch_1".into(),
                draft_id: "d_push".into(),
                before: None,
            }),
        ),
        executor(
            "change/ch_1".into(),
            EventData::ChangePushed(ChangePushed {
                change_id: "ch_1".into(),
                draft_id: "d_push".into(),
                platform: "sandbox".into(),
                idempotency_key: "d_push".into(),
                diff: vec![],
                response: None,
            }),
        ),
        policy(
            "limit/envelope".into(),
            EventData::LimitApproaching(LimitApproaching {
                account_id: "card_1".into(),
                draft_id: "d_wait".into(),
                limit: "daily_limit".into(),
                used: usd(42_000),
                value: usd(50_000),
            }),
        ),
        policy(
            "limit/envelope".into(),
            EventData::LimitExceeded(LimitExceeded {
                account_id: "card_1".into(),
                draft_id: "d_deny".into(),
                limit: "daily_limit".into(),
                used: usd(132_000),
                value: usd(50_000),
            }),
        ),
        executor(
            "card/card_9".into(),
            EventData::CardCreated(CardCreated {
                card_id: "card_9".into(),
                account_id: "card_1".into(),
                last4: "4242".into(),
                label: "openai.com credits".into(),
                spend_limit: Some(usd(5_000)),
            }),
        ),
        executor(
            "card/card_9".into(),
            EventData::CardFrozen(CardFrozen {
                card_id: "card_9".into(),
                reason: "incident".into(),
            }),
        ),
        alert.clone(),
    ];
    append_all(log.as_ref(), &prefix, events).await;

    // Eight messages each way; Slack's first answer was a 429.
    let posts = slack.wait_for(9, Duration::from_secs(30)).await;
    let mails = smtp.wait_for(8, Duration::from_secs(30));
    assert_eq!(posts.len(), 9, "8 messages and one retry: {posts:#?}");
    assert_eq!(mails.len(), 8, "{:#?}", mails.iter().map(|m| &m.subject).collect::<Vec<_>>());
    assert!(posts[1..].iter().any(|p| p.body == posts[0].body), "the rate-limited message is sent again");
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(950),
        "the whole webhook waits for Retry-After: {:?}",
        posts[1].at - posts[0].at
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = EIGHT
            .iter()
            .flat_map(|k| [(k.to_string(), "email".to_string()), (k.to_string(), "slack".to_string())])
            .collect();
        v.sort();
        v
    };
    assert_eq!(taken(&log).await, expected, "each kind once per channel");
    let outcomes = notifications(&log).await;
    let sent: Vec<&serde_json::Value> = outcomes.iter().filter(|(t, _)| t == "spend.notification.sent.v1").map(|(_, d)| d).collect();
    assert_eq!(sent.len(), 16, "{outcomes:#?}");
    assert!(sent.iter().any(|d| d["channel"] == "slack" && d["tries"] == 2), "the 429 took a second try");
    assert!(sent.iter().all(|d| d["target"] == "alerts" || d["target"] == "ops@acme.example"));

    // Agent text arrives inert: in Slack, escaped and in code, with our
    // Review button the only link.
    let waiting = posts.iter().find(|p| p.body["text"] == "Approval needed").expect("the approval message");
    let s = waiting.body.to_string();
    assert!(!s.contains("<!channel>") && !s.contains("<https://evil"), "{s}");
    assert!(s.contains("&lt;!channel&gt;"), "{s}");
    let blocks = waiting.body["blocks"].as_array().unwrap();
    let button = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    let review = button["elements"][0]["url"].as_str().unwrap();
    let token = Links::new(&app.origin, Secret::new(LINK_SECRET)).token("acme", "d_wait");
    assert_eq!(review, format!("{}/a/{token}", app.origin));
    for b in blocks {
        assert_ne!(b["type"], "rich_text");
    }
    // In email: the subject says what waits and until when; the link is ours.
    let mail = mails.iter().find(|m| m.subject.starts_with("Approval needed")).expect("the approval email");
    assert_eq!(mail.to, "ops@acme.example");
    assert!(
        mail.subject.contains("payment on card_1, 12.00 USD until ") && mail.subject.ends_with(" UTC"),
        "{}",
        mail.subject
    );
    let text = mail.part("text/plain").unwrap();
    let html = mail.part("text/html").unwrap();
    assert!(text.contains(&format!("Review: {review}")), "{text}");
    assert!(!text.contains("https://evil") && !html.contains("https://evil"), "defanged: {text}");
    assert!(html.contains("&lt;!channel&gt;") && !html.contains("<https://evil"), "{html}");
    assert_eq!(html.matches("href=").count(), 1, "{html}");
    assert!(mail.message_id.ends_with("@notify.spendsignoff>"), "{}", mail.message_id);

    // The same event read again — appended a second time (past JetStream's
    // dedup), and the whole log replayed by a restarted service — sends
    // nothing twice.
    log.append(Append::new(subject_of(&prefix, &alert), format!("again-{}", alert.id), alert.to_bytes()))
        .await
        .unwrap();
    app.stop().await;
    let again = start(&log, &prefix, NOTIFY_ALL, config(Some(&slack.url), Some(smtp.port), Duration::from_secs(60))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slack.posts().len(), 9, "nothing sent twice");
    assert_eq!(smtp.messages().len(), 8, "nothing mailed twice");
    assert_eq!(taken(&log).await, expected);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_spend_md_does_not_subscribe_to_is_not_delivered() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log = log_of(&streams).await;
    let smtp = SmtpServer::start();
    let md = "notifications:\n  email: ops@acme.example\n  events: [security.alert]\n";
    let app = start(&log, &prefix, md, config(None, Some(smtp.port), Duration::from_secs(60))).await;
    append_all(
        log.as_ref(),
        &prefix,
        vec![
            payment("d_1", 300, "credits"),
            decided("acme", "d_1", Outcome::Deny),
            policy(
                "limit/envelope".into(),
                EventData::LimitApproaching(LimitApproaching {
                    account_id: "card_1".into(),
                    draft_id: "d_1".into(),
                    limit: "daily_limit".into(),
                    used: usd(420),
                    value: usd(500),
                }),
            ),
            by(
                "spendsignoff/policy",
                Actor::service("policy"),
                "security_policy/x".into(),
                EventData::SecurityAlert(SecurityAlert {
                    reason: "event.misplaced".into(),
                    key_id: None,
                    address: None,
                    detail: "a forged approval".into(),
                }),
            ),
        ],
    )
    .await;
    smtp.wait_for(1, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{:?}", mails.iter().map(|m| &m.subject).collect::<Vec<_>>());
    // Defanged like everything in a mail (no client links `event.misplaced`).
    assert_eq!(mails[0].subject, "Security alert: event[.]misplaced");
    assert_eq!(taken(&log).await, vec![("security.alert".to_string(), "email".to_string())]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_escalates_once_to_the_next_channel_and_is_extended() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log = log_of(&streams).await;
    let slack = Webhook::start().await;
    let smtp = SmtpServer::start();
    let md = "\
approval:
  approval_channels: [email, slack]
  timeout_action: escalate
  timeout_minutes: 1
notifications:
  slack: approvals
";
    // The app's origin is known once it listens; links only need the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let token = Links::new(&origin, Secret::new(LINK_SECRET)).token("acme", "d_esc");
    let proposed = payment("d_esc", 2_000, "credits");
    let hash = spend_draft::event_hash(&proposed.to_bytes());
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut humans = Approvers::new("acme", &["ada"]);
    let mut events = humans.trust();
    events.extend([
        proposed,
        decided("acme", "d_esc", Outcome::RequireApproval),
        // The request, as the approval service opened it: it escalates.
        by(
            "spendsignoff/approval",
            Actor::service("approval"),
            "approval/d_esc".into(),
            EventData::ApprovalRequested(ApprovalRequested {
                draft_id: "d_esc".into(),
                kind: "draft".into(),
                approved_hash: hash,
                policy_version: "sha256:test".into(),
                required: 1,
                expires_at: expires.clone(),
                timeout_action: "escalate".into(),
                link_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())),
            }),
        ),
    ]);
    append_all(log.as_ref(), &prefix, events).await;
    let mut c = config(Some(&slack.url), Some(smtp.port), Duration::from_secs(60));
    c.app.listen = format!("127.0.0.1:{port}");
    let app = start(&log, &prefix, md, c).await;

    // The first channel: email, to the organisation's trusted approver.
    let mails = smtp.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ada@acme.example");
    assert!(mails[0].part("text/plain").unwrap().contains(&format!("{origin}/a/{token}")));
    assert!(slack.posts().is_empty(), "not the second channel yet");
    // Nobody answers: the next channel, and the request is extended once.
    let posts = slack.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["text"], "Still waiting: approval needed");
    let s = posts[0].body.to_string();
    assert!(s.contains(&format!("{origin}/a/{token}")), "{s}");
    let on_log = on_log(log.as_ref()).await;
    let escalated: Vec<&serde_json::Value> = on_log.iter().map(|(_, e)| e).filter(|e| e["type"] == "spend.approval.escalated.v1").collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0]["data"]["previous_expires_at"], expires.as_str());
    assert_eq!(escalated[0]["data"]["channel"], "slack");
    assert!(!on_log.iter().any(|(_, e)| e["type"] == "spend.approval.expired.v1"), "extended, not expired");
    assert_eq!(smtp.messages().len(), 1, "the first channel is not notified again");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_channel_fails_on_the_record_and_holds_up_neither_the_approval_nor_email() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log = log_of(&streams).await;
    let smtp = SmtpServer::start();
    // A webhook nobody answers on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/services/T0/B0/DEADSECRET42", l.local_addr().unwrap())
    };
    let app = start(&log, &prefix, NOTIFY_ALL, config(Some(&dead), Some(smtp.port), Duration::from_secs(3))).await;
    append_all(
        log.as_ref(),
        &prefix,
        vec![payment("d_1", 1_500, "credits"), decided("acme", "d_1", Outcome::RequireApproval)],
    )
    .await;
    let mails = smtp.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1, "email is not held up by Slack");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let n = notifications(&log).await;
        if let Some((_, d)) = n.into_iter().find(|(t, _)| t == "spend.notification.failed.v1") {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no failure recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed["channel"], "slack");
    assert_eq!(failed["target"], "alerts");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.starts_with("gave up after "), "{reason}");
    let everything = on_log(log.as_ref()).await;
    assert!(
        everything.iter().any(|(_, e)| e["type"] == "spend.approval.requested.v1"),
        "the approval request is recorded regardless"
    );
    let all = serde_json::to_string(&everything).unwrap();
    assert!(!all.contains("DEADSECRET42"), "a webhook URL is never recorded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_rollback_request_is_opened_and_its_approvers_emailed_but_not_one_made_in_the_app() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let log = log_of(&streams).await;
    let smtp = SmtpServer::start();
    let md = "approval:\n  approval_channels: [email]\n";
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let expires = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let operators = spend_testkit::events::rollback_requested("acme", "rb_cli", &["d_1", "d_2"], &expires);
    let hash = spend_draft::event_hash(&operators.to_bytes());
    // One asked for in the app: its human approves it there and then.
    let mut in_app = spend_testkit::events::rollback_requested("acme", "rb_app", &["d_3"], &expires);
    in_app.subject = "approval/rb_app".into();
    let mut events = Approvers::new("acme", &["ada"]).trust();
    events.extend([operators, in_app]);
    append_all(log.as_ref(), &prefix, events).await;
    let mut c = config(None, Some(smtp.port), Duration::from_secs(60));
    c.app.listen = format!("127.0.0.1:{port}");
    let app = start(&log, &prefix, md, c).await;

    let mails = smtp.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ada@acme.example");
    let text = mails[0].part("text/plain").unwrap();
    let token = Links::new(&origin, Secret::new(LINK_SECRET)).token("acme", "rb_cli");
    assert!(text.contains("Rollback needs approval") && text.contains("d_1, d_2"), "{text}");
    assert!(text.contains(&format!("{origin}/a/{token}")), "{text}");
    let opened: Vec<serde_json::Value> = on_log(log.as_ref())
        .await
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e["type"] == "spend.approval.requested.v1")
        .collect();
    assert_eq!(opened.len(), 2, "one request for each rollback: {opened:?}");
    let cli = opened.iter().find(|e| e["data"]["draft_id"] == "rb_cli").unwrap();
    assert_eq!(cli["data"]["kind"], "rollback");
    assert_eq!(cli["data"]["approved_hash"], hash.as_str(), "it approves the request's exact bytes");
    assert_eq!(cli["data"]["expires_at"], expires.as_str(), "and expires when the request says");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), 1, "nobody is emailed about a rollback asked for in the app");
    app.stop().await;
}
