//! A forged approval published on NATS with the gateway's own credentials
//! (k8s/nats/auth.conf, on a real nats-server): refused by the server on
//! an approval subject (and logged by it as a permissions violation);
//! published where the gateway may write, it is ignored by the view and
//! raised as a `spend.security.alert.v1`. The gateway's user cannot delete
//! or purge the stream either.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{Gateway, alerts};
use spend_core::events::{ApprovalGranted, EventData};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::{JetStreamConfig, JetStreamLog};
use spend_eventlog::{Append, EventLog};
use spend_gateway::GatewayConfig;

struct NatsServer {
    child: tokio::process::Child,
    url: String,
    log_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_nats(passwords: &[(&str, &str)]) -> NatsServer {
    // A port picked by binding :0 can be taken by someone else before the
    // server binds it: try a few.
    let mut last = String::new();
    for _ in 0..3 {
        match try_start_nats(passwords).await {
            Ok(s) => return s,
            Err(e) => last = e,
        }
    }
    panic!("nats-server did not start: {last}");
}

async fn try_start_nats(passwords: &[(&str, &str)]) -> Result<NatsServer, String> {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Includes are relative to the including file: copy it beside.
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/nats/auth.conf"), dir.path().join("auth.conf")).unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\ninclude \"auth.conf\"\n",
            dir.path().join("js").display()
        ),
    )
    .unwrap();
    let log_file = dir.path().join("nats.log");
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut cmd = tokio::process::Command::new(which_nats());
    cmd.arg("-c").arg(&conf).arg("-l").arg(&log_file).stdout(Stdio::null()).stderr(stderr);
    for (k, v) in passwords {
        cmd.env(k, v);
    }
    let mut child = cmd.kill_on_drop(true).spawn().map_err(|e| format!("spawning nats-server: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || tokio::time::Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(format!(
                "port {port}, exit {exited:?}: {} {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default(),
                std::fs::read_to_string(&log_file).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(NatsServer {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        log_file,
        _dir: dir,
    })
}

fn which_nats() -> String {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "nats-server".into()
}

async fn connect_as(url: &str, user: &str, password: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .connect(url)
        .await
        .unwrap()
}

fn approval(draft: &str, actor: Actor, subject: &str) -> Envelope {
    Envelope::new(
        "spendsignoff/approval",
        "acme",
        actor,
        subject,
        EventData::ApprovalGranted(ApprovalGranted {
            draft_id: draft.into(),
            approval_id: "forged".into(),
            step: 1,
            credential_id: "none".into(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_approval_with_the_gateways_nats_credentials_is_refused_and_audited() {
    // nats-server parses environment values as config values: a password
    // must not start with a digit (see k8s/nats/auth.conf).
    let password = || format!("pw{}", spend_gateway::credentials::random_hex(16).unwrap());
    let (gateway_pw, operator_pw, others) = (password(), password(), password());
    let nats = start_nats(&[
        ("SPEND_NATS_GATEWAY_PASSWORD", &gateway_pw),
        ("SPEND_NATS_OPERATOR_PASSWORD", &operator_pw),
        ("SPEND_NATS_APPROVAL_PASSWORD", &others),
        ("SPEND_NATS_EXECUTOR_PASSWORD", &others),
        ("SPEND_NATS_LEDGER_PASSWORD", &others),
    ])
    .await;
    let config = JetStreamConfig {
        url: nats.url.clone(),
        ..JetStreamConfig::default()
    };
    // The gateway's connection creates (or finds) the stream, as in production.
    let client = connect_as(&nats.url, "gateway", &gateway_pw).await;
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::with_client(client.clone(), config.clone()).await.unwrap());
    // Keys are the operator's to publish (`spend api-key create`).
    let operator = connect_as(&nats.url, "operator", &operator_pw).await;
    let operator_log: Arc<dyn EventLog> = Arc::new(JetStreamLog::with_client(operator, config.clone()).await.unwrap());

    // 1. On the approval subject: refused by the server.
    let env = approval("d1", Actor::human("mallory"), "approval/d1");
    let refused = log.append(Append::new("spend.evt.acme.approval.d1", env.id.to_string(), env.to_bytes())).await;
    assert!(refused.is_err(), "the gateway's user cannot publish approvals");
    assert!(log.last_on_subject("spend.evt.acme.approval.d1").await.unwrap().is_none(), "nothing stored");
    let server_log = std::fs::read_to_string(&nats.log_file).unwrap();
    assert!(
        server_log.contains("Publish Violation - User \"gateway\", Subject \"spend.evt.acme.approval.d1\""),
        "the server records the violation: {server_log}"
    );
    // Nor can it erase history.
    let js = async_nats::jetstream::new(client.clone());
    assert!(js.delete_stream("SPEND_EVENTS").await.is_err(), "no stream delete");
    assert!(js.get_stream("SPEND_EVENTS").await.is_ok(), "the stream is still there");

    // 2. On a draft subject, which the gateway may write: stored, but a
    // gateway following the log ignores it and raises an alert.
    let gw = Gateway::start_full(
        log.clone(),
        &operator_log,
        "spend.evt",
        "spend:\n  per_transaction: 10 USD\n",
        GatewayConfig::new(""),
    )
    .await;
    let who = gw.identity(&gw.key);
    let draft = gw
        .state
        .propose_change(
            &who,
            spend_gateway::ops::ProposeRequest {
                account_id: "card_1".into(),
                rationale: "x".into(),
                change: spend_gateway::ops::ChangeRequest::Payment {
                    amount_minor: 500,
                    currency: "USD".into(),
                    merchant: "openai.com".into(),
                    category: None,
                    country: None,
                    url: None,
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(draft.status, "pending_approval");
    let forged = approval(&draft.draft_id, Actor::human("mallory"), &format!("draft/{}", draft.draft_id));
    log.append(Append::new(
        format!("spend.evt.acme.draft.{}", draft.draft_id),
        forged.id.to_string(),
        forged.to_bytes(),
    ))
    .await
    .unwrap();
    gw.state.caught_up().await.unwrap();
    assert_eq!(gw.state.get_draft_status(&who, &draft.draft_id).await.unwrap().status, "pending_approval");
    let alerts = alerts(&log, 1).await;
    let forged_alert = alerts
        .iter()
        .find(|a| a["data"]["reason"] == "approval.forged")
        .expect("the forgery is audited");
    assert!(forged_alert["data"]["detail"].as_str().unwrap().contains(&draft.draft_id));
    gw.stop().await;
}
