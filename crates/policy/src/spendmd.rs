//! SPEND.md: YAML whose markdown headings (`## Spending`) are YAML comments.
//! Each section's keys nest under `spend:`, `approval:`, `notifications:`,
//! `security:` and `ads:`; `agent_name` and `owner` sit at the top.
//!
//! Parsing walks the YAML tree itself rather than deserializing, so that it
//! reports *every* problem at once, each with its line and field path
//! (`spend.per_transaction`, `security.ip_allowlist[2]`). Anchors, aliases,
//! tags and duplicate keys are refused: a policy file should say one thing
//! plainly. Amounts (`50 USD`) become integer minor units.

use std::fmt;

use ipnet::IpNet;
use marked_yaml::{LoadError, LoaderOptions, Node};
use sha2::Digest;
use spend_core::Money;

use crate::money::parse_amount;

/// One problem in a SPEND.md file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line (0 when the file as a whole is at fault).
    pub line: usize,
    /// Dotted field path, e.g. `spend.allowlist[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.field, self.message)
        }
    }
}

/// What happens to a pending approval nobody answers. Neither approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The request expires: the draft can no longer be approved.
    Deny,
    /// Once: the next approval channel is notified and the request is
    /// extended by `timeout_minutes`; a second timeout denies.
    Escalate,
}

impl TimeoutAction {
    /// As an approval request records it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutAction::Deny => "deny",
            TimeoutAction::Escalate => "escalate",
        }
    }
}

/// An approval channel, in the order SPEND.md lists them: with
/// `timeout_action: escalate` the first is notified, and the next on
/// timeout; otherwise all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The Slack webhook `notifications.slack` names.
    Slack,
    /// Each trusted approver of the organisation, at the address they were
    /// invited with.
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Email => "email",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spend {
    pub monthly_limit: Option<Money>,
    /// The rolling 24-hour envelope: a hard ceiling on net spend increase.
    pub daily_limit: Option<Money>,
    pub per_transaction: Option<Money>,
    /// Merchant domains (a subdomain matches its domain).
    pub allowlist: Vec<String>,
    pub allowed_categories: Vec<String>,
    pub blocked_categories: Vec<String>,
    pub require_https: bool,
    /// ISO 3166-1 alpha-2 country codes.
    pub geographic_restrictions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// A standing mandate; only effective when the policy version enabling
    /// it was approved by a human.
    pub auto_approve_under: Option<Money>,
    /// Above this, two distinct approvers (dual control).
    pub require_confirmation_over: Option<Money>,
    pub notify_on_all: bool,
    pub approval_channels: Vec<Channel>,
    pub timeout_action: TimeoutAction,
    pub timeout_minutes: u32,
}

impl Default for Approval {
    fn default() -> Self {
        Self {
            auto_approve_under: None,
            require_confirmation_over: None,
            notify_on_all: false,
            approval_channels: Vec::new(),
            timeout_action: TimeoutAction::Deny,
            timeout_minutes: 60,
        }
    }
}

/// Notification event names SPEND.md may subscribe to.
pub const NOTIFICATION_EVENTS: &[&str] = &[
    "transaction.completed",
    "transaction.declined",
    "transaction.pending_approval",
    "limit.approaching",
    "limit.exceeded",
    "card.created",
    "card.frozen",
    "security.alert",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// Where the organisation's notifications are emailed.
    pub email: Option<String>,
    /// The *name* of a Slack incoming webhook configured on the approval
    /// service (`approval.notify.slack_webhooks.<name>`). Never the URL: a
    /// webhook URL is a secret, and SPEND.md is recorded on the log and
    /// shown to approvers.
    pub slack: Option<String>,
    pub events: Vec<String>,
}

/// The webhook name a Slack approval channel uses when `notifications.slack`
/// names none.
pub const DEFAULT_SLACK_WEBHOOK: &str = "default";

impl Notifications {
    /// The Slack webhook's name.
    pub fn slack_webhook(&self) -> &str {
        self.slack.as_deref().unwrap_or(DEFAULT_SLACK_WEBHOOK)
    }
}

impl SpendMd {
    /// Whether notification event `kind` (one of [`NOTIFICATION_EVENTS`])
    /// is delivered: `notify_on_all`, or listed in `notifications.events`.
    pub fn notifies(&self, kind: &str) -> bool {
        self.approval.notify_on_all || self.notifications.events.iter().any(|e| e == kind)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    pub ip_allowlist: Vec<IpNet>,
    pub require_signed_requests: bool,
    pub api_key_rotation_days: Option<u32>,
    pub audit_retention_days: Option<u32>,
    /// Requests one agent key may make per minute (default
    /// [`DEFAULT_RATE_LIMIT_PER_MINUTE`]).
    pub rate_limit_per_minute: Option<u32>,
    /// Largest request body the gateway accepts (default
    /// [`DEFAULT_MAX_REQUEST_BYTES`]).
    pub max_request_bytes: Option<u32>,
}

pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 1 << 20;

impl Security {
    pub fn rate_limit_per_minute(&self) -> u32 {
        self.rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE)
    }

    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES) as usize
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ads {
    pub allowed_accounts: Vec<String>,
    /// Cap on the size of one budget change (up or down).
    pub max_budget_change: Option<Money>,
    pub campaign_cooldown_minutes: Option<u32>,
}

/// What `new` loosens against `old`, in words (empty: nothing): a limit
/// raised or removed, a mandate (`auto_approve_under`) enabled or raised,
/// dual control (`require_confirmation_over`) raised or removed, an
/// allowlist, category or country list widened or lifted, HTTPS no longer
/// required. A version that loosens needs two approvers.
pub fn loosenings(old: &SpendMd, new: &SpendMd) -> Vec<String> {
    let mut v = Vec::new();
    // A ceiling (`None`: no ceiling) that is higher, gone, or in another
    // currency (never converted, so never known to be lower).
    let higher = |o: &Option<Money>, n: &Option<Money>| match (o, n) {
        (Some(_), None) => true,
        (Some(o), Some(n)) => o.currency != n.currency || n.minor_units > o.minor_units,
        (None, _) => false,
    };
    for (name, o, n) in [
        ("monthly_limit", &old.spend.monthly_limit, &new.spend.monthly_limit),
        ("daily_limit", &old.spend.daily_limit, &new.spend.daily_limit),
        ("per_transaction", &old.spend.per_transaction, &new.spend.per_transaction),
        (
            "require_confirmation_over",
            &old.approval.require_confirmation_over,
            &new.approval.require_confirmation_over,
        ),
        ("max_budget_change", &old.ads.max_budget_change, &new.ads.max_budget_change),
    ] {
        if higher(o, n) {
            v.push(format!("{name} {} → {}", shown(o), shown(n)));
        }
    }
    match (&old.approval.auto_approve_under, &new.approval.auto_approve_under) {
        (None, Some(n)) => v.push(format!("auto_approve_under enabled at {n}")),
        (Some(o), Some(n)) if o.currency != n.currency || n.minor_units > o.minor_units => v.push(format!("auto_approve_under {o} → {n}")),
        _ => {}
    }
    // A list that restricts when it is not empty: widened if it gains an
    // entry, lifted if it becomes empty.
    let widened = |o: &[String], n: &[String]| !o.is_empty() && (n.is_empty() || n.iter().any(|x| !o.contains(x)));
    for (name, o, n) in [
        ("allowlist", &old.spend.allowlist, &new.spend.allowlist),
        ("allowed_categories", &old.spend.allowed_categories, &new.spend.allowed_categories),
        (
            "geographic_restrictions",
            &old.spend.geographic_restrictions,
            &new.spend.geographic_restrictions,
        ),
    ] {
        if widened(o, n) {
            v.push(format!("{name} widened"));
        }
    }
    if old.spend.blocked_categories.iter().any(|c| !new.spend.blocked_categories.contains(c)) {
        v.push("blocked_categories narrowed".into());
    }
    if old.spend.require_https && !new.spend.require_https {
        v.push("require_https turned off".into());
    }
    v
}

fn shown(m: &Option<Money>) -> String {
    m.as_ref().map_or_else(|| "none".into(), ToString::to_string)
}

/// A validated SPEND.md.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpendMd {
    pub agent_name: Option<String>,
    pub owner: Option<String>,
    pub spend: Spend,
    pub approval: Approval,
    pub notifications: Notifications,
    pub security: Security,
    pub ads: Ads,
    /// `sha256:<hex>` of the file's bytes: the policy version decisions name.
    pub version: String,
}

/// The content hash that names a policy version.
pub fn version_of(source: &str) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(source.as_bytes())))
}

struct Walker {
    errors: Vec<PolicyError>,
}

fn line_of(node: &Node) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(0)
}

impl Walker {
    fn err(&mut self, line: usize, field: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            line,
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// The mapping's entries, refusing keys not in `known`.
    fn mapping<'a>(&mut self, node: &'a Node, field: &str, known: &[&str]) -> Vec<(&'a str, &'a Node)> {
        let Some(map) = node.as_mapping() else {
            self.err(line_of(node), field, "must be a mapping of keys (check the indentation under this section)");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            let path = if field.is_empty() {
                k.as_str().to_string()
            } else {
                format!("{field}.{}", k.as_str())
            };
            if known.contains(&k.as_str()) {
                out.push((k.as_str(), v));
            } else {
                let line = k.span().start().map(|m| m.line()).unwrap_or(0);
                self.err(line, &path, format!("unknown field; expected one of {}", known.join(", ")));
            }
        }
        out
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_scalar() {
            Some(s) if !s.as_str().trim().is_empty() => Some(s.as_str().trim().to_string()),
            Some(_) => {
                self.err(line_of(node), field, "must not be empty");
                None
            }
            None => {
                self.err(line_of(node), field, "must be a single value, not a list or mapping");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        let v = node.as_scalar().and_then(|s| s.as_bool());
        if v.is_none() {
            self.err(line_of(node), field, "must be true or false");
        }
        v
    }

    fn number(&mut self, node: &Node, field: &str, min: u32, max: u32) -> Option<u32> {
        match node.as_scalar().and_then(|s| s.as_str().trim().parse::<u32>().ok()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(line_of(node), field, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    fn amount(&mut self, node: &Node, field: &str) -> Option<Money> {
        let s = self.string(node, field)?;
        parse_amount(&s).map_err(|e| self.err(line_of(node), field, e)).ok()
    }

    /// A list of single values, each checked by `check`.
    fn list<T>(&mut self, node: &Node, field: &str, mut check: impl FnMut(&mut Self, &str, usize, &str) -> Option<T>) -> Vec<T> {
        let Some(seq) = node.as_sequence() else {
            // `key: []` is an empty sequence; a blank `key:` is an empty scalar.
            if node.as_scalar().is_some_and(|s| s.as_str().is_empty()) {
                return Vec::new();
            }
            self.err(line_of(node), field, "must be a list (`- item` lines, or [a, b])");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let path = format!("{field}[{i}]");
            if let Some(s) = self.string(item, &path)
                && let Some(v) = check(self, &s, line_of(item), &path)
            {
                out.push(v);
            }
        }
        out
    }
}

fn load_error(e: &LoadError) -> PolicyError {
    use LoadError::*;
    let marker = match e {
        TopLevelMustBeMapping(m) | TopLevelMustBeSequence(m) | UnexpectedAnchor(m) | MappingKeyMustBeScalar(m) | UnexpectedTag(m) | ScanError(m, _) => Some(*m),
        DuplicateKey(d) => d.key.span().start().copied(),
    };
    let text = e.to_string();
    // Most messages start with "line:col: "; the line is reported apart.
    let message = match text.split_once(": ") {
        Some((pos, rest)) if pos.split(':').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) => rest.to_string(),
        _ => text.clone(),
    };
    PolicyError {
        line: marker.map(|m| m.line()).unwrap_or(0),
        field: String::new(),
        message: format!("not valid SPEND.md YAML: {message}"),
    }
}

/// Parses and validates SPEND.md; on failure, every error found.
pub fn parse(source: &str) -> Result<SpendMd, Vec<PolicyError>> {
    let root = marked_yaml::parse_yaml_with_options(0, source, LoaderOptions::default().error_on_duplicate_keys(true)).map_err(|e| vec![load_error(&e)])?;
    let mut w = Walker { errors: Vec::new() };
    let mut md = SpendMd {
        version: version_of(source),
        ..SpendMd::default()
    };
    for (key, v) in w.mapping(&root, "", &["agent_name", "owner", "spend", "approval", "notifications", "security", "ads"]) {
        match key {
            "agent_name" => md.agent_name = w.string(v, key),
            "owner" => md.owner = w.string(v, key).filter(|o| email_like(o) || err_email(&mut w, v, key)),
            "spend" => md.spend = spend(&mut w, v),
            "approval" => md.approval = approval(&mut w, v),
            "notifications" => md.notifications = notifications(&mut w, v),
            "security" => md.security = security(&mut w, v),
            "ads" => md.ads = ads(&mut w, v),
            _ => unreachable!("mapping() only returns known keys"),
        }
    }
    cross_checks(&mut w, &md, &root);
    if w.errors.is_empty() {
        Ok(md)
    } else {
        w.errors.sort_by_key(|e| e.line);
        Err(w.errors)
    }
}

fn email_like(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !s.contains(char::is_whitespace))
}

fn err_email(w: &mut Walker, node: &Node, field: &str) -> bool {
    w.err(line_of(node), field, "must be an email address");
    false
}

fn spend(w: &mut Walker, node: &Node) -> Spend {
    let mut s = Spend::default();
    let keys = [
        "monthly_limit",
        "daily_limit",
        "per_transaction",
        "allowlist",
        "allowed_categories",
        "blocked_categories",
        "require_https",
        "geographic_restrictions",
    ];
    for (key, v) in w.mapping(node, "spend", &keys) {
        let f = format!("spend.{key}");
        match key {
            "monthly_limit" => s.monthly_limit = w.amount(v, &f),
            "daily_limit" => s.daily_limit = w.amount(v, &f),
            "per_transaction" => s.per_transaction = w.amount(v, &f),
            "allowlist" => {
                s.allowlist = w.list(v, &f, |w, item, line, path| {
                    let d = item.to_ascii_lowercase();
                    let ok = d.contains('.') && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
                    if ok {
                        Some(d)
                    } else {
                        w.err(line, path, format!("{item:?} is not a merchant domain such as openai.com"));
                        None
                    }
                })
            }
            "allowed_categories" => s.allowed_categories = w.list(v, &f, |_, i, _, _| Some(i.to_ascii_lowercase())),
            "blocked_categories" => s.blocked_categories = w.list(v, &f, |_, i, _, _| Some(i.to_ascii_lowercase())),
            "require_https" => s.require_https = w.boolean(v, &f).unwrap_or(false),
            "geographic_restrictions" => {
                s.geographic_restrictions = w.list(v, &f, |w, item, line, path| {
                    if item.len() == 2 && item.bytes().all(|b| b.is_ascii_uppercase()) {
                        Some(item.to_string())
                    } else {
                        w.err(line, path, format!("{item:?} is not an ISO 3166-1 alpha-2 country code such as US"));
                        None
                    }
                })
            }
            _ => unreachable!(),
        }
    }
    s
}

fn approval(w: &mut Walker, node: &Node) -> Approval {
    let mut a = Approval::default();
    let keys = [
        "auto_approve_under",
        "require_confirmation_over",
        "notify_on_all",
        "approval_channels",
        "timeout_action",
        "timeout_minutes",
    ];
    for (key, v) in w.mapping(node, "approval", &keys) {
        let f = format!("approval.{key}");
        match key {
            "auto_approve_under" => a.auto_approve_under = w.amount(v, &f),
            "require_confirmation_over" => a.require_confirmation_over = w.amount(v, &f),
            "notify_on_all" => a.notify_on_all = w.boolean(v, &f).unwrap_or(false),
            "approval_channels" => {
                a.approval_channels = w.list(v, &f, |w, item, line, path| match item {
                    "slack" => Some(Channel::Slack),
                    "email" => Some(Channel::Email),
                    other => {
                        w.err(line, path, format!("{other:?} is not a channel; use slack or email"));
                        None
                    }
                })
            }
            "timeout_action" => match w.string(v, &f).as_deref() {
                Some("deny") | None => {}
                Some("escalate") => a.timeout_action = TimeoutAction::Escalate,
                Some("approve") => w.err(
                    line_of(v),
                    &f,
                    "approve is not allowed: an unanswered approval must never move money; use deny or escalate",
                ),
                Some(other) => w.err(line_of(v), &f, format!("{other:?} is not a timeout action; use deny or escalate")),
            },
            "timeout_minutes" => a.timeout_minutes = w.number(v, &f, 1, 10_080).unwrap_or(a.timeout_minutes),
            _ => unreachable!(),
        }
    }
    a
}

fn notifications(w: &mut Walker, node: &Node) -> Notifications {
    let mut n = Notifications::default();
    for (key, v) in w.mapping(node, "notifications", &["email", "slack", "events"]) {
        let f = format!("notifications.{key}");
        match key {
            "email" => n.email = w.string(v, &f).filter(|e| email_like(e) || err_email(w, v, &f)),
            "slack" => {
                n.slack = w.string(v, &f).filter(|name| {
                    if name.contains("://") {
                        w.err(
                            line_of(v),
                            &f,
                            "a webhook URL is a secret and SPEND.md is recorded on the log: name a webhook instead (e.g. `slack: alerts`) and give its URL to the approval service as SPEND__APPROVAL__NOTIFY__SLACK_WEBHOOKS__ALERTS",
                        );
                        return false;
                    }
                    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if !ok {
                        w.err(line_of(v), &f, "must name a configured Slack webhook: 1 to 64 of a-z, 0-9 and _");
                    }
                    ok
                })
            }
            "events" => {
                n.events = w.list(v, &f, |w, item, line, path| {
                    if NOTIFICATION_EVENTS.contains(&item) {
                        Some(item.to_string())
                    } else {
                        w.err(
                            line,
                            path,
                            format!("{item:?} is not a notification event; use one of {}", NOTIFICATION_EVENTS.join(", ")),
                        );
                        None
                    }
                })
            }
            _ => unreachable!(),
        }
    }
    n
}

fn security(w: &mut Walker, node: &Node) -> Security {
    let mut s = Security::default();
    for (key, v) in w.mapping(
        node,
        "security",
        &[
            "ip_allowlist",
            "require_signed_requests",
            "api_key_rotation_days",
            "audit_retention_days",
            "rate_limit_per_minute",
            "max_request_bytes",
        ],
    ) {
        let f = format!("security.{key}");
        match key {
            "ip_allowlist" => {
                s.ip_allowlist = w.list(v, &f, |w, item, line, path| {
                    item.parse::<IpNet>()
                        .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| w.err(line, path, format!("{item:?} is not an IP address or CIDR block such as 10.0.0.0/8")))
                        .ok()
                })
            }
            "require_signed_requests" => s.require_signed_requests = w.boolean(v, &f).unwrap_or(false),
            "api_key_rotation_days" => s.api_key_rotation_days = w.number(v, &f, 1, 3650),
            "audit_retention_days" => s.audit_retention_days = w.number(v, &f, 1, 36_500),
            "rate_limit_per_minute" => s.rate_limit_per_minute = w.number(v, &f, 1, 1_000_000),
            "max_request_bytes" => s.max_request_bytes = w.number(v, &f, 1024, 64 << 20),
            _ => unreachable!(),
        }
    }
    s
}

fn ads(w: &mut Walker, node: &Node) -> Ads {
    let mut a = Ads::default();
    for (key, v) in w.mapping(node, "ads", &["allowed_accounts", "max_budget_change", "campaign_cooldown_minutes"]) {
        let f = format!("ads.{key}");
        match key {
            "allowed_accounts" => a.allowed_accounts = w.list(v, &f, |_, i, _, _| Some(i.to_string())),
            "max_budget_change" => a.max_budget_change = w.amount(v, &f),
            "campaign_cooldown_minutes" => a.campaign_cooldown_minutes = w.number(v, &f, 0, 10_080),
            _ => unreachable!(),
        }
    }
    a
}

/// Rules across fields: limits that contradict each other.
fn cross_checks(w: &mut Walker, md: &SpendMd, root: &Node) {
    let line = |section: &str, key: &str| {
        root.as_mapping()
            .and_then(|m| m.get_mapping(section))
            .and_then(|m| m.get_node(key))
            .map(line_of)
            .unwrap_or(0)
    };
    let s = &md.spend;
    let pairs = [
        ("per_transaction", &s.per_transaction, "daily_limit", &s.daily_limit),
        ("daily_limit", &s.daily_limit, "monthly_limit", &s.monthly_limit),
        ("per_transaction", &s.per_transaction, "monthly_limit", &s.monthly_limit),
    ];
    for (small_name, small, big_name, big) in pairs {
        if let (Some(a), Some(b)) = (small, big) {
            if a.currency != b.currency {
                w.err(
                    line("spend", small_name),
                    &format!("spend.{small_name}"),
                    format!("is in {} but spend.{big_name} is in {}; use one currency", a.currency, b.currency),
                );
            } else if a.minor_units > b.minor_units {
                w.err(
                    line("spend", small_name),
                    &format!("spend.{small_name}"),
                    format!("is larger than spend.{big_name}"),
                );
            }
        }
    }
    if md.approval.timeout_action == TimeoutAction::Escalate && md.approval.approval_channels.is_empty() {
        w.err(
            line("approval", "timeout_action"),
            "approval.timeout_action",
            "escalate notifies the next approval channel: list approval_channels (e.g. [slack, email])",
        );
    }
    if let (Some(auto), Some(dual)) = (&md.approval.auto_approve_under, &md.approval.require_confirmation_over)
        && auto.currency == dual.currency
        && auto.minor_units > dual.minor_units
    {
        w.err(
            line("approval", "auto_approve_under"),
            "approval.auto_approve_under",
            "is larger than approval.require_confirmation_over",
        );
    }
    if let (Some(auto), Some(per)) = (&md.approval.auto_approve_under, &s.per_transaction)
        && auto.currency == per.currency
        && auto.minor_units > per.minor_units
    {
        w.err(
            line("approval", "auto_approve_under"),
            "approval.auto_approve_under",
            "is larger than spend.per_transaction, so it could never apply",
        );
    }
}

#[cfg(test)]
mod loosening_tests {
    use super::{loosenings, parse};

    const IN_FORCE: &str = "spend:\n  daily_limit: 200 USD\n  per_transaction: 50 USD\n  allowlist: [openai.com]\n  require_https: true\napproval:\n  require_confirmation_over: 25 USD\n";

    fn against(new: &str) -> Vec<String> {
        loosenings(&parse(IN_FORCE).unwrap(), &parse(new).unwrap())
    }

    #[test]
    fn a_tightening_loosens_nothing() {
        let tighter = "spend:\n  daily_limit: 100 USD\n  per_transaction: 45 USD\n  allowlist: [openai.com]\n  require_https: true\napproval:\n  require_confirmation_over: 20 USD\n";
        assert_eq!(against(tighter), Vec::<String>::new());
    }

    #[test]
    fn a_raised_or_lifted_limit_a_mandate_wider_lists_and_weaker_dual_control_loosen() {
        let looser = "spend:\n  per_transaction: 60 USD\n  allowlist: [openai.com, anthropic.com]\napproval:\n  auto_approve_under: 5 USD\n  require_confirmation_over: 40 USD\n";
        let v = against(looser);
        for what in [
            "daily_limit 200.00 USD → none",
            "per_transaction 50.00 USD → 60.00 USD",
            "require_confirmation_over 25.00 USD → 40.00 USD",
            "auto_approve_under enabled",
            "allowlist widened",
            "require_https turned off",
        ] {
            assert!(v.iter().any(|x| x.starts_with(what)), "{what} missing from {v:?}");
        }
    }
}
