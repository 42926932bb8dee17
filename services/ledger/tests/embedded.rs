//! The ledger on embedded defaults (embedded log, SQLite, local key): what
//! `spend dev` runs. Exports, tamper detection and rejected payloads.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use spend_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use spend_eventlog::{Append, EventLog};
use spend_ledger::export::{self, WriteSink};
use spend_ledger::store::{SqliteStore, Store};
use spend_ledger::verify::{self, KeyRing};
use spend_ledger::{Deps, LedgerConfig};
use spend_signer::{LocalSigner, Signer};

struct Dev {
    _dir: tempfile::TempDir,
    log: EmbeddedLog,
    store: Arc<dyn Store>,
    keys: KeyRing,
    running: common::Running,
}

async fn dev(config: LedgerConfig) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("events"))).await.unwrap();
    let cps = EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("ledger"))).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("ledger.db")).await.unwrap());
    let signer = LocalSigner::load_or_create(&dir.path().join("key.pem")).unwrap();
    let mut keys = KeyRing::default();
    let pem = spend_signer::spki_pem(&signer.public_key_der().await.unwrap()).unwrap();
    keys.add_pem(&format!("key-id: {}\n{pem}", signer.key_id())).unwrap();
    let running = common::start(
        config,
        Deps {
            events: Arc::new(log.clone()),
            checkpoints: Arc::new(cps),
            store: store.clone(),
            signer: Arc::new(signer),
        },
    )
    .await;
    Dev {
        _dir: dir,
        log,
        store,
        keys,
        running,
    }
}

async fn export_all(store: &dyn Store, from: Option<u64>, to: Option<u64>) -> Vec<u8> {
    let plan = export::plan(store, from, to).await.unwrap();
    let mut sink = WriteSink(Vec::new());
    export::write(store, plan, "spend.evt", &mut sink, |_| {}).await.unwrap();
    sink.0
}

#[tokio::test]
async fn every_single_flipped_byte_in_an_export_is_caught_and_named() {
    let d = dev(LedgerConfig {
        checkpoint_max_events: 7,
        ..common::config()
    })
    .await;
    common::publish(&d.log, "spend.evt", "acme", 0, 20).await;
    // One malformed payload: it must be exported and verified like the rest.
    d.log.append(Append::new("spend.evt.acme.draft.junk", "junk-1", "{not json")).await.unwrap();
    common::publish(&d.log, "spend.evt", "acme", 20, 30).await;
    d.running.wait_covered(31, Duration::from_secs(20)).await;
    let bytes = export_all(d.store.as_ref(), None, None).await;
    let report = verify::verify(&bytes[..], &d.keys, |_| {}).expect("an untouched export verifies");
    assert_eq!((report.events, report.tree_size), (31, 31));
    assert!(report.checkpoints >= 5, "checkpoints every 7 events");

    // Which leaf range each line speaks for.
    let mut spans = Vec::new(); // (start byte, end byte, Some(index) for events | None, covered-before, size)
    let (mut at, mut covered) = (0usize, 0u64);
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        match v["kind"].as_str().unwrap() {
            "event" => spans.push((at, at + line.len() + 1, Some(v["index"].as_u64().unwrap()), 0, 0)),
            "header" => spans.push((at, at + line.len() + 1, None, 0, 0)),
            _ => {
                let size: u64 = v["body"].as_str().unwrap().split('\n').nth(1).unwrap().parse().unwrap();
                spans.push((at, at + line.len() + 1, None, covered, size));
                covered = size;
            }
        }
        at += line.len() + 1;
    }
    for pos in 0..bytes.len() {
        let mut t = bytes.clone();
        t[pos] ^= 0x01;
        let failure = verify::verify(&t[..], &d.keys, |_| {}).err().unwrap_or_else(|| {
            panic!(
                "flipping byte {pos} must fail verification: …{}…",
                String::from_utf8_lossy(&bytes[pos.saturating_sub(40)..(pos + 40).min(bytes.len())])
            )
        });
        let index = failure.index.unwrap_or_else(|| panic!("byte {pos}: no index named: {failure}"));
        let span = spans.iter().find(|s| s.0 <= pos && pos < s.1).unwrap();
        match span.2 {
            Some(i) => assert_eq!(index, i, "byte {pos} in event {i}: {failure}"),
            None => assert!(span.3 <= index && index <= span.4, "byte {pos} in checkpoint {}..{}: {failure}", span.3, span.4),
        }
    }
    d.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_partial_export_starts_from_a_frontier_and_still_verifies() {
    let d = dev(LedgerConfig {
        checkpoint_max_events: 10,
        ..common::config()
    })
    .await;
    common::publish(&d.log, "spend.evt", "acme", 0, 45).await;
    d.running.wait_covered(45, Duration::from_secs(20)).await;
    let bytes = export_all(d.store.as_ref(), Some(13), Some(31)).await;
    let second: serde_json::Value = serde_json::from_slice(bytes.split(|b| *b == b'\n').nth(1).unwrap()).unwrap();
    assert_eq!(second["kind"], "frontier");
    let report = verify::verify(&bytes[..], &d.keys, |_| {}).unwrap();
    assert_eq!(report.first_index, 13);
    // The export ends on the last checkpoint at or below index 31 + 1.
    assert_eq!(report.tree_size % 10, 0);
    assert!(report.tree_size <= 32 && report.tree_size > 13, "{report:?}");
    // Cutting the last checkpoint off leaves events unsigned: refused.
    let text = String::from_utf8(bytes).unwrap();
    let cut: String = text.lines().take(text.lines().count() - 1).map(|l| format!("{l}\n")).collect();
    let f = verify::verify(cut.as_bytes(), &d.keys, |_| {}).unwrap_err();
    assert!(f.reason.contains("not covered"), "{f}");
    // Nothing signed in range: a clear error.
    let err = export::plan(d.store.as_ref(), Some(41), Some(43)).await.unwrap_err();
    assert!(err.to_string().contains("no signed checkpoint"), "{err}");
    d.running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_payloads_are_recorded_as_rejected_and_still_covered() {
    let d = dev(common::config()).await;
    common::publish(&d.log, "spend.evt", "acme", 0, 3).await;
    d.log
        .append(Append::new("spend.evt.acme.draft.x", "bad-1", vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    // A valid event of org "acme" forged onto org "other"'s subject.
    let forged = common::event("spend.evt", "acme", 3);
    d.log
        .append(Append::new("spend.evt.other.draft.d1", forged.msg_id.clone(), forged.payload.clone()))
        .await
        .unwrap();
    d.running.wait_covered(5, Duration::from_secs(10)).await;
    let rows = d.store.events_by_index(0, 10, 10).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[..3].iter().all(|r| r.reject_reason.is_none()));
    assert!(
        rows[3].reject_reason.as_deref().unwrap().contains("not a JSON event envelope"),
        "{:?}",
        rows[3].reject_reason
    );
    assert!(
        rows[4].reject_reason.as_deref().unwrap().contains("not on its own subject"),
        "{:?}",
        rows[4].reject_reason
    );
    assert_eq!(rows[3].payload, vec![0xff, 0xfe, 0x00], "the bytes are kept as given");
    let report = verify::verify(&export_all(d.store.as_ref(), None, None).await[..], &d.keys, |_| {}).unwrap();
    assert_eq!(report.tree_size, 5);
    d.running.stop().await.unwrap();
}

#[tokio::test]
async fn each_event_is_covered_by_a_signed_checkpoint_within_a_second() {
    let d = dev(common::config()).await;
    for i in 0..5 {
        let started = std::time::Instant::now();
        common::publish(&d.log, "spend.evt", "acme", i, i + 1).await;
        d.running.wait_covered(i + 1, Duration::from_secs(5)).await;
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1000), "event {i} waited {waited:?} for a signed checkpoint");
    }
    let cp = d.store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.tree_size, 5);
    assert_eq!(
        cp.body,
        format!(
            "spendsignoff.test/ledger\n5\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(cp.root_hash)
        )
    );
    d.running.stop().await.unwrap();
}

#[tokio::test]
async fn the_projection_refuses_updates_and_deletes() {
    let d = dev(common::config()).await;
    common::publish(&d.log, "spend.evt", "acme", 0, 2).await;
    d.running.wait_covered(2, Duration::from_secs(10)).await;
    d.running.stop().await.unwrap();
    let db = d._dir.path().join("ledger.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    for sql in [
        "UPDATE ledger_events SET subject = 'x'",
        "DELETE FROM ledger_events",
        "DELETE FROM ledger_checkpoints",
        "UPDATE ledger_position SET seq = 0",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

/// An embedded log opened again in the same process after the ledger that
/// held it stopped. A read the stopped ledger had in flight on a blocking
/// thread keeps the log's lock until it returns (a moment later); a new
/// process would find it released at exit. Seen once in CI as "in use by
/// another process".
async fn reopened(dir: std::path::PathBuf) -> EmbeddedLog {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match EmbeddedLog::open(EmbeddedConfig::new(dir.clone())).await {
            Ok(log) => return log,
            Err(e) if e.to_string().contains("in use") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("opening {}: {e}", dir.display()),
        }
    }
}

/// The transactions projection follows the draft aggregate: dual control
/// counts distinct approvers, a forged decision moves nothing, and a draft
/// half-approved before a restart is approved by the second approver after
/// it (the open drafts are rebuilt from the projection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_follow_the_draft_aggregate_across_a_restart() {
    use spend_core::Envelope;
    use spend_core::events::Outcome;
    use spend_testkit::events::{Approvers, decided, payment_proposed, subject_of};

    let dir = tempfile::tempdir().unwrap();
    let open = || async {
        let log = reopened(dir.path().join("events")).await;
        let cps = reopened(dir.path().join("ledger")).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("ledger.db")).await.unwrap());
        let signer = LocalSigner::load_or_create(&dir.path().join("key.pem")).unwrap();
        let running = common::start(
            common::config(),
            Deps {
                events: Arc::new(log.clone()),
                checkpoints: Arc::new(cps),
                store: store.clone(),
                signer: Arc::new(signer),
            },
        )
        .await;
        (log, store, running)
    };
    let append = |log: EmbeddedLog, subject: String, env: Envelope| async move {
        log.append(Append::new(subject, env.id.to_string(), env.to_bytes())).await.unwrap();
    };
    let own = |env: Envelope| (subject_of("spend.evt", &env), env);
    let status = |store: Arc<dyn Store>| async move {
        let rows = store.transactions(None, None, Some("acme")).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].status.clone()
    };

    let (log, store, running) = open().await;
    let mut humans = Approvers::new("acme", &["alice", "bob"]);
    let trust = humans.trust();
    let trusted = trust.len() as u64;
    let proposed = payment_proposed("acme", "d1", 90_000);
    let hash = spend_draft::event_hash(&proposed.to_bytes());
    // A compromised gateway's "decision" on the draft's own subject.
    let mut forged = decided("acme", "d1", Outcome::AutoApprove);
    forged.subject = "draft/d1".into();
    let first = [
        own(proposed),
        own(decided("acme", "d1", Outcome::RequireDualApproval)),
        own(forged),
        own(humans.approved("d1", "alice", &hash)),
        own(humans.approved("d1", "alice", &hash)),
    ];
    for (subject, env) in trust.into_iter().map(own).chain(first) {
        append(log.clone(), subject, env).await;
    }
    running.wait_covered(trusted + 5, Duration::from_secs(10)).await;
    assert_eq!(status(store.clone()).await, "awaiting_second_approval");
    running.stop().await.unwrap();
    drop((log, store));

    let (log, store, running) = open().await;
    let (subject, bob) = own(humans.approved("d1", "bob", &hash));
    append(log.clone(), subject, bob).await;
    running.wait_covered(trusted + 6, Duration::from_secs(10)).await;
    assert_eq!(
        status(store.clone()).await,
        "approved",
        "the second distinct approver, after a restart (the registry rebuilt from the projection too)"
    );
    assert_eq!(
        store.events_by_index(0, 20, 20).await.unwrap().len() as u64,
        trusted + 6,
        "every byte is in the tree, forgery included"
    );
    running.stop().await.unwrap();
}

/// With callers configured, the ledger serves auditors and the operator,
/// each by its own credential: another service's credential (the
/// gateway's) is refused on every RPC and audited on the ledger's own
/// security subject; no credential is unauthenticated.
#[tokio::test]
async fn only_auditors_and_the_operator_read_the_ledger() {
    use spend_proto::internal::{Callers, HEADER, digest};
    use spend_proto::v1::ledger_client::LedgerClient;
    let (auditor, gateway) = ("auditor-credential-of-this-test", "gateway-credential-of-this-test");
    let d = dev(LedgerConfig {
        callers: Some(Callers::from_digests([("auditor", digest(auditor).as_str()), ("gateway", digest(gateway).as_str())]).unwrap()),
        ..common::config()
    })
    .await;
    common::publish(&d.log, "spend.evt", "acme", 0, 3).await;
    d.running.wait_covered(3, Duration::from_secs(20)).await;
    let mut client = LedgerClient::connect(format!("http://{}", d.running.addr)).await.unwrap();
    let latest = |token: Option<&str>| {
        let mut r = tonic::Request::new(spend_proto::v1::LatestCheckpointRequest::default());
        r.metadata_mut().insert("spend-org", "acme".parse().unwrap());
        if let Some(t) = token {
            r.metadata_mut().insert(HEADER, t.parse().unwrap());
        }
        r
    };
    let cp = client.latest_checkpoint(latest(Some(auditor))).await.unwrap().into_inner();
    assert_eq!(cp.tree_size, 3);
    let e = client.latest_checkpoint(latest(Some(gateway))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("serves the auditor and the operator, not the gateway"), "{e:?}");
    let e = client.latest_checkpoint(latest(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // Audited by the ledger, on its own subject, never with the credential.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alerts: Vec<serde_json::Value> = spend_testkit::events::on_log(&d.log)
            .await
            .into_iter()
            .filter(|(s, _)| s == "spend.evt.acme.security_ledger.gateway")
            .map(|(_, e)| e)
            .collect();
        if let Some(a) = alerts.first() {
            assert_eq!(a["data"]["reason"], "internal.caller_refused");
            assert_eq!(a["source"], "spendsignoff/ledger");
            assert!(!a.to_string().contains(gateway));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no alert on the ledger's security subject");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
