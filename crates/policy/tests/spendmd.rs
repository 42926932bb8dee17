//! SPEND.md as the seed documents write it: the configurations validate and
//! behave as documented; broken files get every error with its line.

use chrono::{Duration, Utc};
use spend_core::Money;
use spend_core::events::Outcome;
use spend_policy::evaluate::{Change, Draft, Windows, evaluate};
use spend_policy::spendmd::{self, Channel, PolicyError};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn usd(minor: i64) -> Money {
    Money::new(minor, "USD").unwrap()
}

fn payment(minor: i64, merchant: &str) -> Draft {
    Draft {
        account_id: "card_1".into(),
        change: Change::Payment {
            merchant: merchant.into(),
            category: Some("software".into()),
            country: Some("US".into()),
            https: Some(true),
            url: Some(format!("https://{merchant}/billing")),
        },
        spend_impact: usd(minor),
        counted: usd(minor),
        month_counted: usd(minor),
        later_months_counted: usd(0),
    }
}

fn codes(d: &spend_policy::evaluate::Decision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn the_security_hardened_seed_validates_with_every_field() {
    let md = spendmd::parse(&fixture("security-hardened.md")).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(md.agent_name.as_deref(), Some("secure-agent"));
    assert_eq!(md.spend.monthly_limit, Some(usd(10_000)));
    assert_eq!(md.spend.daily_limit, Some(usd(2_500)));
    assert_eq!(md.spend.per_transaction, Some(usd(1_000)));
    assert_eq!(md.spend.allowlist, vec!["openai.com", "anthropic.com"]);
    assert_eq!(md.spend.blocked_categories, vec!["gambling", "cryptocurrency", "money_transfer"]);
    assert!(md.spend.require_https);
    assert_eq!(md.spend.geographic_restrictions, vec!["US"]);
    assert_eq!(md.approval.auto_approve_under, Some(usd(100)));
    assert_eq!(md.approval.require_confirmation_over, Some(usd(1_000)));
    assert_eq!(md.approval.approval_channels, vec![Channel::Slack, Channel::Email]);
    assert_eq!(md.approval.timeout_minutes, 10);
    assert_eq!(md.notifications.events.len(), 8);
    assert_eq!(md.security.ip_allowlist[0].to_string(), "10.0.0.0/8");
    assert_eq!(md.security.api_key_rotation_days, Some(30));
    assert_eq!(md.security.audit_retention_days, Some(730));
    assert!(md.version.starts_with("sha256:"));
}

#[test]
fn the_start_restrictive_seed_behaves_as_documented() {
    let md = spendmd::parse(&fixture("start-restrictive.md")).unwrap_or_else(|e| panic!("{e:?}"));
    let now = Utc::now();
    let w = Windows::default();
    // Small, allowlisted: auto-approved only under a human-approved mandate.
    let d = evaluate(&md, true, &w, &payment(300, "api.openai.com"), now);
    assert_eq!(d.outcome, Outcome::AutoApprove, "{d:?}");
    let d = evaluate(&md, false, &w, &payment(300, "openai.com"), now);
    assert_eq!(d.outcome, Outcome::RequireApproval);
    assert_eq!(codes(&d), vec!["approval.mandate_missing"]);
    // Exactly the per-transaction limit: allowed, needs a human.
    assert_eq!(evaluate(&md, true, &w, &payment(500, "anthropic.com"), now).outcome, Outcome::RequireApproval);
    // Over it, or off the allowlist, or over http: denied with reasons.
    assert_eq!(codes(&evaluate(&md, true, &w, &payment(501, "openai.com"), now)), vec!["limit.per_transaction"]);
    assert_eq!(codes(&evaluate(&md, true, &w, &payment(100, "evil.example"), now)), vec!["allowlist.merchant"]);
    assert_eq!(codes(&evaluate(&md, true, &w, &payment(100, "notopenai.com"), now)), vec!["allowlist.merchant"]);
    let mut http = payment(100, "openai.com");
    if let Change::Payment { url, .. } = &mut http.change {
        *url = Some("http://openai.com/pay".into());
    }
    assert_eq!(codes(&evaluate(&md, true, &w, &http, now)), vec!["https.required"]);
}

#[test]
fn the_24_hour_envelope_is_a_hard_ceiling_with_warnings_at_80_percent() {
    let md = spendmd::parse(&fixture("start-restrictive.md")).unwrap();
    let now = Utc::now();
    let at = |used| Windows {
        last_24h: used,
        ..Windows::default()
    };
    let d = evaluate(&md, true, &at(500), &payment(300, "openai.com"), now);
    assert_ne!(d.outcome, Outcome::Deny);
    assert_eq!(d.alerts[0].event, "limit.approaching");
    let d = evaluate(&md, true, &at(800), &payment(300, "openai.com"), now);
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(codes(&d), vec!["limit.daily"]);
    assert_eq!(d.alerts[0].event, "limit.exceeded");
    let d = evaluate(
        &md,
        true,
        &Windows {
            this_month: 4_900,
            ..Windows::default()
        },
        &payment(200, "openai.com"),
        now,
    );
    assert_eq!(codes(&d), vec!["limit.monthly"]);
}

#[test]
fn hardened_rules_deny_blocked_categories_foreign_payments_and_need_two_approvers_above_the_threshold() {
    let md = spendmd::parse(&fixture("security-hardened.md")).unwrap();
    let (now, w) = (Utc::now(), Windows::default());
    let mut gambling = payment(500, "openai.com");
    if let Change::Payment { category, country, .. } = &mut gambling.change {
        *category = Some("Gambling".into());
        *country = Some("FR".into());
    }
    assert_eq!(
        codes(&evaluate(&md, true, &w, &gambling, now)),
        vec!["category.blocked", "geography.restricted"]
    );
    // Between auto_approve_under (1 USD) and require_confirmation_over (10 USD).
    assert_eq!(evaluate(&md, true, &w, &payment(500, "openai.com"), now).outcome, Outcome::RequireApproval);
    assert_eq!(evaluate(&md, true, &w, &payment(50, "openai.com"), now).outcome, Outcome::AutoApprove);
    // Above 10 USD is over per_transaction too; with a wider limit it needs dual control.
    let mut wide = md.clone();
    wide.spend.per_transaction = Some(usd(2_000));
    assert_eq!(
        evaluate(&wide, true, &w, &payment(1_500, "openai.com"), now).outcome,
        Outcome::RequireDualApproval
    );
    let eur = Draft {
        spend_impact: Money::new(100, "EUR").unwrap(),
        ..payment(100, "openai.com")
    };
    assert_eq!(codes(&evaluate(&md, true, &w, &eur, now)), vec!["currency.mismatch"]);
}

#[test]
fn ad_changes_respect_accounts_the_budget_change_cap_and_the_cooldown() {
    let md = spendmd::parse(&fixture("start-restrictive.md")).unwrap();
    let now = Utc::now();
    let budget = |account: &str, before: i64, after: i64| Draft {
        account_id: account.into(),
        change: Change::Budget {
            campaign_id: "c1".into(),
            before: usd(before),
            after: usd(after),
        },
        spend_impact: usd(0),
        counted: usd(0),
        month_counted: usd(0),
        later_months_counted: usd(0),
    };
    let w = Windows::default();
    assert_eq!(
        evaluate(&md, false, &w, &budget("act_1001", 5_000, 20_000), now).outcome,
        Outcome::RequireApproval
    );
    assert_eq!(
        codes(&evaluate(&md, false, &w, &budget("act_1001", 5_000, 30_000), now)),
        vec!["ads.max_budget_change"]
    );
    assert_eq!(codes(&evaluate(&md, false, &w, &budget("act_9", 5_000, 6_000), now)), vec!["ads.account"]);
    let recent = Windows {
        campaign_last_changed: Some(now - Duration::minutes(10)),
        ..Windows::default()
    };
    assert_eq!(
        codes(&evaluate(&md, false, &recent, &budget("act_1001", 5_000, 6_000), now)),
        vec!["ads.cooldown"]
    );
    let old = Windows {
        campaign_last_changed: Some(now - Duration::minutes(61)),
        ..Windows::default()
    };
    assert_eq!(
        evaluate(&md, false, &old, &budget("act_1001", 5_000, 6_000), now).outcome,
        Outcome::RequireApproval
    );
}

#[test]
fn an_invalid_file_gets_every_error_with_its_line_and_field() {
    let errors = spendmd::parse(&fixture("invalid.md")).unwrap_err();
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    let expected = [
        (2, "owner"),
        (4, "spend.monthly_limit"),
        (9, "spend.allowlist[1]"),
        (10, "spend.geographic_restrictions[0]"),
        (11, "spend.require_https"),
        (13, "approval.timeout_action"),
        (14, "approval.timeout_minutes"),
        (15, "approval.approval_channels[0]"),
        (18, "security.ip_allowlist[0]"),
        (19, "security.api_key_rotation_days"),
        (20, "security.shiny"),
    ];
    for want in expected {
        assert!(got.contains(&want), "missing {want:?} in {errors:#?}");
    }
    // A valid field next to invalid ones is not reported.
    assert!(
        errors.iter().all(|e| e.field != "spend.per_transaction" && e.field != "agent_name"),
        "{errors:#?}"
    );
    let approve = errors.iter().find(|e| e.field == "approval.timeout_action").unwrap();
    assert!(approve.message.contains("never move money"), "{approve}");
    assert_eq!(
        errors.iter().find(|e| e.field == "spend.monthly_limit").unwrap().to_string(),
        "line 4: spend.monthly_limit: \"dollars\" is not a supported ISO 4217 currency code"
    );
}

#[test]
fn a_webhook_url_is_refused_as_a_secret_and_escalation_needs_a_channel_to_escalate_to() {
    let errors = spendmd::parse("notifications:\n  slack: https://hooks.slack.com/services/T0/B0/XYZ\n").unwrap_err();
    assert_eq!((errors[0].line, errors[0].field.as_str()), (2, "notifications.slack"));
    assert!(
        errors[0].message.contains("secret") && errors[0].message.contains("SPEND__APPROVAL__NOTIFY__SLACK_WEBHOOKS__"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].message.contains("XYZ"), "the URL is not repeated: {}", errors[0]);
    let bad_name = spendmd::parse("notifications:\n  slack: \"#general\"\n").unwrap_err();
    assert_eq!(bad_name[0].field, "notifications.slack");
    let md = spendmd::parse("approval:\n  approval_channels: [slack, email]\n  timeout_action: escalate\nnotifications:\n  slack: approvals\n").unwrap();
    assert_eq!(md.approval.timeout_action, spendmd::TimeoutAction::Escalate);
    assert_eq!(md.notifications.slack_webhook(), "approvals");
    let errors = spendmd::parse("approval:\n  timeout_action: escalate\n").unwrap_err();
    assert_eq!((errors[0].line, errors[0].field.as_str()), (2, "approval.timeout_action"));
    assert!(errors[0].message.contains("approval_channels"), "{}", errors[0]);
}

#[test]
fn broken_yaml_names_its_line() {
    let errors = spendmd::parse("spend:\n  daily_limit: 10 USD\n  allowlist: [openai.com\n").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].line >= 3, "{errors:?}");
    let dup = spendmd::parse("spend:\n  daily_limit: 10 USD\n  daily_limit: 20 USD\n").unwrap_err();
    assert_eq!(dup[0].line, 3, "{dup:?}");
    assert!(dup[0].message.contains("Duplicate key"), "{dup:?}");
    let limits: Vec<PolicyError> = spendmd::parse("spend:\n  per_transaction: 50 USD\n  daily_limit: 10 USD\n").unwrap_err();
    assert_eq!((limits[0].line, limits[0].field.as_str()), (2, "spend.per_transaction"));
}

mod fuzz {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = spend_policy::spendmd::parse(&text);
        }

        #[test]
        fn random_yaml_shaped_text_never_panics(lines in proptest::collection::vec("[ a-z_:\\-\\[\\]#0-9.]{0,30}", 0..30)) {
            let _ = spend_policy::spendmd::parse(&lines.join("\n"));
        }

        #[test]
        fn random_amounts_never_panic(s in "\\PC{0,40}") {
            let _ = spend_policy::money::parse_amount(&s);
        }
    }
}

/// The seed files also satisfy the published JSON Schema.
#[test]
fn the_seeds_satisfy_the_published_json_schema() {
    fn json(node: &marked_yaml::Node) -> serde_json::Value {
        match node {
            marked_yaml::Node::Scalar(s) => {
                let t = s.as_str();
                if let Some(b) = s.as_bool() {
                    serde_json::Value::Bool(b)
                } else if let Ok(n) = t.parse::<i64>() {
                    n.into()
                } else {
                    t.into()
                }
            }
            marked_yaml::Node::Sequence(seq) => seq.iter().map(json).collect(),
            marked_yaml::Node::Mapping(m) => m
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), json(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}/../../schemas/spend-md.schema.json", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    for f in ["security-hardened.md", "start-restrictive.md"] {
        let doc = json(&marked_yaml::parse_yaml(0, fixture(f)).unwrap());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    let bad = json(&marked_yaml::parse_yaml(0, fixture("invalid.md")).unwrap());
    assert!(!v.is_valid(&bad));
}
