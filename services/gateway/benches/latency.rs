//! Draft → decision latency through the gateway, on JetStream, at fixed
//! offered rates, beside the raw JetStream publish round trip measured in
//! the same run on the same server.
//!
//!     cargo bench -p spend-gateway --bench latency
//!
//! Under `cargo test` (no `--bench` argument) it runs a one-second smoke
//! pass at 50/s and fails on any error, so the benchmark stays working.
//!
//! Environment: SPEND_BENCH_NATS_URL (default nats://127.0.0.1:4222),
//! SPEND_BENCH_SECONDS per rate (default 5), SPEND_BENCH_RATES
//! (default 100,500,1000).
//!
//! Open loop: requests are sent on a fixed schedule whatever the answers
//! do, and latency is measured from each request's *scheduled* time, so a
//! stall shows up in the percentiles instead of slowing the offered load
//! (no coordinated omission). A draft's latency is the whole call:
//! authentication and guard, the draft event, the `Policy.Decide` call
//! (the policy service reads the draft, its decision subject and the
//! envelope, and appends the decision), and the reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spend_credentials::{AgentScope, generate};
use spend_eventlog::jetstream::{JetStreamConfig, JetStreamLog};
use spend_eventlog::{Append, EventLog};
use spend_executor::connector::{PlatformConnector, PlatformToken, StaticToken};
use spend_gateway::{Application, Deps, GatewayConfig};
use spend_proto::v1 as pb;
use spend_sandbox::{Sandbox, SandboxToken};
use tonic::metadata::MetadataValue;

// Every draft here is decided and settles (denied by the per-transaction
// limit, after every rule ran): an organisation may have at most 1,000
// drafts waiting for a human, and an open-loop run at 1,000/s would reach
// that in a second.
const POLICY: &str = "\
spend:
  per_transaction: 0.50 USD
approval:
  require_confirmation_over: 500 USD
security:
  rate_limit_per_minute: 1000000
";

const ACCOUNTS: u64 = 100;

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
    errors: usize,
    achieved: f64,
}

fn stats(mut lat: Vec<Duration>, errors: usize, elapsed: Duration) -> Stats {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q).ceil() as usize).saturating_sub(1).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        p50: ms(at(0.50)),
        p99: ms(at(0.99)),
        max: ms(lat.last().copied().unwrap_or_default()),
        n: lat.len(),
        errors,
        achieved: lat.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// Runs `op(i)` at `rate` per second for `secs`, open loop.
async fn offered<F, Fut>(rate: u64, secs: u64, op: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let total = rate * secs;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let ok = op(i).await;
            (due.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(handles.len());
    let mut errors = 0;
    for h in handles {
        let (d, ok) = h.await.unwrap();
        if ok {
            lat.push(d);
        } else {
            errors += 1;
        }
    }
    stats(lat, errors, start.elapsed())
}

fn print(label: &str, rate: u64, s: &Stats) {
    println!(
        "{label:<28} {rate:>5}/s  n={:<6} achieved={:>7.1}/s  p50={:>6.2} ms  p99={:>6.2} ms  max={:>7.2} ms  errors={}",
        s.n, s.achieved, s.p50, s.p99, s.max, s.errors
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let url = std::env::var("SPEND_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: u64 = if benching {
        std::env::var("SPEND_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
    } else {
        1
    };
    let rates: Vec<u64> = if benching {
        std::env::var("SPEND_BENCH_RATES")
            .unwrap_or_else(|_| "100,500,1000".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    } else {
        vec![50]
    };
    let mut errors = 0;
    let id = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let config = JetStreamConfig {
        url: url.clone(),
        stream: format!("BENCH_GW_{id}"),
        subject_prefix: format!("b{id}.evt"),
        manage: true,
        ..JetStreamConfig::default()
    };
    let prefix = config.subject_prefix.clone();
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(config.clone()).await.expect("JetStream at SPEND_BENCH_NATS_URL"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "draft → decision latency; {} CPUs ({cpu}); {secs} s per rate; {ACCOUNTS} accounts",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The sandbox platform and the gateway, in this process.
    let sandbox = Sandbox::seeded(vec![SandboxToken {
        token: "bench".into(),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        scopes: vec!["ads.read".into(), "cards.read".into()],
    }]);
    let sl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sl.local_addr().unwrap());
    tokio::spawn(sandbox.serve(sl, std::future::pending()));
    let mut gw_config = GatewayConfig::new("127.0.0.1:0");
    gw_config.breaker.max_drafts_per_minute = usize::MAX;
    let decider = spend_policy_service::decide::Decider::start(
        log.clone(),
        prefix.clone(),
        spend_policy_service::decide::Bootstrap {
            policy: Arc::new(spend_policy::spendmd::parse(POLICY).unwrap()),
            source: POLICY.into(),
            approved_by_human: false,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        },
    );
    let deps = Deps {
        log: log.clone(),
        prefix: prefix.clone(),
        policy: spend_policy::spendmd::parse(POLICY).unwrap(),
        policy_approved_by_human: false,
        reads: Arc::new(PlatformConnector::new(&sandbox_url, Arc::new(StaticToken(PlatformToken::new("bench")))).unwrap()),
        decider: Arc::new(decider),
    };
    let key = generate("acme", "bench", &[AgentScope::Read, AgentScope::Draft], chrono::Utc::now()).unwrap();
    let env = spend_core::Envelope::new(
        "spendsignoff/cli",
        "acme",
        spend_core::Actor::human("bench"),
        format!("apikey/{}", key.created.key_id),
        spend_core::events::EventData::ApiKeyCreated(key.created.clone()),
    );
    log.append(Append::new(
        format!("{prefix}.acme.apikey.{}", key.created.key_id),
        env.id.to_string(),
        env.to_bytes(),
    ))
    .await
    .unwrap();
    let app = Application::build(gw_config, deps).await.unwrap();
    let state = app.state();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    state.caught_up().await.unwrap();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: MetadataValue<_> = format!("Bearer {}", key.secret).parse().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let mcp_url = format!("http://{addr}/mcp");
    let session = mcp_session(&http, &mcp_url, &key.secret).await;

    for &rate in &rates {
        // Raw JetStream: one publish and its acknowledgement.
        let raw = log.clone();
        let p = prefix.clone();
        let s = offered(rate, secs, move |i| {
            let raw = raw.clone();
            let subject = format!("{p}.raw.x.r{}", i % ACCOUNTS);
            async move {
                let payload = vec![b'x'; 600];
                raw.append(Append::new(subject, uuid::Uuid::now_v7().to_string(), payload)).await.is_ok()
            }
        })
        .await;
        print("JetStream publish round trip", rate, &s);
        errors += s.errors;

        let ch = channel.clone();
        let b = bearer.clone();
        let s = offered(rate, secs, move |i| {
            let mut client = pb::agent_gateway_client::AgentGatewayClient::new(ch.clone());
            let b = b.clone();
            async move {
                let mut req = tonic::Request::new(payment_pb(i));
                req.metadata_mut().insert("authorization", b);
                client
                    .propose_change(req)
                    .await
                    .is_ok_and(|r| r.into_inner().draft.is_some_and(|d| d.decision.is_some()))
            }
        })
        .await;
        print("gRPC ProposeChange", rate, &s);
        errors += s.errors;

        let (h, u, k, sid) = (http.clone(), mcp_url.clone(), key.secret.clone(), session.clone());
        let s = offered(rate, secs, move |i| {
            let (h, u, k, sid) = (h.clone(), u.clone(), k.clone(), sid.clone());
            async move {
                let call = serde_json::json!({"jsonrpc":"2.0","id":i + 1,"method":"tools/call","params":{"name":"propose_change","arguments":payment_json(i)}});
                match h
                    .post(&u)
                    .bearer_auth(&k)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &sid)
                    .json(&call)
                    .send()
                    .await
                {
                    Ok(r) => r.text().await.is_ok_and(|t| t.contains("policy_version") && !t.contains("\"isError\":true")),
                    Err(_) => false,
                }
            }
        })
        .await;
        print("MCP propose_change", rate, &s);
        errors += s.errors;
    }

    // Leave nothing behind.
    if let Ok(client) = async_nats::connect(&url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&config.stream).await;
    }
    assert_eq!(errors, 0, "every request of the run must succeed");
}

fn payment_pb(i: u64) -> pb::ProposeChangeRequest {
    pb::ProposeChangeRequest {
        account_id: "card_1".into(),
        rationale: "bench".into(),
        change: Some(pb::propose_change_request::Change::Payment(pb::Payment {
            amount: Some(pb::Money {
                minor_units: 100 + (i % 50) as i64,
                currency: "USD".into(),
            }),
            merchant: "openai.com".into(),
            card_id: "crd_1".into(),
            ..Default::default()
        })),
    }
}

fn payment_json(i: u64) -> serde_json::Value {
    serde_json::json!({
        "account_id": "card_1",
        "rationale": "bench",
        "payment": {"amount_minor": 100 + (i % 50), "currency": "USD", "merchant": "openai.com", "card_id": "crd_1"}
    })
}

async fn mcp_session(http: &reqwest::Client, url: &str, key: &str) -> String {
    let r = http
        .post(url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = r.bytes().await;
    http.post(url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &id)
        .json(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await
        .unwrap();
    id
}
