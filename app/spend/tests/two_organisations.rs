//! Two organisations on one deployment, on the running services: a
//! nats-server of this test's own with k8s/nats/auth.conf, and the sandbox
//! platform, the executor, the approval app and the passkey page each as its
//! own `spend serve` process with its own NATS user and, between services,
//! its own credential. In Chromium (tests/browser/two_orgs.mjs) acme's
//! admin and evil's admin enroll, are anchored by the operator's CLI, sign
//! in, and each connects an account of their own. Then evil reaches for
//! acme's: its consent link, consented to in acme's admin's browser,
//! connects nothing (audited under evil, which began it); its own consent to
//! the account acme holds connects nothing either (audited). The log holds
//! exactly the two genuine connections.

mod common;

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};

use common::{Spawned, free_port, run, text};
use spend_testkit::authnats::AuthNats;

const POLICY: &str = "spend:\n  daily_limit: 100 USD\n  per_transaction: 50 USD\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organisation_never_connects_anothers_account_and_each_connects_its_own() {
    let nats = AuthNats::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("SPEND.md");
    std::fs::write(&policy, POLICY).unwrap();
    let out = run(&nats.spend_env("admin"), &["nats", "init"]);
    assert!(out.status.success(), "spend nats init: {}", text(&out.stderr));

    let [sandbox_port, executor_port, approval_port, passkey_port] = [(); 4].map(|_| free_port());
    let origin = format!("http://localhost:{approval_port}");
    let passkey_origin = format!("http://passkey.localhost:{passkey_port}");
    let approval_token = format!("approval-{}", spend_testkit::unique());
    let (vault, _vault_db) = common::vault_env().await;
    let mut wiring: Vec<(String, String)> = vault;
    wiring.extend(
        [
            ("SPEND__SANDBOX__LISTEN", format!("127.0.0.1:{sandbox_port}")),
            (
                "SPEND__SANDBOX__OAUTH_REDIRECT_URIS",
                format!("http://127.0.0.1/callback,{origin}/accounts/callback"),
            ),
            ("SPEND__EXECUTOR__LISTEN", format!("127.0.0.1:{executor_port}")),
            ("SPEND__EXECUTOR__PLATFORM_URL", format!("http://127.0.0.1:{sandbox_port}")),
            ("SPEND__EXECUTOR__POLICY_FILE", policy.display().to_string()),
            ("SPEND__GATEWAY__EXECUTOR_URL", format!("http://127.0.0.1:{executor_port}")),
            ("SPEND__APPROVAL__LISTEN", format!("127.0.0.1:{approval_port}")),
            ("SPEND__APPROVAL__ORIGIN", origin.clone()),
            ("SPEND__APPROVAL__POLICY_FILE", policy.display().to_string()),
            ("SPEND__PASSKEY__LISTEN", format!("127.0.0.1:{passkey_port}")),
            ("SPEND__PASSKEY__RP_ID", "passkey.localhost".to_string()),
            ("SPEND__PASSKEY__ORIGIN", passkey_origin.clone()),
            ("SPEND__PASSKEY__APP_ORIGIN", origin.clone()),
            // The executor serves the approval app only (by its credential).
            ("SPEND__INTERNAL__CALLERS__APPROVAL", spend_proto::internal::digest(&approval_token)),
            ("RUST_LOG", "warn".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let env_as = |user: &str| {
        let mut env = nats.spend_env(user);
        env.extend(wiring.iter().cloned());
        env
    };
    let mut services = vec![];
    for (service, user, port) in [
        ("sandbox", "executor", sandbox_port),
        ("executor", "executor", executor_port),
        ("approval", "approval", approval_port),
        ("passkey", "passkey", passkey_port),
    ] {
        let mut env = env_as(user);
        if service == "approval" {
            env.push(("SPEND__INTERNAL__TOKEN".into(), approval_token.clone()));
        }
        services.push(common::serve(&env, service, port));
    }

    // The operator invites each organisation's first admin.
    let operator = env_as("operator");
    let invite = |org: &str, email: &str| {
        let out = run(&operator, &["approver", "invite", "--org", org, "--email", email, "--role", "admin"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let acme_enroll = invite("acme", "ada@acme.example");
    let evil_enroll = invite("evil", "eve@evil.example");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/two_orgs.mjs");
    let mut node = Spawned::new(
        Command::new("node")
            .arg(script)
            .env("ORIGIN", &origin)
            .env("PASSKEY", &passkey_origin)
            .env("ACME_ENROLL", &acme_enroll)
            .env("EVIL_ENROLL", &evil_enroll)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (scripts/test.sh installs it)"),
    );
    let mut lines = std::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = || {
        tokio::task::block_in_place(|| lines.next())
            .expect("the browser run went on (it ended early: its stderr is above)")
            .unwrap()
    };
    // Both enrolled: the operator anchors each by the fingerprint shown.
    let enrolled: serde_json::Value = serde_json::from_str(&next()).unwrap();
    for org in ["acme", "evil"] {
        let fingerprint = enrolled["enrolled"][org].as_str().unwrap_or_else(|| panic!("{enrolled}"));
        assert_eq!(fingerprint.len(), 64, "{enrolled}");
        let out = run(&operator, &["approver", "anchor", "--org", org, "--fingerprint", fingerprint]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    writeln!(node.stdin.as_mut().unwrap(), "anchored").unwrap();
    let last = next();
    let status = tokio::task::block_in_place(|| node.wait()).unwrap();
    node.forget();
    let seen: serde_json::Value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("{last}"));
    assert!(status.success(), "the browser run failed: {seen}");
    let s = |k: &str| seen[k].as_str().unwrap_or_default().to_string();

    assert_eq!((&seen["ada_signed_in"], &seen["eve_signed_in"]), (&true.into(), &true.into()), "{seen}");
    // The genuine connection of each organisation works.
    assert!(s("acme_connected").contains("Connected act_1001"), "{seen}");
    assert!(s("evil_connected").contains("Connected card_1"), "{seen}");
    // 1. Evil's link, consented to in acme's admin's browser: nothing.
    assert!(s("lured").contains("not started in this browser"), "{seen}");
    assert!(!s("lured").contains("Connected"), "{seen}");
    // 2. Evil's own consent to the account acme holds: nothing.
    assert!(s("held").contains("another organisation"), "{seen}");
    assert!(!s("held").contains("Connected act_1001"), "{seen}");
    assert!(s("acme_accounts").contains("act_1001") && !s("acme_accounts").contains("card_1"), "{seen}");
    assert!(
        s("evil_accounts").contains("card_1") && !s("evil_accounts").contains("act_1001") && !s("evil_accounts").contains("act_1002"),
        "{seen}"
    );
    assert_eq!(seen["csp_violations"], serde_json::json!([]), "{seen}");

    // On the log: exactly the two genuine connections, and both refusals
    // audited under evil, which began them.
    let reader = nats.log_as("operator").await;
    let events = spend_testkit::events::on_log(reader.as_ref()).await;
    let connected: Vec<(String, String)> = events
        .iter()
        .filter(|(_, e)| e["type"] == "spend.account.connected.v1")
        .map(|(_, e)| (e["org"].as_str().unwrap().to_string(), e["data"]["account_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        connected,
        vec![("acme".to_string(), "act_1001".to_string()), ("evil".to_string(), "card_1".to_string())],
        "{connected:?}"
    );
    let alerts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(s, _)| s.starts_with("spend.evt.evil.security_executor."))
        .map(|(_, e)| e)
        .collect();
    for reason in [spend_executor::accounts::CALLBACK_UNBOUND, spend_executor::accounts::ACCOUNT_HELD] {
        assert!(alerts.iter().any(|a| a["data"]["reason"] == reason), "{reason} audited under evil: {alerts:?}");
    }
    drop(services);
}
