//! What an agent can do, once, for both protocols: the MCP tools
//! ([`crate::mcp`]) and the gRPC `AgentGateway` ([`crate::grpc`]) are thin
//! adapters over these operations, so the two surfaces cannot drift apart
//! in what they allow, audit or refuse.
//!
//! Every operation checks its scope first (a refusal is audited as
//! `spend.security.alert.v1`), every read is recorded as
//! `spend.read.performed.v1`, and nothing here approves, applies or pushes.

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spend_core::events::{DraftStaled, EventData, FieldDiff, Outcome, ReadPerformed};
use spend_core::subject::{aggregate_subject, envelope_subject};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::{Append, LogError};
use spend_executor::connector::ReadError;
use spend_executor::platform::{Account, Campaign, Card, Performance, TokenHealth, Transaction};
use spend_policy::evaluate::{Change, Draft};
use spend_policy::service::{Proposal, ServiceError};

use crate::credentials::AgentScope;
use crate::view::{AuditEntry, DraftRecord, DraftStatus};
use crate::{GatewayState, Identity};

/// A draft older than this can no longer be approved.
pub const DRAFT_TTL_HOURS: i64 = 48;
/// Most audit entries one call returns.
pub const AUDIT_MAX: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Beyond the caller's scopes (already audited).
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Refused by state, not by scope: a paused account, a contended budget.
    #[error("{0}")]
    Conflict(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<ReadError> for OpError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NotFound(m) => Self::NotFound(m),
            ReadError::Invalid(m) => Self::Invalid(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<LogError> for OpError {
    fn from(e: LogError) -> Self {
        Self::Unavailable(format!("event log: {e}"))
    }
}

/// A change an agent proposes. Amounts are integer minor units; a
/// campaign change's currency and `before` come from the live platform.
#[derive(Debug, Clone)]
pub enum ChangeRequest {
    Payment {
        amount_minor: i64,
        currency: String,
        merchant: String,
        category: Option<String>,
        country: Option<String>,
        url: Option<String>,
    },
    Budget {
        campaign_id: String,
        new_daily_budget_minor: i64,
    },
    Bid {
        campaign_id: String,
        new_bid_minor: i64,
    },
    Status {
        campaign_id: String,
        new_status: String,
    },
}

#[derive(Debug, Clone)]
pub struct ProposeRequest {
    pub account_id: String,
    pub rationale: String,
    pub change: ChangeRequest,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiffOut {
    pub path: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReasonOut {
    /// Machine-readable, e.g. `limit.per_transaction`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DecisionOut {
    /// deny, auto_approve, require_approval or require_dual_approval.
    pub outcome: String,
    pub reasons: Vec<ReasonOut>,
    /// Content hash of the SPEND.md version that decided.
    pub policy_version: String,
}

/// A draft as agents see it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DraftOut {
    pub draft_id: String,
    /// proposed, pending_approval, approved, denied, pushed, rolled_back or
    /// stale (re-draft it).
    pub status: String,
    /// payment, budget, bid or status.
    pub kind: String,
    pub account_id: String,
    /// The full before→after diff.
    pub diff: Vec<DiffOut>,
    /// Net change of committed spend, minor units (negative for a decrease).
    pub spend_impact_minor: i64,
    pub currency: String,
    pub rationale: String,
    pub decision: Option<DecisionOut>,
    pub proposed_at: DateTime<Utc>,
    /// The type of the draft's latest event.
    pub last_event: String,
}

/// One entry of the organisation's audit trail.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditOut {
    /// Stream sequence; the ledger's Merkle index is `seq - 1`.
    pub seq: u64,
    pub subject: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: DateTime<Utc>,
    /// The event exactly as stored.
    pub event: serde_json::Value,
}

fn outcome_str(o: &Outcome) -> &'static str {
    match o {
        Outcome::Deny => "deny",
        Outcome::AutoApprove => "auto_approve",
        Outcome::RequireApproval => "require_approval",
        Outcome::RequireDualApproval => "require_dual_approval",
    }
}

pub fn draft_out(r: &DraftRecord) -> DraftOut {
    DraftOut {
        draft_id: r.draft_id.clone(),
        status: r.status.as_str().into(),
        kind: r.kind.clone(),
        account_id: r.account_id.clone(),
        diff: r
            .diff
            .iter()
            .map(|d| DiffOut {
                path: d.path.clone(),
                before: d.before.clone(),
                after: d.after.clone(),
            })
            .collect(),
        spend_impact_minor: r.spend_impact.minor_units,
        currency: r.spend_impact.currency.clone(),
        rationale: r.rationale.clone(),
        decision: r.decision.as_ref().map(|d| DecisionOut {
            outcome: outcome_str(&d.outcome).into(),
            reasons: d
                .reasons
                .iter()
                .map(|r| ReasonOut {
                    code: r.code.clone(),
                    message: r.message.clone(),
                })
                .collect(),
            policy_version: d.policy_version.clone(),
        }),
        proposed_at: r.proposed_at,
        last_event: r.last_event.clone(),
    }
}

pub fn audit_out(e: &AuditEntry) -> AuditOut {
    AuditOut {
        seq: e.seq,
        subject: e.subject.clone(),
        event_type: e.event_type.clone(),
        time: e.time,
        event: serde_json::from_slice(&e.payload).unwrap_or(serde_json::Value::Null),
    }
}

/// The RFC 6962 leaf hash of a stored payload, as the ledger computes it.
pub fn leaf_hash(payload: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(payload);
    h.finalize().to_vec()
}

fn money_json(m: i64, currency: &str) -> serde_json::Value {
    serde_json::json!({"minor_units": m, "currency": currency})
}

fn find_campaign(list: Vec<Campaign>, id: &str, account: &str) -> Result<Campaign, OpError> {
    list.into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no campaign {id} in account {account}")))
}

/// A draft's shape before it is recorded: what policy judges and what the
/// human sees.
struct Shaped {
    kind: &'static str,
    change: Change,
    impact: Money,
    diff: Vec<FieldDiff>,
}

/// A change to one campaign's live settings.
enum Edit {
    Budget(i64),
    Bid(i64),
    Status(String),
}

fn money(minor: i64, currency: &str) -> Result<Money, OpError> {
    Money::new(minor, currency).map_err(|e| OpError::Invalid(e.to_string()))
}

fn payment_draft(
    amount_minor: i64,
    currency: &str,
    merchant: String,
    category: Option<String>,
    country: Option<String>,
    url: Option<String>,
) -> Result<Shaped, OpError> {
    if amount_minor <= 0 {
        return Err(OpError::Invalid("payment.amount_minor must be positive".into()));
    }
    if merchant.trim().is_empty() {
        return Err(OpError::Invalid("payment.merchant is required".into()));
    }
    let impact = money(amount_minor, currency)?;
    let diff = vec![FieldDiff {
        path: format!("payment/{merchant}"),
        before: serde_json::Value::Null,
        after: serde_json::json!({"amount_minor": amount_minor, "currency": currency, "category": category, "country": country}),
    }];
    let change = Change::Payment {
        merchant,
        category,
        country,
        url,
    };
    Ok(Shaped {
        kind: "payment",
        change,
        impact,
        diff,
    })
}

/// The draft of `edit` on campaign `c` as it is live on the platform.
fn campaign_edit(c: &Campaign, edit: Edit) -> Result<Shaped, OpError> {
    let (id, cur) = (c.id.clone(), c.currency.as_str());
    Ok(match edit {
        Edit::Budget(new) => {
            if new < 0 {
                return Err(OpError::Invalid("new_daily_budget_minor must not be negative".into()));
            }
            // Only an active campaign spends its budget.
            let impact = if c.status == "active" { new - c.daily_budget_minor } else { 0 };
            Shaped {
                kind: "budget",
                diff: vec![FieldDiff {
                    path: format!("campaign/{id}/daily_budget"),
                    before: money_json(c.daily_budget_minor, cur),
                    after: money_json(new, cur),
                }],
                change: Change::Budget {
                    campaign_id: id,
                    before: money(c.daily_budget_minor, cur)?,
                    after: money(new, cur)?,
                },
                impact: money(impact, cur)?,
            }
        }
        Edit::Bid(new) => {
            if new < 0 {
                return Err(OpError::Invalid("new_bid_minor must not be negative".into()));
            }
            Shaped {
                kind: "bid",
                diff: vec![FieldDiff {
                    path: format!("campaign/{id}/bid"),
                    before: money_json(c.bid_minor, cur),
                    after: money_json(new, cur),
                }],
                change: Change::Bid { campaign_id: id },
                // A bid moves price, not the budget that caps spend.
                impact: money(0, cur)?,
            }
        }
        Edit::Status(new_status) => {
            if new_status != "active" && new_status != "paused" {
                return Err(OpError::Invalid(format!("new_status is active or paused, not {new_status:?}")));
            }
            let impact = match (c.status.as_str(), new_status.as_str()) {
                ("paused", "active") => c.daily_budget_minor,
                ("active", "paused") => -c.daily_budget_minor,
                _ => 0,
            };
            Shaped {
                kind: "status",
                diff: vec![FieldDiff {
                    path: format!("campaign/{id}/status"),
                    before: serde_json::json!(c.status),
                    after: serde_json::json!(new_status),
                }],
                change: Change::Status { campaign_id: id },
                impact: money(impact, cur)?,
            }
        }
    })
}

impl GatewayState {
    /// A campaign change, drafted against the campaign's live state read
    /// through the executor (never what the agent believes it to be);
    /// returns the shape and the live state's version.
    async fn campaign_draft(&self, account_id: &str, campaign_id: String, edit: Edit) -> Result<(Shaped, Option<DateTime<Utc>>), OpError> {
        if campaign_id.is_empty() {
            return Err(OpError::Invalid("campaign_id is required".into()));
        }
        let live = self.reads.campaigns(account_id).await?;
        let c = find_campaign(live, &campaign_id, account_id)?;
        Ok((campaign_edit(&c, edit)?, Some(c.updated_at)))
    }
}

impl GatewayState {
    async fn read_performed(&self, who: &Identity, operation: &str, account_id: Option<&str>, count: usize) {
        let Ok(subject) = aggregate_subject(&self.prefix, &who.org, "read", &who.key_id) else {
            return;
        };
        let env = Envelope::new(
            "spendsignoff/gateway",
            &who.org,
            Actor::agent(&who.key_id),
            envelope_subject("read", &who.key_id),
            EventData::ReadPerformed(ReadPerformed {
                operation: operation.into(),
                account_id: account_id.map(Into::into),
                result_count: count as u64,
            }),
        );
        if let Err(e) = self.log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await {
            tracing::error!(error = %e, operation, "could not record a read");
        }
    }

    /// A platform read: scope check, the read, the circuit breaker's count
    /// of platform errors, and the `read.performed` record.
    async fn platform_read<T, F>(&self, who: &Identity, operation: &str, account_id: Option<&str>, count: impl Fn(&T) -> usize, read: F) -> Result<T, OpError>
    where
        F: Future<Output = Result<T, ReadError>>,
    {
        self.require(who, AgentScope::Read, operation).await.map_err(OpError::Refused)?;
        let result = read.await;
        match &result {
            Ok(v) => self.read_performed(who, operation, account_id, count(v)).await,
            Err(ReadError::Unavailable(_) | ReadError::Throttled | ReadError::TokenRefused(_)) => {
                if let Some(a) = account_id {
                    self.platform_error(&who.org, a).await;
                }
            }
            Err(_) => {}
        }
        Ok(result?)
    }

    pub async fn list_accounts(&self, who: &Identity) -> Result<Vec<Account>, OpError> {
        self.platform_read(who, "list_accounts", None, Vec::len, self.reads.accounts()).await
    }

    pub async fn list_campaigns(&self, who: &Identity, account_id: &str) -> Result<Vec<Campaign>, OpError> {
        self.platform_read(who, "list_campaigns", Some(account_id), Vec::len, self.reads.campaigns(account_id))
            .await
    }

    pub async fn get_performance(
        &self,
        who: &Identity,
        account_id: &str,
        campaign_id: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Performance, OpError> {
        self.platform_read(
            who,
            "get_performance",
            Some(account_id),
            |_| 1,
            self.reads.performance(account_id, campaign_id, from, to),
        )
        .await
    }

    pub async fn list_cards(&self, who: &Identity) -> Result<Vec<Card>, OpError> {
        self.platform_read(who, "list_cards", None, Vec::len, self.reads.cards()).await
    }

    pub async fn list_transactions(&self, who: &Identity, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, OpError> {
        self.platform_read(who, "list_transactions", None, Vec::len, self.reads.transactions(status, from))
            .await
    }

    pub async fn check_token_health(&self, who: &Identity) -> Result<TokenHealth, OpError> {
        self.platform_read(who, "check_token_health", None, |_| 1, self.reads.token_health()).await
    }

    /// The organisation's audit trail (drafts, decisions, approvals,
    /// pushes, budget), newest last; `draft_id` narrows it to one draft.
    pub async fn get_audit_log(&self, who: &Identity, draft_id: Option<&str>, limit: Option<u32>) -> Result<Vec<AuditEntry>, OpError> {
        self.require(who, AgentScope::Read, "get_audit_log").await.map_err(OpError::Refused)?;
        let limit = limit.unwrap_or(50);
        if limit == 0 || limit > AUDIT_MAX {
            return Err(OpError::Invalid(format!("limit must be between 1 and {AUDIT_MAX}")));
        }
        let subject = draft_id
            .map(|d| aggregate_subject(&self.prefix, &who.org, "draft", d))
            .transpose()
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        self.caught_up().await?;
        let entries = self.view.read().await.audit(&who.org, subject.as_deref(), limit as usize);
        self.read_performed(who, "get_audit_log", None, entries.len()).await;
        Ok(entries)
    }

    /// Records a draft and returns it with the policy's decision. The
    /// draft and the decision are both events, in order, on the draft's
    /// subject; the call returns once both are on the log.
    pub async fn propose_change(&self, who: &Identity, req: ProposeRequest) -> Result<DraftOut, OpError> {
        self.require(who, AgentScope::Draft, "propose_change").await.map_err(OpError::Refused)?;
        if req.rationale.trim().is_empty() {
            return Err(OpError::Invalid("a rationale is required: say why, for the human who approves".into()));
        }
        if let Some(b) = self.view.read().await.breaker(&who.org, &req.account_id) {
            return Err(OpError::Conflict(format!(
                "account {} is paused by its circuit breaker ({}: {}) since {}; a human must reset it",
                req.account_id, b.reason, b.detail, b.since
            )));
        }
        let (shaped, live_version) = match req.change {
            ChangeRequest::Payment {
                amount_minor,
                currency,
                merchant,
                category,
                country,
                url,
            } => (payment_draft(amount_minor, &currency, merchant, category, country, url)?, None),
            ChangeRequest::Budget {
                campaign_id,
                new_daily_budget_minor,
            } => self.campaign_draft(&req.account_id, campaign_id, Edit::Budget(new_daily_budget_minor)).await?,
            ChangeRequest::Bid { campaign_id, new_bid_minor } => self.campaign_draft(&req.account_id, campaign_id, Edit::Bid(new_bid_minor)).await?,
            ChangeRequest::Status { campaign_id, new_status } => self.campaign_draft(&req.account_id, campaign_id, Edit::Status(new_status)).await?,
        };
        let Shaped { kind, change, impact, diff } = shaped;
        let draft_id = format!("d_{}", crate::credentials::random_hex(8).map_err(|e| OpError::Unavailable(e.to_string()))?);
        let proposal = Proposal {
            org: who.org.clone(),
            draft_id: draft_id.clone(),
            actor: Actor::agent(who.key_id.clone()),
            draft: Draft {
                account_id: req.account_id.clone(),
                change,
                spend_impact: impact.clone(),
            },
            diff: diff.clone(),
            rationale: req.rationale.clone(),
            drafted_against: live_version.map(|t| t.to_rfc3339()),
            // The platform's last change to the campaign, for the cooldown.
            campaign_last_changed: live_version,
        };
        let (policy, approved) = self.active_policy(&who.org).await;
        let decision = self.policy_service.propose(&policy, approved, &proposal).await.map_err(|e| match e {
            ServiceError::Rejected(m) => OpError::Invalid(m),
            ServiceError::Contended(_) | ServiceError::DuplicateDraft(_) => OpError::Conflict(e.to_string()),
            ServiceError::Log(e) => OpError::from(e),
        })?;
        self.observe_spend(&who.org, &req.account_id, &impact, &decision.outcome).await;
        let status = match decision.outcome {
            Outcome::Deny => DraftStatus::Denied,
            Outcome::AutoApprove => DraftStatus::Approved,
            _ => DraftStatus::PendingApproval,
        };
        Ok(draft_out(&DraftRecord {
            draft_id,
            org: who.org.clone(),
            account_id: req.account_id,
            kind: kind.into(),
            diff,
            spend_impact: impact,
            rationale: req.rationale,
            proposed_at: Utc::now(),
            drafted_against: proposal.drafted_against,
            decision: Some(spend_core::events::PolicyEvaluated {
                draft_id: proposal.draft_id,
                outcome: decision.outcome,
                reasons: decision.reasons,
                policy_version: policy.version.clone(),
            }),
            approvals: 0,
            status,
            last_event: "spend.policy.evaluated.v1".into(),
        }))
    }

    /// One of the organisation's drafts, with its current status. A
    /// pending draft whose live state moved, or that is older than 48
    /// hours, is marked stale first.
    pub async fn get_draft_status(&self, who: &Identity, draft_id: &str) -> Result<DraftOut, OpError> {
        self.require(who, AgentScope::Draft, "get_draft_status").await.map_err(OpError::Refused)?;
        self.caught_up().await?;
        let record = self
            .view
            .read()
            .await
            .draft(&who.org, draft_id)
            .cloned()
            .ok_or_else(|| OpError::NotFound(format!("no draft {draft_id} in organisation {}", who.org)))?;
        let live = self.live_campaigns(&[&record]).await;
        Ok(draft_out(&self.check_stale(record, &live).await?))
    }

    /// The organisation's drafts waiting for a human, oldest first.
    pub async fn list_pending_drafts(&self, who: &Identity, account_id: Option<&str>) -> Result<Vec<DraftOut>, OpError> {
        self.require(who, AgentScope::Draft, "list_pending_drafts").await.map_err(OpError::Refused)?;
        self.caught_up().await?;
        let pending = self.view.read().await.pending(&who.org, account_id);
        let live = self.live_campaigns(&pending.iter().collect::<Vec<_>>()).await;
        let mut out = Vec::with_capacity(pending.len());
        for r in pending {
            let r = self.check_stale(r, &live).await?;
            if r.status.is_pending() {
                out.push(draft_out(&r));
            }
        }
        Ok(out)
    }

    /// Live campaigns of the accounts these drafts target (one platform
    /// read per account); accounts that cannot be read are left out, and
    /// their drafts are judged on age alone.
    async fn live_campaigns(&self, drafts: &[&DraftRecord]) -> Vec<Campaign> {
        let mut accounts: Vec<&str> = drafts
            .iter()
            .filter(|r| r.status.is_pending() && r.drafted_against.is_some())
            .map(|r| r.account_id.as_str())
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut live = Vec::new();
        for a in accounts {
            match self.reads.campaigns(a).await {
                Ok(c) => live.extend(c),
                Err(e) => tracing::warn!(account = a, error = %e, "cannot read live state to check drafts for staleness"),
            }
        }
        live
    }

    async fn check_stale(&self, mut r: DraftRecord, live: &[Campaign]) -> Result<DraftRecord, OpError> {
        if !r.status.is_pending() {
            return Ok(r);
        }
        let now = Utc::now();
        let stale = if now - r.proposed_at > Duration::hours(DRAFT_TTL_HOURS) {
            Some(("expired", format!("proposed at {}, more than {DRAFT_TTL_HOURS} hours ago", r.proposed_at)))
        } else {
            let campaign = r.diff.first().and_then(|d| d.path.strip_prefix("campaign/")).and_then(|p| p.split('/').next());
            match (campaign, &r.drafted_against) {
                (Some(id), Some(against)) => live
                    .iter()
                    .find(|c| c.id == id && c.account_id == r.account_id)
                    .filter(|c| c.updated_at.to_rfc3339() != *against)
                    .map(|c| {
                        (
                            "live_state_moved",
                            format!(
                                "campaign {id} changed on the platform at {} after this draft read it at {against}",
                                c.updated_at
                            ),
                        )
                    }),
                _ => None,
            }
        };
        let Some((reason, detail)) = stale else { return Ok(r) };
        let subject = aggregate_subject(&self.prefix, &r.org, "draft", &r.draft_id).map_err(|e| OpError::Invalid(e.to_string()))?;
        let expected = self.log.last_subject_seq(&subject).await?;
        let env = Envelope::new(
            "spendsignoff/gateway",
            &r.org,
            Actor::service("gateway"),
            envelope_subject("draft", &r.draft_id),
            EventData::DraftStaled(DraftStaled {
                draft_id: r.draft_id.clone(),
                reason: reason.into(),
                detail,
            }),
        );
        match self
            .log
            .append(Append::new(subject, env.id.to_string(), env.to_bytes()).expect_last_subject_seq(expected))
            .await
        {
            // Another replica or an approval got there first: the view
            // will show whichever happened.
            Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        r.status = DraftStatus::Stale;
        r.last_event = "spend.draft.staled.v1".into();
        Ok(r)
    }
}

/// Optional RFC 3339 time from a tool argument.
pub fn parse_time(field: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, OpError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| OpError::Invalid(format!("{field}: {s:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// Inputs that every adapter deserializes the same way.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Empty {}
