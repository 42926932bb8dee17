//! `spend policy validate SPEND.md`: every error with its line and field.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use spend_policy::money::format_amount;
use spend_policy::spendmd;

/// Writes `text` to stdout. A reader that went away (`spend policy validate
/// F | head -1`) is no error: the rest of the output is simply not wanted,
/// so the command ends quietly with the exit code it would have had.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::new(e).context("writing to stdout")),
        _ => Ok(()),
    }
}

pub fn validate(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let source = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading SPEND.md from stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let name = path.display();
    // Writing to a String cannot fail.
    let mut out = String::new();
    match spendmd::parse(&source) {
        Ok(md) => {
            if json {
                let _ = writeln!(out, "{}", serde_json::json!({"ok": true, "version": md.version}));
            } else {
                let show = |m: &Option<spend_core::Money>| m.as_ref().map(format_amount).unwrap_or_else(|| "none".into());
                let _ = writeln!(out, "{name}: valid (version {})", md.version);
                let _ = writeln!(
                    out,
                    "  limits: per transaction {}, 24 h {}, month {}",
                    show(&md.spend.per_transaction),
                    show(&md.spend.daily_limit),
                    show(&md.spend.monthly_limit)
                );
                let _ = writeln!(
                    out,
                    "  approval: auto under {} (only once this version is approved by a human), two approvers over {}",
                    show(&md.approval.auto_approve_under),
                    show(&md.approval.require_confirmation_over)
                );
            }
            print(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            if json {
                let list: Vec<_> = errors
                    .iter()
                    .map(|e| serde_json::json!({"line": e.line, "field": e.field, "message": e.message}))
                    .collect();
                let _ = writeln!(out, "{}", serde_json::json!({"ok": false, "errors": list}));
                print(&out)?;
            } else {
                for e in &errors {
                    let _ = writeln!(out, "{name}: {e}");
                }
                print(&out)?;
                eprintln!("{} error(s) in {name}", errors.len());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `spend policy propose FILE --org ORG`: the file, validated, as a
/// `spend.policy.proposed.v1` on the operator's subject `policy.<id>`. It
/// takes effect once a human approves the hash of exactly that event; the
/// output names the proposal, the version and that hash.
pub async fn propose(config: crate::config::SpendConfig, path: &Path, org: &str, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let source = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let md = match spendmd::parse(&source) {
        Ok(md) => md,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            eprintln!("{}: not proposed ({} error(s))", path.display(), errors.len());
            return Ok(ExitCode::from(1));
        }
    };
    let draft_id = format!("p_{}", spend_credentials::random_hex(8)?);
    let log = super::operator::open_log(&config, data_dir).await?;
    // The version in force on the log, if a human approved one (else the
    // services' bootstrap file, which is not on the log).
    let book = super::operator::replay(log.clone(), &config, data_dir).await?;
    let previous_version = book.versions.active(org).map(|a| a.proposal.version.clone());
    let data = spend_core::events::EventData::PolicyProposed(spend_core::events::PolicyProposed {
        draft_id: draft_id.clone(),
        version: md.version.clone(),
        source,
        previous_version,
        enables_auto_approve: md.approval.auto_approve_under.is_some(),
    });
    let recorded = super::operator::record_as_operator(log, &config.nats.subject_prefix, org, "policy", &draft_id, data, Some(0)).await?;
    eprintln!(
        "proposed {} as {draft_id} (event hash {}); it applies once a human approves it in the approval app",
        md.version,
        spend_draft::event_hash(&recorded.bytes)
    );
    print(&format!("{draft_id}\n"))?;
    Ok(ExitCode::SUCCESS)
}
