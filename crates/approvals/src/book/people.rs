//! Who the people and agents are: invitations, registered passkeys, the
//! email each approver enrolled with (where requests are emailed, and how
//! sign-in finds an approver: the passkey proves who), and agent keys'
//! names. Whom the registry *trusts* is the registry's (`spend_draft::approvers`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use spend_core::bounded::FifoMap;
use spend_core::events::{ApiKeyCreated, ApproverEnrolled, ApproverInvited, ApproverRegistered, EventData};

use super::{Book, MAX_INVITES};

#[derive(Debug, Clone)]
pub struct Invite {
    pub invite: ApproverInvited,
    pub expires_at: Option<DateTime<Utc>>,
    /// The registration that used it, if any (single use).
    pub used_by: Option<String>,
}

impl Invite {
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.used_by.is_none() && self.expires_at.is_some_and(|t| now < t)
    }
}

pub(super) struct People {
    /// Invitations by the hash of their token (the oldest forgotten first).
    invites: FifoMap<String, Invite>,
    /// Registered passkeys (trusted or not), by (org, approver id).
    registered: HashMap<(String, String), ApproverRegistered>,
    /// Approver ids by (org, lower-case email).
    by_email: HashMap<(String, String), Vec<String>>,
    /// The email each enrollment names, by (org, approver id).
    emails: HashMap<(String, String), String>,
    /// Agent keys' names, as the operator created them: (org, key id).
    key_names: FifoMap<(String, String), String>,
}

impl People {
    pub(super) fn new() -> Self {
        Self {
            invites: FifoMap::new(MAX_INVITES),
            registered: HashMap::new(),
            by_email: HashMap::new(),
            emails: HashMap::new(),
            key_names: FifoMap::new(MAX_INVITES),
        }
    }

    /// Folds `data` (of `org`, on an `aggregate` subject) when it is about
    /// people; gives it back otherwise.
    pub(super) fn apply(&mut self, org: &str, aggregate: &str, data: EventData) -> Option<EventData> {
        match data {
            EventData::ApiKeyCreated(ApiKeyCreated { org: o, key_id, name, .. }) if aggregate == "apikey" && o == org => {
                self.key_names.insert_new((o, key_id), name);
            }
            EventData::ApproverInvited(i) if i.org == org => {
                let expires_at = DateTime::parse_from_rfc3339(&i.expires_at).ok().map(|t| t.with_timezone(&Utc));
                let hash = i.token_sha256.clone();
                self.invites.insert_new(
                    hash,
                    Invite {
                        invite: i,
                        expires_at,
                        used_by: None,
                    },
                );
            }
            EventData::ApproverRegistered(r) if r.org == org => {
                if let Some(inv) = self.invites.values_mut().find(|i| i.invite.invite_id == r.invite_id && i.invite.org == org) {
                    inv.used_by.get_or_insert(r.approver_id.clone());
                }
                self.know_email(org, &r.email, &r.approver_id);
                self.registered.entry((org.to_string(), r.approver_id.clone())).or_insert(r);
            }
            EventData::ApproverEnrolled(ApproverEnrolled {
                org: o,
                approver_id,
                email: Some(email),
                ..
            }) if o == org => {
                self.know_email(org, &email, &approver_id);
                self.emails.insert((o, approver_id), email);
            }
            other => return Some(other),
        }
        None
    }

    fn know_email(&mut self, org: &str, email: &str, approver_id: &str) {
        let ids = self.by_email.entry((org.to_string(), email.to_lowercase())).or_default();
        if !ids.iter().any(|id| id == approver_id) {
            ids.push(approver_id.to_string());
        }
    }
}

impl Book {
    pub fn invite(&self, token_sha256: &str) -> Option<&Invite> {
        self.people.invites.get(&token_sha256.to_string())
    }

    pub fn registered(&self, org: &str, approver_id: &str) -> Option<&ApproverRegistered> {
        self.people.registered.get(&(org.to_string(), approver_id.to_string()))
    }

    /// The email an approver enrolled (or registered) with.
    pub fn email(&self, org: &str, approver_id: &str) -> Option<&str> {
        let key = (org.to_string(), approver_id.to_string());
        self.people
            .emails
            .get(&key)
            .map(String::as_str)
            .or_else(|| self.people.registered.get(&key).map(|r| r.email.as_str()))
    }

    /// Every registration of `org`, by approver id.
    pub fn registrations(&self, org: &str) -> Vec<&ApproverRegistered> {
        let mut v: Vec<_> = self.people.registered.iter().filter(|((o, _), _)| o == org).map(|(_, r)| r).collect();
        v.sort_by(|a, b| a.approver_id.cmp(&b.approver_id));
        v
    }

    /// The approver ids registered with `email` in any organisation:
    /// (org, approver id).
    pub fn by_email(&self, email: &str) -> Vec<(String, String)> {
        let email = email.trim().to_lowercase();
        let mut v: Vec<(String, String)> = self
            .people
            .by_email
            .iter()
            .filter(|((_, e), _)| *e == email)
            .flat_map(|((o, _), ids)| ids.iter().map(move |id| (o.clone(), id.clone())))
            .collect();
        v.sort();
        v
    }

    /// An agent as people know it: its key's name and id ("nightly
    /// optimiser (k_1a2b)"), or the key id when no name is known.
    pub fn agent_name(&self, org: &str, key_id: &str) -> String {
        match self.people.key_names.get(&(org.to_string(), key_id.to_string())) {
            Some(name) if !name.is_empty() => format!("{name} ({key_id})"),
            _ => key_id.to_string(),
        }
    }
}
