//! The passkey page against a real nats-server with k8s/nats/auth.conf,
//! as its own user `passkey`: it reads what it shows from the log, and its
//! credentials can write nothing there. What it refuses to ask a passkey
//! for, it says so.

use std::sync::Arc;

use spend_core::events::{ApproverRegistered, EventData, Outcome};
use spend_core::{Actor, Envelope};
use spend_draft::proof::RelyingParty;
use spend_eventlog::{Append, EventLog};
use spend_testkit::authnats::AuthNats;
use spend_testkit::events::{decided, payment_proposed, subject_of};

const ORG: &str = "acme";

async fn put(log: &Arc<dyn EventLog>, env: &Envelope) -> Result<u64, spend_eventlog::LogError> {
    log.append(Append::new(subject_of("spend.evt", env), env.id.to_string(), env.to_bytes()))
        .await
        .map(|a| a.seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reads_what_it_shows_from_the_log_and_its_user_writes_nothing() {
    let nats = AuthNats::with_streams().await;
    let gateway = nats.log_as("gateway").await;
    let policy = nats.log_as("policy").await;
    let approval = nats.log_as("approval").await;
    let reader = nats.log_as("passkey").await;

    // A draft and a registration, by their writers.
    let draft = payment_proposed(ORG, "d_1", 400);
    put(&gateway, &draft).await.unwrap();
    put(&policy, &decided(ORG, "d_1", Outcome::RequireApproval)).await.unwrap();
    let rp = RelyingParty::new("passkey.localhost", "http://passkey.localhost:7500");
    let bob = spend_draft::humans::Human::on("bob", spend_draft::approvers::Role::Approver, rp.clone());
    let der = bob.key.public_key_der();
    use base64::Engine as _;
    let registered = Envelope::new(
        "spendsignoff/approval",
        ORG,
        Actor::human("bob@acme.example"),
        "approver/bob",
        EventData::ApproverRegistered(ApproverRegistered {
            invite_id: "inv_1".into(),
            approver_id: "bob".into(),
            org: ORG.into(),
            email: "bob@acme.example".into(),
            role: "approver".into(),
            credential_id: bob.credential_id.clone(),
            public_key_spki_b64: base64::engine::general_purpose::STANDARD.encode(&der),
            fingerprint: spend_draft::proof::fingerprint(&der),
            rp_id: rp.rp_id.clone(),
            origin: rp.origin.clone(),
        }),
    );
    put(&approval, &registered).await.unwrap();

    // The page's own user can publish nothing on the log (auth.conf grants
    // it no subject of the stream: crates/core/tests/authority_conf.rs);
    // here, an enrollment of its own, refused by the server.
    let forged = Envelope::new("spendsignoff/approval", ORG, Actor::human("x"), "approver/evil", registered.data.clone());
    assert!(put(&reader, &forged).await.is_err(), "the passkey user wrote an enrollment");

    let page = spend_passkey::Application::build(
        spend_passkey::PasskeyConfig {
            listen: "127.0.0.1:0".into(),
            rp: rp.clone(),
            app_origin: "http://localhost:7200".into(),
        },
        spend_passkey::Deps {
            log: reader.clone(),
            prefix: "spend.evt".into(),
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", page.local_addr());
    let task = tokio::spawn(page.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            let (status, csp) = (r.status().as_u16(), r.headers().get("content-security-policy").cloned());
            (status, csp, r.text().await.unwrap())
        }
    };
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let approve = |id: &str, kind: &str, expires: &str| {
        format!(
            "/approve?org={ORG}&kind={kind}&id={id}&approval_id=apr_0123456789abcdef0123456789abcdef&policy_version=sha256%3Atest&expires_at={}&credential=Y3JlZA&back=/approvals/{id}",
            expires.replace(':', "%3A")
        )
    };

    // The draft, in words from its change, with the exact bytes to hash.
    let (status, csp, body) = get(approve("d_1", "draft", &expires)).await;
    assert_eq!(status, 200, "{body}");
    assert!(csp.unwrap().to_str().unwrap().contains("script-src 'self'"));
    assert!(body.contains("Pay 4.00 USD to openai.com (US, https) from card crd_1"), "{body}");
    assert!(body.contains("cannot be undone by a rollback"), "{body}");
    assert!(body.contains("Confirm and push live") && body.contains("role=\"alertdialog\""), "{body}");
    use base64::engine::general_purpose::STANDARD;
    assert!(body.contains(&STANDARD.encode(draft.to_bytes())), "the exact bytes, for the browser to hash");
    // What is not a draft, is not there, or has expired, is not asked for.
    assert_eq!(get(approve("d_1", "policy", &expires)).await.0, 404, "no proposal under that id");
    assert_eq!(get(approve("d_404", "draft", &expires)).await.0, 404);
    assert_eq!(get(approve("d_1", "draft", "2020-01-01T00:00:00Z")).await.0, 409, "expired");
    let far = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(get(approve("d_1", "draft", &far)).await.0, 400, "an expiry no approval may have");
    assert_eq!(get("/approve?org=acme&kind=draft&id=d_1".into()).await.0, 400, "incomplete");

    // A countersignature: who, which role, which key, from the log.
    let (status, _, body) = get(format!(
        "/countersign?org={ORG}&approver=bob&credential=Y3JlZA&ceremony=0123456789abcdef01&back=/approvers"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Vouch for <strong>bob@acme.example</strong> as <strong>approver</strong>"),
        "{body}"
    );
    assert!(body.contains(&spend_draft::proof::fingerprint(&der)), "{body}");
    assert!(body.contains("Countersign bob@acme.example"), "{body}");
    assert_eq!(
        get(format!("/countersign?org={ORG}&approver=nobody&credential=Y3JlZA&ceremony=0123456789abcdef01"))
            .await
            .0,
        404
    );

    // Sign-in names the app it signs in to; a bad nonce is refused.
    let (status, _, body) = get("/signin?nonce=0123456789abcdef0123&email=ada%40acme.example&credentials=Y3JlZA".into()).await;
    assert_eq!(status, 200);
    assert!(body.contains("Sign in to <strong>http://localhost:7200</strong>"), "{body}");
    assert_eq!(get("/signin?nonce=x%22%3E&email=a&credentials=Y3JlZA".into()).await.0, 400);
    // No related-origins document: no other site may use its passkeys.
    assert_eq!(get("/.well-known/webauthn".into()).await.0, 404);
    task.abort();
}
