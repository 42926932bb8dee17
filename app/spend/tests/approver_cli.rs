//! `spend approver invite / list / anchor / remove` as an operator runs
//! them, on a `spend dev` data folder: the link is printed once and only
//! its hash recorded; the first admin is trusted only through the anchor,
//! once per organisation ever; a removal keeps the chain visible; bad
//! input gets a clear error.

mod common;

use std::sync::Arc;

use common::{run, text};
use spend_eventlog::EventLog;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_testkit::events::{Approvers, append_all};

fn approver(data: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["approver"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", data]);
    run(&common::test_passkey_env(), &all)
}

fn list(data: &str) -> Vec<serde_json::Value> {
    let out = approver(data, &["list", "--org", "acme", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_invites_anchors_lists_and_removes_approvers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();

    // An invitation: the link once on stdout; only the token's hash on the log.
    let out = approver(data, &["invite", "--org", "acme", "--email", "ada@acme.example", "--role", "admin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout).trim().to_string();
    let token = link.strip_prefix("http://localhost:7200/enroll/").expect("a link to the app").to_string();
    assert_eq!(token.len(), 64, "a 256-bit token");
    assert!(text(&out.stderr).contains("works once"), "{}", text(&out.stderr));
    let raw = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .concat();
    assert!(!String::from_utf8_lossy(&raw).contains(&token), "the token is never recorded");
    assert!(list(data).is_empty());

    // Bad input.
    for (args, says) in [
        (vec!["invite", "--org", "acme", "--email", "not an email"], "is not an email address"),
        (
            vec!["invite", "--org", "acme", "--email", "x@y.z", "--role", "owner"],
            "expected approver or admin",
        ),
        (vec!["anchor", "--org", "acme", "--fingerprint", "abc"], "64 hex characters"),
        (vec!["remove", "u_nobody", "--org", "acme"], "has no approver u_nobody"),
    ] {
        let out = approver(data, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", text(&out.stderr));
    }

    // The admin enrolls (as the approval service records it) and waits
    // for the anchor; a second approver is countersigned by her.
    let mut humans = Approvers::new("acme", &["ada", "bob"]);
    let trust = humans.trust();
    let fingerprint = match &trust[1].data {
        spend_core::events::EventData::ApproverAnchored(a) => a.fingerprint.clone(),
        other => panic!("{other:?}"),
    };
    {
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("events"))).await.unwrap());
        // Only the enrollment: the operator anchors with the CLI.
        append_all(&*log, "spend.evt", vec![trust[0].clone()]).await;
    }
    let rows = list(data);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "awaiting the operator's anchor");

    let out = approver(data, &["anchor", "--org", "acme", "--fingerprint", &fingerprint.to_uppercase()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Anchored ada as acme's first admin"), "{}", text(&out.stderr));
    {
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("events"))).await.unwrap());
        append_all(&*log, "spend.evt", vec![trust[2].clone()]).await;
    }
    let rows = list(data);
    let row = |id: &str| rows.iter().find(|r| r["approver_id"] == id).cloned().unwrap();
    assert_eq!(
        (row("ada")["state"].clone(), row("ada")["vouched_by"].clone()),
        ("trusted".into(), "anchor".into())
    );
    assert_eq!(
        (row("bob")["state"].clone(), row("bob")["vouched_by"].clone()),
        ("trusted".into(), "ada".into())
    );

    // Once per organisation, ever.
    let out = approver(data, &["anchor", "--org", "acme", "--fingerprint", &"ab".repeat(32)]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("has its first admin already"), "{}", text(&out.stderr));

    // A removal: ada is removed, bob stays trusted with the chain visible.
    let out = approver(data, &["remove", "ada", "--org", "acme", "--reason", "left"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = list(data);
    let row = |id: &str| rows.iter().find(|r| r["approver_id"] == id).cloned().unwrap();
    assert_eq!(row("ada")["state"], "removed");
    assert_eq!(
        (row("bob")["state"].clone(), row("bob")["vouched_by"].clone()),
        ("trusted".into(), "ada".into())
    );
    let out = approver(data, &["anchor", "--org", "acme", "--fingerprint", &"cd".repeat(32)]);
    assert!(!out.status.success(), "removal never reopens the bootstrap");

    let table = approver(data, &["list", "--org", "acme"]);
    assert!(
        text(&table.stdout).contains("FINGERPRINT") && text(&table.stdout).contains(&fingerprint),
        "{}",
        text(&table.stdout)
    );
}
