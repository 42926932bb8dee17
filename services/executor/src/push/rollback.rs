//! Rollback: the executor restores what a push changed, on a human's
//! verified approval of the rollback request, once per change.
//!
//! The [`book`](super::book) counts a `spend.rollback.approved.v1` only when
//! its passkey proof verifies against the exact bytes of the request it
//! names (on the approval service's or the operator's subject) and signs
//! the request's expiry; each change the request lists then becomes work:
//! - a campaign: its live state must still be what the push left (the
//!   fields the push changed). If someone moved it since, nothing is
//!   written and `spend.rollback.refused.v1` says what moved; re-drafting
//!   is the way on. A live state already back at the recorded before-state
//!   is this executor's own write before a crash: the same idempotency key
//!   is sent again and the platform answers it once.
//! - a payment: the platform cannot undo a charge, so its rollback is a
//!   refund of it. Its commitment stays: the ceilings bound what was
//!   charged, and a refund takes nothing back from the 24 hours or the
//!   month it was charged in.
//!
//! As with a push, a write whose outcome is unknown is settled by asking
//! the platform what it did with the key, and otherwise tried again later;
//! a rollback is refused on the record only when the platform refused it
//! for good.
//!
//! The write carries `<rollback_id>-<draft_id>` as idempotency key, and
//! `spend.change.rolled_back.v1` is appended on the push's `change`
//! subject expecting the sequence of its `change.pushed`: one rollback per
//! change, whatever the replicas and retries. A rollback commits nothing:
//! the envelope counted the campaign at the higher of its budgets before
//! and after the push (docs/spend-windows.md), so restoring either stays
//! within what was counted.

use spend_core::events::{ChangeRolledBack, DraftChange, EventData, FieldDiff, RollbackRefused};
use spend_eventlog::LogError;

use super::book::{Pushed, Tracked};
use super::platform::WriteError;
use super::{Key, Pusher, Written};
use crate::connector::{Tokens as _, Want};

/// A rollback's write as the rollback goes on: done (`Some`), to try
/// again later (`None`), or refused for good (`Err`).
fn settled(w: Written) -> Result<Option<serde_json::Value>, String> {
    match w {
        Written::Applied(v) => Ok(Some(v)),
        Written::Refused(why) => Err(why),
        Written::Unknown(why) => {
            tracing::warn!(reason = %why, "a rollback's outcome is unknown; tried again later with the same key");
            Ok(None)
        }
        // Another replica recorded it: the book shows it next.
        Written::Settled => Ok(None),
    }
}

/// The campaign fields a push can change, as the platform names them.
const FIELDS: [&str; 3] = ["daily_budget_minor", "bid_minor", "status"];

impl Pusher {
    /// Undoes the change of `draft_id` that rollback `rollback_id` lists.
    /// Returns whether it is settled (false: tried again later).
    pub(super) async fn roll_back(&self, org: &str, rollback_id: &str, draft_id: &str) -> bool {
        let (tracked, cause) = {
            let book = self.book.read().await;
            let Some(rb) = book.rollback(org, rollback_id).filter(|r| r.approved) else {
                return true;
            };
            (book.tracked(org, draft_id).cloned(), rb.cause)
        };
        let refuse = |why: String| self.refuse_rollback(org, rollback_id, draft_id, why, cause);
        let Some(t) = tracked else {
            refuse(format!("no draft {draft_id} of {org} is known to the executor: nothing to undo")).await;
            return true;
        };
        let (Some(pushed), spend_draft::DraftStatus::Pushed) = (t.pushed.clone(), t.draft.status()) else {
            refuse(format!(
                "draft {draft_id} is {}, not pushed: nothing on the platform to undo",
                t.draft.status().as_str()
            ))
            .await;
            return true;
        };
        let key = format!("{rollback_id}-{draft_id}");
        let proposal = t.draft.proposal().clone();
        let change_id = t.started.as_ref().map(|s| s.change_id.clone()).unwrap_or_else(|| super::change_id(draft_id));
        let Ok(subject) = self.recorder.subject(org, "change", &change_id) else {
            refuse(format!("change {change_id} has no subject this executor can name")).await;
            return true;
        };
        // Sent while the change still ends at its push: once a replica
        // recorded the rollback, no other sends it.
        let key = Key::resent(&key, &subject, pushed.seq);
        let result = match &proposal.change {
            DraftChange::Campaign { campaign_id, .. } => self.restore_campaign(org, &t, &pushed, campaign_id, key).await,
            DraftChange::Payment { .. } => self.refund_payment(org, &t, &pushed, key).await,
        };
        let (diff, response) = match result {
            Ok(Some(done)) => done,
            Ok(None) => return false, // tried again later
            Err(why) => {
                refuse(why).await;
                return true;
            }
        };
        let rolled_back = EventData::ChangeRolledBack(ChangeRolledBack {
            change_id: key.key.to_string(),
            draft_id: draft_id.into(),
            rollback_of: change_id.clone(),
            diff,
            rollback_id: Some(rollback_id.into()),
            response: Some(response),
        });
        match self.record(org, "change", &change_id, rolled_back, cause, Some(pushed.seq)).await {
            Ok(_) => {
                tracing::info!(org, draft_id, rollback_id, "rolled back");
                true
            }
            Err(LogError::WrongLastSequence { .. }) => true,
            Err(e) => {
                tracing::error!(org, draft_id, error = %e, "the platform restored the change but its record failed; retried");
                false
            }
        }
    }

    /// The campaign back to its recorded before-state: `Ok(None)` to try
    /// again later, `Err` to refuse.
    async fn restore_campaign(
        &self,
        org: &str,
        t: &Tracked,
        pushed: &Pushed,
        campaign_id: &str,
        key: Key<'_>,
    ) -> Result<Option<(Vec<FieldDiff>, serde_json::Value)>, String> {
        let account = t.draft.account_id().to_string();
        let before = t.started.as_ref().and_then(|s| s.before.clone()).unwrap_or_default();
        let after = pushed.response.clone().unwrap_or_default();
        let changed: Vec<&str> = FIELDS.iter().copied().filter(|f| before[*f] != after[*f] && !before[*f].is_null()).collect();
        if changed.is_empty() {
            return Err(format!("the push of {} recorded no field it changed: nothing to restore", t.draft.id()));
        }
        let token = match self.connections.token(org, Want::Account(&account), Some("ads.write")).await {
            Ok(token) => token,
            Err(spend_platform::ReadError::Unavailable(m)) => {
                tracing::warn!(org, campaign_id, error = %m, "cannot read the campaign to roll back; retrying");
                return Ok(None);
            }
            Err(e) => return Err(format!("account {account} cannot be written: {e}")),
        };
        let live = match self.platform.campaign(&token, &account, campaign_id).await {
            Ok(c) => serde_json::json!({"daily_budget_minor": c.daily_budget_minor, "bid_minor": c.bid_minor, "status": c.status}),
            Err(spend_platform::ReadError::NotFound(m)) => return Err(format!("the campaign is gone from the platform: {m}")),
            Err(e) => {
                tracing::warn!(org, campaign_id, error = %e, "cannot read the campaign to roll back; retrying");
                return Ok(None);
            }
        };
        let as_pushed = changed.iter().all(|f| live[*f] == after[*f]);
        let as_before = changed.iter().all(|f| live[*f] == before[*f]);
        if !as_pushed && !as_before {
            let moved: Vec<String> = changed
                .iter()
                .filter(|f| live[**f] != after[**f])
                .map(|f| format!("{f} is {} (the push left {})", live[*f], after[*f]))
                .collect();
            return Err(format!(
                "the live state moved since the push: campaign {campaign_id}'s {}; nothing was changed — draft the change you want from the live state",
                moved.join(", ")
            ));
        }
        let mut fields = serde_json::Map::new();
        for f in &changed {
            fields.insert((*f).to_string(), before[*f].clone());
        }
        let fields = serde_json::Value::Object(fields);
        let response = settled(
            self.with_retries(org, t.draft.id(), &account, "ads.write", key, |token| {
                let fields = fields.clone();
                async move { self.platform.update_campaign(&token, campaign_id, fields, key.key).await }
            })
            .await,
        )?;
        let Some(response) = response else { return Ok(None) };
        let diff = changed
            .iter()
            .map(|f| FieldDiff {
                path: format!("campaign/{campaign_id}/{f}"),
                before: after[*f].clone(),
                after: response[*f].clone(),
            })
            .collect();
        Ok(Some((diff, response)))
    }

    /// A payment's rollback: a refund of its charge.
    async fn refund_payment(&self, org: &str, t: &Tracked, pushed: &Pushed, key: Key<'_>) -> Result<Option<(Vec<FieldDiff>, serde_json::Value)>, String> {
        let charge = pushed.response.clone().unwrap_or_default();
        let Some(charge_id) = charge["id"].as_str().map(str::to_string) else {
            return Err("the push recorded no charge id: the platform cannot refund it".into());
        };
        let response = settled(
            self.with_retries(org, t.draft.id(), t.draft.account_id(), "cards.write", key, |token| {
                let charge_id = charge_id.clone();
                async move {
                    match self.platform.refund(&token, &charge_id, key.key).await {
                        Err(WriteError::Refused(m)) => Err(WriteError::Refused(format!("the platform refused the refund of {charge_id}: {m}"))),
                        other => other,
                    }
                }
            })
            .await,
        )?;
        let Some(response) = response else { return Ok(None) };
        let diff = vec![FieldDiff {
            path: format!("charge/{charge_id}/status"),
            before: charge["status"].clone(),
            after: response["status"].clone(),
        }];
        Ok(Some((diff, response)))
    }

    /// Records that one change of a rollback was not undone, and why.
    async fn refuse_rollback(&self, org: &str, rollback_id: &str, draft_id: &str, why: String, cause: spend_core::Cause) {
        tracing::warn!(org, rollback_id, draft_id, reason = %why, "rollback refused");
        let change_id = super::change_id(draft_id);
        let refused = EventData::RollbackRefused(RollbackRefused {
            rollback_id: rollback_id.into(),
            change_id,
            draft_id: draft_id.into(),
            reason: why.chars().take(1_000).collect(),
        });
        match self
            .record(org, "rollback", &format!("{rollback_id}-{draft_id}"), refused, cause, Some(0))
            .await
        {
            Ok(_) | Err(LogError::WrongLastSequence { .. }) => {}
            Err(e) => tracing::error!(org, rollback_id, draft_id, error = %e, "could not record a refused rollback"),
        }
    }
}
