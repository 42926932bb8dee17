//! The MCP server (Streamable HTTP, at `/mcp`): the agent-facing tools.
//! Every call is authenticated by the layer in front of it (an agent API
//! key, see [`crate::credentials`]); each tool then checks the scope it
//! needs, and a refusal is audited as `spend.security.alert.v1`. No tool
//! approves, applies or pushes anything: the tool list itself is the
//! contract.

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use spend_core::Money;
use spend_policy::evaluate::{Change, Draft};
use spend_policy::service::Proposal;

use crate::credentials::AgentScope;
use crate::{GatewayState, Identity};

/// A payment the agent wants to make.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PaymentInput {
    /// Amount in integer minor units (cents for USD).
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. USD.
    pub currency: String,
    /// Merchant domain, e.g. openai.com.
    pub merchant: String,
    pub category: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    pub url: Option<String>,
}

/// A daily budget change on an ad campaign.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct BudgetInput {
    pub campaign_id: String,
    /// The campaign's current daily budget, minor units (as last read).
    pub current_minor: i64,
    /// The proposed daily budget, minor units.
    pub new_minor: i64,
    pub currency: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProposeChangeInput {
    pub account_id: String,
    /// Why the agent proposes this, for the human who approves it.
    pub rationale: String,
    /// Set exactly one of `payment` and `budget`.
    pub payment: Option<PaymentInput>,
    pub budget: Option<BudgetInput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldChange {
    pub path: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReasonOut {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DecisionOut {
    /// deny, auto_approve, require_approval or require_dual_approval.
    pub outcome: String,
    pub reasons: Vec<ReasonOut>,
    /// Content hash of the SPEND.md version that decided.
    pub policy_version: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DraftOut {
    pub draft_id: String,
    /// denied, approved (auto-approved under a standing mandate) or pending_approval.
    pub status: String,
    pub diff: Vec<FieldChange>,
    /// Net increase of committed spend, minor units (negative for a decrease).
    pub spend_impact_minor: i64,
    pub currency: String,
    pub decision: DecisionOut,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DraftStatusInput {
    pub draft_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DraftStatusOut {
    pub draft_id: String,
    /// The type of the draft's latest event.
    pub last_event: String,
    pub status: String,
}

#[derive(Clone)]
pub struct SpendMcp {
    state: Arc<GatewayState>,
    tool_router: ToolRouter<SpendMcp>,
}

fn identity(ctx: &RequestContext<RoleServer>) -> Result<Identity, String> {
    ctx.extensions
        .get::<Parts>()
        .and_then(|p| p.extensions.get::<Identity>())
        .cloned()
        .ok_or_else(|| "not authenticated".to_string())
}

fn outcome_str(o: &spend_core::events::Outcome) -> &'static str {
    use spend_core::events::Outcome::*;
    match o {
        Deny => "deny",
        AutoApprove => "auto_approve",
        RequireApproval => "require_approval",
        RequireDualApproval => "require_dual_approval",
    }
}

#[tool_router]
impl SpendMcp {
    pub fn new(state: Arc<GatewayState>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// Propose a change as a draft: a payment, or an ad campaign's daily
    /// budget. Returns the draft, its full before→after diff, its spend
    /// impact and the policy decision with reasons. Nothing is pushed: a
    /// signed-in human approves, in two steps.
    #[tool(name = "propose_change")]
    async fn propose_change(&self, Parameters(input): Parameters<ProposeChangeInput>, ctx: RequestContext<RoleServer>) -> Result<Json<DraftOut>, String> {
        let who = identity(&ctx)?;
        self.state.require(&who, AgentScope::Draft, "propose_change").await?;
        let money = |minor: i64, cur: &str| Money::new(minor, cur).map_err(|e| e.to_string());
        let (change, impact, diff) = match (input.payment, input.budget) {
            (Some(p), None) => {
                if p.amount_minor <= 0 {
                    return Err("payment.amount_minor must be positive".into());
                }
                let impact = money(p.amount_minor, &p.currency)?;
                let diff = vec![FieldChange {
                    path: format!("payment/{}", p.merchant),
                    before: serde_json::Value::Null,
                    after: serde_json::json!({"amount_minor": p.amount_minor, "currency": p.currency}),
                }];
                (
                    Change::Payment {
                        merchant: p.merchant,
                        category: p.category,
                        country: p.country,
                        url: p.url,
                    },
                    impact,
                    diff,
                )
            }
            (None, Some(b)) => {
                let before = money(b.current_minor, &b.currency)?;
                let after = money(b.new_minor, &b.currency)?;
                let impact = money(b.new_minor - b.current_minor, &b.currency)?;
                let diff = vec![FieldChange {
                    path: format!("campaign/{}/daily_budget", b.campaign_id),
                    before: serde_json::json!({"minor_units": b.current_minor, "currency": b.currency}),
                    after: serde_json::json!({"minor_units": b.new_minor, "currency": b.currency}),
                }];
                (
                    Change::Budget {
                        campaign_id: b.campaign_id,
                        before,
                        after,
                    },
                    impact,
                    diff,
                )
            }
            _ => return Err("set exactly one of `payment` and `budget`".into()),
        };
        let draft_id = format!("d_{}", crate::credentials::random_hex(8).map_err(|e| e.to_string())?);
        let proposal = Proposal {
            org: who.org.clone(),
            draft_id: draft_id.clone(),
            actor: spend_core::Actor::agent(who.key_id.clone()),
            draft: Draft {
                account_id: input.account_id,
                change,
                spend_impact: impact.clone(),
            },
            diff: diff
                .iter()
                .map(|d| spend_core::events::FieldDiff {
                    path: d.path.clone(),
                    before: d.before.clone(),
                    after: d.after.clone(),
                })
                .collect(),
            rationale: input.rationale,
        };
        let decision = self
            .state
            .policy_service
            .propose(&self.state.policy, self.state.policy_approved_by_human, &proposal)
            .await
            .map_err(|e| e.to_string())?;
        let status = match decision.outcome {
            spend_core::events::Outcome::Deny => "denied",
            spend_core::events::Outcome::AutoApprove => "approved",
            _ => "pending_approval",
        };
        Ok(Json(DraftOut {
            draft_id,
            status: status.into(),
            diff,
            spend_impact_minor: impact.minor_units,
            currency: impact.currency,
            decision: DecisionOut {
                outcome: outcome_str(&decision.outcome).into(),
                reasons: decision
                    .reasons
                    .into_iter()
                    .map(|r| ReasonOut {
                        code: r.code,
                        message: r.message,
                    })
                    .collect(),
                policy_version: self.state.policy.version.clone(),
            },
        }))
    }

    /// The current status of one of your organisation's drafts.
    #[tool(name = "get_draft_status")]
    async fn get_draft_status(&self, Parameters(input): Parameters<DraftStatusInput>, ctx: RequestContext<RoleServer>) -> Result<Json<DraftStatusOut>, String> {
        let who = identity(&ctx)?;
        self.state.require(&who, AgentScope::Draft, "get_draft_status").await?;
        let subject = spend_core::subject::aggregate_subject(&self.state.prefix, &who.org, "draft", &input.draft_id).map_err(|e| e.to_string())?;
        let last = self
            .state
            .log
            .last_on_subject(&subject)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no draft {}", input.draft_id))?;
        let v: serde_json::Value = serde_json::from_slice(&last.payload).map_err(|e| e.to_string())?;
        let t = v["type"].as_str().unwrap_or_default().to_string();
        let status = match (t.as_str(), v["data"]["outcome"].as_str()) {
            ("spend.policy.evaluated.v1", Some("deny")) => "denied",
            ("spend.policy.evaluated.v1", Some("auto_approve")) => "approved",
            ("spend.policy.evaluated.v1", _) => "pending_approval",
            ("spend.draft.proposed.v1", _) => "proposed",
            ("spend.change.pushed.v1", _) => "pushed",
            ("spend.change.rolled_back.v1", _) => "rolled_back",
            _ => "unknown",
        };
        Ok(Json(DraftStatusOut {
            draft_id: input.draft_id,
            last_event: t,
            status: status.into(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SpendMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("spendsignoff", env!("CARGO_PKG_VERSION")))
            .with_instructions("SpendSignoff: read accounts and propose changes as drafts. Nothing you propose is pushed until a signed-in human approves it.")
    }
}
