//! Exactly once across a crash: `spend serve executor` is SIGKILLed after
//! the sandbox platform applied a payment and before `change.pushed` was
//! recorded (the platform is made to answer late). After a restart the
//! platform has applied that idempotency key once, and the log holds
//! exactly one `spend.change.pushed.v1` and one commitment for the draft.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Spawned, free_port, spend, wait_port};
use spend_core::events::Outcome;
use spend_eventlog::EventLog;
use spend_eventlog::jetstream::JetStreamLog;
use spend_platform::Connect as _;
use spend_testkit::Streams;
use spend_testkit::events::{Approvers, append_all, decided, on_log, payment_proposed};

const POLICY: &str = "spend:\n  daily_limit: 300 USD\n  per_transaction: 100 USD\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_between_the_platforms_write_and_its_record_pushes_once() {
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("SPEND.md");
    std::fs::write(&policy, POLICY).unwrap();
    let (vault, _db) = common::vault_env().await;
    let (sandbox_port, executor_port) = (free_port(), free_port());
    let mut env: Vec<(String, String)> = vec![
        ("SPEND__NATS__URL".into(), streams.events.url.clone()),
        ("SPEND__NATS__STREAM".into(), streams.events.stream.clone()),
        ("SPEND__NATS__SUBJECT_PREFIX".into(), prefix.clone()),
        ("SPEND__NATS__MANAGE".into(), "true".into()),
        ("SPEND__SANDBOX__LISTEN".into(), format!("127.0.0.1:{sandbox_port}")),
        ("SPEND__EXECUTOR__LISTEN".into(), format!("127.0.0.1:{executor_port}")),
        ("SPEND__EXECUTOR__PLATFORM_URL".into(), format!("http://127.0.0.1:{sandbox_port}")),
        ("SPEND__EXECUTOR__POLICY_FILE".into(), policy.to_str().unwrap().into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    env.extend(vault);
    env.extend(common::test_passkey_env());
    env.push(("SPEND__SANDBOX__CONTROL_TOKEN".into(), spend_testkit::sandbox_control::token().into()));
    let serve = |service: &str| {
        Spawned::new(
            spend(&env)
                .args(["serve", service])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    };
    let log = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    let _sandbox = serve("sandbox");
    wait_port(sandbox_port, "the sandbox", Duration::from_secs(30));
    let mut executor = serve("executor");
    wait_port(executor_port, "the executor", Duration::from_secs(30));
    let executor_url = format!("http://127.0.0.1:{executor_port}");
    let sandbox = format!("http://127.0.0.1:{sandbox_port}");

    // card_1, connected and consented to for writes.
    common::connect_account(&env, &executor_url, "acme", "card_1").await;
    let client = spend_platform::grpc::ExecutorClient::connect_lazy(&executor_url, None).unwrap();
    let begun = client
        .begin("acme", Some("card_1"), Some("d_any"), "http://127.0.0.1:9/callback", "test")
        .await
        .unwrap();
    let back = spend_testkit::consent::answer(&begun.authorize_url, "card_1", "allow").await;
    let u = reqwest::Url::parse(&back).unwrap();
    let p = |k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    client.complete(&p("state"), Ok(&p("code"))).await.unwrap();

    // The platform will apply the next write and answer it 20 s late.
    spend_testkit::sandbox_control::post(&sandbox, "/sandbox/faults", serde_json::json!({"delay_next": 1, "delay_ms": 20_000})).await;
    let mut humans = Approvers::new("acme", &["ada"]);
    let proposed = payment_proposed("acme", "d_crash", 2_500);
    let hash = spend_draft::event_hash(&proposed.to_bytes());
    let mut events = humans.trust();
    events.push(proposed);
    events.push(decided("acme", "d_crash", Outcome::RequireApproval));
    events.push(humans.approved("d_crash", "ada", &hash));
    append_all(&log, &prefix, events).await;

    // Applied at the platform, not yet recorded: SIGKILL.
    let applied = || spend_testkit::sandbox_control::get(&sandbox, "/sandbox/applied");
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied().await["writes"] != 1 {
        assert!(Instant::now() < deadline, "the platform never applied the write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::process::Command::new("kill").arg("-KILL").arg(executor.id().to_string()).status();
    let _ = executor.wait();
    executor.forget();
    let count = |t: &'static str| {
        let log = &log;
        async move {
            on_log(log as &dyn EventLog)
                .await
                .iter()
                .filter(|(_, e)| e["type"] == t && e["data"]["draft_id"] == "d_crash")
                .count()
        }
    };
    assert_eq!(count("spend.change.pushed.v1").await, 0, "killed before the record");
    assert_eq!(count("spend.change.started.v1").await, 1);

    // Restarted: the change is resumed, not redone.
    let _executor = serve("executor");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("spend.change.pushed.v1").await == 0 {
        assert!(Instant::now() < deadline, "the started change was never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = applied().await;
    assert_eq!(a["by_key"]["d_crash"], 1, "{a}");
    assert_eq!(a["charged_minor"], 2_500, "{a}");
    assert_eq!(count("spend.change.pushed.v1").await, 1);
    assert_eq!(count("spend.budget.committed.v1").await, 1);
}
