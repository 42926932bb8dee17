//! Realistic events for tests and benchmarks, and reading them back.

use spend_core::events::{ChangePushed, EventData, Outcome, PolicyEvaluated, Reason};
use spend_core::{Actor, Envelope, Money};
use spend_eventlog::{Append, EventLog, StartAt};

/// A realistic event: the i-th step of a draft's life (proposed → evaluated
/// → pushed), each by its writer on its own aggregate's subject.
pub fn draft_event(prefix: &str, org: &str, i: u64) -> Append {
    let draft = format!("d{}", i / 3);
    let data = match i % 3 {
        0 => EventData::DraftProposed(
            spend_draft::display::proposed(
                &draft,
                &format!("act_{}", i % 7),
                "ROAS above target for 7 days; raise the cap",
                None,
                spend_core::events::DraftChange::Campaign {
                    campaign_id: format!("c{}", i % 11),
                    field: "budget".into(),
                    daily_budget_before: Money::new(5000, "USD").unwrap(),
                    daily_budget_after: Money::new(5000 + ((i % 50) * 100) as i64, "USD").unwrap(),
                    status_before: "active".into(),
                    status_after: "active".into(),
                    bid_before: None,
                    bid_after: None,
                },
            )
            .expect("a campaign change"),
        ),
        1 => EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: draft.clone(),
            outcome: Outcome::RequireApproval,
            reasons: vec![Reason {
                code: "approval.threshold".into(),
                message: "over 25 USD".into(),
            }],
            policy_version: "sha256:abc".into(),
        }),
        _ => EventData::ChangePushed(ChangePushed {
            change_id: format!("ch{}", i / 3),
            draft_id: draft.clone(),
            platform: "sandbox".into(),
            idempotency_key: draft.clone(),
            diff: vec![],
            response: None,
        }),
    };
    let (aggregate, source, actor) = match i % 3 {
        0 => ("draft", "spendsignoff/gateway", Actor::agent("k_test")),
        1 => ("decision", "spendsignoff/policy", Actor::service("policy")),
        _ => ("change", "spendsignoff/executor", Actor::service("executor")),
    };
    let env = Envelope::new(source, org, actor, spend_core::subject::envelope_subject(aggregate, &draft), data);
    let subject = subject_of(prefix, &env);
    Append::new(subject, env.id.to_string(), env.to_bytes())
}

/// Every message on `log` as it stands now: (subject, payload parsed as
/// JSON, `Null` when it is not JSON), in log order.
pub async fn on_log(log: &dyn EventLog) -> Vec<(String, serde_json::Value)> {
    use futures::StreamExt as _;
    let n = log.info().await.expect("log info").last_seq as usize;
    log.subscribe(StartAt::Beginning)
        .await
        .expect("subscribe")
        .take(n)
        .map(|m| {
            let m = m.expect("a stored message");
            (m.subject.clone(), serde_json::from_slice(&m.payload).unwrap_or_default())
        })
        .collect()
        .await
}

/// `env` as the log would deliver it at `seq` (for tests that apply
/// messages to a reader's state without a log).
pub fn stored(prefix: &str, seq: u64, env: &Envelope) -> spend_eventlog::StoredMessage {
    spend_eventlog::StoredMessage {
        seq,
        subject: subject_of(prefix, env),
        payload: env.to_bytes().into(),
        time: chrono::Utc::now(),
        msg_id: None,
        republished: false,
    }
}

/// The stream subject an envelope belongs on: `<prefix>.<org>.<aggregate>.<id>`.
pub fn subject_of(prefix: &str, env: &Envelope) -> String {
    let (aggregate, id) = env.subject.split_once('/').expect("an <aggregate>/<id> subject");
    spend_core::subject::aggregate_subject(prefix, &env.org, aggregate, id).expect("a valid subject")
}

/// A payment of `minor` US cents to openai.com, drafted by an agent as the
/// gateway records it.
pub fn payment_proposed(org: &str, draft_id: &str, minor: i64) -> Envelope {
    Envelope::new(
        "spendsignoff/gateway",
        org,
        Actor::agent("k_test"),
        format!("draft/{draft_id}"),
        EventData::DraftProposed(
            spend_draft::display::proposed(
                draft_id,
                "card_1",
                "API credits",
                None,
                spend_core::events::DraftChange::Payment {
                    amount: Money::new(minor, "USD").unwrap(),
                    merchant: "openai.com".into(),
                    category: Some("software".into()),
                    country: Some("US".into()),
                    url: Some("https://openai.com/billing".into()),
                    https: Some(true),
                    card_id: Some("crd_1".into()),
                    stated_category: None,
                    stated_country: None,
                },
            )
            .expect("a payment"),
        ),
    )
}

/// The policy service's decision of a draft.
pub fn decided(org: &str, draft_id: &str, outcome: Outcome) -> Envelope {
    Envelope::new(
        "spendsignoff/policy",
        org,
        Actor::service("policy"),
        format!("decision/{draft_id}"),
        EventData::PolicyEvaluated(PolicyEvaluated {
            draft_id: draft_id.into(),
            outcome,
            reasons: vec![],
            policy_version: "sha256:test".into(),
        }),
    )
}

/// An organisation's approvers for a test, with software passkeys: the
/// first named is the anchored first admin, the others approvers she
/// countersigned. Their approvals carry proofs the real verifier accepts,
/// once [`Approvers::trust`]'s events are on the log before them.
pub struct Approvers {
    org: String,
    admin: String,
    humans: std::collections::BTreeMap<String, spend_draft::humans::Human>,
}

/// The policy version the kit's decisions name, which its approvals sign.
pub const TEST_POLICY_VERSION: &str = "sha256:test";

/// The expiry the kit's approvals sign (far ahead: tests of expiry make
/// their own).
pub const FAR_EXPIRY: &str = "2099-01-01T00:00:00Z";

impl Approvers {
    pub fn new(org: &str, names: &[&str]) -> Self {
        use spend_draft::approvers::Role;
        use spend_draft::humans::Human;
        assert!(!names.is_empty(), "a first admin is needed");
        let humans = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), Human::new(n, if i == 0 { Role::Admin } else { Role::Approver })))
            .collect();
        Self {
            org: org.into(),
            admin: names[0].into(),
            humans,
        }
    }

    /// The events that make them trusted, in the order to append them: the
    /// first admin's enrollment and the operator's anchor of it, then each
    /// other approver's enrollment with the admin's countersignature.
    pub fn trust(&mut self) -> Vec<Envelope> {
        let org = self.org.clone();
        let admin = &self.humans[&self.admin];
        let mut out = vec![
            enrolled(&org, admin.enrolled(&org, None)),
            Envelope::new(
                "spendsignoff/cli",
                &org,
                Actor::human("operator"),
                format!("anchor/{org}"),
                EventData::ApproverAnchored(admin.anchored(&org)),
            ),
        ];
        let others: Vec<String> = self.humans.keys().filter(|k| **k != self.admin).cloned().collect();
        for name in others {
            let mut admin = self.humans.remove(&self.admin).expect("the admin");
            let e = self.humans[&name].enrolled(&org, Some(&mut admin));
            self.humans.insert(self.admin.clone(), admin);
            out.push(enrolled(&org, e));
        }
        out
    }

    /// The org's first admin removing approver `name`, as the approval
    /// service records it (`approver/<name>`).
    pub fn removed(&self, name: &str, reason: &str) -> Envelope {
        Envelope::new(
            "spendsignoff/approval",
            &self.org,
            Actor::human(&self.admin),
            format!("approver/{name}"),
            EventData::ApproverRemoved(spend_core::events::ApproverRemoved {
                org: self.org.clone(),
                approver_id: name.into(),
                reason: reason.into(),
            }),
        )
    }

    /// The test's approver `name`, with their software passkey.
    pub fn human(&mut self, name: &str) -> &mut spend_draft::humans::Human {
        self.humans.get_mut(name).unwrap_or_else(|| panic!("{name} is not one of the test's approvers"))
    }

    /// A genuine approval by `approver` of the draft whose stored bytes hash
    /// to `approved_hash` (`spend_draft::event_hash`), as the approval
    /// service records it, signing [`TEST_POLICY_VERSION`].
    pub fn approved(&mut self, draft_id: &str, approver: &str, approved_hash: &str) -> Envelope {
        self.approved_under(draft_id, approver, approved_hash, TEST_POLICY_VERSION)
    }

    /// [`Approvers::approved`] signing `policy_version` (a policy
    /// proposal's own version, say).
    pub fn approved_under(&mut self, draft_id: &str, approver: &str, approved_hash: &str, policy_version: &str) -> Envelope {
        self.approved_until(draft_id, approver, approved_hash, policy_version, FAR_EXPIRY)
    }

    /// [`Approvers::approved_under`] with the proof expiring at `expires_at`
    /// (RFC 3339; in the past for an expired proof).
    pub fn approved_until(&mut self, draft_id: &str, approver: &str, approved_hash: &str, policy_version: &str, expires_at: &str) -> Envelope {
        let granted = self.grant(draft_id, approver, approved_hash, policy_version, expires_at);
        self.recorded(approver, draft_id, EventData::ApprovalGranted(granted))
    }

    fn grant(&mut self, id: &str, approver: &str, approved_hash: &str, policy_version: &str, expires_at: &str) -> spend_core::events::ApprovalGranted {
        let human = self
            .humans
            .get_mut(approver)
            .unwrap_or_else(|| panic!("{approver} is not one of the test's approvers"));
        human.grant(id, approved_hash, policy_version, expires_at, 1)
    }

    /// An approval event as the approval service records it, on `approval.<id>`.
    fn recorded(&self, approver: &str, id: &str, data: EventData) -> Envelope {
        Envelope::new("spendsignoff/approval", &self.org, Actor::human(approver), format!("approval/{id}"), data)
    }
}

impl Approvers {
    /// A SPEND.md proposal approved as the approval service records it:
    /// its approval request, then each of `approvers`' approvals signing
    /// the request's expiry (a version that loosens anything needs two,
    /// one an admin: the first of the test's approvers is).
    pub fn approved_policy(&mut self, proposal_id: &str, approvers: &[&str], approved_hash: &str, version: &str) -> Vec<Envelope> {
        let request = spend_core::events::ApprovalRequested {
            draft_id: proposal_id.into(),
            kind: "policy".into(),
            approved_hash: approved_hash.into(),
            policy_version: version.into(),
            required: approvers.len() as u32,
            expires_at: FAR_EXPIRY.into(),
            timeout_action: "deny".into(),
            link_token_sha256: "0".repeat(64),
        };
        let mut v = vec![Envelope::new(
            "spendsignoff/approval",
            &self.org,
            Actor::service("approval"),
            format!("approval/{proposal_id}"),
            EventData::ApprovalRequested(request),
        )];
        for a in approvers {
            v.push(self.approved_under(proposal_id, a, approved_hash, version));
        }
        v
    }

    /// A genuine approval by `approver` of the rollback request whose
    /// stored bytes hash to `request_hash`, signing the request's
    /// `expires_at`, as the approval service records it.
    pub fn approved_rollback(&mut self, rollback_id: &str, approver: &str, request_hash: &str, expires_at: &str) -> Envelope {
        let granted = self.grant(rollback_id, approver, request_hash, TEST_POLICY_VERSION, expires_at);
        self.recorded(
            approver,
            rollback_id,
            EventData::RollbackApproved(spend_core::events::RollbackApproved(granted)),
        )
    }
}

/// An operator's request (`spend rollback`) to undo the pushes of `drafts`.
pub fn rollback_requested(org: &str, rollback_id: &str, drafts: &[&str], expires_at: &str) -> Envelope {
    Envelope::new(
        "spendsignoff/cli",
        org,
        Actor::human("operator"),
        format!("rollback_request/{rollback_id}"),
        EventData::RollbackRequested(spend_core::events::RollbackRequested {
            rollback_id: rollback_id.into(),
            changes: drafts
                .iter()
                .map(|d| spend_core::events::RollbackItem {
                    change_id: format!("ch_{d}"),
                    draft_id: d.to_string(),
                })
                .collect(),
            reason: "the agent went too far".into(),
            requested_by: "operator".into(),
            expires_at: expires_at.into(),
        }),
    )
}

fn enrolled(org: &str, mut e: spend_core::events::ApproverEnrolled) -> Envelope {
    let id = e.approver_id.clone();
    // Display only (no signature covers it): where approval requests go.
    e.email.get_or_insert_with(|| format!("{id}@{org}.example"));
    Envelope::new(
        "spendsignoff/approval",
        org,
        Actor::human(&id),
        format!("approver/{id}"),
        EventData::ApproverEnrolled(e),
    )
}

/// A proof-shaped value that no verifier accepts: for forged approvals
/// (a compromised writer can put any bytes there, never a passkey's
/// signature).
pub fn bogus_proof(draft_id: &str, approver_id: &str, approved_hash: &str) -> spend_core::events::ApprovalProof {
    spend_core::events::ApprovalProof {
        approval_id: "forged".into(),
        draft_id: draft_id.into(),
        approved_hash: approved_hash.into(),
        policy_version: TEST_POLICY_VERSION.into(),
        expires_at: FAR_EXPIRY.into(),
        approver_id: approver_id.into(),
        credential_id: "bm9uZQ".into(),
        authenticator_data: "AAAA".into(),
        client_data_json: "e30".into(),
        signature: "MEUCIQ".into(),
    }
}

/// Appends each envelope on its own subject (`subject_of`), in order.
pub async fn append_all(log: &dyn EventLog, prefix: &str, envs: Vec<Envelope>) {
    for e in envs {
        log.append(Append::new(subject_of(prefix, &e), e.id.to_string(), e.to_bytes()))
            .await
            .expect("appending a test event");
    }
}
