//! The MCP server (Streamable HTTP, at `/mcp`): the agent-facing tools,
//! each with a JSON Schema for its input and its structured output, as
//! thin adapters over [`crate::ops`]. The guard in front authenticates
//! every request; each tool checks its scope. No tool approves, applies or
//! pushes anything — the tool list is the contract — and a call to any
//! tool not on it is refused and audited.

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use spend_platform::{Account, Campaign, Card, Performance, TokenHealth, Transaction};

use crate::ops::{AuditOut, ChangeRequest, DraftOut, OpError, ProposeRequest, audit_out, parse_time};
use crate::{GatewayState, Identity};

/// A payment the agent wants to make.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// Amount in integer minor units (cents for USD).
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. USD.
    pub currency: String,
    /// Merchant domain, e.g. openai.com.
    pub merchant: String,
    /// The card to charge, e.g. crd_1 (`list_cards` shows them): only this
    /// card is ever charged for the payment.
    pub card_id: String,
    /// What you believe the merchant's category is (shown to the human;
    /// the platform's merchant data is what the policy judges).
    pub category: Option<String>,
    /// What you believe the merchant's country is, ISO 3166-1 alpha-2
    /// (shown to the human; the platform's merchant data is judged).
    pub country: Option<String>,
    /// The page you pay on (shown to the human; it must be https when the
    /// policy requires HTTPS).
    pub url: Option<String>,
}

/// A new daily budget for an ad campaign (the current one is read live).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    pub campaign_id: String,
    /// The proposed daily budget, minor units of the campaign's currency.
    pub new_daily_budget_minor: i64,
}

/// A new maximum bid for an ad campaign.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BidInput {
    pub campaign_id: String,
    pub new_bid_minor: i64,
}

/// Pause or resume an ad campaign.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    pub campaign_id: String,
    /// `active` or `paused`.
    pub new_status: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeChangeInput {
    /// The ad account (for budget, bid and status) or card account.
    pub account_id: String,
    /// Why the agent proposes this, for the human who approves it.
    pub rationale: String,
    /// Set exactly one of `payment`, `budget`, `bid` and `status`.
    pub payment: Option<PaymentInput>,
    pub budget: Option<BudgetInput>,
    pub bid: Option<BidInput>,
    pub status: Option<StatusInput>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftIdInput {
    pub draft_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub account_id: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenHealthInput {
    /// One connected account; all of the organisation's when left out.
    #[serde(default)]
    pub account_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingInput {
    /// Only this account's drafts.
    pub account_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformanceInput {
    pub account_id: String,
    /// One campaign; all of the account's when absent.
    pub campaign_id: Option<String>,
    /// RFC 3339; default seven days before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionsInput {
    /// `pending`, `settled` or `declined`.
    pub status: Option<String>,
    /// RFC 3339: only transactions at or after this time.
    pub from: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditInput {
    /// Only this draft's events.
    pub draft_id: Option<String>,
    /// At most this many of the newest entries (1–500, default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountsOut {
    pub accounts: Vec<Account>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CampaignsOut {
    pub campaigns: Vec<Campaign>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CardsOut {
    pub cards: Vec<Card>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TransactionsOut {
    pub transactions: Vec<Transaction>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditLogOut {
    pub entries: Vec<AuditOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DraftsOut {
    pub drafts: Vec<DraftOut>,
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

fn err(e: OpError) -> String {
    e.to_string()
}

#[tool_router]
impl SpendMcp {
    pub fn new(state: Arc<GatewayState>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// The ad and card accounts this organisation's platforms hold.
    #[tool(
        name = "list_accounts",
        title = "List accounts",
        annotations(title = "List accounts", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_accounts(&self, ctx: RequestContext<RoleServer>) -> Result<Json<AccountsOut>, String> {
        let accounts = self.state.list_accounts(&identity(&ctx)?).await.map_err(err)?;
        Ok(Json(AccountsOut { accounts }))
    }

    /// An ad account's campaigns, with live budgets, bids and status.
    #[tool(
        name = "list_campaigns",
        title = "List campaigns",
        annotations(title = "List campaigns", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_campaigns(&self, Parameters(i): Parameters<AccountInput>, ctx: RequestContext<RoleServer>) -> Result<Json<CampaignsOut>, String> {
        let campaigns = self.state.list_campaigns(&identity(&ctx)?, &i.account_id).await.map_err(err)?;
        Ok(Json(CampaignsOut { campaigns }))
    }

    /// Impressions, clicks, conversions and spend of an ad account or one
    /// campaign over a time range.
    #[tool(
        name = "get_performance",
        title = "Get performance",
        annotations(title = "Get performance", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_performance(&self, Parameters(i): Parameters<PerformanceInput>, ctx: RequestContext<RoleServer>) -> Result<Json<Performance>, String> {
        let who = identity(&ctx)?;
        let from = parse_time("from", i.from.as_deref()).map_err(err)?;
        let to = parse_time("to", i.to.as_deref()).map_err(err)?;
        let p = self
            .state
            .get_performance(&who, &i.account_id, i.campaign_id.as_deref(), from, to)
            .await
            .map_err(err)?;
        Ok(Json(p))
    }

    /// The organisation's virtual cards.
    #[tool(
        name = "list_cards",
        title = "List cards",
        annotations(title = "List cards", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_cards(&self, ctx: RequestContext<RoleServer>) -> Result<Json<CardsOut>, String> {
        let cards = self.state.list_cards(&identity(&ctx)?).await.map_err(err)?;
        Ok(Json(CardsOut { cards }))
    }

    /// Card transactions, optionally by status and since a time.
    #[tool(
        name = "list_transactions",
        title = "List card transactions",
        annotations(title = "List card transactions", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_transactions(&self, Parameters(i): Parameters<TransactionsInput>, ctx: RequestContext<RoleServer>) -> Result<Json<TransactionsOut>, String> {
        let who = identity(&ctx)?;
        let from = parse_time("from", i.from.as_deref()).map_err(err)?;
        let transactions = self.state.list_transactions(&who, i.status.as_deref(), from).await.map_err(err)?;
        Ok(Json(TransactionsOut { transactions }))
    }

    /// The organisation's audit trail of drafts, decisions, approvals,
    /// pushes and committed spend, newest last.
    #[tool(
        name = "get_audit_log",
        title = "Get the audit log",
        annotations(title = "Get the audit log", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_audit_log(&self, Parameters(i): Parameters<AuditInput>, ctx: RequestContext<RoleServer>) -> Result<Json<AuditLogOut>, String> {
        let entries = self.state.get_audit_log(&identity(&ctx)?, i.draft_id.as_deref(), i.limit).await.map_err(err)?;
        Ok(Json(AuditLogOut {
            entries: entries.iter().map(audit_out).collect(),
        }))
    }

    /// The organisation's connected accounts: for each, its platform
    /// scopes (read, and write once a human consented to a change), when
    /// its access token expires, and whether it is valid, expiring soon,
    /// expired or revoked.
    #[tool(
        name = "check_token_health",
        title = "Check platform token health",
        annotations(title = "Check platform token health", read_only_hint = true, open_world_hint = false)
    )]
    async fn check_token_health(&self, Parameters(i): Parameters<TokenHealthInput>, ctx: RequestContext<RoleServer>) -> Result<Json<TokenHealth>, String> {
        Ok(Json(
            self.state.check_token_health(&identity(&ctx)?, i.account_id.as_deref()).await.map_err(err)?,
        ))
    }

    /// Propose a change as a draft: a payment, or an ad campaign's daily
    /// budget, bid or status. Returns the draft, its full before→after
    /// diff (before read live from the platform), its spend impact and the
    /// policy decision with reasons. Nothing is pushed: a signed-in human
    /// approves, in two steps.
    #[tool(
        name = "propose_change",
        title = "Propose a change (draft only)",
        annotations(
            title = "Propose a change (draft only)",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn propose_change(&self, Parameters(i): Parameters<ProposeChangeInput>, ctx: RequestContext<RoleServer>) -> Result<Json<DraftOut>, String> {
        let who = identity(&ctx)?;
        let change = match (i.payment, i.budget, i.bid, i.status) {
            (Some(p), None, None, None) => ChangeRequest::Payment {
                amount_minor: p.amount_minor,
                currency: p.currency,
                merchant: p.merchant,
                card_id: p.card_id,
                category: p.category,
                country: p.country,
                url: p.url,
            },
            (None, Some(b), None, None) => ChangeRequest::Budget {
                campaign_id: b.campaign_id,
                new_daily_budget_minor: b.new_daily_budget_minor,
                // MCP amounts are in the campaign's own currency.
                currency: None,
            },
            (None, None, Some(b), None) => ChangeRequest::Bid {
                campaign_id: b.campaign_id,
                new_bid_minor: b.new_bid_minor,
                currency: None,
            },
            (None, None, None, Some(s)) => ChangeRequest::Status {
                campaign_id: s.campaign_id,
                new_status: s.new_status,
            },
            _ => return Err("set exactly one of `payment`, `budget`, `bid` and `status`".into()),
        };
        let req = ProposeRequest {
            account_id: i.account_id,
            rationale: i.rationale,
            change,
        };
        Ok(Json(self.state.propose_change(&who, req).await.map_err(err)?))
    }

    /// The current status of one of your organisation's drafts (a draft
    /// whose live state moved, or older than 48 hours, is `stale`).
    #[tool(
        name = "get_draft_status",
        title = "Get a draft's status",
        annotations(title = "Get a draft's status", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_draft_status(&self, Parameters(i): Parameters<DraftIdInput>, ctx: RequestContext<RoleServer>) -> Result<Json<DraftOut>, String> {
        Ok(Json(self.state.get_draft_status(&identity(&ctx)?, &i.draft_id).await.map_err(err)?))
    }

    /// Your organisation's drafts still waiting for a human, oldest first.
    #[tool(
        name = "list_pending_drafts",
        title = "List drafts waiting for a human",
        annotations(title = "List drafts waiting for a human", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_pending_drafts(&self, Parameters(i): Parameters<PendingInput>, ctx: RequestContext<RoleServer>) -> Result<Json<DraftsOut>, String> {
        let drafts = self.state.list_pending_drafts(&identity(&ctx)?, i.account_id.as_deref()).await.map_err(err)?;
        Ok(Json(DraftsOut { drafts }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SpendMcp {
    /// Routes a call to its tool; a call to a tool that does not exist
    /// (say, `approve_draft`) is refused and audited.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        if !self.tool_router.has_route(&request.name) {
            let detail = format!(
                "MCP tool {:?} does not exist: agents read and draft; only a signed-in human approves or pushes",
                request.name
            );
            if let Ok(who) = identity(&context) {
                self.state
                    .alert(Some(&who.org), Some(&who.key_id), Some(&who.address), "operation.unknown", &detail)
                    .await;
            }
            return Err(rmcp::ErrorData::invalid_params(detail, None));
        }
        let who = identity(&context).ok();
        let tool = request.name.to_string();
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        // Inputs refuse fields they do not define (`approved`, `outcome`…):
        // an attempt to smuggle one is an overreach, audited like any other.
        let refusal = match &result {
            Err(e) => Some(e.message.to_string()),
            // Argument errors come back as an error result.
            Ok(rmcp::model::CallToolResponse::Complete(r)) if r.is_error == Some(true) => serde_json::to_string(&r.content).ok(),
            Ok(_) => None,
        };
        if let (Some(message), Some(who)) = (refusal, &who)
            && message.contains("unknown field")
        {
            let message: String = message.chars().take(300).collect();
            let detail = format!("MCP tool {tool:?} called with a field it does not take: {message}");
            self.state
                .alert(Some(&who.org), Some(&who.key_id), Some(&who.address), "input.smuggled", &detail)
                .await;
        }
        result
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("spendsignoff", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "SpendSignoff: read accounts, campaigns, cards and transactions, and propose changes as drafts. \
                 Nothing you propose is pushed until a signed-in human approves it.",
            )
    }
}
