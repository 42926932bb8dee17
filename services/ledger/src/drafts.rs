//! The transactions projection's draft lifecycle: the draft aggregate
//! (`spend_draft`), applied to the events the stream delivers, so that the
//! ledger says what the gateway's view and the approval service say — in
//! the one vocabulary, with dual control counting distinct approvers, and
//! an approval counting only when the approval verifier accepts it (on its
//! own subject, by the approval service, naming the hash of the exact draft
//! bytes).
//!
//! Only events where their writer puts them move a draft
//! (`spend_eventlog::read::classify`): a decision a compromised gateway
//! wrote on a draft subject is recorded in the tree like every byte the
//! ledger is given, and changes no transaction's status.
//!
//! The book keeps the drafts that can still move (proposed, waiting for a
//! human, approved, pushing) and the place of those that ended (so a
//! second proposal on an ended draft's subject is not a new draft), at
//! most [`MAX_OPEN`] in all (the oldest forgotten first). A draft it holds
//! no state of — pushed, ended, forgotten — still moves on the facts that
//! need no history (a push, a failure, a roll-back are what they say); an
//! approval of such a draft moves nothing. After a restart the book is
//! rebuilt from the projection itself: the events of the [`MAX_OPEN`]
//! most recent drafts whose last status can still move ([`OPEN_STATUSES`]).

use spend_core::Money;
use spend_core::bounded::FifoMap;
use spend_core::events::Outcome;
use spend_draft::approvers::Registry;
use spend_draft::fold::{self, Said, Stored};
use spend_draft::{Draft, DraftEvent, DraftStatus};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};

/// Open drafts kept at once.
pub const MAX_OPEN: usize = 100_000;

/// The statuses from which a draft can still move: the drafts the book is
/// rebuilt with after a restart.
pub const OPEN_STATUSES: [DraftStatus; 6] = [
    DraftStatus::Proposed,
    DraftStatus::PendingApproval,
    DraftStatus::AwaitingSecondApproval,
    DraftStatus::Approved,
    DraftStatus::AutoApproved,
    DraftStatus::Pushing,
];

/// A move of one draft: the status it moved to, and for a new draft its
/// account and amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub draft_id: String,
    pub status: DraftStatus,
    pub account_id: Option<String>,
    pub amount: Option<Money>,
}

type Key = (String, String);

pub struct DraftBook {
    /// `None`: the draft ended (its place kept).
    open: FifoMap<Key, Option<Draft>>,
    /// Who may approve, as the log says so far: approvals count only with
    /// a proof by one of them.
    registry: Registry,
}

impl DraftBook {
    /// A book whose approvals count only with passkeys made on `rp`.
    pub fn new(rp: spend_draft::proof::RelyingParty) -> Self {
        Self {
            open: FifoMap::new(MAX_OPEN),
            registry: Registry::new(rp),
        }
    }

    /// The move `m` makes, if it moves a draft.
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) -> Option<Move> {
        let Read::Event { env, aggregate, id } = classify(prefix, m) else {
            return None;
        };
        let org = env.org.to_string();
        if let Some(observed) = self.registry.observe(m.seq, &env) {
            // A removed approver's approvals of drafts still waiting lapse
            // (the projection shows it with the draft's next move).
            if let spend_draft::approvers::Observed::Removed { org, approver_id } = observed {
                for d in self.open.values_mut().flatten().filter(|d| d.org() == org) {
                    d.lapse_approvals_of(&approver_id);
                }
            }
            return None;
        }
        let stored = Stored::new(prefix, &m.subject, &m.payload, m.republished, m.seq, m.time);
        match fold::read(&stored, &env, aggregate, id) {
            Said::Approval(facts) => {
                let key = (org, facts.data.draft_id.clone());
                let draft = self.open.get_mut(&key)?.as_mut()?;
                if !fold::count(&facts, draft, &mut self.registry).ok()? {
                    return None;
                }
                self.settle(&key)
            }
            Said::Proposed { draft, .. } => {
                let key = (org, draft.id().to_string());
                if self.open.contains_key(&key) {
                    // A second proposal on a draft's subject is not a draft,
                    // whether the first is open or ended.
                    return None;
                }
                let found = Move {
                    draft_id: key.1.clone(),
                    status: draft.status(),
                    account_id: Some(draft.account_id().to_string()),
                    amount: Some(draft.spend_impact().clone()),
                };
                self.open.insert_new(key, Some(*draft));
                Some(found)
            }
            Said::Fact(event) => {
                let key = (org, event.draft_id().to_string());
                if let Some(Some(_)) = self.open.get(&key) {
                    return self.step(&key, &event);
                }
                without_history(&event).map(|status| Move {
                    draft_id: key.1,
                    status,
                    account_id: None,
                    amount: None,
                })
            }
            Said::Forged(_) | Said::Misplaced(_) | Said::Other(_) | Said::Unreadable => None,
        }
    }

    fn step(&mut self, key: &Key, event: &DraftEvent) -> Option<Move> {
        if !self.open.get_mut(key)?.as_mut()?.apply(event) {
            return None;
        }
        self.settle(key)
    }

    /// The move of a draft that just moved: its status, and its place
    /// kept without its state once it can move no more.
    fn settle(&mut self, key: &Key) -> Option<Move> {
        let entry = self.open.get_mut(key)?;
        let status = entry.as_ref()?.status();
        if !OPEN_STATUSES.contains(&status) {
            *entry = None;
        }
        Some(Move {
            draft_id: key.1.clone(),
            status,
            account_id: None,
            amount: None,
        })
    }

    /// How many drafts the book keeps that can still move.
    pub fn open_count(&self) -> usize {
        self.open.values().filter(|d| d.is_some()).count()
    }
}

/// The status a fact gives a draft the book does not keep: only facts that
/// say what they are without the draft's history.
fn without_history(event: &DraftEvent) -> Option<DraftStatus> {
    Some(match event {
        DraftEvent::PushStarted(_) => DraftStatus::Pushing,
        DraftEvent::Pushed(_) => DraftStatus::Pushed,
        DraftEvent::Failed(_) => DraftStatus::Failed,
        DraftEvent::RolledBack(_) => DraftStatus::RolledBack,
        DraftEvent::Decided(d) => match d.outcome {
            // A decision of a draft dropped from the book (never its own
            // first sight of the draft: the draft comes first on the log).
            Outcome::Deny => DraftStatus::Denied,
            Outcome::AutoApprove => DraftStatus::AutoApproved,
            Outcome::RequireApproval | Outcome::RequireDualApproval => DraftStatus::PendingApproval,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spend_core::Envelope;
    use spend_core::events::{ChangePushed, ChangeStarted, EventData};
    use spend_testkit::events::{Approvers, decided, payment_proposed, subject_of};

    const PREFIX: &str = "spend.evt";

    /// Given/when/then over stored messages, as the stream delivers them.
    struct Given {
        book: DraftBook,
        seq: u64,
        hash: String,
        approvers: Approvers,
    }

    impl Given {
        /// A draft d1 recorded by an agent, decided with `outcome`.
        fn a_draft_decided(outcome: Outcome) -> Self {
            let proposed = payment_proposed("acme", "d1", 2_000);
            let mut g = Self {
                book: DraftBook::new(spend_draft::humans::test_rp()),
                seq: 0,
                hash: spend_draft::event_hash(&proposed.to_bytes()),
                approvers: Approvers::new("acme", &["alice", "bob", "mallory"]),
            };
            for e in g.approvers.trust() {
                assert_eq!(g.when(e), None, "registry events move no draft");
            }
            assert_eq!(g.when(proposed), Some(DraftStatus::Proposed));
            assert!(g.when(decided("acme", "d1", outcome)).is_some());
            g
        }

        /// `env` stored on its own subject.
        fn when(&mut self, env: Envelope) -> Option<DraftStatus> {
            let subject = subject_of(PREFIX, &env);
            self.when_on(&subject, env)
        }

        /// `env` stored on `subject`, wherever it belongs.
        fn when_on(&mut self, subject: &str, env: Envelope) -> Option<DraftStatus> {
            self.seq += 1;
            let m = StoredMessage {
                seq: self.seq,
                subject: subject.into(),
                payload: env.to_bytes().into(),
                time: chrono::Utc::now(),
                msg_id: None,
                republished: false,
            };
            self.book.apply(PREFIX, &m).map(|mv| mv.status)
        }

        fn approval_by(&mut self, approver: &str) -> Envelope {
            let hash = self.hash.clone();
            self.approvers.approved("d1", approver, &hash)
        }
    }

    fn executor(data: EventData) -> Envelope {
        Envelope::new("spendsignoff/executor", "acme", spend_core::Actor::service("executor"), "change/d1", data)
    }

    fn pushed() -> Envelope {
        executor(EventData::ChangePushed(ChangePushed {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            platform: "sandbox-cards".into(),
            idempotency_key: "d1".into(),
            diff: vec![],
            response: None,
        }))
    }

    #[test]
    fn dual_control_needs_two_distinct_approvers() {
        let mut g = Given::a_draft_decided(Outcome::RequireDualApproval);
        let alice = g.approval_by("alice");
        assert_eq!(g.when(alice), Some(DraftStatus::AwaitingSecondApproval));
        let again = g.approval_by("alice");
        assert_eq!(g.when(again), None, "the same approver twice counts once");
        let bob = g.approval_by("bob");
        assert_eq!(g.when(bob), Some(DraftStatus::Approved));
    }

    #[test]
    fn a_rejection_on_the_approval_subject_rejects() {
        let mut g = Given::a_draft_decided(Outcome::RequireApproval);
        let rejected = Envelope::new(
            "spendsignoff/approval",
            "acme",
            spend_core::Actor::human("alice"),
            "approval/d1",
            EventData::ApprovalRejected(spend_core::events::ApprovalRejected {
                draft_id: "d1".into(),
                approval_id: "r1".into(),
                approver_id: "alice".into(),
                reason: "not this month".into(),
            }),
        );
        assert_eq!(g.when(rejected), Some(DraftStatus::Rejected));
        // A second proposal on the ended draft's subject is no new draft.
        assert_eq!(g.when(payment_proposed("acme", "d1", 1)), None);
        assert_eq!(g.book.open_count(), 0);
    }

    #[test]
    fn a_rejection_on_another_drafts_approval_subject_moves_nothing() {
        let mut g = Given::a_draft_decided(Outcome::RequireApproval);
        let rejected = Envelope::new(
            "spendsignoff/approval",
            "acme",
            spend_core::Actor::human("alice"),
            "approval/d9",
            EventData::ApprovalRejected(spend_core::events::ApprovalRejected {
                draft_id: "d1".into(),
                approval_id: "r1".into(),
                approver_id: "alice".into(),
                reason: "written where d9's are".into(),
            }),
        );
        assert_eq!(g.when(rejected), None, "d1's rejection belongs on approval.d1");
        let alice = g.approval_by("alice");
        assert_eq!(g.when(alice), Some(DraftStatus::Approved), "d1 still waited for a human");
    }

    #[test]
    fn one_approval_approves_what_needs_one() {
        let mut g = Given::a_draft_decided(Outcome::RequireApproval);
        let alice = g.approval_by("alice");
        assert_eq!(g.when(alice), Some(DraftStatus::Approved));
    }

    #[test]
    fn forgeries_move_nothing() {
        let mut g = Given::a_draft_decided(Outcome::RequireApproval);
        // A decision where the gateway may write: not a decision.
        let mut forged = decided("acme", "d1", Outcome::AutoApprove);
        forged.subject = "draft/d1".into();
        assert_eq!(g.when(forged), None);
        // An approval on the draft's subject, and one of other bytes.
        let mut on_draft = g.approval_by("mallory");
        on_draft.subject = "draft/d1".into();
        assert_eq!(g.when(on_draft), None);
        let wrong_hash = g.approvers.approved("d1", "mallory", &"0".repeat(64));
        assert_eq!(g.when(wrong_hash), None);
        // An approval stored on another subject than its own.
        let elsewhere = g.approval_by("mallory");
        assert_eq!(g.when_on("spend.evt.acme.approval.d2", elsewhere), None);
        // A proof by a passkey nobody vouched for: a compromised approval
        // service's own key, enrolled without a countersignature.
        let mut rogue = Approvers::new("acme", &["eve"]);
        let mut rogue_events = rogue.trust();
        rogue_events.truncate(1);
        for e in rogue_events {
            assert_eq!(g.when(e), None);
        }
        let by_eve = rogue.approved("d1", "eve", &g.hash.clone());
        assert_eq!(g.when(by_eve), None, "eve is no trusted approver");
        // The genuine one still counts.
        let alice = g.approval_by("alice");
        assert_eq!(g.when(alice), Some(DraftStatus::Approved));
    }

    #[test]
    fn ended_drafts_leave_the_book_and_pushes_need_no_history() {
        let g = Given::a_draft_decided(Outcome::Deny);
        assert_eq!(g.book.open_count(), 0, "a denied draft cannot move");
        let mut g = Given::a_draft_decided(Outcome::RequireApproval);
        assert_eq!(g.book.open_count(), 1);
        let alice = g.approval_by("alice");
        g.when(alice);
        let started = executor(EventData::ChangeStarted(ChangeStarted {
            change_id: "c1".into(),
            draft_id: "d1".into(),
            before: None,
        }));
        assert_eq!(g.when(started), Some(DraftStatus::Pushing));
        assert_eq!(g.when(pushed()), Some(DraftStatus::Pushed));
        assert_eq!(g.book.open_count(), 0, "pushed: out of the book");
        // A push the book no longer holds the draft of still says what it is.
        assert_eq!(g.when(pushed()), Some(DraftStatus::Pushed));
    }
}
