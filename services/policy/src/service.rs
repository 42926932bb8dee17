//! The policy service's decision path: record the draft, evaluate it
//! against SPEND.md with the account's committed spend, reserve what is
//! committed, record the decision — all as events, in order, on the draft's
//! subject.
//!
//! The 24-hour envelope and the monthly limit are hard ceilings under
//! concurrency: every commitment of spend (an auto-approval now, a human
//! approval later) is a `spend.budget.reserved.v1` event on the account's
//! budget subject, appended with the subject's expected last sequence. Two
//! racing reservations read the same budget; only one append succeeds, and
//! the other re-reads and re-evaluates. Each reservation event carries the
//! budget's state (five-minute buckets of the last 24 hours and the month's
//! total), so reading the budget is reading one message.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use spend_core::events::{BudgetReserved, DraftProposed, EventData, FieldDiff, LimitApproaching, LimitExceeded, Outcome, PolicyEvaluated};
use spend_core::subject::{aggregate_subject, envelope_subject};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::{Append, EventLog, LogError};

use crate::evaluate::{Change, Decision, Draft, Windows, evaluate};
use crate::spendmd::SpendMd;

/// Bucket width of the rolling window, in minutes. The oldest bucket is
/// counted whole, so the envelope errs on the safe side by at most this.
const BUCKET_MINUTES: i64 = 5;
const WINDOW_BUCKETS: i64 = 24 * 60 / BUCKET_MINUTES;
/// Attempts at a contended reservation before giving up.
const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("draft {0} already exists")]
    DuplicateDraft(String),
    #[error("invalid request: {0}")]
    Rejected(String),
    #[error("the budget of account {0} is too contended; try again")]
    Contended(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A draft as the gateway hands it over.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub org: String,
    pub draft_id: String,
    pub actor: Actor,
    pub draft: Draft,
    pub diff: Vec<FieldDiff>,
    pub rationale: String,
    /// The live state's version the diff was read from (see
    /// [`DraftProposed::drafted_against`]).
    pub drafted_against: Option<String>,
    /// When the platform last changed the draft's campaign, for the
    /// per-campaign cooldown.
    pub campaign_last_changed: Option<DateTime<Utc>>,
}

/// The committed spend of one account, as the last reservation left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetState {
    /// (bucket number = unix minutes / BUCKET_MINUTES, minor units).
    pub buckets: Vec<(i64, i64)>,
    pub month: String,
    pub month_total: i64,
}

impl BudgetState {
    fn bucket(t: DateTime<Utc>) -> i64 {
        t.timestamp().div_euclid(60 * BUCKET_MINUTES)
    }

    fn month_of(t: DateTime<Utc>) -> String {
        format!("{:04}-{:02}", t.year(), t.month())
    }

    /// Committed in the last 24 hours (counting the oldest bucket whole).
    pub fn last_24h(&self, now: DateTime<Utc>) -> i64 {
        let oldest = Self::bucket(now) - WINDOW_BUCKETS;
        self.buckets.iter().filter(|(b, _)| *b >= oldest).map(|(_, v)| v).sum()
    }

    pub fn this_month(&self, now: DateTime<Utc>) -> i64 {
        if self.month == Self::month_of(now) { self.month_total } else { 0 }
    }

    /// The state after committing `amount` at `now`.
    pub fn add(&self, amount: i64, now: DateTime<Utc>) -> Self {
        let b = Self::bucket(now);
        let oldest = b - WINDOW_BUCKETS;
        let mut buckets: Vec<(i64, i64)> = self.buckets.iter().copied().filter(|(x, _)| *x >= oldest).collect();
        match buckets.iter_mut().find(|(x, _)| *x == b) {
            Some((_, v)) => *v += amount,
            None => buckets.push((b, amount)),
        }
        Self {
            buckets,
            month: Self::month_of(now),
            month_total: self.this_month(now) + amount,
        }
    }
}

pub struct PolicyService {
    log: Arc<dyn EventLog>,
    prefix: String,
}

impl PolicyService {
    /// `prefix` is the event stream's subject prefix.
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>) -> Self {
        Self { log, prefix: prefix.into() }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn subject(&self, org: &str, aggregate: &str, id: &str) -> Result<String, ServiceError> {
        aggregate_subject(&self.prefix, org, aggregate, id).map_err(|e| ServiceError::Rejected(e.to_string()))
    }

    async fn append(&self, subject: &str, env: Envelope, expected: Option<u64>) -> Result<u64, LogError> {
        let mut a = Append::new(subject, env.id.to_string(), env.to_bytes());
        a.expected_last_subject_seq = expected;
        Ok(self.log.append(a).await?.seq)
    }

    /// The account's committed spend and the budget subject's sequence.
    pub async fn budget(&self, org: &str, account_id: &str) -> Result<(BudgetState, u64), ServiceError> {
        let subject = self.subject(org, "budget", account_id)?;
        let Some(m) = self.log.last_on_subject(&subject).await? else {
            return Ok((BudgetState::default(), 0));
        };
        let v: serde_json::Value = serde_json::from_slice(&m.payload).map_err(|e| ServiceError::Rejected(format!("budget event {}: {e}", m.seq)))?;
        let r: BudgetReserved = serde_json::from_value(v["data"].clone()).map_err(|e| ServiceError::Rejected(format!("budget event {}: {e}", m.seq)))?;
        Ok((
            BudgetState {
                buckets: r.buckets,
                month: r.month,
                month_total: r.month_total,
            },
            m.seq,
        ))
    }

    /// Records a draft, decides on it, reserves its spend if it is
    /// auto-approved, and records the decision. Returns the decision.
    pub async fn propose(&self, policy: &SpendMd, mandate_approved: bool, p: &Proposal) -> Result<Decision, ServiceError> {
        let draft_subject = self.subject(&p.org, "draft", &p.draft_id)?;
        let source = "spendsignoff/policy";
        let kind = match p.draft.change {
            Change::Payment { .. } => "payment",
            Change::Budget { .. } => "budget",
            Change::Bid { .. } => "bid",
            Change::Status { .. } => "status",
        };
        let proposed = Envelope::new(
            source,
            &p.org,
            p.actor.clone(),
            envelope_subject("draft", &p.draft_id),
            EventData::DraftProposed(DraftProposed {
                draft_id: p.draft_id.clone(),
                account_id: p.draft.account_id.clone(),
                kind: kind.into(),
                diff: p.diff.clone(),
                spend_impact: p.draft.spend_impact.clone(),
                rationale: p.rationale.clone(),
                drafted_against: p.drafted_against.clone(),
            }),
        );
        // The draft's append and the budget read do not depend on each
        // other: one round trip instead of two. Nothing is reserved until
        // the draft is on the log.
        let (appended, budget) = futures::join!(self.append(&draft_subject, proposed, Some(0)), self.budget(&p.org, &p.draft.account_id));
        let draft_seq = match appended {
            Ok(seq) => seq,
            Err(LogError::WrongLastSequence { .. }) => return Err(ServiceError::DuplicateDraft(p.draft_id.clone())),
            Err(e) => return Err(e.into()),
        };
        let decision = self
            .decide_with_budget(policy, mandate_approved, p, Some(budget?), |d| d.outcome == Outcome::AutoApprove)
            .await?;
        let evaluated = Envelope::new(
            source,
            &p.org,
            Actor::service("policy"),
            envelope_subject("draft", &p.draft_id),
            EventData::PolicyEvaluated(PolicyEvaluated {
                draft_id: p.draft_id.clone(),
                outcome: decision.outcome.clone(),
                reasons: decision.reasons.clone(),
                policy_version: policy.version.clone(),
            }),
        );
        self.append(&draft_subject, evaluated, Some(draft_seq)).await?;
        self.publish_alerts(p, &decision).await?;
        Ok(decision)
    }

    /// `spend.limit.approaching.v1` / `spend.limit.exceeded.v1` on the
    /// account's limit subject (kept apart from the budget subject so that
    /// alerts never contend with reservations).
    async fn publish_alerts(&self, p: &Proposal, decision: &Decision) -> Result<(), ServiceError> {
        if decision.alerts.is_empty() {
            return Ok(());
        }
        let subject = self.subject(&p.org, "limit", &p.draft.account_id)?;
        let currency = &p.draft.spend_impact.currency;
        for a in &decision.alerts {
            let money = |minor| Money {
                minor_units: minor,
                currency: currency.clone(),
            };
            let (account_id, draft_id, limit) = (p.draft.account_id.clone(), p.draft_id.clone(), a.limit.to_string());
            let data = if a.event == "limit.exceeded" {
                EventData::LimitExceeded(LimitExceeded {
                    account_id,
                    draft_id,
                    limit,
                    used: money(a.used),
                    value: money(a.value),
                })
            } else {
                EventData::LimitApproaching(LimitApproaching {
                    account_id,
                    draft_id,
                    limit,
                    used: money(a.used),
                    value: money(a.value),
                })
            };
            let env = Envelope::new(
                "spendsignoff/policy",
                &p.org,
                Actor::service("policy"),
                envelope_subject("limit", &p.draft.account_id),
                data,
            );
            self.append(&subject, env, None).await?;
        }
        Ok(())
    }

    /// Commits a human-approved draft's spend: re-checks the limits against
    /// the current budget and reserves, or refuses with the reasons.
    pub async fn reserve_approved(&self, policy: &SpendMd, p: &Proposal) -> Result<Decision, ServiceError> {
        self.decide_with_budget(policy, false, p, None, |d| d.outcome != Outcome::Deny).await
    }

    /// Reads the budget (the first time, `read` if given), decides, and —
    /// when `commits` says the decision commits spend — reserves it with the
    /// budget's expected sequence, deciding again on a fresh read if
    /// another reservation got there first.
    async fn decide_with_budget(
        &self,
        policy: &SpendMd,
        mandate_approved: bool,
        p: &Proposal,
        mut read: Option<(BudgetState, u64)>,
        commits: impl Fn(&Decision) -> bool,
    ) -> Result<Decision, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let now = Utc::now();
            let (state, seq) = match read.take() {
                Some(r) => r,
                None => self.budget(&p.org, &p.draft.account_id).await?,
            };
            let windows = Windows {
                last_24h: state.last_24h(now),
                this_month: state.this_month(now),
                campaign_last_changed: p.campaign_last_changed,
            };
            let decision = evaluate(policy, mandate_approved, &windows, &p.draft, now);
            if !commits(&decision) || p.draft.spend_impact.minor_units <= 0 {
                return Ok(decision);
            }
            match self
                .reserve(&p.org, &p.draft_id, &p.draft.account_id, &p.draft.spend_impact, &state, seq, now)
                .await
            {
                Ok(()) => return Ok(decision),
                Err(ServiceError::Log(LogError::WrongLastSequence { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Contended(p.draft.account_id.clone()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn reserve(
        &self,
        org: &str,
        draft_id: &str,
        account_id: &str,
        amount: &Money,
        state: &BudgetState,
        seq: u64,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let next = state.add(amount.minor_units, now);
        let env = Envelope::new(
            "spendsignoff/policy",
            org,
            Actor::service("policy"),
            envelope_subject("budget", account_id),
            EventData::BudgetReserved(BudgetReserved {
                account_id: account_id.into(),
                draft_id: draft_id.into(),
                amount: amount.clone(),
                buckets: next.buckets,
                month: next.month,
                month_total: next.month_total,
            }),
        );
        let subject = self.subject(org, "budget", account_id)?;
        self.append(&subject, env, Some(seq)).await?;
        Ok(())
    }
}
