//! Steps 4 to 6 of a push (see the parent module): the draft judged again
//! and committed under the ceiling, the write applied once with its
//! idempotency key and retried while it can succeed, and its outcome
//! recorded; and the gate that counts approvers as the executor does
//! (never the policy service's count).

use super::*;

impl Pusher {
    /// Steps 4 to 6, for a change started (now, or before a crash:
    /// `resumed`). Returns whether it is settled (false: unknown outcome).
    pub(super) async fn finish(&self, org: &str, draft_id: &str, s: Started, resumed: bool) -> bool {
        let (draft, cause, policy, mandate, committed, removed) = {
            let book = self.book.read().await;
            let Some(t) = book.tracked(org, draft_id) else { return true };
            let (policy, mandate) = match book.versions.active(org) {
                Some(a) => (a.policy.clone(), true),
                None => (self.config.bootstrap.clone(), false),
            };
            // Approvers removed since they approved count no more.
            let removed: Vec<String> = t
                .draft
                .approvers()
                .iter()
                .filter(|a| book.approvers.approver(org, a).is_none_or(|x| x.removed_at.is_some()))
                .cloned()
                .collect();
            (t.draft.clone(), t.cause, policy, mandate, t.committed, removed)
        };
        if s.before.is_none() {
            // Refused before it started (started only to record why); its
            // failure did not reach the log then.
            self.fail(org, draft_id, &s, cause, "refused before anything was written").await;
            return true;
        }
        let proposal = draft.proposal().clone();
        let judged = Self::as_judged(&proposal, s.before.as_ref());
        let approvers = Approvers {
            counted: draft.approvers().len() - removed.len(),
            removed,
            decided: draft.approvals_needed(),
        };
        let version = policy.version.clone();
        let gate = |d: &Decision| gate(d, &approvers, mandate, &version);
        // 4. Judged again and committed under the ceiling — once: a change
        // whose commitment is on the log (resumed after a crash, or after
        // an unknown outcome) may have applied, so it is neither judged nor
        // committed again, only settled.
        let committed = match committed {
            Some((_, at)) => Ok(Committed::Already { at: Some(at) }),
            None => commit::commit(&self.recorder, org, &judged, &policy, mandate, gate, Some(cause)).await,
        };
        let committed_at = match &committed {
            Ok(Committed::Now { at, .. }) => Some(*at),
            Ok(Committed::Already { at }) => *at,
            Ok(Committed::Refused(refusal)) => {
                let refusal = refusal.clone();
                self.fail(org, draft_id, &s, cause, &refusal.why).await;
                if let Some(reason) = refusal.alert {
                    let a = Audit {
                        org: org.into(),
                        reason: reason.into(),
                        detail: format!("draft {draft_id}: {}", refusal.why),
                    };
                    self.audit_once(&a, &format!("{}-{draft_id}", reason.replace('.', "_"))).await;
                }
                return true;
            }
            Err(e) => {
                tracing::warn!(org, draft_id, error = %e, "could not commit; the push is retried");
                return false;
            }
        };
        // 5. Applied, once, retried while it can succeed — a payment only
        // within the send window of its commitment, so its spend lands
        // where the envelope counts it (docs/spend-windows.md).
        // (A commitment whose time is not known sends nothing: its window
        // is taken to be over.)
        let send_by = match proposal.change {
            DraftChange::Payment { .. } => Some(committed_at.map_or(DateTime::<Utc>::MIN_UTC, |at| {
                at + chrono::Duration::seconds(spend_policy::envelope::PAYMENT_SEND_WINDOW_SECS)
            })),
            DraftChange::Campaign { .. } => None,
        };
        let subject = match self.recorder.subject(org, "change", &s.change_id) {
            Ok(subject) => subject,
            Err(e) => {
                tracing::error!(org, draft_id, error = %e, "a change subject that cannot be named");
                return true;
            }
        };
        let key = Key {
            key: draft_id,
            // Committed before this try (by whichever replica): it may
            // have been sent.
            maybe_sent: resumed || !matches!(committed, Ok(Committed::Now { .. })),
            send_by,
            open_at: Some((&subject, s.seq)),
        };
        let result = self.apply_with_retries(org, &proposal, s.before.as_ref(), key).await;
        self.outcome(org, draft_id, &s, cause, &proposal, result).await
    }

    /// Step 6: the outcome of the write, recorded on the change's subject
    /// (expecting the start's sequence: one outcome per change). Returns
    /// whether the change is settled.
    async fn outcome(&self, org: &str, draft_id: &str, s: &Started, cause: Cause, proposal: &DraftProposed, result: Written) -> bool {
        match result {
            Written::Settled => true,
            Written::Applied(response) => {
                let diff = diff_of(&proposal.change, s.before.as_ref(), &response);
                let pushed = EventData::ChangePushed(ChangePushed {
                    change_id: s.change_id.clone(),
                    draft_id: draft_id.into(),
                    platform: self.connections.platform().into(),
                    idempotency_key: draft_id.into(),
                    diff,
                    response: Some(response),
                });
                match self.record(org, "change", &s.change_id, pushed, cause, Some(s.seq)).await {
                    Ok(_) => tracing::info!(org, draft_id, "pushed"),
                    Err(LogError::WrongLastSequence { .. }) => {}
                    Err(e) => {
                        tracing::error!(org, draft_id, error = %e, "the platform applied the change but its record failed; resumed later");
                        return false;
                    }
                }
                true
            }
            Written::Refused(why) => {
                self.fail(org, draft_id, s, cause, &why).await;
                true
            }
            Written::Unknown(why) => {
                tracing::warn!(
                    org,
                    draft_id,
                    reason = %why,
                    "the platform has not said whether the change applied: its commitment stays, and it is tried again with the same key"
                );
                false
            }
        }
    }

    /// Step 5: the draft's write, with its id as idempotency key.
    async fn apply_with_retries(&self, org: &str, proposal: &DraftProposed, before: Option<&serde_json::Value>, key: Key<'_>) -> Written {
        let draft_id = proposal.draft_id.as_str();
        let scope = scope_of(&proposal.change);
        self.with_retries(org, draft_id, &proposal.account_id, scope, key, |token| async move {
            match &proposal.change {
                DraftChange::Campaign {
                    campaign_id,
                    field,
                    daily_budget_after,
                    status_after,
                    ..
                } => {
                    let fields = match field.as_str() {
                        "budget" => serde_json::json!({"daily_budget_minor": daily_budget_after.minor_units}),
                        "status" => serde_json::json!({"status": status_after}),
                        _ => bid_fields(&proposal.change),
                    };
                    self.platform.update_campaign(&token, campaign_id, fields, draft_id).await
                }
                DraftChange::Payment { amount, merchant, .. } => {
                    let card = before.and_then(|b| b["card_id"].as_str()).unwrap_or_default();
                    if let Some(reason) = self.book.read().await.frozen(org, card) {
                        return Err(WriteError::NotSent(format!("card {card} was frozen by an operator: {reason}")));
                    }
                    self.platform
                        .charge(&token, card, merchant, amount.minor_units, &amount.currency, draft_id)
                        .await
                }
            }
        })
        .await
    }

    /// Makes one write with the account's token (fetched afresh each
    /// try) and idempotency key `key.key`, retrying what can succeed later
    /// (429 with `Retry-After`, 5xx, timeouts, a token the vault cannot
    /// refresh yet) with backoff until the push deadline. Whether the
    /// write applied is the platform's to say: an answer that is not a
    /// success, and a deadline reached, are settled by asking the platform
    /// what it did with the key.
    pub(super) async fn with_retries<F, Fut>(&self, org: &str, what: &str, account: &str, scope: &str, key: Key<'_>, attempt: F) -> Written
    where
        F: Fn(crate::connector::PlatformToken) -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value, WriteError>>,
    {
        let Key {
            key,
            maybe_sent,
            send_by,
            open_at,
        } = key;
        // A send must be able to land within the window: the last one
        // starts a request timeout before its end.
        let send_by = send_by.map(|t| t - chrono::Duration::from_std(self.config.request_timeout).unwrap_or_default());
        let window = send_by.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        let deadline = tokio::time::Instant::now() + window.map_or(self.config.deadline, |w| w.min(self.config.deadline));
        let mut waits = spend_core::retry::backoff(Duration::from_millis(500), Duration::from_secs(8));
        let mut tries = 0u32;
        let mut sent = Sent::new(maybe_sent);
        loop {
            if let Some((subject, seq)) = open_at
                && !self.still_open(subject, seq).await
            {
                return Written::Settled;
            }
            if send_by.is_some_and(|t| Utc::now() > t) {
                let why = format!(
                    "not sent: a payment is sent only within {} seconds of its commitment, and that has passed",
                    spend_policy::envelope::PAYMENT_SEND_WINDOW_SECS
                );
                return self.settle(org, account, scope, key, why, Some(&sent)).await;
            }
            tries += 1;
            let outcome = match self.connections.token(org, Want::Account(account), Some(scope)).await {
                Ok(token) => {
                    let r = attempt(token).await;
                    if !matches!(r, Err(WriteError::NotSent(_))) {
                        sent.now();
                    }
                    r
                }
                Err(spend_platform::ReadError::Unavailable(m)) => Err(WriteError::Retry { after: None, reason: m }),
                Err(e) => Err(WriteError::NotSent(format!("the account's token: {e}"))),
            };
            match outcome {
                Ok(r) => return Written::Applied(r),
                // Refused here, or refused by the platform: this executor
                // sends no more. Whether a write with the key applied (an
                // earlier send, or this one) is the platform's to say.
                Err(WriteError::NotSent(m) | WriteError::Refused(m)) => return self.settle(org, account, scope, key, m, Some(&sent)).await,
                Err(WriteError::Retry { after, reason }) => {
                    let pause = after.unwrap_or_else(|| waits.wait());
                    if tokio::time::Instant::now() + pause > deadline {
                        let why = format!("no answer that settles it after {tries} tries: {reason}");
                        return self.settle(org, account, scope, key, why, None).await;
                    }
                    tracing::info!(org, what, tries, retry_in_ms = pause.as_millis() as u64, %reason, "the platform did not apply it yet; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Whether a change's subject still ends at `seq` (no outcome recorded
    /// since it was read); an unreadable log counts as open.
    async fn still_open(&self, subject: &str, seq: u64) -> bool {
        match self.recorder.log().last_on_subject(subject).await {
            Ok(Some(m)) => m.seq == seq,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(subject, error = %e, "cannot read a change's subject; going on");
                true
            }
        }
    }

    /// Settles a write by asking the platform what it did with `key`:
    /// applied (its answer), refused for good, or never started. "Never
    /// started" is final when this executor sends no more (`stopped`, with
    /// what it sent) — once no request of its can still be on its way —
    /// and otherwise leaves the outcome unknown.
    async fn settle(&self, org: &str, account: &str, scope: &str, key: &str, why: String, stopped: Option<&Sent>) -> Written {
        let Some(stopped) = stopped else {
            return self.ask(org, account, scope, key, why, false).await;
        };
        if !stopped.ever {
            // Nothing with the key was ever sent: nothing can apply.
            return Written::Refused(why);
        }
        // A request that timed out may still be on its way: wait until it
        // cannot be (a request timeout after the last send, and a little).
        let settle_after = self.config.request_timeout + Duration::from_secs(2);
        if let Some(last) = stopped.last
            && last.elapsed() < settle_after
        {
            tokio::time::sleep(settle_after - last.elapsed()).await;
        }
        self.ask(org, account, scope, key, why, true).await
    }

    async fn ask(&self, org: &str, account: &str, scope: &str, key: &str, why: String, stopped: bool) -> Written {
        let token = match self.connections.token(org, Want::Account(account), Some(scope)).await {
            Ok(t) => t,
            Err(e) => return Written::Unknown(format!("{why}; and the platform cannot be asked about key {key}: {e}")),
        };
        match self.platform.key_state(&token, key).await {
            Ok(KeyState::Applied(answer)) => {
                tracing::info!(org, key, "the platform says the write applied; its answer was lost on the way");
                Written::Applied(answer)
            }
            Ok(KeyState::Refused(platform)) => Written::Refused(format!("{why} (the platform refused key {key} for good: {platform})")),
            Ok(KeyState::Unknown) if stopped => Written::Refused(format!("{why} (the platform never started key {key}, and it is not sent again)")),
            Ok(KeyState::Unknown) => Written::Unknown(format!("{why}; the platform has not started key {key}")),
            Err(e) => Written::Unknown(format!("{why}; asking the platform about key {key}: {e}")),
        }
    }
}

/// The platform scope a change writes with.
pub(super) fn scope_of(change: &DraftChange) -> &'static str {
    match change {
        DraftChange::Payment { .. } => "cards.write",
        DraftChange::Campaign { .. } => "ads.write",
    }
}

/// Who approved a draft, as the executor counts them.
struct Approvers {
    /// Distinct approvers still trusted.
    counted: usize,
    /// Approvers who approved and were removed since: they count no more.
    removed: Vec<String>,
    /// How many the policy service's decision asked for.
    decided: usize,
}

/// Whether a draft may be pushed under decision `d` of the version in
/// force: an auto-approval only as an auto-approval under a human-approved
/// mandate; a human's approval if not denied and approved by as many
/// distinct people, still trusted, as the larger of the decision's count
/// and the rules' count now. A count the decision understated is audited:
/// the policy service said fewer than the rules do.
fn gate(d: &Decision, who: &Approvers, mandate: bool, version: &str) -> Result<(), Refusal> {
    let listed = || d.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect::<Vec<_>>().join("; ");
    if d.outcome == Outcome::Deny {
        return Err(Refusal {
            why: format!("refused under SPEND.md {version} in force now: {}", listed()),
            alert: None,
        });
    }
    let (approvers, decided) = (who.counted, who.decided);
    if approvers == 0 && who.removed.is_empty() {
        if d.outcome == Outcome::AutoApprove {
            return Ok(());
        }
        return Err(Refusal {
            why: format!(
                "refused: the decision auto-approved it, but under SPEND.md {version} it is {:?}{}: only a human-approved standing mandate pushes without a human",
                d.outcome,
                if mandate { "" } else { " (no version in force was approved by a human)" }
            ),
            alert: Some("push.unapproved"),
        });
    }
    let needed = decided.max(spend_draft::approvals_required(&d.outcome));
    if approvers < needed {
        let removed = if who.removed.is_empty() {
            String::new()
        } else {
            format!(" (approved too by {}, removed since)", who.removed.join(", "))
        };
        return Err(Refusal {
            why: format!(
                "refused: {needed} distinct approvers are needed under SPEND.md {version} ({}), and {approvers} approved{removed}",
                listed()
            ),
            alert: (needed > decided).then_some("push.approvals_short"),
        });
    }
    Ok(())
}

/// The bid a bid draft sets, from its change (never from its display).
fn bid_fields(change: &DraftChange) -> serde_json::Value {
    let after = match change {
        DraftChange::Campaign { bid_after: Some(b), .. } => Some(b.minor_units),
        _ => None,
    };
    serde_json::json!({"bid_minor": after})
}

/// The change as recorded: each field before → after.
fn diff_of(change: &DraftChange, before: Option<&serde_json::Value>, response: &serde_json::Value) -> Vec<FieldDiff> {
    match change {
        DraftChange::Campaign { campaign_id, .. } => ["daily_budget_minor", "bid_minor", "status"]
            .iter()
            .filter_map(|f| {
                let b = before.map(|b| b[*f].clone()).unwrap_or_default();
                let a = response[*f].clone();
                (b != a).then(|| FieldDiff {
                    path: format!("campaign/{campaign_id}/{f}"),
                    before: b,
                    after: a,
                })
            })
            .collect(),
        DraftChange::Payment { .. } => vec![FieldDiff {
            path: format!("card/{}/charges", response["card_id"].as_str().unwrap_or_default()),
            before: serde_json::Value::Null,
            after: response.clone(),
        }],
    }
}
