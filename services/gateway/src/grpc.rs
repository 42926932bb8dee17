//! gRPC `spendsignoff.v1.AgentGateway`: the same capabilities as the MCP
//! tools, as thin adapters over [`crate::ops`]. Served on the gateway's
//! HTTP port (HTTP/2 cleartext), behind the same guard; authentication is
//! the agent API key in `authorization: Bearer ssk_…` metadata. gRPC
//! health is public (for probes); reflection is behind the guard.

use std::sync::Arc;

use spend_platform::grpc::{account_pb, campaign_pb, card_pb, performance_pb, token_health_pb, transaction_pb};
use spend_proto::v1 as pb;
use spend_proto::v1::agent_gateway_server::{AgentGateway, AgentGatewayServer};
use tonic::{Request, Response, Status};

use crate::ops::ConflictKind;
use crate::ops::{self, ChangeRequest, DraftOut, OpError, ProposeRequest};
use crate::{GatewayState, Identity};

impl From<OpError> for Status {
    fn from(e: OpError) -> Self {
        let m = e.to_string();
        match e {
            OpError::Refused(_) => Status::permission_denied(m),
            OpError::Invalid(_) => Status::invalid_argument(m),
            OpError::NotFound(_) => Status::not_found(m),
            OpError::Conflict {
                kind: ConflictKind::EnvelopeContended,
                ..
            } => Status::aborted(m),
            OpError::Conflict {
                kind: ConflictKind::TooManyPending,
                ..
            } => Status::resource_exhausted(m),
            OpError::Conflict {
                kind: ConflictKind::BreakerTripped,
                ..
            } => Status::failed_precondition(m),
            OpError::Unavailable(_) => Status::unavailable(m),
        }
    }
}

pub struct AgentGatewayService {
    state: Arc<GatewayState>,
}

fn who<T>(r: &Request<T>) -> Result<Identity, Status> {
    r.extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("an agent API key is required"))
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// An optional timestamp; one that is set but not a valid time is an
/// error, never taken for "absent".
fn time(field: &str, t: Option<prost_types::Timestamp>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .and_then(|n| chrono::DateTime::from_timestamp(t.seconds, n))
            .ok_or_else(|| Status::invalid_argument(format!("{field}: {}s {}ns is not a valid timestamp", t.seconds, t.nanos)))
    })
    .transpose()
}

fn money_minor(m: Option<pb::Money>, field: &str) -> Result<pb::Money, Status> {
    m.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}

fn draft_pb(d: DraftOut) -> pb::Draft {
    let show = |v: &serde_json::Value| if v.is_null() { String::new() } else { v.to_string() };
    pb::Draft {
        expires_at: d.expires_at.clone().unwrap_or_default(),
        approvals_given: d.approvals_given,
        approvals_required: d.approvals_required,
        draft_id: d.draft_id,
        status: d.status,
        diff: d
            .diff
            .iter()
            .map(|f| pb::FieldDiff {
                path: f.path.clone(),
                before: show(&f.before),
                after: show(&f.after),
            })
            .collect(),
        spend_impact: Some(pb::Money {
            minor_units: d.spend_impact_minor,
            currency: d.currency,
        }),
        decision: d.decision.map(|x| pb::PolicyDecision {
            outcome: match x.outcome.as_str() {
                "deny" => pb::policy_decision::Outcome::Deny,
                "auto_approve" => pb::policy_decision::Outcome::AutoApprove,
                "require_dual_approval" => pb::policy_decision::Outcome::RequireDualApproval,
                _ => pb::policy_decision::Outcome::RequireApproval,
            } as i32,
            reasons: x
                .reasons
                .into_iter()
                .map(|r| pb::Reason {
                    code: r.code,
                    message: r.message,
                })
                .collect(),
            policy_version: x.policy_version,
        }),
    }
}

#[tonic::async_trait]
impl AgentGateway for AgentGatewayService {
    async fn list_accounts(&self, r: Request<pb::ListAccountsRequest>) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let list = self.state.list_accounts(&who(&r)?).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: list.iter().map(account_pb).collect(),
        }))
    }

    async fn list_campaigns(&self, r: Request<pb::ListCampaignsRequest>) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let w = who(&r)?;
        let list = self.state.list_campaigns(&w, &r.get_ref().account_id).await?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: list.iter().map(campaign_pb).collect(),
        }))
    }

    async fn get_performance(&self, r: Request<pb::GetPerformanceRequest>) -> Result<Response<pb::GetPerformanceResponse>, Status> {
        let w = who(&r)?;
        let q = r.into_inner();
        let p = self
            .state
            .get_performance(&w, &q.account_id, opt(&q.campaign_id), time("from", q.from)?, time("to", q.to)?)
            .await?;
        Ok(Response::new(performance_pb(&p)))
    }

    async fn list_cards(&self, r: Request<pb::ListCardsRequest>) -> Result<Response<pb::ListCardsResponse>, Status> {
        let list = self.state.list_cards(&who(&r)?).await?;
        Ok(Response::new(pb::ListCardsResponse {
            cards: list.iter().map(card_pb).collect(),
        }))
    }

    async fn list_transactions(&self, r: Request<pb::ListTransactionsRequest>) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let w = who(&r)?;
        let q = r.into_inner();
        let list = self.state.list_transactions(&w, opt(&q.status), time("from", q.from)?).await?;
        Ok(Response::new(pb::ListTransactionsResponse {
            transactions: list.iter().map(transaction_pb).collect(),
        }))
    }

    /// `subject` narrows the log to one draft: `draft/<draft_id>` or the
    /// bare draft id.
    async fn get_audit_log(&self, r: Request<pb::GetAuditLogRequest>) -> Result<Response<pb::GetAuditLogResponse>, Status> {
        let w = who(&r)?;
        let q = r.into_inner();
        let draft = opt(&q.subject).map(|s| s.strip_prefix("draft/").unwrap_or(s));
        let limit = (q.limit != 0).then_some(q.limit);
        let entries = self.state.get_audit_log(&w, draft, limit).await?;
        Ok(Response::new(pb::GetAuditLogResponse {
            events: entries
                .into_iter()
                .map(|e| {
                    let env = spend_core::RawEnvelope::parse(&e.payload).ok();
                    pb::StoredEvent {
                        index: e.seq.saturating_sub(1),
                        seq: e.seq,
                        subject: e.subject,
                        leaf_hash: ops::leaf_hash(&e.payload),
                        id: env.as_ref().map(|v| v.id.to_string()).unwrap_or_default(),
                        r#type: e.event_type,
                        org: w.org.clone(),
                        time: Some(prost_types::Timestamp {
                            seconds: e.time.timestamp(),
                            nanos: e.time.timestamp_subsec_nanos() as i32,
                        }),
                        payload: e.payload.to_vec(),
                        rejected: false,
                        reject_reason: String::new(),
                    }
                })
                .collect(),
        }))
    }

    async fn check_token_health(&self, r: Request<pb::CheckTokenHealthRequest>) -> Result<Response<pb::CheckTokenHealthResponse>, Status> {
        let who = who(&r)?;
        let account = r.into_inner().account_id;
        let h = self.state.check_token_health(&who, (!account.is_empty()).then_some(account.as_str())).await?;
        Ok(Response::new(token_health_pb(&h)))
    }

    async fn propose_change(&self, r: Request<pb::ProposeChangeRequest>) -> Result<Response<pb::ProposeChangeResponse>, Status> {
        use pb::propose_change_request::Change;
        let w = who(&r)?;
        let q = r.into_inner();
        let change = match q.change {
            Some(Change::Payment(p)) => {
                let amount = money_minor(p.amount, "payment.amount")?;
                ChangeRequest::Payment {
                    amount_minor: amount.minor_units,
                    currency: amount.currency,
                    merchant: p.merchant,
                    card_id: p.card_id,
                    category: opt(&p.category).map(Into::into),
                    country: opt(&p.country).map(Into::into),
                    url: opt(&p.url).map(Into::into),
                }
            }
            Some(Change::Budget(b)) => {
                let m = money_minor(b.new_daily_budget, "budget.new_daily_budget")?;
                ChangeRequest::Budget {
                    campaign_id: b.campaign_id,
                    new_daily_budget_minor: m.minor_units,
                    currency: Some(m.currency),
                }
            }
            Some(Change::Bid(b)) => {
                let m = money_minor(b.new_bid, "bid.new_bid")?;
                ChangeRequest::Bid {
                    campaign_id: b.campaign_id,
                    new_bid_minor: m.minor_units,
                    currency: Some(m.currency),
                }
            }
            Some(Change::Status(s)) => ChangeRequest::Status {
                campaign_id: s.campaign_id,
                new_status: s.new_status,
            },
            None => return Err(Status::invalid_argument("set exactly one of budget, bid, status and payment")),
        };
        let draft = self
            .state
            .propose_change(
                &w,
                ProposeRequest {
                    account_id: q.account_id,
                    rationale: q.rationale,
                    change,
                },
            )
            .await?;
        Ok(Response::new(pb::ProposeChangeResponse { draft: Some(draft_pb(draft)) }))
    }

    async fn get_draft_status(&self, r: Request<pb::GetDraftStatusRequest>) -> Result<Response<pb::Draft>, Status> {
        let w = who(&r)?;
        let d = self.state.get_draft_status(&w, &r.get_ref().draft_id).await?;
        Ok(Response::new(draft_pb(d)))
    }

    async fn list_pending_drafts(&self, r: Request<pb::ListPendingDraftsRequest>) -> Result<Response<pb::ListPendingDraftsResponse>, Status> {
        let w = who(&r)?;
        let list = self.state.list_pending_drafts(&w, opt(&r.get_ref().account_id)).await?;
        Ok(Response::new(pb::ListPendingDraftsResponse {
            drafts: list.into_iter().map(draft_pb).collect(),
        }))
    }
}

/// AgentGateway and reflection, to be put behind the guard.
pub fn guarded(state: Arc<GatewayState>) -> anyhow::Result<axum::Router> {
    let reflection_v1 = spend_proto::reflection(&["spendsignoff.v1.AgentGateway"]).build_v1()?;
    let reflection_v1alpha = spend_proto::reflection(&["spendsignoff.v1.AgentGateway"]).build_v1alpha()?;
    Ok(tonic::service::Routes::new(AgentGatewayServer::new(AgentGatewayService { state }))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router())
}

/// gRPC health, public so that probes need no key.
pub async fn health() -> axum::Router {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<AgentGatewayServer<AgentGatewayService>>().await;
    // Routes of their own (not `into_axum_router`, whose fallback would
    // clash with the gateway's audited one).
    axum::Router::new()
        .route_service("/grpc.health.v1.Health/Check", service.clone())
        .route_service("/grpc.health.v1.Health/Watch", service)
}
