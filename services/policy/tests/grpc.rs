//! `spendsignoff.v1.Policy` over gRPC: validation with line numbers, the
//! version in force (bootstrap, then the one a human approved by its exact
//! hash; a forged approval, an approval of other bytes and a proposal
//! reusing an id change nothing), and dry-run evaluation naming the
//! version.

use std::sync::Arc;
use std::time::Duration;

use spend_core::events::{ApprovalGranted, EventData, PolicyProposed};
use spend_core::{Actor, Envelope};
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{Append, EventLog};
use spend_policy_service::decide::Bootstrap;
use spend_policy_service::{Application, Deps, PolicyConfig};
use spend_proto::v1 as pb;
use spend_proto::v1::policy_client::PolicyClient;

const BOOTSTRAP: &str = "spend:\n  per_transaction: 50 USD\n  daily_limit: 100 USD\n";

/// Appends an envelope exactly as given (a forger's freedom); returns its
/// bytes.
async fn append(log: &Arc<dyn EventLog>, subject: &str, actor: Actor, source: &str, env_subject: &str, data: EventData) -> Vec<u8> {
    let env = Envelope::new(source, "acme", actor, env_subject, data);
    let bytes = env.to_bytes();
    log.append(Append::new(subject, env.id.to_string(), bytes.clone())).await.unwrap();
    bytes
}

fn config(token: Option<&str>) -> PolicyConfig {
    PolicyConfig {
        listen: "127.0.0.1:0".into(),
        consumer: "policy".into(),
        callers: token.map(|gateway| spend_proto::internal::Callers::from_digests([("gateway", spend_proto::internal::digest(gateway).as_str())]).unwrap()),
    }
}

async fn version_of(client: &mut PolicyClient<tonic::transport::Channel>) -> pb::PolicyVersion {
    client
        .get_active_policy(pb::GetActivePolicyRequest { org: "acme".into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_service_validates_names_the_version_in_force_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let bootstrap = Bootstrap {
        policy: Arc::new(spend_policy::spendmd::parse(BOOTSTRAP).unwrap()),
        source: BOOTSTRAP.into(),
        approved_by_human: false,
        passkey: spend_draft::proof::RelyingParty::default_app(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Application::build(
        config(None),
        Deps {
            log: log.clone(),
            prefix: "spend.evt".into(),
            bootstrap,
        },
    )
    .await
    .unwrap();
    let addr = app.local_addr();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let mut client = PolicyClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let first = loop {
        match client.get_active_policy(pb::GetActivePolicyRequest { org: "acme".into() }).await {
            Ok(v) => break v.into_inner(),
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "the policy service never answered: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(first.version, spend_policy::spendmd::version_of(BOOTSTRAP));
    assert!(!first.approved_by_human);
    assert_eq!(first.source, BOOTSTRAP);

    // Validation: every error with its line and field.
    let errors = client
        .validate_policy(pb::ValidatePolicyRequest {
            source: "spend:\n  per_transaction: fifty\n  daily_limit: 10 USD\n  monthly_limit: -3 USD\n".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .errors;
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.line == 2 && e.field == "spend.per_transaction"), "{errors:?}");
    assert!(errors.iter().any(|e| e.line == 4 && e.field == "spend.monthly_limit"), "{errors:?}");
    let ok = client
        .validate_policy(pb::ValidatePolicyRequest { source: BOOTSTRAP.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.errors.is_empty());

    // Dry-run evaluation against the bootstrap version.
    let evaluate = |minor: i64| pb::EvaluateRequest {
        org: "acme".into(),
        draft_id: "d1".into(),
        account_id: "card_1".into(),
        spend_impact: Some(pb::Money {
            minor_units: minor,
            currency: "USD".into(),
        }),
        merchant: "openai.com".into(),
        ..Default::default()
    };
    let denied = client.evaluate(evaluate(6_000)).await.unwrap().into_inner();
    assert_eq!(denied.outcome, pb::policy_decision::Outcome::Deny as i32);
    assert!(denied.reasons.iter().any(|r| r.code == "limit.per_transaction"), "{denied:?}");
    assert_eq!(denied.policy_version, first.version);
    let missing = client.evaluate(pb::EvaluateRequest::default()).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);

    // A new version, proposed; a forged approval; then the real one.
    let source = "spend:\n  per_transaction: 80 USD\n  daily_limit: 100 USD\napproval:\n  auto_approve_under: 70 USD\n";
    let version = spend_policy::spendmd::version_of(source);
    let proposal = EventData::PolicyProposed(PolicyProposed {
        draft_id: "p1".into(),
        version: version.clone(),
        source: source.into(),
        previous_version: Some(first.version.clone()),
        enables_auto_approve: true,
    });
    let proposed = append(&log, "spend.evt.acme.policy.p1", Actor::human("ops"), "spendsignoff/cli", "policy/p1", proposal).await;
    let hash = spend_draft::event_hash(&proposed);
    // A second proposal reusing the id: the first proposal of an id wins.
    let attacker = "spend:\n  per_transaction: 50000 USD\napproval:\n  auto_approve_under: 49000 USD\n";
    append(
        &log,
        "spend.evt.acme.policy.p1",
        Actor::human("ops"),
        "spendsignoff/cli",
        "policy/p1",
        EventData::PolicyProposed(PolicyProposed {
            draft_id: "p1".into(),
            version: spend_policy::spendmd::version_of(attacker),
            source: attacker.into(),
            previous_version: None,
            enables_auto_approve: true,
        }),
    )
    .await;
    let approval = |step, approved_hash: &str| {
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: "p1".into(),
            approval_id: format!("a{step}"),
            step,
            credential_id: "passkey-1".into(),
            approver_id: "u_alice".into(),
            approved_hash: approved_hash.into(),
            proof: spend_testkit::events::bogus_proof("p1", "u_alice", approved_hash),
        })
    };
    // The organisation's approvers, trusted through the registry's events.
    let mut humans = spend_testkit::events::Approvers::new("acme", &["alice", "bob"]);
    spend_testkit::events::append_all(&*log, "spend.evt", humans.trust()).await;
    // Forgeries: on a draft subject by an agent; on the approval subject but
    // naming other bytes.
    append(
        &log,
        "spend.evt.acme.draft.p1",
        Actor::agent("k1"),
        "spendsignoff/approval",
        "draft/p1",
        approval(1, &hash),
    )
    .await;
    append(
        &log,
        "spend.evt.acme.approval.p1",
        Actor::human("alice@example.com"),
        "spendsignoff/approval",
        "approval/p1",
        approval(1, &"0".repeat(64)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(version_of(&mut client).await.version, first.version, "a forgery changes nothing");
    // Enabling a mandate loosens: two approvers, one an admin, each
    // signing the request's expiry.
    let mut approvals = humans.approved_policy("p1", &["alice", "bob"], &hash, &version);
    let bob = approvals.pop().unwrap();
    spend_testkit::events::append_all(&*log, "spend.evt", approvals).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(version_of(&mut client).await.version, first.version, "one approver cannot enable a mandate");
    spend_testkit::events::append_all(&*log, "spend.evt", vec![bob]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let now = loop {
        let v = version_of(&mut client).await;
        if v.version == version || tokio::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(now.version, version);
    assert!(now.approved_by_human);
    let before = log.info().await.unwrap().last_seq;
    let approved = client.evaluate(evaluate(6_000)).await.unwrap().into_inner();
    assert_eq!(approved.outcome, pb::policy_decision::Outcome::AutoApprove as i32, "{approved:?}");
    assert_eq!(approved.policy_version, version);
    // Nothing was recorded by the dry run.
    assert_eq!(log.info().await.unwrap().last_seq, before);
    // Each forgery and the reused id were audited, once each.
    let mut reasons = Vec::new();
    for seq in 1..=before {
        let m = log.subscribe(spend_eventlog::StartAt::Sequence(seq)).await.unwrap();
        use futures::StreamExt as _;
        let m = Box::pin(m).next().await.unwrap().unwrap();
        if m.subject.starts_with("spend.evt.acme.security_policy.") {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            reasons.push(v["data"]["reason"].as_str().unwrap().to_string());
        }
    }
    reasons.sort();
    assert_eq!(reasons, ["approval.forged", "event.misplaced", "policy.proposal_reused"], "{reasons:?}");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "spendsignoff.v1.Policy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_callers_configured_only_a_callers_own_credential_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
    let bootstrap = Bootstrap {
        policy: Arc::new(spend_policy::spendmd::parse(BOOTSTRAP).unwrap()),
        source: BOOTSTRAP.into(),
        approved_by_human: false,
        passkey: spend_draft::proof::RelyingParty::default_app(),
    };
    let deps = || Deps {
        log: log.clone(),
        prefix: "spend.evt".into(),
        bootstrap: bootstrap.clone(),
    };
    // Beyond loopback without callers: refused at start.
    let open = PolicyConfig {
        listen: "0.0.0.0:0".into(),
        ..config(None)
    };
    let refused = Application::build(open, deps()).await.err().expect("refused");
    assert!(refused.to_string().contains("SPEND__INTERNAL__CALLERS__GATEWAY"), "{refused}");
    let app = Application::build(config(Some("internal-s3cret")), deps()).await.unwrap();
    let addr = app.local_addr();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let mut anonymous = PolicyClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let e = loop {
        match anonymous.get_active_policy(pb::GetActivePolicyRequest { org: "acme".into() }).await {
            Err(e) if e.code() == tonic::Code::Unavailable && tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // The gateway's client sends its own credential: a draft that does not
    // exist is a NotFound, past the guard.
    let client = spend_policy_service::grpc::PolicyClient::connect_lazy(&format!("http://{addr}"), Some("internal-s3cret")).unwrap();
    use spend_policy::decide::Decide as _;
    assert!(matches!(
        client.decide("acme", "nope").await,
        Err(spend_policy::decide::DecideError::NotFound(_))
    ));
    server.abort();
}
