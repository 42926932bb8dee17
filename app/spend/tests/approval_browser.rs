//! Human approval end to end, in a real browser: `spend dev`, an agent's
//! drafts over gRPC, and Debian's Chromium (headless, playwright-core, CDP
//! virtual passkey authenticators with user verification) driving the
//! approval app through tests/browser/approval.mjs: the first admin
//! enrolls and is anchored, signs in, approves (arm → alertdialog →
//! "Confirm and push live"), rejects with a reason, invites and
//! countersigns a second approver, and both approve a dual-control draft; a
//! presence-only authenticator and a POST without its CSRF token are
//! refused. The first approval starts from the link in an email `spend
//! dev` sent through a real SMTP server on loopback (aiosmtpd). On the
//! Accounts page the admin connects an account on the sandbox platform's
//! consent page and disconnects another. An agent's budget raise is
//! approved, pushed once the admin grants write access, and rolled back
//! from the audit view ("Roll back" → alertdialog → "Confirm rollback"):
//! the sandbox platform shows the new budget, then the old one. On the
//! Kill switches page the admin freezes every card and pauses and resumes
//! the agents. Then the
//! ledger export's approval proofs are checked by a script with standard
//! crypto only (tests/scripts/verify_approvals.py).
//!
//! scripts/test.sh installs Chromium, Node's playwright-core, Python's
//! `cryptography` and aiosmtpd.

mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::{Spawned, free_port, run, spend, text, wait_port};
use spend_proto::v1 as pb;

/// A policy under which a human approves every payment, two humans above
/// 25 USD.
const POLICY: &str = "\
# SPEND.md for the browser test
## Spending
spend:
  monthly_limit: 10000 USD
  daily_limit: 200 USD
  per_transaction: 50 USD
  allowlist:
    - openai.com
  require_https: true
## Approval
approval:
  require_confirmation_over: 25 USD
  timeout_action: deny
  timeout_minutes: 2
## Notifications
notifications:
  email: approvals@dev.localhost
  events: [transaction.pending_approval]
";

/// The version an operator proposes: a lower per-transaction limit, a
/// tightening, so one admin's approval puts it in force (one that loosens
/// anything needs two approvers: crates/policy/src/versions.rs).
const PROPOSED: &str = "\
# SPEND.md, as proposed
## Spending
spend:
  monthly_limit: 10000 USD
  daily_limit: 200 USD
  per_transaction: 45 USD
  allowlist:
    - openai.com
  require_https: true
## Approval
approval:
  require_confirmation_over: 25 USD
  timeout_action: deny
  timeout_minutes: 2
";

/// `spend dev`'s stderr, line by line, as it comes.
fn lines(child: &mut Spawned) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[spend dev] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, contains: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200))
            && l.contains(contains)
        {
            return l;
        }
    }
    panic!("spend dev never printed {contains:?}");
}

fn link_in(outbox: &Path, draft_id: &str) -> String {
    let path = outbox.join(format!("approval-dev-{draft_id}.txt"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(t) = std::fs::read_to_string(&path)
            && let Some(l) = t.lines().find(|l| l.starts_with("http://localhost:"))
        {
            return l.to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no approval link for {draft_id} in {}", outbox.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn humans_approve_reject_and_countersign_in_the_browser_and_every_proof_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("SPEND.md"), POLICY).unwrap();
    // The operator proposes a new version (before `spend dev` holds the log).
    let proposed_file = dir.path().join("proposed.md");
    std::fs::write(&proposed_file, PROPOSED).unwrap();
    let out = run(
        &[],
        &[
            "policy",
            "propose",
            proposed_file.to_str().unwrap(),
            "--org",
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let proposal_id = text(&out.stdout).trim().to_string();
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    // Email goes through a real SMTP server; Slack (unconfigured) would go
    // to the outbox.
    let smtp = spend_testkit::smtp::SmtpServer::start();
    let mail_env = [
        ("SPEND__APPROVAL__NOTIFY__SMTP__HOST", "127.0.0.1".to_string()),
        ("SPEND__APPROVAL__NOTIFY__SMTP__PORT", smtp.port.to_string()),
        ("SPEND__APPROVAL__NOTIFY__SMTP__TLS", "none".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let mut dev = Spawned::new(
        spend(&mail_env)
            .args(["dev", "--data-dir", data.to_str().unwrap()])
            .args(["--gateway-listen", &addr(ports[0]), "--ledger-listen", &addr(ports[1])])
            .args(["--sandbox-listen", &addr(ports[2]), "--approval-listen", &addr(ports[3])])
            .args(["--policy-listen", &addr(ports[4]), "--passkey-listen", &addr(ports[5])])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spend dev starts"),
    );
    let rx = lines(&mut dev);
    let enroll_line = wait_line(&rx, "enroll with a passkey at ", Duration::from_secs(60));
    let admin_enroll = enroll_line.rsplit(' ').next().unwrap().to_string();
    let origin = format!("http://localhost:{}", ports[3]);
    // The passkey page: a site of its own, at a host name other than
    // the app's (Chromium resolves *.localhost to loopback).
    let passkey_origin = format!("http://passkey.localhost:{}", ports[5]);
    assert!(admin_enroll.starts_with(&format!("{origin}/enroll/")), "{enroll_line}");
    wait_port(ports[0], "the gateway", Duration::from_secs(30));
    wait_port(ports[3], "the approval app", Duration::from_secs(30));

    // The agent drafts three payments that need humans.
    let key = std::fs::read_to_string(data.join("keys").join("dev-agent-key")).unwrap().trim().to_string();
    let mut agent = Agent::connect(&addr(ports[0]), &key).await;
    let approve = agent.pay_once_known("card_1", 1_000, "API credits for the evaluation run").await;
    let reject = agent
        .pay_once_known("card_1", 1_200, "more credits <script>alert(1)</script> [click](http://evil.example)")
        .await;
    let dual = agent.pay_once_known("card_1", 3_000, "a bigger top-up").await;
    let lapse = agent.pay_once_known("card_1", 900, "nobody will answer this one").await;
    let budget = agent.raise("act_1001", "cmp_1", 6_000, "Brand search converts: +10 USD a day").await;
    let budget2 = agent.raise("act_1001", "cmp_2", 12_500, "Competitor terms: +5 USD a day").await;
    for d in [&approve, &reject, &dual, &lapse, &budget, &budget2] {
        assert_eq!(d.status, "pending_approval", "{d:?}");
    }
    let bootstrap_version = approve.decision.as_ref().unwrap().policy_version.clone();
    let outbox = data.join("outbox");
    let mut links: Vec<String> = [&approve, &reject, &dual, &lapse].iter().map(|d| link_in(&outbox, &d.draft_id)).collect();
    links.push(link_in(&outbox, &proposal_id));
    links.push(link_in(&outbox, &budget.draft_id));
    links.push(link_in(&outbox, &budget2.draft_id));
    // The first approval starts from the emailed link (the same link the
    // outbox holds: any replica derives it).
    let emailed = emailed_link(&smtp, &approve.draft_id);
    assert_eq!(emailed, links[0]);
    links[0] = emailed;

    // While it waits, the agent sees the expiry and approvals given of
    // required: never a link, a token or who the approvers are.
    let waiting = agent.draft(&dual.draft_id).await;
    assert!(!waiting.expires_at.is_empty(), "{waiting:?}");
    assert_eq!((waiting.approvals_given, waiting.approvals_required), (0, 2));
    let shown = format!("{waiting:?}");
    let token = links[2].rsplit('/').next().unwrap();
    assert!(!shown.contains(token) && !shown.contains("/a/") && !shown.contains("@dev.localhost"), "{shown}");

    // An agent credential cannot arm, confirm or even read an approval.
    let http = reqwest::Client::new();
    for path in [
        format!("/approvals/{}/arm", approve.draft_id),
        format!("/approvals/{}/confirm", approve.draft_id),
    ] {
        let r = http.post(format!("{origin}{path}")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }

    // The browser.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/approval.mjs");
    let mut node = Command::new("node");
    node.arg(script)
        .env("ORIGIN", &origin)
        .env("PASSKEY", &passkey_origin)
        .env("ADMIN_ENROLL", &admin_enroll)
        .env("LINK_APPROVE", &links[0])
        .env("LINK_REJECT", &links[1])
        .env("LINK_DUAL", &links[2])
        .env("LINK_EXPIRE", &links[3])
        .env("LINK_POLICY", &links[4])
        .env("LINK_BUDGET", &links[5])
        .env("LINK_BUDGET2", &links[6])
        .env("DRAFT_BUDGET", &budget.draft_id)
        .env("DRAFT_BUDGET2", &budget2.draft_id)
        .env("SANDBOX", format!("http://{}", addr(ports[2])))
        .env("SANDBOX_CONTROL", spend_testkit::sandbox_control::of_data_dir(&data))
        .env("MCP_URL", format!("http://localhost:{}/mcp", ports[0]))
        .env("MCP_AGENT", concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/agents/mcp_oauth_agent.py"));
    if let Ok(shots) = std::env::var("SPEND_SCREENSHOTS") {
        node.env("SCREENSHOTS", shots);
    }
    let out = tokio::task::block_in_place(|| node.output().expect("node runs (scripts/test.sh installs it)"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "the browser run failed:\n{stdout}\n{}", text(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    let s = |k: &str| seen[k].as_str().unwrap_or_default().to_string();
    // An approval's outcome on the app, and what the passkey page showed.
    let approved = |k: &str| seen[k]["status"].as_str().unwrap_or_default().to_string();
    let shown = |k: &str| seen[k]["shown"].as_str().unwrap_or_default().to_string();
    assert_eq!(seen["admin_enroll"]["fingerprint"].as_str().unwrap().len(), 64, "{seen}");
    assert!(seen["admin_enroll"]["status"].as_str().unwrap().contains("spend approver anchor"), "{seen}");
    assert_eq!(seen["admin_signed_in"], true, "{seen}");
    assert_eq!(seen["draft_page_has_approve"], true);
    // Read as a person reads: the change in words from the fields pushed,
    // the merchant on its own row, the agent by its key's name, the status
    // in words, the expiry relative.
    let page = s("draft_page");
    for said in [
        "Pay 10.00 USD to openai.com",
        "from card crd_1",
        "Merchant",
        "A payment cannot be undone by a rollback",
        "dev-agent (",
        "Status: Waiting for approval",
        "Expiresin ",
    ] {
        assert!(page.contains(said), "{said:?} is not on the draft page: {page}");
    }
    assert!(!page.contains("minor_units"), "{page}");
    assert_eq!(seen["cancel_closes"], true);
    assert_eq!(seen["post_without_csrf"], 403, "{seen}");
    assert!(approved("approved_status").starts_with("Approved"), "{seen}");
    assert!(s("decided_link").starts_with("Approved"), "{seen}");
    assert_eq!(seen["decided_has_no_approve"], true);
    assert!(s("rejected_status").contains("Not this quarter <b>really</b>"), "shown as text: {seen}");
    assert!(s("bob_before_countersign").starts_with("Nothing was signed"), "{seen}");
    // The passkey page shows what is signed, read from the log: the change
    // in words from the fields the executor pushes, who is vouched for.
    assert!(shown("approved_status").contains("Pay 10.00 USD to openai.com"), "{seen}");
    assert!(shown("approved_status").contains("cannot be undone by a rollback"), "{seen}");
    assert!(
        shown("budget_first").contains("Daily budget of campaign cmp_1 (act_1001): 50.00 USD → 60.00 USD a day"),
        "{seen}"
    );
    assert!(shown("policy_status").contains("per_transaction: 45 USD"), "the SPEND.md text itself: {seen}");
    assert!(
        s("passkey_signin_page").contains(&format!("Sign in to {origin} as admin@dev.localhost")),
        "{seen}"
    );
    assert!(s("passkey_enroll_page").contains("passkey.localhost"), "{seen}");
    assert!(
        s("passkey_countersign_page").contains("Vouch for bob@dev.localhost as approver of dev")
            && s("passkey_countersign_page").contains(seen["bob_enroll"]["fingerprint"].as_str().unwrap()),
        "{seen}"
    );
    assert!(s("approvers_page").contains("bob@dev.localhost"), "{seen}");
    assert_eq!(seen["bob_signed_in"], true, "{seen}");
    assert!(approved("dual_first").contains("Waiting for a second approver"), "{seen}");
    assert_eq!(seen["dual_same_person_again"], true, "one person approves once");
    assert!(approved("dual_second").starts_with("Approved"), "{seen}");
    assert!(s("presence_only").starts_with("Your passkey was not created"), "{seen}");
    assert!(s("policy_page").contains("per transaction") && s("policy_page").contains("45.00 USD"), "{seen}");
    assert!(s("policy_page").contains("0 of 1 required, one of them an admin"), "{seen}");
    assert!(approved("policy_status").starts_with("Approved"), "{seen}");
    assert!(s("expired_status").starts_with("Expired"), "{seen}");
    assert_eq!(seen["expired_has_no_approve"], true);
    assert_eq!(seen["csp_violations"], serde_json::json!([]), "nothing the CSP blocks is on a page");
    // Accounts: spend dev connected the sandbox's read-only; the admin
    // connected one more on the platform's consent page and disconnected one.
    assert!(s("accounts_page").contains("act_1001") && s("accounts_page").contains("valid"), "{seen}");
    assert!(
        s("connect_page").contains("read access") || s("connect_page").contains("Nothing can be changed"),
        "{seen}"
    );
    assert!(s("platform_consent").contains("see your ad accounts"), "{seen}");
    assert!(s("connected").contains("Connected act_1002"), "{seen}");
    assert!(s("after_disconnect").contains("disconnected"), "{seen}");
    // A consent link lured to another browser connects nothing there, and
    // the refusal is audited under the organisation that began it.
    assert!(s("lured").contains("not started in this browser"), "{seen}");
    assert!(!s("lured").contains("Connected act_1002"), "{seen}");
    assert!(s("accounts_after_lure").contains("disconnected"), "act_1002 stays disconnected: {seen}");
    // The budget raise: approved, pushed once write access was granted,
    // then rolled back from the audit view.
    assert!(approved("budget_first").contains("Waiting for a second approver"), "{seen}");
    assert!(approved("budget_status").starts_with("Approved"), "{seen}");
    assert!(approved("budget2_status").starts_with("Approved"), "{seen}");
    assert_eq!(seen["budget_pushed"], true, "the sandbox shows the new budget: {seen}");
    assert_eq!(
        (seen["budget2_waits"].clone(), seen["budget2_still_asked"].clone()),
        (serde_json::json!(true), serde_json::json!(1)),
        "a grant for one draft pushes that draft only: {seen}"
    );
    assert_eq!(seen["budget2_pushed"], true, "its own grant pushes the second: {seen}");
    assert!(
        s("rollback_dialog").contains("cmp_1") && s("rollback_dialog").contains("Continue to your passkey"),
        "{seen}"
    );
    assert_eq!(seen["rollback_cancel_closes"], true, "{seen}");
    assert!(
        s("passkey_rollback_dialog").contains("Roll back 1 pushed change")
            && s("passkey_rollback_dialog").contains("Daily budget of campaign cmp_1 (act_1001): 50.00 USD → 60.00 USD a day")
            && s("passkey_rollback_dialog").contains("Confirm rollback"),
        "{seen}"
    );
    assert_eq!(s("rollback_status"), "returned", "{seen}");
    assert_eq!(seen["budget_restored"], true, "the sandbox shows the old budget: {seen}");
    assert!(s("audit_after").contains("rolled back"), "{seen}");
    // Kill switches in the app: every card frozen by the executor, the
    // agents paused and resumed.
    assert!(
        s("frozen_page").contains("crd_1") && s("frozen_page").contains("suspected card testing"),
        "{seen}"
    );
    assert!(
        s("paused_page").contains("Paused in this app") && s("paused_page").contains("runaway agent"),
        "{seen}"
    );
    assert!(s("resumed_page").contains("are running"), "{seen}");
    // MCP sign-in: the SDK client given only the URL was granted read and
    // draft by ada's consent, read and drafted; approving was refused twice.
    assert!(s("consent_page").contains("SDK agent") && s("consent_page").contains("dev"), "{seen}");
    assert_eq!(seen["consent_boxes"], 2, "read and draft, never approve: {seen}");
    let mcp = &seen["mcp_agent"];
    assert_eq!(seen["mcp_agent_exit"], 0, "{seen}");
    assert_eq!(mcp["scope"], "mcp.draft mcp.read", "{mcp}");
    assert_eq!(mcp["registered_auth_method"], "none", "{mcp}");
    assert!(mcp["tools"].as_array().unwrap().iter().any(|t| t == "propose_change"), "{mcp}");
    assert_eq!(mcp["accounts_error"], false, "{mcp}");
    assert!(mcp["draft"].as_str().unwrap_or_default().contains("draft_id"), "{mcp}");
    assert_eq!(mcp["approve_tool_error"], true, "{mcp}");
    assert_eq!(mcp["approve_route_status"], 403, "the approval app refuses a client's token: {mcp}");
    assert!(mcp["approve_scope"].as_str().unwrap_or_default().starts_with("refused"), "{mcp}");
    assert_eq!(mcp["errors"][0]["error"], "invalid_scope", "{mcp}");
    assert!(
        s("clients_page").contains("SDK agent") && s("clients_page").contains("mcp.draft, mcp.read"),
        "{seen}"
    );
    // The other way to register, by hand: a client metadata document;
    // bob signs in with his passkey on the way to the consent page.
    let cimd = &seen["cimd"];
    assert_eq!(cimd["unauthenticated"], 401, "{cimd}");
    assert_eq!(cimd["asked_to_sign_in"], true, "{cimd}");
    assert!(cimd["consent"].as_str().unwrap_or_default().contains("Metadata-document client"), "{cimd}");
    assert_eq!(cimd["state"], "cimd-1", "{cimd}");
    assert_eq!(cimd["scope"], "mcp.draft mcp.read", "{cimd}");
    assert_eq!(
        (cimd["initialize"].as_u64(), cimd["tools_list_has_propose"].as_bool()),
        (Some(200), Some(true)),
        "{cimd}"
    );
    assert_eq!((cimd["refreshed"].as_bool(), cimd["after_refresh"].as_u64()), (Some(true), Some(200)), "{cimd}");
    let refused_after = cimd["refused_after_ms"].as_u64().expect("the revoked token was refused");
    assert!(refused_after < 1_000, "refused {refused_after} ms after the revocation: {cimd}");
    eprintln!("MCP sign-in in the browser: a revoked client's token was refused {refused_after} ms after the click");
    assert!(
        !cimd["clients_after"].as_str().unwrap_or_default().contains("Metadata-document client"),
        "{cimd}"
    );

    // What the agent sees now.
    assert_eq!(agent.status(&approve.draft_id).await, "approved");
    assert_eq!(agent.status(&reject.draft_id).await, "rejected");
    let done = agent.draft(&dual.draft_id).await;
    assert_eq!((done.status.as_str(), done.approvals_given), ("approved", 2));
    assert_eq!(agent.status(&lapse.draft_id).await, "expired", "nothing is approved by timeout");
    assert_eq!(agent.status(&budget.draft_id).await, "rolled_back");
    // The approved version is in force: a new draft is decided under it.
    let after = agent.pay_once_known("card_1", 4_600, "above the new per-transaction limit").await;
    let decision = after.decision.as_ref().unwrap();
    assert_ne!(decision.policy_version, bootstrap_version);
    assert_eq!(after.status, "denied", "46 USD is over the approved version's 45 USD: {after:?}");
    // The agent's audit log names approvers by their stable pseudonymous
    // id, never by an e-mail address.
    let audit = agent
        .client
        .get_audit_log(agent.req(pb::GetAuditLogRequest {
            subject: String::new(),
            limit: 500,
        }))
        .await
        .unwrap()
        .into_inner();
    let approvals: Vec<serde_json::Value> = audit
        .events
        .iter()
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.payload).unwrap())
        .filter(|e| e["actor"]["kind"] == "human" && e["data"]["approver_id"].is_string())
        .collect();
    assert!(approvals.len() >= 5, "approvals, rejections: {}", approvals.len());
    for a in &approvals {
        let by = a["actor"]["id"].as_str().unwrap();
        assert!(by.starts_with("u_") && by == a["data"]["approver_id"], "{a}");
    }
    for e in &audit.events {
        let text = String::from_utf8_lossy(&e.payload);
        assert!(!text.contains("@dev.localhost"), "an approver's e-mail reached the agent: {text}");
    }

    // Audited: the POST without its CSRF token.
    drop(agent);
    let _ = Command::new("kill").arg("-TERM").arg(dev.id().to_string()).status();
    let _ = dev.wait();
    dev.forget();

    // The export, checked with standard crypto only.
    let export = dir.path().join("export.jsonl");
    let out = run(
        &[],
        &["ledger", "export", "--data-dir", data.to_str().unwrap(), "--output", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = std::fs::read_to_string(&export).unwrap();
    assert!(
        all.contains("csrf.refused") || decoded_contains(&all, "csrf.refused"),
        "the refused POST is audited"
    );
    let checker = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/scripts/verify_approvals.py");
    let out = Command::new("python3")
        .arg(checker)
        .arg(&export)
        .args(["passkey.localhost", &passkey_origin])
        .output()
        .expect("python3 runs");
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(report.contains("9 approval proofs verified, 0 failed"), "{report}");
    assert!(report.contains("approves spend.rollback.requested.v1"), "{report}");
    // Every step is on the record, and the export verifies.
    for t in [
        "spend.change.pushed.v1",
        "spend.rollback.requested.v1",
        "spend.rollback.approved.v1",
        "spend.change.rolled_back.v1",
        "spend.client.granted.v1",
        "spend.client.tokens_issued.v1",
        "oauth.approve_requested",
        "agent_on_human_route",
        "accounts.callback_unbound",
    ] {
        assert!(decoded_contains(&all, t), "{t} is on the record");
    }
    let out = run(&[], &["ledger", "public-key", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &out.stdout).unwrap();
    let out = run(&[], &["ledger", "verify", export.to_str().unwrap(), "--public-key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    // The operator's `spend rollback`: what is still live since today (the
    // second raise; the first was rolled back), as one request for a human.
    let d = data.to_str().unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let out = run(&[], &["rollback", &budget.draft_id, "--org", "dev", "--reason", "again", "--data-dir", d]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("rolled_back, not pushed"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[], &["rollback", "--agent", "k_nobody", "--org", "dev", "--reason", "r", "--data-dir", d]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("nothing to roll back"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[], &["rollback", "--since", &today, "--org", "dev", "--reason", "", "--data-dir", d]);
    assert!(!out.status.success() && text(&out.stderr).contains("--reason"), "{}", text(&out.stderr));
    let out = run(
        &[],
        &[
            "rollback",
            "--since",
            &today,
            "--org",
            "dev",
            "--reason",
            "the agent overspent",
            "--data-dir",
            d,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rollback_id = text(&out.stdout).trim().to_string();
    assert!(
        rollback_id.starts_with("rb_") && text(&out.stderr).contains(&budget2.draft_id),
        "{}",
        text(&out.stderr)
    );
    // On the log (the ledger checkpoints it when `spend dev` runs again).
    let log = spend_eventlog::embedded::EmbeddedLog::open(spend_eventlog::embedded::EmbeddedConfig::new(spend_cli::config::DevPaths::new(&data).events))
        .await
        .unwrap();
    let events = spend_testkit::events::on_log(&log).await;
    let (subject, request) = events
        .iter()
        .find(|(_, e)| e["type"] == "spend.rollback.requested.v1" && e["data"]["rollback_id"] == rollback_id.as_str())
        .expect("the request is on the log");
    assert_eq!(subject, &format!("spend.evt.dev.rollback_request.{rollback_id}"));
    let listed: Vec<&str> = request["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["draft_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [budget2.draft_id.as_str()], "what is still live: {request}");
    assert!(report.contains("approves spend.policy.proposed.v1"), "{report}");
}

/// The Review link in the email about `draft_id` to the organisation's
/// notification address.
fn emailed_link(smtp: &spend_testkit::smtp::SmtpServer, draft_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for m in smtp.messages() {
            let Some(text) = m.part("text/plain") else { continue };
            if m.to == "approvals@dev.localhost"
                && m.subject.starts_with("Approval needed: payment on card_1")
                && text.contains(&format!("Draft: {draft_id}"))
                && let Some(link) = text.lines().find_map(|l| l.strip_prefix("Review: "))
            {
                return link.trim().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no email about {draft_id} reached the SMTP server: {:#?}", smtp.messages());
}

/// Whether any event's payload in an export contains `needle`.
fn decoded_contains(export: &str, needle: &str) -> bool {
    use base64::Engine as _;
    export.lines().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
        v["payload_b64"]
            .as_str()
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .is_some_and(|b| String::from_utf8_lossy(&b).contains(needle))
    })
}
