//! The attacks a compromised gateway could make with its own NATS
//! credentials (k8s/nats/auth.conf on a real nats-server, streams and
//! consumers made by `spend nats init`'s admin path): an approval on an
//! approval subject, a stream that republishes onto one, a push consumer
//! delivering onto one, a reply inbox of another user — each refused by the
//! server; an approval written where the gateway may write is ignored by
//! every reader and audited. Then the genuine path still works: a real
//! draft is recorded and decided by the policy service's own user.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Gateway, alerts};
use spend_core::events::{ApprovalGranted, EventData};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::{JetStreamConfig, JetStreamLog};
use spend_eventlog::{Append, EventLog};
use spend_gateway::GatewayConfig;
use spend_testkit::authnats::AuthNats;

fn approval(draft: &str, actor: Actor, subject: &str) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        "acme",
        actor,
        subject,
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: draft.into(),
            approval_id: "forged".into(),
            step: 1,
            credential_id: "none".into(),
            approver_id: "mallory".into(),
            approved_hash: "0".repeat(64),
            proof: spend_testkit::events::bogus_proof(draft, "mallory", &"0".repeat(64)),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_gateways_nats_credentials_cannot_approve_republish_or_create_consumers() {
    // nats-server parses environment values as config values: a password
    // must not start with a digit (see k8s/nats/auth.conf).
    let password = || format!("pw{}", spend_credentials::random_hex(16).unwrap());
    let (gateway_pw, operator_pw, policy_pw, admin_pw, others) = (password(), password(), password(), password(), password());
    let nats = AuthNats::start(&[
        ("SPEND_NATS_GATEWAY_PASSWORD", &gateway_pw),
        ("SPEND_NATS_OPERATOR_PASSWORD", &operator_pw),
        ("SPEND_NATS_POLICY_PASSWORD", &policy_pw),
        ("SPEND_NATS_ADMIN_PASSWORD", &admin_pw),
        ("SPEND_NATS_APPROVAL_PASSWORD", &others),
        ("SPEND_NATS_EXECUTOR_PASSWORD", &others),
        ("SPEND_NATS_LEDGER_PASSWORD", &others),
    ])
    .await;
    // `spend nats init`'s part: the admin creates the stream.
    JetStreamLog::connect(nats.config("admin", &admin_pw, true)).await.unwrap();
    // The gateway logs in with credentials from its config, never from the
    // URL, and may not create anything; a wrong password says so without
    // printing it.
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(nats.config("gateway", &gateway_pw, false)).await.unwrap());
    let wrong = JetStreamLog::connect(JetStreamConfig {
        url: nats.url.replace("nats://", "nats://gateway:wrongpassword@"),
        ..JetStreamConfig::default()
    })
    .await;
    let err = wrong.err().expect("a wrong password is refused").to_string();
    assert!(!err.contains("wrongpassword"), "the password never reaches a message: {err}");
    let operator_log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(nats.config("operator", &operator_pw, false)).await.unwrap());
    let client = async_nats::ConnectOptions::with_user_and_password("gateway".into(), gateway_pw.clone())
        .custom_inbox_prefix("_INBOX_gateway")
        .connect(&nats.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client.clone());

    // 1. On the approval subject: refused by the server.
    let env = approval("d1", Actor::human("mallory"), "approval/d1");
    let refused = log.append(Append::new("spend.evt.acme.approval.d1", env.id.to_string(), env.to_bytes())).await;
    assert!(refused.is_err(), "the gateway's user cannot publish approvals");
    assert!(log.last_on_subject("spend.evt.acme.approval.d1").await.unwrap().is_none(), "nothing stored");
    // 2. A stream that republishes onto the approval subject: no stream create.
    let republish = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "EVIL".into(),
            subjects: vec!["_INBOX_gateway.evil.*".into()],
            republish: Some(async_nats::jetstream::stream::Republish {
                source: ">".into(),
                destination: "spend.evt.acme.approval.d1".into(),
                headers_only: false,
            }),
            ..Default::default()
        })
        .await;
    assert!(republish.is_err(), "a service user cannot create a stream");
    // 3. A push consumer delivering the stream onto an approval subject.
    let stream = js.get_stream("SPEND_EVENTS").await.unwrap();
    let push = stream
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            deliver_subject: "spend.evt.acme.approval.d1".into(),
            ..Default::default()
        })
        .await;
    assert!(push.is_err(), "a service user cannot create a consumer");
    // 4. Nor can it erase history.
    assert!(js.delete_stream("SPEND_EVENTS").await.is_err(), "no stream delete");
    let server_log = std::fs::read_to_string(&nats.log_file).unwrap();
    for violation in [
        "Publish Violation - User \"gateway\", Subject \"spend.evt.acme.approval.d1\"",
        "Publish Violation - User \"gateway\", Subject \"$JS.API.STREAM.CREATE.EVIL\"",
    ] {
        assert!(server_log.contains(violation), "the server records {violation}: {server_log}");
    }
    assert!(
        log.last_on_subject("spend.evt.acme.approval.d1").await.unwrap().is_none(),
        "still nothing on the approval subject"
    );

    // 5. The genuine path: a real draft, decided by the policy service
    // through its own user; a forged approval on the draft subject (which
    // the gateway may write) is ignored and audited.
    let policy_log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(nats.config("policy", &policy_pw, false)).await.unwrap());
    let gw = Gateway::start_full(
        log.clone(),
        &operator_log,
        "spend.evt",
        "spend:\n  per_transaction: 10 USD\n",
        GatewayConfig::new(""),
        Some(policy_log),
    )
    .await;
    let who = gw.identity(&gw.key);
    let draft = gw
        .state
        .propose_change(
            &who,
            spend_gateway::ops::ProposeRequest {
                account_id: "card_1".into(),
                rationale: "x".into(),
                change: spend_gateway::ops::ChangeRequest::Payment {
                    amount_minor: 500,
                    currency: "USD".into(),
                    merchant: "openai.com".into(),
                    card_id: "crd_1".into(),
                    category: None,
                    country: None,
                    url: None,
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(draft.status, "pending_approval", "decided by the policy service: {draft:?}");
    let forged = approval(&draft.draft_id, Actor::human("mallory"), &format!("draft/{}", draft.draft_id));
    log.append(Append::new(
        format!("spend.evt.acme.draft.{}", draft.draft_id),
        forged.id.to_string(),
        forged.to_bytes(),
    ))
    .await
    .unwrap();
    gw.state.caught_up().await.unwrap();
    assert_eq!(gw.state.get_draft_status(&who, &draft.draft_id).await.unwrap().status, "pending_approval");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let all = alerts(&log, 1).await;
        if all
            .iter()
            .any(|a| a["data"]["reason"] == "event.misplaced" && a["data"]["detail"].as_str().unwrap_or("").contains(&draft.draft_id))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the forgery is audited: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
}
