//! The notices the log asks for, and what became of each: pure, rebuilt by
//! replaying the log, like the rest of the approval service's book.
//!
//! A notice is planned when its event is read; a replica takes it on by
//! appending `spend.notification.attempted.v1` on `notification.<id>` with
//! the subject's expected last sequence (0 the first time), so exactly one
//! replica delivers it; its outcome (`sent` or `failed`) ends it. A notice
//! taken on by a replica that then went away (no outcome within the lease)
//! is taken on again, at most [`MAX_ATTEMPTS`] times.
//!
//! **Floods.** Of each notification event kind, an organisation gets at
//! most [`individual_per_window`] messages a window (a minute by default);
//! the rest of that window's are folded into one digest, sent when the
//! window is over — a burst of security alerts reads as three alerts and
//! "47 more".

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use spend_core::bounded::FifoMap;
use spend_core::events::{NotificationAttempted, NotificationFailed, NotificationSent};

use super::plan::{Message, Notice, Target, notice_id};

/// Notices remembered (planned, delivered or failed), the oldest forgotten
/// first.
pub const MAX_NOTICES: usize = 100_000;
/// Flood windows remembered.
const MAX_WINDOWS: usize = 10_000;
/// Messages of one kind an organisation gets singly per window: three
/// security alerts (a burst of them is one story), ten of anything else.
pub fn individual_per_window(kind: &str) -> u32 {
    if kind == "security.alert" { 3 } else { 10 }
}
/// How long after a window ends its digest waits for late events.
const WINDOW_GRACE_SECS: i64 = 5;
/// A notice is taken on at most this often (replicas that died with it).
pub const MAX_ATTEMPTS: u32 = 3;

/// Who has a notice, as the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub attempt: u32,
    pub replica: String,
    /// When the claim was stored.
    pub at: DateTime<Utc>,
    /// Its stream sequence: what the outcome's append expects.
    pub seq: u64,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// `None` while only another replica's claim is known (a digest this
    /// replica has not closed yet).
    notice: Option<Notice>,
    claim: Option<Claim>,
    done: bool,
}

/// A flood window of one kind in one organisation.
#[derive(Debug, Clone, Default)]
struct Window {
    seen: u32,
    /// Events folded (not sent singly), by title.
    folded: BTreeMap<String, u32>,
    targets: Vec<Target>,
    last_event: String,
    closed: bool,
}

/// What to do with a notice now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Take it on as `attempt`, appending with `expect_seq`.
    Take { notice: Notice, attempt: u32, expect_seq: u64 },
    /// Taken on [`MAX_ATTEMPTS`] times without an outcome: record it failed.
    GiveUp { notice: Notice, expect_seq: u64, attempts: u32 },
}

#[derive(Debug)]
pub struct Notices {
    slots: FifoMap<String, Slot>,
    windows: FifoMap<(String, String, i64), Window>,
    /// Notices older than this when they would be taken on are not sent
    /// (a replica catching up after a long outage does not replay them).
    pub max_age: Duration,
    /// How long a replica may hold a notice without an outcome.
    pub lease: Duration,
    /// The flood window, in seconds.
    window_secs: i64,
    /// Notices skipped for age (logged, not recorded).
    pub too_old: u64,
}

impl Notices {
    pub fn new(max_age: Duration, lease: Duration, window: Duration) -> Self {
        Self {
            slots: FifoMap::new(MAX_NOTICES),
            windows: FifoMap::new(MAX_WINDOWS),
            max_age,
            lease,
            window_secs: window.num_seconds().max(1),
            too_old: 0,
        }
    }

    /// Whether `at` is too old to notify about at `now`.
    fn stale(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        at < now - self.max_age
    }

    /// Plans notices that go out as they are (approval channels).
    pub fn plan(&mut self, notices: Vec<Notice>, now: DateTime<Utc>) {
        for n in notices {
            if self.stale(n.at, now) {
                continue;
            }
            match self.slots.get_mut(&n.id) {
                Some(slot) if slot.notice.is_none() => slot.notice = Some(n),
                Some(_) => {}
                None => {
                    self.slots.insert_new(
                        n.id.clone(),
                        Slot {
                            notice: Some(n),
                            ..Slot::default()
                        },
                    );
                }
            }
        }
    }

    /// Plans the notices of one notification event of `kind`: singly while
    /// its window has room, else folded into the window's digest.
    pub fn plan_flood(&mut self, kind: &str, notices: Vec<Notice>, now: DateTime<Utc>) {
        let Some(first) = notices.first() else { return };
        if self.stale(first.at, now) {
            return;
        }
        let key = (first.org.clone(), kind.to_string(), first.at.timestamp().div_euclid(self.window_secs));
        if !self.windows.contains_key(&key) {
            self.windows.insert_new(key.clone(), Window::default());
        }
        let w = self.windows.get_mut(&key).expect("inserted");
        w.seen += 1;
        if w.seen <= individual_per_window(kind) {
            self.plan(notices, now);
            return;
        }
        *w.folded.entry(first.message.title.clone()).or_default() += 1;
        w.last_event = first.source_event_id.clone();
        for n in notices {
            if !w.targets.contains(&n.target) {
                w.targets.push(n.target);
            }
        }
    }

    /// Plans the digest of every window that ended before `now`.
    pub fn close_windows(&mut self, now: DateTime<Utc>, queue_link: &str) {
        let secs = self.window_secs;
        let grace_passed = |start: i64| (start + 1) * secs + WINDOW_GRACE_SECS <= now.timestamp();
        let mut digests = Vec::new();
        for ((org, kind, index), w) in self.windows.iter_mut() {
            if w.closed || !grace_passed(*index) {
                continue;
            }
            w.closed = true;
            let count: u32 = w.folded.values().sum();
            if count == 0 {
                continue;
            }
            let from = Utc.timestamp_opt(index * secs, 0).single().unwrap_or(now);
            let to = from + Duration::seconds(secs);
            let mut facts: Vec<(String, String)> = w.folded.iter().map(|(title, n)| (title.clone(), n.to_string())).collect();
            facts.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(b.1.cmp(&a.1)));
            facts.truncate(9);
            facts.push(("Between".into(), format!("{} and {}", from.format("%H:%M:%S"), to.format("%H:%M:%S UTC"))));
            let message = Message {
                title: format!("{count} more {kind} notifications"),
                summary: format!("{count} more {kind} notifications within {secs} seconds (folded into this digest)"),
                facts,
                link: Some(("Open the queue".into(), queue_link.to_string())),
                ..Message::default()
            };
            let source = format!("digest/{org}/{kind}/{index}");
            for target in &w.targets {
                digests.push(Notice {
                    id: notice_id(&source, target),
                    org: org.clone(),
                    kind: format!("digest.{kind}"),
                    target: target.clone(),
                    source_event_id: w.last_event.clone(),
                    subject_id: String::new(),
                    at: to,
                    message: message.clone(),
                });
            }
        }
        self.plan(digests, now);
    }

    /// Applies a notification event read from the log.
    pub fn attempted(&mut self, a: &NotificationAttempted, seq: u64, at: DateTime<Utc>) {
        let claim = Claim {
            attempt: a.attempt,
            replica: a.replica.clone(),
            at,
            seq,
        };
        match self.slots.get_mut(&a.notice_id) {
            Some(slot) => slot.claim = Some(claim),
            None => {
                self.slots.insert_new(
                    a.notice_id.clone(),
                    Slot {
                        claim: Some(claim),
                        ..Slot::default()
                    },
                );
            }
        }
    }

    pub fn ended(&mut self, notice_id: &str) {
        match self.slots.get_mut(&notice_id.to_string()) {
            Some(slot) => slot.done = true,
            None => {
                self.slots.insert_new(notice_id.to_string(), Slot { done: true, ..Slot::default() });
            }
        }
    }

    pub fn sent(&mut self, s: &NotificationSent) {
        self.ended(&s.notice_id);
    }

    pub fn failed(&mut self, f: &NotificationFailed) {
        self.ended(&f.notice_id);
    }

    /// Whether the notice ended (sent or failed).
    pub fn is_done(&self, notice_id: &str) -> bool {
        self.slots.get(&notice_id.to_string()).is_some_and(|s| s.done)
    }

    /// The claim on a notice, if any.
    pub fn claim(&self, notice_id: &str) -> Option<&Claim> {
        self.slots.get(&notice_id.to_string()).and_then(|s| s.claim.as_ref())
    }

    /// What to take on at `now`, leaving out the notices this replica is
    /// delivering (`mine`).
    pub fn due(&mut self, now: DateTime<Utc>, mine: &HashSet<String>) -> Vec<Due> {
        let mut out = Vec::new();
        let mut too_old = 0;
        for slot in self.slots.values() {
            let Some(notice) = &slot.notice else { continue };
            if slot.done || mine.contains(&notice.id) {
                continue;
            }
            match &slot.claim {
                None if self.stale(notice.at, now) => too_old += 1,
                None => out.push(Due::Take {
                    notice: notice.clone(),
                    attempt: 1,
                    expect_seq: 0,
                }),
                Some(c) if c.at + self.lease > now => {}
                Some(c) if c.attempt >= MAX_ATTEMPTS => out.push(Due::GiveUp {
                    notice: notice.clone(),
                    expect_seq: c.seq,
                    attempts: c.attempt,
                }),
                Some(c) => out.push(Due::Take {
                    notice: notice.clone(),
                    attempt: c.attempt + 1,
                    expect_seq: c.seq,
                }),
            }
        }
        if too_old > 0 {
            // Forget them: they are not sent (counted once each).
            let ids: Vec<String> = self
                .slots
                .values()
                .filter(|s| !s.done && s.claim.is_none() && s.notice.as_ref().is_some_and(|n| self.stale(n.at, now)))
                .filter_map(|s| s.notice.as_ref().map(|n| n.id.clone()))
                .collect();
            for id in ids {
                if let Some(s) = self.slots.get_mut(&id) {
                    s.done = true;
                }
            }
            self.too_old += too_old;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Channel, Target};

    fn notice(i: u32, at: DateTime<Utc>) -> Notice {
        let target = Target::slack("alerts");
        let source = format!("event-{i}");
        Notice {
            id: notice_id(&source, &target),
            org: "acme".into(),
            kind: "security.alert".into(),
            target,
            source_event_id: source,
            subject_id: String::new(),
            at,
            message: Message {
                title: if i.is_multiple_of(2) { "Security alert" } else { "Other" }.into(),
                ..Message::default()
            },
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn takes(due: &[Due]) -> Vec<String> {
        due.iter()
            .filter_map(|d| match d {
                Due::Take { notice, .. } => Some(notice.kind.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_flood_is_three_messages_and_one_digest_per_minute() {
        let mut n = Notices::new(Duration::hours(1), Duration::minutes(10), Duration::seconds(60));
        let t0 = at(0);
        for i in 0..50 {
            n.plan_flood("security.alert", vec![notice(i, t0 + Duration::milliseconds(i as i64 * 100))], t0);
        }
        assert_eq!(takes(&n.due(t0, &HashSet::new())).len(), 3, "three singly");
        n.close_windows(at(61), "http://app/approvals");
        assert_eq!(takes(&n.due(at(61), &HashSet::new())).len(), 3, "the digest waits for the grace period");
        n.close_windows(at(66), "http://app/approvals");
        let due = n.due(at(66), &HashSet::new());
        let digest: Vec<&Notice> = due
            .iter()
            .filter_map(|d| match d {
                Due::Take { notice, .. } if notice.kind == "digest.security.alert" => Some(notice),
                _ => None,
            })
            .collect();
        assert_eq!(digest.len(), 1);
        assert_eq!(digest[0].message.title, "47 more security.alert notifications");
        assert_eq!(digest[0].target.channel, Channel::Slack);
        // Closing again plans nothing more.
        n.close_windows(at(200), "http://app/approvals");
        assert_eq!(takes(&n.due(at(66), &HashSet::new())).len(), 4);
    }

    #[test]
    fn a_claimed_notice_waits_for_its_lease_then_is_taken_again_then_given_up() {
        let mut n = Notices::new(Duration::hours(1), Duration::minutes(10), Duration::seconds(60));
        let t0 = at(0);
        let one = notice(1, t0);
        n.plan(vec![one.clone()], t0);
        assert_eq!(
            n.due(t0, &HashSet::new()),
            vec![Due::Take {
                notice: one.clone(),
                attempt: 1,
                expect_seq: 0
            }]
        );
        let mine: HashSet<String> = [one.id.clone()].into();
        assert!(n.due(t0, &mine).is_empty(), "not while this replica delivers it");
        let claim = |attempt| NotificationAttempted {
            notice_id: one.id.clone(),
            source_event_id: one.source_event_id.clone(),
            kind: one.kind.clone(),
            channel: "slack".into(),
            target: "alerts".into(),
            attempt,
            replica: "r-other".into(),
        };
        n.attempted(&claim(1), 7, t0);
        assert!(n.due(t0 + Duration::minutes(9), &HashSet::new()).is_empty(), "another replica holds it");
        assert_eq!(
            n.due(t0 + Duration::minutes(11), &HashSet::new()),
            vec![Due::Take {
                notice: one.clone(),
                attempt: 2,
                expect_seq: 7
            }]
        );
        n.attempted(&claim(3), 9, t0 + Duration::minutes(30));
        assert_eq!(
            n.due(t0 + Duration::minutes(45), &HashSet::new()),
            vec![Due::GiveUp {
                notice: one.clone(),
                expect_seq: 9,
                attempts: 3
            }]
        );
        n.ended(&one.id);
        assert!(
            n.due(t0 + Duration::minutes(50), &HashSet::new()).is_empty(),
            "an ended notice is never taken on"
        );
    }

    #[test]
    fn an_old_event_is_not_notified_and_a_known_claim_stops_a_replan() {
        let mut n = Notices::new(Duration::hours(1), Duration::minutes(10), Duration::seconds(60));
        n.plan(vec![notice(1, at(0))], at(3 * 3600));
        assert!(n.due(at(3 * 3600), &HashSet::new()).is_empty());
        // Planned in time, but not taken on before it got too old.
        n.plan(vec![notice(2, at(0))], at(0));
        assert!(n.due(at(2 * 3600), &HashSet::new()).is_empty());
        assert_eq!(n.too_old, 1);
        // A digest another replica claimed before this one closed its window.
        let d = notice(3, at(0));
        n.attempted(
            &NotificationAttempted {
                notice_id: d.id.clone(),
                source_event_id: "x".into(),
                kind: "digest.security.alert".into(),
                channel: "slack".into(),
                target: "alerts".into(),
                attempt: 1,
                replica: "r-other".into(),
            },
            3,
            at(1),
        );
        n.plan(vec![d], at(1));
        assert!(n.due(at(2), &HashSet::new()).is_empty());
    }
}
