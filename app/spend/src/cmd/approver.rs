//! `spend approver …`: who may approve, as events on the log.
//!
//! - `invite` makes a single-use enrollment link (a 256-bit token, of
//!   which only the SHA-256 is recorded, expiring) and prints it once.
//! - `anchor` trusts an organisation's first admin: the key whose
//!   fingerprint the enrollment page showed them (`spend.approver.anchored.v1`
//!   on the operator's `anchor.<org>` subject). The approval service can
//!   never write it, so a compromised approval service cannot add one.
//! - `remove` records a removal: proofs the approver makes afterwards do
//!   not verify; the approvers they countersigned stay trusted.
//! - `list` replays the log into the registry every verifier builds.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use sha2::Digest as _;
use spend_core::events::{ApproverAnchored, ApproverInvited, ApproverRemoved, EventData};
use spend_eventlog::EventLog;

use super::operator::{open_log, record_as_operator, replay};
use crate::ApproverCommand;
use crate::config::SpendConfig;

/// How long an invitation link works, by default.
pub const INVITE_HOURS: u32 = 72;

/// A new invitation: its id and the link (printed once; never recorded).
pub struct Invitation {
    pub invite_id: String,
    pub link: String,
}

/// Records an invitation of `email` to `org` as `role` and returns its link
/// on `origin`.
pub async fn invite(log: Arc<dyn EventLog>, prefix: &str, org: &str, email: &str, role: &str, origin: &str, hours: u32) -> anyhow::Result<Invitation> {
    spend_core::subject::aggregate_subject(prefix, org, "roster", "x").with_context(|| format!("organisation {org:?}"))?;
    if !matches!(role, "approver" | "admin") {
        anyhow::bail!("--role {role:?}: expected approver or admin");
    }
    let email = email.trim();
    if email.len() > 320 || !email.contains('@') || email.chars().any(char::is_whitespace) {
        anyhow::bail!("--email {email:?} is not an email address");
    }
    let token = spend_credentials::random_hex(32)?;
    let invite_id = format!("inv_{}", &spend_credentials::random_hex(8)?);
    let expires = Utc::now() + chrono::Duration::hours(i64::from(hours.max(1)));
    let invited = ApproverInvited {
        invite_id: invite_id.clone(),
        org: org.into(),
        email: email.to_string(),
        role: role.into(),
        token_sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        expires_at: expires.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    record_as_operator(log, prefix, org, "roster", &invite_id, EventData::ApproverInvited(invited), Some(0)).await?;
    Ok(Invitation {
        link: format!("{}/enroll/{token}", origin.trim_end_matches('/')),
        invite_id,
    })
}

fn origin_of(config: &SpendConfig) -> String {
    if config.approval.origin.is_empty() {
        let port = config.approval.listen.rsplit(':').next().unwrap_or("7200");
        format!("http://localhost:{port}")
    } else {
        config.approval.origin.clone()
    }
}

pub async fn run(config: SpendConfig, command: ApproverCommand) -> anyhow::Result<ExitCode> {
    let prefix = config.nats.subject_prefix.clone();
    match command {
        ApproverCommand::Invite {
            org,
            email,
            role,
            hours,
            data_dir,
        } => {
            let log = open_log(&config, data_dir.as_deref()).await?;
            let inv = invite(log, &prefix, &org, &email, &role, &origin_of(&config), hours).await?;
            eprintln!(
                "Invited {email} to {org} as {role} ({}); the link works once, for {hours} hours. Send it to them:",
                inv.invite_id
            );
            println!("{}", inv.link);
            Ok(ExitCode::SUCCESS)
        }
        ApproverCommand::Anchor { org, fingerprint, data_dir } => {
            let fp = fingerprint.trim().to_ascii_lowercase();
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!("--fingerprint: expected the 64 hex characters the enrollment page showed");
            }
            let log = open_log(&config, data_dir.as_deref()).await?;
            let book = replay(log.clone(), &config, data_dir.as_deref()).await?;
            if book.approvers.bootstrapped(&org) {
                anyhow::bail!("{org} has its first admin already: new admins are countersigned by an admin in the app, never anchored again");
            }
            let waiting = book.approvers.awaiting_anchor(&org);
            let anchored = ApproverAnchored {
                org: org.clone(),
                fingerprint: fp.clone(),
            };
            record_as_operator(log, &prefix, &org, "anchor", &org, EventData::ApproverAnchored(anchored), None).await?;
            match waiting.iter().find(|(_, f)| *f == fp) {
                Some((id, _)) => eprintln!("Anchored {id} as {org}'s first admin (key {fp}); they can sign in now."),
                None => eprintln!("Anchored key {fp} for {org}: the admin who enrolls with that key is trusted as the first admin."),
            }
            Ok(ExitCode::SUCCESS)
        }
        ApproverCommand::Remove {
            org,
            approver_id,
            reason,
            data_dir,
        } => {
            let log = open_log(&config, data_dir.as_deref()).await?;
            let book = replay(log.clone(), &config, data_dir.as_deref()).await?;
            if book.approvers.approver(&org, &approver_id).is_none() {
                anyhow::bail!("{org} has no approver {approver_id} (see `spend approver list --org {org}`)");
            }
            let removed = ApproverRemoved {
                org: org.clone(),
                approver_id: approver_id.clone(),
                reason,
            };
            record_as_operator(log, &prefix, &org, "roster", &approver_id, EventData::ApproverRemoved(removed), None).await?;
            eprintln!("Removed {approver_id} from {org}: approvals they make from now on do not verify.");
            Ok(ExitCode::SUCCESS)
        }
        ApproverCommand::List { org, json, data_dir } => {
            let log = open_log(&config, data_dir.as_deref()).await?;
            let book = replay(log, &config, data_dir.as_deref()).await?;
            print_list(&book, &org, json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_list(book: &spend_approvals::book::Book, org: &str, json: bool) {
    use spend_draft::approvers::Voucher;
    let reg = &book.approvers;
    let email = |id: &str| book.registered(org, id).map(|r| r.email.clone()).unwrap_or_default();
    let rows: Vec<serde_json::Value> = reg
        .approvers(org)
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "approver_id": a.approver_id,
                "email": email(&a.approver_id),
                "role": a.role.as_str(),
                "fingerprint": spend_draft::proof::fingerprint(&a.public_key_der),
                "vouched_by": match &a.vouched_by { Voucher::Anchor => "anchor".to_string(), Voucher::Admin(x) => x.clone() },
                "state": if a.removed_at.is_some() { "removed" } else { "trusted" },
            })
        })
        .chain(
            book.registrations(org)
                .into_iter()
                .filter(|r| reg.approver(org, &r.approver_id).is_none())
                .map(|r| {
                    let awaiting = if reg.awaiting_anchor(org).iter().any(|(id, _)| *id == r.approver_id) {
                        "awaiting the operator's anchor"
                    } else {
                        "awaiting an admin's countersignature"
                    };
                    serde_json::json!({
                        "approver_id": r.approver_id, "email": r.email, "role": r.role, "fingerprint": r.fingerprint,
                        "vouched_by": null, "state": awaiting,
                    })
                }),
        )
        .chain(
            // A first admin whose enrollment came without a registration
            // the book knows (e.g. recorded by another tool).
            reg.awaiting_anchor(org)
                .into_iter()
                .filter(|(id, _)| book.registered(org, id).is_none())
                .map(|(id, fp)| {
                    serde_json::json!({
                        "approver_id": id, "email": "", "role": "admin", "fingerprint": fp,
                        "vouched_by": null, "state": "awaiting the operator's anchor",
                    })
                }),
        )
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    if rows.is_empty() {
        println!("{org} has no approvers yet: `spend approver invite --org {org} --email … --role admin`");
        return;
    }
    println!(
        "{:<20} {:<28} {:<9} {:<16} {:<38} FINGERPRINT",
        "APPROVER", "EMAIL", "ROLE", "VOUCHED BY", "STATE"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20} {:<28} {:<9} {:<16} {:<38} {}",
            s("approver_id"),
            s("email"),
            s("role"),
            s("vouched_by"),
            s("state"),
            s("fingerprint")
        );
    }
}
