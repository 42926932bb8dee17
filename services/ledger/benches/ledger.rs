//! Ledger throughput, beside the raw speed of the part underneath, in one
//! run on this machine:
//!
//! 1. raw JetStream publish rate (pipelined acks) of the same events;
//! 2. ledger ingest of that backlog: consumed, hashed, projected into
//!    PostgreSQL and covered by KMS-signed checkpoints (moto's server);
//! 3. export rate, and offline verify rate, beside raw SHA-256 leaf hashing.
//!
//! `cargo bench -p spend-ledger --bench ledger` (needs the servers that
//! scripts/test.sh starts). Under `cargo test` (no `--bench` argument) it
//! runs a small smoke pass so the benchmark itself stays working.
//! `SPEND_BENCH_EVENTS` sets the event count (default 200,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use spend_eventlog::EventLog;
use spend_eventlog::jetstream::JetStreamLog;
use spend_ledger::export::{self, WriteSink};
use spend_ledger::store::{PgStore, Store};
use spend_ledger::verify::{self, KeyRing};
use spend_ledger::{Application, Deps, LedgerConfig};
use spend_signer::{KmsSigner, Signer};
use spend_testkit::{Streams, TestDatabase};

fn rate(n: u64, d: Duration) -> String {
    format!("{:>10.0} events/s  ({n} in {:.2} s)", n as f64 / d.as_secs_f64(), d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    spend_core::telemetry::init("warn", false);
    let benching = std::env::args().any(|a| a == "--bench");
    let n: u64 = if benching {
        std::env::var("SPEND_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
    } else {
        2_000
    };
    let streams = Streams::new();
    let prefix = streams.events.subject_prefix.clone();
    let events: Vec<_> = (0..n).map(|i| spend_testkit::events::draft_event(&prefix, "acme", i)).collect();
    let bytes: usize = events.iter().map(|e| e.payload.len()).sum();
    println!(
        "ledger benchmark: {n} events, {} bytes average payload, {} cores",
        bytes as u64 / n,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    // 1. Raw JetStream publish, 1,000 acks in flight.
    let log = JetStreamLog::connect(streams.events.clone()).await.expect("NATS");
    let started = Instant::now();
    for chunk in events.chunks(1000) {
        for r in log.append_many(chunk.to_vec()).await {
            r.expect("publish");
        }
    }
    let publish = started.elapsed();
    println!("jetstream publish (raw)        {}", rate(n, publish));

    // 2. Ledger ingest of the backlog.
    let db = TestDatabase::create().await;
    let kms = spend_testkit::kms_client().await;
    let (_, alias) = spend_testkit::kms_key(&kms).await;
    let signer = Arc::new(KmsSigner::from_client(kms, &alias).await.expect("KMS"));
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&db.url).await.unwrap());
    let checkpoints = JetStreamLog::with_client(log.client().clone(), streams.ledger.clone()).await.unwrap();
    let config = LedgerConfig {
        listen: "127.0.0.1:0".into(),
        subject_prefix: prefix.clone(),
        stream: streams.ledger.stream.clone(),
        ledger_subject_prefix: streams.ledger.subject_prefix.clone(),
        ..LedgerConfig::default()
    };
    let started = Instant::now();
    let app = Application::build(
        config.clone(),
        Deps {
            events: Arc::new(log.clone()),
            checkpoints: Arc::new(checkpoints),
            store: store.clone(),
            signer: signer.clone(),
        },
    )
    .await
    .unwrap();
    let state = app.state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    loop {
        let (_, leaves, signed) = state.progress().await;
        if leaves >= n && signed >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest = started.elapsed();
    println!("ledger ingest (JetStream → PostgreSQL, KMS-signed) {}", rate(n, ingest));
    println!("  ratio to raw publish          {:.2}", publish.as_secs_f64() / ingest.as_secs_f64());
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // 3. Export and offline verify.
    let plan = export::plan(store.as_ref(), None, None).await.unwrap();
    let started = Instant::now();
    let mut sink = WriteSink(Vec::with_capacity(bytes * 2));
    export::write(store.as_ref(), plan, &prefix, &mut sink, |_| {}).await.unwrap();
    let exported = started.elapsed();
    println!("export (PostgreSQL → JSONL)     {}", rate(n, exported));
    let mut keys = KeyRing::default();
    keys.add_pem(&format!(
        "key-id: {}\n{}",
        signer.key_id(),
        spend_signer::spki_pem(&signer.public_key_der().await.unwrap()).unwrap()
    ))
    .unwrap();
    let text = sink.0;
    // Verify is an auditor's offline tool: let PostgreSQL and NATS finish
    // their post-ingest work first (checkpointing, vacuum), then take five
    // runs and report the best and the median.
    if benching {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut runs = Vec::new();
    let mut report = None;
    for _ in 0..5 {
        let started = Instant::now();
        report = Some(verify::verify(&text[..], &keys, |_| {}).expect("verifies"));
        runs.push(started.elapsed());
    }
    let report = report.expect("ran");
    assert_eq!(report.tree_size, n);
    runs.sort();
    println!(
        "offline verify ({} checkpoints)  best {}  ({:.0} MB/s of export); median {:.0} events/s",
        report.checkpoints,
        rate(n, runs[0]),
        text.len() as f64 / runs[0].as_secs_f64() / 1e6,
        n as f64 / runs[2].as_secs_f64()
    );
    let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.payload.to_vec()).collect();
    let started = Instant::now();
    let mut acc = 0u8;
    for p in &payloads {
        acc ^= spend_ledger::merkle::leaf_hash(p)[0];
    }
    let hashing = started.elapsed();
    println!("raw SHA-256 leaf hashing, 1 core {}  (checksum {acc})", rate(n, hashing));
}
