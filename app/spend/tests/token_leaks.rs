//! No platform token leaks: a full flow in `spend dev` logging at the most
//! verbose level (`RUST_LOG=trace`) — accounts connected read-only, an
//! agent's reads and health checks, a write consent through the executor,
//! refreshes, a read refused, a revocation at the platform, a disconnect
//! from the CLI — then every code, access token and refresh token the
//! sandbox platform issued is searched for in the log output, the agent's
//! responses and errors, the CLI's output, the ledger export and the
//! vault's database file: none is found.

mod common;

use std::io::Read as _;
use std::time::Duration;

use common::agent::Agent;
use common::{Spawned, free_port, run, spend, text, wait_port};
use spend_platform::Connect as _;
use spend_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_or_token_is_in_any_event_log_line_error_response_or_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let env: Vec<(String, String)> = [
        ("RUST_LOG", "trace".to_string()),
        // Access tokens live a minute, refreshed with 50 s to spare: the
        // flow below refreshes.
        ("SPEND__SANDBOX__ACCESS_TOKEN_MINUTES", "1".to_string()),
        ("SPEND__EXECUTOR__REFRESH_MARGIN_SECONDS", "50".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let logs = dir.path().join("dev.log");
    let mut dev = Spawned::new(
        spend(&env)
            .args(["dev", "--data-dir", data.to_str().unwrap()])
            .args(["--gateway-listen", &addr(ports[0]), "--ledger-listen", &addr(ports[1])])
            .args(["--sandbox-listen", &addr(ports[2]), "--approval-listen", &addr(ports[3])])
            .args(["--policy-listen", &addr(ports[4]), "--executor-listen", &addr(ports[5])])
            .stdout(std::fs::File::create(dir.path().join("dev.out")).unwrap())
            .stderr(std::fs::File::create(&logs).unwrap())
            .spawn()
            .expect("spend dev starts"),
    );
    for p in [ports[0], ports[2], ports[5]] {
        wait_port(p, "spend dev", Duration::from_secs(60));
    }
    let sandbox = format!("http://{}", addr(ports[2]));
    let executor_url = format!("http://{}", addr(ports[5]));
    let mut seen = String::new();

    // The agent reads: accounts, campaigns, cards, health.
    let key = std::fs::read_to_string(data.join("keys").join("dev-agent-key")).unwrap().trim().to_string();
    let mut agent = Agent::connect(&addr(ports[0]), &key).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let accounts = loop {
        match agent.client.list_accounts(agent.req(pb::ListAccountsRequest {})).await {
            Ok(r) => break r.into_inner(),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "the gateway never answered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(accounts.accounts.len(), 3, "{accounts:?}");
    seen.push_str(&format!("{accounts:?}"));
    let campaigns = agent
        .client
        .list_campaigns(agent.req(pb::ListCampaignsRequest { account_id: "act_1001".into() }))
        .await
        .unwrap();
    seen.push_str(&format!("{campaigns:?}"));
    let cards = agent.client.list_cards(agent.req(pb::ListCardsRequest {})).await.unwrap();
    seen.push_str(&format!("{cards:?}"));

    // A write consent, through the executor as the approval app asks it.
    let executor = spend_platform::grpc::ExecutorClient::connect_lazy(&executor_url, None).unwrap();
    let begun = executor
        .begin("dev", Some("act_1001"), Some("d_leak"), "http://127.0.0.1:9/callback", "draft d_leak")
        .await
        .unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "act_1001", "allow").await;
    let u = reqwest::Url::parse(&back).unwrap();
    let p = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let connected = executor.complete(&p("state"), Ok(&p("code"))).await.unwrap();
    assert!(connected.scopes.contains(&"ads.write".to_string()), "{connected:?}");
    seen.push_str(&format!("{connected:?}"));
    // Completing it again: an error, naming no code.
    let e = executor.complete(&p("state"), Ok(&p("code"))).await.unwrap_err();
    seen.push_str(&e.to_string());

    // Past the refresh margin: reads refresh the tokens.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let health = agent
        .client
        .check_token_health(agent.req(pb::CheckTokenHealthRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(health.healthy, "{health:?}");
    seen.push_str(&format!("{health:?}"));
    let again = agent
        .client
        .list_campaigns(agent.req(pb::ListCampaignsRequest { account_id: "act_1002".into() }))
        .await
        .unwrap();
    seen.push_str(&format!("{again:?}"));

    // Errors: an account nobody connected; a revocation at the platform.
    let e = agent
        .client
        .list_campaigns(agent.req(pb::ListCampaignsRequest { account_id: "act_9999".into() }))
        .await
        .unwrap_err();
    seen.push_str(&format!("{e:?}"));
    let control = spend_testkit::sandbox_control::of_data_dir(&data);
    spend_testkit::sandbox_control::post_with(&control, &sandbox, "/sandbox/revoke", serde_json::json!({"account_id": "act_1002"})).await;
    let revoked = agent
        .client
        .check_token_health(agent.req(pb::CheckTokenHealthRequest { account_id: "act_1002".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.accounts[0].status, "revoked", "{revoked:?}");
    seen.push_str(&format!("{revoked:?}"));
    let e = agent
        .client
        .list_campaigns(agent.req(pb::ListCampaignsRequest { account_id: "act_1002".into() }))
        .await
        .unwrap_err();
    assert!(e.message().contains("revoked"), "{e:?}");
    seen.push_str(&format!("{e:?}"));

    // The CLI: list, disconnect.
    for args in [
        vec!["account", "list", "--org", "dev", "--executor-url", &executor_url],
        vec!["account", "disconnect", "card_1", "--org", "dev", "--executor-url", &executor_url],
    ] {
        let out = run(&[], &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
    }

    // Everything the platform issued.
    let issued = spend_testkit::sandbox_control::get_with(&control, &sandbox, "/sandbox/oauth/issued").await;
    let issued: Vec<String> = issued["issued"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let (codes, tokens): (Vec<&String>, Vec<&String>) = issued.iter().partition(|t| t.starts_with("sbx_code_"));
    assert!(codes.len() >= 4, "three connections and a consent: {codes:?}");
    assert!(
        tokens.iter().filter(|t| t.starts_with("sbx_rt_")).count() >= 5,
        "refresh tokens rotated: {}",
        tokens.len()
    );

    drop(agent);
    let _ = std::process::Command::new("kill").arg("-TERM").arg(dev.id().to_string()).status();
    let _ = dev.wait();
    dev.forget();
    let export = dir.path().join("export.jsonl");
    let out = run(
        &[],
        &["ledger", "export", "--data-dir", data.to_str().unwrap(), "--output", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut log_lines = String::new();
    std::fs::File::open(&logs).unwrap().read_to_string(&mut log_lines).unwrap();
    assert!(log_lines.contains("TRACE"), "logging at the most verbose level");
    let export = std::fs::read_to_string(&export).unwrap();
    let decoded = decoded_payloads(&export);
    assert!(decoded.contains("spend.account.connected.v1") && decoded.contains("spend.account.refreshed.v1"));
    let vault_db = std::fs::read(data.join("executor.db")).unwrap_or_default();
    let wal = std::fs::read(data.join("executor.db-wal")).unwrap_or_default();
    let places = [
        ("log lines", log_lines.as_bytes()),
        ("responses, errors and CLI output", seen.as_bytes()),
        ("the ledger export", export.as_bytes()),
        ("the export's events", decoded.as_bytes()),
        ("the vault's database", &vault_db[..]),
        ("the vault's write-ahead log", &wal[..]),
    ];
    for secret in &issued {
        for (place, bytes) in places {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} found in {place}",
                &secret[..12]
            );
        }
    }
}

/// Every event's payload of an export, decoded, one after another.
fn decoded_payloads(export: &str) -> String {
    use base64::Engine as _;
    export
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["payload_b64"].as_str().map(str::to_string))
        .filter_map(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
