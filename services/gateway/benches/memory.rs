//! A gateway's memory under a flood of drafts with every field at its
//! maximum (a 2,000-character rationale, a 253-character merchant, a
//! 2,048-character URL): the view keeps pending drafts (at most
//! `MAX_PENDING_PER_ORG`, beyond which drafts are refused) and the most
//! recent `HISTORY_PER_ORG` others, so it stays bounded however many come.
//!
//!     cargo bench -p spend-gateway --bench memory
//!
//! Under `cargo test` (no `--bench` argument) it runs 3,000 drafts and
//! fails if the view keeps more than its bounds. Resident memory is read
//! from /proc/self/status. The event log here is the embedded one (as in
//! `spend dev`); its own index grows with the log, which in production is
//! NATS's, not the gateway's.

use std::sync::Arc;

use spend_credentials::AgentScope;
use spend_executor::connector::{PlatformConnector, PlatformToken, StaticToken};
use spend_gateway::ops::{ChangeRequest, MAX_MERCHANT_CHARS, MAX_RATIONALE_CHARS, MAX_URL_CHARS, OpError, ProposeRequest};
use spend_gateway::view::{HISTORY_PER_ORG, MAX_PENDING_PER_ORG};
use spend_gateway::{Application, Deps, GatewayConfig, Identity};
use spend_sandbox::{Sandbox, SandboxToken};

const POLICY: &str = "\
spend:
  per_transaction: 1000 USD
  daily_limit: 100000000 USD
  monthly_limit: 100000000 USD
approval:
  auto_approve_under: 5 USD
security:
  rate_limit_per_minute: 1000000
";

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let benching = std::env::args().any(|a| a == "--bench");
    let total: usize = if benching { 10_000 } else { 3_000 };
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn spend_eventlog::EventLog> = Arc::new(
        spend_eventlog::embedded::EmbeddedLog::open(spend_eventlog::embedded::EmbeddedConfig::new(dir.path()))
            .await
            .unwrap(),
    );
    let sandbox = Sandbox::seeded(vec![SandboxToken {
        token: "bench".into(),
        expires_at: chrono::Utc::now() + chrono::Duration::days(1),
        scopes: vec!["ads.read".into(), "cards.read".into()],
    }]);
    let sl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sl.local_addr().unwrap());
    tokio::spawn(sandbox.serve(sl, std::future::pending()));
    let policy = spend_policy::spendmd::parse(POLICY).unwrap();
    let decider = spend_policy_service::decide::Decider::start(
        log.clone(),
        "spend.evt",
        spend_policy_service::decide::Bootstrap {
            policy: Arc::new(policy.clone()),
            source: POLICY.into(),
            approved_by_human: true,
            passkey: spend_draft::proof::RelyingParty::default_app(),
        },
    );
    let mut config = GatewayConfig::new("127.0.0.1:0");
    config.breaker.max_drafts_per_minute = usize::MAX;
    let deps = Deps {
        log: log.clone(),
        prefix: "spend.evt".into(),
        policy,
        policy_approved_by_human: true,
        reads: Arc::new(PlatformConnector::new(&sandbox_url, Arc::new(StaticToken(PlatformToken::new("bench")))).unwrap()),
        decider: Arc::new(decider),
    };
    let app = Application::build(config, deps).await.unwrap();
    let state = app.state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let who = Identity {
        key_id: "bench".into(),
        org: "acme".into(),
        scopes: vec![AgentScope::Read, AgentScope::Draft],
        address: "127.0.0.1".into(),
    };
    let rationale = "r".repeat(MAX_RATIONALE_CHARS);
    let merchant = "m".repeat(MAX_MERCHANT_CHARS);
    let url = format!("https://{}", "u".repeat(MAX_URL_CHARS - 8));
    println!(
        "gateway memory under {total} drafts with maximal fields ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:>7} {:>9} {:>8} {:>9} {:>9}", "drafts", "refused", "kept", "pending", "RSS MiB");
    let start_rss = rss_mib();
    println!("{:>7} {:>9} {:>8} {:>9} {:>9.1}", 0, 0, 0, 0, start_rss);
    let mut refused = 0;
    let mut peak: f64 = start_rss;
    for i in 0..total {
        // Every fifth waits for a human (over auto_approve_under); the
        // others are auto-approved and settle into the history.
        let amount_minor = if i % 5 == 0 { 10_000 } else { 100 };
        let r = state
            .propose_change(
                &who,
                ProposeRequest {
                    account_id: "card_1".into(),
                    rationale: rationale.clone(),
                    change: ChangeRequest::Payment {
                        amount_minor,
                        currency: "USD".into(),
                        merchant: merchant.clone(),
                        card_id: "crd_1".into(),
                        category: Some("c".repeat(64)),
                        country: Some("US".into()),
                        url: Some(url.clone()),
                    },
                },
            )
            .await;
        match r {
            Ok(_) => {}
            Err(OpError::Conflict { .. }) => refused += 1,
            Err(e) => panic!("draft {i}: {e}"),
        }
        if (i + 1) % (total / 4) == 0 {
            state.caught_up().await.unwrap();
            let view = state.view.read().await;
            let (kept, pending) = (view.drafts_kept("acme"), view.pending_count("acme"));
            drop(view);
            let rss = rss_mib();
            peak = peak.max(rss);
            println!("{:>7} {:>9} {:>8} {:>9} {:>9.1}", i + 1, refused, kept, pending, rss);
            assert!(kept <= HISTORY_PER_ORG + MAX_PENDING_PER_ORG, "the view keeps {kept} drafts");
            assert!(pending <= MAX_PENDING_PER_ORG, "{pending} pending");
        }
    }
    println!("peak RSS {peak:.1} MiB (start {start_rss:.1} MiB)");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
