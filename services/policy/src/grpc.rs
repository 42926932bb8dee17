//! `spendsignoff.v1.Policy` over gRPC (with health and reflection): what
//! other services and operators ask of the policy core without going
//! through the agents' gateway.
//!
//! - `ValidatePolicy`: every error of a SPEND.md text, with line and field;
//! - `GetActivePolicy`: the version in force for an organisation (the last
//!   one a human approved, else the bootstrap file), with its text;
//! - `Evaluate`: a dry run of a payment draft against that version and the
//!   account's committed spend — nothing is recorded or reserved (drafts
//!   are recorded through the gateway, where they are decided).
//!
//! An internal service, like the ledger's gRPC: it answers any caller, so
//! run it on the cluster network only; agents never reach it.

use std::future::Future;
use std::sync::Arc;

use spend_core::events::{EventData, Outcome};
use spend_core::{Money, RawEnvelope};
use spend_eventlog::EventLog;
use spend_proto::v1 as pb;
use spend_proto::v1::policy_server::{Policy, PolicyServer};
use tokio::sync::RwLock;
use tonic::{Request, Response, Status};

use crate::evaluate::{Change, Draft, Windows, evaluate};
use crate::service::PolicyService;
use crate::spendmd::{self, SpendMd};
use crate::versions::{Versions, is_recorded_approval};

/// The SPEND.md a process starts with, in force until a human approves a
/// version of an organisation's own.
pub struct Bootstrap {
    pub policy: Arc<SpendMd>,
    pub source: String,
    pub approved_by_human: bool,
}

pub struct PolicyGrpc {
    bootstrap: Bootstrap,
    versions: Arc<RwLock<Versions>>,
    service: PolicyService,
}

impl PolicyGrpc {
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>, bootstrap: Bootstrap, versions: Arc<RwLock<Versions>>) -> Self {
        Self {
            bootstrap,
            versions,
            service: PolicyService::new(log, prefix),
        }
    }

    async fn active(&self, org: &str) -> (Arc<SpendMd>, bool, String) {
        match self.versions.read().await.active(org) {
            Some(a) => (a.policy.clone(), true, a.proposal.source.clone()),
            None => (self.bootstrap.policy.clone(), self.bootstrap.approved_by_human, self.bootstrap.source.clone()),
        }
    }
}

fn outcome_pb(o: &Outcome) -> pb::policy_decision::Outcome {
    match o {
        Outcome::Deny => pb::policy_decision::Outcome::Deny,
        Outcome::AutoApprove => pb::policy_decision::Outcome::AutoApprove,
        Outcome::RequireApproval => pb::policy_decision::Outcome::RequireApproval,
        Outcome::RequireDualApproval => pb::policy_decision::Outcome::RequireDualApproval,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl Policy for PolicyGrpc {
    async fn evaluate(&self, r: Request<pb::EvaluateRequest>) -> Result<Response<pb::PolicyDecision>, Status> {
        let r = r.into_inner();
        if r.org.is_empty() || r.account_id.is_empty() {
            return Err(Status::invalid_argument("org and account_id are required"));
        }
        let impact = r.spend_impact.ok_or_else(|| Status::invalid_argument("spend_impact is required"))?;
        let impact = Money::new(impact.minor_units, &impact.currency).map_err(|e| Status::invalid_argument(format!("spend_impact: {e}")))?;
        let (policy, approved, _) = self.active(&r.org).await;
        let (budget, _) = self
            .service
            .budget(&r.org, &r.account_id)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let now = chrono::Utc::now();
        let windows = Windows {
            last_24h: budget.last_24h(now),
            this_month: budget.this_month(now),
            campaign_last_changed: None,
        };
        let draft = Draft {
            account_id: r.account_id,
            change: Change::Payment {
                merchant: r.merchant,
                category: non_empty(r.category),
                country: non_empty(r.country),
                url: non_empty(r.url),
            },
            spend_impact: impact,
        };
        let d = evaluate(&policy, approved, &windows, &draft, now);
        Ok(Response::new(pb::PolicyDecision {
            outcome: outcome_pb(&d.outcome) as i32,
            reasons: d
                .reasons
                .into_iter()
                .map(|x| pb::Reason {
                    code: x.code,
                    message: x.message,
                })
                .collect(),
            policy_version: policy.version.clone(),
        }))
    }

    async fn get_active_policy(&self, r: Request<pb::GetActivePolicyRequest>) -> Result<Response<pb::PolicyVersion>, Status> {
        let org = r.into_inner().org;
        if org.is_empty() {
            return Err(Status::invalid_argument("org is required"));
        }
        let (policy, approved, source) = self.active(&org).await;
        Ok(Response::new(pb::PolicyVersion {
            org,
            version: policy.version.clone(),
            source,
            approved_by_human: approved,
        }))
    }

    async fn validate_policy(&self, r: Request<pb::ValidatePolicyRequest>) -> Result<Response<pb::ValidatePolicyResponse>, Status> {
        let errors = match spendmd::parse(&r.into_inner().source) {
            Ok(_) => vec![],
            Err(errors) => errors
                .into_iter()
                .map(|e| pb::PolicyError {
                    line: e.line as u32,
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        };
        Ok(Response::new(pb::ValidatePolicyResponse { errors }))
    }
}

/// Follows the log into `versions`: proposals, and the approvals the
/// approval service recorded for a human (forgeries are ignored here; the
/// gateway audits them).
pub async fn follow_versions(log: Arc<dyn EventLog>, prefix: String, versions: Arc<RwLock<Versions>>) {
    spend_eventlog::follow(log, 1, |m| {
        let (prefix, versions) = (prefix.clone(), versions.clone());
        async move {
            let Ok(env) = RawEnvelope::parse(&m.payload) else { return };
            let Some((aggregate, _)) = spend_core::subject::split_aggregate(&m.subject, &prefix, &env.org) else {
                return;
            };
            match EventData::from_json(&env.event_type, env.data.get()) {
                Ok(EventData::PolicyProposed(p)) => versions.write().await.proposed(&env.org, &p),
                Ok(EventData::ApprovalGranted(a)) if is_recorded_approval(env.actor.kind, &env.source, aggregate) => {
                    versions.write().await.approved(&env.org, &a.draft_id)
                }
                _ => {}
            }
        }
    })
    .await
}

/// Serves the Policy service with health and reflection on `listener`
/// until `shutdown`, following the log for versions meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    log: Arc<dyn EventLog>,
    prefix: String,
    bootstrap: Bootstrap,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let versions = Arc::new(RwLock::new(Versions::default()));
    let follower = tokio::spawn(follow_versions(log.clone(), prefix.clone(), versions.clone()));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PolicyServer<PolicyGrpc>>().await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(spend_proto::reflection().build_v1()?)
        .add_service(spend_proto::reflection().build_v1alpha()?)
        .add_service(PolicyServer::new(PolicyGrpc::new(log, prefix, bootstrap, versions)))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await?;
    follower.abort();
    Ok(())
}
