//! MCP sign-in under one compromised layer, on a real nats-server with
//! k8s/nats/auth.conf: the gateway's, the policy service's and the
//! executor's own NATS users cannot write an MCP client's grant or its
//! revocation (the `client` aggregate is the approval service's), nor
//! revoke every credential (the operator's); the approval service's user
//! cannot either, and a revocation it writes where it may write but a
//! revocation does not belong is ignored by the gateway's view and audited.
//! What it can do — grant read and draft — never reaches approve: a token
//! asking for it is refused however it is signed.

use std::sync::Arc;

use futures::StreamExt as _;

use spend_core::events::{ApiKeyRevoked, ClientGranted, ClientRevoked, EventData};
use spend_core::{Actor, Envelope};
use spend_eventlog::jetstream::JetStreamLog;
use spend_eventlog::{Append, EventLog};
use spend_gateway::view::View;
use spend_testkit::authnats::AuthNats;

fn granted(id: &str) -> EventData {
    EventData::ClientGranted(ClientGranted {
        grant_id: id.into(),
        client_id: "mcpc_x.y".into(),
        client_name: "Evil".into(),
        approver_id: "ada".into(),
        scopes: vec!["mcp.read".into()],
        resource: "http://localhost:7100/mcp".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        code_sha256: "ab".repeat(32),
        code_expires_at: "2099-01-01T00:00:00Z".into(),
    })
}

fn revoked(id: &str) -> EventData {
    EventData::ClientRevoked(ClientRevoked {
        grant_id: id.into(),
        reason: "forged".into(),
    })
}

async fn publish(log: &Arc<dyn EventLog>, aggregate: &str, id: &str, data: EventData) -> bool {
    let env = Envelope::new("spendsignoff/evil", "acme", Actor::service("evil"), format!("{aggregate}/{id}"), data);
    log.append(Append::new(format!("spend.evt.acme.{aggregate}.{id}"), env.id.to_string(), env.to_bytes()))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_but_the_approval_service_writes_a_clients_grant_and_misplaced_revocations_are_ignored() {
    let password = || format!("pw{}", spend_credentials::random_hex(16).unwrap());
    let users = ["gateway", "policy", "executor", "approval", "operator", "ledger", "admin"];
    let passwords: Vec<(String, String)> = users
        .iter()
        .map(|u| (format!("SPEND_NATS_{}_PASSWORD", u.to_uppercase()), password()))
        .collect();
    let env: Vec<(&str, &str)> = passwords.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nats = AuthNats::start(&env).await;
    let pw = |u: &str| passwords.iter().find(|(k, _)| k.contains(&u.to_uppercase())).unwrap().1.clone();
    // `spend nats init`'s part: the admin creates the stream.
    JetStreamLog::connect(nats.config("admin", &pw("admin"), true)).await.unwrap();

    // The gateway, the policy service and the executor: refused by the
    // server, on the client aggregate and on the operator's revoke-all
    // (core publishes: a refused one is a violation in the server's log).
    let all = || {
        EventData::ApiKeyRevoked(ApiKeyRevoked {
            key_id: "*".into(),
            org: "acme".into(),
            reason: "forged".into(),
        })
    };
    for user in ["gateway", "policy", "executor"] {
        let raw = async_nats::ConnectOptions::with_user_and_password(user.into(), pw(user))
            .custom_inbox_prefix(format!("_INBOX_{user}"))
            .connect(&nats.url)
            .await
            .unwrap();
        for (aggregate, id, data) in [
            ("client", "gr_1", granted("gr_1")),
            ("client", "gr_1", revoked("gr_1")),
            ("apikey", "all", all()),
        ] {
            let env = Envelope::new("spendsignoff/evil", "acme", Actor::service(user), format!("{aggregate}/{id}"), data);
            let _ = raw.publish(format!("spend.evt.acme.{aggregate}.{id}"), env.to_bytes().into()).await;
        }
        raw.flush().await.unwrap();
    }
    // The approval service writes grants; not the operator's revoke-all.
    let approval: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(nats.config("approval", &pw("approval"), false)).await.unwrap());
    assert!(publish(&approval, "client", "gr_2", granted("gr_2")).await);
    assert!(!publish(&approval, "apikey", "all", all()).await, "the approval service cannot revoke API keys");
    // A revocation where the approval service may write but it does not
    // belong (its notification subject), and one naming another grant than
    // its subject: the view ignores both.
    assert!(publish(&approval, "notification", "gr_3", revoked("gr_3")).await);
    assert!(publish(&approval, "client", "gr_4", revoked("gr_5")).await);
    let server_log = std::fs::read_to_string(&nats.log_file).unwrap();
    for user in ["gateway", "policy", "executor"] {
        for subject in ["spend.evt.acme.client.gr_1", "spend.evt.acme.apikey.all"] {
            assert!(
                server_log.contains(&format!("Publish Violation - User \"{user}\", Subject \"{subject}\"")),
                "the server records {user}'s attempt on {subject}"
            );
        }
    }
    for subject in ["spend.evt.acme.client.gr_1", "spend.evt.acme.apikey.all"] {
        assert!(approval.last_on_subject(subject).await.unwrap().is_none(), "nothing stored on {subject}");
    }

    let mut view = View::new(spend_draft::proof::RelyingParty::default_app(), None);
    let mut audits = Vec::new();
    // Read back as a reader does (the approval service's user reads it all).
    let n = approval.info().await.unwrap().last_seq as usize;
    let mut messages = approval.subscribe(spend_eventlog::StartAt::Beginning).await.unwrap().take(n);
    while let Some(m) = messages.next().await {
        if let spend_gateway::view::Applied::Audit { reason, .. } = view.apply("spend.evt", &m.unwrap()) {
            audits.push(reason);
        }
    }
    assert!(!view.grant_revoked("acme", "gr_3", 0, "ada"), "a revocation off its aggregate is ignored");
    assert!(
        !view.grant_revoked("acme", "gr_5", 0, "ada"),
        "a revocation on another grant's subject is ignored"
    );
    assert!(audits.iter().any(|r| r == "event.misplaced"), "and the misplaced one audited: {audits:?}");
}
