//! MCP clients' grants as the log tells them (`client.<grant_id>`): the
//! authorization server keeps nothing of its own, so every replica answers
//! a code or a refresh token the same way, and each is spent once because
//! it is spent by an append that expects the grant's last sequence.
//!
//! [`Book`] is the server's whole fold of the log: the grants, and those
//! whose approver was removed since (a grant lives no longer than its
//! grantor's place among the approvers), which the server revokes.

use chrono::{DateTime, Utc};
use spend_core::bounded::FifoMap;
use spend_core::events::{ApiKeyRevoked, ApproverRemoved, ClientGranted, ClientRevoked, ClientTokensIssued, EventData};
use spend_eventlog::StoredMessage;
use spend_eventlog::read::{Read, classify};

/// Grants remembered (the oldest forgotten first; a forgotten grant's
/// tokens are refused, never honoured).
const MAX_GRANTS: usize = 100_000;
/// Codes and refresh tokens (current and spent) remembered.
const MAX_SECRETS: usize = 500_000;

#[derive(Debug, Clone)]
pub struct Grant {
    pub org: String,
    pub granted: ClientGranted,
    pub granted_at: DateTime<Utc>,
    /// The stream sequence of the grant subject's last event.
    pub last_seq: u64,
    /// Tokens issued so far (0: the code is not redeemed yet).
    pub generation: u32,
    pub refresh_sha256: Option<String>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub revoked: Option<String>,
}

impl Grant {
    pub fn code_expired(&self, now: DateTime<Utc>) -> bool {
        parse(&self.granted.code_expires_at).is_none_or(|t| now >= t)
    }
}

/// What a refresh token is, by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The grant's current refresh token.
    Current(String, String),
    /// One already rotated away: a replay, as a stolen token would be.
    Spent(String, String),
}

pub struct Grants {
    grants: FifoMap<(String, String), Grant>,
    /// code hash → (org, grant id)
    codes: FifoMap<String, (String, String)>,
    /// refresh token hash → (org, grant id, generation)
    refresh: FifoMap<String, (String, String, u32)>,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            grants: FifoMap::new(MAX_GRANTS),
            codes: FifoMap::new(MAX_SECRETS),
            refresh: FifoMap::new(MAX_SECRETS),
        }
    }
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

impl Grants {
    pub fn granted(&mut self, org: &str, seq: u64, at: DateTime<Utc>, g: ClientGranted) {
        let key = (org.to_string(), g.grant_id.clone());
        if self.grants.contains_key(&key) {
            return;
        }
        self.codes.insert_new(g.code_sha256.clone(), key.clone());
        self.grants.insert_new(
            key,
            Grant {
                org: org.to_string(),
                granted: g,
                granted_at: at,
                last_seq: seq,
                generation: 0,
                refresh_sha256: None,
                refresh_expires_at: None,
                refreshed_at: None,
                revoked: None,
            },
        );
    }

    pub fn issued(&mut self, org: &str, seq: u64, at: DateTime<Utc>, t: ClientTokensIssued) {
        let key = (org.to_string(), t.grant_id.clone());
        let Some(g) = self.grants.get_mut(&key) else { return };
        g.last_seq = seq;
        if t.generation != g.generation + 1 {
            return;
        }
        g.generation = t.generation;
        g.refresh_sha256 = Some(t.refresh_sha256.clone());
        g.refresh_expires_at = parse(&t.refresh_expires_at);
        g.refreshed_at = Some(at);
        self.refresh.insert_new(t.refresh_sha256, (key.0, key.1, t.generation));
    }

    pub fn revoked(&mut self, org: &str, seq: u64, r: ClientRevoked) {
        if let Some(g) = self.grants.get_mut(&(org.to_string(), r.grant_id)) {
            g.last_seq = seq;
            g.revoked.get_or_insert(r.reason);
        }
    }

    /// Every grant of `org` made until `at` is revoked: the operator
    /// revoked every agent credential (`spend api-key revoke --all`).
    pub fn revoke_all(&mut self, org: &str, at: DateTime<Utc>) {
        for g in self.grants.values_mut().filter(|g| g.org == org && g.granted_at <= at) {
            g.revoked
                .get_or_insert_with(|| "every agent credential of the organisation was revoked by the operator".into());
        }
    }

    pub fn get(&self, org: &str, grant_id: &str) -> Option<&Grant> {
        self.grants.get(&(org.to_string(), grant_id.to_string()))
    }

    /// The grant whose code hashes to `code_sha256`.
    pub fn by_code(&self, code_sha256: &str) -> Option<&Grant> {
        let key = self.codes.get(&code_sha256.to_string())?;
        self.grants.get(key)
    }

    /// What the refresh token hashing to `sha` is.
    pub fn by_refresh(&self, sha: &str) -> Option<Presented> {
        let (org, id, generation) = self.refresh.get(&sha.to_string())?.clone();
        let g = self.grants.get(&(org.clone(), id.clone()))?;
        Some(if g.generation == generation {
            Presented::Current(org, id)
        } else {
            Presented::Spent(org, id)
        })
    }

    /// An organisation's grants not revoked, newest first.
    pub fn of_org(&self, org: &str) -> Vec<&Grant> {
        let mut v: Vec<&Grant> = self.grants.values().filter(|g| g.org == org && g.revoked.is_none()).collect();
        v.sort_by_key(|g| std::cmp::Reverse(g.granted_at));
        v
    }
}

/// What MCP sign-in knows from the log.
#[derive(Default)]
pub struct Book {
    pub grants: Grants,
    /// Grants whose approver was removed, not revoked yet.
    orphaned: Vec<(String, String)>,
    /// The last log sequence applied.
    pub seq: u64,
}

impl Book {
    /// Applies one message of the log (misplaced ones are ignored: the
    /// approval app audits them).
    pub fn apply(&mut self, prefix: &str, m: &StoredMessage) {
        self.seq = self.seq.max(m.seq);
        let Read::Event { env, aggregate, id } = classify(prefix, m) else {
            return;
        };
        let org = env.org.to_string();
        if env.event_type == ApproverRemoved::TYPE {
            if let Ok(r) = serde_json::from_str::<ApproverRemoved>(env.data.get())
                && r.org == org
            {
                for g in self.grants.of_org(&org) {
                    let key = (org.clone(), g.granted.grant_id.clone());
                    if g.granted.approver_id == r.approver_id && !self.orphaned.contains(&key) {
                        self.orphaned.push(key);
                    }
                }
            }
            return;
        }
        if !matches!(aggregate, "client" | "apikey") {
            return;
        }
        let Ok(data) = EventData::from_json(&env.event_type, env.data.get()) else {
            return;
        };
        match data {
            EventData::ClientGranted(g) if aggregate == "client" && g.grant_id == id => self.grants.granted(&org, m.seq, m.time, g),
            EventData::ClientTokensIssued(t) if aggregate == "client" && t.grant_id == id => self.grants.issued(&org, m.seq, m.time, t),
            EventData::ClientRevoked(r) if aggregate == "client" && r.grant_id == id => {
                self.orphaned.retain(|(o, g)| !(*o == org && *g == r.grant_id));
                self.grants.revoked(&org, m.seq, r);
            }
            EventData::ApiKeyRevoked(ApiKeyRevoked { key_id, org: of, .. }) if aggregate == "apikey" && key_id == "*" && of == org => {
                self.grants.revoke_all(&org, m.time);
            }
            _ => {}
        }
    }

    /// Grants whose approver was removed and that are not revoked yet.
    pub fn orphaned(&self) -> &[(String, String)] {
        &self.orphaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(id: &str) -> ClientGranted {
        ClientGranted {
            grant_id: id.into(),
            client_id: "c".into(),
            client_name: "C".into(),
            approver_id: "ada".into(),
            scopes: vec!["mcp.read".into()],
            resource: "http://localhost:7100/mcp".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            code_sha256: format!("code-{id}"),
            code_expires_at: "2099-01-01T00:00:00Z".into(),
        }
    }

    fn issued(id: &str, generation: u32, sha: &str) -> ClientTokensIssued {
        ClientTokensIssued {
            grant_id: id.into(),
            generation,
            refresh_sha256: sha.into(),
            refresh_expires_at: "2099-01-01T00:00:00Z".into(),
            access_expires_at: "2099-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_rotated_refresh_token_is_spent_and_a_grant_is_one_organisations() {
        let mut g = Grants::default();
        let now = Utc::now();
        g.granted("acme", 5, now, granted("gr_1"));
        assert_eq!(g.by_code("code-gr_1").map(|x| x.generation), Some(0));
        g.issued("acme", 6, now, issued("gr_1", 1, "r1"));
        g.issued("acme", 7, now, issued("gr_1", 2, "r2"));
        assert_eq!(g.by_refresh("r1"), Some(Presented::Spent("acme".into(), "gr_1".into())));
        assert_eq!(g.by_refresh("r2"), Some(Presented::Current("acme".into(), "gr_1".into())));
        assert_eq!(g.get("acme", "gr_1").unwrap().last_seq, 7);
        // A generation out of turn changes nothing but the sequence.
        g.issued("acme", 8, now, issued("gr_1", 2, "r2b"));
        assert_eq!(g.by_refresh("r2b"), None);
        assert!(g.get("globex", "gr_1").is_none());
        g.revoked(
            "acme",
            9,
            ClientRevoked {
                grant_id: "gr_1".into(),
                reason: "by ada".into(),
            },
        );
        assert!(g.of_org("acme").is_empty());
    }
}
