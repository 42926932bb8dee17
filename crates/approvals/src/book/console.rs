//! What the operator console shows beside drafts: each organisation's
//! envelope as its last commitment left it, the write access the executor
//! asked a human for, pauses of agents in force (the operator's and an
//! admin's kill switch), and the cards the executor froze.

use std::collections::HashMap;

use spend_core::RawEnvelope;
use spend_core::bounded::FifoMap;
use spend_core::events::{EnvelopeState, EventData};

use super::{Book, MAX_INVITES};

/// Frozen cards remembered per organisation.
const MAX_FROZEN: usize = 1_000;

/// Drafts remembered per account waiting for a scope.
const MAX_WAITING_FOR_SCOPE: usize = 100;

pub(super) struct Console {
    /// Each organisation's spend envelope, as its last commitment left it.
    envelopes: HashMap<String, EnvelopeState>,
    /// Write access the executor asked a human for, not granted yet:
    /// (org, account) -> (scope, draft ids).
    consents: FifoMap<(String, String), (String, Vec<String>)>,
    /// Pauses of an organisation's agents in force: (org, `pause` for the
    /// operator's or `kill_switch` for an admin's) -> (reason, who).
    paused: HashMap<(String, &'static str), (String, String)>,
    /// Cards the executor froze, per organisation: (card or `all`, why).
    frozen: HashMap<String, Vec<(String, String)>>,
}

impl Console {
    pub(super) fn new() -> Self {
        Self {
            envelopes: HashMap::new(),
            consents: FifoMap::new(MAX_INVITES),
            paused: HashMap::new(),
            frozen: HashMap::new(),
        }
    }

    /// Folds `data` (of `org`, on an `aggregate` subject) when the console
    /// shows it; gives it back otherwise.
    pub(super) fn apply(&mut self, org: &str, aggregate: &str, data: EventData, env: &RawEnvelope<'_>) -> Option<EventData> {
        let org = org.to_string();
        match data {
            EventData::AccountConsentRequested(c) if aggregate == "account" => {
                let key = (org, c.account_id.clone());
                if !self.consents.contains_key(&key) {
                    self.consents.insert_new(key.clone(), (c.scope.clone(), Vec::new()));
                }
                let entry = self.consents.get_mut(&key).expect("inserted");
                if !entry.1.contains(&c.draft_id) && entry.1.len() < MAX_WAITING_FOR_SCOPE {
                    entry.1.push(c.draft_id);
                }
            }
            EventData::AccountConnected(c) if aggregate == "account" => {
                // A grant is for the draft it names: the others on the
                // account still wait for theirs (as the executor pushes).
                let key = (org, c.account_id.clone());
                if let Some(draft_id) = &c.draft_id
                    && let Some((scope, drafts)) = self.consents.get_mut(&key)
                    && c.scopes.contains(scope)
                {
                    drafts.retain(|d| d != draft_id);
                    if drafts.is_empty() {
                        self.consents.remove(&key);
                    }
                }
            }
            EventData::BudgetCommitted(c) if aggregate == "budget" => {
                self.envelopes.insert(org, c.envelope);
            }
            EventData::BudgetReleased(c) if aggregate == "budget" => {
                self.envelopes.insert(org, c.envelope);
            }
            EventData::AgentsPaused(p) => {
                let by = if aggregate == "pause" { "pause" } else { "kill_switch" };
                self.paused.insert((org, by), (p.reason, env.actor.id.to_string()));
            }
            EventData::AgentsResumed(_) => {
                self.paused.remove(&(org.clone(), "kill_switch"));
                if aggregate == "pause" {
                    self.paused.remove(&(org, "pause"));
                }
            }
            EventData::CardFrozen(c) if aggregate == "card" => {
                let cards = self.frozen.entry(org).or_default();
                if !cards.iter().any(|(id, _)| *id == c.card_id) && cards.len() < MAX_FROZEN {
                    cards.push((c.card_id, c.reason));
                }
            }
            other => return Some(other),
        }
        None
    }
}

impl Book {
    /// Pauses of `org`'s agents in force: (by `pause` or `kill_switch`,
    /// reason, who).
    pub fn pauses(&self, org: &str) -> Vec<(&'static str, &str, &str)> {
        ["pause", "kill_switch"]
            .into_iter()
            .filter_map(|by| self.console.paused.get(&(org.to_string(), by)).map(|(r, who)| (by, r.as_str(), who.as_str())))
            .collect()
    }

    /// Cards the executor froze: (card or `all`, why).
    pub fn frozen(&self, org: &str) -> &[(String, String)] {
        self.console.frozen.get(org).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Write access the executor asked for and nobody granted yet:
    /// (account, scope, drafts waiting for it).
    pub fn consents(&self, org: &str) -> Vec<(String, String, Vec<String>)> {
        let mut v: Vec<(String, String, Vec<String>)> = Vec::new();
        for ((o, account), (scope, drafts)) in self.console.consents.iter() {
            if o == org {
                v.push((account.clone(), scope.clone(), drafts.clone()));
            }
        }
        v.sort();
        v
    }

    /// The organisation's envelope as its last commitment left it.
    pub fn envelope(&self, org: &str) -> Option<&EnvelopeState> {
        self.console.envelopes.get(org)
    }
}
