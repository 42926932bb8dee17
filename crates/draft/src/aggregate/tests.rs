use super::*;
use crate::verify::{APPROVAL_SOURCE, ApprovalFacts, ForgeryKind, recorded_approval, verify_for_hash};
use spend_core::{Actor, Envelope};

// ---- given ----

/// A change to genuine approval facts.
type Forge = fn(&mut ApprovalFacts);

/// core's sample proposal (a budget raise of 25 USD), as draft `id`.
fn proposal(id: &str) -> DraftProposed {
    let sample = spend_core::events::samples().into_iter().find_map(|e| match e {
        EventData::DraftProposed(p) => Some(p),
        _ => None,
    });
    DraftProposed {
        draft_id: id.into(),
        ..sample.unwrap()
    }
}

/// The bytes the gateway stores for a proposal.
fn stored(data: DraftProposed) -> Vec<u8> {
    let id = data.draft_id.clone();
    Envelope::new(
        "spendsignoff/gateway",
        "acme",
        Actor::agent("key_1"),
        format!("draft/{id}"),
        EventData::DraftProposed(data),
    )
    .to_bytes()
}

/// A draft `d1` as recorded on the log.
fn proposed() -> Draft {
    let mut state = None;
    let event = DraftEvent::from_stored_proposal(&stored(proposal("d1"))).unwrap();
    assert!(apply(&mut state, &event));
    state.unwrap()
}

/// The humans of these tests: the first to approve is acme's anchored
/// first admin, the others approvers she countersigned; the registry
/// learns of them as a reader of the log would.
struct World {
    registry: crate::approvers::Registry,
    humans: std::collections::HashMap<String, crate::humans::Human>,
    admin: Option<String>,
}

thread_local! {
    static WORLD: std::cell::RefCell<World> = std::cell::RefCell::new(World {
        registry: crate::approvers::Registry::new(crate::humans::test_rp()),
        humans: std::collections::HashMap::new(),
        admin: None,
    });
}

fn with_registry<R>(f: impl FnOnce(&mut crate::approvers::Registry) -> R) -> R {
    WORLD.with(|w| f(&mut w.borrow_mut().registry))
}

/// A fresh, genuine approval of `hash` by `approver` (enrolled on first use).
fn grant(approver: &str, draft: &Draft, hash: &str) -> ApprovalGranted {
    use crate::approvers::{Enrollment, Role};
    use crate::humans::Human;
    WORLD.with(|w| {
        let w = &mut *w.borrow_mut();
        if !w.humans.contains_key(approver) {
            let enrolled = match w.admin.clone() {
                None => {
                    let h = Human::new(approver, Role::Admin);
                    let e = h.enrolled("acme", None);
                    w.registry.enroll(Enrollment::from_event(&e).unwrap()).unwrap();
                    w.registry.anchor("acme", &h.fingerprint()).unwrap();
                    w.admin = Some(approver.to_string());
                    w.humans.insert(approver.to_string(), h);
                    None
                }
                Some(admin) => {
                    let h = Human::new(approver, Role::Approver);
                    let e = h.enrolled("acme", w.humans.get_mut(&admin));
                    w.humans.insert(approver.to_string(), h);
                    Some(e)
                }
            };
            if let Some(e) = enrolled {
                w.registry.enroll(Enrollment::from_event(&e).unwrap()).unwrap();
            }
        }
        let version = draft.decided_version().unwrap_or("sha256:00").to_string();
        let step = draft.approvers().len() as u32 + 1;
        w.humans
            .get_mut(approver)
            .unwrap()
            .grant(draft.id(), hash, &version, "2099-01-01T00:00:00Z", step)
    })
}

/// The facts of an approval the approval service recorded for a human,
/// with a genuine proof of `hash`.
fn recorded_hash(approver: &str, draft: &Draft, hash: &str) -> ApprovalFacts {
    ApprovalFacts {
        subject: format!("spend.evt.acme.approval.{}", draft.id()),
        org: "acme".into(),
        aggregate: "approval".into(),
        subject_id: draft.id().into(),
        actor: Actor::human(format!("{approver}@example.com")),
        source: APPROVAL_SOURCE.into(),
        republished: false,
        seq: 100,
        stored_at: chrono::Utc::now(),
        data: grant(approver, draft, hash),
    }
}

fn recorded(approver: &str, draft: &Draft) -> ApprovalFacts {
    recorded_hash(approver, draft, draft.proposed_hash())
}

fn checked(facts: &ApprovalFacts, draft: &Draft) -> Result<VerifiedApproval, crate::Forgery> {
    with_registry(|r| recorded_approval(facts, draft, r))
}

fn approval(approver: &str, draft: &Draft) -> VerifiedApproval {
    checked(&recorded(approver, draft), draft).unwrap()
}

fn decide_as(outcome: Outcome) -> Command {
    Command::Decide {
        outcome,
        reasons: vec![],
        policy_version: "sha256:00".into(),
    }
}

/// The draft after `command`: decides it, then applies what it decided
/// as the log's readers would (an approval through the verifier), and
/// checks every decided event moved the draft.
fn when(mut draft: Draft, command: Command) -> Result<Draft, DraftError> {
    for data in decide(Some(&draft), command)? {
        let event = match data {
            // What the approval service records for this approver: a
            // fresh proof (the command's was counted when it was made).
            EventData::ApprovalGranted(g) => DraftEvent::Approved(checked(&recorded(&g.approver_id, &draft), &draft).unwrap()),
            other => DraftEvent::from_fact(other).unwrap(),
        };
        assert!(draft.apply(&event), "{} did not move a {} draft", event.event_type(), draft.status());
    }
    Ok(draft)
}

fn pending() -> Draft {
    when(proposed(), decide_as(Outcome::RequireApproval)).unwrap()
}

fn pending_dual() -> Draft {
    when(proposed(), decide_as(Outcome::RequireDualApproval)).unwrap()
}

/// Dual control with one approver so far.
fn half_approved() -> Draft {
    let d = pending_dual();
    let a = approval("u_alice", &d);
    when(d, Command::Approve(a)).unwrap()
}

fn approved() -> Draft {
    let d = pending();
    let a = approval("u_alice", &d);
    when(d, Command::Approve(a)).unwrap()
}

fn pushing() -> Draft {
    when(
        approved(),
        Command::StartPush {
            change_id: "c1".into(),
            before: None,
        },
    )
    .unwrap()
}

fn pushed() -> Draft {
    let push = Command::RecordPushed {
        platform: "sandbox".into(),
        idempotency_key: "d1".into(),
        diff: vec![],
        response: None,
    };
    when(pushing(), push).unwrap()
}

fn invalid(draft: &Draft, command: Command) -> DraftError {
    let name = command.name();
    let e = decide(Some(draft), command).unwrap_err();
    assert_eq!(
        e,
        DraftError::InvalidTransition {
            draft_id: draft.id().into(),
            from: draft.status(),
            command: name,
        }
    );
    e
}

// ---- proposal ----

#[test]
fn proposing_a_new_draft_records_it_with_the_hash_of_its_stored_bytes() {
    let events = decide(None, Command::Propose(Box::new(proposal("d1")))).unwrap();
    assert_eq!(events, vec![EventData::DraftProposed(proposal("d1"))]);
    let bytes = stored(proposal("d1"));
    let mut state = None;
    assert!(apply(&mut state, &DraftEvent::from_stored_proposal(&bytes).unwrap()));
    let d = state.unwrap();
    assert_eq!((d.id(), d.org(), d.status()), ("d1", "acme", DraftStatus::Proposed));
    assert_eq!(d.proposed_hash(), event_hash(&bytes));
    assert_eq!(d.spend_impact(), &Money::new(2500, "USD").unwrap());
    assert_eq!(d.last_event(), "spend.draft.proposed.v1");
}

#[test]
fn proposing_an_existing_draft_again_is_refused_and_a_second_proposal_changes_nothing() {
    let d = proposed();
    assert_eq!(
        decide(Some(&d), Command::Propose(Box::new(proposal("d1")))).unwrap_err(),
        DraftError::AlreadyExists { draft_id: "d1".into() }
    );
    let mut other = proposal("d1");
    other.rationale = "a replay with other content".into();
    let mut state = Some(d.clone());
    assert!(!apply(&mut state, &DraftEvent::from_stored_proposal(&stored(other)).unwrap()));
    assert_eq!(state, Some(d), "the first proposal of an id wins");
}

#[test]
fn nothing_but_a_proposal_applies_to_a_draft_that_does_not_exist() {
    assert_eq!(
        decide(None, Command::MarkStale { detail: "x".into() }).unwrap_err(),
        DraftError::NotFound { command: "mark stale" }
    );
    let mut state = None;
    let decided = DraftEvent::from_fact(EventData::PolicyEvaluated(PolicyEvaluated {
        draft_id: "d1".into(),
        outcome: Outcome::AutoApprove,
        reasons: vec![],
        policy_version: "v".into(),
    }))
    .unwrap();
    assert!(!apply(&mut state, &decided));
    assert_eq!(state, None);
}

#[test]
fn bytes_that_are_not_a_stored_proposal_are_not_a_proposal() {
    assert_eq!(DraftEvent::from_stored_proposal(b"{}"), None);
    let alert = Envelope::new(
        "spendsignoff/gateway",
        "acme",
        Actor::service("gateway"),
        "draft/d1",
        EventData::DraftStaled(DraftStaled {
            draft_id: "d1".into(),
            reason: STALE_EXPIRED.into(),
            detail: "x".into(),
        }),
    );
    assert_eq!(DraftEvent::from_stored_proposal(&alert.to_bytes()), None);
}

// ---- policy decision ----

#[test]
fn the_policy_decision_moves_a_proposed_draft_to_its_outcome() {
    for (outcome, status) in [
        (Outcome::Deny, DraftStatus::Denied),
        (Outcome::AutoApprove, DraftStatus::AutoApproved),
        (Outcome::RequireApproval, DraftStatus::PendingApproval),
        (Outcome::RequireDualApproval, DraftStatus::PendingApproval),
    ] {
        let d = when(proposed(), decide_as(outcome.clone())).unwrap();
        assert_eq!(d.status(), status, "{outcome:?}");
        assert_eq!(d.decision().unwrap().outcome, outcome);
        assert_eq!(d.last_event(), "spend.policy.evaluated.v1");
    }
}

#[test]
fn a_decided_draft_is_not_decided_again() {
    invalid(&pending(), decide_as(Outcome::AutoApprove));
    let mut d = pending();
    let again = DraftEvent::Decided(PolicyEvaluated {
        draft_id: "d1".into(),
        outcome: Outcome::AutoApprove,
        reasons: vec![],
        policy_version: "v2".into(),
    });
    assert!(!d.apply(&again));
    assert_eq!(d.status(), DraftStatus::PendingApproval);
}

// ---- human approval ----

#[test]
fn one_human_approval_approves_a_draft_that_requires_one() {
    let d = approved();
    assert_eq!(d.status(), DraftStatus::Approved);
    assert_eq!(d.approvers(), ["u_alice"]);
    assert_eq!(d.last_event(), "spend.approval.granted.v1");
}

#[test]
fn dual_control_needs_two_distinct_approvers() {
    let d = pending_dual();
    assert_eq!(d.approvals_needed(), 2);
    let alice = approval("u_alice", &d);
    let d = when(d, Command::Approve(alice.clone())).unwrap();
    assert_eq!(d.status(), DraftStatus::AwaitingSecondApproval);

    // The same approver twice is refused, and on the log counts once.
    let alice_again = approval("u_alice", &d);
    assert_eq!(
        decide(Some(&d), Command::Approve(alice_again.clone())).unwrap_err(),
        DraftError::SameApprover {
            draft_id: "d1".into(),
            approver_id: "u_alice".into(),
        }
    );
    let mut replayed = d.clone();
    assert!(!replayed.apply(&DraftEvent::Approved(alice_again)));
    assert_eq!(replayed, d);

    // A second, distinct approver approves it.
    let bob = approval("u_bob", &d);
    let d = when(d, Command::Approve(bob)).unwrap();
    assert_eq!(d.status(), DraftStatus::Approved);
    assert_eq!(d.approvers(), ["u_alice", "u_bob"]);
}

#[test]
fn an_approval_naming_another_events_hash_is_refused() {
    let d = pending();
    let other = event_hash(&stored(proposal("d2")));
    let facts = recorded_hash("u_alice", &d, &other);
    assert_eq!(checked(&facts, &d).unwrap_err().kind, ForgeryKind::WrongHash);

    // Even an approval verified for other bytes does not move this draft.
    let facts = recorded_hash("u_alice", &d, &other);
    let for_other = with_registry(|r| verify_for_hash(&facts, &other, "d1", r)).unwrap();
    assert_eq!(
        decide(Some(&d), Command::Approve(for_other.clone())).unwrap_err(),
        DraftError::WrongHash {
            draft_id: "d1".into(),
            expected: d.proposed_hash().into(),
            found: other,
        }
    );
    let mut replayed = d.clone();
    assert!(!replayed.apply(&DraftEvent::Approved(for_other)));
    assert_eq!(replayed.status(), DraftStatus::PendingApproval);
}

#[test]
fn an_approval_of_another_draft_is_refused() {
    let d = pending();
    let mut other = d.clone();
    other.proposal.draft_id = "d2".into();
    let a = approval("u_alice", &other);
    assert_eq!(
        decide(Some(&d), Command::Approve(a.clone())).unwrap_err(),
        DraftError::WrongDraft {
            draft_id: "d1".into(),
            found: "d2".into(),
        }
    );
    let mut replayed = d.clone();
    assert!(!replayed.apply(&DraftEvent::Approved(a)));
}

#[test]
fn a_denied_draft_cannot_be_approved() {
    let denied = when(proposed(), decide_as(Outcome::Deny)).unwrap();
    let a = approval("u_alice", &denied);
    invalid(&denied, Command::Approve(a.clone()));
    let mut d = denied.clone();
    assert!(!d.apply(&DraftEvent::Approved(a)));
    assert_eq!(d.status(), DraftStatus::Denied);
}

#[test]
fn a_draft_the_policy_has_not_decided_cannot_be_approved() {
    let d = proposed();
    invalid(&d, Command::Approve(approval("u_alice", &d)));
}

#[test]
fn forged_approvals_are_refused_with_a_reason_naming_the_draft() {
    let d = pending();
    let cases: Vec<(Forge, ForgeryKind)> = vec![
        (|f| f.aggregate = "draft".into(), ForgeryKind::WrongAggregate),
        (|f| f.actor = Actor::agent("key_1"), ForgeryKind::NotHuman),
        (|f| f.source = "spendsignoff/gateway".into(), ForgeryKind::WrongSource),
        (|f| f.republished = true, ForgeryKind::Republished),
        (|f| f.subject_id = "d2".into(), ForgeryKind::IdMismatch),
        (|f| f.data.draft_id = "d2".into(), ForgeryKind::IdMismatch),
        (|f| f.org = "other".into(), ForgeryKind::WrongOrg),
        (|f| f.data.proof.policy_version = "sha256:other".into(), ForgeryKind::ProofMismatch),
        (|f| f.data.approver_id = "u_bob".into(), ForgeryKind::ProofMismatch),
    ];
    for (forge, kind) in cases {
        let mut facts = recorded("u_alice", &d);
        forge(&mut facts);
        let forgery = checked(&facts, &d).unwrap_err();
        assert_eq!(forgery.kind, kind, "{forgery}");
        assert!(forgery.to_string().starts_with("approval.forged: "), "{forgery}");
        assert!(forgery.detail.contains("d1"), "{forgery}");
    }
}

#[test]
fn a_removed_approvers_pending_approval_lapses() {
    let mut d = half_approved();
    assert_eq!(d.status(), DraftStatus::AwaitingSecondApproval);
    assert!(!d.lapse_approvals_of("u_bob"), "bob gave none");
    assert!(d.lapse_approvals_of("u_alice"));
    assert_eq!((d.status(), d.approvers().len()), (DraftStatus::PendingApproval, 0));
    let mut done = approved();
    assert!(!done.lapse_approvals_of("u_alice"), "a complete approval stands");
    assert_eq!(done.status(), DraftStatus::Approved);
}

#[test]
fn a_human_rejects_a_pending_draft() {
    for d in [proposed(), pending(), half_approved()] {
        let reject = Command::Reject {
            approval_id: "a9".into(),
            approver_id: "u_carol".into(),
            reason: "not this quarter".into(),
        };
        let d = when(d, reject).unwrap();
        assert_eq!(d.status(), DraftStatus::Rejected);
        assert_eq!(d.status().notification(), Some("transaction.declined"));
    }
}

#[test]
fn an_approved_draft_can_no_longer_be_rejected_staled_or_expired() {
    let d = approved();
    invalid(
        &d,
        Command::Reject {
            approval_id: "a9".into(),
            approver_id: "u_carol".into(),
            reason: "late".into(),
        },
    );
    invalid(&d, Command::MarkStale { detail: "x".into() });
    invalid(&d, Command::Expire { detail: "x".into() });
}

#[test]
fn a_rejected_draft_cannot_be_approved() {
    let reject = Command::Reject {
        approval_id: "a9".into(),
        approver_id: "u_carol".into(),
        reason: "no".into(),
    };
    let d = when(pending(), reject).unwrap();
    invalid(&d, Command::Approve(approval("u_alice", &d)));
}

// ---- stale and expired ----

#[test]
fn a_pending_draft_goes_stale_when_the_live_state_moves() {
    let d = when(
        pending(),
        Command::MarkStale {
            detail: "campaign c1 changed".into(),
        },
    )
    .unwrap();
    assert_eq!(d.status(), DraftStatus::Stale);
    assert_eq!(d.last_event(), "spend.draft.staled.v1");
    invalid(&d, Command::Approve(approval("u_alice", &d)));
}

#[test]
fn a_request_that_escalates_is_extended_once_and_only_later() {
    let request = |d: &Draft, action: &str| {
        DraftEvent::Requested(ApprovalRequested {
            draft_id: "d1".into(),
            kind: "draft".into(),
            approved_hash: d.proposed_hash().to_string(),
            policy_version: "sha256:00".into(),
            required: 1,
            expires_at: "2026-11-21T12:15:00Z".into(),
            timeout_action: action.into(),
            link_token_sha256: "ab".repeat(32),
        })
    };
    let escalation = |from: &str, to: &str| {
        DraftEvent::Escalated(ApprovalEscalated {
            draft_id: "d1".into(),
            previous_expires_at: from.into(),
            expires_at: to.into(),
            channel: "email".into(),
        })
    };
    let mut d = pending();
    assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")), "no request yet");
    assert!(d.apply(&request(&d.clone(), "escalate")));
    assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:10:00Z")), "never sooner");
    assert!(!d.apply(&escalation("2026-11-21T12:00:00Z", "2026-11-21T12:30:00Z")), "from another expiry");
    assert!(d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")));
    assert_eq!(d.approval_expires_at(), Some("2026-11-21T12:30:00Z"), "what proofs sign from now on");
    assert_eq!(d.status(), DraftStatus::PendingApproval);
    assert!(d.escalated());
    assert!(!d.apply(&escalation("2026-11-21T12:30:00Z", "2026-11-21T12:45:00Z")), "once");
    // A request that denies on timeout never escalates.
    let mut d = pending();
    assert!(d.apply(&request(&d.clone(), "deny")));
    assert!(!d.apply(&escalation("2026-11-21T12:15:00Z", "2026-11-21T12:30:00Z")));
    assert_eq!(d.approval_expires_at(), Some("2026-11-21T12:15:00Z"));
}

#[test]
fn a_draft_left_waiting_too_long_expires() {
    let d = pending();
    assert!(!d.is_overdue(d.proposed_at() + Duration::hours(47)));
    assert!(d.is_overdue(d.proposed_at() + Duration::hours(48)));
    let events = decide(Some(&d), Command::Expire { detail: "48 h".into() }).unwrap();
    assert_eq!(
        events,
        vec![EventData::DraftStaled(DraftStaled {
            draft_id: "d1".into(),
            reason: "expired".into(),
            detail: "48 h".into(),
        })]
    );
    let d = when(d, Command::Expire { detail: "48 h".into() }).unwrap();
    assert_eq!(d.status(), DraftStatus::Expired);
    assert!(!d.is_overdue(d.proposed_at() + Duration::hours(49)), "only a pending draft is overdue");
}

#[test]
fn a_staling_with_an_unknown_reason_changes_nothing() {
    let mut d = pending();
    let odd = DraftEvent::Staled(DraftStaled {
        draft_id: "d1".into(),
        reason: "because".into(),
        detail: "x".into(),
    });
    assert!(!d.apply(&odd));
    assert_eq!(d.status(), DraftStatus::PendingApproval);
}

// ---- push ----

#[test]
fn an_approved_draft_is_pushed_in_two_steps() {
    let d = pushing();
    assert_eq!((d.status(), d.change_id()), (DraftStatus::Pushing, Some("c1")));
    let d = pushed();
    assert_eq!(d.status(), DraftStatus::Pushed);
    assert_eq!(d.status().notification(), Some("transaction.completed"));
    assert_eq!(d.last_event(), "spend.change.pushed.v1");
}

#[test]
fn an_auto_approved_draft_is_pushed_without_a_human() {
    let d = when(proposed(), decide_as(Outcome::AutoApprove)).unwrap();
    invalid(&d, Command::Approve(approval("u_alice", &d)));
    let d = when(
        d,
        Command::StartPush {
            change_id: "c1".into(),
            before: None,
        },
    )
    .unwrap();
    assert_eq!(d.status(), DraftStatus::Pushing);
    assert!(d.approvers().is_empty());
}

#[test]
fn a_draft_waiting_for_a_human_cannot_be_pushed() {
    invalid(
        &pending(),
        Command::StartPush {
            change_id: "c1".into(),
            before: None,
        },
    );
    invalid(
        &half_approved(),
        Command::StartPush {
            change_id: "c1".into(),
            before: None,
        },
    );
    invalid(
        &pushing(),
        Command::StartPush {
            change_id: "c2".into(),
            before: None,
        },
    );
}

#[test]
fn a_push_that_fails_for_good_fails_the_draft() {
    let d = when(
        pushing(),
        Command::RecordFailed {
            reason: "campaign archived".into(),
        },
    )
    .unwrap();
    assert_eq!(d.status(), DraftStatus::Failed);
    assert!(d.status().is_terminal());
    invalid(
        &d,
        Command::RollBack {
            change_id: "c2".into(),
            diff: vec![],
        },
    );
}

#[test]
fn only_a_started_push_is_recorded_as_pushed_or_failed() {
    let push = || Command::RecordPushed {
        platform: "sandbox".into(),
        idempotency_key: "d1".into(),
        diff: vec![],
        response: None,
    };
    invalid(&approved(), push());
    invalid(&pushed(), push());
    invalid(&approved(), Command::RecordFailed { reason: "x".into() });
}

#[test]
fn a_pushed_change_is_rolled_back_by_a_new_change() {
    let events = decide(
        Some(&pushed()),
        Command::RollBack {
            change_id: "c2".into(),
            diff: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![EventData::ChangeRolledBack(ChangeRolledBack {
            change_id: "c2".into(),
            draft_id: "d1".into(),
            rollback_of: "c1".into(),
            diff: vec![],
            rollback_id: None,
            response: None,
        })]
    );
    let d = when(
        pushed(),
        Command::RollBack {
            change_id: "c2".into(),
            diff: vec![],
        },
    )
    .unwrap();
    assert_eq!(d.status(), DraftStatus::RolledBack);
    invalid(
        &d,
        Command::RollBack {
            change_id: "c3".into(),
            diff: vec![],
        },
    );
    invalid(
        &pushing(),
        Command::RollBack {
            change_id: "c2".into(),
            diff: vec![],
        },
    );
}

// ---- apply ignores what the state machine would not accept ----

#[test]
fn apply_ignores_an_out_of_state_event() {
    let mut d = pending();
    let before = d.clone();
    let out_of_order = [
        DraftEvent::Pushed(ChangePushed {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            platform: "sandbox".into(),
            idempotency_key: "d1".into(),
            diff: vec![],
            response: None,
        }),
        DraftEvent::PushStarted(ChangeStarted {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            before: None,
        }),
        DraftEvent::RolledBack(ChangeRolledBack {
            change_id: "c2".into(),
            draft_id: "d1".into(),
            rollback_of: "c1".into(),
            diff: vec![],
            rollback_id: None,
            response: None,
        }),
    ];
    for e in &out_of_order {
        assert!(!d.apply(e), "{}", e.event_type());
    }
    assert_eq!(d, before);
}

#[test]
fn apply_ignores_an_event_of_another_draft() {
    let mut d = pending();
    let other = DraftEvent::Staled(DraftStaled {
        draft_id: "d2".into(),
        reason: STALE_EXPIRED.into(),
        detail: "x".into(),
    });
    assert!(!d.apply(&other));
    assert_eq!(d.status(), DraftStatus::PendingApproval);
}

#[test]
fn apply_ignores_a_push_result_naming_another_change() {
    let mut d = pushing();
    let failed_elsewhere = DraftEvent::Failed(ChangeFailed {
        change_id: "c9".into(),
        draft_id: "d1".into(),
        reason: "x".into(),
    });
    assert!(!d.apply(&failed_elsewhere));
    assert_eq!(d.status(), DraftStatus::Pushing);
    let mut d = pushed();
    let rollback_of_other = DraftEvent::RolledBack(ChangeRolledBack {
        change_id: "c2".into(),
        draft_id: "d1".into(),
        rollback_of: "c9".into(),
        diff: vec![],
        rollback_id: None,
        response: None,
    });
    assert!(!d.apply(&rollback_of_other));
    assert_eq!(d.status(), DraftStatus::Pushed);
}

#[test]
fn only_lifecycle_facts_convert_without_verification() {
    let approval = EventData::ApprovalGranted(recorded("u_alice", &pending()).data);
    assert_eq!(DraftEvent::from_fact(approval), None, "an approval enters only through the verifier");
    assert_eq!(DraftEvent::from_fact(EventData::DraftProposed(proposal("d1"))), None);
}
