//! `spendsignoff.v1.Policy` over gRPC: validation with line numbers, the
//! version in force (bootstrap, then the one a human approved; a forged
//! approval changes nothing), and dry-run evaluation naming the version.

use std::sync::Arc;
use std::time::Duration;

use spend_core::events::{ApprovalGranted, EventData, PolicyProposed};
use spend_core::{Actor, Envelope};
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{Append, EventLog};
use spend_policy::grpc::{Bootstrap, serve};
use spend_proto::v1 as pb;
use spend_proto::v1::policy_client::PolicyClient;

const BOOTSTRAP: &str = "spend:\n  per_transaction: 50 USD\n  daily_limit: 100 USD\n";

async fn append(log: &Arc<dyn EventLog>, subject: &str, actor: Actor, source: &str, env_subject: &str, data: EventData) {
    let env = Envelope::new(source, "acme", actor, env_subject, data);
    log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await.unwrap();
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bootstrap = Bootstrap {
        policy: Arc::new(spend_policy::spendmd::parse(BOOTSTRAP).unwrap()),
        source: BOOTSTRAP.into(),
        approved_by_human: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, log.clone(), "spend.evt".into(), bootstrap, async move {
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
    append(&log, "spend.evt.acme.draft.p1", Actor::human("ops"), "spendsignoff/cli", "draft/p1", proposal).await;
    let approval = |step| {
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: "p1".into(),
            approval_id: format!("a{step}"),
            step,
            credential_id: "passkey-1".into(),
        })
    };
    append(
        &log,
        "spend.evt.acme.draft.p1",
        Actor::agent("k1"),
        "spendsignoff/approval",
        "draft/p1",
        approval(1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(version_of(&mut client).await.version, first.version, "a forgery changes nothing");
    append(
        &log,
        "spend.evt.acme.approval.p1",
        Actor::human("alice@example.com"),
        "spendsignoff/approval",
        "approval/p1",
        approval(2),
    )
    .await;
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
    let approved = client.evaluate(evaluate(6_000)).await.unwrap().into_inner();
    assert_eq!(approved.outcome, pb::policy_decision::Outcome::AutoApprove as i32, "{approved:?}");
    assert_eq!(approved.policy_version, version);
    // Nothing was recorded by the dry runs.
    assert_eq!(log.info().await.unwrap().last_seq, 3);

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
