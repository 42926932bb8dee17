//! The ledger on its production backends: JetStream, PostgreSQL and a
//! KMS-compatible server (moto), each test on its own streams, database
//! and key.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spend_eventlog::EventLog;
use spend_eventlog::jetstream::JetStreamLog;
use spend_ledger::export::{self, WriteSink};
use spend_ledger::merkle;
use spend_ledger::store::{PgStore, Store};
use spend_ledger::verify::{self, KeyRing};
use spend_ledger::{Deps, LedgerConfig};
use spend_proto::v1::ledger_client::LedgerClient;
use spend_proto::v1::{ConsistencyProofRequest, InclusionProofRequest, LatestCheckpointRequest, QueryEventsRequest};
use spend_signer::{KmsSigner, Signer};
use spend_testkit::{Streams, TestDatabase};

struct Prod {
    streams: Streams,
    db: TestDatabase,
    events: JetStreamLog,
    signer: Arc<KmsSigner>,
    keys: KeyRing,
}

async fn prod() -> Prod {
    let streams = Streams::new();
    let db = TestDatabase::create().await;
    let events = JetStreamLog::connect(streams.events.clone()).await.unwrap();
    let client = spend_testkit::kms_client().await;
    let (_, alias) = spend_testkit::kms_key(&client).await;
    let signer = Arc::new(KmsSigner::from_client(client, &alias).await.unwrap());
    let mut keys = KeyRing::default();
    let pem = spend_signer::spki_pem(&signer.public_key_der().await.unwrap()).unwrap();
    keys.add_pem(&format!("key-id: {}\n{pem}", signer.key_id())).unwrap();
    Prod {
        streams,
        db,
        events,
        signer,
        keys,
    }
}

impl Prod {
    fn config(&self) -> LedgerConfig {
        LedgerConfig {
            subject_prefix: self.streams.events.subject_prefix.clone(),
            stream: self.streams.ledger.stream.clone(),
            ledger_subject_prefix: self.streams.ledger.subject_prefix.clone(),
            ..common::config()
        }
    }

    async fn start(&self, config: LedgerConfig, db_url: &str) -> (common::Running, Arc<dyn Store>) {
        let checkpoints = JetStreamLog::with_client(self.events.client().clone(), self.streams.ledger.clone())
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(PgStore::connect(db_url).await.unwrap());
        let running = common::start(
            config,
            Deps {
                events: Arc::new(self.events.clone()),
                checkpoints: Arc::new(checkpoints),
                store: store.clone(),
                signer: self.signer.clone(),
            },
        )
        .await;
        (running, store)
    }

    async fn export(&self, store: &dyn Store) -> Vec<u8> {
        let plan = export::plan(store, None, None).await.unwrap();
        let mut sink = WriteSink(Vec::new());
        export::write(store, plan, &self.streams.events.subject_prefix, &mut sink, |_| {})
            .await
            .unwrap();
        sink.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_are_projected_signed_exported_and_verified() {
    const N: u64 = 100_000;
    let p = prod().await;
    let (running, store) = p.start(p.config(), &p.db.url).await;
    common::publish(&p.events, &p.streams.events.subject_prefix, "acme", 0, N).await;
    running.wait_covered(N, Duration::from_secs(300)).await;
    let bytes = p.export(store.as_ref()).await;
    let report = verify::verify(&bytes[..], &p.keys, |_| {}).expect("the export verifies");
    assert_eq!((report.events, report.tree_size), (N, N));
    assert!(report.checkpoints >= N / 10_000, "{report:?}");

    // Checkpoints are also published on the ledger stream.
    let ledger_stream = JetStreamLog::with_client(p.events.client().clone(), p.streams.ledger.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ledger_stream.info().await.unwrap().last_seq < report.checkpoints {
        assert!(tokio::time::Instant::now() < deadline, "checkpoints are published on the ledger stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One flipped byte in the middle of event 54,321's payload.
    let text = String::from_utf8(bytes).unwrap();
    let at = text.find("\"index\":54321,").unwrap();
    let payload_at = at + text[at..].find("payload_b64\":\"").unwrap() + 30;
    let mut tampered = text.into_bytes();
    tampered[payload_at] = if tampered[payload_at] == b'A' { b'B' } else { b'A' };
    let failure = verify::verify(&tampered[..], &p.keys, |_| {}).unwrap_err();
    assert_eq!(failure.index, Some(54321), "{failure}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn proofs_queries_health_and_reflection_over_grpc() {
    let p = prod().await;
    let (running, _store) = p.start(p.config(), &p.db.url).await;
    common::publish(&p.events, &p.streams.events.subject_prefix, "acme", 0, 30).await;
    common::publish(&p.events, &p.streams.events.subject_prefix, "globex", 30, 40).await;
    running.wait_covered(40, Duration::from_secs(20)).await;
    let url = format!("http://{}", running.addr);

    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "spendsignoff.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

    let mut ledger = LedgerClient::connect(url).await.unwrap();
    let cp = ledger.latest_checkpoint(LatestCheckpointRequest {}).await.unwrap().into_inner();
    assert_eq!(cp.tree_size, 40);
    assert!(p.keys.check(&cp.key_id, cp.body.as_bytes(), &cp.signature).is_ok());
    let root: merkle::Hash = cp.root_hash.clone().try_into().unwrap();

    for index in [0u64, 17, 39] {
        let proof = ledger
            .inclusion_proof(InclusionProofRequest { index, tree_size: 0 })
            .await
            .unwrap()
            .into_inner();
        let path: Vec<merkle::Hash> = proof.audit_path.iter().map(|h| h.clone().try_into().unwrap()).collect();
        let leaf: merkle::Hash = proof.leaf_hash.clone().try_into().unwrap();
        assert!(merkle::verify_inclusion(index, 40, &leaf, &path, &root), "inclusion of {index}");
    }
    let c = ledger
        .consistency_proof(ConsistencyProofRequest { old_size: 13, new_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let proof: Vec<merkle::Hash> = c.proof.iter().map(|h| h.clone().try_into().unwrap()).collect();
    assert!(merkle::verify_consistency(13, 40, &c.old_root.clone().try_into().unwrap(), &root, &proof));
    let err = ledger.inclusion_proof(InclusionProofRequest { index: 40, tree_size: 0 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);

    let q = |org: &str, t: &str, limit| QueryEventsRequest {
        org: org.into(),
        r#type: t.into(),
        limit,
        ..Default::default()
    };
    let globex = ledger.query_events(q("globex", "", 100)).await.unwrap().into_inner();
    assert_eq!(globex.events.len(), 10);
    assert!(globex.events.iter().all(|e| e.org == "globex" && e.index >= 30));
    let pushed = ledger.query_events(q("acme", "spend.change.pushed.v1", 100)).await.unwrap().into_inner();
    assert_eq!(pushed.events.len(), 10);
    let page = ledger.query_events(q("acme", "", 20)).await.unwrap().into_inner();
    assert_eq!(page.events.len(), 20);
    let next = ledger
        .query_events(QueryEventsRequest {
            after_index: page.next_after_index,
            ..q("acme", "", 20)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.events.first().unwrap().index, 20);
    assert_eq!(next.events.len(), 10);

    // Reflection answers on v1alpha (what grpcurl speaks) and lists the
    // ledger and health services.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = client.server_reflection_info(tokio_stream::once(req)).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message().await.unwrap().unwrap().message_response else {
            panic!("no service list")
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(
            names.contains(&"spendsignoff.v1.Ledger") && names.contains(&"grpc.health.v1.Health"),
            "{names:?}"
        );
        for other in [
            "spendsignoff.v1.Approval",
            "spendsignoff.v1.Executor",
            "spendsignoff.v1.Policy",
            "spendsignoff.v1.AgentGateway",
        ] {
            assert!(!names.contains(&other), "the ledger lists only what it serves: {names:?}");
        }
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn postgres_refuses_updates_deletes_and_truncates_of_the_projection() {
    let p = prod().await;
    let (running, store) = p.start(p.config(), &p.db.url).await;
    common::publish(&p.events, &p.streams.events.subject_prefix, "acme", 0, 3).await;
    running.wait_covered(3, Duration::from_secs(20)).await;
    running.stop().await.unwrap();
    drop(store);
    let pool = sqlx::PgPool::connect(&p.db.url).await.unwrap();
    for table in ["ledger_events", "ledger_checkpoints", "ledger_position", "ledger_transactions"] {
        for sql in [
            format!("UPDATE {table} SET idx = idx"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let sql = sql.replace(
                "SET idx = idx",
                if table == "ledger_checkpoints" {
                    "SET tree_size = tree_size"
                } else if table == "ledger_position" {
                    "SET seq = seq"
                } else {
                    "SET idx = idx"
                },
            );
            let err = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&pool).await.expect_err(&sql);
            assert!(err.to_string().contains("append-only"), "superuser, {sql}: {err}");
        }
    }
    // The writer role may only read and insert.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE spend_ledger_writer").execute(&mut *conn).await.unwrap();
    let err = sqlx::query("DELETE FROM ledger_events").execute(&mut *conn).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_events").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(n, 3);
}

/// A TCP proxy in front of PostgreSQL that can cut the connection, as a
/// network partition or a database restart would.
struct Partition {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Partition {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused-ish
                }
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, generation }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_thirty_seconds_is_waited_out_and_caught_up() {
    let p = prod().await;
    let partition = Partition::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = p.db.url.replace("127.0.0.1:5432", &partition.addr.to_string());
    assert_ne!(via_proxy, p.db.url, "the test database URL must point at 127.0.0.1:5432");
    let (running, store) = p.start(p.config(), &via_proxy).await;
    common::publish(&p.events, &p.streams.events.subject_prefix, "acme", 0, 1000).await;
    running.wait_covered(1000, Duration::from_secs(30)).await;

    partition.cut();
    common::publish(&p.events, &p.streams.events.subject_prefix, "acme", 1000, 3000).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (pos, _, _) = running.state.progress().await;
    assert_eq!(pos, 1000, "nothing is projected while the database is away");
    partition.heal();
    running.wait_covered(3000, Duration::from_secs(60)).await;

    let bytes = p.export(store.as_ref()).await;
    let report = verify::verify(&bytes[..], &p.keys, |_| {}).unwrap();
    assert_eq!(report.tree_size, 3000);
    // Same root as hashing the published events directly.
    let mut range = merkle::CompactRange::new();
    let rows = store.events_by_index(0, 3000, 3000).await.unwrap();
    assert_eq!(rows.len(), 3000);
    assert!(rows.iter().enumerate().all(|(i, r)| r.idx == i as u64 && r.seq == i as u64 + 1));
    rows.iter().for_each(|r| range.push(merkle::leaf_hash(&r.payload)));
    assert_eq!(range.root(), report.root);
    running.stop().await.unwrap();
}
