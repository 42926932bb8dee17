//! What one compromised layer can do to notifications, on a real
//! nats-server with k8s/nats/auth.conf, the approval service on its own
//! NATS user and a Slack webhook receiver:
//! - the gateway's, the policy service's and the executor's credentials
//!   cannot write a notification's outcome (the server refuses);
//! - an outcome the gateway writes on a subject of its own is ignored and
//!   audited, and the notice it meant to suppress is delivered;
//! - a flood of alerts from a compromised gateway reaches the channel as
//!   three messages and a digest per window, not one message each;
//! - the approval service's own credentials can write an escalation, but
//!   one of a request that denies on timeout is taken by no reader: no
//!   "still waiting" message, no extension.

use std::sync::Arc;
use std::time::Duration;

use spend_approval::{Application, ApprovalConfig, Deps};
use spend_core::events::{ApprovalEscalated, EventData, NotificationSent, Outcome, SecurityAlert};
use spend_core::{Actor, Envelope, Secret};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{Append, EventLog};
use spend_notify::NotifyConfig;
use spend_notify::plan::{Target, notice_id};
use spend_testkit::authnats::AuthNats;
use spend_testkit::events::{decided, on_log, payment_proposed, subject_of};
use spend_testkit::webhook::Webhook;

async fn put(log: &Arc<dyn EventLog>, env: &Envelope) -> Result<u64, spend_eventlog::LogError> {
    log.append(Append::new(subject_of("spend.evt", env), env.id.to_string(), env.to_bytes()))
        .await
        .map(|a| a.seq)
}

fn alert(n: usize) -> Envelope {
    Envelope::new(
        "spendsignoff/gateway",
        "acme",
        Actor::service("gateway"),
        format!("security_gateway/flood-{n}"),
        EventData::SecurityAlert(SecurityAlert {
            reason: "scope.denied".into(),
            key_id: None,
            address: Some("203.0.113.9".into()),
            detail: format!("attempt {n}"),
        }),
    )
}

fn sent(notice: &str, source: &str, subject: String) -> Envelope {
    Envelope::new(
        source,
        "acme",
        Actor::service("forger"),
        subject,
        EventData::NotificationSent(NotificationSent {
            notice_id: notice.into(),
            channel: "slack".into(),
            target: "alerts".into(),
            tries: 1,
            detail: "HTTP 200".into(),
        }),
    )
}

/// The number a digest's title starts with ("27 more security.alert …").
fn folded(post: &serde_json::Value) -> Option<usize> {
    let t = post["text"].as_str()?;
    t.strip_suffix(" more security.alert notifications")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_hold_against_each_services_own_credentials() {
    let password = || format!("pw{}", spend_credentials::random_hex(16).unwrap());
    let pw: std::collections::BTreeMap<&str, String> = ["gateway", "policy", "approval", "executor", "ledger", "operator", "admin"]
        .into_iter()
        .map(|u| (u, password()))
        .collect();
    let env: Vec<(String, String)> = pw
        .iter()
        .map(|(u, p)| (format!("SPEND_NATS_{}_PASSWORD", u.to_uppercase()), p.clone()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nats = AuthNats::start(&env).await;
    JetStreamLog::connect(nats.config("admin", &pw["admin"], true)).await.unwrap();
    let connect = |user: &'static str| {
        let cfg = nats.config(user, &pw[user], false);
        async move { Arc::new(JetStreamLog::connect(cfg).await.unwrap()) as Arc<dyn EventLog> }
    };
    let (gateway, policy, executor, approval) = (
        connect("gateway").await,
        connect("policy").await,
        connect("executor").await,
        connect("approval").await,
    );

    let slack = Webhook::start().await;
    let mut config = ApprovalConfig::new("127.0.0.1:0");
    config.link_secret = Some(Secret::new("a-test-link-secret-of-at-least-32-characters"));
    let notify = NotifyConfig {
        slack_webhooks: [("alerts".to_string(), Secret::new(slack.url.clone()))].into(),
        flood_window: Duration::from_secs(2),
        ..NotifyConfig::default()
    };
    let md = "approval:\n  notify_on_all: true\n  approval_channels: [slack]\n  timeout_action: deny\nnotifications:\n  slack: alerts\n";
    let app = Application::build(
        config,
        Deps {
            log: approval.clone(),
            prefix: "spend.evt".into(),
            policy: Arc::new(spend_policy::spendmd::parse(md).unwrap()),
            accounts: None,
        },
    )
    .await
    .unwrap();
    // The notifier beside the app, as `spend serve approval` runs it (the
    // app's own relying party: this app has no passkey page of its own).
    let recorder = spend_eventlog::Recorder::new(approval.clone(), "spend.evt", spend_core::authority::Writer::Approval);
    let rp = spend_draft::proof::RelyingParty::new("localhost", app.origin());
    let notifier = spend_notify::Notifier::new(notify, app.links(), recorder, app.bootstrap(), rp).unwrap();
    let app = app.with_companion(notifier.runner(approval.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // 1. Only the approval service writes notification outcomes.
    // (Refused publishes are never acknowledged: try all three at once.)
    let forged = sent(&"0f".repeat(16), "spendsignoff/gateway", format!("notification/{}", "0f".repeat(16)));
    let refused = futures::future::join_all([&gateway, &policy, &executor].map(|log| put(log, &forged))).await;
    let server_log = std::fs::read_to_string(&nats.log_file).unwrap();
    for (user, result) in ["gateway", "policy", "executor"].into_iter().zip(refused) {
        assert!(result.is_err(), "{user} wrote a notification outcome");
        assert!(
            server_log.contains(&format!("Publish Violation - User \"{user}\", Subject \"spend.evt.acme.notification.")),
            "{user}: {server_log}"
        );
    }

    // 2. The gateway "records" the alert it is about to raise as sent, on
    // its own draft subject: ignored and audited; the alert goes out.
    let first = alert(0);
    let notice = notice_id(&first.id.to_string(), &Target::slack("alerts"));
    put(&gateway, &sent(&notice, "spendsignoff/gateway", "draft/cover".into())).await.unwrap();
    put(&gateway, &first).await.unwrap();
    // Two alerts reach Slack: the gateway's, and the approval service's
    // own about the misplaced outcome.
    let posts = slack.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts.iter().all(|p| p.body["text"] == "Security alert"));
    assert!(
        posts.iter().any(|p| p.body.to_string().contains("attempt 0")),
        "the alert the forgery meant to hide"
    );
    assert!(posts.iter().any(|p| p.body.to_string().contains("event.misplaced")), "the forgery, audited");
    let audited = || async {
        on_log(approval.as_ref()).await.into_iter().any(|(s, e)| {
            s.starts_with("spend.evt.acme.security_approval.misplaced-")
                && e["data"]["reason"] == "event.misplaced"
                && e["data"]["detail"].as_str().unwrap_or_default().contains("spend.notification.sent.v1")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !audited().await {
        assert!(std::time::Instant::now() < deadline, "the misplaced outcome is audited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 3. A flood from a compromised gateway: three singly and a digest per
    // window, whatever the count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = slack.posts().len();
    for n in 1..=30 {
        put(&gateway, &alert(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let flood: Vec<serde_json::Value> = slack.posts()[before..].iter().map(|p| p.body.clone()).collect();
    let singles = flood.iter().filter(|p| p["text"] == "Security alert").count();
    let in_digests: usize = flood.iter().filter_map(folded).sum();
    assert_eq!(singles + in_digests, 30, "every alert counted once: {flood:#?}");
    assert!(flood.len() <= 8, "at most two windows' worth of messages, not 30: {}", flood.len());
    assert!(in_digests >= 24, "{in_digests}");

    // 4. The approval service's own credentials: an escalation of a request
    // that denies on timeout. No reader takes it; nothing is sent.
    put(&gateway, &payment_proposed("acme", "d_1", 1_500)).await.unwrap();
    put(&policy, &decided("acme", "d_1", Outcome::RequireApproval)).await.unwrap();
    let before = slack.wait_for(slack.posts().len() + 1, Duration::from_secs(20)).await.len();
    let request = on_log(approval.as_ref())
        .await
        .into_iter()
        .find(|(_, e)| e["type"] == "spend.approval.requested.v1")
        .expect("the request")
        .1;
    assert_eq!(request["data"]["timeout_action"], "deny");
    let escalation = Envelope::new(
        "spendsignoff/approval",
        "acme",
        Actor::service("approval"),
        "approval/d_1",
        EventData::ApprovalEscalated(ApprovalEscalated {
            draft_id: "d_1".into(),
            previous_expires_at: request["data"]["expires_at"].as_str().unwrap().into(),
            expires_at: "2099-01-01T00:00:00Z".into(),
            channel: "slack".into(),
        }),
    );
    put(&approval, &escalation).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = slack.posts();
    assert_eq!(after.len(), before, "no message for an escalation nobody takes: {:#?}", &after[before..]);
    assert!(!after.iter().any(|p| p.body["text"].as_str().unwrap_or_default().starts_with("Still waiting")));

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
