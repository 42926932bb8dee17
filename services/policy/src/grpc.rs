//! `spendsignoff.v1.Policy` over gRPC (with health and reflection): what
//! other services and operators ask of the policy core without going
//! through the agents' gateway.
//!
//! - `Decide`: the decision of a draft the gateway recorded ([`crate::decide`]);
//! - `ValidatePolicy`: every error of a SPEND.md text, with line and field;
//! - `GetActivePolicy`: the version in force for an organisation (the last
//!   one a human approved, else the bootstrap file), with its text;
//! - `Evaluate`: a dry run of a payment draft against that version and the
//!   policy's envelope — nothing is recorded or committed.
//!
//! An internal service, like the ledger's gRPC: it answers any caller, so
//! run it on the cluster network only; agents never reach it.

use std::future::Future;

use async_trait::async_trait;
use spend_core::Money;
use spend_core::events::{DraftChange, Outcome, PolicyEvaluated, Reason};
use spend_policy::decide::{Decide, DecideError};
use spend_policy::envelope::EnvelopeExt;
use spend_policy::evaluate::{Change, Draft, Windows, evaluate};
use spend_policy::spendmd;
use spend_proto::internal::{Caller, Callers, Guard, Rules};
use spend_proto::v1 as pb;
use spend_proto::v1::policy_server::{Policy, PolicyServer};
use tonic::{Request, Response, Status};

use crate::decide::Decider;

pub struct PolicyGrpc {
    decider: Decider,
}

impl PolicyGrpc {
    pub fn new(decider: Decider) -> Self {
        Self { decider }
    }
}

/// The one mapping of [`DecideError`] to a gRPC status.
pub fn decide_status(e: DecideError) -> Status {
    match e {
        DecideError::NotFound(m) => Status::not_found(m),
        DecideError::Invalid(m) => Status::invalid_argument(m),
        DecideError::Contended(m) => Status::aborted(format!("the envelope of {m} is too contended; try again")),
        DecideError::Unavailable(m) => Status::unavailable(m),
    }
}

fn decision_pb(d: PolicyEvaluated) -> pb::PolicyDecision {
    pb::PolicyDecision {
        outcome: outcome_pb(&d.outcome) as i32,
        reasons: d
            .reasons
            .into_iter()
            .map(|x| pb::Reason {
                code: x.code,
                message: x.message,
            })
            .collect(),
        policy_version: d.policy_version,
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
    async fn decide(&self, r: Request<pb::DecideRequest>) -> Result<Response<pb::PolicyDecision>, Status> {
        let r = r.into_inner();
        if r.org.is_empty() || r.draft_id.is_empty() {
            return Err(Status::invalid_argument("org and draft_id are required"));
        }
        let d = self.decider.decide(&r.org, &r.draft_id).await.map_err(decide_status)?;
        Ok(Response::new(decision_pb(d)))
    }

    async fn evaluate(&self, r: Request<pb::EvaluateRequest>) -> Result<Response<pb::PolicyDecision>, Status> {
        let r = r.into_inner();
        if r.org.is_empty() || r.account_id.is_empty() {
            return Err(Status::invalid_argument("org and account_id are required"));
        }
        let impact = r.spend_impact.ok_or_else(|| Status::invalid_argument("spend_impact is required"))?;
        let impact = Money::new(impact.minor_units, &impact.currency).map_err(|e| Status::invalid_argument(format!("spend_impact: {e}")))?;
        let (policy, approved, _) = self.decider.state().active(&r.org).await;
        let (envelope, _) = self.decider.envelope(&r.org).await.map_err(decide_status)?;
        let now = chrono::Utc::now();
        let change = DraftChange::Payment {
            amount: impact.clone(),
            merchant: r.merchant.clone(),
            category: non_empty(r.category.clone()),
            country: non_empty(r.country.clone()),
            url: non_empty(r.url.clone()),
            https: r.https,
            card_id: None,
            stated_category: None,
            stated_country: None,
        };
        let windows = Windows {
            last_24h: envelope.daily_committed(now),
            this_month: envelope.month_committed(now),
            later_months: envelope.later_months_committed(now),
            campaign_last_changed: None,
        };
        let draft = Draft {
            account_id: r.account_id,
            change: Change::from(&change),
            spend_impact: impact.clone(),
            counted: impact.clone(),
            month_counted: impact.clone(),
            later_months_counted: Money::new(0, &impact.currency).map_err(|e| Status::invalid_argument(format!("spend_impact: {e}")))?,
        };
        let d = evaluate(&policy, approved, &windows, &draft, now);
        Ok(Response::new(decision_pb(PolicyEvaluated {
            draft_id: r.draft_id,
            outcome: d.outcome,
            reasons: d.reasons,
            policy_version: policy.version.clone(),
        })))
    }

    async fn get_active_policy(&self, r: Request<pb::GetActivePolicyRequest>) -> Result<Response<pb::PolicyVersion>, Status> {
        let org = r.into_inner().org;
        if org.is_empty() {
            return Err(Status::invalid_argument("org is required"));
        }
        let (policy, approved, source) = self.decider.state().active(&org).await;
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

/// `Policy.Decide` over gRPC, for a gateway that runs apart from the
/// policy service (`gateway.policy_url`).
pub struct PolicyClient {
    client:
        spend_proto::v1::policy_client::PolicyClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, spend_proto::internal::Attach>>,
}

impl PolicyClient {
    /// A lazy connection to `url` (the gateway starts before the policy
    /// service is reachable; calls fail with `Unavailable` until it is).
    /// `token`: the internal token the policy service requires, if any.
    pub fn connect_lazy(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
            .timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        let attach = spend_proto::internal::Attach::new(token).map_err(anyhow::Error::msg)?;
        Ok(Self {
            client: spend_proto::v1::policy_client::PolicyClient::with_interceptor(channel, attach),
        })
    }
}

#[async_trait]
impl Decide for PolicyClient {
    async fn decide(&self, org: &str, draft_id: &str) -> Result<PolicyEvaluated, DecideError> {
        let r = self
            .client
            .clone()
            .decide(pb::DecideRequest {
                org: org.into(),
                draft_id: draft_id.into(),
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => DecideError::NotFound(s.message().into()),
                tonic::Code::InvalidArgument => DecideError::Invalid(s.message().into()),
                tonic::Code::Aborted => DecideError::Contended(org.into()),
                _ => DecideError::Unavailable(format!("policy service: {}", s.message())),
            })?
            .into_inner();
        let outcome = match pb::policy_decision::Outcome::try_from(r.outcome) {
            Ok(pb::policy_decision::Outcome::Deny) => Outcome::Deny,
            Ok(pb::policy_decision::Outcome::AutoApprove) => Outcome::AutoApprove,
            Ok(pb::policy_decision::Outcome::RequireApproval) => Outcome::RequireApproval,
            Ok(pb::policy_decision::Outcome::RequireDualApproval) => Outcome::RequireDualApproval,
            _ => return Err(DecideError::Unavailable(format!("policy service answered outcome {}", r.outcome))),
        };
        Ok(PolicyEvaluated {
            draft_id: draft_id.into(),
            outcome,
            reasons: r
                .reasons
                .into_iter()
                .map(|x| Reason {
                    code: x.code,
                    message: x.message,
                })
                .collect(),
            policy_version: r.policy_version,
        })
    }
}

/// Serves the Policy service with health and reflection on `listener`
/// until `shutdown` (see [`crate::Application`], which calls it): follows
/// the log for versions, and decides drafts left undecided through the
/// durable consumer `consumer`. On shutdown it drains in order: the gRPC
/// server stops accepting and finishes the calls in flight, the consumer
/// finishes and acknowledges its batch, and the follower applies the
/// message in hand.
///
/// With `token`, only callers that send it are served (see
/// [`spend_proto::internal`]); without one it never listens beyond
/// loopback.
/// Who may call each RPC (docs/architecture.md lists them): decisions
/// are asked for by the gateway alone; evaluations and the policy in force
/// also answer the operator.
pub const RULES: Rules = &[
    ("Decide", &[Caller::Gateway]),
    ("Evaluate", &[Caller::Gateway, Caller::Operator]),
    ("GetActivePolicy", &[Caller::Gateway, Caller::Operator]),
    ("ValidatePolicy", &[Caller::Gateway, Caller::Operator]),
];

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    decider: Decider,
    consumer: String,
    callers: Option<Callers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    spend_proto::internal::check_exposure("the policy service", listener.local_addr()?, callers.as_ref()).map_err(anyhow::Error::msg)?;
    let alerts = spend_eventlog::alerts::AlertSink::spawn(decider.recorder().clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(crate::decide::follow_until(
        decider.state().clone(),
        decider.recorder().clone(),
        stop_rx.clone(),
    ));
    let undecided = tokio::spawn(crate::decide::decide_undecided(decider.clone(), consumer, stop_rx));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PolicyServer<PolicyGrpc>>().await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(spend_proto::reflection(&["spendsignoff.v1.Policy"]).build_v1()?)
        .add_service(spend_proto::reflection(&["spendsignoff.v1.Policy"]).build_v1alpha()?)
        .add_service(Guard::new(PolicyServer::new(PolicyGrpc::new(decider)), RULES, callers).audited_by(alerts.refuser()))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await?;
    // Drain: the consumer finishes (and acknowledges) the batch in hand,
    // the follower the message in hand.
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = undecided.await {
        tracing::error!(error = %e, "the undecided-drafts consumer failed");
    }
    let _ = follower.await;
    Ok(())
}

#[cfg(test)]
mod rules_tests {
    #[test]
    fn every_rpc_says_who_may_call_it() {
        spend_proto::internal::assert_rules_cover("spendsignoff.v1.Policy", super::RULES);
    }
}
