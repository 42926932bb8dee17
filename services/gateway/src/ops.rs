//! What an agent can do, once, for both protocols: the MCP tools
//! ([`crate::mcp`]) and the gRPC `AgentGateway` ([`crate::grpc`]) are thin
//! adapters over these operations, so the two surfaces cannot drift apart
//! in what they allow, audit or refuse.
//!
//! Every operation checks its scope first (a refusal is audited as
//! `spend.security.alert.v1`), every read is recorded as
//! `spend.read.performed.v1`, and nothing here approves, applies or pushes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spend_core::events::{DraftChange, DraftProposed, DraftStaled, EventData, FieldDiff, Outcome, PolicyEvaluated, ReadPerformed};
use spend_core::subject::is_valid_token;
use spend_core::{Actor, Money};
use spend_draft::Draft;
use spend_eventlog::LogError;
use spend_platform::ReadError;
use spend_platform::{Account, Campaign, Card, Merchant, Performance, TokenHealth, Transaction};
use spend_policy::decide::DecideError;

use crate::credentials::AgentScope;
use crate::view::{AuditEntry, MAX_PENDING_PER_ORG};
use crate::{GatewayState, Identity};

/// A draft older than this can no longer be approved.
mod shape;

use shape::{Edit, Shaped, Stated, campaign_edit, check_merchant, find_campaign, payment_draft};

pub const DRAFT_TTL_HOURS: i64 = spend_draft::EXPIRES_AFTER_HOURS;
/// Most audit entries one call returns.
pub const AUDIT_MAX: u32 = 500;
/// Longest rationale, in characters: enough to explain, too short to bury
/// a reviewer (or a replica's memory).
pub const MAX_RATIONALE_CHARS: usize = 2_000;
/// Longest merchant (a domain name is at most 253).
pub const MAX_MERCHANT_CHARS: usize = 253;
/// Longest URL.
pub const MAX_URL_CHARS: usize = 2_048;

/// Why a state refuses a draft, for callers to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The account's circuit breaker tripped; a human must reset it.
    BreakerTripped,
    /// Commitments against the envelope raced too often: try again.
    EnvelopeContended,
    /// The organisation has too many drafts waiting for a human.
    TooManyPending,
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Beyond the caller's scopes (already audited).
    #[error("refused: {0}")]
    Refused(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Refused by state, not by scope.
    #[error("{message}")]
    Conflict { kind: ConflictKind, message: String },
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl OpError {
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self::Conflict { kind, message: message.into() }
    }
}

impl From<ReadError> for OpError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NotFound(m) => Self::NotFound(m),
            ReadError::Invalid(m) => Self::Invalid(m),
            e @ ReadError::NotConnected(_) => Self::NotFound(e.to_string()),
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
    /// `category` and `country` are the agent's word, shown and never
    /// judged; `card_id` names the one card to charge.
    Payment {
        amount_minor: i64,
        currency: String,
        merchant: String,
        card_id: String,
        category: Option<String>,
        country: Option<String>,
        url: Option<String>,
    },
    /// `currency`, when the caller states one, must be the campaign's.
    Budget {
        campaign_id: String,
        new_daily_budget_minor: i64,
        currency: Option<String>,
    },
    Bid {
        campaign_id: String,
        new_bid_minor: i64,
        currency: Option<String>,
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
    /// proposed (no decision yet), pending_approval,
    /// awaiting_second_approval, approved, auto_approved, denied, rejected,
    /// stale or expired (re-draft it), pushing, pushed, failed, rolled_back.
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
    /// While it waits for a human: when the approval request expires
    /// (RFC 3339). Never a link, a token or who the approvers are.
    pub expires_at: Option<String>,
    /// Distinct human approvals given so far.
    pub approvals_given: u32,
    /// Distinct human approvals the policy requires (1, or 2 under dual
    /// control; 0 when no human is needed).
    pub approvals_required: u32,
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

pub fn draft_out(d: &Draft) -> DraftOut {
    DraftOut {
        draft_id: d.id().to_string(),
        status: d.status().as_str().into(),
        kind: d.kind().to_string(),
        account_id: d.account_id().to_string(),
        diff: d
            .diff()
            .iter()
            .map(|x| DiffOut {
                path: x.path.clone(),
                before: x.before.clone(),
                after: x.after.clone(),
            })
            .collect(),
        spend_impact_minor: d.spend_impact().minor_units,
        currency: d.spend_impact().currency.clone(),
        rationale: d.rationale().to_string(),
        decision: d.decision().map(decision_out),
        proposed_at: d.proposed_at(),
        last_event: d.last_event().to_string(),
        expires_at: d.approval_expires_at().map(str::to_string),
        approvals_given: d.approvers().len() as u32,
        approvals_required: match d.decision().map(|x| &x.outcome) {
            Some(Outcome::RequireApproval | Outcome::RequireDualApproval) => d.approvals_needed() as u32,
            _ => 0,
        },
    }
}

fn decision_out(d: &PolicyEvaluated) -> DecisionOut {
    DecisionOut {
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

impl GatewayState {
    /// A campaign change, drafted against the campaign's live state read
    /// through the executor (never what the agent believes it to be);
    /// returns the shape and the live state's version.
    async fn campaign_draft(
        &self,
        org: &str,
        account_id: &str,
        campaign_id: String,
        edit: Edit,
        currency: Option<&str>,
    ) -> Result<(Shaped, Option<DateTime<Utc>>), OpError> {
        if campaign_id.is_empty() {
            return Err(OpError::Invalid("campaign_id is required".into()));
        }
        let live = self.reads.campaigns(org, account_id).await?;
        let c = find_campaign(live, &campaign_id, account_id)?;
        if let Some(cur) = currency
            && cur != c.currency
        {
            return Err(OpError::Invalid(format!(
                "the amount is in {cur} but campaign {campaign_id} is in {}: amounts are never converted",
                c.currency
            )));
        }
        Ok((campaign_edit(&c, edit)?, Some(c.updated_at)))
    }
}

/// How long the platform's account list is believed before it is read
/// again; an account not in it is always re-read first.
const ACCOUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How many merchants' facts the gateway remembers at once.
const MERCHANT_CACHE_ENTRIES: usize = 10_000;

impl GatewayState {
    /// Whether `org` has `account_id` connected: from its list read at
    /// most [`ACCOUNTS_TTL`] ago, re-read on a miss (so a new connection
    /// works at once, and an invented or another organisation's account
    /// costs a read and is refused).
    async fn account_exists(&self, org: &str, account_id: &str) -> Result<bool, OpError> {
        let key = org.to_string();
        if let Some((at, ids)) = self.accounts.lock().await.get(&key)
            && at.elapsed() < ACCOUNTS_TTL
            && ids.iter().any(|a| a == account_id)
        {
            return Ok(true);
        }
        let ids: Vec<String> = self.reads.accounts(org).await?.into_iter().map(|a| a.id).collect();
        let found = ids.iter().any(|a| a == account_id);
        let mut cache = self.accounts.lock().await;
        if cache.len() >= MERCHANT_CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < ACCOUNTS_TTL);
            if cache.len() >= MERCHANT_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (std::time::Instant::now(), ids));
        Ok(found)
    }

    /// The card a payment names: one of the organisation's cards (the
    /// executor charges it and no other).
    async fn check_card(&self, org: &str, account_id: &str, card_id: &str) -> Result<(), OpError> {
        if !is_valid_token(card_id) {
            return Err(OpError::Invalid(format!(
                "payment.card_id {card_id:?} is not a card id: name the card to charge (list_cards shows them)"
            )));
        }
        let cards = self.reads.cards(org).await?;
        if !cards.iter().any(|c| c.id == card_id) {
            return Err(OpError::NotFound(format!(
                "no card {card_id} in account {account_id} of organisation {org} (list_cards shows them)"
            )));
        }
        Ok(())
    }

    /// What the platform's merchant data says of `merchant` (category,
    /// country, HTTPS), read at most every [`ACCOUNTS_TTL`] per merchant
    /// (at most [`MERCHANT_CACHE_ENTRIES`] remembered), `None` when the
    /// platform does not know it. This, never what an agent states, is
    /// what the policy judges (and the executor reads it again at push).
    async fn merchant_facts(&self, org: &str, merchant: &str) -> Result<Option<Merchant>, OpError> {
        let key = merchant.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some((at, facts)) = self.merchants.lock().await.get(&key)
            && at.elapsed() < ACCOUNTS_TTL
        {
            return Ok(facts.clone());
        }
        let facts = self.reads.merchant(org, &key).await?;
        let mut cache = self.merchants.lock().await;
        if cache.len() >= MERCHANT_CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < ACCOUNTS_TTL);
            if cache.len() >= MERCHANT_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (std::time::Instant::now(), facts.clone()));
        Ok(facts)
    }

    async fn read_performed(&self, who: &Identity, operation: &str, account_id: Option<&str>, count: usize) {
        let recorded = self
            .recorder
            .event(
                &who.org,
                Actor::agent(&who.key_id),
                "read",
                &who.key_id,
                EventData::ReadPerformed(ReadPerformed {
                    operation: operation.into(),
                    account_id: account_id.map(Into::into),
                    result_count: count as u64,
                }),
            )
            .record()
            .await;
        if let Err(e) = recorded {
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
        self.platform_read(who, "list_accounts", None, Vec::len, self.reads.accounts(&who.org)).await
    }

    pub async fn list_campaigns(&self, who: &Identity, account_id: &str) -> Result<Vec<Campaign>, OpError> {
        self.platform_read(who, "list_campaigns", Some(account_id), Vec::len, self.reads.campaigns(&who.org, account_id))
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
            self.reads.performance(&who.org, account_id, campaign_id, from, to),
        )
        .await
    }

    pub async fn list_cards(&self, who: &Identity) -> Result<Vec<Card>, OpError> {
        self.platform_read(who, "list_cards", None, Vec::len, self.reads.cards(&who.org)).await
    }

    pub async fn list_transactions(&self, who: &Identity, status: Option<&str>, from: Option<DateTime<Utc>>) -> Result<Vec<Transaction>, OpError> {
        self.platform_read(who, "list_transactions", None, Vec::len, self.reads.transactions(&who.org, status, from))
            .await
    }

    /// The organisation's connected accounts, their scopes and health (one
    /// account's when `account_id` is given).
    pub async fn check_token_health(&self, who: &Identity, account_id: Option<&str>) -> Result<TokenHealth, OpError> {
        self.platform_read(
            who,
            "check_token_health",
            account_id,
            |h: &TokenHealth| h.accounts.len(),
            self.reads.token_health(&who.org, account_id),
        )
        .await
    }

    /// The organisation's audit trail (drafts, decisions, approvals,
    /// pushes, budget), newest last; `draft_id` narrows it to one draft.
    pub async fn get_audit_log(&self, who: &Identity, draft_id: Option<&str>, limit: Option<u32>) -> Result<Vec<AuditEntry>, OpError> {
        self.require(who, AgentScope::Read, "get_audit_log").await.map_err(OpError::Refused)?;
        let limit = limit.unwrap_or(50);
        if limit == 0 || limit > AUDIT_MAX {
            return Err(OpError::Invalid(format!("limit must be between 1 and {AUDIT_MAX}")));
        }
        if let Some(d) = draft_id
            && !is_valid_token(d)
        {
            return Err(OpError::Invalid(format!("draft_id {d:?} is not a draft id")));
        }
        // Everything about one draft sits on the subjects named by its id.
        let subjects = draft_id.map(|d| {
            ["draft", "decision", "approval"]
                .iter()
                .filter_map(|a| self.recorder.subject(&who.org, a, d).ok())
                .collect::<Vec<_>>()
        });
        self.caught_up().await?;
        let entries = self.view.read().await.audit(&who.org, subjects.as_deref(), limit as usize);
        self.read_performed(who, "get_audit_log", None, entries.len()).await;
        Ok(entries)
    }

    /// Records a draft and returns it with the policy service's decision.
    /// Everything is validated before anything is appended (the account
    /// against the platform among it), so a recorded draft is always one
    /// the policy can decide; if the decision call fails, the policy
    /// service decides the draft on its own shortly after, and the draft is
    /// returned as `proposed` meanwhile.
    pub async fn propose_change(&self, who: &Identity, req: ProposeRequest) -> Result<DraftOut, OpError> {
        self.require(who, AgentScope::Draft, "propose_change").await.map_err(OpError::Refused)?;
        self.may_draft(who, &req).await?;
        // The account must exist on the platform: limits are the policy's,
        // but an invented account must never even be drafted against.
        if !self.account_exists(&who.org, &req.account_id).await? {
            return Err(OpError::NotFound(format!(
                "no account {} is connected for organisation {} (a human connects accounts; check_token_health lists them)",
                req.account_id, who.org
            )));
        }
        let (shaped, live_version) = self.shape(who, &req.account_id, req.change).await?;
        let Shaped { kind, change, impact, diff } = shaped;
        let draft_id = format!("d_{}", crate::credentials::random_hex(8).map_err(|e| OpError::Unavailable(e.to_string()))?);
        let proposed = DraftProposed {
            draft_id: draft_id.clone(),
            account_id: req.account_id.clone(),
            kind,
            diff,
            spend_impact: impact.clone(),
            rationale: req.rationale,
            drafted_against: live_version.map(|t| t.to_rfc3339()),
            change,
        };
        let recorded = self
            .recorder
            .event(
                &who.org,
                Actor::agent(who.key_id.clone()),
                "draft",
                &draft_id,
                EventData::DraftProposed(proposed.clone()),
            )
            .expect_seq(0)
            .record()
            .await?;
        let mut draft = Draft::from_proposed(&who.org, &proposed, Utc::now(), spend_draft::event_hash(&recorded.bytes));
        match self.decider.decide(&who.org, &draft_id).await {
            Ok(decision) => {
                self.observe_spend(&who.org, &req.account_id, &impact, &decision.outcome).await;
                draft.apply(&spend_draft::DraftEvent::Decided(decision));
            }
            Err(DecideError::Contended(m)) => {
                return Err(OpError::conflict(
                    ConflictKind::EnvelopeContended,
                    format!("draft {draft_id} is recorded; deciding it raced other commitments of {m} (the policy service decides it shortly)"),
                ));
            }
            Err(e) => tracing::warn!(draft = %draft_id, error = %e, "the policy service did not decide the draft now; it decides it on its own"),
        }
        Ok(draft_out(&draft))
    }

    /// What an agent's draft must be before anything is recorded: a
    /// rationale of sane length, an account id, an account whose breaker
    /// is not tripped, and room in the organisation's queue of drafts
    /// waiting for a human.
    async fn may_draft(&self, who: &Identity, req: &ProposeRequest) -> Result<(), OpError> {
        if req.rationale.trim().is_empty() {
            return Err(OpError::Invalid("a rationale is required: say why, for the human who approves".into()));
        }
        if req.rationale.chars().count() > MAX_RATIONALE_CHARS {
            return Err(OpError::Invalid(format!(
                "rationale is {} characters; at most {MAX_RATIONALE_CHARS}",
                req.rationale.chars().count()
            )));
        }
        if !is_valid_token(&req.account_id) {
            return Err(OpError::Invalid(format!(
                "account_id {:?} is not an account id (A-Z, a-z, 0-9, '_' and '-', at most 128)",
                req.account_id
            )));
        }
        {
            let view = self.view.read().await;
            if let Some(b) = view.breaker(&who.org, &req.account_id) {
                return Err(OpError::conflict(
                    ConflictKind::BreakerTripped,
                    format!(
                        "account {} is paused by its circuit breaker ({}: {}) since {}; a human must reset it",
                        req.account_id, b.reason, b.detail, b.since
                    ),
                ));
            }
            if view.pending_count(&who.org) >= MAX_PENDING_PER_ORG {
                return Err(OpError::conflict(
                    ConflictKind::TooManyPending,
                    format!(
                        "organisation {} has {MAX_PENDING_PER_ORG} drafts waiting for a human; wait for decisions",
                        who.org
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The draft `change` makes on `account_id`, shaped from the platform's
    /// live state (for a campaign, with the version it was read at).
    async fn shape(&self, who: &Identity, account_id: &str, change: ChangeRequest) -> Result<(Shaped, Option<DateTime<Utc>>), OpError> {
        Ok(match change {
            ChangeRequest::Payment {
                amount_minor,
                currency,
                merchant,
                card_id,
                category,
                country,
                url,
            } => {
                check_merchant(&merchant)?;
                self.check_card(&who.org, account_id, &card_id).await?;
                let facts = self.merchant_facts(&who.org, &merchant).await?;
                let stated = Stated { category, country, url };
                (payment_draft(amount_minor, &currency, merchant, card_id, facts, stated)?, None)
            }
            ChangeRequest::Budget {
                campaign_id,
                new_daily_budget_minor,
                currency,
            } => {
                self.campaign_draft(&who.org, account_id, campaign_id, Edit::Budget(new_daily_budget_minor), currency.as_deref())
                    .await?
            }
            ChangeRequest::Bid {
                campaign_id,
                new_bid_minor,
                currency,
            } => {
                self.campaign_draft(&who.org, account_id, campaign_id, Edit::Bid(new_bid_minor), currency.as_deref())
                    .await?
            }
            ChangeRequest::Status { campaign_id, new_status } => self.campaign_draft(&who.org, account_id, campaign_id, Edit::Status(new_status), None).await?,
        })
    }

    /// One of the organisation's drafts, with its current status. A
    /// pending draft whose live state moved, or that is older than 48
    /// hours, is marked stale first.
    pub async fn get_draft_status(&self, who: &Identity, draft_id: &str) -> Result<DraftOut, OpError> {
        self.require(who, AgentScope::Draft, "get_draft_status").await.map_err(OpError::Refused)?;
        self.caught_up().await?;
        let record = self.view.read().await.draft(&who.org, draft_id).cloned().ok_or_else(|| {
            OpError::NotFound(format!(
                "no draft {draft_id} in organisation {} (the gateway keeps pending drafts and the most recent others; older ones are in the ledger)",
                who.org
            ))
        })?;
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
            if r.status().is_pending() {
                out.push(draft_out(&r));
            }
        }
        Ok(out)
    }

    /// Live campaigns of the accounts these drafts target (one platform
    /// read per account); accounts that cannot be read are left out, and
    /// their drafts are judged on age alone.
    async fn live_campaigns(&self, drafts: &[&Draft]) -> Vec<Campaign> {
        let mut accounts: Vec<(&str, &str)> = drafts
            .iter()
            .filter(|r| r.status().is_pending() && r.drafted_against().is_some())
            .map(|r| (r.org(), r.account_id()))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut live = Vec::new();
        for (org, a) in accounts {
            match self.reads.campaigns(org, a).await {
                Ok(c) => live.extend(c),
                Err(e) => tracing::warn!(account = a, error = %e, "cannot read live state to check drafts for staleness"),
            }
        }
        live
    }

    /// A pending draft whose live state moved, or that waited too long, is
    /// marked stale or expired (through the aggregate, on its subject).
    async fn check_stale(&self, mut r: Draft, live: &[Campaign]) -> Result<Draft, OpError> {
        if !r.status().is_pending() {
            return Ok(r);
        }
        let now = Utc::now();
        let command = if r.is_overdue(now) {
            Some(spend_draft::Command::Expire {
                detail: format!("proposed at {}, more than {DRAFT_TTL_HOURS} hours ago", r.proposed_at()),
            })
        } else {
            let campaign = r
                .diff()
                .first()
                .and_then(|d| d.path.strip_prefix("campaign/"))
                .and_then(|p| p.split('/').next());
            match (campaign, r.drafted_against()) {
                (Some(id), Some(against)) => live
                    .iter()
                    .find(|c| c.id == id && c.account_id == r.account_id())
                    .filter(|c| c.updated_at.to_rfc3339() != against)
                    .map(|c| spend_draft::Command::MarkStale {
                        detail: format!(
                            "campaign {id} changed on the platform at {} after this draft read it at {against}",
                            c.updated_at
                        ),
                    }),
                _ => None,
            }
        };
        let Some(command) = command else { return Ok(r) };
        let events = spend_draft::decide(Some(&r), command).map_err(|e| OpError::Invalid(e.to_string()))?;
        let subject = self.recorder.subject(r.org(), "draft", r.id())?;
        for data in events {
            let EventData::DraftStaled(staled) = &data else { continue };
            let staled: DraftStaled = staled.clone();
            let expected = self.log.last_subject_seq(&subject).await?;
            let recorded = self
                .recorder
                .event(r.org(), Actor::service("gateway"), "draft", r.id(), data)
                .expect_seq(expected)
                .record()
                .await;
            match recorded {
                // Another replica got there first: the view shows it.
                Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            r.apply(&spend_draft::DraftEvent::Staled(staled));
        }
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
