//! Agent credentials: API keys and the scopes they carry.
//!
//! An agent's scopes are [`AgentScope`]: `mcp.read` and `mcp.draft`. There
//! is no variant for `mcp.approve`, so no agent credential can hold it —
//! the type system refuses what a run-time check could forget. Asking for it
//! is an error ([`ScopeError::ApproveNeverGranted`]) that the caller audits
//! as a `spend.security.alert.v1`.
//!
//! Keys are `ssk_<key id>_<64 hex>`: 256 random bits, shown once at
//! creation. Only their SHA-256 is kept (in `spend.apikey.created.v1`), and
//! presented keys are compared in constant time. Every replica builds the
//! same [`KeyStore`] from the event log, so a revocation reaches all of them
//! as fast as the log delivers it. A revocation is final: a key id names one
//! key forever, so a created event seen again (a replay) changes nothing,
//! and a revoked key, or every key an organisation had when it revoked
//! them all, stays revoked. [`LogKeys`] is a key store brought up to date
//! from the log on demand, for readers that do not follow it (the approval
//! gate, the CLI).

pub mod access_token;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use spend_core::events::{ApiKeyCreated, ApiKeyRevoked, EventData};
use spend_eventlog::read::{Read, classify};
use spend_eventlog::{EventLog, LogError, StartAt, StoredMessage};
use subtle::ConstantTimeEq;

/// A bearer credential that looks like a JWT (three base64url parts)
/// rather than an API key: the gateway validates it as an OAuth access
/// token, and the human routes audit it as an agent credential.
pub fn looks_like_jwt(token: &str) -> bool {
    !token.starts_with("ssk_") && token.split('.').count() == 3
}

/// What an agent credential may be granted. Approving is not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentScope {
    /// Read accounts, campaigns, metrics, cards, transactions.
    Read,
    /// Propose changes as drafts.
    Draft,
}

impl AgentScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentScope::Read => "mcp.read",
            AgentScope::Draft => "mcp.draft",
        }
    }
}

impl fmt::Display for AgentScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("mcp.approve is never granted to an agent: only a signed-in human can approve, in two steps")]
    ApproveNeverGranted,
    #[error("unknown scope {0:?}; agent scopes are mcp.read and mcp.draft")]
    Unknown(String),
    #[error("no scope given; use mcp.read, mcp.draft or both")]
    Empty,
}

impl FromStr for AgentScope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        match s.trim() {
            "mcp.read" => Ok(AgentScope::Read),
            "mcp.draft" => Ok(AgentScope::Draft),
            "mcp.approve" => Err(ScopeError::ApproveNeverGranted),
            other => Err(ScopeError::Unknown(other.to_string())),
        }
    }
}

/// Parses `mcp.read,mcp.draft` into a sorted, de-duplicated list.
pub fn parse_scopes(list: &str) -> Result<Vec<AgentScope>, ScopeError> {
    let mut scopes = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<AgentScope>, _>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ScopeError::Empty);
    }
    Ok(scopes)
}

/// A key as the key store knows it: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub org: String,
    pub name: String,
    pub scopes: Vec<AgentScope>,
    hash: [u8; 32],
    pub created_at: DateTime<Utc>,
    /// Set when the key was rotated: it keeps working until then.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// A freshly created key: `secret` is shown once and never stored.
pub struct NewKey {
    pub secret: String,
    pub created: ApiKeyCreated,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, even in debug output.
        f.debug_struct("NewKey").field("key_id", &self.created.key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed: {0}")]
pub struct RandomError(String);

/// `bytes` random bytes from the system's generator, as hex.
pub fn random_hex(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Creates a key for `org` with `scopes`.
pub fn generate(org: &str, name: &str, scopes: &[AgentScope], now: DateTime<Utc>) -> Result<NewKey, RandomError> {
    let key_id = random_hex(6)?;
    let secret = format!("ssk_{key_id}_{}", random_hex(32)?);
    let created = ApiKeyCreated {
        key_id,
        org: org.into(),
        name: name.into(),
        scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
        hash_sha256: hex::encode(digest(&secret)),
        created_at: now.to_rfc3339(),
        replaces: None,
        overlap_until: None,
    };
    Ok(NewKey { secret, created })
}

/// The key id inside a presented secret (`ssk_<id>_<hex>`), if well formed.
pub fn key_id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix("ssk_")?;
    let (id, tail) = rest.split_once('_')?;
    (id.len() == 12 && tail.len() == 64 && id.bytes().chain(tail.bytes()).all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Why a presented key is refused; each becomes a `spend.security.alert.v1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a SpendSignoff API key")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("API key {0} has been revoked")]
    Revoked(String),
    #[error("API key {0} was rotated and its overlap window has ended")]
    Expired(String),
    #[error("API key {key_id} is {age_days} days old, over this organisation's api_key_rotation_days ({limit}); rotate it with `spend api-key rotate`")]
    TooOld { key_id: String, age_days: i64, limit: u32 },
    #[error("API key {key_id} lacks scope {scope}")]
    MissingScope { key_id: String, scope: AgentScope },
}

impl Refusal {
    /// Machine-readable reason for the security alert.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed | Refusal::Unknown => "apikey.unknown",
            Refusal::Revoked(_) => "apikey.revoked",
            Refusal::Expired(_) => "apikey.expired",
            Refusal::TooOld { .. } => "apikey.rotation_overdue",
            Refusal::MissingScope { .. } => "scope.denied",
        }
    }
}

/// Every key of every organisation, built from `spend.apikey.*` events.
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    keys: HashMap<String, KeyRecord>,
    /// (org, key id) of every key revoked, whether or not its creation had
    /// been seen: a creation of one of them seen later stays revoked.
    revoked: HashSet<(String, String)>,
}

impl KeyStore {
    /// Applies a creation (a rotation is a creation that names the key it
    /// replaces and how long that one keeps working).
    ///
    /// A key id names one key forever: the same creation seen again (a
    /// replay) changes nothing — a revoked key stays revoked, a rotated one
    /// keeps its window — and a different key under a known id is refused.
    pub fn apply_created(&mut self, e: &ApiKeyCreated) -> Result<(), String> {
        let hash: [u8; 32] = hex::decode(&e.hash_sha256)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or("hash_sha256 is not 32 bytes of hex")?;
        let created_at = DateTime::parse_from_rfc3339(&e.created_at).map_err(|e| e.to_string())?.with_timezone(&Utc);
        let scopes = e
            .scopes
            .iter()
            .map(|s| s.parse::<AgentScope>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(k) = self.keys.get(&e.key_id) {
            let same = k.org == e.org && k.name == e.name && k.scopes == scopes && k.hash == hash && k.created_at == created_at;
            if same {
                return Ok(());
            }
            return Err(format!(
                "key id {} already names another key (of {}); a creation cannot replace a key",
                e.key_id, k.org
            ));
        }
        if let (Some(old), Some(until)) = (&e.replaces, &e.overlap_until) {
            let until = DateTime::parse_from_rfc3339(until).map_err(|e| e.to_string())?.with_timezone(&Utc);
            // Only a key of the same organisation, and a window only ever
            // shortens: rotating a key again never revives it.
            if let Some(k) = self.keys.get_mut(old).filter(|k| k.org == e.org) {
                k.expires_at = Some(k.expires_at.map_or(until, |t| t.min(until)));
            }
        }
        let revoked = self.revoked.contains(&(e.org.clone(), e.key_id.clone()));
        self.keys.insert(
            e.key_id.clone(),
            KeyRecord {
                key_id: e.key_id.clone(),
                org: e.org.clone(),
                name: e.name.clone(),
                scopes,
                hash,
                created_at,
                expires_at: None,
                revoked,
            },
        );
        Ok(())
    }

    /// Applies a revocation: of one key, or (`*`) of every key the
    /// organisation has so far. Keys created after a `*` are not affected.
    pub fn apply_revoked(&mut self, e: &ApiKeyRevoked) {
        if e.key_id != "*" {
            self.revoked.insert((e.org.clone(), e.key_id.clone()));
        }
        for k in self.keys.values_mut() {
            if k.org == e.org && (k.key_id == e.key_id || e.key_id == "*") {
                k.revoked = true;
                self.revoked.insert((k.org.clone(), k.key_id.clone()));
            }
        }
    }

    /// Applies a message from the log if it is an API key event where its
    /// writer puts it (`<prefix>.<org>.apikey.<id>`, read as every consumer
    /// reads: [`classify`]); `Ok(false)` for any other message. An event
    /// whose data names another organisation than its envelope is refused.
    pub fn apply_message(&mut self, prefix: &str, m: &StoredMessage) -> Result<bool, String> {
        let Read::Event { env, aggregate: "apikey", .. } = classify(prefix, m) else {
            return Ok(false);
        };
        match EventData::from_json(&env.event_type, env.data.get())? {
            EventData::ApiKeyCreated(c) if c.org == env.org => self.apply_created(&c)?,
            EventData::ApiKeyRevoked(r) if r.org == env.org => self.apply_revoked(&r),
            EventData::ApiKeyCreated(_) | EventData::ApiKeyRevoked(_) => {
                return Err(format!("the event at seq {} names another organisation than {}", m.seq, env.org));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The key with this id, of any organisation (never its secret).
    pub fn get(&self, key_id: &str) -> Option<&KeyRecord> {
        self.keys.get(key_id)
    }

    /// The key a presented secret is — matched in constant time — whatever
    /// its state (revoked, expired, overdue): who presented it, not whether
    /// it works ([`KeyStore::authenticate`] says that).
    pub fn identify(&self, secret: &str) -> Option<&KeyRecord> {
        let k = self.keys.get(key_id_of(secret)?)?;
        bool::from(k.hash.ct_eq(&digest(secret))).then_some(k)
    }

    /// The organisation a key id belongs to (key ids are not secret).
    pub fn org_of(&self, key_id: &str) -> Option<String> {
        self.keys.get(key_id).map(|k| k.org.clone())
    }

    /// Checks a presented secret for `scope`.
    pub fn authorize(&self, secret: &str, scope: AgentScope, rotation_days: Option<u32>, now: DateTime<Utc>) -> Result<&KeyRecord, Refusal> {
        let k = self.authenticate(secret, rotation_days, now)?;
        if !k.scopes.contains(&scope) {
            return Err(Refusal::MissingScope {
                key_id: k.key_id.clone(),
                scope,
            });
        }
        Ok(k)
    }

    /// Checks a presented secret: known, matching, not revoked, expired or
    /// overdue for rotation. Scopes are checked per operation.
    pub fn authenticate(&self, secret: &str, rotation_days: Option<u32>, now: DateTime<Utc>) -> Result<&KeyRecord, Refusal> {
        let key_id = key_id_of(secret).ok_or(Refusal::Malformed)?;
        let k = self.keys.get(key_id).ok_or(Refusal::Unknown)?;
        if !bool::from(k.hash.ct_eq(&digest(secret))) {
            return Err(Refusal::Unknown);
        }
        if k.revoked {
            return Err(Refusal::Revoked(k.key_id.clone()));
        }
        if k.expires_at.is_some_and(|t| now >= t) {
            return Err(Refusal::Expired(k.key_id.clone()));
        }
        if let Some(limit) = rotation_days {
            let age = now - k.created_at;
            if age > Duration::days(limit as i64) {
                return Err(Refusal::TooOld {
                    key_id: k.key_id.clone(),
                    age_days: age.num_days(),
                    limit,
                });
            }
        }
        Ok(k)
    }
}

/// A [`KeyStore`] read from the log, brought up to date on demand
/// ([`LogKeys::catch_up`]) by a reader that does not follow the log.
#[derive(Debug, Default, Clone)]
pub struct LogKeys {
    store: KeyStore,
    /// The next log sequence to read.
    next: u64,
}

impl LogKeys {
    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// The next log sequence it would read: how far it got.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Reads every message appended since the last call, up to the log's
    /// last sequence as of now. An error leaves what was read applied (the
    /// next call resumes after it); the store is then behind the log.
    pub async fn catch_up(&mut self, log: &dyn EventLog, prefix: &str) -> Result<(), LogError> {
        use futures::StreamExt as _;
        let next = self.next.max(1);
        let last = log.info().await?.last_seq;
        if last < next {
            return Ok(());
        }
        let mut stream = log.subscribe(StartAt::Sequence(next)).await?;
        while let Some(m) = stream.next().await {
            let m = m?;
            if m.seq < self.next {
                continue;
            }
            self.next = m.seq + 1;
            if let Err(e) = self.store.apply_message(prefix, &m) {
                tracing::warn!(seq = m.seq, error = %e, "ignoring an invalid API key event");
            }
            if m.seq >= last {
                return Ok(());
            }
        }
        Err(LogError::Unavailable(format!(
            "the log's subscription ended at seq {} before its last seq {last}",
            self.next.saturating_sub(1)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(scopes: &[AgentScope], now: DateTime<Utc>) -> (KeyStore, NewKey) {
        let k = generate("acme", "ci-agent", scopes, now).unwrap();
        let mut s = KeyStore::default();
        s.apply_created(&k.created).unwrap();
        (s, k)
    }

    #[test]
    fn the_approve_scope_cannot_be_asked_for() {
        assert_eq!(parse_scopes("mcp.read,mcp.draft").unwrap(), vec![AgentScope::Read, AgentScope::Draft]);
        assert_eq!(parse_scopes("mcp.read,mcp.approve"), Err(ScopeError::ApproveNeverGranted));
        assert!(matches!(parse_scopes("admin"), Err(ScopeError::Unknown(_))));
        assert_eq!(parse_scopes(" , "), Err(ScopeError::Empty));
        // A created event that claims approve is refused when applied.
        let mut k = generate("acme", "x", &[AgentScope::Read], Utc::now()).unwrap();
        k.created.scopes.push("mcp.approve".into());
        assert!(KeyStore::default().apply_created(&k.created).unwrap_err().contains("never granted"));
    }

    #[test]
    fn a_key_works_for_its_scopes_only_and_is_stored_as_a_hash() {
        let now = Utc::now();
        let (store, k) = store_with(&[AgentScope::Read], now);
        assert!(k.secret.starts_with("ssk_") && k.secret.len() == 4 + 12 + 1 + 64);
        assert!(!format!("{k:?}").contains(&k.secret[17..]), "debug output hides the secret");
        assert!(!k.created.hash_sha256.contains(&k.secret[17..]));
        assert_eq!(store.authorize(&k.secret, AgentScope::Read, None, now).unwrap().name, "ci-agent");
        assert_eq!(store.authorize(&k.secret, AgentScope::Draft, None, now).unwrap_err().code(), "scope.denied");
        let mut forged = k.secret.clone();
        forged.replace_range(20..21, if &forged[20..21] == "a" { "b" } else { "a" });
        assert_eq!(store.authorize(&forged, AgentScope::Read, None, now), Err(Refusal::Unknown));
        assert_eq!(store.authorize("Bearer nonsense", AgentScope::Read, None, now), Err(Refusal::Malformed));
    }

    #[test]
    fn old_keys_are_refused_with_a_message_that_says_so() {
        let created = Utc::now() - Duration::days(31);
        let (store, k) = store_with(&[AgentScope::Read], created);
        let err = store.authorize(&k.secret, AgentScope::Read, Some(30), Utc::now()).unwrap_err();
        assert!(err.to_string().contains("api_key_rotation_days (30)"), "{err}");
        assert!(store.authorize(&k.secret, AgentScope::Read, Some(90), Utc::now()).is_ok());
    }

    #[test]
    fn rotation_overlaps_then_expires_and_revoke_all_reaches_every_key_of_the_org() {
        let now = Utc::now();
        let (mut store, old) = store_with(&[AgentScope::Read, AgentScope::Draft], now);
        let mut new = generate("acme", "ci-agent", &[AgentScope::Read, AgentScope::Draft], now).unwrap();
        new.created.replaces = Some(old.created.key_id.clone());
        new.created.overlap_until = Some((now + Duration::hours(1)).to_rfc3339());
        store.apply_created(&new.created).unwrap();
        assert!(store.authorize(&old.secret, AgentScope::Draft, None, now).is_ok(), "inside the overlap window");
        assert_eq!(
            store
                .authorize(&old.secret, AgentScope::Draft, None, now + Duration::hours(2))
                .unwrap_err()
                .code(),
            "apikey.expired"
        );
        assert!(store.authorize(&new.secret, AgentScope::Draft, None, now + Duration::hours(2)).is_ok());
        let other_key = generate("globex", "bot", &[AgentScope::Read], now).unwrap();
        store.apply_created(&other_key.created).unwrap();
        store.apply_revoked(&ApiKeyRevoked {
            key_id: "*".into(),
            org: "acme".into(),
            reason: "incident".into(),
        });
        assert_eq!(store.authorize(&new.secret, AgentScope::Read, None, now).unwrap_err().code(), "apikey.revoked");
        assert!(
            store.authorize(&other_key.secret, AgentScope::Read, None, now).is_ok(),
            "other organisations keep theirs"
        );
    }

    fn revoke(store: &mut KeyStore, org: &str, key_id: &str) {
        store.apply_revoked(&ApiKeyRevoked {
            key_id: key_id.into(),
            org: org.into(),
            reason: "test".into(),
        });
    }

    #[test]
    fn a_replayed_creation_does_not_clear_a_revocation() {
        let now = Utc::now();
        let (mut store, k) = store_with(&[AgentScope::Read], now);
        revoke(&mut store, "acme", &k.created.key_id);
        assert_eq!(store.authorize(&k.secret, AgentScope::Read, None, now).unwrap_err().code(), "apikey.revoked");
        // The same created event again: a replay changes nothing.
        store.apply_created(&k.created).unwrap();
        assert_eq!(
            store.authorize(&k.secret, AgentScope::Read, None, now).unwrap_err().code(),
            "apikey.revoked",
            "a replay revives nothing"
        );
        // Another key under the same id is refused, and does not replace it.
        let other = generate("acme", "ci-agent", &[AgentScope::Read, AgentScope::Draft], now).unwrap();
        let mut hijack = other.created.clone();
        hijack.key_id = k.created.key_id.clone();
        assert!(store.apply_created(&hijack).unwrap_err().contains("already names another key"));
        assert!(store.get(&k.created.key_id).unwrap().revoked);
        // A revocation seen before its creation still holds.
        let mut store = KeyStore::default();
        let late = generate("acme", "late", &[AgentScope::Read], now).unwrap();
        revoke(&mut store, "acme", &late.created.key_id);
        store.apply_created(&late.created).unwrap();
        assert_eq!(store.authorize(&late.secret, AgentScope::Read, None, now).unwrap_err().code(), "apikey.revoked");
    }

    #[test]
    fn keys_created_before_a_revoke_all_stay_revoked_and_later_ones_work() {
        let now = Utc::now();
        let (mut store, old) = store_with(&[AgentScope::Read], now);
        revoke(&mut store, "acme", "*");
        store.apply_created(&old.created).unwrap();
        assert_eq!(
            store.authorize(&old.secret, AgentScope::Read, None, now).unwrap_err().code(),
            "apikey.revoked",
            "a replay of a key created before the revocation stays revoked"
        );
        let new = generate("acme", "after", &[AgentScope::Read], now).unwrap();
        store.apply_created(&new.created).unwrap();
        assert!(
            store.authorize(&new.secret, AgentScope::Read, None, now).is_ok(),
            "a key created after it works"
        );
        store.apply_created(&old.created).unwrap();
        assert!(store.get(&old.created.key_id).unwrap().revoked);
    }

    #[test]
    fn rotating_again_never_extends_an_old_keys_window() {
        let now = Utc::now();
        let (mut store, old) = store_with(&[AgentScope::Read], now);
        let rotate = |hours: i64| {
            let mut n = generate("acme", "ci-agent", &[AgentScope::Read], now).unwrap();
            n.created.replaces = Some(old.created.key_id.clone());
            n.created.overlap_until = Some((now + Duration::hours(hours)).to_rfc3339());
            n
        };
        store.apply_created(&rotate(1).created).unwrap();
        store.apply_created(&rotate(48).created).unwrap();
        assert_eq!(
            store
                .authorize(&old.secret, AgentScope::Read, None, now + Duration::hours(2))
                .unwrap_err()
                .code(),
            "apikey.expired"
        );
        // Another organisation's rotation cannot touch this key at all.
        let mut foreign = generate("globex", "x", &[AgentScope::Read], now).unwrap();
        foreign.created.replaces = Some(old.created.key_id.clone());
        foreign.created.overlap_until = Some((now - Duration::hours(1)).to_rfc3339());
        store.apply_created(&foreign.created).unwrap();
        assert!(store.authorize(&old.secret, AgentScope::Read, None, now).is_ok());
    }

    #[test]
    fn identify_names_the_key_a_secret_is_whatever_its_state() {
        let now = Utc::now();
        let (mut store, k) = store_with(&[AgentScope::Read], now);
        revoke(&mut store, "acme", &k.created.key_id);
        assert_eq!(store.identify(&k.secret).unwrap().org, "acme");
        let mut forged = k.secret.clone();
        forged.replace_range(20..21, if &forged[20..21] == "a" { "b" } else { "a" });
        assert!(store.identify(&forged).is_none(), "a known id with the wrong secret is no one's key");
    }

    #[tokio::test]
    async fn log_keys_read_only_api_key_events_where_the_operator_puts_them() {
        use spend_core::authority::Writer;
        use spend_eventlog::Recorder;
        use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
        let dir = tempfile::tempdir().unwrap();
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path())).await.unwrap());
        let operator = Recorder::new(log.clone(), "spend.evt", Writer::Operator);
        let now = Utc::now();
        let k = generate("acme", "bot", &[AgentScope::Read], now).unwrap();
        let actor = spend_core::Actor::human("ops");
        let created = EventData::ApiKeyCreated(k.created.clone());
        operator
            .event("acme", actor.clone(), "apikey", &k.created.key_id, created.clone())
            .record()
            .await
            .unwrap();
        let mut keys = LogKeys::default();
        keys.catch_up(&*log, "spend.evt").await.unwrap();
        assert!(keys.store().authorize(&k.secret, AgentScope::Read, None, now).is_ok());
        // A revocation on a draft subject is out of place: ignored.
        let revoked = EventData::ApiKeyRevoked(ApiKeyRevoked {
            key_id: "*".into(),
            org: "acme".into(),
            reason: "x".into(),
        });
        operator.event("acme", actor.clone(), "draft", "d1", revoked.clone()).record().await.unwrap();
        // A creation naming acme, on globex's subject: refused.
        let g = generate("acme", "bot", &[AgentScope::Read], now).unwrap();
        let g_created = EventData::ApiKeyCreated(g.created.clone());
        operator
            .event("globex", actor.clone(), "apikey", &g.created.key_id, g_created)
            .record()
            .await
            .unwrap();
        keys.catch_up(&*log, "spend.evt").await.unwrap();
        assert!(keys.store().authorize(&k.secret, AgentScope::Read, None, now).is_ok());
        assert!(keys.store().get(&g.created.key_id).is_none());
        // The real revocation, then a replay of the creation.
        operator.event("acme", actor.clone(), "apikey", "all", revoked).record().await.unwrap();
        operator.event("acme", actor, "apikey", &k.created.key_id, created).record().await.unwrap();
        keys.catch_up(&*log, "spend.evt").await.unwrap();
        assert_eq!(
            keys.store().authorize(&k.secret, AgentScope::Read, None, now).unwrap_err().code(),
            "apikey.revoked"
        );
        // Nothing new: nothing read.
        keys.catch_up(&*log, "spend.evt").await.unwrap();
    }
}
